"""The context of an entity: one row per entity with its static attributes, the number of
events kept (`__length__`) and the time of its first event (`__start__`), drawn jointly by
a DP table model (DPTVAE by default) — so length and start stay related to context.

The context model is a table model fitted on ONE ROW PER ENTITY in the SAME ledger as the
HMM; it may spend up to a cumulative (preprocessing + context) share of ε, checked by the
ledger."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from synthkit.ledger import PrivacyBudget, PrivacyLedger
from synthkit.models.base import Progress, Synthesizer
from synthkit.schema import Column, Schema
from synthkit.sequence import GroupedEvents, TimeAxis
from synthkit.table import Table

LENGTH = "__length__"
START = "__start__"
MAX_CONTEXT_CATEGORIES = 64  # a length or integer start with at most this many public values is categorical


def _length_start_columns(index_col: Column, *, length: int, min_length: int, nullable_start: bool,
                          numeric_context: bool = True,
                          start_labels: list[int] | None = None) -> tuple[Column, Column]:
    """The context model's length and start columns. Both are often spikes at a bound (a
    balanced panel: every length is max_length, every start the first year); a PUBLIC
    value set of at most MAX_CONTEXT_CATEGORIES values is therefore modelled as a
    categorical (exact spikes), else as an integer/continuous/datetime column.

    `numeric_context=False`: the start stays numeric, because DPTVAE's ghost clipping fails
    on a table with no numeric column (its σ parameter then gets no gradient).

    `start_labels`: the DP-released common first index values of an integer index without
    declared bounds (preprocess.release_common_starts); the start is then a categorical over
    them (a start that is none of them is put on the nearest, `context_frame`); where the
    start must stay numeric, an integer on their range."""
    if length - min_length + 1 <= MAX_CONTEXT_CATEGORIES:
        length_col = Column(name=LENGTH, kind="categorical", nullable=False,
                            categories=tuple(str(v) for v in range(min_length, length + 1)))
    else:
        length_col = Column(name=LENGTH, kind="integer", nullable=False, bounds=(min_length, length))
    b = index_col.bounds
    if start_labels and numeric_context:
        start_col = Column(name=START, kind="categorical", nullable=nullable_start,
                           categories=tuple(str(v) for v in start_labels))
        return length_col, start_col
    if start_labels:  # numeric, on the released starts' range (a unit bin per year: exact values)
        lo, hi = min(start_labels), max(start_labels)
        b = (lo, max(hi, lo + 1))
    if (numeric_context and index_col.kind == "integer" and b is not None
            and float(b[1]) - float(b[0]) + 1 <= MAX_CONTEXT_CATEGORIES):
        lo, hi = int(math.ceil(float(b[0]))), int(math.floor(float(b[1])))
        start_col = Column(name=START, kind="categorical", nullable=nullable_start,
                           categories=tuple(str(v) for v in range(lo, hi + 1)))
    else:
        start_col = Column(name=START, kind=index_col.kind, nullable=nullable_start, bounds=b)
    return length_col, start_col


def context_frame(grouped: GroupedEvents, roles: dict[str, Any], context_table: Table | None,
                  index: str, *, axis: TimeAxis, length_col: Column, start_col: Column) -> pd.DataFrame:
    """One row per entity: context columns, the kept length and the first event's time."""
    first = grouped.first_rows()
    if start_col.kind == "categorical":
        ticks = grouped.ticks[np.maximum(first, 0)] if len(grouped.ticks) else np.zeros(grouped.n_entities)
        values = np.round(ticks)
        known = np.array([float(c) for c in start_col.categories or ()])
        if len(known):  # DP-released starts: one that is none of them goes on the nearest
            values = known[np.abs(values[:, None] - known[None, :]).argmin(axis=1)]
        start = pd.Series([str(int(v)) if f >= 0 else None for v, f in zip(values, first)], dtype=object)
    else:
        start = grouped.events[index].iloc[np.maximum(first, 0)].reset_index(drop=True) if len(grouped.events) \
            else pd.Series([np.nan] * grouped.n_entities)
        start = start.where(pd.Series(first >= 0))
    names = [c.name for c in roles["context"]]
    if context_table is not None:
        base = context_table.frame[names].reset_index(drop=True)
    else:
        base = grouped.events[names].iloc[first].reset_index(drop=True)
    out = base.copy()
    out[LENGTH] = (grouped.lengths.astype(str).astype(object) if length_col.kind == "categorical"
                   else grouped.lengths.astype(np.int64))
    out[START] = start.reset_index(drop=True)
    return out


def fit_in_shared_ledger(ctx_model: Synthesizer, ctx_frame: pd.DataFrame, ctx_schema: Schema, *,
                         budget: PrivacyBudget | None, ledger: PrivacyLedger, context_target: float,
                         progress: Progress | None) -> None:
    """Fit the context model on one row per entity in the SAME ledger, up to the cumulative
    (preprocessing + context) share `context_target`; its events are labelled `context:`."""
    before = len(ledger.events)
    if budget is not None:
        view = PrivacyLedger(budget=PrivacyBudget(epsilon=min(context_target, budget.epsilon), delta=budget.delta),
                             unit="entity", max_rows_per_unit=1, events=ledger.events, notes=ledger.notes)
    else:
        view = ledger
    # DPHMM refused too few entities on its own DP count (`preprocess.bound_contributions`); the
    # context model's count, at a far smaller share (σ 73 against 31 on a 300-patient panel at
    # ε 3), must not refuse them again (session 13: the pbcseq-shaped panel was refused)
    ctx_model.units_judged_ = True
    ctx_model.fit(ctx_frame, budget=view.budget, schema=ctx_schema, ledger=view,
                  progress=(lambda stage, done, total: progress(f"context {stage}", done, total))
                  if progress else None)
    for i in range(before, len(ledger.events)):  # relabel only; the RDP of each event is unchanged
        ledger.events[i] = dataclasses.replace(ledger.events[i], name=f"context:{ledger.events[i].name}")
    ctx_model.ledger_ = ledger


def lengths_on_margin(ctx: pd.DataFrame, length_transform: Any, rng: np.random.Generator, *,
                      sigma: float | None = None, z: float = 2.0) -> pd.DataFrame:
    """A sampled context chunk whose `__length__` shares stay within `z` noise standard
    deviations (`sigma`, of the release: the ledger's event) of the DP counts the context
    model released for it (post-processing, free): a share outside that band is brought to
    its edge, the fewest rows moving (`rebalance`, one row per entity). Why: the context
    model draws the length jointly with the context and can drift off its own DP margin
    (rwm5yr, bench_hmm_quality at 15d2190: 8% length 0 where the data has none and the
    released count is at its floor), and the drawn length is every entity's number of
    events. Why a band and not the counts themselves: on a small panel the counts are
    noisier than the model (plm/Males, 272 people, sigma about 70 per length: calibrated
    onto them the length TVD went to 0.42). `sigma` None: onto the counts. Lengths modelled
    as an integer (a public range wider than MAX_CONTEXT_CATEGORIES) have no released
    counts and are left as drawn."""
    from synthkit.models.hmm.margins import rebalance
    from synthkit.transforms import NULL, OTHER, CategoricalTransform
    t = length_transform
    if not isinstance(t, CategoricalTransform) or not t.counts_ or ctx.empty:
        return ctx
    counts = np.array([0.0 if lab in (NULL, OTHER) else c for lab, c in zip(t.labels_, t.counts_)])
    if counts.sum() <= 0:
        return ctx
    codes = t.codes(ctx[LENGTH])
    p = counts / counts.sum()
    if sigma is not None:
        have = np.bincount(codes, minlength=len(p))[:len(p)] / len(codes)
        band = z * sigma / counts.sum()
        lo, hi = np.clip(p - band, 0.0, None), p + band
        q = np.clip(have, lo, hi)
        for _ in range(len(q) + 1):  # back to a sum of 1 inside the band (the released shares are in it)
            rest = 1.0 - q.sum()
            if abs(rest) < 1e-12:
                break
            room = hi - q if rest > 0 else q - lo
            q = np.clip(q + rest * room / room.sum(), lo, hi)
        if np.allclose(q, have):
            return ctx
        p = q
    out = ctx.copy()
    out[LENGTH] = t.to_series(rebalance(codes, p, rng)).to_numpy()
    return out


def lengths_on_histogram(ctx: pd.DataFrame, length_transform: Any, margin: list[float],
                         rng: np.random.Generator, *, min_length: int = 1) -> pd.DataFrame:
    """A sampled context chunk whose `__length__` follows `margin`, the DP length histogram
    over min_length..max_length (`preprocess.length_margin`: released as `length:max` by the fit, bins
    below its noise threshold cleared; post-processing, free). The context model's draws are
    moved onto it (the fewest rows move, `rebalance`, so a length stays with the context it
    was drawn with where it can), so a balanced panel comes back balanced and a length no
    entity has stays empty. Lengths modelled as an integer (a range wider than
    MAX_CONTEXT_CATEGORIES) keep their order: the k-th shortest drawn gets the margin's k-th
    quantile."""
    from synthkit.models.hmm.margins import rebalance
    from synthkit.transforms import CategoricalTransform
    m = np.clip(np.asarray(margin, dtype=float), 0.0, None)
    if ctx.empty or m.sum() <= 0:
        return ctx
    out = ctx.copy()
    if isinstance(length_transform, CategoricalTransform):
        t = length_transform
        p = np.array([m[int(lab) - min_length] if str(lab).isdigit() and 0 <= int(lab) - min_length < len(m) else 0.0
                      for lab in t.labels_])
        if p.sum() <= 0:
            return ctx
        out[LENGTH] = t.to_series(rebalance(t.codes(ctx[LENGTH]), p, rng)).to_numpy()
        return out
    drawn = pd.to_numeric(ctx[LENGTH], errors="coerce").fillna(float(min_length)).to_numpy(dtype=float)
    order = np.lexsort((rng.random(len(drawn)), drawn))  # ties in a random order
    cdf = np.cumsum(m) / m.sum()
    levels = (np.arange(len(drawn)) + 0.5) / len(drawn)
    new = np.empty(len(drawn), dtype=np.int64)
    new[order] = np.minimum(np.searchsorted(cdf, levels), len(m) - 1) + min_length
    out[LENGTH] = new
    return out
