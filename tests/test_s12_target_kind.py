"""A declared target keeps its classes on a small table with no schema (issue 17, session 12).

`--target y` is the user's declaration that y is what a model is trained to predict, so its
kind is decided by its own DP release (dp_schema.target_cover / decide_target_kind), not by
the class counts alone, whose noise (σ ≈ 25-40 cells at ε = 3) is of the size of a 140-row
table: Stat2Data ICU's 0/1 `Survive` (140 rows, ε = 3) was decided an integer in 4 of 5 CLI
fits and its 0s were lost (or a 2 invented) in 3 of 5, with no warning.

Negative control: this file copied into an archive of a21f993 (the commit before the change,
PYTHONPATH=/tmp/ctl_C): `test_a_zero_one_target_is_decided_labels_at_epsilon_3` fails there
(the target was decided `integer` in 18 of 20 draws, `categorical` in 2); in
`test_a_price_target_stays_a_number` the kind assertion passes there too (a price stays a
number) and the log line assertion fails (no line: 0 of 20).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from synthkit.ledger import PrivacyBudget

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
N_ROWS = 140
N_ZEROS = 42  # class 0: 30% of the rows


def _table(seed: int = 7) -> pd.DataFrame:
    """140 rows: a 0/1 target `y` (42 zeros), a price-like `price` (continuous, 140 distinct
    values), an integer `age` and a continuous `score` that depends on y."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(N_ZEROS, dtype=int), np.ones(N_ROWS - N_ZEROS, dtype=int)]
    rng.shuffle(y)
    return pd.DataFrame({
        "age": rng.integers(20, 90, size=N_ROWS),
        "score": np.round(rng.normal(50.0 + 15.0 * y, 10.0), 1),
        "price": np.round(np.exp(rng.normal(5.0, 0.8, size=N_ROWS)), 2),
        "y": y,
    })


def _decided_kind(frame: pd.DataFrame, target: str, budget: PrivacyBudget = BUDGET) -> tuple[str, object]:
    """The kind a private fit without a schema gives the declared target (the CLI's path:
    roles only), and the ledger it charged."""
    from synthkit import DPCTGAN

    model = DPCTGAN(device="cpu")
    ledger = model._infer_schema_dp(frame, budget=budget, roles={"targets": (target,)}, ledger=None)
    kinds = {c.name: c.kind for c in model.inferred_schema_.columns}
    return kinds[target], ledger


def test_a_zero_one_target_is_decided_labels_at_epsilon_3():
    """Main assertion: in 20 noise draws the 0/1 target is learned as classes (categorical or
    boolean) every time. Its cover (5 most frequent values − 2/3 of the cells) is 140/3 ≈ 47
    against σ ≈ 6.3: a draw misses with probability ~1e-13. Before, it was `integer` in every
    draw (class counts' σ ≈ 25: the 0/1 test needs 8σ = 200 ones)."""
    frame = _table()
    kinds = [_decided_kind(frame, "y")[0] for _ in range(20)]
    assert all(k in ("categorical", "boolean") for k in kinds), pd.Series(kinds).value_counts().to_dict()


def test_a_price_target_stays_a_number(caplog):
    """Bracket: a regression target (140 distinct prices) is learned as a number in 20 of 20
    draws (its cover is 5 − 93 = −88 cells, 14σ below the cut), with one warning line per fit
    that names the column, never a value; and no other column changes its kind because one is
    declared a target."""
    frame = _table()
    with caplog.at_level(logging.WARNING, logger="synthkit.dp_schema"):
        kinds = [_decided_kind(frame, "price")[0] for _ in range(20)]
    assert set(kinds) == {"continuous"}, pd.Series(kinds).value_counts().to_dict()
    lines = [r.getMessage() for r in caplog.records if "learned as a number" in r.getMessage()]
    assert len(lines) == 20
    assert "'price'" in lines[0] and "categories" in lines[0]
    values = {f"{v:.2f}" for v in frame["price"]} | {str(v) for v in frame["age"]}
    assert not any(v in line for line in lines for v in values if len(v) >= 3)


def test_the_target_release_is_planned_and_charged():
    """Exact: the target's release is one Gaussian of sensitivity 2/3 (one row, one target) at
    TARGET_KIND_SHARE of the ε's ρ, charged after the class counts; the total stays in ε."""
    from synthkit.dp_schema import EVENT, TARGET_EVENT, TARGET_KIND_SHARE, target_kind_event
    from synthkit.mechanisms import rho_for_epsilon

    _, ledger = _decided_kind(_table(), "y")
    assert [e.name for e in ledger.events] == [EVENT, TARGET_EVENT]
    event = ledger.events[1]
    assert event == target_kind_event(BUDGET, k=1, n_targets=1)
    assert event.sensitivity == pytest.approx(2.0 / 3.0)
    rho = (event.sensitivity / event.sigma) ** 2 / 2
    assert rho == pytest.approx(TARGET_KIND_SHARE * rho_for_epsilon(3.0, 1e-6), rel=1e-9)
    assert ledger.epsilon_spent() < 3.0
    assert target_kind_event(BUDGET, k=4, n_targets=2).sensitivity == pytest.approx(4 * math.sqrt(2) * 2 / 3)


def test_target_cover_moves_by_at_most_two_thirds_per_row():
    """Exact: adding any one row (a repeated value, a new value, a null, a boolean word) moves
    the cover by at most max(2/3, 1/3), as the event's sensitivity says; over random small
    columns with ties among the most frequent values."""
    from synthkit.dp_schema import TARGET_COVER, target_cover

    rng = np.random.default_rng(3)
    bound = max(TARGET_COVER, 1.0 - TARGET_COVER) + 1e-9
    for _ in range(300):
        n = int(rng.integers(0, 30))
        values = list(rng.integers(0, int(rng.integers(1, 12)), size=n).astype(float))
        base = pd.Series(values, dtype=float)
        for extra in (values[0] if values else 0.0, 99.0, np.nan):
            grown = pd.Series(values + [extra], dtype=float)
            assert abs(target_cover(grown) - target_cover(base)) <= bound
    assert target_cover(pd.Series([0, 1, 1, None])) == pytest.approx(3 - 2.0)  # 3 cells, both values
    assert target_cover(pd.Series(["Yes", "yes", "No"])) == pytest.approx(3 - 2.0)


def test_both_classes_come_back_from_a_fit_at_epsilon_3():
    """Recovery: a fit with no schema (the target declared, one epoch: the labels are released
    before training) keeps both classes of the 0/1 target, and the sampled share of class 0 is
    within 0.15 of its 0.30 (the released counts' σ ≈ 4 rows of 140 and the marginal
    calibration set it; a lost class gives 0)."""
    from synthkit import DPCTGAN

    model = DPCTGAN(epochs=1, device="cpu").fit(_table(), budget=BUDGET, roles={"targets": ("y",)})
    t = model.transformer_.transforms["y"]
    assert t.column.kind == "categorical"  # a boolean needs 8σ ≈ 200 ones: not at 140 rows
    assert [x for x in t.labels_ if x not in ("__other__", "__null__")] == ["0", "1"]
    shares = model.sample(2000, seed=1)["y"].astype(str).value_counts(normalize=True)
    assert set(shares.index) >= {"0", "1"}, shares.to_dict()
    assert abs(shares.get("0", 0.0) - N_ZEROS / N_ROWS) < 0.15, shares.to_dict()
    assert model.ledger_.epsilon_spent() <= 3.0 + 1e-9
