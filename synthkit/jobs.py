"""Scheduled jobs: `synthkit run job.yaml` takes a source all the way to a release candidate.

    source -> split train/holdout -> fit (DP) -> generate -> evaluate -> gate
           -> pending review (a person approves in the dashboard or the CLI)
           -> or released, when the policy allows auto-release and every check passed

Why it is shaped like this:
- the spec is validated completely BEFORE any data is read (every problem listed at
  once), so a scheduler learns about a typo in seconds, not after an hour of training;
- idempotent: a run is identified by the spec's hash plus an optional run key (e.g. the
  date a nightly job is for). Re-running a settled job returns the recorded run and does
  nothing; only a FAILED attempt is retried. A release can therefore never happen twice;
- a failure at any step leaves no partial output: artefacts are staged in a folder with a
  temporary name that is renamed only when complete, releases are written only on
  approval (reports.release), and the registry records status "failed" with the step;
- logs go to stderr (one line per step, no private values) where cron and Airflow
  capture them; the run's status is in the registry for everything else.

Dependency arrows (DESIGN.md): synthkit may not import `connectors` or `reports` at module
level; this module imports them lazily inside the functions that need them.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from synthkit.errors import ConfigError, SynthkitError
from synthkit.partials import locked_partial

if TYPE_CHECKING:  # pandas loads with the data: `synthkit run` refuses a bad job file without it
    import pandas as pd

logger = logging.getLogger(__name__)

JOB_FORMAT_VERSION = 1
OutputFormat = Literal["csv", "parquet"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TOP = {"version", "name", "owner", "description", "source", "schema", "model", "privacy", "generate",
        "evaluation", "policy", "output", "intended_use", "seed", "registry", "device", "threads", "engine"}
_SOURCE = {"uri", "table", "query"}
_MODEL = {"name", "hyperparameters", "max_rows_per_entity"}
_PRIVACY = {"epsilon", "delta", "no_privacy"}
_GENERATE = {"rows", "chunk_size"}
_EVALUATION = {"holdout", "target"}
_OUTPUT = {"work_dir", "releases_dir", "format"}
_ENGINE = {"kind", "workers", "gpus", "address"}
ENGINE_KINDS = ("local", "ray")
# models whose DP-SGD loop runs on Ray Train workers (synthkit.distributed); the others run locally
ENGINE_MODELS = ("dptvae", "dpctgan", "dphmm")
# what a job may set through `model.hyperparameters` (the rest has its own key)
_RESERVED_HYPER = {"seed", "device", "max_rows_per_entity"}


class JobSpecError(SynthkitError):
    """A job file is invalid; carries every problem found."""

    def __init__(self, problems: list[str], *, where: str) -> None:
        self.problems = list(problems)
        msg = f"invalid job {where}: {problems[0]}" if len(problems) == 1 else \
            f"invalid job {where} ({len(problems)} problems): " + "; ".join(problems)
        super().__init__(msg)


class JobFailed(SynthkitError):
    """A step of a job failed; the run is recorded as failed and nothing was released."""

    def __init__(self, run_id: str, step: str, message: str) -> None:
        self.run_id, self.step = run_id, step
        super().__init__(f"run {run_id} failed at step {step!r}: {message}")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A validated job. Paths are absolute (relative ones resolve against the job file)."""

    name: str
    owner: str | None
    description: str
    source_uri: str
    source_table: str | None
    source_query: str | None
    schema_path: Path | None  # None: a private fit decides the kinds under DP, as `synthkit fit` does
    model: str
    hyperparameters: dict[str, Any]
    max_rows_per_entity: int
    epsilon: float | None          # None only with no_privacy
    delta: float
    no_privacy: bool
    rows: int
    chunk_size: int
    holdout: float
    target: str | None             # column to predict for ML-utility metrics
    policy: str                    # a shipped policy name or an absolute path
    work_dir: Path
    releases_dir: Path
    output_format: OutputFormat
    intended_use: str | None
    seed: int | None
    registry: str | None
    device: str
    threads: int | None = None     # CPU threads (synthkit.threads); None: $SYNTHKIT_THREADS or the default
    engine: str = "local"          # where DP-SGD runs: local (one process) or ray (Ray Train workers)
    workers: int = 1
    gpus: float = 0                # GPUs per Ray worker
    ray_address: str | None = None  # a running Ray cluster; None: Ray starts in this process
    raw: dict[str, Any] = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the spec as written: the idempotency identity of the job."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode("utf-8")).hexdigest()

    def redacted(self) -> dict[str, Any]:
        """The spec as recorded in the registry: credentials in URIs replaced by ***."""
        raw = json.loads(json.dumps(self.raw, default=str))
        if isinstance(raw.get("source"), dict) and isinstance(raw["source"].get("uri"), str):
            raw["source"]["uri"] = redact_uri(raw["source"]["uri"])
        if isinstance(raw.get("registry"), str):
            raw["registry"] = redact_uri(raw["registry"])
        return raw


def redact_uri(uri: str) -> str:
    """`scheme://user:secret@host/...` -> `scheme://user:***@host/...`."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", uri)


def source_kind(uri: str) -> str:
    """What kind of source a URI names (for the data card), without its location."""
    if "://" in uri:
        return uri.split("://", 1)[0].split("+", 1)[0].lower()
    suffix = Path(uri).suffix.lower().lstrip(".")
    return f"{suffix} file" if suffix else "file"


# ---------------------------------------------------------------------------- loading
def load_job(path: str | os.PathLike[str]) -> JobSpec:
    """Read and validate a job YAML file; raise one JobSpecError listing every problem."""
    from synthkit import safeload
    p = Path(path)
    if not p.is_file():
        raise JobSpecError(["no such file"], where=str(p))
    try:  # bounded size, depth and YAML alias expansion (see synthkit.safeload)
        data = safeload.load_yaml(safeload.read_text(p, max_bytes=safeload.JOB_MAX_BYTES, where=str(p)),
                                  where=str(p))
    except safeload.InputLimitError as err:
        raise JobSpecError([err.problem], where=str(p)) from None
    return parse_job(data, base_dir=p.resolve().parent, where=str(p))


def parse_job(data: Any, *, base_dir: Path, where: str = "spec") -> JobSpec:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise JobSpecError([f"expected a mapping at the top level, got {type(data).__name__}"], where=where)
    _unknown(data, _TOP, "top level", problems)
    version = data.get("version", JOB_FORMAT_VERSION)
    if version != JOB_FORMAT_VERSION:
        problems.append(f"version must be {JOB_FORMAT_VERSION}, got {version!r}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"'name' must be a short lowercase name ([a-z0-9_-], up to 64), got {name!r}")
    owner = _opt_str(data, "owner", problems)
    description = _opt_str(data, "description", problems) or ""
    intended_use = _opt_str(data, "intended_use", problems)

    source = _section(data, "source", _SOURCE, problems, required=True)
    uri = source.get("uri")
    if not isinstance(uri, str) or not uri:
        problems.append("source.uri is required (a file path or a connector URI)")
        uri = ""
    elif "://" not in uri:
        uri = str(_resolve(uri, base_dir))
        if not Path(uri).exists():
            problems.append(f"source.uri: file {redact_uri(str(source.get('uri')))!r} does not exist")
    table, query = _opt_str(source, "table", problems, "source."), _opt_str(source, "query", problems, "source.")

    schema_path = None
    entity_key = None  # the loaded schema's, for the max_rows_per_entity check below
    if data.get("schema") is None:
        pass  # optional, as for `synthkit fit`: without it a private fit decides the kinds under DP
    elif not isinstance(data.get("schema"), str):
        problems.append("'schema' must be the path of a schema.yaml with column kinds and PUBLIC "
                        "bounds/categories (`synthkit schema infer` writes a draft), or left out (kinds "
                        "decided under DP by the fit)")
    else:
        schema_path = _resolve(data["schema"], base_dir)
        try:
            from synthkit.schema import Schema
            entity_key = Schema.load(schema_path).entity_key
        except SynthkitError as err:
            problems.append(f"schema: {err}")

    model = _section(data, "model", _MODEL, problems, required=True)
    model_name = model.get("name")
    # the models' names and hyperparameters as synthkit.manifest lists them (no torch: a
    # scheduler learns about a typo at once, not after torch loads)
    from synthkit.manifest import HYPERPARAMETERS, MODEL_NAMES
    by_name = {name: cls for cls, name in MODEL_NAMES.items()}
    if model_name not in by_name:
        problems.append(f"model.name must be one of {sorted(by_name)}, got {model_name!r}")
    elif model_name == "dphmm":
        # the job runner fits table models; a sequence model needs its context table, entity
        # key and sequence index, which a job spec has no fields for (it failed at run time)
        problems.append("model.name dphmm: a job runs the table models (dptvae, dpctgan); fit a sequence model "
                        "with `synthkit fit EVENTS --model dphmm --entity-key ... --sequence-index ...` and "
                        "`synthkit generate MODEL --entities N`")
    hyper = model.get("hyperparameters") or {}
    if not isinstance(hyper, dict):
        problems.append("model.hyperparameters must be a mapping")
        hyper = {}
    elif model_name in by_name:
        allowed = set(HYPERPARAMETERS[by_name[model_name]].model_fields) - _RESERVED_HYPER
        bad = sorted(set(hyper) - allowed)
        if bad:
            problems.append(f"model.hyperparameters: unknown for {model_name}: {bad}; allowed: {sorted(allowed)}")
    k = model.get("max_rows_per_entity", 1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        problems.append(f"model.max_rows_per_entity must be a whole number >= 1, got {k!r}")
        k = 1
    elif k > 1 and entity_key is None and not any(p.startswith("schema") for p in problems):
        # no entity key declared (no schema, or one without entity_key): the unit is the row
        # and k would be dropped silently (reviews R2, R3 of session 9)
        problems.append("model.max_rows_per_entity > 1 needs a schema that declares the entity key "
                        "(add entity_key to the schema, or remove max_rows_per_entity)")

    privacy = _section(data, "privacy", _PRIVACY, problems, required=True)
    no_privacy = privacy.get("no_privacy", False)
    epsilon, delta = privacy.get("epsilon"), privacy.get("delta", 1e-6)
    if not isinstance(no_privacy, bool):
        problems.append("privacy.no_privacy must be true or false")
        no_privacy = False
    if no_privacy and epsilon is not None:
        problems.append("privacy: no_privacy and epsilon contradict each other; choose one")
    elif not no_privacy:
        if epsilon is None:
            problems.append("privacy.epsilon is required (or no_privacy: true for a run with no formal "
                            "guarantee, which no shipped policy releases)")
        else:
            try:
                from synthkit.ledger import PrivacyBudget
                PrivacyBudget(epsilon=epsilon, delta=delta)
            except (ConfigError, TypeError) as err:
                problems.append(f"privacy: {err}")

    gen = _section(data, "generate", _GENERATE, problems, required=True)
    rows, chunk = gen.get("rows"), gen.get("chunk_size", 100_000)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        problems.append(f"generate.rows must be a whole number >= 1, got {rows!r}")
        rows = 1
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        problems.append(f"generate.chunk_size must be a whole number >= 1, got {chunk!r}")
        chunk = 100_000

    ev = _section(data, "evaluation", _EVALUATION, problems)
    holdout = ev.get("holdout", 0.2)
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0.05 <= holdout <= 0.5:
        problems.append(f"evaluation.holdout must be a share between 0.05 and 0.5, got {holdout!r}")
        holdout = 0.2
    target = _opt_str(ev, "target", problems, "evaluation.")

    policy = data.get("policy", "default")
    if not isinstance(policy, str):
        problems.append("'policy' must be a shipped policy name or a path")
        policy = "default"
    else:
        from reports.policy import load_policy, shipped_policies
        if policy not in shipped_policies():
            policy = str(_resolve(policy, base_dir))
        try:
            load_policy(policy)
        except SynthkitError as err:
            problems.append(f"policy: {err}")

    out = _section(data, "output", _OUTPUT, problems)
    fmt = out.get("format", "csv")
    if fmt not in ("csv", "parquet"):
        problems.append(f"output.format must be csv or parquet, got {fmt!r}")
        fmt = "csv"
    work_dir = _resolve(out.get("work_dir", ".synthkit/work"), base_dir)
    releases_dir = _resolve(out.get("releases_dir", "releases"), base_dir)

    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        problems.append(f"seed must be a whole number >= 0 (development runs only), got {seed!r}")
        seed = None
    registry = _opt_str(data, "registry", problems)
    device = data.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        problems.append(f"device must be auto, cpu or cuda, got {device!r}")
        device = "auto"
    threads = data.get("threads")
    if threads is not None:
        from synthkit.threads import check_threads
        try:
            check_threads(threads, "threads")
        except ConfigError as err:
            problems.append(str(err))
            threads = None

    engine = _section(data, "engine", _ENGINE, problems)
    engine_kind, workers = engine.get("kind", "local"), engine.get("workers", 1)
    gpus, address = engine.get("gpus", 0), engine.get("address")
    problems += engine_problems(engine_kind, workers, gpus, address, model=model_name)

    if problems:
        raise JobSpecError(problems, where=where)
    return JobSpec(name=name, owner=owner, description=description, source_uri=uri, source_table=table,
                   source_query=query, schema_path=schema_path, model=model_name, hyperparameters=dict(hyper),
                   max_rows_per_entity=k, epsilon=None if no_privacy else float(epsilon), delta=float(delta),
                   no_privacy=no_privacy, rows=rows, chunk_size=chunk, holdout=float(holdout), target=target, policy=policy,
                   work_dir=work_dir, releases_dir=releases_dir, output_format=fmt, intended_use=intended_use,
                   seed=seed, registry=registry, device=device, threads=threads, engine=engine_kind,
                   workers=workers, gpus=gpus, ray_address=address, raw=data)


def checked_engine(engine: Any, workers: Any, gpus_per_worker: Any, ray_address: Any, *, model: Any) -> dict[str, Any]:
    """A model's `fit(engine=..., workers=..., gpus_per_worker=..., ray_address=...)` checked
    (`engine_problems`, named as those arguments; one ConfigError with every problem) and
    returned as the record the model keeps in `_engine`."""
    problems = engine_problems(engine, workers, gpus_per_worker, ray_address, model=model,
                               names=("engine", "workers", "gpus_per_worker", "ray_address"))
    if problems:
        raise ConfigError("; ".join(problems))
    return {"engine": engine, "workers": workers, "gpus_per_worker": gpus_per_worker, "ray_address": ray_address}


def engine_problems(kind: Any, workers: Any, gpus: Any, address: Any, *, model: Any,
                    names: tuple[str, str, str, str] = ("engine.kind", "engine.workers", "engine.gpus",
                                                        "engine.address")) -> list[str]:
    """Every problem of an engine choice (`synthkit fit --engine ...` or a job's `engine:`),
    each naming the option and the fix; no torch, no Ray (checked before they load)."""
    k_name, w_name, g_name, a_name = names
    problems = []
    if kind not in ENGINE_KINDS:
        problems.append(f"{k_name} must be one of {', '.join(ENGINE_KINDS)}, got {kind!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        problems.append(f"{w_name} must be a whole number >= 1, got {workers!r}")
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not gpus >= 0:
        problems.append(f"{g_name} must be a number >= 0 (0: CPU workers), got {gpus!r}")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        problems.append(f"{a_name} must be a Ray address (ray://host:10001 or auto), got {address!r}")
    if kind == "local" and (workers != 1 or gpus not in (0, 0.0) or address is not None):
        used = [n for n, v, d in ((w_name, workers, 1), (g_name, gpus, 0), (a_name, address, None)) if v != d]
        problems.append(f"{', '.join(used)} apply to the ray engine only; set {k_name} ray or leave them out")
    if kind == "ray" and model not in ENGINE_MODELS:
        problems.append(f"{k_name} ray supports the {', '.join(ENGINE_MODELS)} models, got {model!r}; use "
                        f"one of them, or the local engine for {model}")
    return problems


def _resolve(value: Any, base: Path) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _unknown(d: dict[str, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    extra = sorted(str(k) for k in d if k not in allowed)
    if extra:
        problems.append(f"unknown key(s) {extra} in {where}; allowed: {sorted(allowed)}")


def _section(data: dict[str, Any], key: str, allowed: set[str], problems: list[str], *,
             required: bool = False) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            problems.append(f"'{key}' is required")
        return {}
    if not isinstance(value, dict):
        problems.append(f"'{key}' must be a mapping")
        return {}
    _unknown(value, allowed, key, problems)
    return value


def _opt_str(d: dict[str, Any], key: str, problems: list[str], prefix: str = "") -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(f"{prefix}{key} must be text, got {type(value).__name__}")
        return None
    return value


# ---------------------------------------------------------------------------- running
@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    run_id: str
    status: str                 # pending_review | gate_rejected | released | ... (see reports.registry)
    created: bool               # False: an earlier run with the same key already settled (nothing was done)
    gate_summary: str | None
    release_path: str | None    # only a release whose folder's manifest matches its record
    registry: str               # the registry URL, password hidden
    # events of the run that do not verify (reports.release.trail_check: a forged "approved"
    # or "released" event, a release row without its release): numbers only; `status`
    # leaves them out
    unverified_events: tuple[int, ...] = ()


def runner_account() -> str:
    """Who runs this process: the OS account of the effective uid, from the password
    database. Not getpass.getuser(), which believes $LOGNAME/$USER: the four-eyes rule
    must rest on an identity the runner cannot declare."""
    try:
        import pwd
        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # no password database (Windows, a container's bare uid)
        uid = getattr(os, "geteuid", lambda: None)()
        return f"uid-{uid}" if uid is not None else getpass.getuser()


def display_user() -> str | None:
    """$SYNTHKIT_USER: a display name for the runner, recorded next to the OS account and
    never used as the identity."""
    return os.environ.get("SYNTHKIT_USER") or None


def default_user() -> str:
    return runner_account()


JOB_STAGES = ("fit", "generate", "evaluate", "gate")  # what `run_job`'s `progress` is told


def run_job(spec: JobSpec | str | os.PathLike[str], *, registry: Any = None, run_key: str | None = None,
            run_by: str | None = None, progress: Any = None) -> JobResult:
    """Run a job end to end (see the module docstring). `registry` is a Registry or a URL
    (default: the spec's, else reports.registry.default_registry(): $SYNTHKIT_REGISTRY, else the per-user one).
    `progress(stage, done, total)`, when given, is told each of JOB_STAGES as it starts
    (done: the stages completed) and (gate, 4, 4) once the decision is recorded (the demo
    prints a line per stage); each step's own progress goes to this module's log.

    The run is recorded as run by this process's OS account (`runner_account`); `run_by`
    and $SYNTHKIT_USER only add a display name, so nobody can name someone else as the
    runner and then approve the run themselves."""
    from reports.registry import Registry, display_url

    if not isinstance(spec, JobSpec):
        spec = load_job(spec)
    from synthkit.threads import use_threads
    use_threads(spec.threads, where="the job's threads")  # the whole process: fit, generate, evaluate
    reg = registry if isinstance(registry, Registry) else Registry(registry or spec.registry)
    display = run_by or display_user()
    run_by = runner_account()
    key = spec.fingerprint + (f":{run_key}" if run_key else "")
    run, created = reg.claim_run(job_name=spec.name, idempotency_key=key, run_by=run_by, owner=spec.owner,
                                 spec=spec.redacted(), run_by_display=display)
    if not created:
        status = _verified(reg, run.run_id)[0]
        if status == "running":
            raise ConfigError(f"job {spec.name!r} is already running as {run.run_id} (started by {run.run_by}); "
                              "wait for it, or use another --run-key")
        logger.info("run %s: job %r already settled (%s); nothing to do", run.run_id, spec.name, status)
        return _result(reg, run.run_id, created=False)

    logger.info("run %s: started job %r (attempt %d) by %s; registry %s", run.run_id, spec.name, run.attempt,
                run_by, display_url(reg.url))
    # a locked partial (synthkit.partials): a job killed with SIGKILL leaves one that the
    # next run of the same run id removes; the lock is held until the job ends
    hold_partial = ExitStack()
    staging = hold_partial.enter_context(locked_partial(_mkdir(spec.work_dir) / run.run_id, folder=True))
    step = "read"
    try:
        train, holdout, schema = _read(spec)
        reg.add_event(run.run_id, step="read", message=f"read source ({source_kind(spec.source_uri)}); "
                                                        f"holdout share {spec.holdout:g}")
        step = "fit"
        _stage(progress, step)
        model_dir = _fit(spec, train, schema, staging / "model")
        reg.add_event(run.run_id, step="fit", message=f"fitted {spec.model}")
        step = "generate"
        _stage(progress, step)
        synthetic_path = _generate(spec, model_dir, staging / f"synthetic.{spec.output_format}")
        reg.add_event(run.run_id, step="generate", message=f"generated {spec.rows} rows")
        step = "evaluate"
        _stage(progress, step)
        report = _evaluate(spec, train, holdout, synthetic_path, model_dir, schema)
        report.save(staging / "report.json")
        reg.add_event(run.run_id, step="evaluate", message=f"evaluated {len(report.metrics)} metrics")
        step = "stage"
        final = spec.work_dir / run.run_id
        staging.rename(final)
        staging = final
        from reports.release import sha256_file
        synthetic_final = final / synthetic_path.name
        reg.add_event(run.run_id, step="staged", message="artefacts staged for review", details={
            "dir": str(final), "synthetic": str(synthetic_final), "synthetic_sha256": sha256_file(synthetic_final),
            "report": str(final / "report.json"), "report_sha256": sha256_file(final / "report.json"),
            "model_dir": str(final / "model"), "releases_dir": str(spec.releases_dir),
            "source_kind": source_kind(spec.source_uri), "intended_use": spec.intended_use,
            "policy": spec.policy})
        step = "gate"
        _stage(progress, step)
        decision = _gate(spec, report)
        logger.info("run %s: %s", run.run_id, decision.summary())
        for c in decision.failures:
            logger.info("run %s: check failed: %s observed %s, required %s", run.run_id, c.metric, c.observed,
                        c.threshold)
        status = "pending_review" if decision.passed else "gate_rejected"
        reg.add_decision(run.run_id, policy_name=decision.policy, policy_sha256=decision.policy_sha256,
                         passed=decision.passed, decision=decision.to_dict(), status=status,
                         message=decision.summary())
        if progress is not None:
            progress("gate", len(JOB_STAGES), len(JOB_STAGES))
        if decision.passed and decision.auto_release:
            step = "release"
            from reports.release import auto_release
            auto_release(reg, run.run_id, policy_name=decision.policy)
    except BaseException as err:
        if step != "release":  # before a decision, staged artefacts are of no use to anyone
            shutil.rmtree(staging, ignore_errors=True)
        # A SynthkitError's message is written for users and never holds data values; any
        # other exception is reported by type only (its message might hold a value).
        message = str(err) if isinstance(err, SynthkitError) else f"{type(err).__name__} (unexpected)"
        if step != "release":
            try:
                reg.add_event(run.run_id, status="failed", step=step, message=message)
            except Exception:  # noqa: BLE001 - the original error matters more
                logger.exception("run %s: could not record the failure in the registry", run.run_id)
        else:
            reg.add_event(run.run_id, step="release", message=f"auto-release failed: {message}")
        logger.error("run %s: failed at step %s: %s", run.run_id, step, message)
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        raise JobFailed(run.run_id, step, message) from (err if isinstance(err, SynthkitError) else None)
    finally:
        hold_partial.close()
    result = _result(reg, run.run_id, created=True)
    logger.info("run %s: finished with status %s", run.run_id, result.status)
    return result


def _stage(progress: Any, step: str) -> None:
    if progress is not None:
        progress(step, JOB_STAGES.index(step), len(JOB_STAGES))


def _verified(reg: Any, run_id: str) -> tuple[str, tuple[int, ...]]:
    """The run's status replayed from its verified events and the events that do not verify
    (reports.release.trail_check). Not `Registry.status`: whoever can write the database can
    chain an "approved" or "released" event, and a job must not report or act on it. The
    reviewers file ($SYNTHKIT_REVIEWERS) is used when there is one to check the signatures'
    keys; without it their presence and form are still checked."""
    from reports.release import trail_check
    from reports.review import ReviewerConfig
    try:
        config: Any = ReviewerConfig.load()
    except SynthkitError as err:  # an unreadable reviewers file: check the form only, and say so
        logger.warning("run %s: reviewers file not usable (%s); signatures' keys not checked", run_id, err)
        config = None
    trail = trail_check(reg, config, run_id=run_id)
    bad = tuple(seq for seq, _why in trail.forged.get(run_id, ()))
    for seq, why in trail.forged.get(run_id, ()):
        logger.warning("run %s: event #%d %s; it counts for nothing (run `synthkit releases audit`)",
                       run_id, seq, why)
    return trail.statuses.get(run_id, "running"), bad


def _result(reg: Any, run_id: str, *, created: bool) -> JobResult:
    from reports.registry import display_url
    from reports.release import release_record_findings
    decision = reg.decision(run_id)
    genuine = [rec for _seq, rec, problem in release_record_findings(reg, run_id) if problem is None]
    summary = None
    if decision is not None:
        from reports.gate import GateDecision
        summary = GateDecision.from_dict(decision.decision).summary()
    status, bad = _verified(reg, run_id)
    return JobResult(run_id=run_id, status=status, created=created, gate_summary=summary,
                     release_path=genuine[-1].path if genuine and status == "released" else None,
                     registry=display_url(reg.url), unverified_events=bad)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# ---------------------------------------------------------------------------- steps
# Module-level functions so that tests can inject a failure at each step.
def _read(spec: JobSpec) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """Read the source and split it into train and holdout by privacy unit
    (synthkit.split.holdout_split: all rows of an entity on one side), so that the holdout
    is made of people the model never saw: that is what lets the privacy metrics tell
    leakage from generalisation. The split's seed is fresh unless the spec has one."""
    import secrets

    import connectors
    from synthkit.schema import Schema
    from synthkit.split import holdout_split

    schema = Schema.load(spec.schema_path) if spec.schema_path is not None else None
    frame = connectors.read(spec.source_uri, table=spec.source_table, query=spec.source_query)
    seed = spec.seed if spec.seed is not None else secrets.randbits(63)
    key = schema.entity_key if schema is not None and schema.entity_key in frame.columns else None
    train, holdout, _record = holdout_split(frame, fraction=spec.holdout, seed=seed, entity_key=key)
    return train, holdout, schema


def _fit(spec: JobSpec, train: pd.DataFrame, schema: Any, out: Path) -> Path:
    from synthkit.ledger import PrivacyBudget
    from synthkit.models import BY_NAME

    budget = None if spec.no_privacy else PrivacyBudget(epsilon=spec.epsilon, delta=spec.delta)
    params = {**spec.hyperparameters, "seed": spec.seed, "device": spec.device,
              "max_rows_per_entity": spec.max_rows_per_entity}
    # where DP-SGD runs is an argument of DPTVAE.fit / DPCTGAN.fit (validated with the spec: one of them)
    engine_args = (dict(engine="ray", workers=spec.workers, gpus_per_worker=spec.gpus, ray_address=spec.ray_address)
                   if spec.engine == "ray" else {})
    synth = BY_NAME[spec.model](**params)
    from synthkit.manifest import check_hyperparameters
    check_hyperparameters(synth)
    # the model hands the progress log its own ledger (synthkit.progress.watch_ledger): ε spent, read while it trains
    if schema is None and budget is not None:  # no schema: kinds decided under DP and charged, as `synthkit fit`
        synth.fit(train, schema=None, budget=budget, progress=_progress("fit"),
                  roles={"entity_key": None, "targets": (spec.target,) if spec.target else ()}, **engine_args)
    else:
        if schema is None:  # --no-privacy: no guarantee to keep, the kinds are read from the rows
            from synthkit.schema import infer_schema
            schema = infer_schema(train).with_targets((spec.target,) if spec.target else ())
        synth.fit(train, schema=schema, budget=budget, progress=_progress("fit"), **engine_args)
    synth.save(out)
    logger.info("fitted %s: %s", spec.model, synth.privacy_summary()["guarantee"])
    return out


def _generate(spec: JobSpec, model_dir: Path, out: Path) -> Path:
    import connectors
    from synthkit.bundle import load

    synth = load(model_dir)
    seed = None if spec.seed is None else spec.seed + 1
    progress = _progress("generate")
    done = 0

    def counted() -> Any:
        nonlocal done
        progress("rows", 0, spec.rows)  # the stage, for the heartbeat's lines while the first chunk comes
        for chunk in synth.sample_chunks(spec.rows, seed=seed, chunk_size=spec.chunk_size):
            done += len(chunk)
            progress("rows", min(done, spec.rows), spec.rows)
            yield chunk

    from synthkit.progress import announced  # a start line, one at least every interval, a final one
    with announced(progress, f"{spec.rows} rows to {out}"):
        connectors.write_chunks(counted(), out)
    return out


def _evaluate(spec: JobSpec, train: pd.DataFrame, holdout: pd.DataFrame, synthetic_path: Path, model_dir: Path,
              schema: Any) -> Any:
    import connectors
    import reports

    synthetic = connectors.read(synthetic_path)
    return reports.evaluate(real=train, holdout=holdout, synthetic=synthetic, model_dir=model_dir, schema=schema,
                            target=spec.target, seed=spec.seed if spec.seed is not None else 0,
                            progress=_progress("evaluate"))


def _progress(step: str) -> Any:
    """A step's progress as INFO lines of the job's log (synthkit.progress: at most one
    every $SYNTHKIT_PROGRESS_INTERVAL seconds, default 10, and once per epoch)."""
    from synthkit.progress import ProgressLog, interval_from_env
    return ProgressLog(step, emit=logger.info, interval=interval_from_env())


def _gate(spec: JobSpec, report: Any) -> Any:
    from reports.gate import evaluate_gate
    from reports.policy import load_policy

    return evaluate_gate(report, load_policy(spec.policy))
