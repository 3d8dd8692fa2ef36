"""DP discovery of an event column's category labels with the ENTITY as the unit.

Why: an undeclared categorical event column gets its labels from partition selection
(`synthkit.mechanisms.select_partitions`), which counts events and so has sensitivity k,
the most events an entity keeps: its threshold τ = k + σ_hist·Φ⁻¹(1 − δ/k) grows with k.
On plm/Males (272 men × 8 years, ε = 3) σ_hist is 249 events and τ about 1,470 of the
2,176 events: no label of industry (12), occupation (9) or residence (4) cleared in any
fit, every synthetic event was `__other__`, and each of the three scored 0 on shape.

What is released here instead (charged as `categories-entity:<column>`): per label v the
sum over entities of w_e(v) = c_e(v) / ‖c_e‖₂, c_e the entity's kept-event counts per
label (null included, as one more label). Sensitivity: adding or removing one entity
adds or removes its vector w_e, whose L2 norm is exactly 1, so the release is a Gaussian
of L2 sensitivity 1 on the labels that other entities share. A label held by that entity
alone has weight at most 1 (each w_e(v) ≤ 1), and the entity holds at most k labels, so
with τ = 1 + σ·Φ⁻¹(1 − δ_t/k) such a label clears with probability at most δ_t/k each,
δ_t over its labels: the threshold event of Gaussian partition selection (Desfontaines et
al. 2022), with weights bounded by 1 instead of counts bounded by k. A persistent
column's entity holds one or two labels, so its weight is about one unit where the event
count was up to k: on plm/Males τ falls to about 60 entity-weights (industry: Trade 106,
Manufacturing 101, Business 46, ...).

The released labels then replace the transformer's own discovery for the column
(`EntityLabelsTransform`): its planned histogram (σ_hist, sensitivity k) is released over
those labels, `__other__` (every other value) and the null cell, so the rest of the fit
does not change. The noise is keyed per label (`keyed_normal`): one entity more or less moves
only its own labels' counts. Its ρ comes on top of the preprocessing share (DP-SGD,
calibrated to what the ledger has left, pays), `DISCOVERY_RHO_SHARE` of the budget's ρ
split evenly over the columns; the threshold's δ is the one the preprocessing plan
reserves for each column's discovery, which the transformer then no longer spends."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy.stats import norm

from synthkit.ledger import GaussianEvent, PrivacyBudget, PrivacyLedger, ThresholdEvent
from synthkit.mechanisms import keyed_normal, noisy_histogram, rho_for_epsilon
from synthkit.schema import Column
from synthkit.sequence import GroupedEvents
from synthkit.transforms import NULL, OTHER, OTHER_CLEAR_SIGMAS, CategoricalTransform, DataTransformer, FitContext

logger = logging.getLogger(__package__)  # the package's one logger: log lines keep their name

PREFIX = "categories-entity:"
# the share of the budget's ρ (zCDP) that the entity-level discoveries take together. plm/Males,
# ε = 3, three such columns: 0.08 gives σ about 10 entity-weights each (τ about 60)
DISCOVERY_RHO_SHARE = 0.08


def discovery_columns(transformer: DataTransformer) -> list[str]:
    """The event columns whose labels are discovered here: categoricals without a public
    domain (declared categories and booleans need none)."""
    return [name for name, t in transformer.transforms.items()
            if isinstance(t, CategoricalTransform) and t.public_domain is None]


def plan_discovery(columns: list[str], budget: PrivacyBudget | None) -> list[GaussianEvent]:
    """The Gaussians the discovery will charge (from the budget alone, before any row is
    read): one per column, sensitivity 1, together `DISCOVERY_RHO_SHARE` of the budget's ρ."""
    if budget is None or not columns:
        return []
    rho = DISCOVERY_RHO_SHARE * rho_for_epsilon(budget.epsilon, budget.delta) / len(columns)
    sigma = 1.0 / math.sqrt(2.0 * rho)
    return [GaussianEvent(name=f"{PREFIX}{c}", sigma=sigma, sensitivity=1.0) for c in columns]


def entity_weights(grouped: GroupedEvents, column: str) -> dict[str, float]:
    """Per label the sum over entities of c_e(v)/‖c_e‖₂ (null as the label NULL). A value
    that is the text NULL itself ("__null__" in the data) is a value, not a null: it counts
    in its entity's norm under its own key and is left out of the result, as the table
    models' discovery leaves it out (transforms.CategoricalTransform.fit: never released,
    it folds into `__other__`); dropping a component only lowers an entity's norm, so the
    sensitivity stays 1. Before, it was counted as null and could release the null cell
    for a column without nulls."""
    s = grouped.events[column]
    missing = s.isna().to_numpy()
    text = s.astype(str).to_numpy(dtype=object)
    literal = ~missing & (text == NULL)
    keys = np.where(missing, "n", np.where(literal, "l", "v"))  # null, literal NULL, value: never equal
    frame = pd.DataFrame({"e": grouped.entity, "k": keys, "v": np.where(missing | literal, "", text)})
    counts = frame.groupby(["e", "k", "v"], sort=False).size().astype(float)
    norms = np.sqrt((counts ** 2).groupby(level="e").sum())
    w = (counts / norms.reindex(counts.index.get_level_values("e")).to_numpy()).groupby(level=["k", "v"]).sum()
    return {(NULL if k == "n" else str(v)): float(x) for (k, v), x in w.items() if k != "l"}


def release_labels(weights: dict[str, float], *, sigma: float, k: int, threshold_delta: float, name: str,
                   ledger: PrivacyLedger, rng: np.random.Generator) -> dict[str, float]:
    """The labels whose noisy weight clears τ = 1 + σ·Φ⁻¹(1 − δ_t/k), with their noisy
    weights (see the module docstring for the sensitivity and the threshold)."""
    ledger.charge(GaussianEvent(name=name, sigma=sigma, sensitivity=1.0))
    ledger.charge(ThresholdEvent(name=name + ":threshold", delta=threshold_delta))
    keys = sorted(weights)
    tau = 1.0 + sigma * float(norm.isf(threshold_delta / max(k, 1)))
    noise = keyed_normal(rng, keys, sigma)
    return {c: weights[c] + z for c, z in zip(keys, noise) if weights[c] + z > tau}


class EntityLabelsTransform(CategoricalTransform):
    """A categorical over labels released by `release_labels`: the column's planned noisy
    histogram (σ_hist, sensitivity k, as the transformer's own discovery would release it)
    over those labels, `__other__` and the null cell; the null label is kept when the
    entity release cleared it. Saved and loaded as a plain CategoricalTransform (its
    labels and counts)."""

    def __init__(self, column: Column, *, labels: list[str], null_released: bool) -> None:
        super().__init__(column)
        self.released = list(labels)
        self.null_released = null_released

    def n_discovery(self) -> int:
        return 0

    def fit(self, s: pd.Series, ctx: FitContext) -> EntityLabelsTransform:
        values = self._strings(s)
        present = values.dropna()
        observed = present.value_counts()
        known = [int(observed.get(c, 0)) for c in self.released]
        raw = np.array([*known, len(present) - sum(known), int(values.isna().sum())], dtype=float)
        noisy = noisy_histogram(raw, sigma=ctx.plan.sigma_hist, sensitivity=ctx.plan.k,
                                name=f"categories:{self.column.name}", ledger=ctx.ledger, rng=ctx.rng)
        labels, counts = [*self.released, OTHER], [float(c) for c in noisy[:-1]]
        if (ctx.ledger.private and counts[-1] <= OTHER_CLEAR_SIGMAS * ctx.plan.sigma_hist
                and sum(max(c, 0.0) for c in counts[:-1]) > 0):
            counts[-1] = 0.0  # no invented `__other__`: the remainder must clear its own noise (R2)
        if self.column.nullable and self.null_released:
            labels.append(NULL)
            counts.append(float(noisy[-1]))
        self.labels_ = labels
        self.counts_ = [max(c, 0.0) for c in counts]
        return self


def discover_categories(transformer: DataTransformer, grouped: GroupedEvents, planned: list[GaussianEvent], *,
                        k: int, threshold_delta: float, ledger: PrivacyLedger, rng: np.random.Generator) -> None:
    """Release each planned column's labels and give the transformer an `EntityLabelsTransform`
    over them in its place (in place; the transformer's own discovery, and its threshold,
    never run for these columns). A no-op without a private ledger."""
    if not ledger.private or not planned:
        return
    for event in planned:
        column = event.name[len(PREFIX):]
        kept = release_labels(entity_weights(grouped, column), sigma=event.sigma, k=k,
                              threshold_delta=threshold_delta, name=event.name, ledger=ledger, rng=rng)
        null = kept.pop(NULL, None) is not None  # no label cleared: every value is `__other__`
        transformer.transforms[column] = EntityLabelsTransform(
            transformer.transforms[column].column, labels=sorted(kept), null_released=null)
        logger.info("column %r: %d labels released with the entity as the unit (sigma=%.2f)",
                    column, len(kept), event.sigma)
