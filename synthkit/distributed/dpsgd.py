"""One DP-SGD step over W ranks: noise once, global normalisation, no rank skips a step.

Per step t each rank r holds the clipped per-unit gradient sum S_r of its local Poisson
batch (ghost clipping, as the single-process `DPStep`). The released update is

    g_t = (Σ_r S_r + N(0, σ²C²)) / B,    B = the GLOBAL expected batch size (q · n_units_dp),

i.e. the single-process statistic: the union batch is Poisson(q) over all units and the
noise is drawn once, by rank 0, from its DP stream. Every rank all-reduces (SUM) the same
tensors and applies the same optimizer step, so the weights stay identical without a
broadcast. A rank whose local batch is empty still takes part with S_r = 0: skipping it
would desynchronise the collectives (Opacus' DistributedUniformWithReplacementSampler
skips empty local batches) and make the step count data-dependent.

Opacus' `DistributedDPOptimizerFastGradientClipping` also adds the noise on rank 0, but it
divides by `expected_batch_size` and then by the world size; here the divisor is the
global B, once, written where it is used.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.distributed as dist
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from torch import nn

from synthkit.models.dpsgd import _NoCapture, discard_captured, ghost_clipped, ghost_clipped_backward, integer_batch_size
from synthkit.models.hmm.train import HMMDPStep

NOISE_RANK = 0


class _NoiseOnceAllReduce:
    """Clipped sums → (+ noise on rank 0) → / global B → all-reduce SUM → step: what turns an
    Opacus DP optimizer (ghost clipping's or the per-sample one) into the distributed one."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, rank: int, noise_multiplier: float,
                 max_grad_norm: float, expected_batch_size: float, generator: torch.Generator | None) -> None:
        super().__init__(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,  # type: ignore[call-arg]
                         expected_batch_size=expected_batch_size, loss_reduction="mean", generator=generator)
        self.rank = rank

    def add_noise(self) -> None:
        if self.rank == NOISE_RANK:
            super().add_noise()  # type: ignore[misc]
        else:
            for p in self.params:  # type: ignore[attr-defined]
                p.grad = p.summed_grad.view_as(p).clone()

    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        if closure is not None:
            with torch.enable_grad():
                closure()
        if not self.pre_step():  # type: ignore[attr-defined]  # accumulate, add_noise (rank 0), ÷ global B
            return None
        _all_reduce_grads(self.params)  # type: ignore[attr-defined]
        return self.original_optimizer.step()  # type: ignore[attr-defined]


def _all_reduce_grads(params: list[torch.Tensor]) -> None:
    """Σ over ranks of every parameter's gradient, in place. Each gradient is made
    contiguous first: gloo reduces a tensor's storage in memory order, and the clipped sum of
    a transposed view's per-sample gradients (DPHMM's `stay_logit[:, :c].t()`) comes out
    with transposed strides on one rank and, after the noise is added, contiguous on rank 0,
    so the ranks summed different elements (found by the empty-batch test: 8e-3 apart)."""
    for p in params:
        if not p.grad.is_contiguous():
            p.grad = p.grad.contiguous()
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


class _AllReduceDPOptimizer(_NoiseOnceAllReduce, DPOptimizerFastGradientClipping):
    """Ghost clipping's optimizer (DPTVAE, DPCTGAN's critic), distributed."""


class _AllReducePerSampleDPOptimizer(_NoiseOnceAllReduce, DPOptimizer):
    """The per-sample-gradient optimizer (DPHMM's functorch gradients), distributed."""


class DistributedDPStep:
    """The distributed twin of `synthkit.models.dpsgd.DPStep`: `step(per_sample_loss)` on
    every rank, every step, with the rank's (possibly empty) per-unit losses.

    `noise_generator` is used on rank 0 only (other ranks may pass None). The module's
    weights must be identical on all ranks before the first step (`broadcast_parameters`).
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, *, private: bool,
                 noise_multiplier: float, max_grad_norm: float, expected_batch_size: float,
                 noise_generator: torch.Generator | None) -> None:
        self.private = private
        self.rank = dist.get_rank()
        # the same integer divisor as the single-process DPStep (Opacus divides by an int)
        self.expected_batch_size = float(integer_batch_size(expected_batch_size))
        if private:
            self.module: nn.Module = ghost_clipped(module, max_grad_norm)
            self.optimizer: torch.optim.Optimizer = _AllReduceDPOptimizer(
                optimizer, rank=self.rank, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                expected_batch_size=self.expected_batch_size,
                generator=noise_generator if self.rank == NOISE_RANK else None)
        else:
            self.module = module
            self.optimizer = optimizer

    @property
    def inner(self) -> nn.Module:
        return self.module._module if self.private else self.module

    def close(self) -> None:
        if self.private:
            self.module._close()

    def no_capture(self) -> _NoCapture:
        """Forward and backward passes that are not DP steps (DPCTGAN's generator step
        through the critic: post-processing): the per-sample hooks are off."""
        return _NoCapture(self)

    def zero_grad(self) -> None:
        """Drop gradients left by a `no_capture` backward before the next DP step."""
        self.optimizer.zero_grad(set_to_none=True)

    def _params(self) -> list[torch.Tensor]:
        base = self.optimizer.original_optimizer if self.private else self.optimizer
        return [p for group in base.param_groups for p in group["params"] if p.requires_grad]

    def _discard_captured(self) -> None:
        if self.private:
            discard_captured(self.module)  # see synthkit.models.dpsgd.discard_captured

    def step(self, per_sample_loss: torch.Tensor) -> None:
        if per_sample_loss.numel() == 0:
            # this rank's batch is empty: it contributes S_r = 0 and still joins the collectives
            self._discard_captured()
            for p in self._params():
                p.grad = torch.zeros_like(p)
        elif self.private:
            ghost_clipped_backward(self.module, self.optimizer, per_sample_loss)
        else:
            per_sample_loss.sum().backward()
        if self.private:
            self.optimizer.step()
        else:
            for p in self._params():
                p.grad /= self.expected_batch_size
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


class DistributedHMMStep(HMMDPStep):
    """DPHMM's step (`synthkit.models.hmm.train.HMMDPStep`: Opacus' functorch per-entity
    gradients, each entity clipped to C) on every rank, every step, with the rank's
    (possibly empty) batch of whole entities: the clipped sums are all-reduced, the noise
    added once (rank 0) and the divisor is the GLOBAL expected batch size, so the update is
    the single-process one. Non-private: Σ NLL / B all-reduced (plain SGD on the union)."""

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, *, private: bool, noise_multiplier: float,
                 max_grad_norm: float, expected_batch_size: float, generator: torch.Generator | None) -> None:
        self.rank = dist.get_rank()
        super().__init__(net, optimizer, private=private, noise_multiplier=noise_multiplier,  # type: ignore[arg-type]
                         max_grad_norm=max_grad_norm, expected_batch_size=expected_batch_size,
                         generator=generator if self.rank == NOISE_RANK else None)

    def _dp_optimizer(self, optimizer: torch.optim.Optimizer, *, noise_multiplier: float, max_grad_norm: float,
                      generator: torch.Generator | None) -> torch.optim.Optimizer:
        return _AllReducePerSampleDPOptimizer(optimizer, rank=self.rank, noise_multiplier=noise_multiplier,
                                              max_grad_norm=max_grad_norm,
                                              expected_batch_size=self.expected_batch_size, generator=generator)

    def _apply(self) -> None:
        if not self.private:
            _all_reduce_grads(self.params)
        super()._apply()


def broadcast_parameters(module: nn.Module, *, src: int = 0) -> None:
    """Make every rank start from rank `src`'s weights (as Opacus' DPDDP does)."""
    with torch.no_grad():
        for p in module.parameters():
            dist.broadcast(p.data, src)
        for b in module.buffers():
            dist.broadcast(b.data, src)
