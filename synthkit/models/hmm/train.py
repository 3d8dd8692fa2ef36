"""DP-SGD of the HMM over Poisson-sampled ENTITIES: the ragged encoded events on the
device, the padded batches, the per-entity DP step and the training loop.

One entity's whole (truncated) sequence is one sample; its loss is the negative
log-likelihood from the forward algorithm (HMMNet). Exact per-sample gradients come from
Opacus' functorch path (`ft_compute_per_sample_gradient`, vmap of grad over the batch) on a
module holding raw nn.Parameters; Opacus' DPOptimizer clips each entity's gradient to
`max_grad_norm`, adds N(0, σ²C²) and divides by the expected batch size. σ is calibrated
against the WHOLE ledger (everything spent before) before training, and each epoch is
charged as a sampled-Gaussian event; the accountant composes all of it."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
# Opacus is imported where a step needs it (`_dp_optimizer`, `per_sample_grads`): sampling a
# saved bundle imports this module through synthkit.models and needs none of it (session 10)

from synthkit.ledger import PrivacyLedger, SampledGaussianEvent, calibrate_noise_multiplier
from synthkit.models.base import Progress, Synthesizer
from synthkit.models.dpsgd import PoissonSampler
from synthkit.models.hmm.network import HMMNet

logger = logging.getLogger(__package__)  # the package's one logger: log lines keep their name


class _Batches:
    """Ragged encoded events on the device and a vectorised gather of padded batches."""

    def __init__(self, steps: np.ndarray, context: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                 width: int, device: torch.device) -> None:
        if len(steps) == 0:
            steps = np.zeros((1, steps.shape[1]), dtype=np.float32)
        self.steps = torch.from_numpy(np.ascontiguousarray(steps, dtype=np.float32)).to(device)
        self.context = torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32)).to(device)
        self.offsets = torch.from_numpy(offsets.astype(np.int64)).to(device)
        self.lengths = torch.from_numpy(lengths.astype(np.int64)).to(device)
        self.width = width
        self.device = device

    def padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every entity as one slot, for the distributed loop (`synthkit.distributed`): x
        [n_entities, 1 + T, W] as `gather` builds it over all entities (T: the longest,
        truncated sequence) and the slot mask [n_entities, 1 + T] (1 for the context row and
        each real event). One entity is one slot, so routing slots to ranks keeps an entity
        whole on one rank; `trim` cuts a batch back to the shape `gather` gives it."""
        idx = torch.arange(len(self.lengths), device=self.device)
        x = self.gather(idx)
        present = x[:, 1:, self.steps.shape[1]]  # the "event present" channel
        return x, torch.cat([torch.ones(len(x), 1, device=self.device), present], dim=1)

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        lens = self.lengths[idx]
        n_steps = int(lens.max()) if len(idx) else 0
        f = self.steps.shape[1]
        x = torch.zeros(len(idx), 1 + n_steps, self.width, device=self.device)
        x[:, 0, : self.context.shape[1]] = self.context[idx]
        if n_steps:
            ar = torch.arange(n_steps, device=self.device)
            mask = ar.unsqueeze(0) < lens.unsqueeze(1)
            rows = torch.where(mask, self.offsets[idx].unsqueeze(1) + ar, torch.zeros_like(ar))
            x[:, 1:, :f] = self.steps[rows] * mask.unsqueeze(-1)
            x[:, 1:, f] = mask.to(x.dtype)
        return x


def trim(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Padded slots (`_Batches.padded`) of one batch cut to the batch's longest sequence:
    exactly what `_Batches.gather` gives for the same entities."""
    n_steps = int(mask[:, 1:].sum(dim=1).max()) if len(x) else 0
    return x[:, : 1 + n_steps]


class HMMDPStep:
    """One (DP-)SGD step on the HMM. Private: Opacus' functorch per-sample gradients of the
    per-entity NLL (vmap of grad — exact, no hooks), then Opacus' DPOptimizer (per-entity
    clipping to C, N(0, σ²C²) noise, division by the expected batch size). An empty Poisson
    batch still takes a noise-only step, as the accountant assumes. Non-private: the same
    sampling and normalisation, plain gradients (so noise 0 + no clipping = plain SGD)."""

    def __init__(self, net: HMMNet, optimizer: torch.optim.Optimizer, *, private: bool, noise_multiplier: float,
                 max_grad_norm: float, expected_batch_size: float, generator: torch.Generator | None) -> None:
        self.net = net
        self.private = private
        self.expected_batch_size = max(1, int(round(expected_batch_size)))
        self.params = [p for p in net.parameters() if p.requires_grad]
        if private:
            self.optimizer: torch.optim.Optimizer = self._dp_optimizer(
                optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm, generator=generator)
        else:
            self.optimizer = optimizer

    def _dp_optimizer(self, optimizer: torch.optim.Optimizer, *, noise_multiplier: float, max_grad_norm: float,
                      generator: torch.Generator | None) -> torch.optim.Optimizer:
        """Clip each entity to C, add N(0, σ²C²), ÷ the expected batch size (the distributed
        step overrides this: noise on one rank, all-reduce; synthkit.distributed.dpsgd)."""
        from opacus.optimizers import DPOptimizer
        return DPOptimizer(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                           expected_batch_size=self.expected_batch_size, loss_reduction="mean", generator=generator)

    def per_sample_grads(self, x: torch.Tensor) -> dict[torch.Tensor, torch.Tensor]:
        if len(x) == 0:
            return {p: torch.zeros(0, *p.shape, device=p.device) for p in self.params}
        from opacus.grad_sample.functorch import ft_compute_per_sample_gradient
        return ft_compute_per_sample_gradient(self.net, [x], torch.ones(len(x), device=x.device))

    def step(self, x: torch.Tensor) -> None:
        if self.private:
            grads = self.per_sample_grads(x)
            for p in self.params:
                p.grad_sample = grads[p].detach()
        elif len(x):
            (self.net(x).sum() / self.expected_batch_size).backward()
            for p in self.params:  # a parameter this batch never reaches (every entity one event: no
                if p.grad is None:  # transitions) steps on zeros, as on a Ray rank that must all-reduce it
                    p.grad = torch.zeros_like(p)
        else:
            for p in self.params:
                p.grad = torch.zeros_like(p)
        self._apply()

    def _apply(self) -> None:
        """The optimizer step on the gradients just set (the distributed step all-reduces the
        non-private ones first)."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def close(self) -> None:
        """Drop Opacus' cached functional copy and per-sample attributes from the module."""
        if hasattr(self.net, "ft_compute_sample_grad"):
            del self.net.ft_compute_sample_grad
        for p in self.params:
            for attr in ("grad_sample", "summed_grad", "_processed"):
                if hasattr(p, attr):
                    try:
                        delattr(p, attr)
                    except AttributeError:
                        pass


def noise_multiplier_for(ledger: PrivacyLedger, *, noise_multiplier: float | None, q: float, total_steps: int,
                         epochs: int, max_grad_norm: float) -> float:
    """σ of the HMM's DP-SGD: the given one, checked against what the ledger has left, or
    calibrated against the WHOLE ledger (everything spent before), before training."""
    if noise_multiplier is not None:
        sigma = float(noise_multiplier)
        ledger.check([SampledGaussianEvent(name="dp-sgd:hmm", sampling_rate=q, noise_multiplier=sigma,
                                           steps=total_steps)], what=f"training for {epochs} epochs")
    else:
        sigma = calibrate_noise_multiplier(ledger, name="dp-sgd:hmm", sampling_rate=q, steps=total_steps)
    logger.info("HMM DP-SGD planned: q=%.4f, %d steps, noise multiplier %.3f, clip %.3g",
                q, total_steps, sigma, max_grad_norm)
    return sigma


def train(net: HMMNet, batches: _Batches, *, lr: float, epochs: int, max_grad_norm: float, private: bool,
          sigma: float, q: float, n_dp: float, spe: int, charge_epoch: Callable[[], None],
          gens: dict[str, torch.Generator], progress: Progress | None) -> None:
    """`epochs` × `spe` Adam steps on Poisson batches; each epoch is charged before its steps."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    step = HMMDPStep(net, opt, private=private, noise_multiplier=sigma, max_grad_norm=max_grad_norm,
                     expected_batch_size=q * n_dp, generator=gens["noise"])
    sampler = PoissonSampler(len(batches.lengths), q, gens["batching"])
    total = epochs * spe
    for epoch in range(epochs):
        charge_epoch()
        for b in range(spe):
            step.step(batches.gather(sampler.draw()))
            if progress:
                progress("train", epoch * spe + b + 1, total)
    step.close()


def train_on_ray(model: Synthesizer, net: HMMNet, batches: _Batches, *, lr: float, max_grad_norm: float,
                 private: bool, sigma: float, q: float, n_dp: float, steps: int,
                 charge_epoch: Callable[[], None]) -> None:
    """`train`'s plan on Ray Train workers (`model._engine`): one entity per slot
    (`_Batches.padded`), slots routed whole to workers, each worker's own Poisson(q) stream
    over its entities, per-entity clipping on its rank, the clipped sums all-reduced, the
    noise added once (rank 0), ÷ the global expected batch q·n_dp (synthkit.distributed:
    `DistributedHMMStep`). q, the steps and σ are this driver's, from its one DP count; every
    epoch is charged before the workers start. The workers start from `net`'s weights and
    `net` ends with theirs."""
    data, mask = batches.padded()
    initial = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    state = model._train_on_ray(
        data, mask, private=private, charge_epoch=charge_epoch, sampling_rate=q, steps=steps,
        noise_multiplier=sigma, max_grad_norm=max_grad_norm, expected_batch_size=q * n_dp, model="hmm",
        hmm_states=net.n_states, hmm_cat_sizes=tuple(net.cat_sizes), hmm_gauss=net.n_gauss,
        hmm_context=net.d_context, lr=lr, optimizer="adam", initial_state=initial)
    net.load_state_dict(state)
