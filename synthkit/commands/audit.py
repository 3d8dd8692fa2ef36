"""`synthkit audit`: an empirical check of a model's DP claim (canary membership attacks,
see synthkit.audit). Registered by synthkit.commands.register_all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from synthkit.commands._common import (
    ContextColumnOption,
    ContextEpochsOption,
    EntityKeyOption,
    MaxLengthOption,
    SequenceIndexOption,
    StatesOption,
    ThreadsOption,
    check_columns,
    check_model_options,
    check_source_exists,
    cli_errors,
    console,
    privacy_budget,
    progress_bar,
    sequence_schema,
    setup_logging,
    source_columns,
    use_threads,
    with_entity_key,
)


def audit_data(*, data: str | Path, schema_path: Path | None, model: str, epsilon: float | None, delta: float,
               no_privacy: bool, canaries: int, trials: int, epochs: int | None, batch_size: int | None,
               synthetic_rows: int | None, confidence: float, workers: int | None, device: str, seed: int | None,
               out: Path, overwrite: bool, table: str | None = None, query: str | None = None,
               entity_key: str | None = None, sequence_index: str | None = None,
               context_columns: tuple[str, ...] = (), max_length: int | None = None, n_states: int | None = None,
               context_epochs: int | None = None, progress: Any = None) -> dict[str, Any]:
    """The plain function behind `synthkit audit`: read, audit, write audit.json + audit.html.

    Sequences (`model="dphmm"`): the roles come as in `synthkit fit` (options or schema);
    a canary is then a whole crafted entity. Context columns of the events table are
    audited; a separate context table (fit's --context) is not supported here."""
    from synthkit.errors import ArtifactError, ConfigError

    # every check of a path, an option or a column name before the audit's libraries and
    # torch load: a typo is refused at once, not after the imports (issue 17)
    check_source_exists(data, "DATA (the first argument)")
    check_model_options(model, {"epochs": ("--epochs", epochs), "batch_size": ("--batch-size", batch_size),
                                "device": ("--device", device), "n_states": ("--states", n_states),
                                "max_length": ("--max-length", max_length),
                                "context_epochs": ("--context-epochs", context_epochs)}, command="synthkit audit")
    seq_opts = {"--sequence-index": sequence_index, "--context-column": context_columns or None,
                "--max-length": max_length, "--states": n_states, "--context-epochs": context_epochs}
    if model != "dphmm" and any(v is not None for v in seq_opts.values()):
        used = [k for k, v in seq_opts.items() if v is not None]
        raise ConfigError(f"{', '.join(used)} apply to --model dphmm only")
    if no_privacy and epsilon is not None:
        raise ConfigError("--no-privacy and --epsilon contradict each other; choose one")
    if not no_privacy and epsilon is None:
        raise ConfigError("--epsilon is required: it is the claim the audit checks (or pass --no-privacy)")
    budget = None if no_privacy else privacy_budget(epsilon, delta)
    if (out / "audit.json").exists() and not overwrite:  # refuse before hours of training
        raise ArtifactError(f"{str(out / 'audit.json')!r} already exists; choose another --out or pass --overwrite")
    declared = None
    if schema_path is not None:  # pandas loads with a schema file only, else after the header checks
        from synthkit.schema import Schema
        declared = Schema.load(schema_path)
    if declared is not None and entity_key is not None and declared.entity_key is None:
        declared = with_entity_key(declared, entity_key, schema_path)  # a schema without one takes it
    if declared is not None and entity_key is not None and entity_key != declared.entity_key:
        raise ConfigError(f"--entity-key {entity_key!r} differs from the schema's entity_key "
                          f"{declared.entity_key!r}; set it in one place")
    import connectors
    columns = source_columns(data, table=table, query=query)
    if columns is not None:  # the header only (public)
        check_columns(columns, {"--entity-key": entity_key, "--sequence-index": sequence_index,
                                "--context-column": context_columns}, location=connectors.describe(data)["location"])
    from synthkit.audit import run_audit
    from synthkit.schema import infer_schema

    frame = connectors.read(data, table=table, query=query)
    if declared is not None:
        schema = declared
    else:
        schema = infer_schema(frame, entity_key=entity_key, sequence_index=sequence_index)
    params: dict[str, Any] = {"device": device}
    if model == "dphmm":
        schema = sequence_schema(schema, sequence_index=sequence_index, context_columns=context_columns)
        for name, value in (("max_length", max_length), ("n_states", n_states), ("context_epochs", context_epochs)):
            if value is not None:
                params[name] = value
    if epochs is not None:
        params["epochs"] = epochs
    if batch_size is not None:
        params["batch_size"] = batch_size
    result = run_audit(frame, schema=schema, model=model, budget=budget, delta=delta, n_canaries=canaries,
                       n_trials=trials, model_params=params, n_synthetic=synthetic_rows, confidence=confidence,
                       workers=workers, seed=seed, progress=progress)
    result.save(out, overwrite=overwrite)
    return result.to_dict()


def register(app: typer.Typer) -> None:
    """Add `synthkit audit` to `app`."""

    @app.command(short_help="Check a model's DP claim empirically with canary attacks.")
    def audit(
        data: Annotated[str, typer.Argument(help="training data: a file path or URI (see `synthkit connectors`)")],
        out: Annotated[Path, typer.Option("--out", help="folder for audit.json and audit.html")],
        model: Annotated[str, typer.Option(help="dpctgan or dptvae (tables), dphmm (per-entity sequences)")] = "dpctgan",
        epsilon: Annotated[Optional[float], typer.Option(help="the claimed epsilon to check (the fit's target)")] = None,
        delta: Annotated[float, typer.Option(help="the claimed delta")] = 1e-6,
        no_privacy: Annotated[bool, typer.Option("--no-privacy", help="audit training WITHOUT DP (a positive control)")] = False,
        canaries: Annotated[int, typer.Option(min=2, max=100_000, help="canaries per training run (each planted with probability 1/2)")] = 64,
        trials: Annotated[int, typer.Option(min=1, max=100_000, help="training runs; the cost and the power grow with it")] = 200,
        epochs: Annotated[Optional[int], typer.Option(help="training epochs per run")] = None,
        batch_size: Annotated[Optional[int], typer.Option(help="expected Poisson batch size")] = None,
        synthetic_rows: Annotated[Optional[int], typer.Option(help="synthetic rows (dphmm: entities) the attack sees per run")] = None,
        confidence: Annotated[float, typer.Option(help="confidence level of the lower bound")] = 0.95,
        workers: Annotated[Optional[int], typer.Option(help="parallel training processes, one torch thread each (default: --threads)")] = None,
        schema: Annotated[Optional[Path], typer.Option("--schema", help="schema.yaml (inferred kinds if omitted)")] = None,
        table: Annotated[Optional[str], typer.Option(help="table name, for SQL sources")] = None,
        query: Annotated[Optional[str], typer.Option(help="SQL query, for SQL sources")] = None,
        entity_key: EntityKeyOption = None,
        sequence_index: SequenceIndexOption = None,
        context_column: ContextColumnOption = None,
        max_length: MaxLengthOption = None,
        states: StatesOption = None,
        context_epochs: ContextEpochsOption = None,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
        seed: Annotated[Optional[int], typer.Option(help="seed of the canaries, inclusions, initialisations and samples (DP noise is always fresh)")] = None,
        overwrite: Annotated[bool, typer.Option(help="replace an existing audit.json")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print audit.json to stdout")] = False,
        threads: ThreadsOption = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    ) -> None:
        """Plant canaries, train repeatedly, attack the synthetic output, and report an empirical
        epsilon lower bound (with its confidence) next to the claimed epsilon."""
        setup_logging(verbose)
        with cli_errors(), progress_bar("auditing") as bar:
            n_threads = use_threads(threads)  # before numpy, polars and torch load
            if workers is None:  # one torch thread per worker process: the thread budget is the worker count
                workers = n_threads
            result = audit_data(data=data, schema_path=schema, model=model, epsilon=epsilon, delta=delta,
                                no_privacy=no_privacy, canaries=canaries, trials=trials, epochs=epochs,
                                batch_size=batch_size, synthetic_rows=synthetic_rows, confidence=confidence,
                                workers=workers, device=device, seed=seed, out=out, overwrite=overwrite,
                                table=table, query=query, entity_key=entity_key, sequence_index=sequence_index,
                                context_columns=tuple(context_column or ()), max_length=max_length, n_states=states,
                                context_epochs=context_epochs, progress=bar)
            if as_json:
                typer.echo(json.dumps(result, indent=2))
                return
            res = result["result"]
            from synthkit.audit import VERDICT_LABELS
            # "inconclusive" (the design could not have refuted the claim) is no pass: say so first
            console.print(f"verdict: {res['verdict']} ({VERDICT_LABELS[res['verdict']]})", highlight=False)
            console.print(res["explanation"], highlight=False)
            console.print(f"wrote {out / 'audit.json'} and {out / 'audit.html'}")
