"""Issue 17 (session 12, task G): a yes/no column whose "yes" is rare stays a boolean.

AER/HMDA (1,666 training rows, 14 columns, ε = 3, σ ≈ 48): `insurance` (36 "yes", the
strongest predictor of `deny`) was learned as labels because its "yes" count is under the
2.5σ that `_both_truths` asks of both truth values; its "yes" then came back as `__other__`
or not at all. A column whose cells are (beyond the noise) all one boolean pair in one case
is now a boolean with that pair (`_one_pair`); f/m (the m's are text) still is not.

Negative control: run against the code before (60af0dc, PYTHONPATH=/tmp/ctl_G): the rare
"yes" column was decided categorical with the fixed noise and boolean in ~6% of draws;
`test_a_rare_yes_column_is_a_boolean_with_its_pair` and the fit test failed there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit.dp_schema import _counts, decide_kind, dp_infer_schema, inference_event
from synthkit.ledger import PrivacyBudget, PrivacyLedger

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
N_ROWS = 1666
N_YES = 33  # 2% "yes"
DRAWS = 1000


def _table(seed: int = 12) -> pd.DataFrame:
    """1,666 rows: `insurance` yes/no (33 yes) that nearly decides `deny` (P(deny|yes) 0.9,
    P(deny|no) 0.1), `sex` f/m (90% f), and a continuous `ratio`."""
    rng = np.random.default_rng(seed)
    yes = np.r_[np.ones(N_YES, dtype=bool), np.zeros(N_ROWS - N_YES, dtype=bool)]
    rng.shuffle(yes)
    deny = rng.random(N_ROWS) < np.where(yes, 0.9, 0.1)
    male = np.r_[np.ones(N_ROWS // 10, dtype=bool), np.zeros(N_ROWS - N_ROWS // 10, dtype=bool)]
    rng.shuffle(male)
    return pd.DataFrame({
        "deny": np.where(deny, "yes", "no"),
        "insurance": np.where(yes, "yes", "no"),
        "sex": np.where(male, "m", "f"),
        "ratio": np.round(rng.normal(0.3, 0.1, N_ROWS), 3),
    })


def _share(values: pd.Series, kind: str, *, n_columns: int = 14) -> float:
    """Share of noisy draws (HMDA's sigma: 14 columns, ε = 3) decided `kind`."""
    sigma = inference_event(BUDGET, k=1, n_columns=n_columns).sigma
    exact = _counts(values)
    rng = np.random.default_rng(17)
    kinds = [decide_kind("x", exact + rng.normal(0.0, sigma, exact.size), sigma) for _ in range(DRAWS)]
    return kinds.count(kind) / DRAWS


def _schema():
    return dp_infer_schema(_table(), ledger=PrivacyLedger(BUDGET), budget=BUDGET, k=1,
                           rng=np.random.default_rng(3), targets=("deny",))


def test_a_rare_yes_column_is_a_boolean_with_its_pair():
    """Main assertion (fixed noise): kind boolean, spelled yes/no; over 1,000 draws at HMDA's
    σ (33 yes ≈ 0.7σ) it is a boolean in over 95% (a pure column passes the checks of
    `_one_pair` about 98 times in 100)."""
    column = next(c for c in _schema().columns if c.name == "insurance")
    assert column.kind == "boolean" and tuple(column.true_false) == ("yes", "no")
    assert _share(_table()["insurance"], "boolean") > 0.95
    # same with the rare value the false one, in title case
    flipped = pd.Series(["Yes"] * (N_ROWS - 29) + ["No"] * 29)
    assert _share(flipped, "boolean") > 0.95


def test_f_and_m_is_still_not_a_boolean():
    """Guard of `_both_truths`: f/m (90% f, 10% m: the m's are text, 3.5σ at HMDA's σ) is
    not a t/f boolean; neither is a yes/no column with 20% other words (7σ; at 10%, 3.5σ,
    the noise hides them in ~15% of draws, as ZERO_ONE_OTHER allows a 0/1 flag); nor pbc's `sex`
    (374 f of 418, σ ≈ 57: the f's are 6.6σ, under ONE_PAIR_SIGMAS)."""
    column = next(c for c in _schema().columns if c.name == "sex")
    assert column.kind == "categorical"
    assert _share(_table()["sex"], "boolean") < 0.03
    mixed = pd.Series(["no"] * 1333 + ["unknown"] * 333)
    assert _share(mixed, "boolean") < 0.01
    assert _share(pd.Series(["f"] * 374 + ["m"] * 44), "boolean", n_columns=20) < 0.02


def test_a_fit_writes_the_rare_yes_back_as_yes_or_no_only():
    """Recovery: a one-epoch fit with the decided schema samples `insurance` as yes/no only
    (never `__other__`, never missing), mostly "no" (the DP marginal decides how many yes)."""
    from synthkit import DPCTGAN

    schema = _schema()
    model = DPCTGAN(epochs=1, device="cpu").fit(_table(), budget=BUDGET, schema=schema)
    assert model.transformer_.transforms["insurance"].column.kind == "boolean"
    values = model.sample(2000, seed=1)["insurance"].astype(str)
    assert set(values.unique()) <= {"yes", "no"}, values.value_counts().to_dict()
    assert (values == "no").mean() > 0.8
    assert model.ledger_.epsilon_spent() <= 3.0 + 1e-9
