"""Issue 15, item 4: a private fit without a schema decides column kinds under DP.

Negative control: `infer_schema` (the rows-based guess, used for a review step) flips a
column's kind on one added row; the DP decision, with the noise source fixed, does not,
and its cost is in the ledger.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest_data import credit, nmes
from synthkit import DPTVAE, PrivacyBudget, infer_schema
from synthkit.dp_schema import EVENT, INFERENCE_SHARE, decide_kind, inference_event
from synthkit.ledger import GaussianEvent
from synthkit.noise import _fixed_for_tests

BUDGET = PrivacyBudget(epsilon=1.0, delta=1e-6)
TINY = dict(epochs=1, batch_size=200, device="cpu", embedding_dim=8, compress_dims=(16,), decompress_dims=(16,))


def _fit(frame: pd.DataFrame, **roles) -> DPTVAE:
    return DPTVAE(**TINY).fit(frame, budget=BUDGET, schema=None, roles=roles or None)


@pytest.mark.parametrize("load", [credit, nmes], ids=["credit_data", "NMES1988"])
def test_dp_kinds_recover_the_rows_based_kinds_on_real_tables(load):
    frame = load()
    ref = {c.name: c.kind for c in infer_schema(frame).columns}
    got = {c.name: c.kind for c in _fit(frame).schema_.columns}
    agree = sum(ref[n] == got[n] for n in ref) / len(ref)
    assert agree >= 0.9, {n: (ref[n], got[n]) for n in ref if ref[n] != got[n]}


def test_the_inference_is_one_charged_gaussian_sized_from_public_facts():
    frame = credit()
    model = _fit(frame)
    events = [e for e in model.ledger_.events if e.name == EVENT]
    assert len(events) == 1 and isinstance(events[0], GaussianEvent)
    d = frame.shape[1]
    assert events[0].sensitivity == pytest.approx(math.sqrt(3 * d))  # k = 1: one row, one class, one date class, one distinct
    assert events[0] == inference_event(BUDGET, k=1, n_columns=d)  # from the budget and the header alone
    assert model.ledger_.epsilon_spent() <= BUDGET.epsilon * (1 + 1e-9)
    # with an entity key the unit's k rows scale the sensitivity
    assert inference_event(BUDGET, k=3, n_columns=d).sensitivity == pytest.approx(3 * math.sqrt(3 * d))
    assert 0 < INFERENCE_SHARE < 0.2


def test_one_added_row_flips_rows_based_kinds_but_not_the_dp_decision():
    rng = np.random.default_rng(0)
    n = 3000
    base = pd.DataFrame({"visits": rng.poisson(3, n), "cost": rng.gamma(2.0, 40.0, n).round(2),
                         "flag": rng.choice(["yes", "no"], n), "dx": rng.choice(list("abcde"), n)})
    hostile = pd.concat([base, pd.DataFrame({"visits": [2.5], "cost": ["unknown"], "flag": ["maybe"],
                                             "dx": ["a"]})], ignore_index=True)
    before = {c.name: c.kind for c in infer_schema(base).columns}
    after = {c.name: c.kind for c in infer_schema(hostile).columns}
    assert before != after  # control: the rows-based guess reads the added row

    with _fixed_for_tests(21):
        a = {c.name: c.kind for c in _fit(base).schema_.columns}
    with _fixed_for_tests(21):
        # the hostile row cannot be coerced to the DP kinds; the decision itself is what matters
        model = DPTVAE(**TINY)
        model._infer_schema_dp(hostile, budget=BUDGET, roles={}, ledger=None)
        b = {c.name: c.kind for c in model.inferred_schema_.columns}
    assert a == b == {"visits": "integer", "cost": "continuous", "flag": "boolean", "dx": "categorical"}


def test_decisions_on_clear_counts_and_the_small_table_fallback():
    # counts: boolean, date, whole, number, text, distinct
    assert decide_kind("x", np.array([990, 0, 0, 0, 10, 2.0]), 5.0) == "boolean"
    assert decide_kind("x", np.array([0, 995, 0, 0, 5, 300.0]), 5.0) == "datetime"
    assert decide_kind("x", np.array([0, 0, 980, 20, 0, 60.0]), 5.0) == "integer"
    assert decide_kind("x", np.array([0, 0, 300, 700, 0, 900.0]), 5.0) == "continuous"
    assert decide_kind("patient_id", np.array([0, 0, 1000, 0, 0, 990.0]), 5.0) == "identifier"
    assert decide_kind("note", np.array([0, 0, 0, 0, 1000, 995.0]), 5.0) == "identifier"
    assert decide_kind("dx", np.array([0, 0, 0, 0, 1000, 12.0]), 5.0) == "categorical"
    # a small table (issue 17): the largest class decides once it clears 3 noise std (else
    # labels); a number column is continuous when its fractions clear 2.5 std (100 here)
    assert decide_kind("x", np.array([0, 0, 150, 0, 0, 40.0]), 60.0) == "categorical"
    assert decide_kind("x", np.array([0, 0, 200, 0, 0, 40.0]), 60.0) == "integer"
    assert decide_kind("x", np.array([0, 0, 189, 0, 0, 24.0]), 40.0) == "integer"
    assert decide_kind("x", np.array([0, 0, 100, 110, 0, 120.0]), 40.0) == "continuous"
    assert decide_kind("x", np.array([0, 0, 189, 60, 0, 120.0]), 40.0) == "integer"  # fractions in the noise
    assert decide_kind("x", np.array([0, 150, 0, 0, 0, 40.0]), 40.0) == "datetime"
    assert decide_kind("x", np.array([0, 150, 60, 0, 0, 40.0]), 40.0) == "categorical"  # dates not 3 std ahead


def test_roles_are_declarations_and_a_fit_with_them_runs(caplog):
    rng = np.random.default_rng(1)
    n = 1500
    frame = pd.DataFrame({"pid": np.repeat(np.arange(500), 3), "age": rng.integers(20, 80, n),
                          "churn": rng.choice(["yes", "no"], n)})
    with caplog.at_level("INFO", logger="synthkit.dp_schema"):
        model = DPTVAE(**{**TINY, "batch_size": 50}).fit(frame, budget=BUDGET, schema=None,
                                                         roles={"entity_key": "pid", "targets": ["churn"]})
    s = model.schema_
    assert s.entity_key == "pid" and s.column("pid").kind == "identifier" and s.targets == ("churn",)
    assert model.ledger_.unit == "entity"
    assert "synthkit schema infer" in caplog.text
    with pytest.raises(Exception, match="not a column"):
        DPTVAE(**TINY).fit(frame, budget=BUDGET, schema=None, roles={"entity_key": "nope"})


# ------------------------------------------------------------------ DPHMM: events + context
def _panel(n: int = 1500, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accounts (context) and their transactions (events) with one clear kind per column."""
    rng = np.random.default_rng(seed)
    accounts = pd.DataFrame({"acct": [f"A{i:05d}" for i in range(n)],
                             "age": rng.integers(18, 90, n),
                             "segment": rng.choice(["retail", "smb", "private"], n),
                             "vip": rng.choice(["yes", "no"], n),
                             "income": rng.gamma(3.0, 900.0, n).round(2)})
    lengths = rng.integers(1, 7, n)
    acct = np.repeat(accounts["acct"].to_numpy(), lengths)
    day = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, len(acct)), unit="D")
    events = pd.DataFrame({"acct": acct, "booked": day.strftime("%Y-%m-%d"),
                           "amount": rng.gamma(2.0, 40.0, len(acct)).round(2),
                           "items": rng.integers(1, 9, len(acct)),
                           "channel": rng.choice(["card", "transfer", "cash"], len(acct)),
                           "online": rng.choice(["true", "false"], len(acct))})
    return events, accounts


HMM_TINY = dict(epochs=1, context_epochs=1, batch_size=100, max_length=8, n_states=2, device="cpu",
                context_hidden=(16,), context_embedding_dim=8)
HMM_BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
ROLES = {"entity_key": "acct", "sequence_index": "booked"}


def test_dphmm_decides_event_and_context_kinds_under_dp_in_its_own_ledger():
    from synthkit import DPHMM
    events, accounts = _panel()
    model = DPHMM(**HMM_TINY).fit(events, budget=HMM_BUDGET, context=accounts, roles=ROLES)
    assert {c.name: c.kind for c in model.schema_.columns} == {
        "acct": "identifier", "booked": "datetime", "amount": "continuous", "items": "integer",
        "channel": "categorical", "online": "boolean"}
    assert (model.schema_.entity_key, model.schema_.sequence_index) == ("acct", "booked")  # declared roles
    assert {c.name: c.kind for c in model.context_schema_.columns} == {
        "acct": "identifier", "age": "integer", "segment": "categorical", "vip": "boolean", "income": "continuous"}

    ledger = model.ledger_
    # the two inference releases come first, before any other mechanism touches the data
    assert [e.name for e in ledger.events[:2]] == [EVENT, f"context:{EVENT}"]
    assert sum(e.name.endswith(EVENT) for e in ledger.events) == 2
    # entity = unit; one event per entity and one context row per entity: sensitivity sqrt(3d) (class, date class, distinct)
    share = PrivacyBudget(epsilon=HMM_BUDGET.epsilon * (model.preprocessing_epsilon_share
                                                        + model.context_epsilon_share), delta=HMM_BUDGET.delta)
    assert ledger.events[0] == inference_event(share, k=1, n_columns=5)
    assert ledger.events[0].sensitivity == pytest.approx(math.sqrt(3 * 5))
    assert ledger.events[1].sensitivity == pytest.approx(math.sqrt(3 * 4))
    assert ledger.events[1].sigma == inference_event(share, k=1, n_columns=4).sigma
    assert ledger.unit == "entity"
    assert ledger.epsilon_spent() <= HMM_BUDGET.epsilon * (1 + 1e-9)
    assert model.privacy_summary()["epsilon_spent"] <= HMM_BUDGET.epsilon * (1 + 1e-9)


def test_dphmm_refuses_a_budget_without_room_for_the_inference_before_reading_a_row(monkeypatch):
    from synthkit import DPHMM
    from synthkit import dp_schema
    from synthkit.errors import BudgetExceededError

    def read(*_a, **_k):
        raise AssertionError("the rows were read")

    monkeypatch.setattr(dp_schema, "_counts", read)
    events, accounts = _panel(n=200)
    model = DPHMM(**{**HMM_TINY, "preprocessing_epsilon_share": 0.45, "context_epsilon_share": 0.5,
                     "margins_epsilon_share": 0.0})  # shares that leave the inference no room
    with pytest.raises(BudgetExceededError, match="schema inference"):
        model.fit(events, budget=HMM_BUDGET, context=accounts, roles=ROLES)
    with pytest.raises(Exception, match="sequence_index"):  # roles are declared, never guessed
        DPHMM(**HMM_TINY).fit(events, budget=HMM_BUDGET, roles={"entity_key": "acct"})


def test_dphmm_sequence_index_gets_an_ordered_kind_even_from_too_few_cells():
    """Where the noise drowns the counts (a handful of entities), kinds fall back to
    categorical, but the declared index keeps an ordered kind so the fit can run."""
    from synthkit import DPHMM
    from synthkit.dp_schema import decide_index_kind
    from synthkit.ledger import PrivacyLedger
    events, accounts = _panel(n=12)
    model = DPHMM(**HMM_TINY)
    ledger = PrivacyLedger(budget=HMM_BUDGET, unit="entity", max_rows_per_unit=8)
    schema, ctx, planned = model._decide_kinds(events, schema=None, context=accounts, context_schema=None,
                                               roles={**ROLES, "context_columns": ()}, budget=HMM_BUDGET,
                                               ledger=ledger, rng=np.random.default_rng(0))
    assert schema.column("booked").kind in ("datetime", "integer", "continuous")
    assert schema.column("channel").kind == "categorical" and ctx.column("age").kind == "categorical"
    assert [e.name for e in ledger.events] == [EVENT, f"context:{EVENT}"] and len(planned) == 2
    # counts: boolean, date, whole, number, text, distinct
    assert decide_index_kind(np.array([0, 40, 3, -5, 2, 9.0])) == "datetime"
    assert decide_index_kind(np.array([0, -3, 40, 1, 2, 9.0])) == "integer"
    assert decide_index_kind(np.array([0, 2, 20, 30, 2, 9.0])) == "continuous"


def test_a_small_integer_column_is_rarely_continuous_or_labels():
    """A 205-row table at ε = 3 (melanoma's size; σ ≈ 34 per count): an all-integer column
    (a 0/1 flag, an age, a year) released 2,000 times with the noise of the inference. Main
    before this change (the control, run once): continuous 3.1% / 3.3% / 2.6% and labels
    6.5% / 5.2% / 5.5% of draws — a flag decided continuous got a range of the bin of 0 alone
    and came back as values near 1e-7. Now continuous ≤ 1% and labels ≤ 4% (measured 0–0.6% and
    2%), while a column of two-decimal values stays continuous."""
    from synthkit.dp_schema import N_COUNTS, _counts
    rng = np.random.default_rng(0)  # the test's own draws of the release's noise
    sigma = inference_event(PrivacyBudget(epsilon=3.0, delta=1e-6), k=1, n_columns=7).sigma
    assert 30 < sigma < 40
    columns = {"flag": rng.integers(0, 2, 205), "age": rng.integers(4, 95, 205),
               "year": rng.integers(1962, 1978, 205), "thickness": np.round(rng.gamma(1.5, 2.0, 205), 2)}
    for name, values in columns.items():
        exact = _counts(pd.Series(values))
        kinds = [decide_kind("x", exact + rng.normal(0.0, sigma, N_COUNTS), sigma) for _ in range(2000)]
        share = {k: kinds.count(k) / len(kinds) for k in set(kinds)}
        if name == "thickness":
            assert share.get("continuous", 0) >= 0.95, (name, share)
            continue
        assert share.get("continuous", 0) <= 0.01, (name, share)
        assert share.get("categorical", 0) <= 0.04, (name, share)
