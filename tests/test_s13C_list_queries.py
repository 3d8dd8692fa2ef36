"""`releases list` and `releases audit` read the registry a fixed number of times, whatever
the number of runs (session 13, task C, item 2), and say the same as before.

They used to replay each run with its own queries (decision, releases, events again for the
release rows, reviews, the run, the runner's name, the staged artefacts: about 8.7 SQL
statements per run, 1,745 for 200 runs in benchmarks/bench_releases_list.py). Now one
`Registry.snapshot` reads every table once, in one read transaction, and the replay and the
audit run on it; each release manifest is hashed once per command (`FileHashes`).

Negative control: run against 3e68075 (before this change), test_a fails: the statements of
`releases list` grow with the runs (a registry of 9 runs costs more than one of 3).
Timings are in benchmarks/results/releases_list.json, never asserted here.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from typer.testing import CliRunner

import reports.release as release_mod
from reports.registry import Registry
from synthkit.cli import app
from test_gate import COPY, make_report
from test_release import CONFIG, approve, stage_run
from test_release_trail import reviewers_file  # noqa: F401 - the reviewers file fixture
from test_s12_forged_registry import _forge_chained_approval, _forge_release_row

runner = CliRunner()


def _registry(tmp_path, n_runs: int, *, forged: bool = False) -> tuple[Registry, list[str]]:
    """n_runs runs: released after a signed approval, pending review, gate-rejected, in turn;
    with `forged`, one pending run also gets a forged approval and release row."""
    reg = Registry(tmp_path / "registry.db")
    ids = []
    for i in range(n_runs):
        run_id = stage_run(reg, tmp_path, key=f"run-{i}", run_by="alice",
                           report=make_report(COPY) if i % 3 == 2 else make_report())
        if i % 3 == 0:
            approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy")
        ids.append(run_id)
    if forged:
        _forge_chained_approval(reg, ids[1])
        _forge_release_row(reg, ids[1], tmp_path)
    return reg, ids


def _counted(reg: Registry, *args: str) -> tuple[int, int, str]:
    """(SQL statements, files hashed, output) of one CLI command on `reg`."""
    n = {"sql": 0, "hashed": 0}

    def on_sql(*_a, **_k) -> None:
        n["sql"] += 1
    original = release_mod.sha256_file

    def counted(path):
        n["hashed"] += 1
        return original(path)
    event.listen(sa.engine.Engine, "before_cursor_execute", on_sql)
    release_mod.sha256_file = counted
    try:
        r = runner.invoke(app, [*args, "--registry", reg.url])
    finally:
        event.remove(sa.engine.Engine, "before_cursor_execute", on_sql)
        release_mod.sha256_file = original
    return n["sql"], n["hashed"], r.output


@pytest.mark.parametrize("command", [("releases", "list", "--json"), ("releases", "audit")])
def test_a_the_queries_do_not_grow_with_the_runs(tmp_path, reviewers_file, command):
    small, _ = _registry(tmp_path / "small", 3)
    large, ids = _registry(tmp_path / "large", 9)
    sql_small, hashed_small, _ = _counted(small, *command, "--reviewers", str(reviewers_file))
    sql_large, hashed_large, out = _counted(large, *command, "--reviewers", str(reviewers_file))
    assert sql_large == sql_small, (sql_small, sql_large)
    assert sql_large <= 16
    # each release's manifest is read once per command: 1 of 3 runs, 3 of 9 are released
    assert (hashed_small, hashed_large) == (1, 3)
    if command[1] == "list":
        assert sorted(x["status"] for x in json.loads(out)) == ["gate_rejected"] * 3 + ["pending_review"] * 3 + \
            ["released"] * 3


def test_b_the_snapshot_answers_as_the_registry(tmp_path):
    """Same output: every read the replay makes, from the snapshot and from the registry
    itself, on a registry with released, pending, rejected and forged runs."""
    reg, ids = _registry(tmp_path, 6, forged=True)
    snap = reg.snapshot()
    assert snap.audit() == reg.audit() == []
    assert snap.runs() == reg.runs() and snap.events() == reg.events() and snap.head() == reg.head()
    for run_id in ids:
        for view in (snap, reg.snapshot(run_id)):
            assert view.run(run_id) == reg.run(run_id) and view.status(run_id) == reg.status(run_id)
            assert view.events(run_id) == reg.events(run_id) and view.decision(run_id) == reg.decision(run_id)
            assert view.reviews(run_id) == reg.reviews(run_id) and view.releases(run_id) == reg.releases(run_id)
            assert view.artifacts(run_id) == reg.artifacts(run_id) and view.release(run_id) == reg.release(run_id)
    whole = release_mod.trail_check(reg, CONFIG)
    one_by_one = [release_mod.trail_check(reg, CONFIG, run_id=r) for r in ids]
    assert whole.statuses == {r: t.statuses[r] for r, t in zip(ids, one_by_one)}
    assert whole.forged == {r: t.forged[r] for r, t in zip(ids, one_by_one) if r in t.forged}
    assert whole.statuses[ids[1]] == "pending_review" and len(whole.forged[ids[1]]) == 2  # the forgeries
    with pytest.raises(Exception, match="one run"):
        reg.snapshot(ids[0]).audit()
