"""A seeded train/holdout split the model never sees the holdout of.

The evaluation tells leakage from generalisation by comparing the synthetic data with
the rows the model trained on (train) and with rows it never saw (holdout). `synthkit fit
--holdout 0.2` splits before fitting and records HOW it split in the bundle — the
fraction, the seed, the unit and a fingerprint of the input — but never which rows went
where, nor how many rows there were (a count of private rows is not public). The
evaluation re-derives the same split from the same real data with the same function and
checks the fingerprint, so a reordered or different file is refused instead of silently
mixing training rows into the "holdout".

With an entity key the split is by entity: all rows of a patient or an account go to the
same side, because the privacy unit is the entity and an attack on one history must not
see part of it in train and part in holdout.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from synthkit.errors import ConfigError, DataValidationError

SPLIT_METHOD = "synthkit-holdout-v1"


def data_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 over the column names and the cells as text, in row order.

    Text, not pandas' binary hash, so that the same file read twice (or a frame whose
    integers became floats on the way) still matches as long as the values print alike.
    A whole-table hash reveals no cell; it only lets the evaluation confirm it was given
    the same data in the same order."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, frame.columns)).encode("utf-8"))
    for name in frame.columns:
        col = frame[name]
        text = col.astype("string").fillna("\x00NULL")
        h.update(b"\x1e")
        h.update(pd.util.hash_array(text.to_numpy(dtype=object), categorize=False).tobytes())
    return h.hexdigest()


def holdout_split(frame: pd.DataFrame, *, fraction: float, seed: int,
                  entity_key: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split `frame` into (train, holdout, record) with about `fraction` of the units held out.

    Units are rows, or entities when `entity_key` is set (all rows of an entity on one
    side). The permutation comes from `seed` alone (no data value seeds it); the record is
    JSON-able and holds only public facts: method, fraction, seed, unit, entity key name
    and a fingerprint of the input (see `data_fingerprint`)."""
    if not (isinstance(fraction, (int, float)) and 0 < float(fraction) < 1):
        raise ConfigError(f"holdout fraction must be in (0, 1), got {fraction!r}; 0.2 is typical")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"holdout seed must be an integer >= 0, got {seed!r}")
    if entity_key is not None and entity_key not in frame.columns:
        raise DataValidationError([f"entity_key {entity_key!r} is not a column of the data"])
    if entity_key is not None:
        codes, _ = pd.factorize(frame[entity_key], sort=False)
        if (codes < 0).any():
            raise DataValidationError([f"entity_key column {entity_key!r} has missing values"])
        n_units = int(codes.max()) + 1 if len(codes) else 0
    else:
        codes = np.arange(len(frame))
        n_units = len(frame)
    if n_units < 2:
        raise DataValidationError([f"a holdout needs at least 2 {'entities' if entity_key else 'rows'}"])
    n_hold = min(max(int(round(float(fraction) * n_units)), 1), n_units - 1)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    held_units = np.zeros(n_units, dtype=bool)
    held_units[rng.permutation(n_units)[:n_hold]] = True
    held = held_units[codes]
    record = {"method": SPLIT_METHOD, "fraction": float(fraction), "seed": int(seed),
              "unit": "entity" if entity_key else "row", "entity_key": entity_key,
              "data_sha256": data_fingerprint(frame)}
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True), record


def resplit(frame: pd.DataFrame, record: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Re-derive the (train, holdout) a bundle recorded, refusing data that is not the
    data the model was fitted on (different file, rows reordered or edited)."""
    if record.get("method") != SPLIT_METHOD:
        raise ConfigError(f"unknown holdout split method {record.get('method')!r}; this synthkit knows {SPLIT_METHOD!r}")
    train, holdout, again = holdout_split(frame, fraction=record["fraction"], seed=record["seed"],
                                          entity_key=record.get("entity_key"))
    if again["data_sha256"] != record.get("data_sha256"):
        raise DataValidationError([
            "the real data given to the evaluation is not the data the model was fitted on (its fingerprint "
            "differs: another file, or rows reordered or edited), so the recorded holdout cannot be re-derived; "
            "pass the exact file given to `synthkit fit`, or pass --holdout with a separate holdout file"])
    return train, holdout
