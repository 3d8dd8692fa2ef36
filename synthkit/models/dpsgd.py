"""DP-SGD over Poisson-sampled privacy units, with Opacus ghost clipping.

Per-sample gradient NORMS come from Opacus' ghost clipping (Li et al. 2022; Bu et al.
2023): no per-sample gradient is materialised, so a DP step costs about two backward
passes. Opacus' optimizer adds N(0, σ²C²) noise to the sum of clipped gradients and
divides by the EXPECTED batch size (Poisson sampling: the real size is random).

A "sample" is one privacy unit: a [k, d] block of that unit's rows (padded, with a mask).
The per-sample loss sums over the unit's rows, so clipping bounds the whole unit's
contribution — entity-level DP for k > 1, row-level for k = 1.

The non-private path uses the same sampling and the same normalisation, so with noise 0
and an unbounded clip the two steps are identical (tested).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from synthkit.errors import ConfigError

# Opacus is imported where a private step is built (`ghost_clipped`, `DPStep`), not here:
# loading a bundle to generate (synthkit.models.base imports this module) needs none of it,
# and it cost about 2.5 s of every `synthkit generate` (session 10's trial, finding 8)


class PoissonSampler:
    """Each unit joins a batch independently with probability q (the sampling the RDP
    analysis of the sampled Gaussian mechanism assumes); vectorised, on the device."""

    def __init__(self, n_units: int, sampling_rate: float, generator: torch.Generator) -> None:
        self.n_units = n_units
        self.q = sampling_rate
        self.generator = generator

    def draw(self) -> torch.Tensor:
        u = torch.rand(self.n_units, generator=self.generator, device=self.generator.device)
        return torch.nonzero(u < self.q, as_tuple=False).squeeze(1)


def integer_batch_size(expected_batch_size: float) -> int:
    """Opacus divides by an integer expected batch size; every path uses the same one."""
    return max(1, int(round(expected_batch_size)))


def ghost_clipped(module: nn.Module, max_grad_norm: float) -> nn.Module:
    """`module` wrapped for ghost clipping in Opacus' "mean" mode (norms, no per-sample grads)."""
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    return GradSampleModuleFastGradientClipping(module, max_grad_norm=max_grad_norm, use_ghost_clipping=True,
                                                loss_reduction="mean")


def ghost_clipped_backward(module: nn.Module, optimizer: torch.optim.Optimizer, per_sample_loss: torch.Tensor) -> None:
    """The two-pass ghost-clipping backward of the per-sample losses (Opacus "mean" mode)."""
    with warnings.catch_warnings():
        # inputs never require grad here, so torch warns that the full backward hook fires on
        # module outputs: that is exactly what ghost clipping needs
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
        DPTensorFastGradientClipping(module, optimizer, per_sample_loss, "mean").backward()


class DPStep:
    """Wraps one module and its optimizer: `step(per_sample_loss)` does one (DP-)SGD step.

    Call `module(...)` for the forward pass whose loss is passed to `step`; use
    `no_capture()` for forward passes that must not be recorded (e.g. the generator's
    pass through a DP critic, which is post-processing of the critic's DP parameters).
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, *, private: bool,
                 noise_multiplier: float, max_grad_norm: float, expected_batch_size: float,
                 generator: torch.Generator | None) -> None:
        self.private = private
        # Opacus divides by an integer expected batch size; the non-private twin and the
        # empty-batch path use the same integer, so noise 0 + no clipping = plain SGD.
        self.expected_batch_size = float(integer_batch_size(expected_batch_size))
        self.noise_multiplier = noise_multiplier
        self.max_grad_norm = max_grad_norm
        self.generator = generator
        if private:
            from opacus.optimizers import DPOptimizerFastGradientClipping
            self.module: nn.Module = ghost_clipped(module, max_grad_norm)
            self.optimizer = DPOptimizerFastGradientClipping(
                optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                expected_batch_size=integer_batch_size(expected_batch_size), loss_reduction="mean",
                generator=generator)
        else:
            self.module = module
            self.optimizer = optimizer

    @property
    def inner(self) -> nn.Module:
        return self.module._module if self.private else self.module

    def no_capture(self) -> _NoCapture:
        return _NoCapture(self)

    def close(self) -> None:
        """Detach Opacus' hooks so the trained module can be used (and sampled) plainly."""
        if self.private:
            self.module._close()  # removes hooks and Opacus' per-parameter attributes

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, per_sample_loss: torch.Tensor) -> None:
        if per_sample_loss.numel() == 0:
            if self.private:
                discard_captured(self.module)
            self._noise_only_step()
            return
        if self.private:
            # Opacus "mean" mode: the first backward sees mean(loss); norms are rescaled
            # internally; the optimizer divides the noisy clipped sum by the expected size.
            ghost_clipped_backward(self.module, self.optimizer, per_sample_loss)
        else:
            (per_sample_loss.sum() / self.expected_batch_size).backward()
        self.optimizer.step()
        self.zero_grad()

    def _noise_only_step(self) -> None:
        """An empty Poisson batch still releases a noisy update (noise only), exactly as the
        accountant assumes; skipping it would make the step count data-dependent."""
        base = self.optimizer.original_optimizer if self.private else self.optimizer
        for group in base.param_groups:
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                if self.private:
                    noise = torch.normal(0.0, self.noise_multiplier * self.max_grad_norm, size=p.shape,
                                         generator=self.generator, device=p.device)
                    p.grad = noise / self.expected_batch_size
                else:
                    p.grad = torch.zeros_like(p)
        base.step()
        base.zero_grad(set_to_none=True)


def discard_captured(module: nn.Module) -> None:
    """Forget what a forward pass over an EMPTY batch captured. Ghost clipping counts
    forwards per parameter and clears the count in the backward pass; an empty batch has no
    backward, so the next forward would be taken for parameter tying and raise
    NotImplementedError (DPTVAE's loop runs the forward pass whatever the batch)."""
    for m in module.modules():
        if hasattr(m, "activations"):
            del m.activations
    for p in module.parameters():
        if hasattr(p, "_forward_counter"):
            p._forward_counter = 0


class _NoCapture:
    def __init__(self, step: DPStep) -> None:
        self.step = step

    def __enter__(self) -> None:
        if self.step.private:
            self.step.module.disable_hooks()

    def __exit__(self, *exc: object) -> None:
        if self.step.private:
            self.step.module.enable_hooks()


def steps_per_epoch(n_units_dp: float, batch_size: int) -> int:
    return max(1, int(math.ceil(n_units_dp / batch_size)))


# The batch size when the user sets none: a quarter of the DP unit count (at least four
# Poisson batches per epoch), at most `cap` (500 for tables, 256 for sequences: the sizes
# used before the batch adapted), at least MIN_BATCH. A function of the DP count of units
# alone, so it is post-processing of a release already in the ledger: it reads no data.
AUTO_BATCH_FRACTION = 0.25
MIN_BATCH = 2
# A table whose DP count of units does not clear MIN_UNIT_SIGMAS noise std of that count (and
# 2 × 2 × MIN_BATCH) is refused (issue 17, s13): on a 1- or 2-row file the count's noise (σ ≈ 8
# at ε = 3 on two columns, ≈ 50 at ε = 1 on thirty) cleared the fixed cut of 8 in about one fit
# in five, which then trained and exited 0. At 4 std a 2-unit table passes about 3 times in
# 100,000; a 150-unit table is refused only where σ is over ~35 (ε = 1 and many columns), where
# its count is within 4 of its own noise. The cut is a function of the plan (public) and the
# noisy count: post-processing.
MIN_UNIT_SIGMAS = 4.0


class TooFewUnitsError(ConfigError):
    """The table has too few privacy units to train on under DP (judged on a DP count); the
    CLI names the input it read."""


def choose_batch_size(requested: int | None, n_units_dp: float, *, unit: str, cap: int,
                      sigma: float = 0.0) -> int:
    """The expected Poisson batch size for `n_units_dp` (a DP count, of noise std `sigma`)
    privacy units.

    `requested` (the user's --batch-size) is honoured as given; it must leave at least two
    batches' worth of units, else the sampling rate q = batch/n would be over 1/2 and an
    epoch under two steps. Without it the batch adapts to the table (AUTO_BATCH_FRACTION).
    The accountant needs nothing more: q = batch/n_units_dp and the step count
    epochs × ceil(n_units_dp/batch) are then computed from it as for a given batch, and the
    noise multiplier is calibrated to them. A count under max(8, MIN_UNIT_SIGMAS·σ) is
    refused whatever the batch (`TooFewUnitsError`)."""
    units = "entities" if unit == "entity" else f"{unit}s"
    # a private count: refused under max(8, 4 sigma) whatever the batch; without privacy (sigma 0)
    # only the automatic batch needs 8 units (a requested one needs 2 x batch, as before s13)
    floor = max(2 * 2 * MIN_BATCH, MIN_UNIT_SIGMAS * sigma) if (sigma > 0 or requested is None) else 0.0
    if n_units_dp < floor:
        # the floor is from the budget and the column count (public), never from the count
        raise TooFewUnitsError(
            f"the table has too few {units} to train on under DP: its DP count does not clear {floor:.0f} "
            f"({MIN_UNIT_SIGMAS:g} noise std of that count at this epsilon and column count; a 1- or 2-row file "
            f"cannot); DP synthesis needs at least about 150 {units} for a useful model: give more {units}, "
            "raise --epsilon, or declare a schema with public bounds and categories (--schema) so that fewer "
            "statistics share the budget")
    if requested is not None:
        if n_units_dp < 2 * requested:
            # no number derived from the count: a refused fit records no ledger, so a size
            # read off each refusal's fresh noisy count could be averaged over reruns
            hint = ("leave --batch-size out so that it adapts to the table, or give a smaller one"
                    if requested > MIN_BATCH else "this table has too few to train on under DP")
            raise ConfigError(
                f"--batch-size {requested} needs at least {2 * requested} {units} (2 x batch size) and the table "
                f"has fewer (judged on a DP count); {hint}")
        return int(requested)
    return int(min(cap, max(MIN_BATCH, math.floor(AUTO_BATCH_FRACTION * n_units_dp))))
