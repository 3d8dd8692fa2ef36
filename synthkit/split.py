"""A seeded train/holdout split the model never sees the holdout of.

The evaluation tells leakage from generalisation by comparing the synthetic data with
the rows the model trained on (train) and with rows it never saw (holdout). `synthkit fit
--holdout 0.2` splits before fitting and records HOW it split in the bundle — the
fraction, the seed, the unit and a KEYED fingerprint of the input — but never which rows
went where, nor how many rows there were (a count of private rows is not public). The
evaluation re-derives the same split from the same real data with the same function and
checks the fingerprint, so a reordered or different file is refused instead of silently
mixing training rows into the "holdout".

The fingerprint is an HMAC-SHA256 whose key stays on the machine that fitted
(`$SYNTHKIT_HOME/holdout.key`, default `~/.synthkit`, created with mode 0600; the bundle
names it by a key id only). A plain hash of the whole table would let anyone who knows all
rows but one test candidate values of the last one against it; without the key the
fingerprint says nothing. Evaluate where the model was fitted (or copy the key file along
with the work directory, never with the bundle).

With an entity key the split is by entity: all rows of a patient or an account go to the
same side, because the privacy unit is the entity and an attack on one history must not
see part of it in train and part in holdout.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthkit.errors import ConfigError, DataValidationError

SPLIT_METHOD = "synthkit-holdout-v2"
KEY_FILE = "holdout.key"


def synthkit_home() -> Path:
    """The work directory for what must never leave the machine (`$SYNTHKIT_HOME`, default ~/.synthkit)."""
    return Path(os.environ.get("SYNTHKIT_HOME") or Path.home() / ".synthkit").expanduser()


def holdout_key() -> tuple[str, bytes]:
    """(key id, key) of this machine's fingerprint key, created on first use (32 random
    bytes, mode 0600, written whole before it appears under its name)."""
    home = synthkit_home()
    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = home / f".{KEY_FILE}.{secrets.token_hex(8)}.partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # atomic; a concurrent first use keeps the key that landed first
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) != 32:
        raise ConfigError(f"the holdout key file {str(path)!r} is damaged (not 32 bytes); move it away to start a "
                          "new one (bundles fitted with the old key can then only be evaluated with --holdout)")
    return key_id(key), key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"synthkit holdout key id\x00" + key).hexdigest()[:16]


def data_fingerprint(frame: pd.DataFrame, key: bytes) -> str:
    """HMAC-SHA256 (keyed by `key`) over the column names and the cells as text, in row order.

    Text, not pandas' binary hash, so that the same file read twice (or a frame whose
    integers became floats on the way) still matches as long as the values print alike."""
    h = hmac.new(key, digestmod=hashlib.sha256)
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
    and a keyed fingerprint of the input with its key id (see `data_fingerprint`)."""
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
    kid, key = holdout_key()
    record = {"method": SPLIT_METHOD, "fraction": float(fraction), "seed": int(seed),
              "unit": "entity" if entity_key else "row", "entity_key": entity_key,
              "key_id": kid, "data_hmac": data_fingerprint(frame, key)}
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True), record


def resplit(frame: pd.DataFrame, record: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Re-derive the (train, holdout) a bundle recorded, refusing data that is not the
    data the model was fitted on (different file, rows reordered or edited)."""
    if record.get("method") != SPLIT_METHOD:
        raise ConfigError(f"unknown holdout split method {record.get('method')!r}; this synthkit knows "
                          f"{SPLIT_METHOD!r}; pass --holdout with a separate holdout file")
    kid, key = holdout_key()
    if record.get("key_id") != kid:
        raise ConfigError(
            f"the bundle's holdout fingerprint was made with a key that is not in {str(synthkit_home())!r} "
            "(another machine or another $SYNTHKIT_HOME); evaluate where the model was fitted, set SYNTHKIT_HOME "
            "to that work directory, or pass --holdout with a separate holdout file")
    train, holdout, _ = holdout_split(frame, fraction=record["fraction"], seed=record["seed"],
                                      entity_key=record.get("entity_key"))
    if not hmac.compare_digest(data_fingerprint(frame, key), str(record.get("data_hmac", ""))):
        raise DataValidationError([
            "the real data given to the evaluation is not the data the model was fitted on (its fingerprint "
            "differs: another file, or rows reordered or edited), so the recorded holdout cannot be re-derived; "
            "pass the exact file given to `synthkit fit`, or pass --holdout with a separate holdout file"])
    return train, holdout
