"""`synthkit evaluate`: score a synthetic dataset against real train/holdout data and write
report/report.json plus a self-contained report/report.html.

The train/holdout split: with `--holdout FILE`, `--real` is the train part; without it,
the split recorded in the bundle by `synthkit fit --holdout` is re-derived from `--real`
(the exact file given to fit). `connectors` and `reports` are imported lazily inside the
command (synthkit's composition root rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from synthkit.partials import staged_folder
from synthkit.commands._common import (
    EncodingOption,
    HeaderOption,
    ThreadsOption,
    check_columns,
    check_input_frame,
    check_seed,
    check_source_exists,
    check_writable,
    cli_errors,
    console,
    progress_bar,
    read_options,
    setup_logging,
    source_columns,
    use_threads,
)


def evaluate_to_folder(*, model_dir: Path, real: str, synthetic: str, out: Path, holdout: str | None = None,
                       target: str | None = None, targets: tuple[str, ...] = (), seed: int = 0,
                       overwrite: bool = False, progress: Any = None,
                       read_opts: dict[str, Any] | None = None) -> Any:
    """The plain function behind the command: read, evaluate, write both files atomically
    (into a temporary folder beside `out`, renamed when complete). ML utility is scored for
    `target`, `targets` and the targets the bundle's schema declares. `read_opts`
    (`has_header`, `encoding`) go to the reader of every data file."""
    from synthkit.errors import ArtifactError
    from synthkit.manifest import read_manifest as read_manifest_only

    # every check of a path or an option before torch (the bundle's full check) and the
    # metrics' libraries load: a typo is refused at once (issue 17)
    for option, uri in (("--real", real), ("--synthetic", synthetic), ("--holdout", holdout)):
        if uri is not None:
            check_source_exists(uri, option)
    if out.exists() and any(out.iterdir() if out.is_dir() else [True]) and not overwrite:
        raise ArtifactError(f"output {str(out)!r} already exists; choose another folder or pass --overwrite")
    import connectors
    wanted = tuple(t for t in (target, *targets) if t is not None)
    columns = source_columns(real, read_opts=read_opts) if wanted else None
    if columns is not None:  # the header only (public)
        check_columns(columns, {"--target": wanted}, location=connectors.describe(real)["location"])
    # not a bundle, or a damaged manifest: after the header checks, since validating the
    # manifest loads synthkit.transforms (scipy, seconds on a busy machine)
    read_manifest_only(model_dir)

    import reports
    from reports.render import render_html
    from synthkit.bundle import verify
    # the same checks as `generate` (the model is loaded, not sampled): a bundle that
    # generate refuses is never evaluated, and the report pins the manifest verified here
    verified_sha = verify(model_dir)
    opts = dict(read_opts or {})
    real_frame = connectors.read(real, **opts)
    synthetic_frame = connectors.read(synthetic, **opts)
    holdout_frame = connectors.read(holdout, **opts) if holdout is not None else None

    def where(uri: str) -> str:  # a database URI without its password
        return connectors.describe(uri)["location"]

    check_input_frame(real_frame, option="--real", location=where(real), min_rows=2,
                      fix="give the real data given to `synthkit fit` (evaluation needs a train and a holdout part)")
    check_input_frame(synthetic_frame, option="--synthetic", location=where(synthetic), min_rows=1,
                      fix="generate rows with `synthkit generate` and evaluate those")
    if holdout_frame is not None:
        check_input_frame(holdout_frame, option="--holdout", location=where(holdout), min_rows=1,
                          fix="give the real rows held out of `synthkit fit`")
    report = reports.evaluate(real=real_frame, synthetic=synthetic_frame, model_dir=model_dir, holdout=holdout_frame,
                              target=target, targets=targets, seed=seed, progress=progress)
    if report.model.get("manifest_sha256") != verified_sha:
        raise ArtifactError(f"bundle {str(model_dir)!r} changed while it was evaluated (its manifest SHA-256 "
                            "differs); run evaluate again on a bundle nothing else writes to")
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_folder(out) as tmp:  # locked; a killed evaluate's partial is removed by the next one
        report.save(tmp / "report.json")
        render_html(report, tmp / "report.html")
    return report


def register(app: typer.Typer) -> None:
    @app.command("evaluate", short_help="Score synthetic data: fidelity, privacy, bias, validation.")
    def evaluate(
        model_dir: Annotated[Path, typer.Argument(help="model bundle directory (schema, ledger, recorded holdout split)")],
        real: Annotated[str, typer.Option("--real", help="the real data given to `synthkit fit` (or its train part with --holdout)")],
        synthetic: Annotated[str, typer.Option("--synthetic", help="the synthetic data to evaluate (.csv/.parquet)")],
        out: Annotated[Path, typer.Option("--out", help="folder for report.json and report.html")],
        holdout: Annotated[Optional[str], typer.Option("--holdout", help="real rows the model never saw (else the bundle's recorded split)")] = None,
        target: Annotated[Optional[list[str]], typer.Option(
            "--target", metavar="<column>", help="a column to predict for ML utility, besides the schema's targets (repeat the option)")] = None,
        fmt: Annotated[str, typer.Option("--format", help="terminal output: json or text")] = "text",
        seed: Annotated[int, typer.Option(help="seed of the evaluation's own random choices")] = 0,
        overwrite: Annotated[bool, typer.Option(help="replace an existing report folder")] = False,
        header: HeaderOption = None,
        encoding: EncodingOption = None,
        threads: ThreadsOption = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' INFO lines too.")] = False,
    ) -> None:
        """Evaluate synthetic data: fidelity, diversity, privacy leakage, bias, sequences, validation."""
        setup_logging(verbose)
        with cli_errors():
            use_threads(threads)  # before numpy, polars, scikit-learn and torch load
            from synthkit.errors import ConfigError
            if fmt not in ("json", "text"):
                raise ConfigError(f"--format must be json or text, got {fmt!r}")
            check_seed(seed, "--seed")
            check_writable(out, "--out")
            with progress_bar("evaluating") as bar:
                report = evaluate_to_folder(model_dir=model_dir, real=real, synthetic=synthetic, out=out,
                                            holdout=holdout, targets=tuple(target or ()), seed=seed, overwrite=overwrite,
                                            progress=bar, read_opts=read_options(header, encoding))
            if fmt == "json":
                typer.echo(report.to_json())
            else:
                from reports.render import summary_text
                console.print(summary_text(report), highlight=False, markup=False)
                console.print(f"wrote {out / 'report.json'} and {out / 'report.html'}", highlight=False)
