"""generate's log stays alive while the model loads (issue 17, third new-user trial,
finding 8): off a terminal, a generate of 160 rows on a busy machine wrote its start line
and its final line in the same second after 90 s with nothing in the log (torch, opacus
and scipy load with the model; the start line waits for the first chunk, so that a refusal
stays the only line). Now `synthkit.progress.waiting` writes `generating: loading the
model, elapsed ...` every interval while that runs, and never sooner.

State, not time: the slow step here waits until the line has been written (an event),
with a generous guard. Negative control: `test_generate_says_it_is_loading_the_model`
against 580db96 fails (no such line: the guard runs out and the assertion fails).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

GUARD_S = 120  # only a guard against a hang; the test waits on the line itself


def _log(interval: float):
    from synthkit.progress import ProgressLog
    lines: list[str] = []
    said = threading.Event()

    def emit(text: str) -> None:
        lines.append(text)
        said.set()

    return ProgressLog("generating", emit=emit, interval=interval), lines, said


def test_waiting_writes_a_line_every_interval_while_the_step_runs():
    from synthkit.progress import waiting
    log, lines, said = _log(0.05)
    with waiting(log, "loading the model"):
        assert said.wait(GUARD_S)
    assert lines[0].startswith("generating: loading the model, elapsed "), lines
    n = len(lines)
    log.beat()  # after the step: its stage is gone, no beat names it again
    assert len(lines) == n


def test_waiting_says_nothing_within_the_interval_or_at_interval_zero():
    from synthkit.progress import waiting
    for interval in (3600.0, 0.0):
        log, lines, _ = _log(interval)
        with waiting(log, "loading the model"):
            pass
        log.beat()
        assert lines == []


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from synthkit.cli import fit_model
    tmp = tmp_path_factory.mktemp("slowload")
    rng = np.random.default_rng(3)  # made-up public numbers
    pd.DataFrame({"x": rng.normal(5, 1, 200).round(2), "c": rng.choice(["p", "q"], 200)}).to_csv(
        tmp / "d.csv", index=False)
    schema = tmp / "s.yaml"
    schema.write_text("version: 1\ncolumns:\n  x: {kind: continuous, bounds: [0, 10]}\n"
                      "  c: {kind: categorical, categories: [p, q]}\n")
    fit_model(data=tmp / "d.csv", schema_path=schema, model="dptvae", epsilon=3.0, delta=1e-6, no_privacy=False,
              epochs=1, batch_size=None, entity_key=None, max_rows_per_entity=1, device="cpu", seed=1,
              out=tmp / "m", overwrite=False)
    return tmp / "m"


def test_generate_says_it_is_loading_the_model(bundle, tmp_path, monkeypatch):
    import synthkit.bundle
    import synthkit.commands._common as common
    from typer.testing import CliRunner

    from synthkit.cli import app

    lines: list[str] = []
    said = threading.Event()

    def line(text: str) -> None:
        lines.append(text)
        if "loading the model" in text:
            said.set()

    real_load = synthkit.bundle.load

    def slow_load(path, *args, **kwargs):  # a busy machine: the load ends after the line came
        said.wait(GUARD_S)
        return real_load(path, *args, **kwargs)

    monkeypatch.setenv("SYNTHKIT_PROGRESS_INTERVAL", "0.05")
    monkeypatch.setattr(common, "_progress_line", line)
    monkeypatch.setattr(synthkit.bundle, "load", slow_load)
    out = tmp_path / "s.csv"
    r = CliRunner().invoke(app, ["generate", str(bundle), "--rows", "50", "--out", str(out), "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert any(ln.startswith("generating: loading the model, elapsed ") for ln in lines), lines
    start = next(i for i, ln in enumerate(lines) if ln.startswith("generating: 50 rows to "))
    assert all("loading the model" not in ln for ln in lines[start:]), lines  # not named after the start line
    assert len(pd.read_csv(out)) == 50


def test_the_watchdog_writes_where_no_step_reports():
    """Session 11's trial: 48-168 s before a fit's first line (reading, DP preprocessing),
    73 s after its training and 75 s in an evaluation's validation with nothing in the log.
    The CLI's ProgressLog runs a watchdog for the whole command: a line every interval,
    before any stage (`working`), within one (its facts) and after one (`working after
    STAGE`). Negative control: on df40585 there is no watchdog (AttributeError)."""
    from synthkit.progress import ProgressLog
    lines: list[str] = []
    said = threading.Event()

    def emit(text: str) -> None:
        lines.append(text)
        said.set()

    log = ProgressLog("fitting", emit=emit, interval=0.05)
    with log.watchdog():
        assert said.wait(GUARD_S)  # nothing reported yet: the command is alive
        said.clear()
        assert lines[0].startswith("fitting: working, elapsed "), lines
        log("train", 1, 4)  # within a stage whose next unit takes long
        n = len(lines)
        while len(lines) == n or "train" not in lines[-1]:
            assert said.wait(GUARD_S)
            said.clear()
        assert lines[-1].startswith("fitting: train 1/4"), lines[-1]
        log("train", 4, 4)  # done; then the bundle is written, with no unit to report
        n = len(lines)
        while not any(line.startswith("fitting: working after train, elapsed ") for line in lines[n:]):
            assert said.wait(GUARD_S)
            said.clear()


def test_the_watchdog_says_nothing_within_the_interval_or_at_interval_zero():
    from synthkit.progress import ProgressLog
    for interval in (3600.0, 0.0):
        lines: list[str] = []
        log = ProgressLog("fitting", emit=lines.append, interval=interval)
        with log.watchdog():
            pass
        assert lines == []
