"""Numbers as banks and spreadsheets write them (issue 17, session 13, item 1): '1,234',
'1,234,567.50' (quoted in the CSV) and '$1,234.50' are numbers, read cell by cell, decided
numeric under DP like other number shapes, and written back in the input's number
`format` (a public schema field, as a date's format).

Negative control: on 3e68075 every test here fails: such cells are not numbers
(`numeric_values` gives NaN), `schema infer` and the DP inference make those columns
identifiers (text with over 90% distinct values), and `format` on a number column is
refused by the schema's validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit import PrivacyBudget, Schema
from synthkit.cli import app
from synthkit.dp_schema import dp_infer_schema
from synthkit.ledger import PrivacyLedger
from synthkit.schema import infer_schema
from synthkit.table import numeric_values


def _bank(n: int, seed: int = 0) -> pd.DataFrame:
    """Amounts from a lognormal (many over 1,000), written as an Excel export writes them."""
    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(7.0, 1.2, n), 2)
    frame = pd.DataFrame({"balance": [f"{v:,.2f}" for v in amount],
                          "paid": [f"${v:,.2f}" if v >= 0 else f"-${-v:,.2f}" for v in amount * 0.9 - 50],
                          "units": [f"{int(v * 10):,}" for v in amount],
                          "plain": np.round(amount / 7, 3)})
    frame.loc[[3, 7], "balance"] = None  # blank cells
    return frame


def test_each_cell_is_read_by_its_own_text() -> None:
    text = pd.Series(["1,234", "1,234,567.50", "$1,234.50", "-$12.00", "$-3", "€9", "12", None,
                      "1,5", "12,34", "--$5", "word"])
    got = numeric_values(text).to_numpy()
    np.testing.assert_array_equal(got[:7], [1234.0, 1234567.5, 1234.5, -12.0, -3.0, 9.0, 12.0])
    assert np.isnan(got[7:]).all()  # blank, a ',' decimal mark, a bad group, a double sign, a word


def test_schema_infer_proposes_kinds_and_formats() -> None:
    schema = infer_schema(_bank(400), formats=True)
    got = {c.name: (c.kind, c.format) for c in schema.columns}
    assert got == {"balance": ("continuous", "#,##0.00"), "paid": ("continuous", "$#,##0.00"),
                   "units": ("integer", "#,##0"), "plain": ("continuous", None)}
    # a public field: it round-trips and a wrong pattern is named with the fix
    assert Schema.from_yaml(schema.to_yaml()) == schema
    with pytest.raises(Exception, match=r"column 'x': format '\$#\.##0' is not a number pattern.*'#,##0\.00'"):
        Schema.from_dict({"columns": {"x": {"kind": "continuous", "format": "$#.##0"}}})


def test_dp_inference_decides_them_numeric_with_their_format() -> None:
    """600 rows, ε = 3, 20 noise draws: the three shaped columns are numbers with their
    format in every draw, the plain one never gets a format. (About half of each shaped
    column's cells are over 1,000; with 1 in 6 of 600, as a '$' column of small amounts, the
    thousands groups clear their cut of 2.5 noise std in about 93 draws of 100.)"""
    frame = _bank(600)
    budget = PrivacyBudget(epsilon=3.0, delta=1e-6)
    seen = []
    for draw in range(20):
        schema = dp_infer_schema(frame, ledger=PrivacyLedger(budget), budget=budget, k=1,
                                 rng=np.random.default_rng(draw))
        seen.append({c.name: (c.kind, c.format) for c in schema.columns})
    assert all(s["balance"] == ("continuous", "#,##0.00") for s in seen), seen
    assert all(s["paid"] == ("continuous", "$#,##0.00") for s in seen), seen
    assert all(s["units"] == ("integer", "#,##0") for s in seen), seen
    assert all(s["plain"][1] is None for s in seen), seen


def test_fit_and_generate_write_the_input_format(tmp_path: Path) -> None:
    data = tmp_path / "bank.csv"
    frame = _bank(600)
    frame.to_csv(data, index=False)
    runner = CliRunner()
    fit = runner.invoke(app, ["fit", str(data), "--epsilon", "3", "--epochs", "2", "--out", str(tmp_path / "m")])
    assert fit.exit_code == 0, fit.output
    gen = runner.invoke(app, ["generate", str(tmp_path / "m"), "--rows", "400", "--out", str(tmp_path / "s.csv")])
    assert gen.exit_code == 0, gen.output
    syn = pd.read_csv(tmp_path / "s.csv", dtype=str, keep_default_na=False)
    balance = syn["balance"][syn["balance"] != ""]
    assert balance.str.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d{2}").all()
    assert syn["paid"].str.fullmatch(r"-?\$\d{1,3}(,\d{3})*\.\d{2}").all()
    assert syn["units"].str.fullmatch(r"-?\d{1,3}(,\d{3})*").all()
    assert balance.str.contains(",").mean() > 0.2  # learned values, many over 1,000 (real: ~45%)
    # the values are learned: the synthetic median within a factor 2 of the real one
    real_median = float(numeric_values(frame["balance"]).median())
    assert 0.5 < float(numeric_values(balance).median()) / real_median < 2.0


def test_one_row_still_moves_the_release_by_at_most_sqrt_3() -> None:
    """The number-shape classes are a cell's sub-class INSTEAD of the zero-one 'other' class,
    so one added or removed row (any spelling: '$0.00' counts as 0, '1,234' in a shape class)
    moves one class, one sub-class and the distinct count: L2 <= √3, the sensitivity the
    inference event is sized with."""
    from synthkit.dp_schema import _counts
    base = pd.Series(["1,234", "$5.00", "$1,234.50", "0", "1", "12", "yes", "03/15/2020", "2020-01-01", "word",
                      "$0.00", "$1.00", "1,000,000.5", None, "€3", "-$7.25"] * 3)
    before = _counts(base, with_shapes=True)
    moved = [_counts(pd.concat([base, pd.Series([cell])], ignore_index=True), with_shapes=True) - before
             for cell in ["1,234", "$1,234.50", "$0.00", "$1.00", "£1,000", "9,999.999", "no", "x", "1,000,000.5"]]
    moved += [_counts(base.drop(index=i), with_shapes=True) - before for i in range(16)]
    assert max(float(np.sqrt((m ** 2).sum())) for m in moved) <= np.sqrt(3) + 1e-9
    assert _counts(pd.Series(["1,234"] * 5), with_shapes=True)[2] == 5  # whole numbers, not text


def test_dphmm_writes_event_numbers_in_their_format() -> None:
    """Review R (s13) F2: DPHMM decided `$#,##0.00` for an event column of amounts but wrote
    plain floats (624.2655768311486). Now its events are written as the table models write
    them. Negative control: on 9a145b2 the sampled values are floats."""
    from synthkit.ledger import PrivacyBudget
    from synthkit.models.hmm import DPHMM
    from synthkit.table import numeric_values
    rng = np.random.default_rng(0)
    n, k = 1500, 4
    amt = rng.lognormal(7, 1, n * k)
    df = pd.DataFrame({"acct": np.repeat(np.arange(n), k), "t": np.tile(np.arange(k), n),
                       "amount": [f"${a:,.2f}" for a in amt]})
    m = DPHMM(n_states=2, epochs=1, context_epochs=1, device="cpu").fit(
        df, budget=PrivacyBudget(epsilon=3, delta=1e-6), roles={"entity_key": "acct", "sequence_index": "t"})
    assert m.schema_.column("amount").format == "$#,##0.00"
    out = m.sample(50, seed=1)["amount"].dropna()
    assert len(out) > 0 and all(isinstance(v, str) and v.lstrip("-").startswith("$") for v in out)
    assert numeric_values(out).notna().all()
