"""Where the randomness of the DP mechanisms comes from.

A DP guarantee holds only if nobody can reproduce the noise. Under a budget, every draw a
DP mechanism relies on — the preprocessing noise (counts, category thresholds,
histograms, pair tables), the contribution-bounding subsample, the Poisson batches and the
DP-SGD noise — comes from streams seeded with 256 bits of the operating system's
cryptographic entropy (`secrets`), whatever `seed` the user gives. That seed is never
recorded. `seed` keeps its meaning only for what is not a DP mechanism: network
initialisation, the holdout split and generation.

Opacus' `secure_mode` would draw the noise from torchcsprng, but torchcsprng has no build
for torch 2.x; the OS-entropy seeding below is what `synthkit inspect` reports instead.

Tests that need an exactly reproducible private fit (the neighbouring-table differential
tests, and the test session as a whole so that CI does not depend on a noise draw) fix
the source with `_fixed_for_tests`, an internal hook with no CLI, job or environment
switch; tests of the production source itself run inside `_entropy_for_tests`.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Iterator

import numpy as np

SOURCE = ("OS entropy: 256 bits from Python's `secrets` seed numpy PCG64 and torch generators for every DP "
          "draw (noise, Poisson batches, contribution bounding); never recorded, independent of --seed "
          "(opacus secure_mode/torchcsprng is not available for torch 2.x)")

_fixed: list[int] = []  # [seed, calls so far] while a test fixes the source


def private_seed_sequence() -> np.random.SeedSequence:
    """A fresh seed sequence for a private fit's DP streams, from OS entropy."""
    if _fixed:
        _fixed[1] += 1
        return np.random.SeedSequence([_fixed[0], _fixed[1]])
    return np.random.SeedSequence(secrets.randbits(256))


@contextlib.contextmanager
def _fixed_for_tests(seed: int) -> Iterator[None]:
    """INTERNAL, tests only: make the DP streams of the fits inside the block reproducible
    (the n-th private fit in the block gets the same streams every time). Nests: the
    previous state comes back after the block."""
    saved = list(_fixed)
    _fixed[:] = [int(seed), 0]
    try:
        yield
    finally:
        _fixed[:] = saved


@contextlib.contextmanager
def _entropy_for_tests() -> Iterator[None]:
    """INTERNAL, tests only: OS entropy inside the block even where a test session fixed
    the source (tests of the production source itself)."""
    saved = list(_fixed)
    _fixed.clear()
    try:
        yield
    finally:
        _fixed[:] = saved
