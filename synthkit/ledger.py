"""The privacy budget, DP events, and ONE ledger that composes them.

Every mechanism that looks at private data — unit counts, category discovery, bounds and
histograms, each DP-SGD step — is a small frozen event. The ledger composes all of them
with one Rényi-DP accountant (Mironov 2017; sampled Gaussian from Mironov, Talwar & Zhang
2019 via Opacus' analysis module; RDP → (ε, δ) with the conversion of Balle et al. 2020).
Partition selection (releasing which categories exist) adds a pure δ term on top.

The ledger refuses an event BEFORE the mechanism runs if it would push the composed
spend past the target: the run can never overshoot.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Union

from synthkit._typing import PrivacyUnit
from synthkit.errors import BudgetExceededError, ConfigError

if TYPE_CHECKING:
    import numpy as np

# numpy (and synthkit.noise, which needs it) is imported where an RDP curve is computed, not
# here: the CLI builds a PrivacyBudget from --epsilon/--delta to refuse a bad one before
# numpy, pandas or torch load (issue 17).

logger = logging.getLogger(__name__)


@functools.cache
def _opacus_rdp():  # type: ignore[no-untyped-def]
    """Opacus' RDP analysis (opacus/accountants/analysis/rdp.py), loaded on first use from its
    own file: that module needs only numpy and scipy, but `import opacus.accountants...` runs
    opacus/__init__, which imports torch and every grad-sampler (about 5 s cold). `reports`,
    the dashboard and `synthkit generate` read ledgers and must not pay for that (session 10's
    trial: 2.5 s of every generate). Should the file not load on its own (another Opacus
    layout), the package import is the fallback: same code, slower."""
    import importlib.util
    spec = importlib.util.find_spec("opacus")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    path = os.path.join(roots[0], "accountants", "analysis", "rdp.py") if roots else ""
    file_spec = importlib.util.spec_from_file_location("synthkit._opacus_rdp", path) if os.path.isfile(path) else None
    if file_spec is not None and file_spec.loader is not None:
        module = importlib.util.module_from_spec(file_spec)
        try:
            file_spec.loader.exec_module(module)
        except ImportError:  # the file imports more than numpy/scipy in this Opacus
            module = None
        if module is not None and hasattr(module, "compute_rdp") and hasattr(module, "get_privacy_spent"):
            return module
    from opacus.accountants.analysis import rdp
    return rdp


# Rényi orders: dense near 1 for large epsilons, long tail for small ones.
ORDERS: tuple[float, ...] = tuple([1 + x / 20.0 for x in range(1, 80)] + list(range(5, 64)) + [80, 100, 128, 160, 200, 256, 512, 1024])


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyBudget:
    """An (ε, δ) target for one fit. Passed explicitly; there is no global budget."""

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ConfigError(f"epsilon must be a finite number > 0, got {self.epsilon!r}")
        if not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
            raise ConfigError(f"delta must be in (0, 1), got {self.delta!r}; typical values are 1e-5 to 1e-8")
        if self.delta > 1e-2:
            raise ConfigError(
                f"delta={self.delta!r} is far too large to mean anything (it is the chance of a total "
                "privacy failure); use delta well below 1/number-of-people, e.g. 1e-6"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class GaussianEvent:
    """Gaussian mechanism: noise N(0, sigma²) on a query of L2 sensitivity `sensitivity`."""

    name: str
    sigma: float
    sensitivity: float
    count: int = 1
    kind: str = "gaussian"

    def rdp(self, orders: np.ndarray) -> np.ndarray:
        return self.count * orders * self.sensitivity**2 / (2.0 * self.sigma**2)


@dataclass(frozen=True, slots=True, kw_only=True)
class SampledGaussianEvent:
    """`steps` DP-SGD steps: Poisson sampling at `sampling_rate` over privacy units, each
    unit's gradient clipped to norm C, Gaussian noise of std noise_multiplier·C."""

    name: str
    sampling_rate: float
    noise_multiplier: float
    steps: int
    kind: str = "sampled_gaussian"

    def rdp(self, orders: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.steps == 0:
            return np.zeros_like(orders)
        if self.noise_multiplier == 0:
            return np.full_like(orders, np.inf)
        return np.asarray(
            _opacus_rdp().compute_rdp(q=self.sampling_rate, noise_multiplier=self.noise_multiplier,
                                   steps=self.steps, orders=list(orders)), dtype=float
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdEvent:
    """Partition selection by thresholding noisy counts: a category held by a single unit
    is released with probability at most `delta` (added to the total δ)."""

    name: str
    delta: float
    kind: str = "threshold"

    def rdp(self, orders: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.zeros_like(orders)


DPEvent = Union[GaussianEvent, SampledGaussianEvent, ThresholdEvent]
_EVENT_TYPES = {"gaussian": GaussianEvent, "sampled_gaussian": SampledGaussianEvent, "threshold": ThresholdEvent}


def event_from_dict(data: dict[str, Any]) -> DPEvent:
    kind = data.get("kind")
    if kind not in _EVENT_TYPES:
        raise ConfigError(f"unknown DP event kind {kind!r}")
    return _EVENT_TYPES[kind](**data)


@functools.lru_cache(maxsize=4096)
def _event_rdp(event: DPEvent) -> tuple[float, ...]:
    """RDP curve of one (frozen, hashable) event at ORDERS, cached: a fit charges the same
    DP-SGD event once per epoch, and recomputing the sampled-Gaussian RDP of every past
    epoch at every charge made accounting quadratic in the number of epochs."""
    import numpy as np

    return tuple(float(v) for v in event.rdp(np.asarray(ORDERS, dtype=float)))


def compose_epsilon(events: Iterable[DPEvent], delta: float) -> float:
    """(ε at `delta`) of the composition of `events`; +inf if δ is used up by thresholds."""
    import numpy as np

    events = list(events)
    orders = np.asarray(ORDERS, dtype=float)
    rdp = np.zeros_like(orders)
    delta_pure = 0.0
    for e in events:
        rdp = rdp + np.asarray(_event_rdp(e), dtype=float)
        if isinstance(e, ThresholdEvent):
            delta_pure += e.delta
    if not any(isinstance(e, (GaussianEvent, SampledGaussianEvent)) for e in events):
        return 0.0
    remaining = delta - delta_pure
    if remaining <= 0:
        return math.inf
    if not np.all(np.isfinite(rdp)) and np.all(~np.isfinite(rdp)):
        return math.inf
    with warnings.catch_warnings():  # "optimal order is the smallest/largest alpha": still a valid bound
        warnings.filterwarnings("ignore", message="Optimal order")
        eps, _ = _opacus_rdp().get_privacy_spent(orders=list(orders), rdp=list(rdp), delta=remaining)
    return float(eps)


@dataclass(slots=True)
class PrivacyLedger:
    """The single record of every DP event of one fit, checked against the budget.

    `budget=None` means an explicitly non-private run: nothing is charged and every
    summary says "no formal privacy guarantee".
    """

    budget: PrivacyBudget | None
    unit: PrivacyUnit = "row"
    max_rows_per_unit: int = 1
    events: list[DPEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def private(self) -> bool:
        return self.budget is not None

    def epsilon_spent(self) -> float:
        if self.budget is None:
            return math.inf
        return compose_epsilon(self.events, self.budget.delta)

    def delta_spent(self) -> float:
        return 0.0 if self.budget is None else self.budget.delta if self.events else 0.0

    def epsilon_if(self, extra: Iterable[DPEvent]) -> float:
        """Dry run: what the spend would be after `extra` (the "can I afford this?" check)."""
        assert self.budget is not None
        return compose_epsilon([*self.events, *extra], self.budget.delta)

    def check(self, extra: Iterable[DPEvent], *, what: str) -> None:
        if self.budget is None:
            return
        extra = list(extra)
        planned = self.epsilon_if(extra)
        if planned > self.budget.epsilon * (1 + 1e-9):
            remaining = max(self.budget.epsilon - self.epsilon_spent(), 0.0)
            raise BudgetExceededError(
                f"{what} needs epsilon={planned:.3f} in total but the target is "
                f"{self.budget.epsilon:.3f} ({remaining:.3f} remains); raise --epsilon, lower "
                "--epochs, or declare public bounds/categories in the schema"
            )

    def charge(self, event: DPEvent) -> None:
        """Record `event`; refuse (before the mechanism runs) if it would overshoot."""
        if self.budget is None:
            return
        self.check([event], what=f"mechanism {event.name!r}")
        self.events.append(event)
        logger.debug("charged %s; epsilon spent %.4f", event.name, self.epsilon_spent())

    # ------------------------------------------------------------ reporting
    def summary(self) -> dict[str, Any]:
        """Aggregated per event name; what `inspect` prints and the report heads with."""
        if self.budget is None:
            return {"private": False, "guarantee": "no formal privacy guarantee (trained with --no-privacy)",
                    "unit": self.unit, "max_rows_per_unit": self.max_rows_per_unit, "events": []}
        rows = []
        for e in _merge(self.events):
            rows.append({"name": e.name, "kind": e.kind,
                         "epsilon_alone": compose_epsilon([e], self.budget.delta) if not isinstance(e, ThresholdEvent) else 0.0,
                         "delta_alone": e.delta if isinstance(e, ThresholdEvent) else None,
                         "details": {k: v for k, v in asdict(e).items() if k not in ("name", "kind")}})
        return {
            "private": True,
            "guarantee": f"({self.epsilon_spent():.4g}, {self.budget.delta:.3g})-differential privacy per {self.unit}",
            "target_epsilon": self.budget.epsilon,
            "target_delta": self.budget.delta,
            "epsilon_spent": self.epsilon_spent(),
            "unit": self.unit,
            "max_rows_per_unit": self.max_rows_per_unit,
            "accountant": "RDP (Opacus analysis), Balle et al. 2020 conversion; thresholds add to delta",
            "noise_source": _noise_source(),
            "events": rows,
            "notes": list(self.notes),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": None if self.budget is None else {"epsilon": self.budget.epsilon, "delta": self.budget.delta},
            "unit": self.unit,
            "max_rows_per_unit": self.max_rows_per_unit,
            "events": [asdict(e) for e in self.events],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrivacyLedger:
        b = data.get("budget")
        return cls(
            budget=None if b is None else PrivacyBudget(epsilon=float(b["epsilon"]), delta=float(b["delta"])),
            unit=data.get("unit", "row"),
            max_rows_per_unit=int(data.get("max_rows_per_unit", 1)),
            events=[event_from_dict(dict(e)) for e in data.get("events", [])],
            notes=list(data.get("notes", [])),
        )


def _merge(events: list[DPEvent]) -> list[DPEvent]:
    """Merge consecutive DP-SGD chunks of the same name and parameters into one event."""
    out: list[DPEvent] = []
    for e in events:
        if (out and isinstance(e, SampledGaussianEvent) and isinstance(out[-1], SampledGaussianEvent)
                and out[-1].name == e.name and out[-1].sampling_rate == e.sampling_rate
                and out[-1].noise_multiplier == e.noise_multiplier):
            prev = out[-1]
            out[-1] = SampledGaussianEvent(name=e.name, sampling_rate=e.sampling_rate,
                                           noise_multiplier=e.noise_multiplier, steps=prev.steps + e.steps)
        else:
            out.append(e)
    return out


def _noise_source() -> str:
    from synthkit.noise import SOURCE
    return SOURCE


def calibrate_noise_multiplier(
    ledger: PrivacyLedger, *, name: str, sampling_rate: float, steps: int,
    max_noise_multiplier: float = 200.0,
) -> float:
    """Smallest noise multiplier whose `steps` DP-SGD steps, composed with everything
    already in the ledger, stay within the target (binary search; the result is checked)."""
    assert ledger.budget is not None
    budget = ledger.budget

    def eps(sigma: float) -> float:
        return ledger.epsilon_if([SampledGaussianEvent(name=name, sampling_rate=sampling_rate,
                                                       noise_multiplier=sigma, steps=steps)])

    if eps(max_noise_multiplier) > budget.epsilon:
        raise BudgetExceededError(
            f"training for {steps} steps does not fit in the remaining budget even with noise multiplier "
            f"{max_noise_multiplier:g} (target epsilon {budget.epsilon:g}); lower --epochs, raise "
            "--batch-size or --epsilon"
        )
    lo, hi = 0.05, max_noise_multiplier
    if eps(lo) <= budget.epsilon:
        return lo
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if eps(mid) > budget.epsilon:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-4:
            break
    return hi
