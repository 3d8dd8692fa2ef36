"""`synthkit` commands of the release area: scheduled jobs, the review dashboard, the
registry of releases, reviewers' sign-off and policy checks.

    synthkit run JOB.yaml [--run-key KEY]        exit 0 pending review / released, 3 gate rejected
    synthkit review [--registry URL] [--port N]  the Streamlit dashboard on 127.0.0.1
    synthkit releases list | show ID | verify ID | audit | restore-triggers
    synthkit release approve|reject ID --reason "..." --reviewer NAME [--key PATH]   (signed)
    synthkit release publish ID                  retry writing an approved release
    synthkit policy check FILE... | --list-metrics
    synthkit reviewers add NAME --file reviewers.yaml
    synthkit reviewers key NAME [--file reviewers.yaml]   a signing key; prints its public line

Every command is a thin typer wrapper over one plain function of `reports` or
`synthkit.jobs`; imports of `reports` stay inside the commands (DESIGN.md arrows).

Without --registry every command uses the one default registry
(reports.registry.default_registry); the read-only ones never create it. An ID may be
any unique prefix of a run id (`resolve_run_id`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table as RichTable

from synthkit.commands._common import ThreadsOption
from synthkit.commands._common import EXIT_BAD_INPUT, EXIT_CRASH, EXIT_GATE_REJECTED, cli_errors, console, err_console

# A release whose files no longer match their recorded hashes: not a crash (1), not bad
# input (2), not a gate rejection (3).
EXIT_VERIFY_FAILED = 4
ENV_PASSWORD = "SYNTHKIT_REVIEWER_PASSWORD"

RegistryOpt = Annotated[Optional[str], typer.Option(
    "--registry", help="registry: a SQLite file path or a PostgreSQL URL (default $SYNTHKIT_REGISTRY, else "
                       "$SYNTHKIT_HOME/registry.db, else $XDG_DATA_HOME/synthkit/registry.db, else "
                       "~/.local/share/synthkit/registry.db)")]
ReviewersOpt = Annotated[Optional[Path], typer.Option(
    "--reviewers", help="reviewers YAML (default $SYNTHKIT_REVIEWERS)")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app`."""
    app.command("run", short_help="Run a job: source, fit, generate, evaluate, gate, release.")(run)
    app.command("review", short_help="Open the review dashboard (Streamlit) on 127.0.0.1.")(review)
    releases_app = typer.Typer(no_args_is_help=True, help="List, show and verify release candidates and releases.")
    releases_app.command("list")(releases_list)
    releases_app.command("show")(releases_show)
    releases_app.command("verify")(releases_verify)
    releases_app.command("audit")(releases_audit)
    releases_app.command("restore-triggers")(releases_restore_triggers)
    app.add_typer(releases_app, name="releases")
    release_app = typer.Typer(no_args_is_help=True, help="Approve or reject a release (the dashboard's action).")
    release_app.command("approve")(release_approve)
    release_app.command("reject")(release_reject)
    release_app.command("publish")(release_publish)
    app.add_typer(release_app, name="release")
    policy_app = typer.Typer(no_args_is_help=True, help="Validate release policies.")
    policy_app.command("check")(policy_check)
    app.add_typer(policy_app, name="policy")
    reviewers_app = typer.Typer(no_args_is_help=True, help="Configure who may approve releases.")
    reviewers_app.command("add")(reviewers_add)
    reviewers_app.command("key")(reviewers_key)
    app.add_typer(reviewers_app, name="reviewers")


def open_registry(registry: str | None, *, existing: bool = False) -> Any:
    """The registry named by --registry, else the default one (reports.registry.
    default_registry). `existing`: a read-only command (list, show, verify, audit) must not
    create an empty registry where none is, so a missing file, an empty SQLite file or a
    PostgreSQL database (schema) without the registry's tables is one line saying where it
    looked and how to point at one (Registry(create=False) runs no DDL)."""
    from reports.registry import LEGACY_PATH, Registry, RegistryError, resolve_url, sqlite_path
    url = resolve_url(registry)
    path = sqlite_path(url)
    if existing and path is not None and not path.exists():
        legacy = Path(LEGACY_PATH)
        hint = (f"; an older synthkit left {LEGACY_PATH} in this folder: pass --registry {LEGACY_PATH}"
                if registry is None and legacy.is_file() else "")
        raise RegistryError(f"no registry exists at {path}: nothing was run or queued there yet; point at one "
                            f"with --registry PATH_OR_URL or $SYNTHKIT_REGISTRY{hint}")
    return Registry(url, create=not existing)


def registry_location(reg: Any) -> str:
    """The registry as users type it: the file path of a SQLite registry, else the URL
    with its password hidden."""
    from reports.registry import display_url, sqlite_path
    path = sqlite_path(reg.url)
    return str(path) if path is not None else display_url(reg.url)


def resolve_run_id(reg: Any, run_id: str) -> str:
    """`run_id` itself, or the one run whose id starts with it (ids are long: job name,
    UTC time, random suffix). An unknown or ambiguous prefix is one line."""
    from reports.registry import RegistryError
    given = run_id.strip()
    ids = [r.run.run_id for r in reg.runs()]
    if given in ids:
        return given
    matches = [i for i in ids if given and i.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    where = registry_location(reg)
    if not matches:
        raise RegistryError(f"no run starts with {given!r} in the registry {where}; list them with "
                            "`synthkit releases list`")
    raise RegistryError(f"run id prefix {given!r} is ambiguous: {len(matches)} runs in the registry {where} start "
                        "with it; give more of the id (see `synthkit releases list`)")


def _setup_job_logging(verbose: bool) -> None:
    """Timestamped lines on stderr (what cron mails and Airflow's task log captures):
    synthkit's and the evaluation's steps at INFO, third-party libraries at WARNING."""
    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("synthkit", "reports", "connectors"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


# ---------------------------------------------------------------------------- run
def run(
    job: Annotated[Path, typer.Argument(help="job YAML (see docs/jobs.md)")],
    registry: RegistryOpt = None,
    run_key: Annotated[Optional[str], typer.Option(
        "--run-key", help="what makes this run distinct from earlier runs of the same spec, e.g. the date "
                          "a nightly job is for; re-running with the same key does nothing")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' INFO lines too.")] = False,
    threads: ThreadsOption = None,
) -> None:
    """Run a job: source -> fit -> generate -> evaluate -> gate -> pending review (or released).
    Exit codes: 0 pending review or released, 3 rejected by the gate, 2 bad input, 1 crash.
    --threads overrides the job's `threads` key (which overrides $SYNTHKIT_THREADS)."""
    import dataclasses

    from synthkit.jobs import JobFailed, load_job, run_job

    _setup_job_logging(verbose)
    with cli_errors():
        if threads is not None:
            from synthkit.threads import check_threads
            check_threads(threads, "--threads")
        spec = load_job(job)
        if threads is not None:
            spec = dataclasses.replace(spec, threads=threads)
        try:
            result = run_job(spec, registry=registry, run_key=run_key)
        except JobFailed as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT if err.__cause__ is not None else EXIT_CRASH) from None
    if as_json:
        typer.echo(json.dumps({"run_id": result.run_id, "status": result.status, "new_run": result.created,
                               "gate": result.gate_summary, "release": result.release_path}))
    else:
        note = "" if result.created else " (already settled earlier; nothing was done)"
        console.print(f"run {result.run_id}: {result.status}{note}", highlight=False, soft_wrap=True)
        from reports.registry import sqlite_path
        console.print(f"registry: {sqlite_path(result.registry) or result.registry}", highlight=False, soft_wrap=True)
        if result.gate_summary:
            console.print(result.gate_summary, highlight=False)
        if result.status == "pending_review":
            console.print(f"review it: synthkit review --registry {_quote(result.registry)}  or  "
                          f"synthkit release approve {result.run_id} --reason ... --reviewer NAME", highlight=False)
        if result.release_path:
            console.print(f"released to {result.release_path}", highlight=False)
    if result.status == "gate_rejected":
        raise typer.Exit(EXIT_GATE_REJECTED)


def _quote(s: str) -> str:
    return f"'{s}'" if any(c in s for c in " &?") else s


# ---------------------------------------------------------------------------- review
def review(
    registry: RegistryOpt = None,
    reviewers: ReviewersOpt = None,
    port: Annotated[int, typer.Option("--port", min=1024, max=65535, help="local port")] = 8501,
) -> None:
    """Open the review dashboard (Streamlit) on 127.0.0.1; only configured reviewers can sign in."""
    with cli_errors():
        from reports.review import ReviewerConfig

        reg = open_registry(registry, existing=True)  # one line if it cannot be opened or does not exist
        config = ReviewerConfig.load(reviewers)
        if not config.configured:
            err_console.print("warning: no reviewers are configured (--reviewers or $SYNTHKIT_REVIEWERS); "
                              "the dashboard will refuse every sign-in", highlight=False)
        env = {**os.environ, "SYNTHKIT_REGISTRY": reg.url, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
               "GX_ANALYTICS_ENABLED": "false"}
        if reviewers is not None:
            env["SYNTHKIT_REVIEWERS"] = str(reviewers.resolve())
        script = Path(__file__).resolve().parents[2] / "app" / "dashboard.py"
        cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", "127.0.0.1",
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--global.developmentMode", "false", "--client.toolbarMode", "viewer"]
        console.print(f"review dashboard on http://127.0.0.1:{port} (registry {registry_location(reg)}); "
                      "Ctrl-C stops it", highlight=False, soft_wrap=True)
        try:
            code = subprocess.call(cmd, env=env)
        except KeyboardInterrupt:
            code = 0
        if code not in (0, -2, 130):
            raise typer.Exit(EXIT_CRASH)


# ---------------------------------------------------------------------------- releases
def releases_list(
    registry: RegistryOpt = None,
    status: Annotated[Optional[str], typer.Option(help="only runs with this status (e.g. pending_review)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    reviewers: ReviewersOpt = None,
) -> None:
    """What is pending, approved, rejected and released: each status as the run's VERIFIED
    events give it (reports.release.trail_check); an event that does not verify is shown
    and not counted. Signatures are checked against the reviewers file (--reviewers, else
    $SYNTHKIT_REVIEWERS, as `publish` finds it); without one the list says so."""
    with cli_errors():
        from reports.registry import RUN_STATUSES
        from reports.release import trail_check
        from reports.review import ReviewerConfig
        from synthkit.errors import ConfigError
        if status is not None and status not in RUN_STATUSES:
            raise ConfigError(f"unknown status {status!r}; choose one of {list(RUN_STATUSES)}")
        reg = open_registry(registry, existing=True)
        snap = reg.snapshot()  # every row read at once: a handful of queries, not several per run
        trail = trail_check(snap, ReviewerConfig.load(reviewers))
        rows = [(r, trail.statuses.get(r.run.run_id, r.status), trail.forged.get(r.run.run_id, []))
                for r in snap.runs()]
        if status is not None:
            rows = [x for x in rows if x[1] == status]
        if as_json:
            typer.echo(json.dumps([{"run_id": r.run.run_id, "job": r.run.job_name, "status": st,
                                    "recorded_status": r.status, "signatures_checked": trail.signatures_checked,
                                    "unverified_events": [{"event": q, "problem": why} for q, why in bad],
                                    "run_by": r.run.run_by, "created_at": r.run.created_at,
                                    "updated_at": r.updated_at} for r, st, bad in rows], indent=2))
            return

        def shown(st: str, bad: list[tuple[int, str]]) -> str:
            if bad:
                return f"{st} (FORGED/unverified event(s) {', '.join(f'#{q}' for q, _ in bad)} not counted)"
            if not trail.signatures_checked and st in ("approved", "rejected", "released"):
                return f"{st} (signatures not checked)"
            return st
        print_table(("run", "job", "status", "run by", "created (UTC)", "updated (UTC)"),
                    [(r.run.run_id, r.run.job_name, shown(st, bad), r.run.run_by, r.run.created_at[:19],
                      r.updated_at[:19]) for r, st, bad in rows])
        console.print(f"{len(rows)} run(s) in the registry {registry_location(reg)}", highlight=False,
                      soft_wrap=True)
        if not trail.signatures_checked:
            console.print("signatures not checked (pass --reviewers FILE)", highlight=False)
        for r, _st, bad in rows:
            for q, why in bad:
                err_console.print(f"[bold red]forged/unverified:[/] run {r.run.run_id} event #{q} {why}",
                                  highlight=False, soft_wrap=True)
        broken = snap.audit()
        if broken or trail.forged:  # a status above may come from a forged or edited row
            n = len(broken) + sum(len(b) for b in trail.forged.values())
            err_console.print(f"[bold red]warning:[/] the registry's trail does not verify ({n} problem(s)); "
                              "run `synthkit releases audit --reviewers FILE`", highlight=False)


def releases_show(
    run_id: Annotated[str, typer.Argument(help="run / release id")],
    registry: RegistryOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    reviewers: ReviewersOpt = None,
) -> None:
    """One run: status (from its verified events, as `releases list`), gate decision (one row
    per check), reviews, release and history."""
    with cli_errors():
        from reports.release import trail_check
        from reports.review import ReviewerConfig
        reg = open_registry(registry, existing=True)
        run_id = resolve_run_id(reg, run_id)
        info = show_release(reg, run_id)
        trail = trail_check(reg, ReviewerConfig.load(reviewers), run_id=run_id)
        bad = trail.forged.get(run_id, [])
        info.update(recorded_status=info["status"], status=trail.statuses.get(run_id, info["status"]),
                    signatures_checked=trail.signatures_checked,
                    unverified_events=[{"event": q, "problem": why} for q, why in bad])
        if as_json:
            typer.echo(json.dumps(info, indent=2, default=str))
            return
        note = "" if trail.signatures_checked or info["status"] not in ("approved", "rejected", "released") else \
            " (signatures not checked: pass --reviewers FILE)"
        console.print(f"[bold]{run_id}[/]  job {info['job']}  status [bold]{info['status']}[/]{note}", highlight=False)
        for q, why in bad:
            err_console.print(f"[bold red]forged/unverified:[/] event #{q} {why} (not counted)", highlight=False)
        console.print(f"run by {info['run_by']}; owner {info['owner']}; created {info['created_at']}", highlight=False)
        d = info["decision"]
        if d:
            console.print(d["summary"], highlight=False)
            print_checks(d["checks"])
        for r in info["reviews"]:
            console.print(f"{r['verdict']} by {r['reviewer']} at {r['at']}: {r['reason']}", highlight=False)
        if info["release"]:
            where = info["release"].get("located_at")
            moved = f" (recorded at {info['release']['path']})" if where and where != info["release"]["path"] else ""
            console.print(f"released to {where or info['release']['path']}{moved} at {info['release']['at']}",
                          highlight=False)
        for e in info["events"]:
            console.print(f"  {e['at'][:19]}  {e['step'] or '':10} {e['status'] or '':15} {e['message'] or ''}",
                          highlight=False)


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]], *, wrap_last: bool = False) -> None:
    """A table whose values are never folded or elided (run ids and metric ids must copy
    whole); one wider than the terminal is printed at its own width (the terminal wraps
    the line, a copy keeps it whole). `wrap_last`: the last column (free text) may fold."""
    from rich.console import Console
    from rich.markup import escape
    t = RichTable(*header)
    for column in t.columns[:-1] if wrap_last else t.columns:
        column.no_wrap = True
    for row in rows:
        t.add_row(*(escape(str(v)) for v in row))
    fixed = list(zip(header, *rows))[:-1] if wrap_last else list(zip(header, *rows))
    needed = sum(max(len(str(v)) for v in col) + 3 for col in fixed) + 1 + (48 if wrap_last else 0)
    if needed <= console.width:
        console.print(t)
    else:
        Console(file=console.file, width=needed, force_terminal=console.is_terminal,
                no_color=console.no_color).print(t)


def print_checks(checks: list[dict[str, Any]], *, notes: bool = False) -> None:
    """A gate decision's checks (GateDecision.to_dict()["checks"]), one row each: what
    `releases show` and `synthkit gate` print."""
    rows = []
    for c in checks:
        res = "skipped" if c["skipped"] else ("pass" if c["passed"] else "FAIL")
        obs = c["observed"]
        row = (c["metric"], f"{obs:.4g}" if isinstance(obs, float) else str(obs), c["threshold"], res)
        rows.append((*row, c.get("note") or "") if notes else row)
    print_table(("check", "observed", "threshold", "result", *(("note",) if notes else ())), rows, wrap_last=notes)


def show_release(reg: Any, run_id: str) -> dict[str, Any]:
    """Everything the registry knows about one run, as plain data."""
    from reports.gate import GateDecision
    from reports.release import release_record_findings
    run = reg.run(run_id)
    dec = reg.decision(run_id)
    rel = reg.release(run_id)
    # a release is its content: a folder renamed or moved beside the others is found by its
    # manifest's SHA-256 (reports.release.relocated_release); None when it is nowhere
    located = next((found.path for _seq, found, why in release_record_findings(reg, run_id)
                    if why is None and rel is not None and found.manifest_sha256 == rel.manifest_sha256), None)
    return {
        "run_id": run.run_id, "job": run.job_name, "status": reg.status(run_id), "run_by": run.run_by,
        "owner": run.owner, "created_at": run.created_at, "attempt": run.attempt,
        "decision": None if dec is None else {**dec.decision,
                                              "summary": GateDecision.from_dict(dec.decision).summary()},
        "reviews": [{"reviewer": r.reviewer, "verdict": r.verdict, "reason": r.reason, "at": r.at}
                    for r in reg.reviews(run_id)],
        "release": None if rel is None else {"path": rel.path, "at": rel.at, "manifest_sha256": rel.manifest_sha256,
                                             "files": rel.files, "released_by": rel.released_by,
                                             "located_at": located},
        "events": [{"at": e.at, "step": e.step, "status": e.status, "message": e.message}
                   for e in reg.events(run_id)],
    }


def releases_verify(
    run_id: Annotated[str, typer.Argument(help="run / release id")],
    registry: RegistryOpt = None,
    reviewers: ReviewersOpt = None,
    folder: Annotated[Optional[Path], typer.Option(
        "--folder", help="check the release in this folder (where it was moved to): a release is identified by "
                         "its files' SHA-256, not by its path")] = None,
) -> None:
    """Re-check a release: its files against the manifest and the registry, the registry's
    hash chain, every verdict's signature (against the reviewers file), the released data
    against what was signed, and the gate recomputed (exit 4 on any break). A release
    folder that was renamed or moved beside the others is found by its manifest's SHA-256;
    one moved elsewhere is checked with --folder."""
    with cli_errors():
        from reports.release import verify
        from reports.review import ReviewerConfig
        reg = open_registry(registry, existing=True)
        run_id = resolve_run_id(reg, run_id)
        result = verify(reg, run_id, ReviewerConfig.load(reviewers), folder=folder)
    for note in result.notes:
        err_console.print(f"[bold yellow]warning:[/] {note}", highlight=False)
    if result.ok:
        console.print(f"{run_id}: OK, {result.n_files} files match their recorded SHA-256 ({result.path})",
                      highlight=False)
        return
    for p in result.problems:
        err_console.print(f"[bold red]mismatch:[/] {p}", highlight=False)
    err_console.print(f"{run_id}: the release at {result.path} does NOT verify", highlight=False)
    raise typer.Exit(EXIT_VERIFY_FAILED)


def releases_audit(
    registry: RegistryOpt = None,
    expect_head: Annotated[Optional[str], typer.Option(
        "--expect-head", help="A head hash printed by an earlier audit (kept where the runner cannot write): "
                              "fail if the chain no longer holds it, i.e. its newest events were cut.")] = None,
    reviewers: ReviewersOpt = None,
) -> None:
    """Re-check the registry's whole hash chain, its triggers, every row the chain vouches
    for, and every verdict and release event (exit 4 on any break): a verdict counts only
    as a signed verdict matching its event and review row, whose signature verifies
    against the reviewers file (--reviewers, else $SYNTHKIT_REVIEWERS); a release only
    when its folder's manifest hashes to the recorded SHA-256. Without a reviewers file the
    signatures' keys are not checked, and the audit says so. The chain has no secret:
    whoever can write the database can cut its newest events. Keep the printed head
    outside the registry and pass it back with --expect-head to detect that."""
    with cli_errors():
        from reports.release import trail_check
        from reports.review import ReviewerConfig
        reg = open_registry(registry, existing=True)
        snap = reg.snapshot()  # one consistent read of every row; the audit and the replay share it
        problems = snap.audit()
        trail = trail_check(snap, ReviewerConfig.load(reviewers))
        events = snap.events()
    for run_id, bad in trail.forged.items():
        problems += [f"run {run_id} event #{q} does not verify (forged?): {why}" for q, why in bad]
    if expect_head is not None and expect_head.strip().lower() not in {e.hash for e in events}:
        problems.append(f"the chain no longer holds the expected head {expect_head.strip()[:16]}…: events after an "
                        "earlier audit were removed (or the registry was replaced)")
    if not problems:
        head = events[-1].hash if events else "none"
        if trail.signatures_checked:
            console.print("registry: every verdict's signature verifies against the reviewers file",
                          highlight=False)
        else:
            console.print("registry: signatures not checked (pass --reviewers FILE)", highlight=False)
        console.print(f"registry: OK, {len(events)} events chained, head {head}", highlight=False)
        return
    for p in problems:
        err_console.print(f"[bold red]broken:[/] {p}", highlight=False)
    err_console.print(f"the registry's trail does NOT verify ({len(problems)} problem(s))", highlight=False)
    raise typer.Exit(EXIT_VERIFY_FAILED)


def releases_restore_triggers(registry: RegistryOpt = None) -> None:
    """Recreate dropped append-only triggers, only when the rest of the trail verifies."""
    with cli_errors():
        reg = open_registry(registry, existing=True)
        reg.restore_triggers()
        console.print("append-only triggers restored; the trail verified", highlight=False)


# ---------------------------------------------------------------------------- approve / reject
def _reviewer(config_path: Path | None, name: str, key_path: Path | None) -> tuple[Any, Any, Any]:
    """(config, reviewer, private key): `name` authenticated against the reviewers file
    (password from $SYNTHKIT_REVIEWER_PASSWORD or a hidden prompt, never an option: it
    would land in the shell history) and their signing key (--key, $SYNTHKIT_REVIEWER_KEY,
    else $SYNTHKIT_HOME/keys/NAME.ed25519)."""
    from reports.signing import default_key_path, load_private_key
    from reports.review import AccessDenied, ReviewerConfig
    config = ReviewerConfig.load(config_path)
    if not config.configured:
        raise AccessDenied("no reviewers are configured (--reviewers or $SYNTHKIT_REVIEWERS), so nothing can "
                           "be approved; add one with `synthkit reviewers add NAME --file reviewers.yaml`")
    password = os.environ.get(ENV_PASSWORD)
    if password is None:
        if not sys.stdin.isatty():
            raise AccessDenied(f"no password: set ${ENV_PASSWORD} or run in a terminal to be prompted")
        password = typer.prompt(f"password for reviewer {name}", hide_input=True)
    reviewer = config.authenticate(name, password)
    key = load_private_key(key_path if key_path is not None else default_key_path(reviewer.name))
    return config, reviewer, key


ReasonOpt = Annotated[str, typer.Option("--reason", help="why (recorded in the audit trail)")]
ReviewerOpt = Annotated[str, typer.Option("--reviewer", help="your reviewer name (from the reviewers file)")]
KeyOpt = Annotated[Optional[Path], typer.Option(
    "--key", help="your private signing key (default $SYNTHKIT_REVIEWER_KEY, else "
                  "$SYNTHKIT_HOME/keys/NAME.ed25519; create it with `synthkit reviewers key NAME`)")]


def release_approve(
    run_id: Annotated[str, typer.Argument(help="run / release id")],
    reason: ReasonOpt,
    reviewer: ReviewerOpt,
    registry: RegistryOpt = None,
    reviewers: ReviewersOpt = None,
    key: KeyOpt = None,
) -> None:
    """Approve a release candidate (signed with your key); the bundle is written once enough
    reviewers approved."""
    with cli_errors():
        from reports.release import approve
        reg = open_registry(registry, existing=True)
        run_id = resolve_run_id(reg, run_id)
        config, who, private = _reviewer(reviewers, reviewer, key)
        status = approve(reg, run_id, reviewer=who, reason=reason, key=private, config=config)
        rel = reg.release(run_id)
        console.print(f"{run_id}: {status}" + (f" to {rel.path}" if rel else " (more approvals needed)"),
                      highlight=False)


def release_reject(
    run_id: Annotated[str, typer.Argument(help="run / release id")],
    reason: ReasonOpt,
    reviewer: ReviewerOpt,
    registry: RegistryOpt = None,
    reviewers: ReviewersOpt = None,
    key: KeyOpt = None,
) -> None:
    """Reject a release candidate, signed with your key (final: fix the job and run it again)."""
    with cli_errors():
        from reports.release import reject
        reg = open_registry(registry, existing=True)
        run_id = resolve_run_id(reg, run_id)
        config, who, private = _reviewer(reviewers, reviewer, key)
        status = reject(reg, run_id, reviewer=who, reason=reason, key=private, config=config)
        console.print(f"{run_id}: {status}", highlight=False)


def release_publish(
    run_id: Annotated[str, typer.Argument(help="run / release id of an APPROVED run")],
    registry: RegistryOpt = None,
    reviewers: ReviewersOpt = None,
) -> None:
    """Write the bundle of an approved run whose release failed (e.g. a full disk). Refused
    unless the trail verifies and signed approvals (checked against the reviewers file), or
    the policy's recorded auto-release, authorise it."""
    with cli_errors():
        from reports.release import publish
        from reports.review import ReviewerConfig
        from synthkit.jobs import runner_account
        reg = open_registry(registry, existing=True)
        run_id = resolve_run_id(reg, run_id)
        from reports.release import release_record_findings
        config = ReviewerConfig.load(reviewers)
        found = [(q, why) for q, _rec, why in release_record_findings(reg, run_id) if why is not None]
        path = publish(reg, run_id, released_by=runner_account(), config=config)
        for q, why in found:  # published past a release record that does not verify: say what it was
            err_console.print(f"[bold yellow]warning:[/] the release recorded at event #{q} does not verify ({why}); "
                              "it was not counted, and this release is recorded next to it", highlight=False)
        console.print(f"{run_id}: released to {path}", highlight=False)


# ---------------------------------------------------------------------------- policy
def policy_check(
    files: Annotated[Optional[list[Path]], typer.Argument(help="policy YAML files, or shipped policy names")] = None,
    list_metrics: Annotated[bool, typer.Option("--list-metrics", help="list the metric ids a policy may name")] = False,
) -> None:
    """Validate policies and list every problem."""
    with cli_errors():
        from reports.model import METRIC_IDS
        from reports.policy import load_policy
        if list_metrics:
            for mid, (direction, target) in METRIC_IDS.items():
                typer.echo(f"{mid}\t{direction}" + (f"\ttarget {target:g}" if target is not None else ""))
            return
        if not files:
            from synthkit.errors import ConfigError
            raise ConfigError("give one or more policy files (or --list-metrics)")
        for f in files:
            p = load_policy(f)
            console.print(f"{f}: valid (policy {p.name!r}, {len(p.checks)} checks, DP "
                          f"{'required, unit ' + p.privacy.unit if p.privacy.require_dp else 'not required'}, "
                          f"{p.release.reviewers_required} approval(s))", highlight=False)


# ---------------------------------------------------------------------------- reviewers
def reviewers_add(
    name: Annotated[str, typer.Argument(help="reviewer login name")],
    file: Annotated[Path, typer.Option("--file", help="reviewers YAML to create or update")],
    email: Annotated[Optional[str], typer.Option(help="e-mail an OIDC provider signs this reviewer in with")] = None,
    display_name: Annotated[Optional[str], typer.Option(help="name shown in the dashboard")] = None,
    no_password: Annotated[bool, typer.Option("--no-password", help="OIDC sign-in only")] = False,
) -> None:
    """Add (or replace) a reviewer; the password is prompted and only its salted hash is stored."""
    with cli_errors():
        import yaml

        from reports.review import ReviewerConfig, with_reviewer
        config = ReviewerConfig.load(file) if file.exists() else ReviewerConfig(source=str(file))
        password = None
        if not no_password:
            password = os.environ.get(ENV_PASSWORD)
            if password is None:
                password = typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True)
        updated = with_reviewer(config, name=name, password=password, email=email, display_name=display_name)
        from reports.model import atomic_write_text
        atomic_write_text(file, "# synthkit reviewers: who may approve releases (salted scrypt hashes only)\n"
                          + yaml.safe_dump(updated.to_dict(), sort_keys=False))
        os.chmod(file, 0o600)
        console.print(f"{file}: reviewer {name!r} saved ({len(updated.reviewers)} reviewer(s))", highlight=False)


def reviewers_key(
    name: Annotated[str, typer.Argument(help="reviewer login name")],
    key: Annotated[Optional[Path], typer.Option(
        "--key", help="where to create the private key (default $SYNTHKIT_HOME/keys/NAME.ed25519)")] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", help="also write the public key into this reviewers YAML (the reviewer must be in it)")] = None,
) -> None:
    """Create a reviewer's Ed25519 signing key (mode 0600, never overwritten) and print the
    public_key line for the reviewers file. Keep the private key to yourself: every
    approval and rejection is signed with it."""
    with cli_errors():
        import dataclasses

        import yaml

        from reports.model import atomic_write_text
        from reports.review import AccessDenied, ReviewerConfig
        from reports.signing import create_key, keys_dir
        path = key if key is not None else keys_dir() / f"{name}.ed25519"
        config = ReviewerConfig.load(file) if file is not None else None
        listed = config.find(name) if config is not None else None
        if config is not None and listed is None:
            raise AccessDenied(f"reviewer {name!r} is not in {str(file)!r}; add them with `synthkit reviewers add` "
                               "first")
        line = create_key(path)
        if config is not None and listed is not None and file is not None:
            kept = tuple(r for r in config.reviewers if r.name.lower() != name.lower())
            updated = ReviewerConfig(reviewers=(*kept, dataclasses.replace(listed, public_key=line)),
                                     source=config.source)
            atomic_write_text(file, "# synthkit reviewers: who may approve releases (salted scrypt hashes and "
                              "public keys only)\n" + yaml.safe_dump(updated.to_dict(), sort_keys=False))
            os.chmod(file, 0o600)
        console.print(f"private key written to {path} (mode 0600; keep it to yourself)", highlight=False)
        typer.echo(f"public_key: {line}")
