"""A small table's numeric key column is an identifier under DP (issue 17, session 13 trial).

survival `stanford2` (184 rows) has `id`, a shuffled 1..184. At ε = 3 its class counts get
noise σ ≈ 28, under the cut where `decide_kind` reads shares, so `_plurality_kind` decided
`integer` by the largest class alone and the fit learned the key as a number (53% of the
synthetic rows held one value). Now a column with a key's (public) name whose noisy distinct
count clears 3σ and is over half its noisy number count is an identifier there too, as in
`decide_kind`; a column of numbers with few distinct values and a key's name stays a number.

Negative control: on ef8d46f `test_small_numeric_key_is_an_identifier` fails (integer in
every draw)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthkit import PrivacyBudget
from synthkit.dp_schema import dp_infer_schema
from synthkit.ledger import PrivacyLedger

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": rng.permutation(np.arange(1, n + 1)),
                         "time": rng.gamma(1.0, 400.0, n).round(0),
                         "status": rng.integers(0, 2, n),
                         "age": rng.integers(12, 65, n),
                         "t5": np.where(rng.random(n) < 0.15, np.nan, rng.uniform(0, 3, n).round(2))})


def test_small_numeric_key_is_an_identifier() -> None:
    kinds = []
    for draw in range(10):
        schema = dp_infer_schema(_frame(184, draw), ledger=PrivacyLedger(BUDGET), budget=BUDGET, k=1,
                                 rng=np.random.default_rng(100 + draw))
        kinds.append(schema.column("id").kind)
    assert kinds.count("identifier") >= 9, kinds


def test_a_key_name_on_few_values_stays_a_number() -> None:
    """`id` with 6 values over 184 rows (a code, not a key): never an identifier."""
    for draw in range(10):
        frame = _frame(184, draw)
        frame["id"] = np.random.default_rng(draw).integers(1, 7, len(frame))
        schema = dp_infer_schema(frame, ledger=PrivacyLedger(BUDGET), budget=BUDGET, k=1,
                                 rng=np.random.default_rng(200 + draw))
        assert schema.column("id").kind != "identifier", draw
        assert schema.column("status").kind != "identifier" and schema.column("age").kind != "identifier"
