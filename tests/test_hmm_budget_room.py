"""DPHMM refuses a plan that leaves its DP-SGD no budget BEFORE any row is read (review R1 F2).

The event margins (step 4b) and the change rates (4c) are calibrated to the context's
cumulative target plus their shares, capped at ε; with shares near 1 they could take what is
left and DP-SGD's calibration then failed AFTER the rows were read and ε spent. The check now
counts the change rates' share in `_check_params` and, right after the plan (which knows the
ranges' extra ρ), checks the room that is left. `_fit_events` (where the rows are first read)
is replaced by a sentinel: a refusal must come before it, and a plan with room must reach it.

Negative control, run once on the code before the fix: both refusal tests failed (the fit got
past the plan and hit the sentinel: 'rows were read'); the bracket test passed there too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit import DPHMM, PrivacyBudget, Schema
from synthkit.errors import BudgetExceededError, ConfigError
from synthkit.ledger import PrivacyLedger
from synthkit.models.hmm import preprocess
from synthkit.schema import Column

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
SCHEMA = Schema(columns=(
    Column(name="pid", kind="identifier", nullable=False),
    Column(name="year", kind="integer", nullable=False, bounds=(2000, 2003)),
    Column(name="visits", kind="integer", nullable=False),   # no bounds: a DP range
    Column(name="income", kind="continuous", nullable=False),  # no bounds: a DP range
    Column(name="flag", kind="boolean", nullable=False),
), entity_key="pid", sequence_index="year")


class RowsRead(Exception):
    pass


@pytest.fixture
def events(monkeypatch) -> pd.DataFrame:
    def sentinel(self, *args, **kwargs):
        raise RowsRead("rows were read")
    monkeypatch.setattr(DPHMM, "_fit_events", sentinel)
    rng = np.random.default_rng(0)
    n, t = 50, 4
    return pd.DataFrame({"pid": np.repeat([f"P{i:03d}" for i in range(n)], t),
                         "year": np.tile(np.arange(2000, 2000 + t), n), "visits": rng.poisson(2.0, n * t),
                         "income": rng.lognormal(1.0, 0.5, n * t).round(2), "flag": rng.random(n * t) < 0.3})


def _fit(events: pd.DataFrame, margins: float) -> PrivacyLedger:
    ledger = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=2)
    model = DPHMM(n_states=2, epochs=1, context_epochs=1, device="cpu", seed=0, preprocessing_epsilon_share=0.5,
                  context_epsilon_share=0.3, margins_epsilon_share=margins)
    try:
        model.fit(events, schema=SCHEMA, budget=BUDGET, ledger=ledger)
    finally:
        assert not ledger.events  # nothing charged (with a schema, nothing is released before the rows)
    return ledger


def test_shares_with_the_change_rates_at_or_above_one_are_refused_first(events):
    """0.5 + 0.3 + 0.19 margins < 1, but the change rates' 0.03 makes 1.02."""
    with pytest.raises(ConfigError, match="margins_epsilon_share") as err:
        _fit(events, 0.19)
    assert len(str(err.value).splitlines()) == 1


def test_the_ranges_extra_leaving_no_room_is_refused_before_the_rows(events, monkeypatch):
    """Shares 0.5 + 0.3 + 0.13 + 0.03 + 0.02 = 0.98 pass the parameter check; the ranges'
    extra ρ (RANGE_WEIGHT 4, two unbounded columns) lifts the context's target to about 0.94ε,
    so the margins, change rates and the test of rising columns (0.18ε) would leave DP-SGD
    nothing. (Session 11: margins 0.15 before the rising-column test's 0.02.)"""
    monkeypatch.setattr(preprocess, "RANGE_WEIGHT", 4.0)
    with pytest.raises(BudgetExceededError, match="nothing is left for the HMM's DP-SGD") as err:
        _fit(events, 0.13)
    assert len(str(err.value).splitlines()) == 1
    assert "P0" not in str(err.value)


def test_the_same_plan_with_room_reaches_the_rows(events, monkeypatch):
    """Bracket: the same shares without the ranges' extra (0.8ε + 0.18ε < ε) are not refused.
    (Session 13 made RANGE_WEIGHT 4 the default for event columns: the bracket sets 1.)"""
    monkeypatch.setattr(preprocess, "RANGE_WEIGHT", 1.0)
    with pytest.raises(RowsRead):
        _fit(events, 0.13)
