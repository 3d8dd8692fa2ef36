"""DPHMM finds rising event columns under DP, with no declaration (issue 18, session 11).

For each undeclared integer or continuous event column the fit releases, with the entity
as the unit, the entities whose values never fall and those whose value minus the index is
constant ("rises by the gap"); a column that clears the bar is made so at sampling
(synthkit.models.hmm.trends).

Negative control, run once on the code before (df40585): `test_age_rises_by_the_gap`
failed there on its main assertion (no DP test: the generated ages rose by the gap in
0.17% of the entities, 1 of 600, not >= 95%); its bracket (the real panel's share) passed
on both. `test_neighbouring_panels_...` has nothing to run there (no `release_trends`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit import DPHMM, PrivacyBudget, Schema
from synthkit.ledger import PrivacyLedger
from synthkit.schema import Column

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)


def _panel(n: int, *, clock: bool, seed: int = 0) -> pd.DataFrame:
    """n people, 3 to 6 events over 2000-2011 with gaps of 1 or 2 years; `age` is birth age
    plus the years since 2000 (clock) or a level plus noise that falls in most entities;
    `visits` a count that goes up and down."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        years = 2000 + np.cumsum(np.r_[0, rng.integers(1, 3, rng.integers(2, 6))])
        base = int(rng.integers(20, 60))
        age = base + (years - 2000) if clock else base + rng.integers(-3, 4, len(years))
        for y, a in zip(years, age):
            rows.append((f"P{i:04d}", int(y), int(a), int(rng.poisson(2.0))))
    return pd.DataFrame(rows, columns=["pid", "year", "age", "visits"])


SCHEMA = Schema(columns=(
    Column(name="pid", kind="identifier", nullable=False),
    Column(name="year", kind="integer", nullable=False, bounds=(2000, 2011)),
    Column(name="age", kind="integer", nullable=False, bounds=(15, 90)),
    Column(name="visits", kind="integer", nullable=False, bounds=(0, 12)),
), entity_key="pid", sequence_index="year")


def _rises_by_gap(events: pd.DataFrame) -> float:
    """The share of multi-event entities whose age minus year is constant."""
    d = events.assign(off=pd.to_numeric(events["age"]) - pd.to_numeric(events["year"]))
    g = d.groupby("pid")["off"]
    multi = g.size() >= 2
    return float((g.nunique()[multi] == 1).mean())


def _fit(events: pd.DataFrame) -> DPHMM:
    return DPHMM(n_states=3, epochs=2, batch_size=128, context_epochs=3, context_batch_size=128, device="cpu",
                 seed=0).fit(events, schema=SCHEMA, budget=BUDGET)


def test_age_rises_by_the_gap():
    """600 people whose age rises by the year gap (1 or 2): found clock-like under DP, and
    >= 95% of the generated entities rise by the gap (the control panel, whose age falls in
    most people, is not forced: under 50% there, and nothing found)."""
    real = _panel(600, clock=True)
    assert _rises_by_gap(real) == 1.0  # bracket: the panel is what it says
    model = _fit(real)
    out = model.sample(600, seed=1)
    assert _rises_by_gap(out) >= 0.95
    assert model.trends_["clock"] == ["age"]
    assert "visits" not in model.trends_["clock"] + model.trends_["non_decreasing"]
    assert any(e.name == "trends:age:clock" for e in model.ledger_.events)
    assert model.training_["trends"]["released"]["age"]["clock"] >= 0.9  # the DP share is in the bundle

    control = _panel(600, clock=False, seed=1)
    assert _rises_by_gap(control) <= 0.05  # bracket: the control's ages do not move with the year
    model = _fit(control)
    assert "age" not in model.trends_["clock"] + model.trends_["non_decreasing"]
    assert _rises_by_gap(model.sample(600, seed=1)) < 0.5


def test_neighbouring_panels_move_each_count_by_at_most_one(monkeypatch):
    """Adding one entity (clock-like, falling, single-event, with nulls) to a panel moves
    each released count by at most 1 (sensitivity 1): the exact counts `release_trends`
    hands to the mechanism (recorded by name; a ledger without budget adds no noise)."""
    from synthkit.models.hmm import trends
    from synthkit.sequence import TimeAxis, group_events

    axis = TimeAxis.for_column(SCHEMA.column("year"))
    base = _panel(80, clock=True, seed=3)
    extra = [pd.DataFrame({"pid": "X", "year": [2000, 2001, 2003], "age": [30, 31, 33], "visits": [1, 0, 2]}),
             pd.DataFrame({"pid": "X", "year": [2000, 2001], "age": [30, 29], "visits": [1, 1]}),
             pd.DataFrame({"pid": "X", "year": [2000], "age": [30], "visits": [1]}),
             pd.DataFrame({"pid": "X", "year": [2000, 2001, 2002], "age": [30, None, 32], "visits": [3, 2, 1]})]
    seen: dict[str, float] = {}
    real_count = trends.noisy_count

    def recording(n, **kw):
        seen[kw["name"]] = float(n)
        return real_count(n, **kw)

    monkeypatch.setattr(trends, "noisy_count", recording)

    def counts(frame: pd.DataFrame) -> dict[str, float]:
        seen.clear()
        g = group_events(frame, entity_key="pid", axis=axis, index="year", max_length=None)
        trends.release_trends(g, ["age", "visits"], clock=True, sigma=0.0,
                              ledger=PrivacyLedger(budget=None, unit="entity"), rng=np.random.default_rng(0))
        return dict(seen)

    before = counts(base)
    assert len(before) == 7  # the entities, and three counts per column
    assert before["trends:age:clock"] == before["trends:entities"]  # bracket: every base entity is clock-like
    moved = set()
    for e in extra:
        after = counts(pd.concat([base, e], ignore_index=True))
        for k in before:
            assert abs(after[k] - before[k]) <= 1, k
            if after[k] != before[k]:
                moved.add(k)
    assert {"trends:age:clock", "trends:age:rises", "trends:age:changes", "trends:entities"} <= moved  # tight


def test_the_bar_follows_the_noise():
    """The share bar is 0.95 on a large panel and lower, down to 0.8, where the noisy share
    is noisy (plm/Males: about 270 entities with 2+ events, sigma about 21); a column whose
    true share is 0.95 or more then passes in about 95% of fits, one under 0.8 in none."""
    from synthkit.models.hmm.trends import TREND_FLOOR, share_bar
    assert share_bar(21.0, 1e6) == pytest.approx(0.95, abs=1e-4)
    assert share_bar(0.0, 270) == 0.95  # no noise (no budget): the bar itself
    assert share_bar(21.0, 270) == TREND_FLOOR
    rng = np.random.default_rng(0)
    n, sigma = 3000, 21.0
    for true, lo, hi in ((1.0, 0.97, 1.0), (0.95, 0.93, 0.98), (0.75, 0.0, 0.0)):
        e1, e2 = rng.normal(0, sigma, 20000), rng.normal(0, sigma, 20000)
        nd = n + e2
        passed = ((true * n + e1) / nd >= np.array([share_bar(sigma, x) for x in nd])).mean()
        assert lo <= passed <= hi, (true, passed)


def test_a_bundle_s_trends_are_checked():
    """training.trends from a bundle: absent (older bundles) is nothing found; lists of
    numeric event columns pass; a forged name, a non-list or a column in both is refused."""
    from synthkit.errors import ArtifactError
    from synthkit.models.hmm.trends import restored_trends
    assert restored_trends(None, ["age"], "b") == {"non_decreasing": [], "clock": []}
    ok = {"released": {}, "non_decreasing": ["visits"], "clock": ["age"]}
    assert restored_trends(ok, ["age", "visits"], "b") == {"non_decreasing": ["visits"], "clock": ["age"]}
    for bad in ({"non_decreasing": [], "clock": ["pid"]}, {"non_decreasing": "age", "clock": []},
                {"non_decreasing": ["age"], "clock": ["age"]}, ["age"]):
        with pytest.raises(ArtifactError, match="training.trends"):
            restored_trends(bad, ["age", "visits"], "b")


def test_a_persistent_flag_is_not_made_monotone():
    """A 0/1 flag that 92% of the entities never leave, 4% switch on and 4% off: it never
    falls in 96% of them, but among the entities that move it falls in half, so it is not
    made non-decreasing (that would make the flag an absorbing state); age, rising in all,
    is. Control, run once on 82f9c29 (share of entities that never fall): the flag was
    found non-decreasing there (exact counts, no budget)."""
    from synthkit.models.hmm.trends import release_trends
    from synthkit.sequence import TimeAxis, group_events
    n, t = 500, 4
    flag = np.zeros((n, t), dtype=int)
    flag[:20, 2:] = 1   # switch on
    flag[20:40, :2] = 1  # switch off
    frame = pd.DataFrame({"pid": np.repeat(np.arange(n), t), "year": np.tile(np.arange(2000, 2000 + t), n),
                          "age": np.repeat(np.arange(n) % 40 + 20, t) +
                          np.tile(np.arange(t), n), "flag": flag.ravel()})
    assert (np.diff(flag, axis=1) >= 0).all(axis=1).mean() == pytest.approx(0.96)  # bracket
    g = group_events(frame, entity_key="pid", axis=TimeAxis.for_column(SCHEMA.column("year")), index="year",
                     max_length=None)
    out = release_trends(g, ["age", "flag"], clock=True, sigma=0.0, ledger=PrivacyLedger(budget=None, unit="entity"),
                         rng=np.random.default_rng(0))
    assert out["clock"] == ["age"]
    assert "flag" not in out["non_decreasing"]


def test_a_clock_column_stays_inside_its_range():
    """Session 11's review R: a clock-like column's later values are its first value plus
    the index gap, with no bound (an age of 88 in 2000 became 99 in 2011 against bounds
    (15, 90)). The first value now moves down so the last one stays inside; the entity
    still rises by the gap. Negative control: without `bounds` (the code before) the last
    age is 99."""
    import pandas as pd

    from synthkit.models.hmm.trends import clock_events
    events = pd.DataFrame({"id": [1] * 4 + [2] * 3, "year": [2000, 2003, 2007, 2011, 2001, 2002, 2003],
                           "age": [88, 70, 71, 72, 30, 10, 50]})
    free = clock_events(events, key="id", index="year", columns={"age": True})
    assert free["age"].tolist()[3] == 99  # the control: out of range
    kept = clock_events(events, key="id", index="year", columns={"age": True}, bounds={"age": (15.0, 90.0)})
    ages = kept["age"].tolist()
    assert ages[:4] == [79, 82, 86, 90], ages  # rises by the gap, last at the top
    assert ages[4:] == [30, 31, 32], ages  # an entity inside the range keeps its first value
    assert kept["age"].dtype == events["age"].dtype
