"""The fast sampling path (synthkit.models.sampling and the models' `_raw_pass`): labels drawn
from the right softmax, margins calibrated to the DP targets, and the rearranged network
passes equal to the modules they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest_data import credit
from synthkit import DPCTGAN, DPTVAE
from synthkit.models.base import torch_generator
from synthkit.models.sampling import BLOCK_ROWS, CALIBRATION_ROWS, SpanSampler
from synthkit.transforms import Span

N = 200_000
WIDTHS = (1, 2, 3, 10)
# a frequency over N draws has sd <= sqrt(p(1-p)/N); 4.5 sd over the ~16 labels checked per
# test keeps a false alarm below 1e-4 while catching an off-by-one label or a wrong temperature
Z = 4.5


def _layout() -> list[Span]:
    spans = [Span(1, "tanh")]
    for w in WIDTHS:
        spans += [Span(w, "softmax"), Span(1, "tanh")]
    return spans


def _logits(n: int, seed: int) -> torch.Tensor:
    """[width, n] raw outputs: every row with its own logits (heterogeneous rows), and a
    trend over each span's labels so that no two labels have the same mean probability."""
    g = torch.Generator().manual_seed(seed)
    width = sum(s.width for s in _layout())
    return 2.0 * torch.randn(width, n, generator=g) + 0.3 * torch.arange(width, dtype=torch.float32)[:, None] % 1.7


def _softmax_means(raw_t: torch.Tensor, offsets: dict[int, np.ndarray] | None = None) -> list[np.ndarray]:
    """Per softmax span: the mean over rows of softmax(logits + offset) (the reference)."""
    out, start = [], 0
    for span in _layout():
        if span.activation == "softmax":
            logits = raw_t[start:start + span.width].double()
            if offsets is not None:
                logits = logits + torch.as_tensor(offsets[span.width])[:, None]
            out.append(torch.softmax(logits, dim=0).mean(dim=1).numpy())
        start += span.width
    return out


def _frequencies(codes: np.ndarray) -> list[np.ndarray]:
    return [np.bincount(codes[i], minlength=w) / codes.shape[1] for i, w in enumerate(WIDTHS)]


def test_labels_are_drawn_from_each_rows_softmax() -> None:
    raw_t = _logits(N, seed=0)
    sampler = SpanSampler(_layout(), None, torch.device("cpu"))
    alpha, codes = sampler.sample(raw_t, None, torch.Generator().manual_seed(1))
    codes = codes.numpy()
    assert codes.shape == (len(WIDTHS), N)
    for w, expected, got in zip(WIDTHS, _softmax_means(raw_t), _frequencies(codes)):
        assert codes[WIDTHS.index(w)].max() < w
        np.testing.assert_allclose(got, expected, atol=Z * np.sqrt(0.25 / N))
    # α: tanh of exactly the tanh rows, in span order
    tanh_rows = [0, 2, 5, 9, 20]
    torch.testing.assert_close(alpha, torch.tanh(raw_t[tanh_rows]))


def test_labels_follow_the_row_not_only_the_margin() -> None:
    """Rows are sampled from their own logits: a row whose logits make label 2 certain
    gets label 2, whatever the other rows do."""
    raw_t = torch.zeros(sum(s.width for s in _layout()), 4)
    raw_t[6 + 2, :2] = 50.0  # the width-3 span starts at row 6; rows 0 and 1 put everything on label 2
    raw_t[6 + 0, 2:] = 50.0  # rows 2 and 3 on label 0
    _, codes = SpanSampler(_layout(), None, torch.device("cpu")).sample(raw_t, None, torch.Generator().manual_seed(0))
    assert codes[WIDTHS.index(3)].tolist() == [2, 2, 0, 0]


def _targets(seed: int) -> list[np.ndarray | None]:
    rng = np.random.default_rng(seed)
    out: list[np.ndarray | None] = []
    for span in _layout():
        out.append(None if span.activation == "tanh" else rng.dirichlet(np.ones(span.width)) * 1_000)
    return out


def test_calibrated_margins_match_the_dp_targets() -> None:
    targets = _targets(seed=3)
    expected = [t / t.sum() for t in targets if t is not None]
    sampler = SpanSampler(_layout(), targets, torch.device("cpu"))
    g = torch.Generator().manual_seed(2)
    encoded, offsets = sampler.sample_rows(N, lambda rows: _logits(rows, seed=int(torch.randint(0, 10**6, (1,), generator=g))),
                                           g, None)
    assert encoded.codes.shape == (len(WIDTHS), N) and encoded.alpha.shape == (5, N)
    # the fitted offsets hit the targets on the rows they were fitted on ...
    head = _logits(CALIBRATION_ROWS, seed=99)
    fitted = sampler.fit_offsets(head, None)
    by_width = {g_.width: b[0, :, 0].numpy().astype(np.float64) for g_, b in zip(sampler.groups, fitted)}
    for got, want in zip(_softmax_means(head, by_width), expected):
        np.testing.assert_allclose(got, want, atol=1e-3)
    # ... and the sampled chunk shows them, within sampling error plus the fitting subset's
    for w, got, want in zip(WIDTHS, _frequencies(encoded.codes), expected):
        sd = np.sqrt(want * (1 - want))
        tolerance = Z * sd * (1 / np.sqrt(N) + 1 / np.sqrt(CALIBRATION_ROWS)) + 1e-9
        assert np.all(np.abs(got - want) <= tolerance), f"width {w}: {np.abs(got - want).max():.4f}"

    # a warm start from these offsets converges to the same ones
    again = sampler.fit_offsets(head, fitted)
    for a, b in zip(again, fitted):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=0)
    assert offsets is not None and len(offsets) == len(sampler.groups)


def test_block_sampling_is_reproducible_for_a_seed() -> None:
    sampler = SpanSampler(_layout(), _targets(seed=4), torch.device("cpu"))

    def run() -> np.ndarray:
        g = torch.Generator().manual_seed(7)
        return sampler.sample_rows(BLOCK_ROWS * 2 + 17, lambda rows: torch.randn(21, rows, generator=g), g, None)[0].codes

    np.testing.assert_array_equal(run(), run())
    assert run().shape == (len(WIDTHS), BLOCK_ROWS * 2 + 17)


@pytest.mark.parametrize("cls", [DPCTGAN, DPTVAE], ids=lambda c: c.__name__)
def test_fast_network_pass_equals_the_modules(cls) -> None:
    """`_raw_pass` (BatchNorm folded, residual concatenations as sums of GEMMs, transposed
    final layer) computes what the trained modules compute."""
    data = credit(1_000)
    model = cls(epochs=2, batch_size=200, seed=0, device="cpu").fit(data, budget=None)
    seq = np.random.SeedSequence(5)
    got = model._raw_pass(torch_generator(seq, torch.device("cpu")))(3_000)
    g = torch_generator(seq, torch.device("cpu"))
    with torch.no_grad():
        if cls is DPCTGAN:
            model.generator_.eval()
            bn = model.generator_.seq[0].bn
            assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))  # BN has learned stats
            cond, _, _ = model.cond_.for_fake(3_000, g)
            z = torch.randn(3_000, model.embedding_dim, generator=g)
            want = model.generator_(torch.cat([z, cond], dim=1))
        else:
            z = torch.randn(3_000, model.embedding_dim, generator=g)
            want = model.vae_.decoder(z)
    assert got.shape == (model.transformer_.width, 3_000)
    torch.testing.assert_close(got.detach(), want.t(), atol=1e-4, rtol=1e-4)
