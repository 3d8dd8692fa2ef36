"""Shared representations of real and synthetic rows for the metrics.

- `canonical`: one plain dtype per schema kind (numbers and datetimes as float, discrete
  values as strings, nulls as NaN/None), so a CSV read back and a frame from `sample`
  compare alike.
- `Encoder`: a normalised numeric space for distances (nearest neighbours, PRDC, modes,
  attacks): numeric columns scaled by the real TRAIN 1%–99% quantile range, discrete
  columns one-hot scaled by 1/√2 so that every column contributes at most about 1 to a
  squared distance (a Gower-like L2). Its fitted state (quantiles, category lists) is
  private and lives only in memory during the evaluation: it never enters the report.
- `ordinal`: features for gradient-boosted trees (detection, ML utility).
- `nearest`: chunked brute-force nearest neighbours. 50,000 × 50,000 rows fit in memory
  because only a (chunk × n_reference) block of distances exists at any time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthkit.schema import Column, Schema
from synthkit.table import boolean_values, numeric_values, utc_seconds

NULL_TOKEN = "\x00null"
MAX_ONE_HOT = 50
MAX_ORDINAL = 250
_CHUNK_CELLS = 8_000_000  # distances held at once (float32: 32 MB)


def evaluated_columns(schema: Schema) -> list[Column]:
    """Columns the model learned (identifiers and the entity key are surrogates)."""
    return [c for c in schema.learned_columns]


def is_numeric(col: Column) -> bool:
    return col.kind in ("continuous", "integer", "datetime")


def canonical(frame: pd.DataFrame, columns: list[Column]) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for col in columns:
        s = frame[col.name]
        if col.kind == "datetime":
            out[col.name] = pd.Series(utc_seconds(s, col.format), index=frame.index)  # declared/DP-decided format
        elif is_numeric(col):
            out[col.name] = numeric_values(s)
        elif col.kind == "boolean":
            b = boolean_values(s)
            out[col.name] = pd.Series(np.where(b.isna(), None, b.astype(str)), index=frame.index, dtype=object)
        else:
            text = s.astype("string")
            out[col.name] = pd.Series(np.where(text.isna(), None, text.to_numpy(dtype=object)),
                                      index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def row_keys(frame: pd.DataFrame, columns: list[Column]) -> np.ndarray:
    """A 64-bit hash per canonical row (numbers rounded to 6 decimals, so a value written
    to CSV and read back still matches itself)."""
    parts = []
    for col in columns:
        s = frame[col.name]
        if is_numeric(col):
            parts.append(pd.Series(np.round(s.to_numpy(dtype=float), 6)))
        else:
            parts.append(s.fillna(NULL_TOKEN).astype(str).reset_index(drop=True))
    if not parts:
        return np.zeros(len(frame), dtype=np.uint64)
    return pd.util.hash_pandas_object(pd.concat(parts, axis=1, keys=range(len(parts))), index=False).to_numpy()


class Encoder:
    """Normalised space fitted on the real TRAIN part (see module docstring)."""

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns

    def fit(self, real: pd.DataFrame) -> Encoder:
        self.scale_: dict[str, tuple[float, float, bool]] = {}
        self.categories_: dict[str, list[str]] = {}
        self.blocks_: dict[str, slice] = {}
        start = 0
        for col in self.columns:
            s = real[col.name]
            if is_numeric(col):
                x = s.to_numpy(dtype=float)
                ok = x[np.isfinite(x)]
                lo, hi = (np.quantile(ok, [0.01, 0.99]) if len(ok) else (0.0, 1.0))
                if not hi > lo:
                    lo, hi = (float(ok.min()), float(ok.max())) if len(ok) else (0.0, 1.0)
                if not hi > lo:
                    hi = lo + 1.0
                self.scale_[col.name] = (float(lo), float(hi), bool(col.nullable))
                width = 2 if col.nullable else 1
            else:
                counts = s.fillna(NULL_TOKEN).value_counts()
                self.categories_[col.name] = [str(v) for v in counts.index[:MAX_ONE_HOT]]
                width = len(self.categories_[col.name]) + 1  # + "other"
            self.blocks_[col.name] = slice(start, start + width)
            start += width
        self.width_ = start
        return self

    def transform(self, frame: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
        names = columns if columns is not None else [c.name for c in self.columns]
        blocks = []
        for name in names:
            s = frame[name]
            if name in self.scale_:
                lo, hi, nullable = self.scale_[name]
                x = s.to_numpy(dtype=float)
                z = np.clip((x - lo) / (hi - lo), -1.0, 2.0)
                missing = ~np.isfinite(z)
                z[missing] = 0.0
                block = [z[:, None]]
                if nullable:
                    block.append(missing[:, None].astype(float))
                blocks.append(np.hstack(block))
            else:
                cats = self.categories_[name]
                index = {c: i for i, c in enumerate(cats)}
                codes = s.fillna(NULL_TOKEN).astype(str).map(index).fillna(len(cats)).to_numpy(dtype=np.int64)
                onehot = np.zeros((len(s), len(cats) + 1), dtype=np.float32)
                onehot[np.arange(len(s)), codes] = 1.0 / np.sqrt(2.0)
                blocks.append(onehot)
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)


def ordinal(frame: pd.DataFrame, columns: list[Column], reference: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Tree features: numbers as they are (NaN kept), discrete values as codes of the
    reference's most frequent categories (rarer ones share one code). Returns (X, is_categorical)."""
    cols, is_cat = [], []
    for col in columns:
        if is_numeric(col):
            cols.append(frame[col.name].to_numpy(dtype=float))
            is_cat.append(False)
        else:
            cats = reference[col.name].fillna(NULL_TOKEN).value_counts().index[:MAX_ORDINAL - 1]
            index = {c: i for i, c in enumerate(cats)}
            codes = frame[col.name].fillna(NULL_TOKEN).astype(str).map(index).fillna(len(cats))
            cols.append(codes.to_numpy(dtype=float))
            is_cat.append(True)
    if not cols:
        return np.zeros((len(frame), 0)), np.zeros(0, dtype=bool)
    return np.column_stack(cols), np.asarray(is_cat, dtype=bool)


def nearest(query: np.ndarray, reference: np.ndarray, *, k: int = 1,
            exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and indices of the `k` nearest reference rows of each query row.

    Brute force in chunks of query rows (BLAS matrix products), so memory is bounded by
    `_CHUNK_CELLS` distances whatever the sizes. `exclude_self` drops the j == i match
    when query and reference are the same array (PRDC radii)."""
    q = np.ascontiguousarray(query, dtype=np.float32)
    r = np.ascontiguousarray(reference, dtype=np.float32)
    n, m = len(q), len(r)
    if m < k + (1 if exclude_self else 0):
        raise ValueError("fewer reference rows than neighbours asked for")
    r_sq = np.einsum("ij,ij->i", r, r)
    dist = np.empty((n, k), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)
    chunk = max(1, _CHUNK_CELLS // max(m, 1))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        qc = q[start:stop]
        d2 = r_sq[None, :] - 2.0 * (qc @ r.T)
        d2 += np.einsum("ij,ij->i", qc, qc)[:, None]
        if exclude_self:
            d2[np.arange(stop - start), np.arange(start, stop)] = np.inf
        if k == 1:
            best = np.argmin(d2, axis=1)[:, None]
        else:
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
            order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1)
            best = np.take_along_axis(part, order, axis=1)
        dist[start:stop] = np.take_along_axis(d2, best, axis=1)
        idx[start:stop] = best
    np.maximum(dist, 0.0, out=dist)
    return np.sqrt(dist), idx
