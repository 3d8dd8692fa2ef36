"""Progress of the long steps (fit, generate, evaluate, audit, run) as the facts a person
watching them needs: the stage, done/total, the epoch, ε spent so far, the time elapsed
and an estimate of the time left.

Library code reports progress through a plain callback `progress(stage, done, total)`
(STYLE.md); this module turns those calls into facts. The CLI shows them as a rich bar on
a terminal and, everywhere else (a script, a scheduler, a log file), as one line at most
every `interval` seconds and at most once per epoch, whichever is rarer. A command that
ends (or fails) within `interval` seconds prints none: its own result or error line
stays the only one.

ε spent comes from the fit's PrivacyLedger (`watch`), never from the data: every charge
in it is computed from public parameters (sampling rate, noise multiplier, steps), so
printing it releases nothing. Nothing else printed here depends on the data either:
stage names, counts of steps, sections, trials, rows or entities asked for.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

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


def ledger_for(model: Any, *, budget: Any, entity_key: str | None) -> Any:
    """A fresh ledger to hand to `model.fit(..., ledger=...)`, set as the model would set
    its own when given none (unit and contribution bound), so that progress can read the
    ε spent while the model trains. None without a budget (nothing is charged)."""
    if budget is None:
        return None
    from synthkit.ledger import PrivacyLedger
    if hasattr(model, "context_epochs"):  # DPHMM: always entity-level; it sets its own bound when planned
        k = 2 if getattr(model, "max_length", None) is None else int(model.max_length)
        return PrivacyLedger(budget=budget, unit="entity", max_rows_per_unit=k)
    k = int(model.max_rows_per_entity) if entity_key is not None else 1
    return PrivacyLedger(budget=budget, unit="entity" if entity_key is not None else "row", max_rows_per_unit=k)


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
    are injectable (tests use interval 0: a line at every stage, epoch or unit)."""

    def __init__(self, what: str, *, emit: Callable[[str], None], interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not (interval >= 0 and math.isfinite(interval)):
            raise ValueError("interval must be a finite number of seconds >= 0")
        self.facts = ProgressFacts(what, clock=clock)
        self.emit = emit
        self.interval = float(interval)
        self.clock = clock
        self._last_at = clock()  # the first line comes `interval` seconds after the start
        self._last_tick: tuple[str, int] | None = None

    def watch(self, ledger: Any, *, epochs: dict[str, int] | None = None) -> None:
        self.facts.watch(ledger, epochs=epochs)

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.facts.update(stage, done, total)
        tick = self.facts.tick()
        now = self.clock()
        if tick != self._last_tick and now - self._last_at >= self.interval:
            self._last_at, self._last_tick = now, tick
            self.emit(self.facts.line())
