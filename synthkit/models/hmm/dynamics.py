"""DP persistence of the categorical event columns, and the matching of the HMM's
persistence to it.

Why: DP-SGD learns each column's within-entity dynamics (a categorical's "stay" logits)
from the gradients of the pairs of consecutive events, clipped and noised together with
everything else, so a rare flag gets almost no signal: on COUNT/rwm5yr at ε = 3 the lag-1
autocorrelation of `self` (5% self-employed, 0.83 real) came out 0.60 from the HMM and
0.50 after the margin calibration (one bundle, 20,000 sampled entities; the calibration
moves whole runs and keeps the HMM's order, so the HMM's own persistence was off).

What is released (charged to the fit's ledger, `dynamics:<column>` and
`dynamics:entities`): per categorical, boolean or small-range integer event column (a
categorical channel of the HMM) the number of entities whose cell (label, value or null:
the margin's cells) changes at least once between consecutive kept events; and one count,
the entities with two or more kept events. The unit is the entity: it moves each count by
at most 1, so each is a Gaussian of sensitivity 1. The share is count / count
(post-processing). Why "changes at least once" and not the entity's share of changing
pairs (also sensitivity 1): a persistent rare flag changes in few pairs, and dividing by
the pairs shrinks the signal, not the noise. With 1,500 entities of 6 events, a flag on 10%
of events and lag-1 0.8, at the 3% share of ε=3 (σ = 14) the pair shares summed to 42
(noise one third of it) and the "changed" entities number about 220 (noise 6%).

The matching (post-processing, free): after DP-SGD the sampler is run on entities drawn
from the DP context model (never the real ones) and each column's stay logit is shifted by
one amount in every state, bisected until the sampled share equals the released one.
The channels are drawn independently given the states in `sample_hmm`, and the same seeded
draws are used in every round, so all columns are bisected together in one loop of sampler
runs. The share is measured on the sampled codes after the same calibration onto the margin that
sampling applies (`calibrated_shares`), on entities whose lengths come from the DP context
model like the real ones' do, so no conversion between the two is needed.

Numeric (Gaussian) channels are left as trained. Matching their rate of change on ranks by a
shift of the AR coefficients was tried on the same bundle: hhninc's rank dynamics already
matched (its Pearson lag-1 gap comes from its DP range clipping the tail, see
preprocess.RANGE_WEIGHT), and educ (nearly constant within a person) ran into the bracket
with its lag-1 falling from 0.97 to 0.88 (real 0.998): the AR shift is not a monotone knob
when the states' coefficients are far from 0 (they were −2.5 .. 2.1 there)."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import torch

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
MATCH_ENTITIES = 8000  # entities drawn from the DP context model for the matching


def matched(entry: dict[str, Any], margins: dict[str, list[float]]) -> bool:
    """Whether a layout column is matched: a categorical channel with a margin."""
    return entry["mode"] in ("categorical", "integer") and entry["name"] in margins


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
        noisy = noisy_count(int(changed(cells, later, pair_entity, n_ent).sum()), sigma=sigma, sensitivity=1.0, name=f"{PREFIX}{name}",
                            ledger=ledger, rng=rng)
        out[name] = float(np.clip(noisy / max(n_dp, 1.0), 0.0, 1.0))
    return out if n_dp >= 1 else {}


# ====================================================================== matching
def calibrated_shares(entries: list[dict[str, Any]], margins: dict[str, list[float]], cat: np.ndarray,
                      lengths: np.ndarray, seed: int) -> np.ndarray:
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
        codes = rebalance(cat[:, :, e["cat"]][mask], counts, np.random.default_rng(seed), starts=starts)
        out[i] = changed(codes, later, pair_entity, n)[multi].mean()
    return out


def match_dynamics(net: HMMNet, layout: dict[str, Any], margins: dict[str, list[float]], rates: dict[str, float],
                   *, c: torch.Tensor, lengths: np.ndarray, seed: int, sample: Any) -> dict[str, float]:
    """Shift each matched column's stay logits (all states) until the sampled share of
    entities that change equals the DP one (see the module docstring); `net` is changed in place. `c`, `lengths`:
    entities drawn from the DP context model; `sample(net, c, lengths, g)` returns the
    categorical codes [n, T, C] of `sample_hmm`. Returns the shifts by column."""
    entries = [e for e in layout["columns"] if matched(e, margins) and e["name"] in rates]
    if not entries or int(lengths.max(initial=0)) < 2:
        return {}
    want = np.array([rates[e["name"]] for e in entries])
    lo, hi = np.full(len(entries), -STAY_RANGE), np.full(len(entries), STAY_RANGE)
    base = net.stay_logit.detach().clone()

    def run(shift: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            net.stay_logit.copy_(base)
            for e, s in zip(entries, shift):
                net.stay_logit[:, e["cat"]] += float(s)
            g = torch.Generator(device=c.device)
            g.manual_seed(seed)  # the same draws every round (sampling: post-processing, seeded)
            cat = sample(net, c, lengths, g)
        return calibrated_shares(entries, margins, cat, lengths, seed)  # falls as the stay logit rises

    for _ in range(ROUNDS):
        mid = (lo + hi) / 2
        below = run(mid) > want  # changes too often: more stay
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    shift = (lo + hi) / 2
    run(shift)
    out = {e["name"]: round(float(s), 4) for e, s in zip(entries, shift)}
    logger.info("event dynamics: stay logits shifted to the DP change rates: %s", out)
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
                     device: torch.device, n_entities: int = MATCH_ENTITIES) -> dict[str, float]:
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

    def sample(model: HMMNet, c: torch.Tensor, ls: np.ndarray, g: torch.Generator) -> np.ndarray:
        return sample_hmm(model, layout, c, ls, g, terminal=None)[1]

    return match_dynamics(net, layout, margins, rates, c=torch.from_numpy(np.asarray(c_enc)).float().to(device),
                          lengths=lengths, seed=seed, sample=sample)
