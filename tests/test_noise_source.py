"""Issue 15, item 1: no recorded or user-given value reproduces the DP noise.

Under a budget every DP draw comes from OS entropy (synthkit.noise); `--seed` fixes only
initialisation, the holdout split and generation, and a private bundle or report records
no seed. Negative controls: on the previous code the two same-seed fits below released
identical noisy counts and the manifest carried the seed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit import DPTVAE, PrivacyBudget
from synthkit.cli import app
from synthkit.noise import _fixed_for_tests, private_seed_sequence

runner = CliRunner()
SEED = 736491827  # distinctive; found as a whole number token (not inside a noisy float or a hash)
_SEED_TOKEN = re.compile(rb"(?<![0-9a-fA-F.])" + str(SEED).encode() + rb"(?![0-9a-fA-F.])")


def _numbers(state) -> list[float]:
    """Every number in a JSON-like state, in order (the DP releases live among them)."""
    if isinstance(state, dict):
        return [x for k in sorted(state) for x in _numbers(state[k])]
    if isinstance(state, (list, tuple)):
        return [x for v in state for x in _numbers(v)]
    if isinstance(state, (int, float)) and not isinstance(state, bool):
        return [float(state)]
    return []


def _keys(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    n = 1000
    df = pd.DataFrame({"age": rng.integers(18, 90, n), "sex": rng.choice(["f", "m"], n),
                       "dx": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
                       "cost": rng.gamma(2.0, 50.0, n).round(2)})
    path = tmp_path_factory.mktemp("noise") / "t.csv"
    df.to_csv(path, index=False)
    return path


def _fit(csv: Path, out: Path, *extra: str, private: bool = True) -> dict:
    privacy = ["--epsilon", "2", "--delta", "1e-6"] if private else ["--no-privacy"]
    r = runner.invoke(app, ["fit", str(csv), "--model", "dptvae", *privacy, "--epochs", "1", "--batch-size", "100",
                            "--device", "cpu", "--seed", str(SEED), "--out", str(out), *extra], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.real_noise
def test_same_seed_under_a_budget_releases_different_noise_and_records_no_seed(csv_path, tmp_path):
    a = _fit(csv_path, tmp_path / "a", "--holdout", "0.2", "--holdout-seed", "7")
    b = _fit(csv_path, tmp_path / "b", "--holdout", "0.2", "--holdout-seed", "7")
    # the DP counts and histograms differ although seed, data and split are the same
    assert a["training"]["n_units_dp"] != b["training"]["n_units_dp"]
    na, nb = _numbers(a["transformer"]), _numbers(b["transformer"])
    assert na != nb
    assert _numbers(a["pairs"]) != _numbers(b["pairs"])
    # no file of the bundle carries the seed, under any key
    for bundle in (tmp_path / "a", tmp_path / "b"):
        for f in bundle.rglob("*"):
            if f.is_file():
                assert not _SEED_TOKEN.search(f.read_bytes()), f.name
    assert "seed" not in a["model"]["hyperparameters"] and "seed" not in a
    # the holdout split's own seed stays: it is not a DP mechanism
    assert a["holdout"]["seed"] == 7
    # inspect says where the noise came from
    r = runner.invoke(app, ["inspect", str(tmp_path / "a")], catch_exceptions=False)
    assert r.exit_code == 0 and "OS entropy" in r.output and not _SEED_TOKEN.search(r.output.encode())

    # the internal evaluation report does not copy the model seed either
    syn = tmp_path / "syn.csv"
    assert runner.invoke(app, ["generate", str(tmp_path / "a"), "--rows", "500", "--out", str(syn), "--seed", "1"],
                         catch_exceptions=False).exit_code == 0
    rep = tmp_path / "rep"
    r = runner.invoke(app, ["evaluate", str(tmp_path / "a"), "--real", str(csv_path), "--synthetic", str(syn),
                            "--out", str(rep)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for f in rep.rglob("*"):
        if f.is_file():
            assert not _SEED_TOKEN.search(f.read_bytes()), f.name


def test_without_a_budget_the_seed_reproduces_the_fit_and_is_recorded(csv_path, tmp_path):
    a = _fit(csv_path, tmp_path / "a", private=False)
    b = _fit(csv_path, tmp_path / "b", private=False)
    assert a["transformer"] == b["transformer"] and a["seed"] == SEED
    assert (tmp_path / "a" / "weights.safetensors").read_bytes() == (tmp_path / "b" / "weights.safetensors").read_bytes()


@pytest.mark.real_noise
def test_the_internal_hook_reproduces_a_private_fit_and_nothing_else_does():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=600), "c": rng.choice(["a", "b"], 600)})

    def fit() -> DPTVAE:
        return DPTVAE(epochs=1, batch_size=100, device="cpu", seed=1, embedding_dim=8, compress_dims=(16,),
                      decompress_dims=(16,)).fit(frame, budget=PrivacyBudget(epsilon=2.0, delta=1e-6))

    with _fixed_for_tests(11):
        one = fit()
    with _fixed_for_tests(11):
        two = fit()
    three = fit()
    assert one.transformer_.state_dict() == two.transformer_.state_dict()
    for (k, v), w in zip(one._weights().items(), two._weights().values()):
        assert bool((v == w).all()), k
    assert one.transformer_.state_dict() != three.transformer_.state_dict()
    # the hook is off after the block: OS entropy again
    s1, s2 = private_seed_sequence(), private_seed_sequence()
    assert s1.entropy != s2.entropy and s1.entropy.bit_length() > 128
