"""DP persistence of the event columns, and the matching of the HMM's persistence to it.

Why: DP-SGD learns each column's within-entity dynamics (a categorical's "stay" logits, a
number's AR coefficients) from the gradients of the pairs of consecutive events, clipped
and noised together with everything else, so a rare flag gets almost no signal: on
COUNT/rwm5yr at ε = 3 the lag-1 autocorrelation of `self` (5% self-employed, 0.83 real)
came out 0.61 from the HMM and 0.50 after the margin calibration, educ 0.98 (real 1.00)
(one bundle, 20,000 sampled entities; the calibration keeps the HMM's order, so the HMM's
own persistence was off).

What is released (charged to the fit's ledger, `dynamics:<column>` and
`dynamics:entities`), per event column with a margin, a sum over the entities with two or
more kept events of a per-entity statistic in [0, 1]:
- a categorical, boolean or small-range integer column (a categorical channel): whether
  its cell (label, value or null: the margin's cells) changes at least once between
  consecutive kept events;
- a numeric column: the entity's mean over its consecutive pairs of |G(b_t) − G(b_{t−1})|,
  G the mid-CDF of the bins b of the column's DP margin (released before: public
  post-processing); 1 where exactly one of the two is null. On ranks, as the calibration
  (rank for rank onto that margin) leaves them;
and one count, the entities with two or more kept events. The unit is the entity: it moves
each sum by at most 1, so each is a Gaussian of sensitivity 1; the statistic is sum /
count (post-processing). Why "changes at least once" and not the entity's share of
changing pairs (also sensitivity 1): a persistent rare flag changes in few pairs, and
dividing by the pairs shrinks the signal, not the noise. With 1,500 entities of 6 events,
a flag on 10% of events and lag-1 0.8, at the 3% share of ε=3 (σ = 14) the pair shares
summed to 42 (noise one third of it) and the "changed" entities number about 220 (noise 6%).

The matching (post-processing, free): after DP-SGD the sampler is run on entities drawn
from the DP context model (never the real ones); a categorical column's stay logit is
shifted by one amount in every state, a numeric column's drawn values are smoothed along
the entity's events with a weight w (`blend`, stored in the bundle and applied at
sampling), and each knob is bisected until the sampled statistic equals the released one.
The channels are drawn independently given the states in `sample_hmm`, and the same seeded
draws are used in every round, so all columns are bisected together in one loop of sampler
runs. The statistic is measured after the same calibration onto the margin that sampling
applies (`calibrated_shares`), on entities whose lengths come from the DP context model
like the real ones' do, so no conversion between the two is needed.

The smoothing only adds persistence (w ≥ 0). A shift of the AR coefficients, which could
go both ways, was tried first on the same bundle: educ (nearly constant within a person)
ran into the bracket with its lag-1 falling from 0.97 to 0.88 (real 0.998): the AR shift
is not a monotone knob when the states' coefficients are far from 0 (−2.5 .. 2.1 there).
hhninc's rank moves already matched while its Pearson lag-1 is too high (0.82 against
0.70): its gap comes from its DP range clipping the tail (see preprocess.RANGE_WEIGHT)."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from synthkit.errors import ArtifactError
from synthkit.ledger import PrivacyBudget, PrivacyLedger
from synthkit.mechanisms import noisy_count
from synthkit.models.hmm.margins import column_cells, margin_sigma, rebalance
from synthkit.models.hmm.network import HMMNet
from synthkit.sequence import GroupedEvents
from synthkit.transforms import DataTransformer

logger = logging.getLogger(__package__)  # the package's one logger: log lines keep their name

PREFIX = "dynamics:"
STAY_RANGE = 8.0  # the stay-logit shift is bisected in [-8, 8]
ROUNDS = 14  # bisection steps: 16 / 2^14 ≈ 1e-3 in logit
MAX_BLEND = 0.98  # the numeric columns' smoothing weight is bisected in [0, 0.98]
MATCH_ENTITIES = 8000  # entities drawn from the DP context model for the matching


def matched(entry: dict[str, Any], margins: dict[str, list[float]]) -> bool:
    """Whether a layout column is matched: every event column with a margin."""
    return entry["mode"] in ("categorical", "integer", "gaussian") and entry["name"] in margins


def mid_cdf(counts: np.ndarray) -> np.ndarray:
    """G of each present bin of a numeric margin (its last cell is null): the share below
    the bin plus half its own, so a spike's values all sit at its middle rank."""
    hist = np.clip(np.asarray(counts, dtype=float)[:-1], 0.0, None)
    total = hist.sum()
    if total <= 0:
        return np.full(len(hist), 0.5)
    cum = np.cumsum(hist) / total
    return cum - hist / total / 2


def rank_moves(cells: np.ndarray, later: np.ndarray, pair_entity: np.ndarray, n_entities: int,
               g: np.ndarray) -> np.ndarray:
    """Per entity the mean over its consecutive pairs of |G(b_t) − G(b_{t−1})| (1 where
    exactly one of the two is null, 0 where both are): in [0, 1]."""
    prev, cur = cells[later - 1], cells[later]
    null = len(g)
    both = (prev < null) & (cur < null)
    d = ((prev < null) != (cur < null)).astype(float)
    d[both] = np.abs(g[prev[both]] - g[cur[both]])
    n = np.bincount(pair_entity, minlength=n_entities)
    return np.bincount(pair_entity, weights=d, minlength=n_entities) / np.maximum(n, 1)


def entity_statistic(entry: dict[str, Any], margin: np.ndarray, cells: np.ndarray, later: np.ndarray,
                     pair_entity: np.ndarray, n_entities: int) -> np.ndarray:
    """Per entity, in [0, 1]: whether a categorical column changes; a numeric column's mean
    move on its margin's ranks (`rank_moves`)."""
    if entry["mode"] == "gaussian":
        return rank_moves(cells, later, pair_entity, n_entities, mid_cdf(margin))
    return changed(cells, later, pair_entity, n_entities).astype(float)


def n_releases(layout: dict[str, Any], margins: dict[str, list[float]]) -> int:
    """The Gaussians `release_dynamics` charges: one per matched column, plus the count."""
    return sum(matched(e, margins) for e in layout["columns"]) + 1


def changed(codes: np.ndarray, later: np.ndarray, pair_entity: np.ndarray, n_entities: int) -> np.ndarray:
    """Per entity whether its code changes at least once between consecutive rows (`later`:
    the rows that have a predecessor in their entity, `pair_entity` their entities)."""
    d = codes[later - 1] != codes[later]
    return np.bincount(pair_entity[d], minlength=n_entities) > 0


def release_dynamics(grouped: GroupedEvents, transformer: DataTransformer, layout: dict[str, Any],
                     margins: dict[str, list[float]], *, sigma: float, ledger: PrivacyLedger,
                     rng: np.random.Generator) -> dict[str, float]:
    """The DP share of entities that change, per matched column (see the module docstring):
    the counts each a Gaussian of sensitivity 1 and std `sigma`; shares clipped to [0, 1]
    (post-processing). Empty when the noisy count is below one entity."""
    later = np.flatnonzero(grouped.position > 0)
    pair_entity = grouped.entity[later]
    n_ent = grouped.n_entities
    has_pairs = np.bincount(pair_entity, minlength=n_ent) > 0
    n_dp = noisy_count(int(has_pairs.sum()), sigma=sigma, sensitivity=1.0, name=f"{PREFIX}entities",
                       ledger=ledger, rng=rng)
    out: dict[str, float] = {}
    for entry in layout["columns"]:
        if not matched(entry, margins):
            continue
        name = entry["name"]
        cells, _ = column_cells(entry, transformer.transforms[name], grouped.events[name])
        stat = entity_statistic(entry, np.asarray(margins[name]), cells, later, pair_entity, n_ent)
        noisy = noisy_count(float(stat.sum()), sigma=sigma, sensitivity=1.0, name=f"{PREFIX}{name}",
                            ledger=ledger, rng=rng)
        out[name] = float(np.clip(noisy / max(n_dp, 1.0), 0.0, 1.0))
    return out if n_dp >= 1 else {}


# ====================================================================== matching
def calibrated_shares(entries: list[dict[str, Any]], margins: dict[str, list[float]], cat: np.ndarray,
                      z: np.ndarray, lengths: np.ndarray, seed: int) -> np.ndarray:
    """Per entry the share of multi-event entities whose sampled code changes, AFTER the
    calibration onto its margin (the `rebalance` in whole runs that sampling applies).
    Moving whole runs keeps the HMM's transitions but not the persistence a lag-1
    autocorrelation sees where the shares move (entities' runs of a rare flag moved to the
    common label leave the flag's changes to fewer rows: rwm5yr's `self` 0.61 raw, 0.51
    calibrated), so the match is made on what comes out, not on the raw codes."""
    n, t_max = cat.shape[:2]
    mask = np.arange(t_max)[None, :] < lengths[:, None]
    ent = np.nonzero(mask)[0]  # rows in entity order, time order within an entity (as decoded)
    starts = np.ones(len(ent), dtype=bool)
    starts[1:] = ent[1:] != ent[:-1]
    later = np.flatnonzero(~starts)
    out = np.zeros(len(entries))
    if not len(later):
        return out
    pair_entity = ent[later]
    multi = np.bincount(pair_entity, minlength=n) > 0
    for i, e in enumerate(entries):
        counts = np.asarray(margins[e["name"]], dtype=float)
        if e["mode"] == "gaussian":
            codes = _numeric_cells(e, counts, cat, z, mask)
        else:
            codes = rebalance(cat[:, :, e["cat"]][mask], counts, np.random.default_rng(seed), starts=starts)
        out[i] = entity_statistic(e, counts, codes, later, pair_entity, n)[multi].mean()
    return out


def _numeric_cells(entry: dict[str, Any], counts: np.ndarray, cat: np.ndarray, z: np.ndarray,
                   mask: np.ndarray) -> np.ndarray:
    """The margin's cell of every sampled value (rows as `mask` flattens them) after the
    rank calibration: the values ranked, each rank's quantile level put in its bin; the
    HMM's nulls in the null cell."""
    null = (cat[:, :, entry["null_cat"]] == 1)[mask] if entry["nullable"] else np.zeros(int(mask.sum()), bool)
    x = z[:, :, entry["gauss"]][mask]
    n_bins = len(counts) - 1
    cells = np.full(len(x), n_bins, dtype=np.int64)
    present = np.flatnonzero(~null)
    if len(present) and counts[:-1].sum() > 0:
        u = (np.argsort(np.argsort(x[present], kind="stable"), kind="stable") + 0.5) / len(present)
        cum = np.cumsum(np.clip(counts[:-1], 0.0, None)) / np.clip(counts[:-1], 0.0, None).sum()
        cells[present] = np.minimum(np.searchsorted(cum, u), n_bins - 1)
    return cells


def blend(z: np.ndarray, weights: dict[int, float]) -> np.ndarray:
    """z [n, T, G] with channel g replaced by its exponential smoothing along each entity's
    events, z'_t = (1 − w)·z_t + w·z'_{t−1} (post-processing of the drawn values: a w in
    [0, 1) pulls every value towards the entity's earlier ones, so ranks move less)."""
    if not weights or z.shape[1] < 2:
        return z
    out = z.copy()
    for g, w in weights.items():
        for t in range(1, z.shape[1]):
            out[:, t, g] = (1.0 - w) * z[:, t, g] + w * out[:, t - 1, g]
    return out


def blend_numbers(z: np.ndarray, layout: dict[str, Any], record: dict[str, Any] | None) -> np.ndarray:
    """`blend` with a fit's (or a loaded bundle's) `training.dynamics.blend`, by column name."""
    weights = (record or {}).get("blend") or {}
    if not isinstance(weights, dict):
        raise ArtifactError("bundle field training.dynamics.blend must map column names to numbers in [0, 1)")
    gauss = {e["name"]: e["gauss"] for e in layout["columns"] if e["mode"] == "gaussian"}
    by_channel = {}
    for name, w in weights.items():
        if name not in gauss or isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w < 1.0:
            raise ArtifactError("bundle field training.dynamics.blend must map the numeric event columns to "
                                "numbers in [0, 1); re-fit the model or restore the bundle from its source")
        by_channel[gauss[name]] = float(w)
    return blend(z, by_channel)


def match_dynamics(net: HMMNet, layout: dict[str, Any], margins: dict[str, list[float]], rates: dict[str, float],
                   *, c: torch.Tensor, lengths: np.ndarray, seed: int, sample: Any) -> dict[str, dict[str, float]]:
    """Shift each matched column's stay logits (all states) until the sampled share of
    entities that change equals the DP one (see the module docstring); `net` is changed in place. `c`, `lengths`:
    entities drawn from the DP context model; `sample(net, c, lengths, g)` returns the
    codes [n, T, C] and values [n, T, G] of `sample_hmm`. A numeric column's knob is the
    weight of `blend` in [0, MAX_BLEND] (it can only add persistence). Returns
    {"stay_shift": by column, "blend": by column}."""
    entries = [e for e in layout["columns"] if matched(e, margins) and e["name"] in rates]
    if not entries or int(lengths.max(initial=0)) < 2:
        return {}
    want = np.array([rates[e["name"]] for e in entries])
    numeric = np.array([e["mode"] == "gaussian" for e in entries])
    lo = np.where(numeric, 0.0, -STAY_RANGE)
    hi = np.where(numeric, MAX_BLEND, STAY_RANGE)
    base = net.stay_logit.detach().clone()

    def run(knob: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            net.stay_logit.copy_(base)
            for e, s in zip(entries, knob):
                if e["mode"] != "gaussian":
                    net.stay_logit[:, e["cat"]] += float(s)
            g = torch.Generator(device=c.device)
            g.manual_seed(seed)  # the same draws every round (sampling: post-processing, seeded)
            cat, z = sample(net, c, lengths, g)
        z = blend(z, {e["gauss"]: float(w) for e, w in zip(entries, knob) if e["mode"] == "gaussian"})
        return calibrated_shares(entries, margins, cat, z, lengths, seed)  # falls as either knob rises

    for _ in range(ROUNDS):
        mid = (lo + hi) / 2
        below = run(mid) > want  # changes too often: more stay
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    knob = (lo + hi) / 2
    knob = np.where(numeric & (lo <= 0.0), 0.0, knob)  # never moved off 0: no blend at all
    run(knob)
    out = {"stay_shift": {e["name"]: round(float(s), 4) for e, s in zip(entries, knob) if e["mode"] != "gaussian"},
           "blend": {e["name"]: round(float(s), 4) for e, s in zip(entries, knob) if e["mode"] == "gaussian"}}
    logger.info("event dynamics matched to the DP statistics: %s", out)
    return out


# ====================================================================== the fit's two steps
def fit_dynamics(grouped: GroupedEvents, transformer: DataTransformer, layout: dict[str, Any],
                 margins: dict[str, list[float]], *, budget: PrivacyBudget | None, ledger: PrivacyLedger,
                 target: float, rng: np.random.Generator) -> dict[str, float]:
    """Step 4c of DPHMM.fit: the DP change rates, with σ such that the ledger's cumulative ε
    reaches `target` (a dry run on the ledger's accountant, before the rows are read)."""
    n = n_releases(layout, margins)
    if n < 2:
        return {}
    sigma = 1.0
    if budget is not None:
        sigma = margin_sigma(ledger, n_columns=n, sensitivity=1.0, target=target, prefix=PREFIX)
        if not math.isfinite(sigma):
            logger.warning("no budget left for the event dynamics; the HMM's persistence is kept as trained")
            return {}
        logger.info("event dynamics: %d DP counts of changing entities, sigma=%.3f (sensitivity 1 entity)", n - 1, sigma)
    return release_dynamics(grouped, transformer, layout, margins, sigma=sigma, ledger=ledger, rng=rng)


def match_to_context(net: HMMNet, layout: dict[str, Any], margins: dict[str, list[float]],
                     rates: dict[str, float], context_model: Any, *, seq: np.random.SeedSequence,
                     device: torch.device, n_entities: int = MATCH_ENTITIES) -> dict[str, dict[str, float]]:
    """Step 5b of DPHMM.fit: `match_dynamics` on `n_entities` entities drawn from the DP
    context model (their context and length; post-processing, no row is read)."""
    from synthkit.models.hmm.context import LENGTH
    from synthkit.models.hmm.sample import sample_hmm
    if not rates:
        return {}
    seed = int(seq.generate_state(1, dtype=np.uint32)[0])
    ctx = context_model.sample(n_entities, seed=seed).reset_index(drop=True)
    c_enc = context_model.transformer_.transform(ctx, np.random.default_rng(seed))
    lengths = pd.to_numeric(ctx[LENGTH], errors="coerce").fillna(layout["min_length"]).to_numpy(dtype=float)
    lengths = np.clip(np.round(lengths), layout["min_length"], layout["max_length"]).astype(np.int64)

    def sample(model: HMMNet, c: torch.Tensor, ls: np.ndarray, g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        return sample_hmm(model, layout, c, ls, g, terminal=None)[1:]

    return match_dynamics(net, layout, margins, rates, c=torch.from_numpy(np.asarray(c_enc)).float().to(device),
                          lengths=lengths, seed=seed, sample=sample)
