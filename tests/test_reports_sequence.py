"""Sequence metrics and entity-level attacks on entity + events data (no model trained:
the synthetic histories are built directly from a known generator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import reports
from synthkit.schema import Schema

SCHEMA = Schema.from_dict({
    "entity_key": "pid", "sequence_index": "t", "context_columns": ["sex"], "sensitive": ["sex"],
    "columns": {"pid": {"kind": "identifier", "nullable": False}, "t": {"kind": "continuous", "nullable": False},
                "sex": {"kind": "categorical", "categories": ["f", "m"]},
                "state": {"kind": "categorical", "categories": ["well", "ill", "acute"]}, "lab": "continuous"}})
P = np.array([[0.8, 0.15, 0.05], [0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])


def histories(n_entities: int, seed: int, *, prefix: str = "p", markov: bool = True, ar: float = 0.8,
              mean_len: float = 6.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n_entities):
        length = 1 + rng.poisson(mean_len - 1)
        sex = "f" if rng.random() < 0.6 else "m"
        s, lab, t = 0, rng.normal(), 0.0
        for _ in range(length):
            t += rng.exponential(30.0)
            rows.append((f"{prefix}{e}", t, sex, ["well", "ill", "acute"][s], lab + (s == 2) * 2))
            s = rng.choice(3, p=P[s]) if markov else rng.choice(3, p=[0.6, 0.27, 0.13])
            lab = ar * lab + np.sqrt(1 - ar**2) * rng.normal()
    return pd.DataFrame(rows, columns=["pid", "t", "sex", "state", "lab"])


@pytest.fixture(scope="module")
def parts():
    return histories(400, 1, prefix="a"), histories(400, 2, prefix="b")


def run(train, hold, syn):
    return reports.evaluate(real=train, synthetic=syn, holdout=hold, schema=SCHEMA, seed=0)


def test_independent_histories_score_near_ideal_and_copies_leak(parts):
    train, hold = parts
    ind = run(train, hold, histories(400, 3, prefix="s"))
    assert ind.data["kind"] == "sequence" and ind.data["unit"] == "entity"
    assert ind.metric("sequence.length_similarity").value > 0.9
    assert ind.metric("sequence.inter_event_time_similarity").value > 0.93
    assert ind.metric("sequence.step_marginals").value > 0.85
    assert ind.metric("sequence.autocorrelation_difference").value < 0.06
    assert ind.metric("sequence.transition_similarity").value > 0.9
    assert ind.metric("sequence.ordering_violations").value == 0.0
    assert ind.metric("privacy.exact_copies.rate").value == 0.0
    assert abs(ind.metric("privacy.membership_inference.auc").value - 0.5) < 0.08
    # a copy of the training histories (new surrogate ids): whole histories copied, attacks succeed
    cp = train.assign(pid="s" + train["pid"])
    rc = run(train, hold, cp)
    assert rc.metric("privacy.exact_copies.rate").value == 1.0
    assert rc.metric("privacy.membership_inference.auc").value > 0.99
    assert rc.metric("privacy.dcr.train_closer_share").value > 0.99
    assert rc.metric("privacy.membership_inference.auc").details["members"] == 400  # units are entities


def test_broken_dynamics_are_caught(parts):
    train, hold = parts
    ind = run(train, hold, histories(400, 3, prefix="s"))
    # no memory: states drawn from their marginal, lab values independent from step to step
    flat = run(train, hold, histories(400, 3, prefix="s", markov=False, ar=0.0))
    assert flat.metric("sequence.autocorrelation_difference").value > 0.5
    assert flat.metric("sequence.transition_similarity").value < ind.metric("sequence.transition_similarity").value - 0.1
    short = run(train, hold, histories(400, 3, prefix="s", mean_len=3.0))
    assert short.metric("sequence.length_similarity").value < 0.75


def test_ordering_and_context_violations(parts):
    train, hold = parts
    syn = histories(200, 4, prefix="s")
    bad = syn.copy()
    first = bad.groupby("pid").head(2).index
    # reverse the first two events of every 4th entity, change the context of every 5th
    ids = bad["pid"].unique()
    for e in ids[::4]:
        i = bad.index[bad["pid"] == e][:2]
        if len(i) == 2:
            bad.loc[i, "t"] = bad.loc[i[::-1], "t"].to_numpy()
    n_swapped = sum(int((bad["pid"] == e).sum() >= 2) for e in ids[::4])
    for e in ids[::5]:
        i = bad.index[bad["pid"] == e]
        if len(i) >= 2:
            bad.loc[i[-1], "sex"] = "m" if bad.loc[i[-1], "sex"] == "f" else "f"
    r = run(train, hold, bad)
    assert r.metric("sequence.ordering_violations").value == pytest.approx(n_swapped / len(ids))
    checks = {e["description"]: e["success"] for e in r.validation["expectations"]}
    assert checks["events of each pid are contiguous and in t order"] is False
    assert any("consistent entity record" in k and v is False for k, v in checks.items())
    ok = run(train, hold, syn)
    assert ok.validation["success"] is True
