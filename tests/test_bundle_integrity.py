"""Forged and corrupt model bundles (issue 16): every malformed manifest or weights file is
refused by `generate`, `inspect` and `evaluate` alike with ONE line naming the bundle and
the field, exit code 2, no traceback and no value of the data; untouched bundles load and
generate (positive control).

Each forgery starts from a real bundle fitted once per module (a tiny DP DPTVAE and a tiny
DP DPHMM). A forger who edits the manifest also recomputes the hashes the bundle holds
(`files`, `manifest.sha256`), so the checks behind them are what is tested, not the hash.
The sidecar hash is computed here with hashlib (not synthkit), so this file also runs
against code that never wrote one (the negative control: most cases crashed or were
accepted there)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import connectors
from conftest_data import nmes
from synthkit import DPHMM, DPTVAE, PrivacyBudget
from synthkit.cli import app
from synthkit.schema import Column, Schema

runner = CliRunner()
BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
CANARY = "CANARY_7f3e_private"  # a planted "private" value: it must never reach an error


# ====================================================================== fitted bundles
def _clinic(n: int = 800, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame({"patient_id": [f"P{i:05d}" for i in range(n)],
                             "sex": rng.choice(["female", "male"], n),
                             "birth_year": rng.integers(1930, 2000, n)})
    rows = []
    for i in range(n):
        day = pd.Timestamp("2015-01-01") + pd.Timedelta(days=int(rng.integers(0, 700)))
        for j in range(int(rng.integers(1, 6))):
            day = day + pd.Timedelta(days=int(rng.choice([7, 30, 90])) if j else 0)
            rows.append((f"P{i:05d}", day, str(rng.choice(["gp", "lab", "ward"])), float(rng.normal(5.0, 1.0))))
    return pd.DataFrame(rows, columns=["patient_id", "visit_date", "kind", "lab"]), patients


EVENT_SCHEMA = Schema(columns=(
    Column(name="patient_id", kind="identifier", nullable=False),
    Column(name="visit_date", kind="datetime", nullable=False, time_unit="day"),
    Column(name="kind", kind="categorical", nullable=False),
    Column(name="lab", kind="continuous", nullable=False, bounds=(0.0, 10.0)),
), entity_key="patient_id", sequence_index="visit_date")
CONTEXT_SCHEMA = Schema(columns=(
    Column(name="patient_id", kind="identifier", nullable=False),
    Column(name="sex", kind="categorical", nullable=False, categories=("female", "male")),
    Column(name="birth_year", kind="integer", nullable=False, bounds=(1900, 2020)),
), entity_key="patient_id")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("integrity")
    real = nmes(600)
    real.loc[real.index[0], "region"] = CANARY  # one row: DP discovery must drop it
    real_path = d / "real.csv"
    connectors.write(real, real_path, overwrite=True)
    real = connectors.read(real_path)
    tvae = DPTVAE(epochs=1, batch_size=100, embedding_dim=8, compress_dims=(16,), decompress_dims=(16,),
                  device="cpu", seed=0).fit(real, budget=BUDGET)
    tvae.save(d / "tvae")
    syn_path = d / "synthetic.csv"
    connectors.write(tvae.sample(200, seed=1), syn_path, overwrite=True)
    events, patients = _clinic()
    hmm = DPHMM(n_states=3, epochs=2, batch_size=100, max_length=5, context_epochs=2, context_hidden=(16,),
                context_embedding_dim=4, device="cpu", seed=0).fit(
        events, schema=EVENT_SCHEMA, context=patients, context_schema=CONTEXT_SCHEMA, budget=BUDGET)
    hmm.save(d / "hmm")
    return {"dir": d, "tvae": d / "tvae", "hmm": d / "hmm", "real": real_path, "synthetic": syn_path}


# ====================================================================== forging helpers
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reseal(folder: Path) -> None:
    """What a forger does after an edit: recompute the manifest's sidecar hash."""
    (folder / "manifest.sha256").write_text(f"{_sha(folder / 'manifest.json')}  manifest.json\n")


def _manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _write(folder: Path, manifest: dict[str, Any], *, reseal: bool = True) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if reseal:
        _reseal(folder)


def _edit(fn: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        m = _manifest(folder)
        fn(m)
        _write(folder, m)
    return mutate


def _raw(fn: Callable[[str], str], *, reseal: bool = True) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        mf = folder / "manifest.json"
        mf.write_text(fn(mf.read_text(encoding="utf-8")), encoding="utf-8")
        if reseal:
            _reseal(folder)
    return mutate


def _first(kind: str) -> Callable[[dict[str, Any]], str]:
    """Name of the first transformer column of a kind ('labels': categorical, else numeric)."""
    def pick(m: dict[str, Any]) -> str:
        return next(n for n, s in m["transformer"].items() if (kind in s))
    return pick


def _set_weights(folder: Path, tensors: dict[str, torch.Tensor] | bytes) -> None:
    w = folder / "weights.safetensors"
    if isinstance(tensors, bytes):
        w.write_bytes(tensors)
    else:
        save_file(tensors, str(w))
    m = _manifest(folder)
    m["files"]["weights.safetensors"] = _sha(w)
    _write(folder, m)


def _weights_wrong_shape(folder: Path) -> None:
    from safetensors.torch import load_file
    w = load_file(str(folder / "weights.safetensors"))
    name = next(k for k, v in w.items() if v.dim() == 2)
    w[name] = torch.zeros(w[name].shape[0] + 3, w[name].shape[1])
    _set_weights(folder, w)


def _weights_extra_tensor(folder: Path) -> None:
    from safetensors.torch import load_file
    w = load_file(str(folder / "weights.safetensors"))
    w["decoder.evil"] = torch.zeros(4)
    _set_weights(folder, w)


def _weights_broken_header(folder: Path) -> None:
    raw = (folder / "weights.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    _set_weights(folder, raw[:8] + b"{" * n + raw[8 + n:])


def _weights_huge_header(folder: Path) -> None:
    _set_weights(folder, struct.pack("<Q", 2**40) + b"{}")


def _nested(depth: int) -> Callable[[dict[str, Any]], None]:
    def fn(m: dict[str, Any]) -> None:
        node: Any = 1
        for _ in range(depth):
            node = {"a": node}
        m["versions"] = node
    return fn


def _deep_text(text: str) -> str:
    return text.replace('"versions": {', '"versions": {"x": ' + "[" * 200_000 + "]" * 200_000 + ", ", 1)


def _forged_epsilon(m: dict[str, Any], *, consistent: bool) -> None:
    s = m["privacy"]["summary"]
    s["epsilon_spent"] = 0.01
    if consistent:  # the forger also rewrites the guarantee and every per-event epsilon
        s["guarantee"] = f"({0.01:.4g}, {s['target_delta']:.3g})-differential privacy per {s['unit']}"
        for e in s["events"]:
            e["epsilon_alone"] = min(e["epsilon_alone"], 0.001)


def _context_path(rel: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        m = _manifest(folder)
        m["sequence"]["context_bundle"] = rel
        _write(folder, m)
    return mutate


def _context_elsewhere(folder: Path) -> None:
    """A second context folder inside the bundle, edited, and not listed in `files`: the
    context's hash check must still cover it."""
    shutil.copytree(folder / "context", folder / "ctx2")
    cm = _manifest(folder / "ctx2")
    cm["model"]["hyperparameters"]["epochs"] = 7
    _write(folder / "ctx2", cm)
    _context_path("ctx2")(folder)


def _context_symlink(folder: Path) -> None:
    """`context_bundle` names a link inside the bundle that leads out of it."""
    outside = folder.parent / f"{folder.name}-outside"
    shutil.copytree(folder / "context", outside)
    os.symlink(outside, folder / "link")
    m = _manifest(folder)
    m["sequence"]["context_bundle"] = "link"
    m["files"]["link/manifest.json"] = _sha(outside / "manifest.json")
    m["files"]["link/weights.safetensors"] = _sha(outside / "weights.safetensors")
    _write(folder, m)


def _context_forged_summary(folder: Path) -> None:
    """A forged privacy summary in the context bundle, with every hash recomputed."""
    ctx = folder / "context"
    cm = _manifest(ctx)
    _forged_epsilon(cm, consistent=True)
    _write(ctx, cm)
    m = _manifest(folder)
    m["files"]["context/manifest.json"] = _sha(ctx / "manifest.json")
    _write(folder, m)


def _context_is_sequence(folder: Path) -> None:
    """The context bundle replaced by a copy of the sequence bundle (a loop of bundles)."""
    ctx = folder / "context"
    shutil.rmtree(ctx)
    shutil.copytree(folder, ctx, ignore=shutil.ignore_patterns("context"))
    shutil.copytree(ctx, ctx / "context")
    m = _manifest(folder)
    m["files"]["context/manifest.json"] = _sha(ctx / "manifest.json")
    m["files"]["context/weights.safetensors"] = _sha(ctx / "weights.safetensors")
    _write(folder, m)


def _layout_cat_size(m: dict[str, Any]) -> None:
    m["sequence"]["layout"]["cat_sizes"][0] += 5


def _layout_d_context(m: dict[str, Any]) -> None:
    m["sequence"]["layout"]["d_context"] += 3


TVAE_FORGERIES: dict[str, Callable[[Path], None]] = {
    # model and hyperparameters
    "unknown class": _edit(lambda m: m["model"].update({"class": "EvilModel"})),
    "class and name disagree": _edit(lambda m: m["model"].update({"class": "DPCTGAN"})),
    "embedding_dim 1e9": _edit(lambda m: m["model"]["hyperparameters"].update(embedding_dim=10**9)),
    "embedding_dim float 1e9": _edit(lambda m: m["model"]["hyperparameters"].update(embedding_dim=1e9)),
    "embedding_dim string": _edit(lambda m: m["model"]["hyperparameters"].update(embedding_dim="16")),
    "huge decoder layers": _edit(lambda m: m["model"]["hyperparameters"].update(decompress_dims=[8000] * 16)),
    "negative epochs": _edit(lambda m: m["model"]["hyperparameters"].update(epochs=-1)),
    "boolean batch size": _edit(lambda m: m["model"]["hyperparameters"].update(batch_size=True)),
    "unknown hyperparameter": _edit(lambda m: m["model"]["hyperparameters"].update(evil=1)),
    "missing hyperparameter": _edit(lambda m: m["model"]["hyperparameters"].pop("lr")),
    "model section missing": _edit(lambda m: m.pop("model")),
    "model section a list": _edit(lambda m: m.update(model=[1, 2])),
    "private bundle with a seed": _edit(lambda m: m.update(seed=42)),
    "private hyperparameters with a seed": _edit(lambda m: m["model"]["hyperparameters"].update(seed=42)),
    # schema and transformer
    "schema a string": _edit(lambda m: m.update(schema="columns")),
    "schema without columns": _edit(lambda m: m["schema"].update(columns={})),
    "schema column as a bare kind": _edit(lambda m: m["schema"]["columns"].update(
        {next(iter(m["schema"]["columns"])): next(iter(m["schema"]["columns"].values()))["kind"]})),
    "schema kind unknown": _edit(lambda m: next(iter(m["schema"]["columns"].values())).update(kind="evil")),
    "transformer column missing": _edit(lambda m: m["transformer"].pop(_first("labels")(m))),
    "transformer labels not a list": _edit(lambda m: m["transformer"][_first("labels")(m)].update(labels=5)),
    "transformer counts too short": _edit(lambda m: m["transformer"][_first("labels")(m)].update(counts=[1.0])),
    "transformer bounds inverted": _edit(lambda m: m["transformer"][_first("bounds")(m)].update(bounds=[5.0, -5.0])),
    "transformer numeric as categorical": _edit(
        lambda m: m["transformer"].update({_first("bounds")(m): {"labels": ["a"], "counts": [1.0]}})),
    "transformer nested list": _edit(lambda m: m["transformer"][_first("bounds")(m)].update(means=[[1.0]])),
    "pairs tables wrong shape": _edit(lambda m: m["pairs"]["tables"].update(
        {next(iter(m["pairs"]["tables"])): [[1.0]]})),
    "pairs a string": _edit(lambda m: m.update(pairs="x")),
    "dependence wrong size": _edit(lambda m: m.update(dependence={"correlation": [[1.0]]})),
    # privacy
    "forged epsilon": _edit(lambda m: _forged_epsilon(m, consistent=False)),
    "forged epsilon, consistent summary": _edit(lambda m: _forged_epsilon(m, consistent=True)),
    "summary missing": _edit(lambda m: m["privacy"].pop("summary")),
    "summary target differs from ledger": _edit(lambda m: m["privacy"]["summary"].update(target_epsilon=0.5)),
    "summary unit forged": _edit(lambda m: m["privacy"]["summary"].update(unit="entity")),
    "ledger event malformed": _edit(lambda m: m["privacy"]["ledger"]["events"][0].update(sigma="x")),
    "ledger event removed": _edit(lambda m: m["privacy"]["ledger"]["events"].pop()),
    "ledger null": _edit(lambda m: m["privacy"].update(ledger=None)),
    # files and paths
    "weights hash malformed": _edit(lambda m: m["files"].update({"weights.safetensors": "zz"})),
    "file path escapes": _edit(lambda m: m["files"].update({"../../etc/passwd": "0" * 64})),
    "absolute file path": _edit(lambda m: m["files"].update({"/etc/passwd": "0" * 64})),
    "weights unlisted": _edit(lambda m: m["files"].pop("weights.safetensors")),
    # other sections
    "unknown top-level key": _edit(lambda m: m.update(evil={"x": 1})),
    "training steps a string": _edit(lambda m: m["training"].update(steps="many")),
    "holdout fraction 2": _edit(lambda m: m.update(holdout={"method": "x", "fraction": 2.0, "seed": 1, "unit": "row",
                                                             "entity_key": None, "key_id": "k", "data_hmac": "h"})),
    "versions a list": _edit(lambda m: m.update(versions=[1, 2])),
    # the text itself
    "nested 40 deep": _edit(_nested(40)),
    "nested 200000 deep": _raw(_deep_text),
    "integer of 5000 digits": _raw(lambda t: t.replace('"epochs": 1', '"epochs": 1' + "0" * 5000, 1)),
    "NaN": _raw(lambda t: t.replace('"lr": 0.001', '"lr": NaN', 1)),
    "infinity by exponent": _raw(lambda t: t.replace('"lr": 0.001', '"lr": 1e999', 1)),
    "not JSON": _raw(lambda t: t[: len(t) // 2]),
    "not UTF-8": lambda f: ((f / "manifest.json").write_bytes(b"\xff\xfe" + b"\x00{" * 100), _reseal(f)),
    "JSON array": _raw(lambda t: "[" + t + "]"),
    "larger than the cap": _raw(lambda t: t[:-1] + " " * (17 * 1024 * 1024) + "}"),
    # the manifest's own hash
    "edited without resealing": _raw(lambda t: t.replace('"epochs": 1', '"epochs": 2', 1), reseal=False),
    "no manifest.sha256": lambda f: (f / "manifest.sha256").unlink(),
    "garbage manifest.sha256": lambda f: (f / "manifest.sha256").write_text("not a digest"),
    # weights with a recomputed hash
    "weights shape mismatch": _weights_wrong_shape,
    "weights extra tensor": _weights_extra_tensor,
    "weights broken header": _weights_broken_header,
    "weights header length 2**40": _weights_huge_header,
    "weights empty": lambda f: _set_weights(f, b""),
}

HMM_FORGERIES: dict[str, Callable[[Path], None]] = {
    "context path ../..": _context_path("../../context"),
    "context path absolute": _context_path("/tmp"),
    "context path backslash": _context_path("..\\context"),
    "context folder not hashed": _context_elsewhere,
    "context symlink outside": _context_symlink,
    "context forged summary, hashes recomputed": _context_forged_summary,
    "context is a sequence bundle": _context_is_sequence,
    "context path missing": _edit(lambda m: m["sequence"].pop("context_bundle")),
    "layout cat size": _edit(_layout_cat_size),
    "layout d_context": _edit(_layout_d_context),
    "layout channel out of range": _edit(lambda m: m["sequence"]["layout"]["columns"][0].update(cat=99)),
    "layout columns a dict": _edit(lambda m: m["sequence"]["layout"].update(columns={})),
    "n_states 1e6": _edit(lambda m: m["model"]["hyperparameters"].update(n_states=10**6)),
    "n_states 500 (shape mismatch)": _edit(lambda m: m["model"]["hyperparameters"].update(n_states=500)),
    "sequence section removed": _edit(lambda m: m.pop("sequence")),
    "table class with a sequence": _edit(lambda m: m["model"].update({"class": "DPTVAE", "name": "dptvae"})),
    "context model kind swapped": _edit(lambda m: m["model"]["hyperparameters"].update(context_model="dpctgan")),
    "terminal column unknown": _edit(lambda m: m["model"]["hyperparameters"].update(
        terminal_column="ghost", terminal_value="x")),
}


def _forge(bundles: dict[str, Path], tmp_path: Path, which: str, mutate: Callable[[Path], None]) -> Path:
    copy = tmp_path / "forged"
    shutil.copytree(bundles[which], copy)
    mutate(copy)
    return copy


def _commands(bundles: dict[str, Path], model: Path, tmp_path: Path, which: str) -> dict[str, list[str]]:
    gen = ["--entities", "5"] if which == "hmm" else ["--rows", "5"]
    out = tmp_path / ("gen" if which == "hmm" else "gen.csv")
    return {
        "generate": ["generate", str(model), *gen, "--out", str(out)],
        "inspect": ["inspect", str(model)],
        "evaluate": ["evaluate", str(model), "--real", str(bundles["real"]), "--synthetic",
                     str(bundles["synthetic"]), "--out", str(tmp_path / "report")],
    }


def _assert_refused(r: Any, model: Path) -> None:
    text = r.output
    assert r.exit_code == 2, text
    assert "Traceback" not in text and "internal error" not in text, text
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error:") and str(model) in lines[0], text
    assert CANARY not in text
    assert len(lines[0]) < 1200, "a one-line error, not a dump"


CASES = [("tvae", n) for n in TVAE_FORGERIES] + [("hmm", n) for n in HMM_FORGERIES]


@pytest.mark.parametrize("which,name", CASES, ids=[f"{w}:{n}" for w, n in CASES])
@pytest.mark.parametrize("command", ["generate", "inspect", "evaluate"])
def test_forged_bundle_is_refused_in_one_line(bundles, tmp_path, which, name, command):
    mutate = (TVAE_FORGERIES if which == "tvae" else HMM_FORGERIES)[name]
    model = _forge(bundles, tmp_path, which, mutate)
    r = runner.invoke(app, _commands(bundles, model, tmp_path, which)[command])
    _assert_refused(r, model)
    assert not (tmp_path / "gen.csv").exists() and not (tmp_path / "gen").exists()
    assert not (tmp_path / "report").exists()


def test_corpus_is_large_and_distinct():
    assert len(TVAE_FORGERIES) + len(HMM_FORGERIES) >= 25


# ====================================================================== positive controls
@pytest.mark.parametrize("which", ["tvae", "hmm"])
def test_untouched_bundles_generate_and_inspect(bundles, tmp_path, which):
    cmds = _commands(bundles, bundles[which], tmp_path, which)
    r = runner.invoke(app, cmds["generate"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*cmds["inspect"], "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["model"] == ("DPHMM" if which == "hmm" else "DPTVAE") and info["privacy"]["private"] is True


def test_untouched_bundle_evaluates(bundles, tmp_path):
    r = runner.invoke(app, _commands(bundles, bundles["tvae"], tmp_path, "tvae")["evaluate"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "report" / "report.json").is_file()


def test_copy_of_a_bundle_loads_and_keeps_its_hashes(bundles, tmp_path):
    """A whole-folder copy is fine: the hashes travel with it."""
    from synthkit.bundle import load
    copy = tmp_path / "copy"
    shutil.copytree(bundles["hmm"], copy)
    assert isinstance(load(copy), DPHMM)


def test_private_bundle_records_no_seed_and_only_what_save_wrote(bundles):
    m = _manifest(bundles["tvae"])
    assert "seed" not in m and "seed" not in m["model"]["hyperparameters"]
    side = (bundles["tvae"] / "manifest.sha256").read_text().split()
    assert side == [_sha(bundles["tvae"] / "manifest.json"), "manifest.json"]
    assert sorted(p.name for p in bundles["tvae"].iterdir()) == ["manifest.json", "manifest.sha256",
                                                                  "weights.safetensors"]


def test_hyperparameter_models_cover_every_constructor_argument():
    """A new hyperparameter must get its type and bounds in synthkit.manifest, or every
    bundle that records it is refused."""
    import inspect
    from synthkit.manifest import HYPERPARAMETERS
    from synthkit.models import REGISTRY
    for name, cls in REGISTRY.items():
        args = {p for p in inspect.signature(cls.__init__).parameters if p != "self"}
        assert set(HYPERPARAMETERS[name].model_fields) == args, name


def test_expected_digest_pins_the_manifest(bundles):
    from synthkit.errors import ArtifactError
    from synthkit.manifest import read_manifest
    _, digest = read_manifest(bundles["tvae"], expected_sha256=_sha(bundles["tvae"] / "manifest.json"))
    assert digest == _sha(bundles["tvae"] / "manifest.json")
    with pytest.raises(ArtifactError, match="not the one recorded"):
        read_manifest(bundles["tvae"], expected_sha256="0" * 64)
