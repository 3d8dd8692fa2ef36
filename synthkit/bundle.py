"""Model bundles: a directory with `manifest.json` and `weights.safetensors`.

Nothing is pickled and loading executes no code: the manifest is JSON, the weights are
safetensors, and the model class is looked up by name in a fixed registry. Every number
in the bundle is public (schema) or DP (transform state, ledger); raw rows never enter.
The directory is written under a temporary name and renamed when complete, so a failed
save leaves nothing that looks like a bundle.

Loading trusts nothing in the folder. `read_manifest` (synthkit.manifest: caps, the
manifest's SHA-256, the typed and bounded model; here also the accountant's numbers of
the privacy summary) is the one reading that `generate`, `inspect`, `evaluate` and the job
runner share. `load_bundle` then checks every listed file against its SHA-256 (paths inside
the bundle only), builds the network from the validated hyperparameters on the `meta`
device (no memory) and compares its parameter count with a cap and its shapes and dtypes
with the weights' safetensors header, all before a weight is read. Every failure is one
`ArtifactError` line naming the bundle, the field and the fix.
"""

from __future__ import annotations

import hashlib
import logging
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from synthkit import manifest as _manifest
from synthkit.errors import ArtifactError, SynthkitError
from synthkit.ledger import PrivacyLedger
from synthkit.manifest import FORMAT, FORMAT_VERSION, MANIFEST, MANIFEST_HASH, WEIGHTS  # noqa: F401 (re-exported)
from synthkit.partials import staged_folder
from synthkit.schema import Schema

logger = logging.getLogger(__name__)


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
    # a locked partial: a killed fit's partial is removed by the next save to the same path
    with staged_folder(target) as tmp:
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
        # manifest.json and manifest.sha256 (the loader checks one against the other)
        _manifest.write_manifest(tmp, manifest)
    return target


def read_manifest_checked(path: str | Path, *, expected_sha256: str | None = None) -> tuple[dict[str, Any], str]:
    """(manifest, SHA-256 of manifest.json) after every check of synthkit.manifest plus the
    accountant: the privacy summary's epsilons must be what the ledger composes to."""
    data, digest = _manifest.read_manifest(path, expected_sha256=expected_sha256)
    _check_summary(data, where=_manifest._where(Path(path)))
    return data, digest


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a bundle that loads: every check of `load_bundle` has passed (the
    model is loaded and dropped). `inspect` and `generate` read it, so `inspect` never shows
    a bundle that `generate` would refuse (a forged summary, a context bundle outside the
    folder, weights that do not fit). `read_manifest_checked` is the manifest-only check."""
    return _load_checked(path)[1]


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def _check_summary(data: dict[str, Any], *, where: str) -> None:
    """The summary `inspect` prints and reports copy must be what the ledger composes to
    (synthkit.manifest checked every other field of it against the ledger)."""
    try:
        expected = PrivacyLedger.from_dict(data["privacy"]["ledger"]).summary()
    except Exception:  # noqa: BLE001 - the accountant refused the ledger; no message reused
        raise ArtifactError(f"bundle {where!r}: manifest field privacy.ledger cannot be composed by the accountant; "
                            f"{_manifest._FIX}") from None
    got = {k: v for k, v in data["privacy"]["summary"].items() if k != "noise_source"}
    expected.pop("noise_source", None)
    if not _close(got, expected):
        field = next((k for k in expected if not _close(got.get(k), expected[k])), "summary")
        raise ArtifactError(f"bundle {where!r}: manifest field privacy.summary.{field} is not what the ledger "
                            f"composes to (a forged or edited privacy summary); {_manifest._FIX}")


def _check_files(p: Path, manifest: dict[str, Any], *, where: str) -> None:
    """Every file the manifest lists: inside the bundle, of bounded size, with its SHA-256."""
    for rel, digest in manifest["files"].items():
        f = _manifest.resolve_inside(p, rel, where=where, field=f"files.{_manifest._clean(rel)}")
        if not f.is_file():
            raise ArtifactError(f"bundle {where!r}: {_manifest._clean(rel)} is missing; copy the whole bundle folder")
        cap = _manifest.MAX_MANIFEST_BYTES if rel.endswith(MANIFEST) else _manifest.MAX_WEIGHTS_BYTES
        if f.stat().st_size > cap:
            raise ArtifactError(f"bundle {where!r}: {_manifest._clean(rel)} is larger than {cap} bytes; "
                                f"{_manifest._FIX}")
        if sha256_file(f) != digest:
            raise ArtifactError(f"bundle {where!r}: {_manifest._clean(rel)} does not match its hash (SHA-256) in the "
                                f"manifest (modified or corrupt); {_manifest._FIX}")


def checked_weights(path: Path, expected: dict[str, torch.Tensor], *, where: str,
                    device: torch.device) -> dict[str, torch.Tensor]:
    """The weights, read only after their safetensors header agrees with `expected` (the
    network built from the validated hyperparameters on the meta device): same names,
    shapes and dtypes, at most MAX_PARAMETERS values in all."""
    from safetensors import safe_open
    n_params = sum(t.numel() for t in expected.values())
    if n_params > _manifest.MAX_PARAMETERS:
        raise ArtifactError(f"bundle {where!r}: manifest field model.hyperparameters describes a network of "
                            f"{n_params} parameters, above the limit of {_manifest.MAX_PARAMETERS}; {_manifest._FIX}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except Exception:  # noqa: BLE001 - safetensors raises its own error types on a broken header
        raise ArtifactError(f"bundle {where!r}: {path.name} has a broken safetensors header; "
                            f"{_manifest._FIX}") from None
    dtypes = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64", torch.float16: "F16"}
    if set(header) != set(expected):
        raise ArtifactError(f"bundle {where!r}: {path.name} holds other tensors than the network its manifest "
                            f"describes; {_manifest._FIX}")
    for name, t in expected.items():
        shape, dtype = header[name]
        if shape != tuple(t.shape) or dtype != dtypes.get(t.dtype):
            raise ArtifactError(f"bundle {where!r}: tensor {_manifest._clean(name)} in {path.name} has shape "
                                f"{list(shape)} but the manifest's hyperparameters give {list(t.shape)}; "
                                f"{_manifest._FIX}")
    try:
        weights = load_file(str(path))
    except Exception:  # noqa: BLE001
        raise ArtifactError(f"bundle {where!r}: {path.name} cannot be read; {_manifest._FIX}") from None
    return {k: v.to(device) for k, v in weights.items()}


def _guard(where: str, field: str):
    """A load step on validated input: any remaining inconsistency is one ArtifactError
    naming the field (no exception message reused: it might hold a value)."""
    from contextlib import contextmanager

    @contextmanager
    def guard():
        try:
            yield
        except ArtifactError as err:  # a fixed text from a state's own check: name the bundle and field
            if str(err).startswith(f"bundle {where!r}"):
                raise
            raise ArtifactError(f"bundle {where!r}: manifest field {field}: {err}; {_manifest._FIX}") from None
        except SynthkitError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, StopIteration, RuntimeError,
                OverflowError, ZeroDivisionError, RecursionError):
            raise ArtifactError(f"bundle {where!r}: manifest field {field} does not fit the rest of the bundle; "
                                f"{_manifest._FIX}") from None

    return guard()


def load_bundle(path: str | Path, *, table_only: bool = False) -> Any:
    """The model of a bundle, after every check (module docstring). `table_only`: refuse a
    sequence bundle (a DPHMM's context bundle must hold a table model: no loops)."""
    return _load_checked(path, table_only=table_only)[0]


def _load_checked(path: str | Path, *, table_only: bool = False) -> tuple[Any, dict[str, Any], str]:
    """(model, manifest, SHA-256 of manifest.json) of a bundle that passed every check."""
    from synthkit.models import REGISTRY
    from synthkit.models.base import resolve_device
    from synthkit.transforms import DataTransformer

    p = Path(path)
    where = _manifest._where(p)
    manifest, digest = read_manifest_checked(p)
    _check_files(p, manifest, where=where)
    weights_path = p / WEIGHTS
    cls_name = manifest["model"]["class"]
    if table_only and "sequence" in manifest:
        raise ArtifactError(f"bundle {where!r}: a context bundle must hold a table model (DPTVAE or DPCTGAN), "
                            f"not {cls_name}; {_manifest._FIX}")
    cls = REGISTRY[cls_name]
    params = dict(manifest["model"]["hyperparameters"])
    for key, value in params.items():
        if isinstance(value, list):
            params[key] = tuple(value)
    with _guard(where, "model.hyperparameters"):
        model = cls(**params)
    device = resolve_device("cpu" if model.device == "cuda" and not torch.cuda.is_available() else model.device)
    if "sequence" in manifest:
        model._restore_bundle(p, manifest, weights_path, device)
        return model, manifest, digest
    with _guard(where, "schema"):
        schema = Schema.from_dict(manifest["schema"])
    transformer = DataTransformer(schema)
    with _guard(where, "transformer"):
        transformer.load_state_dict(manifest["transformer"])
    meta = torch.device("meta")
    with _guard(where, "model.hyperparameters"), meta:
        probe = cls(**params)
        probe._build(transformer, meta, torch.Generator())
        expected = probe._weights()
    weights = checked_weights(weights_path, expected, where=where, device=device)
    with _guard(where, "model.hyperparameters"):
        model._build(transformer, device, torch.Generator(device=device))
        model._load_weights(weights)
    model.schema_ = schema
    model.transformer_ = transformer
    model.dependence_ = None
    if manifest.get("dependence") is not None:
        from synthkit.dependence import DependenceCalibrator
        with _guard(where, "dependence"):
            model.dependence_ = DependenceCalibrator(transformer)
            model.dependence_.load_state_dict(manifest["dependence"])
    model.pairs_ = None
    if manifest.get("pairs") is not None:
        from synthkit.marginals import PairTree
        with _guard(where, "pairs"):
            model.pairs_ = PairTree(transformer)
            model.pairs_.load_state_dict(manifest["pairs"])
    model.ledger_ = PrivacyLedger.from_dict(manifest["privacy"]["ledger"])
    model.training_ = manifest.get("training", {})
    model.device_ = device
    return model, manifest, digest


def verify(path: str | Path) -> str:
    """Every check a load makes (`generate` loads the same way), without sampling; returns
    the manifest's SHA-256. `evaluate` runs it, so it accepts exactly what `generate` does."""
    return _load_checked(path)[2]


def load(path: str | Path) -> Any:
    """Load a model bundle written by `Synthesizer.save`."""
    return load_bundle(path)
