"""The model bundle's manifest: ONE validated reading of `manifest.json`.

Every consumer of a bundle (`generate`, `inspect`, `evaluate`, the job runner, the
dashboard through the report) reads the manifest through `read_manifest`, so what it
receives has passed the same checks, in this order:

1. size and shape of the text before it is parsed: at most `MAX_MANIFEST_BYTES`, UTF-8,
   nesting at most `MAX_DEPTH` deep (a scan of the text without recursion, before the
   recursive parser runs), integers of at most `MAX_INT_DIGITS` digits (a 5,000-digit
   integer would otherwise hit Python's global 4,300-digit limit; `parse_int` refuses it
   without touching that global), no NaN or infinity;
2. the SHA-256 of `manifest.json` against the `manifest.sha256` file that `save` writes
   beside it. This detects a manifest that was edited, truncated or half copied. It is no
   signature: whoever can rewrite both files can forge both; what was reviewed is pinned by
   the registry, which records the manifest's SHA-256 in the report of the run;
3. the structure (`BundleManifest`, pydantic v2, strict types, unknown keys refused):
   model class from a fixed list, hyperparameters typed and bounded per class (no forged
   manifest allocates gigabytes), the schema, the DP ledger and a privacy summary that must
   agree with that ledger, per-column transformer states that must load into the schema's
   transformer, bundle-relative paths only, SHA-256 digests for every listed file;
4. a private bundle records no seed (its DP noise never came from one).

The model adds nothing to the manifest: it only checks what `save` wrote, so a private
bundle holds no new value derived from private data. Errors are one `ArtifactError` line
naming the bundle, the field and the fix; no value is echoed from the manifest (a forged
manifest is untrusted, and a genuine one is not for error messages either).

This module never imports torch: `reports` reads bundles through it. The checks that need
the accountant (the numbers of the privacy summary) or the networks (the weights' shapes)
run in `synthkit.bundle`, which every loader of a model goes through.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from synthkit.errors import ArtifactError

FORMAT = "synthkit-model-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
WEIGHTS = "weights.safetensors"

MAX_MANIFEST_BYTES = 16 * 1024 * 1024  # a 300-column model with 64-bin pair tables writes ~5 MB
MAX_DEPTH = 32                         # what `save` writes is at most 7 deep
MAX_INT_DIGITS = 40                    # seeds (up to 2**128) are the longest integers written
MAX_WEIGHTS_BYTES = 1 << 30            # checked before the weights are hashed or read
MAX_PARAMETERS = 64 * 1024 * 1024      # 256 MB of float32: far above any network synthkit fits

# hyperparameter limits: generous for real use, small enough that no forged manifest
# allocates gigabytes (the weights' shapes are then checked against the network built
# from these, before any weight is read: synthkit.bundle)
MAX_DIM = 8192
MAX_LAYERS = 16
MAX_EPOCHS = 1_000_000
MAX_BATCH = 100_000_000
MAX_STATES = 512
MAX_LENGTH = 1_000_000
MAX_SEED = 2**128
MAX_LIST = 5_000_000  # entries of one list in a state (the byte cap bounds it first)

_FIX = "restore the bundle from its original copy or fit the model again"


# ====================================================================== parsing
class _TooLong(Exception):
    pass


class _NotFinite(Exception):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooLong
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 400:
        raise _TooLong
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite
    return value


def _parse_constant(text: str) -> float:
    raise _NotFinite


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def _depth(raw: bytes) -> int:
    """Nesting depth of a JSON text, before it is parsed and without recursion: strings
    removed, then a running count of brackets (vectorised: a 16 MB text takes ~0.1 s)."""
    import numpy as np
    brackets = _JSON_STRING.sub(b"", raw).translate(None, delete=_NOT_BRACKET)
    if not brackets:
        return 0
    a = np.frombuffer(brackets, dtype=np.uint8)
    return int(np.cumsum(np.where((a == ord("[")) | (a == ord("{")), 1, -1)).max())


def _where(path: Path | str) -> str:
    """The bundle as named in messages: the path given, on one line."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(path))
    return text if len(text) <= 300 else text[:297] + "..."


def _clean(text: str, limit: int = 80) -> str:
    """One printable line of at most `limit` characters (keys of a forged manifest may
    hold newlines or be megabytes long)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    text = text.replace("[", "(").replace("]", ")")  # no console markup from a forged key
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_manifest(raw: bytes, *, where: str) -> dict[str, Any]:
    """Bytes of a manifest → the JSON object, with the caps of step 1 (module docstring)."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} is larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MB; "
                            f"it was not written by synthkit; {_FIX}")
    if _depth(raw) > MAX_DEPTH:
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} is nested more than {MAX_DEPTH} levels deep; {_FIX}")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except _TooLong:
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} holds a number longer than {MAX_INT_DIGITS} digits; "
                            f"it was not written by synthkit; {_FIX}") from None
    except _NotFinite:
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} holds NaN or an infinite number; {_FIX}") from None
    except RecursionError:
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} is nested more than {MAX_DEPTH} levels deep; "
                            f"{_FIX}") from None
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} is not valid UTF-8 JSON; the bundle is corrupt; "
                            f"{_FIX}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} is not a JSON object; it is no synthkit model bundle")
    return data


def manifest_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _read_capped(path: Path, cap: int, *, where: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read(cap + 1)
    except OSError:
        raise ArtifactError(f"bundle {where!r}: {what} cannot be read; check the folder's permissions") from None
    if len(raw) > cap:
        raise ArtifactError(f"bundle {where!r}: {what} is larger than {cap} bytes; it was not written by synthkit; "
                            f"{_FIX}")
    return raw


def _recorded_digest(folder: Path, *, where: str) -> str:
    side = folder / MANIFEST_HASH
    if not side.is_file():
        raise ArtifactError(f"bundle {where!r} has no {MANIFEST_HASH} (the SHA-256 of its manifest): it was written "
                            f"by an older synthkit or copied incompletely; copy the whole folder, or fit the model "
                            "again with this synthkit")
    text = _read_capped(side, 1024, where=where, what=MANIFEST_HASH).decode("ascii", errors="replace")
    parts = text.split()
    if not parts or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
        raise ArtifactError(f"bundle {where!r}: {MANIFEST_HASH} holds no SHA-256 digest; {_FIX}")
    return parts[0]


# ====================================================================== the model
_STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ShortStr = Annotated[str, StringConstraints(max_length=1000)]
Text = Annotated[str, StringConstraints(max_length=20_000)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Real = float  # finite by parsing (NaN and infinities are refused before validation)
Share = Annotated[float, Field(gt=0, lt=1)]
Dim = Annotated[int, Field(ge=1, le=MAX_DIM)]
Dims = Annotated[list[Dim], Field(min_length=0, max_length=MAX_LAYERS)]
Epochs = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
Batch = Annotated[int, Field(ge=2, le=MAX_BATCH)]
Seed = Annotated[int, Field(ge=0, lt=MAX_SEED)]
PositiveScale = Annotated[float, Field(gt=0, le=1e6)]
Noise = Annotated[float, Field(ge=0, le=1e6)]
Rate = Annotated[float, Field(gt=0, le=10.0)]
Device = Literal["auto", "cpu", "cuda"]
RelPath = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class _Strict(BaseModel):
    model_config = _STRICT


# ---------------------------------------------------------------- hyperparameters
class _TableParams(_Strict):
    epochs: Epochs
    batch_size: Batch | None  # None (before a fit only): adapts to the DP unit count; a bundle holds the chosen one
    max_rows_per_entity: Annotated[int, Field(ge=1, le=100_000)]
    preprocessing_epsilon_share: Share
    max_grad_norm: PositiveScale
    noise_multiplier: Noise | None
    calibrate_marginals: bool
    calibrate_dependence: bool
    calibrate_pairs: bool
    device: Device
    seed: Seed | None = None
    embedding_dim: Dim


class DPTVAEParams(_TableParams):
    compress_dims: Dims
    decompress_dims: Dims
    lr: Rate
    l2scale: Annotated[float, Field(ge=0, le=1.0)]
    loss_factor: PositiveScale


class DPCTGANParams(_TableParams):
    generator_dim: Dims
    critic_dim: Dims
    generator_lr: Rate
    critic_lr: Rate
    critic_steps: Annotated[int, Field(ge=1, le=100)]


class DPHMMParams(_Strict):
    n_states: Annotated[int, Field(ge=1, le=MAX_STATES)]
    epochs: Epochs
    batch_size: Batch | None  # None (before a fit only): adapts to the DP entity count
    lr: Rate
    max_length: Annotated[int, Field(ge=1, le=MAX_LENGTH)] | None
    length_quantile: Annotated[float, Field(gt=0, le=1)]
    preprocessing_epsilon_share: Share
    context_epsilon_share: Share
    max_grad_norm: PositiveScale
    noise_multiplier: Noise | None
    context_model: Literal["dptvae", "dpctgan"]
    context_epochs: Epochs
    context_batch_size: Batch | None
    context_hidden: Dims
    context_embedding_dim: Dim
    terminal_column: Name | None
    terminal_value: ShortStr | None
    time_unit: Annotated[str, StringConstraints(max_length=32)] | None
    max_gap_categories: Annotated[int, Field(ge=0, le=100_000)]
    max_integer_categories: Annotated[int, Field(ge=2, le=100_000)]
    max_gap: Annotated[float, Field(gt=0, le=1e300, allow_inf_nan=False)] | None = None  # public (--max-gap)
    non_decreasing: Annotated[list[Name], Field(max_length=10_000)] = []  # public: declared rising columns
    # the event margins' share of ε (0: none); bundles written before the margins had none
    margins_epsilon_share: Annotated[float, Field(ge=0, lt=1)] = 0.0
    device: Device
    seed: Seed | None = None

    @model_validator(mode="after")
    def _shares(self) -> DPHMMParams:
        if self.preprocessing_epsilon_share + self.context_epsilon_share + self.margins_epsilon_share >= 1:
            raise ValueError("preprocessing_epsilon_share + context_epsilon_share + margins_epsilon_share must stay "
                             "below 1")
        if (self.terminal_column is None) != (self.terminal_value is None):
            raise ValueError("terminal_column and terminal_value go together")
        return self


HYPERPARAMETERS: dict[str, type[_Strict]] = {"DPTVAE": DPTVAEParams, "DPCTGAN": DPCTGANParams, "DPHMM": DPHMMParams}
MODEL_NAMES = {"DPTVAE": "dptvae", "DPCTGAN": "dpctgan", "DPHMM": "dphmm"}


class ModelSection(_Strict):
    class_: Literal["DPTVAE", "DPCTGAN", "DPHMM"] = Field(alias="class")
    name: Literal["dptvae", "dpctgan", "dphmm"]
    hyperparameters: dict[str, Any]

    @model_validator(mode="after")
    def _params(self) -> ModelSection:
        if MODEL_NAMES[self.class_] != self.name:
            raise ValueError(f"the name must be {MODEL_NAMES[self.class_]!r} for class {self.class_}")
        return self


# ---------------------------------------------------------------- privacy
class GaussianEventModel(_Strict):
    kind: Literal["gaussian"]
    name: ShortStr
    sigma: Annotated[float, Field(gt=0)]
    sensitivity: Annotated[float, Field(gt=0)]
    count: Annotated[int, Field(ge=1, le=10**9)] = 1


class SampledGaussianEventModel(_Strict):
    kind: Literal["sampled_gaussian"]
    name: ShortStr
    sampling_rate: Annotated[float, Field(gt=0, le=1)]
    noise_multiplier: Annotated[float, Field(ge=0)]
    steps: Annotated[int, Field(ge=0, le=10**9)]


class ThresholdEventModel(_Strict):
    kind: Literal["threshold"]
    name: ShortStr
    delta: Annotated[float, Field(ge=0, le=1)]


DPEventModel = Annotated[Union[GaussianEventModel, SampledGaussianEventModel, ThresholdEventModel],
                         Field(discriminator="kind")]


class BudgetModel(_Strict):
    epsilon: Annotated[float, Field(gt=0, le=1e6)]
    delta: Annotated[float, Field(ge=0, lt=1)]


class LedgerModel(_Strict):
    budget: BudgetModel | None
    unit: Literal["row", "entity"]
    max_rows_per_unit: Annotated[int, Field(ge=1, le=MAX_LENGTH)]
    events: Annotated[list[DPEventModel], Field(max_length=1_000_000)]
    notes: Annotated[list[Text], Field(max_length=1000)]


class SummaryEventModel(_Strict):
    name: ShortStr
    kind: Literal["gaussian", "sampled_gaussian", "threshold"]
    epsilon_alone: Annotated[float, Field(ge=0)]
    delta_alone: Annotated[float, Field(ge=0, le=1)] | None
    details: dict[str, Union[int, float, None]]


class PrivateSummary(_Strict):
    private: Literal[True]
    guarantee: ShortStr
    target_epsilon: float
    target_delta: float
    epsilon_spent: Annotated[float, Field(ge=0)]
    unit: Literal["row", "entity"]
    max_rows_per_unit: int
    accountant: ShortStr
    noise_source: Text
    events: Annotated[list[SummaryEventModel], Field(max_length=1_000_000)]
    notes: Annotated[list[Text], Field(max_length=1000)]


class PublicSummary(_Strict):
    private: Literal[False]
    guarantee: ShortStr
    unit: Literal["row", "entity"]
    max_rows_per_unit: int
    events: Annotated[list[SummaryEventModel], Field(max_length=0)]


class PrivacySection(_Strict):
    summary: Annotated[Union[PrivateSummary, PublicSummary], Field(discriminator="private")]
    ledger: LedgerModel

    @model_validator(mode="after")
    def _agree(self) -> PrivacySection:
        """The summary is what `inspect` prints and what reports copy: it must say what the
        ledger says. The epsilons themselves are recomputed by the accountant in
        synthkit.bundle (torch-free here); everything else is checked now."""
        from synthkit.ledger import _merge, event_from_dict
        s, led = self.summary, self.ledger
        if s.private != (led.budget is not None):
            raise ValueError("summary.private disagrees with the ledger's budget")
        if s.unit != led.unit or s.max_rows_per_unit != led.max_rows_per_unit:
            raise ValueError("summary.unit or summary.max_rows_per_unit disagrees with the ledger")
        if isinstance(s, PublicSummary):
            if s.guarantee != "no formal privacy guarantee (trained with --no-privacy)":
                raise ValueError("summary.guarantee of a bundle without a budget must say it has no formal guarantee")
            return self
        assert led.budget is not None
        if s.target_epsilon != led.budget.epsilon or s.target_delta != led.budget.delta:
            raise ValueError("summary.target_epsilon or summary.target_delta disagrees with the ledger's budget")
        if s.epsilon_spent > led.budget.epsilon * (1 + 1e-9):
            raise ValueError("summary.epsilon_spent is above the ledger's target epsilon")
        if s.guarantee != f"({s.epsilon_spent:.4g}, {led.budget.delta:.3g})-differential privacy per {led.unit}":
            raise ValueError("summary.guarantee disagrees with summary.epsilon_spent and the ledger")
        if list(s.notes) != list(led.notes):
            raise ValueError("summary.notes disagree with the ledger's notes")
        merged = _merge([event_from_dict(e.model_dump()) for e in led.events])
        if len(merged) != len(s.events):
            raise ValueError("summary.events disagree with the ledger's events")
        for e, row in zip(merged, s.events):
            details = {k: getattr(e, k) for k in e.__slots__ if k not in ("name", "kind")}
            if (row.name, row.kind) != (e.name, e.kind) or row.details != details \
                    or row.delta_alone != getattr(e, "delta", None):
                raise ValueError("summary.events disagree with the ledger's events")
        return self


# ---------------------------------------------------------------- transformer states
FloatList = Annotated[list[float], Field(max_length=MAX_LIST)]


class CategoricalState(_Strict):
    labels: Annotated[list[Annotated[str, StringConstraints(max_length=10_000)]], Field(min_length=1, max_length=MAX_LIST)]
    counts: FloatList
    tokens: Annotated[list[ShortStr], Field(min_length=2, max_length=2)] | None = None
    release_threshold: float | None = None
    floor: float | None = None

    @model_validator(mode="after")
    def _sizes(self) -> CategoricalState:
        if len(self.counts) != len(self.labels):
            raise ValueError("counts and labels differ in length")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels repeat")
        return self


class NumericState(_Strict):
    bounds: Annotated[list[float], Field(min_length=2, max_length=2)]
    means: Annotated[list[float], Field(min_length=1, max_length=10_000)]
    stds: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1, max_length=10_000)]
    weights: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1, max_length=10_000)]
    null_share: Annotated[float, Field(ge=0, le=1)] | None = None
    tz: Annotated[str, StringConstraints(max_length=64)] | None = None
    edges: FloatList | None = None
    histogram: FloatList | None = None
    empty: bool = False

    @model_validator(mode="after")
    def _sizes(self) -> NumericState:
        lo, hi = self.bounds
        if lo > hi:
            raise ValueError("bounds are inverted")
        if not (len(self.means) == len(self.stds) == len(self.weights)):
            raise ValueError("means, stds and weights differ in length")
        if (self.edges is None) != (self.histogram is None):
            raise ValueError("edges and histogram go together")
        if self.edges is not None and self.histogram is not None:
            if len(self.edges) != len(self.histogram) + 1 or len(self.edges) < 2:
                raise ValueError("edges must be one longer than histogram")
            if any(b < a for a, b in zip(self.edges, self.edges[1:])):
                raise ValueError("edges are not sorted")
        return self


TransformState = Union[CategoricalState, NumericState]


# ---------------------------------------------------------------- sequence layout
class LayoutColumn(_Strict):
    name: Name
    kind: Literal["continuous", "integer", "categorical", "boolean", "datetime"]
    nullable: bool
    mode: Literal["categorical", "integer", "gaussian"]
    cat: Annotated[int, Field(ge=0)] | None = None
    gauss: Annotated[int, Field(ge=0)] | None = None
    null_cat: Annotated[int, Field(ge=0)] | None = None
    low: Annotated[int, Field(ge=-(2**62), le=2**62)] | None = None
    high: Annotated[int, Field(ge=-(2**62), le=2**62)] | None = None


class GapLayout(_Strict):
    labels: Annotated[list[float], Field(max_length=100_000)]
    cat: Annotated[int, Field(ge=0)]
    gauss: Annotated[int, Field(ge=0)]
    transform: NumericState


class AxisModel(_Strict):
    kind: Literal["datetime", "integer", "continuous"]
    unit: Literal["integer", "continuous", "day", "second"]
    tz: Annotated[str, StringConstraints(max_length=64)] | None = None

    @model_validator(mode="after")
    def _unit(self) -> AxisModel:
        if (self.kind == "datetime") != (self.unit in ("day", "second")) or \
                (self.kind != "datetime" and self.unit != self.kind):
            raise ValueError("unit does not fit kind")
        return self


class LayoutModel(_Strict):
    columns: Annotated[list[LayoutColumn], Field(max_length=10_000)]
    cat_sizes: Annotated[list[Annotated[int, Field(ge=1, le=1_000_000)]], Field(max_length=20_000)]
    n_gauss: Annotated[int, Field(ge=0, le=20_000)]
    d_context: Annotated[int, Field(ge=0, le=1_000_000)]
    gap: GapLayout | None
    axis: AxisModel
    max_length: Annotated[int, Field(ge=1, le=MAX_LENGTH)]
    min_length: Annotated[int, Field(ge=0, le=MAX_LENGTH)]
    two_tables: bool
    entity_key: Name
    sequence_index: Name
    context_columns: Annotated[list[Name], Field(max_length=10_000)]
    event_ids: Annotated[list[Name], Field(max_length=10_000)]
    context_ids: Annotated[list[Name], Field(max_length=10_000)] = []

    @model_validator(mode="after")
    def _indices(self) -> LayoutModel:
        n_cat = len(self.cat_sizes)
        if self.min_length > self.max_length:
            raise ValueError("min_length is above max_length")
        for e in self.columns:
            if e.mode in ("categorical", "integer") and (e.cat is None or e.cat >= n_cat):
                raise ValueError(f"column {_clean(e.name)!r}: its categorical channel is out of range")
            if e.mode == "integer" and (e.low is None or e.high is None or e.high < e.low
                                        or self.cat_sizes[e.cat] != e.high - e.low + 1 + int(e.nullable)):
                raise ValueError(f"column {_clean(e.name)!r}: its integer range disagrees with its channel")
            if e.mode == "gaussian":
                if e.gauss is None or e.gauss >= self.n_gauss:
                    raise ValueError(f"column {_clean(e.name)!r}: its Gaussian channel is out of range")
                if e.nullable and (e.null_cat is None or e.null_cat >= n_cat or self.cat_sizes[e.null_cat] != 2):
                    raise ValueError(f"column {_clean(e.name)!r}: its missing-value channel is out of range")
        if self.gap is not None:
            if self.gap.cat >= n_cat or self.gap.gauss >= self.n_gauss \
                    or self.cat_sizes[self.gap.cat] != len(self.gap.labels) + 1:
                raise ValueError("the gap channels are out of range")
        return self


def safe_relative(rel: str) -> str:
    """A path inside the bundle: relative, POSIX, no '..', no drive or root. Returns it
    normalised; raises ValueError otherwise (the message holds no part of the path)."""
    if "\\" in rel or "\x00" in rel or ":" in rel:
        raise ValueError("must be a relative path inside the bundle (no backslash, drive or NUL)")
    p = PurePosixPath(rel)
    if p.is_absolute() or any(part in ("..", "") for part in rel.split("/")) or str(p) in (".", ""):
        raise ValueError("must be a relative path inside the bundle (no '..', no leading '/')")
    return str(p)


class SequenceSection(_Strict):
    layout: LayoutModel
    context_schema: dict[str, Any]
    context_bundle: RelPath

    @model_validator(mode="after")
    def _path(self) -> SequenceSection:
        safe_relative(self.context_bundle)
        return self


# ---------------------------------------------------------------- the rest
class HoldoutRecord(_Strict):
    method: ShortStr
    fraction: Annotated[float, Field(gt=0, lt=1)]
    seed: Seed
    unit: Literal["row", "entity"]
    entity_key: Name | None
    key_id: ShortStr
    data_hmac: ShortStr


class SourceRecord(_Strict):
    kind: Annotated[str, StringConstraints(max_length=64)]
    location: Text


class TrainingRecord(_Strict):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)  # informational; typed where read
    sampling_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    noise_multiplier: Annotated[float, Field(ge=0)] | None = None
    steps: Annotated[int, Field(ge=0, le=10**12)] | None = None
    steps_per_epoch: Annotated[int, Field(ge=0, le=10**12)] | None = None
    epochs: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] | None = None
    device: Annotated[str, StringConstraints(max_length=64)] | None = None
    n_units_dp: Annotated[int, Field(ge=0, le=10**15)] | None = None
    max_length: Annotated[int, Field(ge=0, le=MAX_LENGTH)] | None = None


class BundleManifest(_Strict):
    """`manifest.json` as `synthkit.bundle.save_bundle` writes it (format version 1)."""

    format: Literal["synthkit-model-bundle"]
    format_version: Literal[1]
    versions: Annotated[dict[Annotated[str, StringConstraints(max_length=64)],
                             Annotated[str, StringConstraints(max_length=128)]], Field(max_length=64)]
    model: ModelSection
    schema_: dict[str, Any] = Field(alias="schema")
    privacy: PrivacySection
    transformer: Annotated[dict[Name, TransformState], Field(max_length=100_000)]
    dependence: dict[str, Any] | None
    pairs: dict[str, Any] | None
    training: TrainingRecord
    files: Annotated[dict[RelPath, Sha256], Field(min_length=1, max_length=16)]
    seed: Seed | None = None
    sequence: SequenceSection | None = None
    source: SourceRecord | None = None
    holdout: HoldoutRecord | None = None
    target: Name | None = None

    @model_validator(mode="after")
    def _whole(self) -> BundleManifest:
        from synthkit.schema import Schema
        from synthkit.transforms import CategoricalTransform, DataTransformer
        private = self.privacy.summary.private
        if private and ("seed" in self.model.hyperparameters or self.seed is not None):
            raise ValueError("a private bundle records no seed (its DP noise came from OS entropy); this one does")
        if WEIGHTS not in self.files:
            raise ValueError(f"files must list {WEIGHTS}")
        for rel in self.files:
            safe_relative(rel)
        schema = _schema(self.schema_, "schema")
        if (self.model.class_ == "DPHMM") != (self.sequence is not None):
            raise ValueError("a DPHMM bundle needs a 'sequence' section, and only a DPHMM bundle has one")
        if self.sequence is not None:
            # a sequence model without context columns has only the entity key here
            _schema(self.sequence.context_schema, "sequence.context_schema", require_learned=False)
            names = [e.name for e in self.sequence.layout.columns]
            if any(n not in schema for n in names):
                raise ValueError("sequence.layout.columns names a column the schema does not have")
            schema = Schema(columns=tuple(schema.column(n) for n in names))
            ctx = safe_relative(self.sequence.context_bundle)
            for name in (MANIFEST, WEIGHTS):
                if f"{ctx}/{name}" not in self.files:
                    raise ValueError(f"files must list the context bundle's {name} with its SHA-256")
        transformer = DataTransformer(schema)
        if set(transformer.transforms) != set(self.transformer):
            raise ValueError("the transformer's columns differ from the schema's learned columns")
        for name, t in transformer.transforms.items():
            state = self.transformer[name]
            if isinstance(state, CategoricalState) != isinstance(t, CategoricalTransform):
                raise ValueError(f"transformer state of column {_clean(name)!r} does not fit its kind")
            try:
                t.load_state_dict(state.model_dump())
            except Exception:  # noqa: BLE001 - any failure is a malformed state; no message reused
                raise ValueError(f"transformer state of column {_clean(name)!r} does not fit its kind") from None
        return self


def _schema(data: dict[str, Any], field: str, *, require_learned: bool = True) -> Any:
    from synthkit.errors import SchemaError
    from synthkit.schema import Schema
    try:
        schema = Schema.from_dict(data, require_learned=require_learned)
        canonical = schema.to_dict() == data
    except SchemaError as err:
        raise ValueError(f"{field} is invalid: {_clean('; '.join(err.problems), 200)}") from None
    except Exception:  # noqa: BLE001 - malformed beyond what Schema reports
        raise ValueError(f"{field} is malformed") from None
    if not canonical:  # readers (inspect, reports) rely on the form `save` writes
        raise ValueError(f"{field} is not in the form synthkit writes (each column a mapping with its kind)")
    return schema


def _problem(err: ValidationError) -> str:
    """The first problem of a pydantic error as 'field: what is wrong' (no input value:
    pydantic's `msg` never holds it; `loc` holds keys, cleaned and shortened)."""
    problems = err.errors(include_url=False, include_input=False, include_context=False)
    first = problems[0]
    loc = ".".join(_clean(str(p), 60) for p in first["loc"] if not str(p).startswith(("function-", "tagged-union")))
    msg = _clean(first["msg"].removeprefix("Value error, "), 240)
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{loc or 'manifest'}: {msg}{more}"


def check_hyperparameters(model: Any) -> None:
    """Refuse, before any data is touched or memory allocated, hyperparameters a bundle
    could not hold (the same bounds the loader applies), in one line naming the option."""
    from synthkit.errors import ConfigError

    cls = HYPERPARAMETERS.get(type(model).__name__)
    if cls is None:
        return
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in model.get_params().items()}
    try:
        cls.model_validate(params)
    except ValidationError as err:
        raise ConfigError(f"model option {_problem(err).replace('manifest', 'options', 1)}; "
                          "choose a value in the allowed range (see `synthkit fit --help`)") from None


def validate_manifest(data: dict[str, Any], *, where: str) -> BundleManifest:
    try:
        m = BundleManifest.model_validate(data)
    except ValidationError as err:
        raise ArtifactError(f"bundle {where!r}: manifest field {_problem(err)}; {_FIX}") from None
    try:
        HYPERPARAMETERS[m.model.class_].model_validate(m.model.hyperparameters)
    except ValidationError as err:
        raise ArtifactError(f"bundle {where!r}: manifest field model.hyperparameters.{_problem(err)}; "
                            f"{_FIX}") from None
    return m


def read_manifest(path: str | Path, *, expected_sha256: str | None = None) -> tuple[dict[str, Any], str]:
    """(manifest as written, SHA-256 of manifest.json), after every check of the module
    docstring. `expected_sha256`: a digest recorded elsewhere (a registry, a report) that
    must match too."""
    folder = Path(path)
    where = _where(folder)
    mf = folder / MANIFEST
    if not mf.is_file():
        raise ArtifactError(f"{where!r} is not a synthkit model bundle (no {MANIFEST}); give the folder that "
                            "`synthkit fit --out` wrote")
    raw = _read_capped(mf, MAX_MANIFEST_BYTES, where=where, what=MANIFEST)
    digest = manifest_digest(raw)
    data = parse_manifest(raw, where=where)
    if data.get("format") != FORMAT:
        raise ArtifactError(f"{where!r} is not a synthkit model bundle (its {MANIFEST} has another format)")
    if data.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"bundle {where!r}: manifest field format_version is not supported by this synthkit "
                            f"(supports {FORMAT_VERSION}); use the synthkit version that wrote it")
    if _recorded_digest(folder, where=where) != digest:
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} does not match the hash (SHA-256) in {MANIFEST_HASH} "
                            f"(modified or corrupt); {_FIX}")
    if expected_sha256 is not None and expected_sha256 != digest:
        raise ArtifactError(f"bundle {where!r}: {MANIFEST} is not the one recorded (its SHA-256 differs); {_FIX}")
    validate_manifest(data, where=where)
    return data, digest


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> str:
    """Write manifest.json and its manifest.sha256 (each via a temporary file and an
    atomic rename); returns the digest. `save_bundle` writes into a temporary folder that
    is renamed when complete, so a bundle never shows one without the other."""
    folder = Path(folder)
    raw = json.dumps(manifest, indent=2, allow_nan=False).encode("utf-8")
    digest = manifest_digest(raw)
    for name, data in ((MANIFEST, raw), (MANIFEST_HASH, f"{digest}  {MANIFEST}\n".encode("ascii"))):
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
    return digest


def resolve_inside(folder: Path, rel: str, *, where: str, field: str) -> Path:
    """`folder/rel`, refused if it leaves the folder (after symbolic links are followed)."""
    try:
        rel = safe_relative(rel)
    except ValueError as err:
        raise ArtifactError(f"bundle {where!r}: manifest field {field}: {err}; {_FIX}") from None
    base = folder.resolve()
    target = (folder / rel).resolve()
    if target != base and base not in target.parents:
        raise ArtifactError(f"bundle {where!r}: manifest field {field} leads outside the bundle (a symbolic link); "
                            f"{_FIX}")
    return target


_LABEL_MARKERS = ("__other__", "__null__")


def target_problems(manifest: dict[str, Any]) -> list[str]:
    """One line per declared target (`schema.targets`) that the bundle cannot generate as a
    target: a categorical or boolean target with fewer than 2 released classes (the others
    did not clear the DP noise and come back as '__other__'), or a numeric target whose DP
    range or histogram holds fewer than 2 values. Read from the bundle's DP state only
    (released labels and their noisy counts, DP ranges): post-processing, no charge; the
    lines quote column names and counts of released labels, never a value (issue 17)."""
    schema = manifest.get("schema") or {}
    states = manifest.get("transformer") or {}
    fix = ("declare its classes in the schema (`categories:` are public) or fit more rows or a larger epsilon")
    out = []
    for name in schema.get("targets") or ():
        state = states.get(name)
        if not isinstance(state, dict):
            continue
        if "labels" in state:
            labels, counts = state.get("labels") or [], state.get("counts")
            if not isinstance(counts, list) or len(counts) != len(labels):
                counts = [1.0] * len(labels)
            kept = [x for x, c in zip(labels, counts) if x not in _LABEL_MARKERS and isinstance(c, (int, float))
                    and c > 0]
            if len(kept) < 2:
                lost = ("none of its classes cleared the DP noise (every row is generated as '__other__')"
                        if not kept else "only 1 of its classes cleared the DP noise (the others are generated "
                        "as '__other__')")
                out.append(f"target column {name!r} lost its classes: {lost}, so the synthetic data cannot "
                           f"train a classifier for it; {fix}")
        elif "bounds" in state:
            bounds = state.get("bounds") or []
            hist = state.get("histogram")
            filled = sum(1 for c in hist if isinstance(c, (int, float)) and c > 0) if isinstance(hist, list) else 2
            flat = (bool(state.get("empty")) or len(bounds) != 2 or not bounds[1] > bounds[0] or filled < 2)
            if flat:
                out.append(f"target column {name!r} is degenerate: its DP range holds fewer than 2 distinct "
                           "values (the rest did not clear the DP noise), so the synthetic data cannot train a "
                           "model to predict it; declare its 'bounds' in the schema (public) or fit more rows "
                           "or a larger epsilon")
    return out
