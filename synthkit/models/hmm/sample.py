"""Sampling and decoding (post-processing of DP state, free): hidden states and emissions
drawn from the HMM, vectorised over entities and sequential over time; terminal-event
masking; time reconstruction from the start and the gaps; events decoded back into the
columns' types."""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from synthkit.models.hmm.layout import Standardiser, gap_transform
from synthkit.models.hmm.network import HMMNet
from synthkit.models.hmm.trends import clock_events, non_decreasing_events
from synthkit.schema import Column, Schema
from synthkit.sequence import TimeAxis, reconstruct_ticks
from synthkit.table import render_datetimes
from synthkit.transforms import NULL, OTHER, CategoricalTransform, DataTransformer

logger = logging.getLogger(__package__)  # the package's one logger: log lines keep their name


class SequenceSample(NamedTuple):
    """One chunk of generated entities: the events table and the context table."""

    events: pd.DataFrame
    context: pd.DataFrame


def _draw(probs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One categorical draw per row of `probs` [n, k] (inverse CDF with a seeded generator)."""
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=g, device=probs.device) * cdf[:, -1:]
    return torch.clamp((cdf < u).sum(-1), max=probs.shape[-1] - 1)


def _gauss_gates(layout: dict[str, Any]) -> dict[int, tuple[int, int]]:
    """Gauss channel → (cat channel, code that enables it): a nullable column's value
    exists where its null indicator is 0; the log-gap where the gap is OTHER."""
    gauss_gate: dict[int, tuple[int, int]] = {}
    for e in layout["columns"]:
        if e["mode"] == "gaussian" and e["nullable"]:
            gauss_gate[e["gauss"]] = (e["null_cat"], 0)
    if layout["gap"] is not None:
        gauss_gate[layout["gap"]["gauss"]] = (layout["gap"]["cat"], len(layout["gap"]["labels"]))
    return gauss_gate


def sample_hmm(net: HMMNet, layout: dict[str, Any], c: torch.Tensor, lengths: np.ndarray, g: torch.Generator, *,
               terminal: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised over entities, sequential over time (AR emissions): states [n, T],
    categorical codes [n, T, C], standardised values [n, T, G]. The terminal value is
    forbidden before an entity's last event (post-processing): `terminal` is its (cat
    channel, code)."""
    n, t_max = len(lengths), int(lengths.max(initial=0))
    dev = c.device
    n_cat, n_g = net.n_cat, net.n_gauss
    cat = torch.zeros(n, t_max, n_cat, dtype=torch.long, device=dev)
    cat_valid = torch.zeros(n, t_max, n_cat, dtype=torch.bool, device=dev)
    z = torch.zeros(n, t_max, n_g, device=dev)
    z_valid = torch.zeros(n, t_max, n_g, dtype=torch.bool, device=dev)
    states = torch.zeros(n, t_max, dtype=torch.long, device=dev)
    if t_max == 0:
        return states.cpu().numpy(), cat.cpu().numpy(), z.cpu().numpy()
    log_start, log_trans = net.log_start_trans(c)
    trans = log_trans.exp()
    rows = torch.arange(n, device=dev)
    table = net.cat_log_table().exp() if n_cat else None
    stay = torch.sigmoid(net.stay_logit[:, :n_cat]) if n_cat else None
    mean, log_std = net.gauss_params()
    last = torch.from_numpy(lengths - 1).to(dev)
    gap = layout["gap"]
    gauss_gate = _gauss_gates(layout)
    for t in range(t_max):
        s_t = _draw(log_start.exp(), g) if t == 0 else _draw(trans[rows, states[:, t - 1]], g)
        states[:, t] = s_t
        for ch, (o, size) in enumerate(zip(net.cat_offsets, net.cat_sizes)):
            if gap is not None and ch == gap["cat"] and t == 0:
                continue  # no gap before a first event
            p = table[:, o:o + size][s_t]
            if t > 0:
                had = cat_valid[:, t - 1, ch].unsqueeze(-1)
                lam = stay[s_t, ch].unsqueeze(-1)
                onehot = nn.functional.one_hot(cat[:, t - 1, ch], size).to(p.dtype)
                p = torch.where(had, lam * onehot + (1 - lam) * p, p)
            if terminal is not None and terminal[0] == ch:
                p = p.clone()
                p[:, terminal[1]] = torch.where(t < last, torch.zeros_like(p[:, 0]), p[:, terminal[1]])
            cat[:, t, ch] = _draw(p, g)
            cat_valid[:, t, ch] = True
        if n_g:
            prev = z[:, t - 1] * z_valid[:, t - 1] if t > 0 else torch.zeros(n, n_g, device=dev)
            mu = mean[s_t] + net.ar_coef[:, :n_g][s_t] * prev
            eps = torch.randn(n, n_g, generator=g, device=dev)
            z[:, t] = mu + log_std.exp()[s_t] * eps
            valid = torch.ones(n, n_g, dtype=torch.bool, device=dev)
            for j, (ch, code) in gauss_gate.items():
                valid[:, j] = cat_valid[:, t, ch] & (cat[:, t, ch] == code)
            z_valid[:, t] = valid
    return states.cpu().numpy(), cat.cpu().numpy(), z.cpu().numpy()


def _floats_to_series(x: np.ndarray, column: Column, *, null: np.ndarray | None = None,
                      tz: str | None = None) -> pd.Series:
    """Decoded numbers in the column's type: integers stay integers (Int64 when nullable)."""
    null = np.zeros(len(x), dtype=bool) if null is None else null
    if column.kind == "integer":
        vals = np.round(x).astype("int64")
        if column.nullable:
            arr = pd.array(vals, dtype="Int64")
            arr[null] = pd.NA
            return pd.Series(arr)
        return pd.Series(vals)
    if column.kind == "datetime":
        out = pd.Series(np.round(x * 1e9).astype("int64").astype("datetime64[ns]"))
        out[null] = pd.NaT
        if tz:
            out = out.dt.tz_localize("UTC").dt.tz_convert(tz)
        return out
    x = x.astype(float).copy()
    x[null] = np.nan
    return pd.Series(x)


def fit_gaps(gaps: np.ndarray, lengths: np.ndarray, room: float, *, discrete: bool) -> np.ndarray:
    """Gaps [n, T] (gaps[:, 0] unused) shrunk so that each sequence spans at most `room`, the
    width of the index's PUBLIC window: post-processing of the drawn gaps, no data.

    Why: the length and the gaps are drawn apart (the length with the context, the gaps by
    the HMM), so a drawn 5-wave person in a 5-year survey may get a gap of 2 and run past
    the end of follow-up; cutting the overrun turned drawn 5s into 4s (a biased length
    distribution). Keeping the drawn length is worth more than keeping those few gaps
    exact: in an overrunning sequence, each gap's excess over the smallest gap (1 tick on a
    discrete axis, 0 otherwise) is scaled down by one factor so that the span equals the
    room (floored on a discrete axis, so the span never exceeds it). Sequences that fit are
    left as drawn; a sequence that cannot fit at all (more events than whole ticks in the
    window) is left to the cut."""
    n, t_max = gaps.shape
    if t_max < 2 or not np.isfinite(room):
        return gaps
    inner = np.arange(t_max)[None, :] < lengths[:, None]
    inner[:, 0] = False  # no gap before a first event
    floor = 1.0 if discrete else 0.0
    g = np.where(inner, gaps, 0.0)
    n_gaps = inner.sum(axis=1)
    span = g.sum(axis=1)
    spare = room - floor * n_gaps  # what the excesses may add up to
    excess = np.where(inner, g - floor, 0.0).sum(axis=1)
    fix = (span > room) & (spare >= 0) & (excess > 0)
    if not fix.any():
        return gaps
    scale = np.where(fix, spare / np.where(excess > 0, excess, 1.0), 1.0)
    shrunk = floor + (g - floor) * scale[:, None]
    if discrete:
        shrunk = np.floor(shrunk + 1e-9)
    out = gaps.copy()
    sel = fix[:, None] & inner
    out[sel] = shrunk[sel]
    return out


# ====================================================================== decoding
class Decoder:
    """Decoders derived from the DP state (post-processing), cached for sampling: the time
    axis, the standardised spaces of the Gaussian columns and of the log-gaps, the start's
    transform (a fallback for a missing start) and the terminal rule."""

    def __init__(self, *, layout: dict[str, Any], transformer: DataTransformer, schema: Schema,
                 context_schema: Schema, start_transform: Any, terminal_column: str | None,
                 terminal_value: Any, non_decreasing: tuple[str, ...] = (), clock: tuple[str, ...] = (),
                 index_end: int | None = None, gap_range_public: bool = False) -> None:
        self.layout = layout
        # the other gaps' range was not learned (preprocess.fit_gaps): draw released common gaps instead
        self.gap_range_public = bool(gap_range_public)
        # the index's window: its declared (public) bounds, else the DP last value of an
        # integer index (preprocess.release_index_end) above the released first values
        bounds = schema.column(layout["sequence_index"]).bounds
        self.window: tuple[float, float] | None = None
        if bounds is not None:
            self.window = tuple(float(b) for b in TimeAxis.from_dict(layout["axis"]).bound_ticks(bounds))
        elif index_end is not None:
            self.window = (_first_start(start_transform), float(index_end))
        else:  # the reach of the released starts and gaps (issue 18: gaps of 1e18 days overflowed int64)
            self.window = released_reach(start_transform, layout, TimeAxis.from_dict(layout["axis"]),
                                         common_only=self.gap_range_public)
        # columns that rise with time, declared (public) or found by the DP test: name → integer?
        # (see trends.py); a clock-like column rises by the index gap
        self.non_decreasing = {name: schema.column(name).kind == "integer" for name in non_decreasing}
        self.clock = {name: schema.column(name).kind == "integer" for name in clock}
        self.transformer = transformer
        self.schema = schema
        self.context_schema = context_schema
        self.axis = TimeAxis.from_dict(layout["axis"])
        self.scores = {e["name"]: Standardiser(transformer.transforms[e["name"]])
                       for e in layout["columns"] if e["mode"] == "gaussian"}
        self.gap_score = None
        if layout["gap"] is not None:
            self.gap_score = Standardiser(gap_transform(layout["gap"]["transform"]))
        self.start_t = start_transform
        self.terminal: tuple[int, int] | None = None
        if terminal_column is not None:
            entry = next(e for e in layout["columns"] if e["name"] == terminal_column)
            code = self.label_code(entry, terminal_value)
            if code is None:
                logger.info("the terminal value is not among the released labels of its column; nothing to enforce")
            else:
                self.terminal = (entry["cat"], code)

    def trends(self, events: pd.DataFrame) -> pd.DataFrame:
        """A decoded (and calibrated) chunk with the clock-like columns rising by the index gap
        and the non-decreasing ones (declared or found) non-decreasing within each entity
        (post-processing; the last step, so no later map undoes it)."""
        key = self.layout["entity_key"]
        bounds = {name: self.transformer.transforms[name].bounds_ for name in self.clock
                  if getattr(self.transformer.transforms.get(name), "bounds_", None) is not None}
        events = clock_events(events, key=key, index=self.layout["sequence_index"], columns=self.clock,
                              bounds=bounds)
        return non_decreasing_events(events, key=key, columns=self.non_decreasing)

    def draw_start(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Starts drawn from the DP marginal of __start__ (its released counts, or its mixture)."""
        t = self.start_t
        if isinstance(t, CategoricalTransform):
            labels = [lab for lab in t.labels_ if lab not in (NULL, OTHER)]
            counts = np.array([c for lab, c in zip(t.labels_, t.counts_) if lab not in (NULL, OTHER)]) + 1e-9
            return rng.choice(np.asarray(labels, dtype=float), size=n, p=counts / counts.sum())
        x = Standardiser(t).inverse(rng.standard_normal(n))
        return self.axis.to_ticks(_floats_to_series(x, t.column, tz=t.tz_))

    def label_code(self, entry: dict[str, Any], value: Any) -> int | None:
        """The code of `value` in a categorical or integer channel; None where it has none."""
        if entry["mode"] == "categorical":
            t = self.transformer.transforms[entry["name"]]
            v = str(value)
            if t.column.kind == "boolean":
                v = {"true": "True", "false": "False"}.get(v.lower(), v)
            return t.labels_.index(v) if v in t.labels_ else None
        if entry["mode"] == "integer":
            try:
                v = int(float(value))
            except (TypeError, ValueError):
                return None
            return v - entry["low"] if entry["low"] <= v <= entry["high"] else None
        return None

    def decode(self, ctx: pd.DataFrame, lengths: np.ndarray, start: np.ndarray, cat: np.ndarray, z: np.ndarray,
               entity_start: int, event_start: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(events, context) frames of a chunk: keys numbered from `entity_start` (entities)
        and `event_start` (event identifiers)."""
        lay = self.layout
        key, index = lay["entity_key"], lay["sequence_index"]
        n = len(lengths)
        keys = np.array([f"{key}-{i:09d}" for i in range(entity_start + 1, entity_start + n + 1)], dtype=object)
        ticks, mask, lengths = self._ticks(lengths, start, cat, z)
        ent = np.repeat(np.arange(n), lengths)
        # the index written in its format as the event columns' datetimes are (a US/EU date as
        # text, 'excel' as serial days); an ISO-written index keeps its datetime type (CSV
        # writes it as ISO text, which is read back as dates; Parquet keeps a timestamp)
        fmt = self.schema.column(index).format
        written = self.axis.from_ticks(ticks[mask])
        if fmt is not None and fmt != "iso" and not fmt.startswith("%Y-%m-%d"):
            written = render_datetimes(written, fmt)
        cols: dict[str, Any] = {key: pd.Series(keys[ent], dtype=object), index: written}
        for entry in lay["columns"]:
            cols[entry["name"]] = self.decode_column(entry, cat[mask], z[mask])
        for name in lay["context_columns"]:
            if not lay["two_tables"]:
                cols[name] = ctx[name].iloc[ent].reset_index(drop=True)
        for name in lay["event_ids"]:
            cols[name] = [f"{name}-{i:09d}" for i in range(event_start + 1, event_start + len(ent) + 1)]
        events = pd.DataFrame({c: (cols[c].reset_index(drop=True) if isinstance(cols[c], pd.Series) else cols[c])
                               for c in self.schema.names})
        context = pd.DataFrame({key: keys})
        for name in lay["context_columns"]:
            context[name] = ctx[name].reset_index(drop=True)
        for name in lay["context_ids"]:
            context[name] = [f"{name}-{i:09d}" for i in range(entity_start + 1, entity_start + n + 1)]
        return events, context[self.context_schema.names]

    def _ticks(self, lengths: np.ndarray, start: np.ndarray, cat: np.ndarray,
               z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ticks [n, T], mask of the kept events, lengths): the time of each event from the
        start and the gaps, inside the index's public bounds."""
        lay = self.layout
        n, t_max = len(lengths), cat.shape[1]
        mask = np.arange(t_max)[None, :] < lengths[:, None]
        # time: start, then gaps (common gaps exact; the others from the log-gap scores)
        gaps = np.zeros((n, t_max))
        gap = lay["gap"]
        if gap is not None and t_max:
            labels = np.asarray(gap["labels"], dtype=float)
            code = cat[:, :, gap["cat"]]
            other = code >= len(labels)
            gaps = labels[np.minimum(code, len(labels) - 1)] if len(labels) else np.zeros(code.shape)
            gaps = np.where(other, 0.0, gaps)
            if other.any() and self.gap_range_public and len(labels):
                # the other gaps' range was not learned (their values would be noise up to the
                # public e^41.6 ticks): a released common gap, picked by the drawn score's quantile
                from scipy.stats import norm
                q = norm.cdf(np.nan_to_num(z[:, :, gap["gauss"]][other]))
                gaps[other] = labels[np.minimum((q * len(labels)).astype(np.int64), len(labels) - 1)]
            elif other.any() and self.gap_range_public:
                # nor was any common gap released: one tick, so the index numbers the events
                # from their released start (0, 1, 2, ... after it) instead of spreading them
                # over noise up to e^41.6 ticks (pbcseq, session 11: `day` at 4.5e15 in 40% of
                # rows); fit_gaps logged the fix (--max-gap)
                gaps[other] = 1.0
            elif other.any():
                gaps[other] = np.exp(self.gap_score.inverse(z[:, :, gap["gauss"]][other]))
        gaps = np.nan_to_num(gaps, nan=0.0, posinf=0.0, neginf=0.0)  # a gap is never NaN (no NaN -> int cast)
        if self.axis.discrete:
            gaps = np.maximum(np.round(gaps), 1.0)
        else:
            gaps = np.maximum(gaps, 0.0)
        if self.window is not None and t_max > 1:
            lo, hi = self.window
            gaps = fit_gaps(gaps, lengths, hi - lo, discrete=self.axis.discrete)
        ticks = reconstruct_ticks(np.nan_to_num(start), gaps, lengths) if t_max else np.zeros((n, 0))
        if not self.axis.discrete and t_max > 1:  # strictly increasing even where a float gap underflows
            for t in range(1, t_max):
                ticks[:, t] = np.maximum(ticks[:, t], np.nextafter(ticks[:, t - 1], np.inf))
        if self.window is not None and t_max:
            # ordering rule: no event after the index's upper bound (end of follow-up: public,
            # or the DP last value). The gaps already fit the window (fit_gaps), so a sequence
            # that would run past it is moved earlier (not before the lower bound); only what
            # cannot fit at all (more events than whole ticks in the window, or a start before
            # the lower bound) is cut.
            lo, hi = self.window
            last_tick = ticks[np.arange(n), np.maximum(lengths - 1, 0)]
            shift = np.clip(np.minimum(last_tick - hi, ticks[:, 0] - lo), 0.0, None)
            ticks = ticks - shift[:, None]
            mask = mask & (ticks <= hi + 1e-9)
            lengths = mask.sum(axis=1)
        return ticks, mask, lengths

    def decode_column(self, entry: dict[str, Any], cat: np.ndarray, z: np.ndarray) -> pd.Series:
        """One event column from its channels, in the column's type."""
        t = self.transformer.transforms[entry["name"]]
        m = len(cat)
        if entry["mode"] == "categorical":
            block = np.zeros((m, len(t.labels_)), dtype=np.float32)
            block[np.arange(m), cat[:, entry["cat"]]] = 1.0
            return t.inverse_transform(block).reset_index(drop=True)
        if entry["mode"] == "integer":
            return integer_series(cat[:, entry["cat"]], entry)
        x = self.scores[entry["name"]].inverse(z[:, entry["gauss"]])
        null = (cat[:, entry["null_cat"]] == 1) if entry["nullable"] else np.zeros(m, dtype=bool)
        return _floats_to_series(x, t.column, null=null, tz=t.tz_)


def integer_series(codes: np.ndarray, entry: dict[str, Any]) -> pd.Series:
    """A small-range integer event column from its codes (code high - low + 1 is null)."""
    null = codes > entry["high"] - entry["low"]
    vals = (np.minimum(codes, entry["high"] - entry["low"]) + entry["low"]).astype("int64")
    if entry["nullable"]:
        arr = pd.array(vals, dtype="Int64")
        arr[null] = pd.NA
        return pd.Series(arr)
    return pd.Series(vals)


def tick_limit(axis: TimeAxis) -> float:
    """The largest |tick| an index value may take (public): 2**52 for a number, so that every
    whole tick up to it and one beyond is exact in a float (at 2**53, 2**53 + 1 rounded back
    onto the bound and made a tie); within datetime64[ns] (about the years 1700-2240) for dates."""
    if axis.kind == "datetime":
        return float(2**33) / (86_400.0 if axis.unit == "day" else 1.0)
    return float(2**52)


def released_reach(start_transform: Any, layout: dict[str, Any], axis: TimeAxis, *,
                   common_only: bool = False) -> tuple[float, float]:
    """The index's window where nothing declares it (DP state only): from the earliest
    released start to the latest plus (max_length - 1) times the widest released gap, inside
    ±`tick_limit`. Without it a gap range that could not be learned (a public range up to
    e^41.6 ticks) carried 20 events past int64 (pbcseq: `day` at ±9.2e18 in 31% of rows)."""
    limit = tick_limit(axis)
    lo, hi = _first_start(start_transform), _last_start(start_transform, axis)
    if axis.kind == "datetime" and getattr(start_transform, "labels_", None) is None and np.isfinite(lo):
        lo = float(axis.to_ticks(_floats_to_series(np.array([lo]), start_transform.column,
                                                   tz=start_transform.tz_))[0])  # seconds -> ticks
    widest = 1.0
    gap = layout.get("gap")
    if gap is not None and common_only:
        # sampling draws only these, or one tick where none was released (Decoder._ticks)
        widest = max([float(v) for v in gap.get("labels", [])], default=1.0)
    elif gap is not None:
        labels = [float(v) for v in gap.get("labels", [])]
        try:
            g_hi = float(gap_transform(gap["transform"]).bounds_[1])
            widest = max([*labels, float(np.exp(min(g_hi, 700.0))), 1.0])
        except (KeyError, TypeError, AttributeError):
            widest = max([*labels, limit])
    reach = hi + max(int(layout.get("max_length", 1)) - 1, 0) * widest
    lo = lo if np.isfinite(lo) else -limit
    reach = reach if np.isfinite(reach) else limit
    return max(lo, -limit), min(max(reach, lo), limit)


def _last_start(start_transform: Any, axis: TimeAxis) -> float:
    """The latest start the context model can draw (DP state only), in ticks: its largest
    whole label when categorical, its upper bound when numeric; inf when unknown."""
    labels = getattr(start_transform, "labels_", None)
    if labels is not None:
        finite = _numeric_labels(labels, whole=False)
        return max(finite) if finite else np.inf
    bounds = getattr(start_transform, "bounds_", None)
    if bounds is None:
        return np.inf
    if axis.kind == "datetime":
        x = np.array([float(bounds[1])])
        return float(axis.to_ticks(_floats_to_series(x, start_transform.column, tz=start_transform.tz_))[0])
    return float(bounds[1])


def _first_start(start_transform: Any) -> float:
    """The earliest start the context model can draw (DP state only): its smallest whole
    label when categorical (the released common starts), its lower bound when numeric."""
    labels = getattr(start_transform, "labels_", None)
    if labels is not None:
        whole = _numeric_labels(labels, whole=True)
        return min(whole) if whole else -np.inf
    bounds = getattr(start_transform, "bounds_", None)
    return float(bounds[0]) if bounds is not None else -np.inf


def _numeric_labels(labels: list[Any], *, whole: bool) -> list[float]:
    """The released start labels that read as finite numbers (whole ones only if `whole`);
    OTHER and NULL are skipped."""
    out = []
    for v in labels:
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue  # OTHER, NULL
        if np.isfinite(x) and (not whole or x == np.round(x)):
            out.append(x)
    return out
