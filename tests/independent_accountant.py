"""An independent accountant for tests: Google's dp_accounting, not our Opacus-based one."""

from __future__ import annotations

import dp_accounting
from dp_accounting import rdp as dp_rdp

from synthkit.ledger import GaussianEvent, SampledGaussianEvent, ThresholdEvent


def independent_epsilon(events, delta: float, orders=None) -> float:
    """ε of `events` recomputed with dp_accounting's RDP accountant: Gaussian and Poisson-
    sampled Gaussian events composed there; threshold deltas taken off δ first."""
    accountant = dp_rdp.RdpAccountant(orders=orders) if orders is not None else dp_rdp.RdpAccountant()
    remaining = delta
    for e in events:
        if isinstance(e, GaussianEvent):
            accountant.compose(dp_accounting.SelfComposedDpEvent(
                dp_accounting.GaussianDpEvent(e.sigma / e.sensitivity), e.count))
        elif isinstance(e, SampledGaussianEvent):
            accountant.compose(dp_accounting.SelfComposedDpEvent(
                dp_accounting.PoissonSampledDpEvent(e.sampling_rate, dp_accounting.GaussianDpEvent(e.noise_multiplier)),
                e.steps))
        elif isinstance(e, ThresholdEvent):
            remaining -= e.delta
        else:  # pragma: no cover - a new event kind must be added here
            raise AssertionError(f"unknown event {e!r}")
    return accountant.get_epsilon(remaining)
