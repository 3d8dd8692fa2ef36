"""Issue 17, part E: progress everywhere.

Off a terminal (a script, a scheduler, a log file), fit, generate, evaluate, audit and
run write one line at most every $SYNTHKIT_PROGRESS_INTERVAL seconds (default 10) and at
most once per epoch, with the stage, done/total, the epoch, ε spent (from the ledger),
the time elapsed and the time left. Before, the rich bar was disabled off a terminal and
nothing at all was printed until the end (the negative control: every CLI test below
asserts lines that the old code never wrote).

No test depends on timing: the interval is injected (0, or a fake clock).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app
from synthkit.ledger import PrivacyBudget, PrivacyLedger, SampledGaussianEvent
from synthkit.progress import ProgressLog

runner = CliRunner()
SECRET = "SECRET_CELL_VALUE_4242"
EPOCHS = 3


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _ledger(epsilon: float = 3.0) -> PrivacyLedger:
    return PrivacyLedger(budget=PrivacyBudget(epsilon=epsilon, delta=1e-6))


EPOCH_EVENT = SampledGaussianEvent(name="dp-sgd", sampling_rate=0.1, noise_multiplier=1.5, steps=4)


def _train(log: ProgressLog, ledger: PrivacyLedger, clock: FakeClock, *, epochs: int, steps: int,
           seconds_per_step: float, spent: list[float]) -> None:
    """What a model does: charge the epoch, then report each step."""
    for epoch in range(epochs):
        ledger.charge(EPOCH_EVENT)
        spent.append(ledger.epsilon_spent())
        for b in range(steps):
            clock.now += seconds_per_step
            log("train", epoch * steps + b + 1, epochs * steps)


# ---------------------------------------------------------------------------- the log lines
def test_interval_zero_writes_one_line_per_epoch_with_epsilon_from_the_ledger():
    lines: list[str] = []
    clock, ledger, spent = FakeClock(), _ledger(), []
    log = ProgressLog("fitting", emit=lines.append, interval=0, clock=clock)
    log.watch(ledger, epochs={"train": 4})
    _train(log, ledger, clock, epochs=4, steps=5, seconds_per_step=1.0, spent=spent)
    # the first call, then one line per completed epoch: never one per step
    assert len(lines) == 1 + 4, lines
    for i, line in enumerate(lines[1:], start=1):
        assert f"fitting: train {5 * i}/20, epoch {i}/4, ε spent {spent[i - 1]:.3f} of 3," in line, line
        assert "elapsed" in line
    assert "about 15s left" in lines[1]  # 5 s per epoch, 3 epochs to go
    assert lines[-1].endswith("stage done")


def test_the_interval_is_a_rate_limit_and_the_epoch_a_floor():
    """Fast epochs (1 s): a line per 10 s, not per epoch. Slow epochs (60 s): one line per
    epoch, not every 10 s. Whichever is rarer."""
    lines: list[str] = []
    clock, ledger = FakeClock(), _ledger(epsilon=50.0)
    log = ProgressLog("fitting", emit=lines.append, interval=10, clock=clock)
    log.watch(ledger, epochs={"train": 40})
    _train(log, ledger, clock, epochs=40, steps=2, seconds_per_step=0.5, spent=[])
    # 40 s of training: one line per 10 s, none before the first 10 s
    assert len(lines) == 4, lines
    assert [ln.split(", ")[1] for ln in lines] == ["epoch 10/40", "epoch 20/40", "epoch 30/40", "epoch 40/40"]

    slow: list[str] = []
    clock, ledger = FakeClock(), _ledger()
    log = ProgressLog("fitting", emit=slow.append, interval=10, clock=clock)
    log.watch(ledger, epochs={"train": 3})
    _train(log, ledger, clock, epochs=3, steps=60, seconds_per_step=1.0, spent=[])
    # a first sign of life (with its estimate) after 10 s, then one line per epoch, not one per 10 s
    assert [ln.split(", ")[1] for ln in slow] == ["epoch 0/3", "epoch 1/3", "epoch 2/3", "epoch 3/3"], slow
    assert "about 2m50s left" in slow[0]

    quick: list[str] = []  # a command that ends within the interval prints no progress at all
    clock, ledger = FakeClock(), _ledger(epsilon=50.0)
    log = ProgressLog("fitting", emit=quick.append, interval=10, clock=clock)
    log.watch(ledger, epochs={"train": 5})
    _train(log, ledger, clock, epochs=5, steps=2, seconds_per_step=0.5, spent=[])
    assert quick == []


def test_stages_without_epochs_count_their_units_and_without_a_ledger_no_epsilon():
    lines: list[str] = []
    log = ProgressLog("evaluating", emit=lines.append, interval=0, clock=FakeClock())
    for i, name in enumerate(("fidelity", "diversity", "privacy")):
        log(name, i, 3)
        log(name, i + 1, 3)
    assert lines[0] == "evaluating: fidelity 0/3, elapsed 0s"
    assert any(line.startswith("evaluating: privacy 3/3") for line in lines)
    assert not any("ε" in line or "epoch" in line for line in lines)
    with pytest.raises(ValueError):
        ProgressLog("x", emit=print, interval=-1)


class Watching:
    """A progress callback that shows ε spent: it records what the model hands it."""

    def __init__(self) -> None:
        self.watched: list[tuple[object, dict[str, int] | None]] = []
        self.calls: list[tuple[str, int, int]] = []

    def watch(self, ledger, *, epochs=None) -> None:
        self.watched.append((ledger, epochs))

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))


def _events(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"patient_id": np.repeat([f"P{i:03d}" for i in range(n)], 3),
                         "t": np.tile([1, 2, 3], n), "bmi": rng.normal(27, 4, 3 * n).round(1)})


def test_the_model_hands_progress_its_own_ledger():
    """One rule for which ledger a fit charges (unit, contribution bound, one shared ledger
    for a composite model): the model's. Its fit hands that very ledger to the callback, so
    the ε shown is the ε the bundle records. Before, progress built a second ledger by a
    copy of the models' rule (`progress.ledger_for`) and the model never called `watch`."""
    from synthkit.models import BY_NAME
    from synthkit.schema import Column, Schema
    budget = PrivacyBudget(epsilon=3.0, delta=1e-6)
    frame = _events()[["patient_id", "bmi"]]
    schema = Schema(columns=(Column(name="patient_id", kind="identifier", nullable=False),
                             Column(name="bmi", kind="continuous", nullable=False, bounds=(10.0, 50.0))),
                    entity_key="patient_id")
    progress = Watching()
    tvae = BY_NAME["dptvae"](epochs=2, batch_size=40, max_rows_per_entity=3, device="cpu", seed=0)
    tvae.fit(frame, schema=schema, budget=budget, progress=progress)
    [(ledger, epochs)] = progress.watched
    assert ledger is tvae.ledger_ and (ledger.unit, ledger.max_rows_per_unit) == ("entity", 3)
    assert epochs == {"train": 2} and progress.calls[-1][0] == "train"
    # a plain callback (no `watch`) is only called; without a budget the ledger has nothing to show
    plain: list[tuple[str, int, int]] = []
    BY_NAME["dptvae"](epochs=1, batch_size=40, device="cpu", seed=0).fit(
        frame, schema=schema, budget=None, progress=lambda *a: plain.append(a))
    assert plain and plain[-1][1] == plain[-1][2]
    log = ProgressLog("fitting", emit=[].append, interval=0, clock=FakeClock())
    nothing = BY_NAME["dptvae"](epochs=1, batch_size=40, device="cpu", seed=0)
    nothing.fit(frame, schema=schema, budget=None, progress=log)
    assert log.facts.ledger is nothing.ledger_ and log.facts.epsilon() is None


def test_a_sequence_model_hands_progress_the_one_ledger_of_both_its_models():
    """DPHMM: its context table model charges the SAME ledger (a view of its events); the
    callback is handed the HMM's ledger, with the epochs of both stages."""
    from synthkit.models import DPHMM
    from synthkit.schema import Column, Schema
    schema = Schema(columns=(Column(name="patient_id", kind="identifier", nullable=False),
                             Column(name="t", kind="integer", nullable=False, bounds=(0, 10)),
                             Column(name="bmi", kind="continuous", nullable=False, bounds=(10.0, 50.0))),
                    entity_key="patient_id", sequence_index="t")
    progress = Watching()
    hmm = DPHMM(n_states=2, epochs=1, batch_size=20, max_length=3, max_gap=5, context_epochs=2,
                context_hidden=(16,), context_embedding_dim=4, device="cpu", seed=0)
    hmm.fit(_events(), schema=schema, budget=PrivacyBudget(epsilon=5.0, delta=1e-6), progress=progress)
    [(ledger, epochs)] = progress.watched
    assert ledger is hmm.ledger_ and ledger.unit == "entity"
    assert epochs == {"train": 1, "context train": 2}
    assert {c[0] for c in progress.calls} == {"context train", "train"}
    assert any(e.name.startswith("context:") for e in ledger.events)  # the context model's charges are in it


# ---------------------------------------------------------------------------- start, heartbeat, end, stages
def test_begin_and_finish_frame_a_step_without_repeating_the_last_line():
    lines: list[str] = []
    clock = FakeClock()
    log = ProgressLog("generating", emit=lines.append, interval=10, clock=clock)
    log.begin("200 rows to out.csv")
    log("rows", 0, 200)
    clock.now += 1
    log("rows", 200, 200)
    log.finish()  # within the interval: only the start line came before, so the end is written
    assert lines == ["generating: 200 rows to out.csv", "generating: rows 200/200, elapsed 1s, stage done"]
    log.finish()
    assert len(lines) == 2  # nothing new to say


def test_the_heartbeat_writes_at_least_every_interval_while_nothing_moves(tmp_path):
    """A chunk (or a write to a slow sink) that takes minutes still gets a line per interval:
    a thread beats while the body runs. The interval is the threads' wait AND the clock's
    threshold: the fake clock decides when a beat may write, the test waits on the lines."""
    import threading
    lines: list[str] = []
    got = threading.Condition()

    def emit(text: str) -> None:
        with got:
            lines.append(text)
            got.notify_all()

    clock = FakeClock()
    log = ProgressLog("generating", emit=emit, interval=0.01, clock=clock)
    log("rows", 0, 100)  # the stage is known; the clock has not moved: no line yet
    with log.heartbeat():
        for n in (1, 2):
            clock.now += 5
            with got:
                assert got.wait_for(lambda n=n: len(lines) >= n, timeout=120), lines
        assert [ln.split(", ")[0] for ln in lines[:2]] == ["generating: rows 0/100"] * 2
        assert "elapsed 5s" in lines[0] and "elapsed 10s" in lines[1]
    assert not any(t.name == "synthkit-progress-heartbeat" for t in threading.enumerate())
    after = len(lines)
    clock.now += 5
    log.beat()  # a beat now (the thread is gone) writes once; none comes by itself
    assert len(lines) == after + 1
    # interval 0 needs no thread: every call already writes
    quick = ProgressLog("x", emit=lines.append, interval=0, clock=clock)
    with quick.heartbeat():
        assert not any(t.name == "synthkit-progress-heartbeat" for t in threading.enumerate())


def test_stage_lines_write_each_new_stage_at_once_whatever_the_interval():
    lines: list[str] = []
    clock = FakeClock()
    log = ProgressLog("demo", emit=lines.append, interval=3600, clock=clock, stage_lines=True)
    for i, stage in enumerate(("fit", "generate", "evaluate", "gate")):
        log(stage, i, 4)
        clock.now += 30
    log("gate", 4, 4)  # within the interval, not a new stage: no line of its own
    assert [ln.split(", ")[0] for ln in lines] == ["demo: fit 0/4", "demo: generate 1/4", "demo: evaluate 2/4",
                                                   "demo: gate 3/4"]
    log.finish()
    assert lines[-1] == "demo: gate 4/4, elapsed 2m00s, stage done"
    plain: list[str] = []  # without stage_lines the interval rules, as for fit
    log = ProgressLog("demo", emit=plain.append, interval=3600, clock=FakeClock())
    for i, stage in enumerate(("fit", "generate")):
        log(stage, i, 4)
    assert plain == []


# ---------------------------------------------------------------------------- the commands
def _progress_lines(stderr: str, what: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {what}: ", line)]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A tiny private fit, generate and evaluate through the CLI, off a terminal, with the
    interval injected as 0 (every epoch / section gets its line)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNTHKIT_PROGRESS_INTERVAL", "0")
    folder = tmp_path_factory.mktemp("progress")
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"patient_id": [f"P{i:04d}" for i in range(n)], "age": rng.integers(18, 90, n),
                          "bmi": rng.normal(27, 4, n).round(1), "sex": rng.choice(["female", "male"], n)})
    frame.loc[0, "sex"] = SECRET
    frame.to_csv(folder / "d.csv", index=False)
    out: dict[str, object] = {"folder": folder}
    try:
        fit = runner.invoke(app, ["fit", str(folder / "d.csv"), "--out", str(folder / "m"), "--model", "dptvae",
                                  "--epsilon", "3", "--epochs", str(EPOCHS), "--batch-size", "20",
                                  "--entity-key", "patient_id", "--max-rows-per-entity", "2",
                                  "--holdout", "0.3", "--holdout-seed", "1", "--seed", "0"])
        assert fit.exit_code == 0, fit.output
        gen = runner.invoke(app, ["generate", str(folder / "m"), "--rows", "200", "--out", str(folder / "s.csv"),
                                  "--seed", "1"])
        assert gen.exit_code == 0, gen.output
        ev = runner.invoke(app, ["evaluate", str(folder / "m"), "--real", str(folder / "d.csv"), "--synthetic",
                                 str(folder / "s.csv"), "--out", str(folder / "report")])
        assert ev.exit_code == 0, ev.output
        out.update(fit=fit, generate=gen, evaluate=ev)
    finally:
        mp.undo()
    return out


def test_fit_writes_a_line_per_epoch_with_epoch_and_epsilon_spent(pipeline):
    fit = pipeline["fit"]
    lines = _progress_lines(fit.stderr, "fitting")
    epochs = [ln for ln in lines if re.search(r"epoch \d+/3", ln)]
    assert len(epochs) >= EPOCHS, fit.stderr
    for k in range(1, EPOCHS + 1):
        assert any(f"epoch {k}/3" in ln for ln in lines), (k, lines)
    spent = [float(m.group(1)) for ln in lines for m in [re.search(r"ε spent (\d+\.\d+) of 3", ln)] if m]
    assert len(spent) == len(lines) and spent == sorted(spent)  # from the ledger: only grows
    manifest = json.loads((pipeline["folder"] / "m" / "manifest.json").read_text())
    summary = manifest["privacy"]["summary"]
    assert abs(spent[-1] - summary["epsilon_spent"]) < 1e-3  # the last line is what the bundle records
    assert (summary["unit"], summary["max_rows_per_unit"]) == ("entity", 2)  # the claim is unchanged
    assert all("elapsed" in ln for ln in lines) and any(" left" in ln for ln in lines)
    assert SECRET not in fit.output


def test_generate_and_evaluate_write_progress_lines(pipeline):
    gen = _progress_lines(pipeline["generate"].stderr, "generating")
    assert gen and gen[-1].startswith(f"{gen[-1][:19]} generating: rows 200/200")
    ev = _progress_lines(pipeline["evaluate"].stderr, "evaluating")
    assert len(ev) >= 3, pipeline["evaluate"].stderr
    assert not any("ε" in ln for ln in ev)  # no ledger watched: nothing to claim
    assert SECRET not in pipeline["evaluate"].output


def test_generate_says_where_it_starts_and_ends_however_short(pipeline, tmp_path, monkeypatch):
    """Off a terminal, with the default-like long interval: a start line (rows asked for and
    where), a final line, and nothing else on stderr. Before, a run shorter than the
    interval (any output of one chunk) printed no progress at all."""
    monkeypatch.setenv("SYNTHKIT_PROGRESS_INTERVAL", "3600")
    out = tmp_path / "out.csv"
    r = runner.invoke(app, ["generate", str(pipeline["folder"] / "m"), "--rows", "150", "--out", str(out),
                            "--seed", "2"])
    assert r.exit_code == 0, r.output
    lines = _progress_lines(r.stderr, "generating")
    assert len(lines) == 2 == len(r.stderr.strip().splitlines()), r.stderr
    assert lines[0].endswith(f"generating: 150 rows to {out}")
    assert " generating: rows 150/150, elapsed " in lines[1] and lines[1].endswith("stage done")
    assert r.stdout.startswith("wrote 150 synthetic rows")  # the result line stays on stdout
    # a refusal after the model is loaded (no free space) is still its only line
    import shutil
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 10, 10))
    r = runner.invoke(app, ["generate", str(pipeline["folder"] / "m"), "--rows", "150", "--out",
                            str(tmp_path / "full.csv")])
    assert r.exit_code == 2 and r.output.strip().splitlines()[0].startswith("error:"), r.output
    assert len(r.output.strip().splitlines()) == 1, r.output


@pytest.mark.skipif(not os.environ.get("SYNTHKIT_TEST_POSTGRES_URL"),
                    reason="set SYNTHKIT_TEST_POSTGRES_URL (e.g. $(bash scripts/postgres.sh)) to test PostgreSQL")
def test_generate_into_a_database_names_it_without_its_password(pipeline, monkeypatch):
    """A SQL sink: the start line says where (the URL, its password hidden, and the table)."""
    import uuid

    import sqlalchemy as sa
    url = os.environ["SYNTHKIT_TEST_POSTGRES_URL"]
    password = sa.make_url(url).password
    table = f"t_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SYNTHKIT_PROGRESS_INTERVAL", "3600")
    try:
        r = runner.invoke(app, ["generate", str(pipeline["folder"] / "m"), "--rows", "120", "--out", url,
                                "--table", table, "--seed", "3"])
        assert r.exit_code == 0, r.output
    finally:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')
        engine.dispose()
    lines = _progress_lines(r.stderr, "generating")
    assert len(lines) == 2 and lines[0].endswith(f"(table {table})"), r.stderr
    assert lines[0].split("generating: ", 1)[1].startswith("120 rows to postgresql://")
    assert password and password not in r.stderr


def test_the_time_left_of_generate_ignores_the_chunk_made_before_it_started():
    """generate makes its first chunk before the start line (for the free-space estimate);
    that chunk took no time within the stage, so the time left is measured on the others
    (10 s a chunk here: 20 s left after the second of four). Counting it as the stage's
    first progress said "about 0s left" at once and halved the pace."""
    from synthkit.cli import _counted
    lines: list[str] = []
    clock = FakeClock()
    log = ProgressLog("generating", emit=lines.append, interval=0, clock=clock)

    def later_chunks():
        for _ in range(3):
            clock.now += 10
            yield [0] * 100

    first = [0] * 100
    assert sum(len(c) for c in _counted(later_chunks(), 400, log, "rows", len, first=first)) == 400
    assert lines[0] == "generating: rows 100/400, elapsed 0s"  # no estimate before a timed chunk
    assert lines[1] == "generating: rows 200/400, elapsed 10s, about 20s left"
    assert lines[-1] == "generating: rows 400/400, elapsed 30s, stage done"


def test_demo_writes_a_line_per_stage(tmp_path, monkeypatch):
    """`synthkit demo` runs for minutes; off a terminal it now says each stage as it starts
    (fit, generate, evaluate, gate) and when it is done, whatever the interval (3600 s
    here: no other progress line). Before, nothing between "running" and "finished"."""
    monkeypatch.setenv("SYNTHKIT_PROGRESS_INTERVAL", "3600")
    monkeypatch.setenv("SYNTHKIT_REGISTRY", str(tmp_path / "registry.db"))
    r = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--epochs", "1", "--rows", "200"])
    assert r.exit_code == 0, r.output
    lines = [ln.split(" demo: ", 1)[1] for ln in _progress_lines(r.stderr, "demo")]
    assert [ln.split(", ")[0] for ln in lines] == ["fit 0/4", "generate 1/4", "evaluate 2/4", "gate 3/4",
                                                   "gate 4/4"], r.stderr
    assert lines[-1].endswith("stage done") and all("elapsed" in ln for ln in lines)
    assert not any("ε" in ln for ln in lines)  # the stages' own progress goes to the job's log


def test_a_bad_interval_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHKIT_PROGRESS_INTERVAL", "soon")
    pd.DataFrame({"a": range(10)}).to_csv(tmp_path / "d.csv", index=False)
    r = runner.invoke(app, ["fit", str(tmp_path / "d.csv"), "--out", str(tmp_path / "m"), "--no-privacy"])
    assert r.exit_code == 2 and "SYNTHKIT_PROGRESS_INTERVAL" in r.output and r.output.count("error:") == 1


def test_audit_reports_its_trials(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHKIT_PROGRESS_INTERVAL", "0")
    rng = np.random.default_rng(0)
    n = 200
    pd.DataFrame({"age": rng.integers(18, 90, n), "bmi": rng.normal(27, 4, n).round(1)}).to_csv(
        tmp_path / "d.csv", index=False)
    r = runner.invoke(app, ["audit", str(tmp_path / "d.csv"), "--out", str(tmp_path / "a"), "--model", "dptvae",
                            "--no-privacy", "--canaries", "4", "--trials", "2", "--epochs", "1", "--batch-size",
                            "20", "--workers", "1", "--synthetic-rows", "50", "--seed", "0"])
    assert r.exit_code == 0, r.output
    lines = _progress_lines(r.stderr, "auditing")
    assert [ln.split("auditing: ", 1)[1].split(",")[0] for ln in lines] == ["trials 0/2", "trials 1/2", "trials 2/2"]


def test_run_logs_progress_of_each_step(tmp_path, monkeypatch, caplog):
    """`synthkit run` (a scheduler's command): the fit's epochs with ε spent, the rows
    generated and the evaluation's sections, as INFO lines of the job's log."""
    import synthkit.jobs as jobs
    from test_gate import make_report
    from test_jobs import write_job
    monkeypatch.setenv("SYNTHKIT_PROGRESS_INTERVAL", "0")
    monkeypatch.setattr(jobs, "_evaluate", lambda *a, **k: make_report())
    path = write_job(tmp_path, model={"name": "dptvae", "hyperparameters": {"epochs": 2, "batch_size": 50}})
    with caplog.at_level(logging.INFO, logger="synthkit"):
        result = jobs.run_job(path, registry=str(tmp_path / "r.db"), run_by="cron")
    assert result.status in ("pending_review", "gate_rejected")
    said = [r.getMessage() for r in caplog.records if r.name == "synthkit.jobs"]
    fit = [m for m in said if m.startswith("fit: train")]
    assert any("epoch 1/2" in m for m in fit) and any("epoch 2/2" in m for m in fit), said
    assert all("ε spent" in m for m in fit)
    assert any(m.startswith("generate: rows 300/300") for m in said), said
    assert [m for m in said if m.startswith("generate: 300 rows to ")], said  # where it writes, as it starts
    assert not any(SECRET in m for m in said)
