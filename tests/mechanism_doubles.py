"""Stand-ins for tests of a mechanism's post-processing (geometric ranges, histogram clearing):
a ledger that charges nothing and a generator whose noise the test fixes."""

from __future__ import annotations

import numpy as np


class StubLedger:
    """Stands in for PrivacyLedger where only a mechanism's post-processing is tested."""

    private = True

    def __init__(self) -> None:
        self.notes: list[str] = []

    def charge(self, event: object) -> None:
        pass


class FixedNoise:
    """A generator whose `normal` returns given standard-normal values times the scale."""

    def __init__(self, z: np.ndarray) -> None:
        self.z = np.asarray(z, dtype=float)

    def normal(self, loc: float, scale: float, size: tuple[int, ...]) -> np.ndarray:
        assert self.z.shape == tuple(size)
        return loc + scale * self.z
