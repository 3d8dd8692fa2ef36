"""Columns that move with time within an entity (age, experience, tenure, a cumulative
count): declared non-decreasing, or found so by a DP test, and made so at sampling
(post-processing, free).

Declared (`DPHMM(non_decreasing=("age",))`, `--non-decreasing age`): PUBLIC knowledge, never
read from the rows, no budget; a declared column skips the test.

Found (issue 18, no declaration needed; `release_trends`, ledger events `trends:*`): for
each other integer or continuous event column, three counts over the entities with two or
more kept events, and that count of entities itself, each a Gaussian of sensitivity 1 (the
unit is the entity: one person is in or out of each count, whatever their length):
- `changes`: the entities whose (non-missing, at least two) values are not all equal;
- `rises`: those of them whose values never fall. Why among the changing entities and not
  all: a 0/1 flag that most entities never leave "never falls" in nearly all of them
  (rwm5yr's `self`, 5% self-employed: 0.97), and forced non-decreasing it became an
  absorbing state (lag-1 0.98 against 0.83); among the entities that move, it falls in
  about half;
- `clock` (a numeric index only: year, wave, day number; not a datetime, whose ticks are in
  a time unit the column need not share): the entities whose value minus the index is the
  same at every non-missing event, a column that rises BY THE GAP (age by the years,
  experience by the years worked in a balanced panel).
A column is treated as clock-like when its noisy clock share (count / entities, post-
processing) clears `share_bar` (TREND_BAR = 0.95 less 1.64 std of the noisy share, at
least TREND_FLOOR = 0.8: a small panel's noise would otherwise fail a column that rises in
every entity one fit in three) and its count clears CLEAR_SIGMAS of its noise, else as
non-decreasing on the same rule for `rises` / `changes`. The shares and the decisions are kept
in the bundle (`training.trends`, shown by `synthkit inspect`), charged to the ledger.
At sampling a clock-like column keeps its value at each entity's first non-missing event
(drawn by the HMM, then mapped onto the column's DP margin like every other) and the later
ones are that value plus the index gap; a non-decreasing one is projected as below.

The HMM draws each event's value given its state and the previous value (AR emission), so
a drawn age may dip by a year where the real never does. The fix projects each entity's
drawn sequence onto the non-decreasing sequences: the mean of its running maximum
(forward, ≥ the draw) and of its running minimum taken backwards (≤ the draw). Both are
non-decreasing, so is their mean, and the two pulls roughly cancel, so the level of the
sequence (and the column's margin) is kept where a running maximum alone would drift
upwards. Missing values stay missing and are skipped; the values stay inside the range of
the entity's own draws, hence inside the column's DP or public bounds.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from synthkit.errors import ArtifactError, ConfigError
from synthkit.ledger import PrivacyBudget, PrivacyLedger
from synthkit.mechanisms import noisy_count
from synthkit.sequence import GroupedEvents

logger = logging.getLogger(__package__)  # the package's one logger: log lines keep their name

TREND_KINDS = ("integer", "continuous")
# relative tolerance of the clock test (`entity_trends`): 8 float32 ulps (2^-23 ≈ 1.2e-7 each)
CLOCK_RTOL = 1e-6
CLOCK_GAP_SHARE = 1e-3  # the clock tolerance's cap, a share of the index gap (see entity_trends)
PREFIX = "trends:"
TREND_BAR = 0.95  # the share of entities a column must reach to be treated as rising ...
BAR_SIGMAS = 1.64  # ... less this many std of the noisy share (one-sided 5%), ...
TREND_FLOOR = 0.8  # ... but never below this share
CLEAR_SIGMAS = 3.0  # and its noisy count must clear this many std of its noise


def share_bar(sigma: float, n_dp: float) -> float:
    """The bar a noisy share (noisy count / noisy count of entities, both of std `sigma`)
    must clear: TREND_BAR less BAR_SIGMAS std of the share at TREND_BAR (the delta method:
    σ·√(1 + bar²)/n), floored at TREND_FLOOR. A column whose true share is at least
    TREND_BAR passes about 95% of the time; on a large panel the bar is about TREND_BAR.
    Why not TREND_BAR itself: on plm/Males (270 entities with 2+ events, σ about 21) the
    share of a column that never falls in any entity cleared 0.95 in about 2 fits of 3."""
    sd = sigma * math.sqrt(1.0 + TREND_BAR ** 2) / max(n_dp, 1.0)
    return max(TREND_BAR - BAR_SIGMAS * sd, TREND_FLOOR)


def check_non_decreasing(names: Iterable[str], event_columns: Iterable[Any]) -> tuple[str, ...]:
    """The declared non-decreasing columns, checked against the event columns of the schema
    (names and kinds only, public): one line naming every column that cannot be one."""
    kinds = {c.name: c.kind for c in event_columns}
    names = tuple(names)
    problems = [f"{n!r} is not an event column" if n not in kinds else
                f"{n!r} is {kinds[n]}, not a number" for n in names if kinds.get(n) not in TREND_KINDS]
    if problems:
        raise ConfigError("--non-decreasing (non_decreasing) names columns that cannot rise with time: " + "; ".join(problems)
                          + f"; name integer or continuous event columns (allowed: {sorted(k for k, v in kinds.items() if v in TREND_KINDS)})")
    return names


def project_non_decreasing(x: np.ndarray) -> np.ndarray:
    """[n, T] values (NaN: missing or past an entity's end) → the same shape, non-decreasing
    along each row over its non-missing cells (see the module docstring)."""
    if x.size == 0:
        return x.copy()
    up = np.fmax.accumulate(x, axis=1)
    down = np.fmin.accumulate(x[:, ::-1], axis=1)[:, ::-1]
    return np.where(np.isnan(x), np.nan, 0.5 * (up + down))


def _entity_matrix(events: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(entity code, position) of each row of a decoded chunk (each entity's events
    together, in time order) and the [n, T] shape that holds them."""
    ent, _ = pd.factorize(events[key], sort=False)
    step = pd.Series(ent).groupby(ent).cumcount().to_numpy()
    return ent, step, (int(ent.max()) + 1, int(step.max()) + 1)


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _put(out: pd.DataFrame, name: str, y: np.ndarray, integer: bool) -> None:
    """Column `name` of `out` set to `y` (NaN: missing) in the column's dtype (Int64 with
    its nulls, int64, float64); whole numbers rounded half to even (monotone, no upward
    pull on the .5s)."""
    if integer:
        y = np.round(y)
    if isinstance(out[name].dtype, pd.api.extensions.ExtensionDtype):
        out[name] = pd.array(np.where(np.isnan(y), 0, y).astype("int64") if integer else y, dtype=out[name].dtype)
        out.loc[np.isnan(y), name] = pd.NA
    else:
        out[name] = y.astype(out[name].dtype)


def non_decreasing_events(events: pd.DataFrame, *, key: str, columns: dict[str, bool]) -> pd.DataFrame:
    """A decoded chunk (each entity's events together, in time order, as the decoder writes
    them) with each column of `columns` (name → integer?) made non-decreasing within each
    entity; the column keeps its dtype (Int64 with its nulls, int64, float64)."""
    if not columns or events.empty:
        return events
    ent, step, shape = _entity_matrix(events, key)
    out = events.copy()
    for name, integer in columns.items():
        x = np.full(shape, np.nan)
        x[ent, step] = _numbers(out[name])
        _put(out, name, project_non_decreasing(x)[ent, step], integer)
    return out


def clock_events(events: pd.DataFrame, *, key: str, index: str, columns: dict[str, bool],
                 bounds: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """A decoded chunk with each column of `columns` (name → integer?) made to rise by the
    index gap within each entity: its value at the entity's first non-missing event is
    kept, each later non-missing one is that value plus (index − the index there). A
    missing value stays missing; an entity without any keeps its nulls.

    `bounds` (name → the column's released or declared (lo, hi)): the first value is
    moved down to hi − the entity's index span, so its last value stays inside (an age of
    88 in 2000 would be 99 in 2011 against bounds (15, 90): session 11's review R); where
    the span is wider than the range, the values are clipped at hi."""
    if not columns or events.empty:
        return events
    ent, step, shape = _entity_matrix(events, key)
    t = np.full(shape, np.nan)
    t[ent, step] = _numbers(events[index])
    out = events.copy()
    for name, integer in columns.items():
        x = np.full(shape, np.nan)
        x[ent, step] = _numbers(out[name])
        present = ~np.isnan(x)
        first = np.argmax(present, axis=1)  # the first non-missing event (0 where none: all NaN below)
        rows = np.arange(shape[0])
        start, gap = x[rows, first], t - t[rows, first][:, None]
        lo_hi = (bounds or {}).get(name)
        if lo_hi is not None:
            lo, hi = float(lo_hi[0]), float(lo_hi[1])
            span = np.nanmax(np.where(present, gap, np.nan), axis=1, initial=0.0)
            start = np.maximum(np.minimum(start, hi - span), lo)
            if integer:
                start = np.floor(start)
        y = start[:, None] + gap
        if lo_hi is not None:
            y = np.clip(y, lo, hi)
        _put(out, name, np.where(present, y, np.nan)[ent, step], integer)
    return out


# ====================================================================== the DP test
def entity_trends(x: np.ndarray, ticks: np.ndarray | None, entity: np.ndarray,
                  n_entities: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per entity (rows in entity order, time order within one): (changes, changes and
    never falls, rises by the gap), each over its non-missing values and False with fewer
    than two of them. `ticks` None: no clock test (all False)."""
    keep = np.flatnonzero(~np.isnan(x))
    e, v = entity[keep], x[keep]
    enough = np.bincount(e, minlength=n_entities) >= 2
    pair = np.flatnonzero(e[1:] == e[:-1]) + 1  # kept rows with a kept predecessor in their entity
    falls = np.bincount(e[pair][v[pair] < v[pair - 1]], minlength=n_entities) > 0
    changes = enough & (np.bincount(e[pair][v[pair] != v[pair - 1]], minlength=n_entities) > 0)
    if ticks is None:
        return changes, changes & ~falls, np.zeros(n_entities, dtype=bool)
    tk = ticks[keep]
    d = v - tk
    # equal up to the precision the VALUES were stored with, not d's: an age exported as a
    # 4-byte float (Stata, SAS, SPSS) keeps about 7 digits, so age - year of one person
    # differs by up to ~4e-6 from one year to the next (sampleSelection/RandHIE's xage: 16%
    # of its people were "not rising by the gap" at rtol 1e-9, its DP clock share 0.80, so
    # it was only kept non-decreasing; 97% are at CLOCK_RTOL)
    # ... but never more than CLOCK_GAP_SHARE of the pair's own index gap (review R, s13: at
    # 1e-6 of values near 1.6e9, epoch seconds, the tolerance was ~1,600 s, and a booking time
    # = index + a 0-15 min delay "rose by the gap" in every entity); per pair, so one entity's
    # rows move only its own count (sensitivity 1 as before)
    scale = np.maximum(np.maximum(np.abs(v[pair]), np.abs(v[pair - 1])), 1.0)
    step = np.abs(tk[pair] - tk[pair - 1])
    tol = np.maximum(1e-9 * scale, np.minimum(CLOCK_RTOL * scale, CLOCK_GAP_SHARE * step))
    off = np.abs(d[pair] - d[pair - 1]) > tol
    return changes, changes & ~falls, enough & ~(np.bincount(e[pair][off], minlength=n_entities) > 0)


def n_trend_releases(columns: list[str], clock: bool) -> int:
    """The Gaussians `release_trends` charges: the entities, and two or three per column."""
    return 1 + len(columns) * (3 if clock else 2) if columns else 0


def release_trends(grouped: GroupedEvents, columns: list[str], *, clock: bool, sigma: float,
                   ledger: PrivacyLedger, rng: np.random.Generator) -> dict[str, Any]:
    """The DP test of the module docstring: {"released": {column: {"rises": share, "clock":
    share}}, "non_decreasing": [...], "clock": [...]} (shares, post-processing: rises / changes,
    clock / entities with two or more kept events, noisy counts; each count a Gaussian
    of sensitivity 1 and std `sigma`, 0 without a budget). Decisions on `share_bar` and
    CLEAR_SIGMAS."""
    multi = grouped.lengths >= 2
    n_dp = noisy_count(int(multi.sum()), sigma=sigma, sensitivity=1.0, name=f"{PREFIX}entities",
                       ledger=ledger, rng=rng)
    ticks = np.asarray(grouped.ticks, dtype=float) if clock else None
    bar = CLEAR_SIGMAS * sigma if ledger.private else 0.0
    out: dict[str, Any] = {"released": {}, "non_decreasing": [], "clock": []}
    for name in columns:
        stats = dict(zip(("changes", "rises", "clock"), entity_trends(
            _numbers(grouped.events[name]), ticks, grouped.entity, grouped.n_entities)))
        counts = {k: noisy_count(int(stats[k].sum()), sigma=sigma, sensitivity=1.0, name=f"{PREFIX}{name}:{k}",
                                 ledger=ledger, rng=rng) for k in ("changes", "rises", "clock") if clock or k != "clock"}
        of = {"rises": counts["changes"], "clock": n_dp}  # each share's denominator
        shares = {k: float(np.clip(counts[k] / max(of[k], 1.0), 0.0, 1.0)) for k in of if k in counts}
        out["released"][name] = {k: round(v, 4) for k, v in shares.items()}
        passed = [k for k in shares if of[k] >= 1 and shares[k] >= share_bar(sigma, of[k])
                  and counts[k] >= max(bar, 1.0)]
        if "clock" in passed:
            out["clock"].append(name)
        elif "rises" in passed:
            out["non_decreasing"].append(name)
    return out


def fit_trends(grouped: GroupedEvents, columns: list[str], *, clock: bool, budget: PrivacyBudget | None,
               ledger: PrivacyLedger, target: float, rng: np.random.Generator) -> dict[str, Any]:
    """Step 4d of DPHMM.fit: `release_trends` with σ such that the ledger's cumulative ε
    reaches `target` (a dry run on the ledger's accountant, before the rows are read).
    Empty without candidate columns or without room."""
    from synthkit.models.hmm.margins import margin_sigma
    n = n_trend_releases(columns, clock)
    if n == 0:
        return {}
    sigma = 0.0
    if budget is not None:
        sigma = margin_sigma(ledger, n_columns=n, sensitivity=1.0, target=target, prefix=PREFIX)
        if not math.isfinite(sigma):
            logger.warning("no budget left for the DP test of rising columns; only declared ones are enforced")
            return {}
    out = release_trends(grouped, columns, clock=clock, sigma=sigma, ledger=ledger, rng=rng)
    logger.info("rising event columns (DP test, %d counts, sigma=%.3f): clock-like %s, non-decreasing %s",
                n, sigma, out["clock"], out["non_decreasing"])
    if out["clock"] or out["non_decreasing"]:
        ledger.notes.append(f"rising event columns found by a DP test ({PREFIX}*, the entity as unit): rising by the "
                            f"index gap {out['clock']}, non-decreasing {out['non_decreasing']}; made so at sampling")
    return out


def restored_trends(value: Any, numeric: Iterable[str], where: str) -> dict[str, list[str]]:
    """A bundle's `training.trends` decisions: absent (bundles before it) or lists of
    integer or continuous event columns (`numeric`), no column in both."""
    if value is None:
        return {"non_decreasing": [], "clock": []}
    numeric = set(numeric)
    out = {k: (value.get(k) if isinstance(value, dict) else None) for k in ("non_decreasing", "clock")}
    if not all(isinstance(v, list) and all(isinstance(n, str) and n in numeric for n in v) for v in out.values()) \
            or set(out["non_decreasing"]) & set(out["clock"]):
        raise ArtifactError(f"bundle {where!r}: manifest field training.trends must list integer or continuous event "
                            "columns under non_decreasing and clock, none in both; re-fit the model or restore "
                            "the bundle from its source")
    return out
