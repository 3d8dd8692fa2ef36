"""The seeded holdout split (synthkit/split.py) and how the evaluation re-derives it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import reports
from synthkit.errors import ConfigError, DataValidationError
from synthkit.split import data_fingerprint, holdout_key, holdout_split, resplit
from test_reports_metrics import SCHEMA, mixture


def test_split_is_seeded_disjoint_and_sized():
    df = mixture(1000, 0)
    tr, ho, rec = holdout_split(df, fraction=0.2, seed=7)
    tr2, ho2, rec2 = holdout_split(df, fraction=0.2, seed=7)
    pd.testing.assert_frame_equal(ho, ho2)
    assert rec == rec2 and len(ho) == 200 and len(tr) == 800
    _, ho3, _ = holdout_split(df, fraction=0.2, seed=8)
    assert not ho.equals(ho3)
    # the record is public: no count, no row, no value
    assert set(rec) == {"method", "fraction", "seed", "unit", "entity_key", "key_id", "data_hmac"}
    json.dumps(rec)


def test_fingerprint_is_keyed_so_it_tells_nothing_without_the_key(tmp_path, monkeypatch):
    """An attacker who knows every row but one cannot test candidates for the last one
    against the bundle: the fingerprint needs the key, which stays in SYNTHKIT_HOME."""
    import hashlib
    import hmac as hmac_mod

    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    _, _, rec = holdout_split(df, fraction=0.34, seed=0)
    text = json.dumps(rec)
    # no unkeyed digest of the table under any key the attacker can guess
    for guess in (b"", b"synthkit", bytes(32)):
        assert data_fingerprint(df, guess) not in text
    kid, key = holdout_key()
    assert rec["key_id"] == kid and key.hex() not in text
    assert hmac_mod.compare_digest(rec["data_hmac"], data_fingerprint(df, key))
    assert hashlib.sha256(key).hexdigest()[:16] != kid  # the id is not a bare hash prefix of the key
    # another work directory holds another key: the bundle's split cannot be checked there
    monkeypatch.setenv("SYNTHKIT_HOME", str(tmp_path / "elsewhere"))
    assert holdout_key()[0] != kid
    with pytest.raises(ConfigError, match="SYNTHKIT_HOME"):
        resplit(df, rec)
    assert oct((tmp_path / "elsewhere" / "holdout.key").stat().st_mode & 0o777) == "0o600"


def test_split_by_entity_keeps_histories_whole():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"pid": np.repeat(np.arange(300), rng.integers(1, 6, 300))})
    df["v"] = rng.normal(size=len(df))
    tr, ho, rec = holdout_split(df, fraction=0.25, seed=1, entity_key="pid")
    assert not set(tr["pid"]) & set(ho["pid"])
    assert ho["pid"].nunique() == 75 and rec["unit"] == "entity"
    assert len(tr) + len(ho) == len(df)


def test_resplit_refuses_other_data():
    df = mixture(500, 0)
    _, ho, rec = holdout_split(df, fraction=0.2, seed=3)
    pd.testing.assert_frame_equal(resplit(df, rec)[1], ho)
    with pytest.raises(DataValidationError, match="fingerprint"):
        resplit(df.iloc[::-1].reset_index(drop=True), rec)
    edited = df.copy()
    edited.loc[10, "x"] += 1
    with pytest.raises(DataValidationError):
        resplit(edited, rec)


def test_fingerprint_ignores_dtype_spelling_but_not_values():
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    key = bytes(range(32))
    assert data_fingerprint(df, key) == data_fingerprint(df.astype({"a": "Int64"}), key)
    assert data_fingerprint(df, key) != data_fingerprint(df.assign(a=[1, 2, 4]), key)
    assert data_fingerprint(df, key) != data_fingerprint(df, bytes(32))


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_bad_fraction_is_refused(fraction):
    with pytest.raises(ConfigError):
        holdout_split(mixture(10, 0), fraction=fraction, seed=0)


def test_evaluate_rederives_the_recorded_split(tmp_path):
    """A real bundle (manifests are validated on every read, so no hand-written one) fitted
    without privacy with a seeded 25% holdout; evaluate re-derives that split."""
    import yaml
    from typer.testing import CliRunner

    import connectors
    from synthkit.cli import app

    mixture(1200, 0).to_parquet(tmp_path / "data.parquet", index=False)
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(SCHEMA.to_dict()))
    bundle = tmp_path / "model"
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "data.parquet"), "--schema", str(tmp_path / "schema.yaml"),
                                      "--model", "dptvae", "--no-privacy", "--epochs", "1", "--holdout", "0.25",
                                      "--holdout-seed", "5", "--batch-size", "100", "--device", "cpu", "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    df = connectors.read(tmp_path / "data.parquet")
    train, hold, rec = holdout_split(df, fraction=0.25, seed=5)
    r = reports.evaluate(real=df, synthetic=train, model_dir=bundle, seed=0)
    assert r.data["n_train"] == 900 and r.data["n_holdout"] == 300
    assert "recorded split" in r.data["holdout_source"]
    assert r.metric("privacy.membership_inference.auc").value > 0.99  # synthetic = the re-derived train
    assert r.privacy["private"] is False
