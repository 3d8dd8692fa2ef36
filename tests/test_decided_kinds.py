"""A private fit without a schema decides kinds and formats under DP (synthkit.dp_schema).
Nothing read from the exact rows may then decide anything the fit releases, nor whether
the fit runs: neighbouring tables (one row added) must both fit, with the same decisions
when the noise is small against the counts. Each case failed on the code before this
test: one non-ISO row flipped a date column's precision (the reader parsed the column or
kept it as text), one word in a number column failed the fit, and a rows-based guess
checked --target."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()


def _table(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    return pd.DataFrame({"amount": rng.integers(0, 900, n).astype(str),
                         "visit": days.strftime("%Y-%m-%d 00:00:00"),
                         "ward": rng.choice(["a", "b", "c"], n)})


def _fit(path, out):
    return runner.invoke(app, ["fit", str(path), "--model", "dptvae", "--epsilon", "3", "--delta", "1e-6",
                               "--epochs", "1", "--device", "cpu", "--out", str(out)], catch_exceptions=False)


def _decisions(model) -> dict:
    schema = json.loads((model / "manifest.json").read_text())["schema"]["columns"]
    return {n: (c["kind"], c.get("format"), c.get("time_unit")) for n, c in schema.items()}


def test_one_odd_row_neither_fails_the_fit_nor_moves_a_decision(tmp_path):
    base = _table()
    odd = pd.concat([base, pd.DataFrame({"amount": ["n/a"], "visit": ["01/02/2020"], "ward": ["a"]})],
                    ignore_index=True)
    decisions = []
    for name, frame in (("d", base), ("d1", odd)):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        r = _fit(path, tmp_path / f"m_{name}")
        assert r.exit_code == 0, r.output
        decisions.append(_decisions(tmp_path / f"m_{name}"))
        notes = json.loads((tmp_path / f"m_{name}" / "manifest.json").read_text())["privacy"]["summary"]["notes"]
        assert any("read as missing values" in n for n in notes)  # stated whatever the rows hold
    assert decisions[0] == decisions[1]
    assert decisions[0]["amount"][0] == "integer"
    assert decisions[0]["visit"][0] == "datetime" and decisions[0]["visit"][2] == "day"


def test_a_private_fit_without_schema_never_guesses_kinds_from_the_rows(tmp_path, monkeypatch):
    import synthkit.schema

    def refuse(*args, **kwargs):
        raise AssertionError("infer_schema read the rows of a private fit")

    monkeypatch.setattr(synthkit.schema, "infer_schema", refuse)
    path = tmp_path / "d.csv"
    _table(300).to_csv(path, index=False)
    r = runner.invoke(app, ["fit", str(path), "--model", "dptvae", "--epsilon", "3", "--delta", "1e-6",
                            "--epochs", "1", "--device", "cpu", "--target", "ward", "--out", str(tmp_path / "m")],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["fit", str(path), "--model", "dptvae", "--epsilon", "3", "--target", "wrd",
                            "--out", str(tmp_path / "m2")], catch_exceptions=False)
    assert r.exit_code == 2 and "--target 'wrd' is not a column" in r.output and "'ward'" in r.output


def test_boolean_spellings_are_decided_under_dp_and_written_back():
    """yes/no, Y/N and their case come back as written (they came back true/false), decided
    from noisy spelling counts; true/false in any case is one class, because a reader may
    have parsed such a column to booleans (one odd row keeps it text, which must not move
    the counts)."""
    from synthkit.dp_schema import _counts, decide_true_false

    text = pd.Series(["Yes", "No"] * 200)
    parsed = pd.Series([True, False] * 200)
    assert decide_true_false(_counts(text)) == ("Yes", "No")
    assert decide_true_false(_counts(pd.Series(["y", "n"] * 200))) == ("y", "n")
    assert decide_true_false(_counts(pd.Series(["TRUE", "FALSE"] * 200))) is None
    as_text = _counts(pd.Series(["TRUE", "FALSE"] * 200 + ["maybe"]))
    assert np.abs(as_text - _counts(parsed)).sum() == 2  # the odd row only: one text cell, one distinct value


def test_yes_no_output_keeps_the_input_spelling(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"smoker": rng.choice(["Yes", "No"], 500), "age": rng.integers(20, 80, 500)})
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    r = _fit(path, tmp_path / "m")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["generate", str(tmp_path / "m"), "--rows", "200", "--out", str(tmp_path / "s.csv")],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = pd.read_csv(tmp_path / "s.csv", dtype=str)
    assert set(out["smoker"].dropna()) <= {"Yes", "No"} and out["smoker"].notna().mean() > 0.9
