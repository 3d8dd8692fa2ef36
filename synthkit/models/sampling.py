"""From raw network outputs to encoded values, fast: the sampling half of the span layout.

A table model's network outputs one raw vector per row in the transformer's span layout
(tanh spans for α, softmax spans for modes, labels, nulls). Sampling turns it into α
values and one label index per softmax span. Done span by span over a 100,000-row chunk
this was most of the generation time (one kernel per span and op, one Gumbel variate per
logit, memory traffic over the whole chunk), so here:

- the final layer writes its output transposed ([width, rows]), so each span is a set of
  contiguous rows; spans of equal width are gathered into one [spans, width, rows] tensor
  and drawn together with one uniform per row and span (inverse-CDF sampling: the same
  distribution as Gumbel-max with a tenth of the random numbers);
- networks run on blocks of BLOCK_ROWS rows that stay in cache (measured on the 2-core
  CI machine: a 100,000-row matmul ran at 42-74 GFLOPS, the same work in 8,192-row
  blocks at 93-137);
- the label offsets that calibrate each span's mean softmax to its DP frequencies
  (`fit_offsets`) are fitted on the first CALIBRATION_ROWS rows of a chunk, starting from
  the previous chunk's offsets, so later chunks converge in a step or two.

Everything here is post-processing of DP outputs (network weights, DP frequencies).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from synthkit.transforms import Span

BLOCK_ROWS = 4096
CALIBRATION_ROWS = 16_384


@dataclass(frozen=True, slots=True)
class _Group:
    """Softmax spans of one width: where their logits are and where their codes go."""

    width: int
    raw_index: torch.Tensor  # [n_spans * width] columns of the raw output
    slots: torch.Tensor      # [n_spans] positions in the codes matrix
    log_target: torch.Tensor | None  # [n_spans, width] log DP frequencies
    calibrated: torch.Tensor | None  # [n_spans] bool: the span has a usable target


@dataclass(frozen=True, slots=True)
class Encoded:
    """A sampled chunk in code form: α per tanh span, label index per softmax span."""

    alpha: np.ndarray  # [n_tanh, n] float32 (one row per span: contiguous per column)
    codes: np.ndarray  # [n_softmax, n] int64
    raw: torch.Tensor | None = None  # [width, n] raw outputs, when asked for (conditional sampling)


class SpanSampler:
    """Samples encoded rows from raw outputs laid out by `spans`; `targets` (aligned with
    `spans`, None for tanh spans or when not calibrating) are DP label frequencies."""

    def __init__(self, spans: list[Span], targets: list[np.ndarray | None] | None,
                 device: torch.device) -> None:
        tanh, by_width = [], {}
        start, slot = 0, 0
        for i, span in enumerate(spans):
            if span.activation == "tanh":
                tanh.extend(range(start, start + span.width))
            else:
                target = None if targets is None else targets[i]
                by_width.setdefault(span.width, []).append((start, slot, target))
                slot += 1
            start += span.width
        self.n_softmax = slot
        self.tanh_index = torch.tensor(tanh, dtype=torch.long, device=device)
        self.groups: list[_Group] = []
        for width, members in by_width.items():
            index = torch.tensor([s + j for s, _, _ in members for j in range(width)], dtype=torch.long, device=device)
            slots = torch.tensor([sl for _, sl, _ in members], dtype=torch.long, device=device)
            log_target, calibrated = None, None
            if targets is not None:
                log_t = np.zeros((len(members), width))
                ok = np.zeros(len(members), dtype=bool)
                for m, (_, _, target) in enumerate(members):
                    t = None if target is None else np.clip(np.asarray(target, dtype=np.float64), 0, None)
                    if t is not None and len(t) == width and np.isfinite(t).all() and t.sum() > 0:
                        log_t[m] = np.log(np.clip(t / t.sum(), 1e-9, None))
                        ok[m] = True
                if ok.any():
                    log_target = torch.tensor(log_t, dtype=torch.float32, device=device)
                    calibrated = torch.tensor(ok, device=device)
            self.groups.append(_Group(width, index, slots, log_target, calibrated))

    @property
    def calibrates(self) -> bool:
        return any(g.log_target is not None for g in self.groups)

    def _logits(self, raw_t: torch.Tensor, group: _Group) -> torch.Tensor:
        return raw_t.index_select(0, group.raw_index).view(-1, group.width, raw_t.shape[1])

    def fit_offsets(self, raw_t: torch.Tensor, start: list[torch.Tensor] | None = None, *,
                    iterations: int = 25, tolerance: float = 1e-4) -> list[torch.Tensor]:
        """One offset per label, b, such that the mean over `raw_t`'s rows (its columns:
        the layout is [width, rows]) of softmax(l + b) equals the DP frequency t
        (iterative proportional fitting on each label margin).

        Why: a DP generator trained on few noisy steps gets marginals wrong first; the DP
        marginals were released anyway during preprocessing. The offset keeps each row's
        relative preferences — the dependence the model learned — and fixes the margin,
        the minimum-KL adjustment (raking) of the model's conditional probabilities.
        Fitted on a random subset of a chunk (its first rows: rows are independent draws;
        the mean softmax over 16,384 rows has a standard error below 0.4 points)."""
        out = []
        for k, group in enumerate(self.groups):
            b = (start[k].clone() if start is not None else
                 torch.zeros(len(group.slots), group.width, 1, device=raw_t.device))
            if group.log_target is not None and raw_t.shape[1] > 1:
                logits = self._logits(raw_t, group)
                for _ in range(iterations):
                    mean_p = torch.softmax(logits + b, dim=1).mean(dim=2)
                    step = (group.log_target - torch.log(mean_p.clamp_min(1e-12))) * group.calibrated[:, None]
                    b += step[:, :, None]
                    if float(step.abs().max()) < tolerance:
                        break
            out.append(b)
        return out

    def sample(self, raw_t: torch.Tensor, offsets: list[torch.Tensor] | None,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(α [n_tanh, n], codes [n_softmax, n]) for a block of raw outputs [width, n].

        A label is drawn by inverse CDF: the number of labels whose cumulative
        (unnormalised) probability stays below u · total, u uniform; for two labels that
        is u < sigmoid(l₁ − l₀). The running sum over the (few) labels is a loop of whole
        [spans, rows] vectors, which is several times faster here than a cumsum along a
        short axis."""
        n = raw_t.shape[1]
        alpha = torch.tanh(raw_t.index_select(0, self.tanh_index))
        codes = torch.zeros(self.n_softmax, n, dtype=torch.long, device=raw_t.device)
        for k, group in enumerate(self.groups):
            if group.width == 1:
                continue  # a one-label span: code 0
            logits = self._logits(raw_t, group)
            if offsets is not None:
                logits = logits + offsets[k]
            u = torch.rand(len(group.slots), n, generator=generator, device=raw_t.device)
            if group.width == 2:
                codes[group.slots] = (u < torch.sigmoid(logits[:, 1] - logits[:, 0])).long()
                continue
            e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
            threshold = u * e.sum(dim=1)
            running = e[:, 0].clone()
            code = (running < threshold).long()
            for j in range(1, group.width - 1):
                running += e[:, j]
                code += running < threshold
            codes[group.slots] = code
        return alpha, codes

    def sample_rows(self, n: int, raw_block: Callable[[int], torch.Tensor], generator: torch.Generator,
                    offsets: list[torch.Tensor] | None, *, keep_raw: bool = False
                    ) -> tuple[Encoded, list[torch.Tensor] | None]:
        """`n` encoded rows, the network run by `raw_block(rows)` on blocks of BLOCK_ROWS
        (it returns raw outputs transposed, [width, rows]: the final layer computes that
        layout at no cost, and every span is then a set of contiguous rows); with DP
        targets, offsets are refitted on the first CALIBRATION_ROWS rows, starting from
        `offsets` (the previous chunk's). Returns the rows and the offsets used."""
        def blocks() -> Iterator[torch.Tensor]:
            for begin in range(0, n, BLOCK_ROWS):
                yield raw_block(min(BLOCK_ROWS, n - begin))

        stream = blocks()
        head: list[torch.Tensor] = []
        if self.calibrates:
            while sum(r.shape[1] for r in head) < CALIBRATION_ROWS and (r := next(stream, None)) is not None:
                head.append(r)
            if head:
                offsets = self.fit_offsets(torch.cat(head, dim=1)[:, :CALIBRATION_ROWS], offsets)
        else:
            offsets = None
        alphas, codes, raws = [], [], []
        for raw_t in itertools.chain(head, stream):
            a, c = self.sample(raw_t, offsets, generator)
            alphas.append(a)
            codes.append(c)
            if keep_raw:
                raws.append(raw_t)
        if not alphas:
            return Encoded(np.zeros((len(self.tanh_index), 0), np.float32), np.zeros((self.n_softmax, 0), np.int64)), offsets
        return Encoded(torch.cat(alphas, dim=1).cpu().numpy(), torch.cat(codes, dim=1).cpu().numpy(),
                       torch.cat(raws, dim=1) if keep_raw else None), offsets


def linear_transposed(layer: torch.nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """`layer(h)` transposed ([out, rows]), computed as W·hᵀ + b in one GEMM."""
    return torch.addmm(layer.bias[:, None], layer.weight, h.t())
