"""The emission layout of the events and their encoding.

Per event, given its state: a categorical channel per categorical/boolean column, per
small-range integer column and per null indicator; a Gaussian channel per continuous
column in a DP-standardised space (mean and sd of the DP mixture of the core
NumericTransform); and the gap to the previous event — a categorical over DP-released
common gaps plus OTHER, whose log-gap is Gaussian in its own standardised space. The
channels are decided from DP state only; the same loop builds a fitted layout and checks a
loaded one."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from synthkit.schema import Column, Schema
from synthkit.sequence import GroupedEvents, TimeAxis
from synthkit.table import numeric_values, utc_seconds
from synthkit.transforms import CategoricalTransform, DataTransformer, NumericTransform

GAP = "__gap__"
GAP_WHAT = "the gaps between events (--max-gap)"  # how messages name the internal GAP column
GAP_EVENT = "gaps"  # and its ledger events (bounds:gaps, histogram:gaps, next to gaps:common)


class Standardiser:
    """z = (x − m)/s with m, s the mean and standard deviation of the DP mixture that the core
    NumericTransform fitted to a DP histogram (post-processing of DP state); values are
    clipped to the DP (or public) bounds, and `inverse` clips back into them.

    Why affine and not a normal-score (Φ⁻¹ of the DP CDF) map: a normal-score map squeezes
    the empty space between modes to nothing, so well-separated clusters become adjacent
    in z and the states' Gaussians overlap (transitions then come out biased). An affine
    map keeps the separation; skew and modes are left to the mixture over states.

    Integer columns are dequantised (x + U(−½, ½) before the map, rounding after): a spike
    such as "0 hospital visits" then covers an interval of z instead of a point, where a
    Gaussian would collapse onto it (an unbounded likelihood) instead of modelling dynamics."""

    def __init__(self, transform: NumericTransform) -> None:
        lo, hi = transform.bounds_
        self.integer = transform.column.kind == "integer"
        w, mu, sd = transform.weights_, transform.means_, transform.stds_
        self.mean = float(np.sum(w * mu))
        var = float(np.sum(w * (sd**2 + mu**2)) - self.mean**2)
        self.scale = math.sqrt(max(var, 1e-12)) if var > 0 else max(hi - lo, 1e-6)
        self.bounds = (lo - 0.5, hi + 0.5) if self.integer else (lo, hi)

    def forward(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if self.integer and rng is not None:
            x = np.round(x) + rng.uniform(-0.5, 0.5, size=np.shape(x))
        return (np.clip(x, *self.bounds) - self.mean) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(z) * self.scale + self.mean, *self.bounds)
        if self.integer:
            x = np.clip(np.round(x), self.bounds[0] + 0.5, self.bounds[1] - 0.5)
        return x


def _column_floats(column: Column, s: pd.Series) -> np.ndarray:
    """Numbers of a numeric column; datetimes as seconds since the epoch (UTC), as the core
    NumericTransform counts them."""
    if column.kind == "datetime":
        return utc_seconds(s, column.format)  # the declared (or DP-decided) format
    return numeric_values(s).to_numpy(dtype=float)


def _gap_keys(gaps: np.ndarray, axis: TimeAxis) -> np.ndarray:
    """Gap values as exact keys: whole ticks on a discrete axis, 6 significant digits otherwise."""
    if axis.discrete:
        return np.round(gaps)
    return np.array([float(f"{g:.6g}") for g in gaps]) if len(gaps) else np.zeros(0)


# ====================================================================== channels
def event_channels(event_cols: Iterable[Column], transformer: DataTransformer, *,
                   max_integer_categories: int) -> tuple[list[dict[str, Any]], list[int], int]:
    """(columns, cat_sizes, n_gauss) of the event columns, decided from DP state only (a
    NumericTransform whose DP integer range is small becomes a categorical over its values)."""
    cat_sizes: list[int] = []
    n_gauss = 0
    columns = []
    for col in event_cols:
        t = transformer.transforms[col.name]
        entry: dict[str, Any] = {"name": col.name, "kind": col.kind, "nullable": col.nullable}
        if isinstance(t, CategoricalTransform):
            entry.update(mode="categorical", cat=len(cat_sizes))
            cat_sizes.append(len(t.labels_))
        else:
            lo, hi = t.bounds_
            if col.kind == "integer" and hi - lo + 1 <= max_integer_categories:
                entry.update(mode="integer", cat=len(cat_sizes), low=int(lo), high=int(hi))
                cat_sizes.append(int(hi - lo + 1) + (1 if col.nullable else 0))
            else:
                entry.update(mode="gaussian", gauss=n_gauss)
                n_gauss += 1
                if col.nullable:
                    entry["null_cat"] = len(cat_sizes)
                    cat_sizes.append(2)
        columns.append(entry)
    return columns, cat_sizes, n_gauss


def build_layout(roles: dict[str, Any], transformer: DataTransformer, gap: dict[str, Any] | None, *,
                 axis: TimeAxis, length: int, min_length: int, two_tables: bool, schema: Schema,
                 max_integer_categories: int) -> dict[str, Any]:
    """The emission channels of the event columns, then the gap's (a categorical over the
    common gaps + OTHER, and a Gaussian for the OTHER log-gaps), and what decoding needs."""
    columns, cat_sizes, n_gauss = event_channels(roles["events"], transformer,
                                                 max_integer_categories=max_integer_categories)
    gap_entry = None
    if gap is not None:
        gap_entry = {"labels": gap["labels"], "cat": len(cat_sizes), "gauss": n_gauss,
                     "transform": gap["transform"].state_dict()}
        cat_sizes.append(len(gap["labels"]) + 1)
        n_gauss += 1
    return {"columns": columns, "cat_sizes": cat_sizes, "n_gauss": n_gauss, "gap": gap_entry,
            "axis": axis.to_dict(), "max_length": length, "min_length": min_length, "two_tables": two_tables,
            "entity_key": schema.entity_key, "sequence_index": schema.sequence_index,
            "context_columns": [c.name for c in roles["context"]], "event_ids": roles["event_ids"],
            "context_ids": roles["context_ids"]}


def layout_channels(event_cols: tuple[Column, ...], transformer: DataTransformer, gap: dict[str, Any] | None, *,
                    max_integer_categories: int) -> tuple[list[dict[str, Any]], list[int], int]:
    """(columns, cat_sizes, n_gauss) of the layout that `build_layout` builds from this DP
    state: what a loaded layout must equal."""
    columns, cat_sizes, n_gauss = event_channels(event_cols, transformer,
                                                 max_integer_categories=max_integer_categories)
    if gap is not None:
        if gap["cat"] != len(cat_sizes) or gap["gauss"] != n_gauss:
            raise ValueError("gap channels")
        cat_sizes.append(len(gap["labels"]) + 1)
        n_gauss += 1
    return columns, cat_sizes, n_gauss


def gap_transform(state: dict[str, Any]) -> NumericTransform:
    """The log-gaps' NumericTransform restored from the layout's DP state."""
    log_t = NumericTransform(Column(name=GAP, kind="continuous", nullable=False))
    log_t.load_state_dict(state)
    return log_t


# ====================================================================== encoding
def encode_events(grouped: GroupedEvents, transformer: DataTransformer, layout: dict[str, Any],
                  rng: np.random.Generator) -> np.ndarray:
    """Ragged per-event features [n_events, 2C + 2G] (see HMMNet)."""
    n = len(grouped.events)
    c, g = len(layout["cat_sizes"]), layout["n_gauss"]
    out = np.zeros((n, 2 * c + 2 * g), dtype=np.float32)
    frame = grouped.events
    for entry in layout["columns"]:
        _encode_column(out, entry, transformer.transforms[entry["name"]], frame[entry["name"]], c=c, g=g, rng=rng)
    if layout["gap"] is not None:
        _encode_gaps(out, grouped, layout["gap"], TimeAxis.from_dict(layout["axis"]), c=c, g=g)
    return out


def _encode_column(out: np.ndarray, entry: dict[str, Any], t: Any, s: pd.Series, *, c: int, g: int,
                   rng: np.random.Generator) -> None:
    """One event column into its channels of `out` (in place)."""
    n = len(out)
    if entry["mode"] == "categorical":
        codes = np.concatenate([t.transform(s.iloc[i:i + 100_000], rng).argmax(axis=1)
                                for i in range(0, max(n, 1), 100_000)]) if n else np.zeros(0)
        out[:, entry["cat"]] = codes
        out[:, c + entry["cat"]] = 1.0
    elif entry["mode"] == "integer":
        x = numeric_values(s).to_numpy(dtype=float)
        codes = np.clip(np.round(np.nan_to_num(x, nan=entry["low"])), entry["low"], entry["high"]) - entry["low"]
        if entry["nullable"]:
            codes = np.where(np.isnan(x), entry["high"] - entry["low"] + 1, codes)
        out[:, entry["cat"]] = codes
        out[:, c + entry["cat"]] = 1.0
    else:
        x = _column_floats(t.column, s)
        present = ~np.isnan(x)
        z = np.zeros(n)
        z[present] = Standardiser(t).forward(x[present], rng)
        out[:, 2 * c + entry["gauss"]] = z
        out[:, 2 * c + g + entry["gauss"]] = present
        if entry["nullable"]:
            out[:, entry["null_cat"]] = ~present
            out[:, c + entry["null_cat"]] = 1.0


def _encode_gaps(out: np.ndarray, grouped: GroupedEvents, gap: dict[str, Any], axis: TimeAxis, *,
                 c: int, g: int) -> None:
    """The gap to the previous event into its channels of `out` (in place): a common gap's
    code, else OTHER and the standardised log-gap; no gap before an entity's first event."""
    n = len(out)
    gaps = grouped.gaps()
    later = ~np.isnan(gaps)
    labels = np.asarray(gap["labels"], dtype=float)
    keys = _gap_keys(np.where(later, gaps, 0.0), axis)
    if len(labels):
        pos = np.clip(np.searchsorted(labels, keys), 0, len(labels) - 1)
        hit = later & (gaps > 0) & (labels[pos] == keys)
    else:
        pos, hit = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    code = np.where(hit, pos, len(labels))
    out[:, gap["cat"]] = np.where(later, code, 0)
    out[:, c + gap["cat"]] = later
    other = later & ~hit
    log_t = gap_transform(gap["transform"])
    z = np.zeros(n)
    if other.any():
        z[other] = Standardiser(log_t).forward(np.log(np.maximum(gaps[other], 1e-300)))
    out[:, 2 * c + gap["gauss"]] = z
    out[:, 2 * c + g + gap["gauss"]] = other


def widest_gap(gap_state: dict[str, Any] | None) -> float:
    """The widest gap the sampler can draw, from the gap model's DP state: its largest
    common gap or the top of the other gaps' DP (or public) log range; 0 without gaps."""
    if gap_state is None:
        return 0.0
    labels = [float(v) for v in gap_state.get("labels", [])]
    if gap_state.get("range_public"):  # the sampler draws only the common gaps, else one tick
        return max(labels, default=1.0)
    t = gap_state.get("transform")
    top = float(t.bounds_[1]) if t is not None and t.bounds_ is not None else -np.inf
    with np.errstate(over="ignore"):
        return max([*labels, float(np.exp(top))], default=0.0)
