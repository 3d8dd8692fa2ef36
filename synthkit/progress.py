"""Progress of the long steps (fit, generate, evaluate, audit, run) as the facts a person
watching them needs: the stage, done/total, the epoch, ε spent so far, the time elapsed
and an estimate of the time left.

Library code reports progress through a plain callback `progress(stage, done, total)`
(STYLE.md); this module turns those calls into facts. The CLI shows them as a rich bar on
a terminal and, everywhere else (a script, a scheduler, a log file), as one line at most
every `interval` seconds and at most once per epoch, whichever is rarer. A command that
fails (or, but for generate and demo, ends) within `interval` seconds prints none: its own
result or error line stays the only one.

A step whose length a person cannot guess (generate writing to a slow disk or database,
the demo's minutes of work) also says when it starts (`begin`: what, how much was asked
for, where), keeps a line coming at least every `interval` seconds while it runs even
when no unit completes (`heartbeat`: a thread), and ends with a final line (`finish`).
The demo's log writes a line at every new stage (`stage_lines`).

ε spent comes from the fit's PrivacyLedger, never from the data: every charge in it is
computed from public parameters (sampling rate, noise multiplier, steps), so printing it
releases nothing. The ledger is the MODEL's own: its fit hands it to the callback
(`watch_ledger`) once it has set it up by its own rule (unit, contribution bound, the one
ledger a composite model shares), so progress never keeps a second copy of that rule.
Nothing else printed here depends on the data either: stage names, counts of steps,
sections, trials, rows or entities asked for.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

DEFAULT_INTERVAL = 10.0  # seconds between two log lines at most (a rate limit)
ENV_INTERVAL = "SYNTHKIT_PROGRESS_INTERVAL"


def interval_from_env() -> float:
    """$SYNTHKIT_PROGRESS_INTERVAL (seconds, >= 0), else DEFAULT_INTERVAL."""
    import os

    from synthkit.errors import ConfigError
    raw = os.environ.get(ENV_INTERVAL)
    if raw is None or not raw.strip():
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"${ENV_INTERVAL} must be a number of seconds >= 0 (e.g. 10 or 60); unset it for the "
                          f"default ({DEFAULT_INTERVAL:g})")
    return value


def watch_ledger(progress: Any, ledger: Any, *, epochs: dict[str, int] | None = None) -> None:
    """Tell `progress` the ledger a fit charges, for a callback that shows ε spent (one
    with `.watch`, as ProgressLog and the CLI's bar have); a plain callback is left alone.
    Called by the models' `fit` once their ledger is set (synthkit.models), so the ε shown
    is read from the very ledger the bundle records. `epochs`: the model's stages that
    count epochs (stage name -> epochs), so a count of steps can be shown as an epoch."""
    watch = getattr(progress, "watch", None)
    if callable(watch):
        watch(ledger, epochs=epochs)


@contextmanager
def announced(progress: Any, text: str) -> Iterator[None]:
    """Around the body of a step a person waits for: the start line `text`, a line at
    least every interval while the body runs, and a final line when it ends well (an
    error stays the last line). Only for a callback that has them (ProgressLog); a plain
    callback or the terminal's bar (which shows itself) gets nothing more."""
    begin = getattr(progress, "begin", None)
    if begin is None:
        yield
        return
    begin(text)
    with progress.heartbeat():
        yield
    progress.finish()


@contextmanager
def waiting(progress: Any, stage: str) -> Iterator[None]:
    """Around a silent step BEFORE a step's start line (generate loading its model: torch,
    opacus and scipy take seconds, minutes on a busy machine; then its first chunk): a
    ProgressLog writes `what: stage, elapsed ...` every `interval` seconds while it runs,
    never at once, so a refusal within the interval stays the only line (issue 17, trial 3:
    90 s with nothing in a generate's log). Anything else (the terminal's bar, a plain
    callback, interval 0, where every call already writes) gets nothing."""
    facts, lock = getattr(progress, "facts", None), getattr(progress, "_lock", None)
    if not isinstance(progress, ProgressLog) or facts is None or lock is None or progress.interval <= 0:
        yield
        return
    with lock:
        facts.update(stage, 0, 0)
    try:
        with progress.heartbeat():
            yield
    finally:
        with lock:
            facts.update("", 0, 0)  # the step's own stages follow; no beat names this one again


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressFacts:
    """What is known about a step in progress, from the callback's calls (and the ledger
    when one is watched). `epochs`: stage name -> number of epochs of that stage, so a
    count of steps can be read as an epoch."""

    def __init__(self, what: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.clock = clock
        self.started = clock()
        self.stage = ""
        self.stage_started = self.started
        self.stage_first = 0  # units done at the stage's first call (its pace is measured from there)
        self.done = 0
        self.total = 0
        self.ledger: Any = None
        self.epochs: dict[str, int] = {}
        self._eps_cache: tuple[int, float | None] = (-1, None)

    def watch(self, ledger: Any, *, epochs: dict[str, int] | None = None) -> None:
        """Read ε spent from `ledger` (may be None: a run without DP) and know each stage's epochs."""
        self.ledger = ledger
        self.epochs = {k: int(v) for k, v in (epochs or {}).items() if v}

    def update(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.stage, self.stage_started, self.stage_first = stage, self.clock(), int(done)
        self.done, self.total = int(done), int(total)

    def epoch(self) -> tuple[int, int] | None:
        """(epochs completed, epochs) of the current stage, when it counts epochs."""
        n = self.epochs.get(self.stage)
        if not n or self.total <= 0:
            return None
        return min(n, self.done * n // self.total), n

    def epsilon(self) -> tuple[float, float] | None:
        """(ε spent so far, ε target) from the watched ledger; recomputed only when it
        has new charges (once per epoch of DP-SGD)."""
        ledger = self.ledger
        if ledger is None or getattr(ledger, "budget", None) is None:
            return None
        n = len(ledger.events)
        if self._eps_cache[0] != n:
            self._eps_cache = (n, float(ledger.epsilon_spent()))
        spent = self._eps_cache[1]
        return (spent, float(ledger.budget.epsilon)) if spent is not None else None

    def left(self) -> float | None:
        """Seconds left in this stage, from its pace since the stage's first call (None
        before a unit was timed)."""
        timed = self.done - self.stage_first
        if timed <= 0 or self.total <= 0 or self.done > self.total:
            return None
        return (self.clock() - self.stage_started) * (self.total - self.done) / timed

    def tick(self) -> tuple[str, int]:
        """What counts as a step forward for the log: a new stage or, within a stage, a
        completed epoch where it has epochs, else any unit done."""
        ep = self.epoch()
        return self.stage, ep[0] if ep is not None else self.done

    def extras(self) -> str:
        """The epoch and ε spent, for the bar's text column."""
        parts = []
        ep = self.epoch()
        if ep is not None:
            parts.append(f"epoch {ep[0]}/{ep[1]}")
        eps = self.epsilon()
        if eps is not None:
            parts.append(f"ε spent {eps[0]:.3f} of {eps[1]:g}")
        return ", ".join(parts)

    def line(self) -> str:
        """One self-contained log line with every fact known."""
        parts = [f"{self.what}: {self.stage} {self.done}/{self.total}" if self.total else f"{self.what}: {self.stage}"]
        extra = self.extras()
        if extra:
            parts.append(extra)
        parts.append(f"elapsed {_duration(self.clock() - self.started)}")
        left = self.left()
        if left is not None and self.done < self.total:
            parts.append(f"about {_duration(left)} left")
        elif self.total and self.done >= self.total:
            parts.append("stage done")
        return ", ".join(parts)


class ProgressLog:
    """A `progress(stage, done, total)` callback that writes lines through `emit`: one
    line when `interval` seconds have passed since the start or the last line AND a stage,
    an epoch (or another unit) has moved on since the last line. `interval` and `clock`
    are injectable (tests use interval 0: a line at every stage, epoch or unit).

    `stage_lines`: a new stage gets its line at once, whatever the interval (the demo: one
    line per stage). `begin`, `heartbeat` and `finish`: see `announced`. The heartbeat's
    thread and the caller may both write, so a lock keeps each line whole and in order."""

    def __init__(self, what: str, *, emit: Callable[[str], None], interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, stage_lines: bool = False) -> None:
        if not (interval >= 0 and math.isfinite(interval)):
            raise ValueError("interval must be a finite number of seconds >= 0")
        self.facts = ProgressFacts(what, clock=clock)
        self.emit = emit
        self.interval = float(interval)
        self.clock = clock
        self.stage_lines = stage_lines
        self._last_at = clock()  # the first line comes `interval` seconds after the start
        self._last_tick: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def watch(self, ledger: Any, *, epochs: dict[str, int] | None = None) -> None:
        self.facts.watch(ledger, epochs=epochs)

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            new_stage = stage != self.facts.stage
            self.facts.update(stage, done, total)
            tick = self.facts.tick()
            now = self.clock()
            due = now - self._last_at >= self.interval or (self.stage_lines and new_stage)
            if tick != self._last_tick and due:
                self._line(now, tick)

    def _line(self, now: float, tick: tuple[str, int]) -> None:
        self._last_at, self._last_tick = now, tick
        self.emit(self.facts.line())

    def begin(self, text: str) -> None:
        """The start line, at once: `what: text` (e.g. the rows asked for and where they go)."""
        with self._lock:
            self._last_at = self.clock()
            self.emit(f"{self.facts.what}: {text}")

    def beat(self) -> None:
        """A line when `interval` seconds have passed since the last one, even if nothing
        moved on (a chunk or a write that takes long): the step is alive, and where it is."""
        with self._lock:
            now = self.clock()
            if self.facts.stage and now - self._last_at >= self.interval:
                self._line(now, self.facts.tick())

    def finish(self) -> None:
        """The final line (the counts reached, the time it took), unless the last line
        already said exactly that."""
        with self._lock:
            tick = self.facts.tick()
            if self.facts.stage and tick != self._last_tick:
                self._line(self.clock(), tick)

    def alive(self) -> None:
        """The command's watchdog (`watchdog`): a line when `interval` seconds have passed
        since the last one, whatever the command is doing. Reading the data, the DP
        preprocessing, the work after the last epoch and the validation write no progress
        of their own (session 11's trial: 48-168 s before a fit's first line, 73 s after
        its training, 75 s in an evaluation's validation). Within a stage, its facts line;
        after a stage is done, or before any, `what: working[ after STAGE],
        elapsed ...` (names and times only, nothing from the data)."""
        with self._lock:
            now = self.clock()
            if now - self._last_at < self.interval:
                return
            facts = self.facts
            finished = facts.total > 0 and facts.done >= facts.total
            if facts.stage and not finished:
                self._line(now, facts.tick())
                return
            after = f" after {facts.stage}" if facts.stage else ""
            self._last_at = now
            self.emit(f"{self.facts.what}: working{after}, elapsed {_duration(now - self.facts.started)}")

    @contextmanager
    def watchdog(self) -> Iterator[None]:
        """`alive` every `interval` seconds from a daemon thread while the command runs
        (the CLI's progress off a terminal); stopped and joined when it ends. Its first line
        comes `interval` seconds after the start, so a command that fails sooner prints
        only its error. Interval 0 needs none."""
        with self._every_interval(self.alive):
            yield

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """`beat` every `interval` seconds from a daemon thread while the body runs; the
        thread is stopped and joined when it ends (normally or not). Interval 0 needs none:
        every call already writes its line."""
        with self._every_interval(self.beat):
            yield

    @contextmanager
    def _every_interval(self, call: Callable[[], None]) -> Iterator[None]:
        if self.interval <= 0:
            yield
            return
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(self.interval):
                call()

        thread = threading.Thread(target=run, name="synthkit-progress-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
