"""DPHMM's distributed DP-SGD (issue 19): 2 gloo ranks against the single-process reference.

Each rank holds whole entities (one padded sequence per slot, `_Batches.padded`), draws
its own Poisson(q) batch of them, clips each entity's functorch gradient on its rank;
the clipped sums are all-reduced, the noise is added once (rank 0) and the divisor is the
GLOBAL expected batch. The reference is the library's single-process `HMMDPStep` fed the
union of the ranks' batches (replayed from the same per-rank streams) through
`_Batches.gather`, with rank 0's noise stream. All spawned runs share ONE launch (module
fixture); a rank that misses a collective makes gloo raise after the config's timeout,
which fails the launch instead of hanging.

Negative controls, each run once with a planted bug (in a scratch copy of the code):
- the worker dividing by its LOCAL expected batch (B/W) instead of the global one: the
  SGD comparisons fail (0.17 against ATOL 2e-5) and the variance ratio is 2.97 (bracket
  1 ± 0.10); the Adam comparisons alone do not see it (Adam divides by the gradient's own
  scale), hence the SGD configs;
- every rank adding the noise (not rank 0 only): the variance ratio is 1.96 and the
  fixed-noise comparisons fail (0.37 Adam, 0.39 SGD);
- a rank skipping the step when its batch is empty (`continue`): the launch fails when
  gloo's timeout (the config's 180 s) finds no partner, so the empty-batch test errors;
- routing the padded EVENTS rather than the entities to ranks: the straddle check below
  reports entities on two ranks (it runs as an in-test control every time).
The empty-batch test also found a real bug on its first run: the clipped sum of a
transposed parameter view's per-sample gradients (`stay_logit[:, :c].t()`) is
non-contiguous on a rank that adds no noise and contiguous on rank 0, and gloo reduced the
storages in memory order, so the ranks ended 8e-3 apart (`dpsgd._all_reduce_grads`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from synthkit.distributed import Shard, WorkerConfig, driver_seed_sequence, rank_sampler, rank_streams
from synthkit.distributed.launch import launch_local
from synthkit.models.base import torch_generator
from synthkit.models.hmm.network import HMMNet
from synthkit.models.hmm.train import HMMDPStep, _Batches, trim

WORLD = 2
CAT_SIZES, N_GAUSS, D_CONTEXT = (3, 2), 2, 2
ATOL = 2e-5  # float32 sums in another order (two partial sums + all-reduce), as tests/test_distributed_dpsgd.py


def _batches(n_entities: int, *, seed: int, max_len: int = 6, cat_sizes=CAT_SIZES, n_gauss=N_GAUSS,
             d_context=D_CONTEXT) -> _Batches:
    """Made-up ragged sequences in the HMM's encoded layout: per event the categorical codes,
    their validity, the standardised values (scale 2: gradients exceed C, clipping binds),
    their validity; lengths 1..max_len; one context vector per entity."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, n_entities)
    n = int(lengths.sum())
    codes = np.stack([rng.integers(0, c, n) for c in cat_sizes], axis=1) if cat_sizes else np.zeros((n, 0))
    valid_c = (rng.random((n, len(cat_sizes))) < 0.9).astype(float)
    z = 2.0 * rng.normal(size=(n, n_gauss))
    valid_g = (rng.random((n, n_gauss)) < 0.8).astype(float)
    steps = np.concatenate([codes, valid_c, z, valid_g], axis=1).astype(np.float32)
    context = rng.normal(size=(n_entities, d_context)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    width = max(2 * len(cat_sizes) + 2 * n_gauss + 1, d_context, 1)
    return _Batches(steps, context, offsets, lengths, width, torch.device("cpu"))


def _net(states: int, *, cat_sizes=CAT_SIZES, n_gauss=N_GAUSS, d_context=D_CONTEXT) -> HMMNet:
    net = HMMNet(n_states=states, cat_sizes=list(cat_sizes), n_gauss=n_gauss, d_context=d_context)
    net.reset(torch.Generator().manual_seed(11))
    return net


def _config(sizes: tuple[int, int], *, sigma: float, seed: np.random.SeedSequence, q: float = 0.3, steps: int = 6,
            states: int = 3, optimizer: str = "adam", lr: float = 0.05, clip: float = 1.0, data_seed: int = 0,
            layout: dict | None = None, max_len: int = 6) -> WorkerConfig:
    layout = layout or {}
    batches = _batches(sum(sizes), seed=data_seed, max_len=max_len, **layout)
    data, mask = batches.padded()
    cuts = np.cumsum([0, *sizes])
    shards = tuple(Shard(data=data[a:b], mask=mask[a:b]) for a, b in zip(cuts[:-1], cuts[1:]))
    net = _net(states, **layout)
    return WorkerConfig(shards=shards, sampling_rate=q, steps=steps, noise_multiplier=sigma, max_grad_norm=clip,
                        expected_batch_size=q * sum(sizes), dp_seed=seed, model="hmm", hmm_states=states,
                        hmm_cat_sizes=tuple(net.cat_sizes), hmm_gauss=net.n_gauss, hmm_context=net.d_context,
                        lr=lr, optimizer=optimizer,  # type: ignore[arg-type]
                        initial_state={k: v.clone() for k, v in net.state_dict().items()},
                        collective_timeout_s=180.0)


def _replayed_batches(config: WorkerConfig) -> list[list[torch.Tensor]]:
    """Per step, per rank: the local entity indices the rank's stream draws."""
    samplers = [rank_sampler(config.dp_seed, rank=r, world_size=WORLD, n_local_units=s.data.shape[0],
                             sampling_rate=config.sampling_rate) for r, s in enumerate(config.shards)]
    return [[s.draw() for s in samplers] for _ in range(config.steps)]


def _reference(config: WorkerConfig, batches: _Batches) -> dict[str, torch.Tensor]:
    """`synthkit.models.hmm.train.train`'s step in one process over the union batches, each
    batch built by `_Batches.gather` (the single-process path), rank 0's noise stream."""
    net = HMMNet(n_states=config.hmm_states, cat_sizes=list(config.hmm_cat_sizes), n_gauss=config.hmm_gauss,
                 d_context=config.hmm_context)
    net.load_state_dict(config.initial_state)
    opt = (torch.optim.Adam(net.parameters(), lr=config.lr) if config.optimizer == "adam"
           else torch.optim.SGD(net.parameters(), lr=config.lr))
    noise = torch_generator(rank_streams(config.dp_seed, rank=0, world_size=WORLD)["noise"], torch.device("cpu"))
    step = HMMDPStep(net, opt, private=config.private, noise_multiplier=config.noise_multiplier,
                     max_grad_norm=config.max_grad_norm, expected_batch_size=config.expected_batch_size,
                     generator=noise)
    offsets = np.cumsum([0] + [s.data.shape[0] for s in config.shards])
    for per_rank in _replayed_batches(config):
        step.step(batches.gather(torch.cat([b + int(o) for b, o in zip(per_rank, offsets)])))
    step.close()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


SIGMA_BIG = 1000.0
VAR_STEPS, VAR_LR = 4, 1e-4
# a wide network (4,400 parameters) for the variance bracket; SGD, so the update is linear in the noise
VAR_LAYOUT = {"cat_sizes": (30,), "n_gauss": 10, "d_context": 10}
VAR_STATES = 40


@pytest.fixture(scope="module")
def runs():
    seed = driver_seed_sequence()  # fixed by the test session's noise source (conftest)
    configs = {
        "sigma0": _config((12, 12), sigma=0.0, seed=seed),
        "sigma1": _config((12, 12), sigma=1.0, seed=seed),
        # SGD too: Adam divides by the gradient's own scale, so it cannot see a wrong divisor B
        "sigma0_sgd": _config((12, 12), sigma=0.0, seed=seed, optimizer="sgd", lr=0.5),
        "sigma1_sgd": _config((12, 12), sigma=1.0, seed=seed, optimizer="sgd", lr=0.5),
        "variance": _config((12, 12), sigma=SIGMA_BIG, seed=seed, steps=VAR_STEPS, states=VAR_STATES,
                            optimizer="sgd", lr=VAR_LR, layout=VAR_LAYOUT, data_seed=5),
        "empty_rank1": _config((10, 3), sigma=0.5, seed=seed, steps=8, data_seed=1),
        "nonprivate": _config((12, 12), sigma=0.0, seed=seed, data_seed=3),
        # every entity has one event: no transition parameter gets a gradient
        "nonprivate_one_event": _config((8, 8), sigma=0.0, seed=seed, data_seed=4, max_len=1),
    }
    for name in ("nonprivate", "nonprivate_one_event"):
        configs[name] = replace(configs[name], private=False)
    states = launch_local(list(configs.values()), world_size=WORLD)
    return {name: (config, per_rank) for (name, config), per_rank in zip(configs.items(), states)}


def _data_of(config: WorkerConfig, *, data_seed: int, layout: dict | None = None) -> _Batches:
    return _batches(sum(s.data.shape[0] for s in config.shards), seed=data_seed, **(layout or {}))


def test_ranks_end_with_identical_weights(runs):
    for name, (_, (s0, s1)) in runs.items():
        assert _max_diff(s0, s1) == 0.0, name


def test_two_ranks_match_one_process_at_sigma_zero_and_with_fixed_noise(runs):
    """(a) σ = 0 and (b) the noise source fixed: 2 ranks give the single-process weights.
    Controls: the noise moves the weights, and training moved them from the start."""
    for opt in ("", "_sgd"):  # DPHMM's Adam, and SGD (which sees the divisor)
        (config0, (dist0, _)), (config1, (dist1, _)) = runs["sigma0" + opt], runs["sigma1" + opt]
        batches = _data_of(config0, data_seed=0)
        replayed = _replayed_batches(config0)
        assert all(len(step[r]) > 0 for step in replayed[:1] for r in range(WORLD))  # both ranks hold a batch
        ref0, ref1 = _reference(config0, batches), _reference(config1, batches)
        assert _max_diff(dist0, ref0) < ATOL, (opt, _max_diff(dist0, ref0))
        assert _max_diff(dist1, ref1) < ATOL, (opt, _max_diff(dist1, ref1))
        assert _max_diff(ref0, ref1) > 100 * ATOL  # σ = 1 really moves the weights
        assert _max_diff(dist0, config0.initial_state) > 100 * ATOL  # and training moved them
    config, (state, _) = runs["nonprivate"]  # the non-private path: plain gradients summed over ranks
    assert _max_diff(state, _reference(config, _data_of(config, data_seed=3))) < ATOL


def test_nonprivate_one_event_entities_take_zero_gradients_like_one_process(runs):
    """(F1 of review R1) Without a budget, a batch where every entity has ONE event leaves the
    transition parameters without a gradient. The step gives them zeros, so every rank joins the
    all-reduce and the result is the single process's (whose Adam then steps on the same zeros).
    Negative control, run once on the code before the fix (grad None kept; this config alone):
    the launch failed (a rank died on the None gradient in `dpsgd._all_reduce_grads`, its
    partner's gloo all_reduce lost the peer), so the module fixture errored."""
    config, (state, _) = runs["nonprivate_one_event"]
    batches = _data_of(config, data_seed=4, layout={"max_len": 1})
    assert (batches.lengths == 1).all()
    ref = _reference(config, batches)
    assert _max_diff(state, ref) < ATOL, _max_diff(state, ref)
    assert _max_diff(state, config.initial_state) > 100 * ATOL  # the emission/start parameters moved


def test_clipping_binds_in_the_comparison(runs):
    """The comparison would not see a clipping bug if no entity's gradient exceeded C."""
    config, _ = runs["sigma0"]
    batches = _data_of(config, data_seed=0)
    net = HMMNet(n_states=config.hmm_states, cat_sizes=list(config.hmm_cat_sizes), n_gauss=config.hmm_gauss,
                 d_context=config.hmm_context)
    net.load_state_dict(config.initial_state)
    step = HMMDPStep(net, torch.optim.SGD(net.parameters(), lr=0.1), private=True, noise_multiplier=0.0,
                     max_grad_norm=1.0, expected_batch_size=1.0, generator=None)
    grads = step.per_sample_grads(batches.gather(torch.arange(24)))
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], dim=1).norm(dim=1)
    assert (norms > config.max_grad_norm).sum() >= 12


def test_noise_is_added_once_per_step_not_once_per_rank(runs):
    """(c) SGD: Δ = final − initial = −lr Σ_t (S_t + N_t)/B. At σ = 1000 the clipped sums are
    negligible, so each coordinate of Δ has variance T (lr σ C / B)² when the noise is added
    once per step; 2× if each rank adds it; 4× if each rank divides by its own B/W. With P
    coordinates the sample variance (mean 0 known) has relative standard error sqrt(2/P);
    the bracket is ±5 of them."""
    config, (state, _) = runs["variance"]
    delta = torch.cat([(state[k] - config.initial_state[k]).flatten() for k in state]).double()
    p = delta.numel()
    expected = VAR_STEPS * (VAR_LR * SIGMA_BIG * config.max_grad_norm / round(config.expected_batch_size)) ** 2
    ratio = float((delta**2).mean()) / expected
    margin = 5 * np.sqrt(2 / p)
    assert p > 4000 and margin < 0.12
    assert 1 - margin < ratio < 1 + margin, ratio


def test_an_empty_local_batch_takes_the_step_and_matches_one_process(runs):
    """(d) Rank 1 holds 3 entities at q = 0.3: its batch is empty on some steps and not on
    later ones. It still joins every all-reduce (no hang) and the result is the single
    process's."""
    config, (state, _) = runs["empty_rank1"]
    sizes = [len(step[1]) for step in _replayed_batches(config)]
    assert 0 in sizes and any(sizes[sizes.index(0) + 1:])
    ref = _reference(config, _data_of(config, data_seed=1))
    assert _max_diff(state, ref) < ATOL, _max_diff(state, ref)
    assert _max_diff(state, config.initial_state) > 100 * ATOL


def _ranks_of_entities(shards: list[Shard], batches: _Batches) -> list[set[int]]:
    """For every entity, the ranks holding any of its events (matched by content: each
    event's encoded row is unique in this made-up data) and whether they hold all of them."""
    x, mask = batches.padded()
    events = {}
    for e in range(len(x)):
        for t in range(1, 1 + int(mask[e, 1:].sum())):
            events[tuple(x[e, t].tolist())] = e
    where: list[set[int]] = [set() for _ in range(len(x))]
    seen = [0] * len(x)
    for r, shard in enumerate(shards):
        for slot in range(shard.data.shape[0]):
            for t in range(1, shard.data.shape[1]):
                if shard.mask[slot, t] > 0:
                    e = events[tuple(shard.data[slot, t].tolist())]
                    where[e].add(r)
                    seen[e] += 1
    assert seen == [int(m) for m in mask[:, 1:].sum(dim=1)]  # every event once
    return where


def test_one_entity_never_straddles_ranks():
    """(e) The driver's split (`worker.unit_shards` over `_Batches.padded`, as
    DPHMM.fit(engine="ray") does) puts each entity's whole sequence on one rank. In-test
    control: routing the events one by one (a row-level split) puts entities on 2 ranks,
    and the check sees it."""
    from synthkit.distributed.partition import partition_units
    from synthkit.distributed.worker import unit_shards

    batches = _batches(40, seed=7)
    data, mask = batches.padded()
    shards = unit_shards(data, mask, world_size=WORLD, seed=np.random.SeedSequence(1))
    where = _ranks_of_entities(shards, batches)
    assert all(len(w) == 1 for w in where)
    assert {r for w in where for r in w} == {0, 1}  # both ranks hold entities
    # the control: one slot per EVENT, routed by event (what a split that ignores entities does)
    present = mask[:, 1:] > 0
    ev = data[:, 1:][present]  # [n_events, W]
    slots = torch.zeros(len(ev), 2, data.shape[-1])
    slots[:, 1] = ev
    slot_mask = torch.ones(len(ev), 2)
    part = partition_units(np.arange(len(ev)), n_rows=len(ev), world_size=WORLD, k=1, rng=np.random.default_rng(0))
    split = [Shard(data=slots[torch.from_numpy(rows)], mask=slot_mask[torch.from_numpy(rows)]) for rows in part.rows]
    assert sum(len(w) > 1 for w in _ranks_of_entities(split, batches)) > 10


def test_trim_gives_the_single_process_batch():
    """A padded slot batch cut by `trim` is `_Batches.gather`'s batch for the same entities
    (an empty batch included)."""
    batches = _batches(15, seed=2)
    data, mask = batches.padded()
    for idx in (torch.tensor([3, 0, 9]), torch.tensor([5]), torch.arange(15), torch.tensor([], dtype=torch.long)):
        assert torch.equal(trim(data[idx], mask[idx]), batches.gather(idx))
