"""Model bundles: a directory with `manifest.json` and `weights.safetensors`.

Nothing is pickled and loading executes no code: the manifest is JSON, the weights are
safetensors, and the model class is looked up by name in a fixed registry. Every number
in the bundle is public (schema) or DP (transform state, ledger); raw rows never enter.
The directory is written under a temporary name and renamed when complete, so a failed
save leaves nothing that looks like a bundle.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from synthkit.errors import ArtifactError
from synthkit.ledger import PrivacyLedger
from synthkit.schema import Schema

FORMAT = "synthkit-model-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("synthkit", "torch", "opacus", "numpy", "pandas", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def save_bundle(model: Any, path: str | Path, *, overwrite: bool = False) -> Path:
    target = Path(path)
    if target.exists() and any(target.iterdir() if target.is_dir() else [True]):
        if not overwrite:
            raise ArtifactError(f"output {str(target)!r} already exists; choose another path or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model._weights().items()}
        save_file(weights, str(tmp / WEIGHTS))
        params = model.get_params()
        private = bool(getattr(model.ledger_, "private", False))
        if private:
            # a private bundle records no seed: it fixed only the initialisation (the DP
            # noise came from OS entropy, synthkit.noise), and no report copies one
            params.pop("seed", None)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "versions": _versions(),
            "model": {"class": type(model).__name__, "name": model.model_name,
                      "hyperparameters": _jsonable(params)},
            "schema": model.schema_.to_dict(),
            "privacy": {"summary": model.ledger_.summary(), "ledger": model.ledger_.to_dict()},
            "transformer": model.transformer_.state_dict(),
            "dependence": (model.dependence_.state_dict() if getattr(model, "dependence_", None) is not None
                           else None),
            "pairs": (model.pairs_.state_dict() if getattr(model, "pairs_", None) is not None else None),
            "training": model.training_,
            "files": {WEIGHTS: sha256_file(tmp / WEIGHTS)},
        }
        # a sequence model adds its layout and a nested table bundle (its context model);
        # table bundles are written exactly as before
        if not private:
            manifest["seed"] = params.get("seed")
        if hasattr(model, "_bundle_extra"):
            manifest["sequence"] = model._bundle_extra()
            manifest["files"].update(model._save_extra(tmp))
        if getattr(model, "source_", None):
            manifest["source"] = model.source_  # kind + redacted location only (no credentials)
        if getattr(model, "holdout_", None):
            # the seeded train/holdout split (method, fraction, seed, data fingerprint): lets
            # `synthkit evaluate` re-derive the holdout the model never saw
            manifest["holdout"] = model.holdout_
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_manifest(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    mf = p / MANIFEST
    if not mf.is_file():
        raise ArtifactError(f"{str(p)!r} is not a synthkit model bundle (no {MANIFEST})")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ArtifactError(f"{str(mf)!r} is not valid JSON; the bundle is corrupt") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{str(p)!r} is not a synthkit model bundle (format {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"bundle format version {manifest.get('format_version')!r} is not supported by this synthkit "
            f"(supports {FORMAT_VERSION}); use the synthkit version that wrote it")
    return manifest


def load_bundle(path: str | Path) -> Any:
    from synthkit.models import REGISTRY
    from synthkit.models.base import resolve_device
    from synthkit.transforms import DataTransformer

    p = Path(path)
    manifest = read_manifest(p)
    weights_path = p / WEIGHTS
    if not weights_path.is_file():
        raise ArtifactError(f"bundle {str(p)!r} has no {WEIGHTS}")
    if sha256_file(weights_path) != manifest.get("files", {}).get(WEIGHTS):
        raise ArtifactError(f"bundle {str(p)!r}: {WEIGHTS} does not match the hash in the manifest (modified or corrupt)")
    cls_name = manifest["model"]["class"]
    if cls_name not in REGISTRY:
        raise ArtifactError(f"unknown model class {cls_name!r} in bundle; known: {sorted(REGISTRY)}")
    cls = REGISTRY[cls_name]
    params = dict(manifest["model"]["hyperparameters"])
    for key, value in params.items():
        if isinstance(value, list):
            params[key] = tuple(value)
    try:
        model = cls(**params)
    except TypeError as err:
        raise ArtifactError(f"bundle hyperparameters do not fit {cls_name}: {err}") from None
    device = resolve_device("cpu" if model.device == "cuda" and not torch.cuda.is_available() else model.device)
    if "sequence" in manifest:
        if not hasattr(model, "_restore_bundle"):
            raise ArtifactError(f"bundle {str(p)!r} holds a sequence model section but {cls_name} is not a sequence model")
        model._restore_bundle(p, manifest, load_file(str(weights_path)), device)
        return model
    schema = Schema.from_dict(manifest["schema"])
    transformer = DataTransformer(schema)
    transformer.load_state_dict(manifest["transformer"])
    model._build(transformer, device, torch.Generator(device=device))
    model._load_weights({k: v.to(device) for k, v in load_file(str(weights_path)).items()})
    model.schema_ = schema
    model.transformer_ = transformer
    model.dependence_ = None
    if manifest.get("dependence") is not None:
        from synthkit.dependence import DependenceCalibrator
        model.dependence_ = DependenceCalibrator(transformer)
        model.dependence_.load_state_dict(manifest["dependence"])
    model.pairs_ = None
    if manifest.get("pairs") is not None:
        from synthkit.marginals import PairTree
        model.pairs_ = PairTree(transformer)
        model.pairs_.load_state_dict(manifest["pairs"])
    model.ledger_ = PrivacyLedger.from_dict(manifest["privacy"]["ledger"])
    model.training_ = manifest.get("training", {})
    model.device_ = device
    return model


def load(path: str | Path) -> Any:
    """Load a model bundle written by `Synthesizer.save`."""
    return load_bundle(path)
