"""`synthkit gate REPORT --policy P`: apply a release policy to an evaluation report, on
its own (after a manual `synthkit evaluate`), with the same functions `synthkit run` uses
(reports.policy.load_policy, then reports.gate.evaluate_gate).

    exit 0  the gate passed
    exit 3  the gate rejected the report (EXIT_GATE_REJECTED, as `synthkit run`)
    exit 2  bad input: no such report or policy, a malformed one

The decision is printed, one row per check; nothing is written and no registry is
touched (a run that should be reviewed goes through `synthkit run`). The report's
observed values are real-data statistics: they stay on this screen, as in the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from synthkit.commands._common import EXIT_GATE_REJECTED, cli_errors, console


def report_path(report: Path) -> Path:
    """REPORT as given: an evaluate output folder (its report.json) or the file itself."""
    return report / "report.json" if report.is_dir() else report


def gate_report(report: Path, policy: str) -> Any:
    """The GateDecision of `policy` (a shipped name or a YAML file) on the report at `report`."""
    from reports.gate import evaluate_gate
    from reports.model import Report
    from reports.policy import load_policy
    from synthkit.errors import ArtifactError

    path = report_path(report)
    if report.is_dir() and not path.is_file():
        raise ArtifactError(f"REPORT {str(report)!r} is a folder without report.json; give the folder "
                            "`synthkit evaluate --out` wrote, or its report.json")
    if not path.exists():
        raise ArtifactError(f"REPORT {str(path)!r} does not exist; give the folder `synthkit evaluate --out` wrote, "
                            "or its report.json")
    pol = load_policy(policy)  # the policy first: a typo in it is found without reading the report
    try:
        loaded = Report.load(path)
    except ArtifactError as err:
        text = str(err)
        raise ArtifactError(text if str(path) in text else f"REPORT {str(path)!r}: {text}") from None
    return evaluate_gate(loaded, pol)


def register(app: typer.Typer) -> None:
    """Add `synthkit gate` to `app`."""

    @app.command("gate", short_help="Apply a release policy to an evaluation report.")
    def gate(
        report: Annotated[Path, typer.Argument(help="an evaluate output folder, or its report.json")],
        policy: Annotated[str, typer.Option(
            "--policy", help="release policy: a shipped name (default, healthcare, finance) or a YAML file")]
            = "default",
        as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON on stdout")] = False,
    ) -> None:
        """Apply a release policy to an evaluation report and print the decision, one row per
        check. Exit codes: 0 passed, 3 rejected by the gate, 2 bad input."""
        with cli_errors():
            decision = gate_report(report, policy)
        if as_json:
            typer.echo(json.dumps(decision.to_dict(), indent=2))
        else:
            from synthkit.commands.release import print_checks
            console.print(decision.summary(), highlight=False, soft_wrap=True)
            print_checks(decision.to_dict()["checks"], notes=True)
        if not decision.passed:
            raise typer.Exit(EXIT_GATE_REJECTED)
