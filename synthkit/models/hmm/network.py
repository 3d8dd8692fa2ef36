"""The HMM network: one module of raw parameters whose forward pass is the per-entity
negative log-likelihood (forward algorithm in log space over a padded [batch, T] tensor)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

_LOG_2PI = math.log(2 * math.pi)


class HMMNet(nn.Module):
    """The HMM as ONE module of raw parameters (no submodules, no buffers), so Opacus'
    functorch path computes exact per-sample gradients of the whole forward algorithm.

    Input: one float tensor x [B, 1 + T, W] (functorch hands a layer exactly one input):
    row 0 holds the context encoding c (first d_context entries); rows 1..T hold per event
    [categorical codes (C) | their validity (C) | standardised values (G) | their validity (G) |
    event present (1)]. Output: the per-entity negative log-likelihood [B].

    Emissions are autoregressive given the state (an AR-HMM; the forward algorithm stays
    exact because the previous event is observed): a categorical value repeats the entity's
    previous value with probability σ(λ_{s,c}), else it is drawn from the state's
    categorical; a standardised value has mean μ_{s,g} + φ_{s,g}·z_{t−1}. A plain HMM needs one
    state per combination of persistent attributes (married × employed × ...); this keeps
    within-entity persistence with few states."""

    def __init__(self, *, n_states: int, cat_sizes: list[int], n_gauss: int, d_context: int) -> None:
        super().__init__()
        k = n_states
        self.n_states, self.cat_sizes, self.n_gauss, self.d_context = k, list(cat_sizes), n_gauss, d_context
        self.cat_offsets = [int(v) for v in np.concatenate([[0], np.cumsum(cat_sizes)[:-1]])] if cat_sizes else []
        self.start_bias = nn.Parameter(torch.zeros(k))
        self.start_weight = nn.Parameter(torch.zeros(max(d_context, 1), k))
        self.trans_bias = nn.Parameter(torch.zeros(k, k))
        self.trans_weight = nn.Parameter(torch.zeros(max(d_context, 1), k))
        self.cat_logits = nn.Parameter(torch.zeros(k, max(sum(cat_sizes), 1)))
        self.gauss_mean = nn.Parameter(torch.zeros(k, max(n_gauss, 1)))
        self.gauss_log_std = nn.Parameter(torch.zeros(k, max(n_gauss, 1)))
        self.stay_logit = nn.Parameter(torch.zeros(k, max(len(cat_sizes), 1)))
        self.ar_coef = nn.Parameter(torch.zeros(k, max(n_gauss, 1)))

    @property
    def n_cat(self) -> int:
        return len(self.cat_sizes)

    @property
    def step_width(self) -> int:
        return 2 * self.n_cat + 2 * self.n_gauss + 1

    @property
    def width(self) -> int:
        return max(self.step_width, self.d_context, 1)

    def reset(self, generator: torch.Generator) -> None:
        """Data-independent init: the states' Gaussian means at the K quantiles of N(0, 1)
        — the standardised columns have mean 0 and sd 1 by construction (public) — in an
        independent random order per column; random categorical logits (break the symmetry
        between states); a public sticky prior on transitions (+2 on the diagonal); small
        context weights."""
        k = self.n_states
        with torch.no_grad():
            self.cat_logits.normal_(0.0, 0.5, generator=generator)
            quantiles = torch.special.ndtri((torch.arange(k, dtype=torch.float64) + 0.5) / k).float()
            for j in range(self.gauss_mean.shape[1]):
                order = torch.randperm(k, generator=generator, device=generator.device).cpu()
                self.gauss_mean[:, j] = quantiles[order].to(self.gauss_mean.device)
            self.gauss_mean.add_(0.1 * torch.randn(self.gauss_mean.shape, generator=generator,
                                                   device=generator.device).to(self.gauss_mean.device))
            self.gauss_log_std.zero_()
            self.trans_bias.copy_(2.0 * torch.eye(k, device=self.trans_bias.device))
            self.start_bias.zero_()
            self.start_weight.normal_(0.0, 0.01, generator=generator)
            self.trans_weight.normal_(0.0, 0.01, generator=generator)
            self.stay_logit.zero_()
            self.ar_coef.zero_()

    def log_start_trans(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = c[..., : self.d_context] if self.d_context else torch.zeros(*c.shape[:-1], 1, device=c.device)
        log_start = torch.log_softmax(self.start_bias + c @ self.start_weight, dim=-1)
        # context shifts the logit of each DESTINATION state (the same shift from every source):
        # d_context × K parameters instead of d_context × K², so less DP noise to carry
        log_trans = torch.log_softmax(self.trans_bias + (c @ self.trans_weight).unsqueeze(-2), dim=-1)
        return log_start, log_trans

    def cat_log_table(self) -> torch.Tensor:
        """[K, Σ n_c]: per-channel log-softmax, concatenated."""
        return torch.cat([torch.log_softmax(self.cat_logits[:, o:o + n], dim=-1)
                          for o, n in zip(self.cat_offsets, self.cat_sizes)], dim=-1)

    def gauss_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        # σ ≥ e^−2.5 ≈ 0.08 in a space whose marginal is N(0, 1): no collapse onto a point
        return self.gauss_mean[:, : self.n_gauss], self.gauss_log_std[:, : self.n_gauss].clamp(-2.5, 2.0)

    def emission_logp(self, steps: torch.Tensor) -> torch.Tensor:
        """[B, T, step_width] → [B, T, K] log-probability of each event under each state,
        given the entity's previous event (AR emissions, see the class docstring)."""
        c, g = self.n_cat, self.n_gauss
        out = torch.zeros(*steps.shape[:-1], self.n_states, device=steps.device, dtype=steps.dtype)
        prev = torch.cat([torch.zeros_like(steps[:, :1]), steps[:, :-1]], dim=1)
        if c:
            raw = steps[..., :c].long()
            codes = raw + torch.tensor(self.cat_offsets, device=steps.device)
            valid = steps[..., c:2 * c]
            lp = nn.functional.embedding(codes, self.cat_log_table().t())  # [B, T, C, K]
            has_prev = (prev[..., c:2 * c] > 0).unsqueeze(-1)
            same = (raw == prev[..., :c].long()).unsqueeze(-1)
            stay = self.stay_logit[:, :c].t()  # [C, K]
            log_stay, log_draw = nn.functional.logsigmoid(stay), nn.functional.logsigmoid(-stay)
            mixed = torch.where(same, torch.logaddexp(log_stay, log_draw + lp), log_draw + lp)
            lp = torch.where(has_prev, mixed, lp)
            out = out + (lp * valid.unsqueeze(-1)).sum(dim=-2)
        if g:
            z, valid = steps[..., 2 * c:2 * c + g], steps[..., 2 * c + g:2 * c + 2 * g]
            z_prev = (prev[..., 2 * c:2 * c + g] * prev[..., 2 * c + g:2 * c + 2 * g]).unsqueeze(-2)
            mean, log_std = self.gauss_params()
            mu = mean + self.ar_coef[:, :g] * z_prev  # [B, T, K, G]
            lp = (-0.5 * ((z.unsqueeze(-2) - mu) / log_std.exp()) ** 2 - log_std - 0.5 * _LOG_2PI)
            out = out + (lp * valid.unsqueeze(-2)).sum(dim=-1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_start, log_trans = self.log_start_trans(x[:, 0])
        steps = x[:, 1:, : self.step_width]
        n_steps = steps.shape[1]
        if n_steps == 0:
            return -torch.logsumexp(log_start, dim=-1)
        emit = self.emission_logp(steps)
        present = steps[..., -1]
        alpha = log_start + emit[:, 0] * present[:, :1]
        for t in range(1, n_steps):
            nxt = torch.logsumexp(alpha.unsqueeze(-1) + log_trans, dim=1) + emit[:, t]
            alpha = torch.where(present[:, t:t + 1] > 0, nxt, alpha)
        return -torch.logsumexp(alpha, dim=-1)
