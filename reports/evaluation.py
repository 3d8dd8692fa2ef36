"""`reports.evaluate`: one call that scores a synthetic dataset and returns a `Report`.

Every metric is computed against a real TRAIN part (what the model saw) and a real
HOLDOUT part (what it never saw), so leakage can be told from generalisation (DESIGN §5).
Where the split comes from, in order:
1. `holdout=` given: `real` is the train part and `holdout` the held-out part;
2. else the bundle's manifest records a split (`synthkit fit --holdout 0.2` stores
   `manifest["holdout"]`, the record of `synthkit.split.holdout_split`): the same split
   is re-derived from `real` (the full file given to fit) and checked against the
   recorded fingerprint;
3. else there is no holdout: every metric that needs one is reported as not computable.

What leaves this module is aggregates only: scores, shares, rates, and histograms whose
bins come from the schema or the synthetic data, with real cells of fewer than
`MIN_CELL` rows suppressed. The fitted normalisation, the clusters, the attack
predicates and every per-row distance stay in memory and are dropped.

This module reads the bundle's manifest.json through `synthkit.manifest` (validated, no
torch) instead of importing `synthkit.bundle`, which loads torch: `reports` never needs
torch. `synthkit evaluate` first loads the bundle as `generate` does (`synthkit.bundle.verify`).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from reports import bias as bias_mod
from reports import diversity as div
from reports import fidelity as fid
from reports import privacy as priv
from reports import sequence as seq
from reports.encoding import Encoder, canonical, evaluated_columns, is_numeric
from reports.model import REPORT_FORMAT_VERSION, Metric, Report, metric_spec
from synthkit.errors import ConfigError, DataValidationError
from synthkit.schema import Column, Schema

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
SECTION_ORDER = ("fidelity", "diversity", "privacy", "bias", "sequence", "validation")
MIN_CELL = 10            # real histogram cells with fewer rows are suppressed in charts
MAX_ATTACK_UNITS = 10_000
MAX_SECRETS = 8
STREAMS = ("fidelity", "detection", "utility", "diversity", "modes", "privacy", "singling_out",
           "attribute_inference", "bias", "associations")  # append only: spawn order fixes each stream


def read_manifest(model_dir: str | Path) -> tuple[dict[str, Any], str]:
    """(manifest, sha256 of manifest.json), read through synthkit.manifest: the one
    validated reading every command shares (size, depth and number caps, the manifest's
    own SHA-256, the typed model). The manifest holds the weights' hash, so its own hash
    pins the whole bundle."""
    from synthkit.manifest import read_manifest as read_validated
    return read_validated(model_dir)


def _metric(id: str, section: str, value: float | None, explanation: str, **kw: Any) -> Metric:  # noqa: A002
    direction, target = metric_spec(id)
    return Metric(id=id, section=section, value=value, direction=direction, target=target,
                  explanation=explanation, **kw)


def _check_columns(frame: pd.DataFrame, schema: Schema, what: str) -> list[str]:
    missing = [n for n in schema.names if n not in frame.columns]
    return [f"the {what} data lacks the schema columns {missing}"] if missing else []


def _target_columns(schema: Schema, names: list[str | None]) -> list[Column]:
    """The distinct named targets, in order; every unusable name is reported in one error
    (column names are public schema facts, no data)."""
    wanted = [n for n in dict.fromkeys(names) if n is not None]
    bad = [n for n in wanted if n not in schema or n == schema.entity_key or schema.column(n).kind == "identifier"]
    if bad:
        raise ConfigError(f"target(s) {bad} are not learned columns of the schema; name columns among "
                          f"{[c.name for c in evaluated_columns(schema)]}")
    return [schema.column(n) for n in wanted]


def _sample_idx(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(rng.choice(n, size=k, replace=False))


class _Timer:
    def __init__(self, progress: Progress | None, *, total: int = len(SECTION_ORDER)) -> None:
        self.seconds: dict[str, float] = {}
        self.progress = progress
        self.done = 0
        self.total = total  # the sections that will run (a table has no sequence section)

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        if self.progress:
            self.progress(name, self.done, self.total)
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
            self.done += 1
            if self.progress:
                self.progress(name, self.done, self.total)


def evaluate(*, real: pd.DataFrame, synthetic: pd.DataFrame, model_dir: str | Path | None = None,
             schema: Schema | None = None, holdout: pd.DataFrame | None = None, target: str | None = None,
             targets: Sequence[str] = (), seed: int = 0, progress: Progress | None = None) -> Report:
    """Evaluate `synthetic` against `real` (see the module docstring for train/holdout).

    `schema` defaults to the bundle's. ML utility is computed for every target: `target`,
    then `targets`, then the schema's declared `targets` (each once). The first one keeps
    the ids `fidelity.ml_utility.tstr|trtr|ratio` and drives subgroup utility in the bias
    section; `fidelity.ml_utility.min_ratio` is the worst TSTR/TRTR ratio over all of them,
    so one policy check holds every declared use. `seed` fixes every random choice of the
    evaluation (subsamples, classifiers, attacks), so the same inputs give the same report.

    scikit-learn's OpenMP code (gradient boosting, k-means) runs single-threaded here:
    on a shared machine with more busy threads than cores, OpenMP's spin-waiting made a
    two-thread fit 10–100× slower than a one-thread fit in our measurements, while one
    thread costs at most 2× on an idle machine. BLAS (the nearest-neighbour products)
    keeps its threads."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="openmp"):
        return _evaluate(real=real, synthetic=synthetic, model_dir=model_dir, schema=schema, holdout=holdout,
                         target=target, targets=targets, seed=seed, progress=progress)


def _evaluate(*, real: pd.DataFrame, synthetic: pd.DataFrame, model_dir: str | Path | None = None,
             schema: Schema | None = None, holdout: pd.DataFrame | None = None, target: str | None = None,
             targets: Sequence[str] = (), seed: int = 0, progress: Progress | None = None) -> Report:
    """See `evaluate`; this runs under its thread limits."""
    manifest, manifest_sha = (read_manifest(model_dir) if model_dir is not None else (None, None))
    if schema is None:
        if manifest is None:
            raise ConfigError("evaluate needs a schema: pass model_dir (the bundle's schema) or schema=")
        schema = Schema.from_dict(manifest["schema"])
    schema.validate()
    problems = _check_columns(real, schema, "real") + _check_columns(synthetic, schema, "synthetic")
    if holdout is not None:
        problems += _check_columns(holdout, schema, "holdout")
    if problems:
        raise DataValidationError(problems)
    if len(synthetic) == 0:
        raise DataValidationError(["the synthetic data is empty (0 rows)"])

    split_record = (manifest or {}).get("holdout")
    if holdout is not None:
        train, hold, holdout_source = real, holdout, "a separate holdout file"
    elif split_record:
        from synthkit.split import resplit
        train, hold = resplit(real, split_record)
        holdout_source = (f"re-derived from the bundle's recorded split (fraction {split_record['fraction']:g}, "
                          f"seed {split_record['seed']}, by {split_record.get('unit', 'row')})")
    else:
        train, hold, holdout_source = real, None, "none (metrics that need unseen real data are not computed)"
    if len(train) == 0:
        raise DataValidationError(["the real train data is empty (0 rows)"])

    target_cols = _target_columns(schema, [target, *targets, *schema.targets, (manifest or {}).get("target")])
    target_col = target_cols[0] if target_cols else None
    target = target_col.name if target_col is not None else None

    columns = evaluated_columns(schema)
    is_sequence = bool(schema.entity_key and schema.sequence_index)
    unit = "entity" if schema.entity_key else "row"
    streams = dict(zip(STREAMS, np.random.SeedSequence(seed).spawn(len(STREAMS))))
    rngs = {k: np.random.default_rng(v) for k, v in streams.items()}
    timer = _Timer(progress, total=len(SECTION_ORDER) - (0 if is_sequence else 1))
    metrics: list[Metric] = []
    charts: dict[str, Any] = {}

    c_train, c_syn = canonical(train, columns), canonical(synthetic, columns)
    c_hold = canonical(hold, columns) if hold is not None and len(hold) else None
    encoder = Encoder(columns).fit(c_train)
    x_train, x_syn = encoder.transform(c_train), encoder.transform(c_syn)
    x_hold = encoder.transform(c_hold) if c_hold is not None else None

    # ------------------------------------------------------------------ fidelity
    utility: fid.Utility | None = None
    with timer.section("fidelity"):
        q = fid.quality(c_train, c_syn, columns, rng=rngs["fidelity"])
        metrics.append(_metric("fidelity.quality.column_shapes", "fidelity", q.shapes_score,
                               "How closely each column's distribution in the synthetic data matches the real one "
                               "(sdmetrics Column Shapes: 1 − KS distance for numbers, 1 − total variation for "
                               "categories; 1 = identical).",
                               details={"per_column": q.shapes}))
        metrics.append(_metric("fidelity.quality.column_pair_trends", "fidelity", q.pairs_score,
                               "How well relationships between pairs of columns are kept (sdmetrics Column Pair "
                               "Trends over all pairs: correlation similarity for two numbers, contingency "
                               "similarity otherwise; 1 = identical).",
                               details={"n_pairs": len(q.pairs),
                                        "n_pairs_scored": sum(v is not None for v in q.pairs.values())}))
        metrics.append(_metric("fidelity.quality.overall", "fidelity", q.overall,
                               "The sdmetrics quality score: the mean of column shapes and column pair trends."))
        names = [c.name for c in columns]
        charts["column_shapes"] = {"columns": names, "scores": [q.shapes[n] for n in names]}
        matrix = [[None if a == b else q.pairs.get((a, b), q.pairs.get((b, a))) for b in names] for a in names]
        charts["pair_trends"] = {"columns": names, "matrix": matrix}
        charts["marginals"] = _marginal_charts(c_train, c_syn, columns)

        auc, fold_range, n_det = fid.detection_auc(c_train, c_syn, columns, rng=rngs["detection"])
        metrics.append(_metric("fidelity.detection.auc", "fidelity", max(auc, 0.5),
                               "How well a classifier tells real rows from synthetic rows (ROC AUC, cross-validated): "
                               "0.5 means it cannot tell them apart, 1.0 means the synthetic rows are obvious.",
                               details={"classifier": "HistGradientBoostingClassifier", "folds": 3, "raw_auc": auc,
                                        "why_clipped": "an AUC below 0.5 (synthetic rows that duplicate real ones "
                                                       "confuse the cross-validation) carries no fidelity information",
                                        "fold_range": list(fold_range), "rows_per_side": n_det}))
        metrics.append(_metric("fidelity.detection.score", "fidelity", 1.0 - (max(auc, 0.5) * 2 - 1),
                               "The detection result on sdmetrics' scale: 1 − (2·max(AUC, 0.5) − 1); 1 = "
                               "indistinguishable, 0 = perfectly detected."))
        util_ids = ("fidelity.ml_utility.tstr", "fidelity.ml_utility.trtr", "fidelity.ml_utility.ratio")
        util_text = (
            "Train a model on synthetic data and test it on real holdout data (TSTR): how useful the synthetic "
            "data is for modelling.",
            "The same model trained on the real train data and tested on the same holdout (TRTR): the reference.",
            "TSTR divided by TRTR: 1 means the synthetic data is as useful as the real data.")
        min_text = ("The worst TSTR/TRTR ratio over every declared target (schema targets and --target): the "
                    "synthetic data is at least this useful, relative to the real data, for each prediction task.")
        if target_col is None or c_hold is None:
            why = ("no target column: declare targets in the schema, or name one with --target (target= in Python)"
                   if target_col is None else "no holdout: fit with --holdout or pass --holdout")
            for mid, text in zip(util_ids, util_text):
                metrics.append(_metric(mid, "fidelity", None, text, note=why))
            metrics.append(_metric("fidelity.ml_utility.min_ratio", "fidelity", None, min_text, note=why))
        else:
            per_target: dict[str, dict[str, Any]] = {}
            for col in target_cols:
                u = fid.ml_utility(c_train, c_hold, c_syn, columns, col, rng=rngs["utility"])
                ratio = u.tstr / u.trtr if u.tstr is not None and u.trtr is not None and u.trtr > 0 else None
                per_target[col.name] = {"task": u.task, "score": u.score_name, "tstr": u.tstr, "trtr": u.trtr,
                                        "ratio": ratio}
                if utility is None:
                    utility = u  # the first target: the legacy ids and subgroup utility
            first = per_target[target_col.name]
            det = {"target": utility.target, "task": utility.task, "score": utility.score_name,
                   "model": "HistGradientBoosting"}
            for mid, text, v in zip(util_ids, util_text, (first["tstr"], first["trtr"], first["ratio"])):
                metrics.append(_metric(mid, "fidelity", v, text, details=det,
                                       note=None if v is not None else "undefined on this holdout"))
            ratios = {n: d["ratio"] for n, d in per_target.items() if d["ratio"] is not None}
            worst = min(ratios, key=lambda n: ratios[n]) if ratios else None
            undefined = [n for n in per_target if n not in ratios]
            note = ("undefined on this holdout for every target" if worst is None else
                    f"undefined on this holdout for {undefined}, which the minimum leaves out" if undefined else None)
            metrics.append(_metric("fidelity.ml_utility.min_ratio", "fidelity",
                                   ratios[worst] if worst is not None else None, min_text, note=note,
                                   details={"worst_target": worst, "per_target": per_target,
                                            "model": "HistGradientBoosting"}))

        signs = fid.association_signs(c_train, c_syn, columns, rng=rngs["associations"])
        metrics.append(_metric("fidelity.association_signs.kept_share", "fidelity", signs.kept_share,
                               "Share of the strong relationships in the real data (a rank or phi correlation of at "
                               f"least {fid.STRONG_ASSOCIATION:g} in size between two columns, a category counting as "
                               "yes/no) whose direction the synthetic data keeps: a reversed direction would lead an "
                               "analyst to the opposite conclusion.", details=signs.details(),
                               note=None if signs.kept_share is not None else
                               "no strong association between columns in the real data"))

    # ------------------------------------------------------------------ diversity
    with timer.section("diversity"):
        cov = div.coverages(c_train, c_syn, columns)
        cat_v = float(np.mean(list(cov["category"].values()))) if cov["category"] else None
        rng_v = float(np.mean(list(cov["range"].values()))) if cov["range"] else None
        metrics.append(_metric("diversity.category_coverage", "diversity", cat_v,
                               "Share of the real categories that appear in the synthetic data (sdmetrics "
                               "CategoryCoverage, averaged over discrete columns).",
                               details={"per_column": cov["category"]},
                               note=None if cat_v is not None else "no discrete column"))
        metrics.append(_metric("diversity.range_coverage", "diversity", rng_v,
                               "How much of each numeric column's real range the synthetic data spans (sdmetrics "
                               "RangeCoverage, averaged over numeric columns).",
                               details={"per_column": cov["range"]},
                               note=None if rng_v is not None else "no numeric column"))
        if min(len(x_train), len(x_syn)) <= div.PRDC_K:
            raise ConfigError(f"evaluation needs more than {div.PRDC_K} real training rows and more than "
                              f"{div.PRDC_K} synthetic rows (the diversity metrics compare each row with its "
                              f"{div.PRDC_K} nearest neighbours); generate more synthetic rows or give more real rows")
        p = div.prdc(x_train, x_syn, rng=rngs["diversity"])
        pd_det = {"k": div.PRDC_K, "rows_real": p.n_real, "rows_synthetic": p.n_synthetic}
        metrics.append(_metric("diversity.prdc.precision", "diversity", p.precision,
                               "Share of synthetic rows that fall inside the real data's region (realism).",
                               details=pd_det))
        metrics.append(_metric("diversity.prdc.recall", "diversity", p.recall,
                               "Share of real rows that fall inside the synthetic data's region (diversity).",
                               details=pd_det))
        metrics.append(_metric("diversity.prdc.density", "diversity", p.density,
                               "How many real neighbourhoods hold each synthetic row, relative to real data itself "
                               "(1 = as dense as real; above 1 = crowded onto common cases).", details=pd_det))
        metrics.append(_metric("diversity.prdc.coverage", "diversity", p.coverage,
                               "Share of real rows that have a synthetic row nearby (Naeem et al. 2020): drops when "
                               "the generator ignores parts of the population.", details=pd_det))
        modes = div.modes(x_train, x_syn, rng=rngs["modes"])
        metrics.append(_metric("diversity.mode_coverage", "diversity", modes.coverage,
                               "Share of the real data's clusters (modes) that receive at least half of their real "
                               "share of synthetic rows; below 1 means some kinds of records were dropped (mode "
                               "collapse).", details={"n_modes": len(modes.real_share),
                                                      "reached_if_share_at_least": div.MODE_REACHED_SHARE}))
        metrics.append(_metric("diversity.mode_mass_distance", "diversity", modes.mass_distance,
                               "Total variation distance between the real and synthetic shares of the clusters "
                               "(0 = same mix of kinds of records)."))
        n_real_rows = len(c_train)
        keep = modes.real_share * n_real_rows >= MIN_CELL
        charts["modes"] = {"real_share": modes.real_share[keep].tolist(),
                           "synthetic_share": modes.synthetic_share[keep].tolist(),
                           "n_suppressed": int((~keep).sum())}
        dup_syn = div.duplicate_rate(c_syn, columns)
        metrics.append(_metric("diversity.duplicate_rate", "diversity", dup_syn,
                               "Share of synthetic rows that repeat another synthetic row (high = the generator "
                               "repeats itself).",
                               details={"real_train_duplicate_rate": div.duplicate_rate(c_train, columns)}))

    # ------------------------------------------------------------------ privacy
    with timer.section("privacy"):
        metrics.extend(_privacy_metrics(schema, columns, train, hold, synthetic, c_train, c_hold, c_syn,
                                        encoder, x_train, x_hold, x_syn, rngs, charts, is_unit_entity=unit == "entity"))

    # ------------------------------------------------------------------ bias
    with timer.section("bias"):
        bias_charts = {}
        for name in schema.sensitive:
            col = schema.column(name)
            res = bias_mod.subgroup_bias(col, c_train, c_hold if c_hold is not None else c_train.iloc[:0], c_syn,
                                         columns, utility=utility, rng=rngs["bias"])
            details = res.details()
            prefix = f"bias.{name}"
            metrics.append(_metric(f"{prefix}.representation_gap", "bias", res.representation_gap,
                                   f"Largest difference, across groups of {name}, between a group's share of the "
                                   "synthetic rows and its share of the real rows.", details=details))
            metrics.append(_metric(f"{prefix}.min_representation_ratio", "bias", res.min_representation_ratio,
                                   f"The most under-represented group of {name}: its synthetic share divided by its "
                                   "real share (1 = fair; 0.5 = the group has half the weight it should)."))
            metrics.append(_metric(f"{prefix}.max_fidelity_gap", "bias", res.max_fidelity_gap,
                                   f"Largest difference in column-shape fidelity between groups of {name} (each group's "
                                   "synthetic rows against its real rows): DP noise usually hurts small groups first.",
                                   note=None if res.max_fidelity_gap is not None else "fewer than two groups large enough to score"))
            metrics.append(_metric(f"{prefix}.max_utility_gap", "bias", res.max_utility_gap,
                                   f"Largest difference between groups of {name} in the utility lost by training on "
                                   "synthetic instead of real data (TRTR − TSTR on each group's holdout rows).",
                                   note=None if res.max_utility_gap is not None else
                                   ("no ML utility (no target or no holdout)" if utility is None else
                                    "fewer than two groups with enough holdout rows")))
            bias_charts[name] = details["groups"]
        charts["bias"] = bias_charts

    # ------------------------------------------------------------------ sequence
    if is_sequence:
        with timer.section("sequence"):
            res = seq.sequence_metrics(c_train, train[schema.entity_key].reset_index(drop=True), c_syn,
                                       synthetic[schema.entity_key].reset_index(drop=True), schema, columns)
            for mid, v, text in (
                ("sequence.length_similarity", res.length_similarity,
                 "How closely the number of events per entity matches (1 − KS distance)."),
                ("sequence.inter_event_time_similarity", res.inter_event_time_similarity,
                 "How closely the time between consecutive events matches (1 − KS distance)."),
                ("sequence.step_marginals", res.step_marginals,
                 "Column shapes of the 1st, 2nd, ... event of each history, averaged over the first steps."),
                ("sequence.autocorrelation_difference", res.autocorrelation_difference,
                 "Mean absolute difference in lag-1 autocorrelation of numeric columns within a history "
                 "(0 = the same persistence from one event to the next)."),
                ("sequence.transition_similarity", res.transition_similarity,
                 "How closely the transitions between consecutive categories within a history match "
                 "(1 − total variation of the transition pairs)."),
                ("sequence.ordering_violations", res.ordering_violations,
                 "Share of synthetic histories with events out of time order, a missing time, or split apart."),
            ):
                metrics.append(_metric(mid, "sequence", v, text, details=res.details if mid.endswith("marginals") else {},
                                       note=None if v is not None else "not computable on this data"))
            charts["sequence_steps"] = {"scores": res.details["step_scores"]}

    # ------------------------------------------------------------------ validation
    from reports.validation import validate
    with timer.section("validation"):
        summary = (manifest or {}).get("privacy", {}).get("summary", {})
        validation = validate(synthetic, schema, transformer_state=(manifest or {}).get("transformer"),
                              max_rows_per_unit=int(summary.get("max_rows_per_unit", 1) or 1))
        metrics.append(_metric("validation.success_rate", "validation", validation["success_rate"],
                               "Share of the generated great-expectations checks (types, missing values, allowed "
                               "categories, bounds, keys, time order) that the synthetic data passes.",
                               details={"n_expectations": validation["n_expectations"],
                                        "n_passed": validation["n_passed"]}))
        rules = tuple(getattr(schema, "rules", ()))
        if rules:
            from synthkit.rules import parse_rule, violations
            parsed = tuple(parse_rule(r) for r in rules)
            kinds = {c.name: c.kind for c in schema.columns}
            formats = {c.name: c.format for c in schema.columns}  # dates are judged as read in their format
            syn_rates = (violations(synthetic, parsed, kinds, formats).mean(axis=1) if len(synthetic)
                         else np.zeros(len(parsed)))
            real_rates = violations(train, parsed, kinds, formats).mean(axis=1) if len(train) else np.zeros(len(parsed))
            metrics.append(_metric(
                "validation.rules.violation_rate", "validation", float(syn_rates.max()),
                "Largest share of synthetic rows that break a rule declared in the schema (sampling "
                "enforces every rule, so anything above 0 is a defect; the real data's share is listed "
                "beside it: a rule the real data breaks is worth a second look).",
                details={"rules": [{"rule": r, "synthetic_share": round(float(s), 6), "real_share": round(float(q), 6)}
                                   for r, s, q in zip(rules, syn_rates, real_rates)]}))

    privacy = dict((manifest or {}).get("privacy", {}).get("summary") or {
        "private": None, "guarantee": "unknown: no model bundle was given", "unit": unit, "events": []})
    model = ({"class": manifest["model"].get("class"), "name": manifest["model"].get("name"),
              "hyperparameters": manifest["model"].get("hyperparameters", {}), "manifest_sha256": manifest_sha,
              "weights_sha256": (manifest.get("files") or {}).get("weights.safetensors"),
              "versions": manifest.get("versions", {}), "training": manifest.get("training", {})}
             if manifest is not None else {"class": None, "note": "no model bundle was given"})
    data = {"kind": "sequence" if is_sequence else "table", "unit": unit,
            "n_train": len(train), "n_holdout": len(hold) if hold is not None else 0, "n_synthetic": len(synthetic),
            "n_columns_evaluated": len(columns), "holdout_source": holdout_source, "target": target,
            "targets": [c.name for c in target_cols],
            "sensitive": list(schema.sensitive), "seed": seed, "seconds_per_section": timer.seconds}
    if schema.entity_key:
        data.update({"n_train_entities": int(train[schema.entity_key].nunique()),
                     "n_holdout_entities": int(hold[schema.entity_key].nunique()) if hold is not None else 0,
                     "n_synthetic_entities": int(synthetic[schema.entity_key].nunique())})
    return Report(format_version=REPORT_FORMAT_VERSION, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  model=model, privacy=privacy, data=data, metrics=metrics, validation=validation, charts=charts)


# ====================================================================== privacy section
def _privacy_metrics(schema: Schema, columns: list[Column], train: pd.DataFrame, hold: pd.DataFrame | None,
                     synthetic: pd.DataFrame, c_train: pd.DataFrame, c_hold: pd.DataFrame | None, c_syn: pd.DataFrame,
                     encoder: Encoder, x_train: np.ndarray, x_hold: np.ndarray | None, x_syn: np.ndarray,
                     rngs: dict[str, np.random.Generator], charts: dict[str, Any], *, is_unit_entity: bool) -> list[Metric]:
    out: list[Metric] = []
    unit_word = "entity (whole history)" if is_unit_entity else "row"
    # exact copies: whole rows, or whole histories when the unit is the entity
    if is_unit_entity:
        ek = schema.entity_key
        syn_keys = seq.history_keys(c_syn, synthetic[ek].reset_index(drop=True), schema, columns)
        tr_keys = seq.history_keys(c_train, train[ek].reset_index(drop=True), schema, columns)
        ho_keys = (seq.history_keys(c_hold, hold[ek].reset_index(drop=True), schema, columns)
                   if c_hold is not None else np.zeros(0, np.uint64))
        copy_train, copy_hold = float(np.isin(syn_keys, tr_keys).mean()), float(np.isin(syn_keys, ho_keys).mean())
        hold_rate = float(np.isin(ho_keys, tr_keys).mean()) if len(ho_keys) else None
        train_rate = priv.duplicate_share(tr_keys)
        base = priv.copy_base_rate(train_rate, hold_rate)
    else:
        copy_train, copy_hold = priv.exact_copy_rates(c_train, c_hold if c_hold is not None else c_train.iloc[:0],
                                                      c_syn, columns)
        hold_rate = priv.holdout_copy_rate(c_train, c_hold, columns) if c_hold is not None else None
        train_rate = priv.train_copy_base_rate(c_train, columns)
        base = priv.copy_base_rate(train_rate, hold_rate)
    out.append(_metric("privacy.exact_copies.rate", "privacy", copy_train,
                       f"Share of synthetic {'histories' if is_unit_entity else 'rows'} that are exact copies of a "
                       "training record (should be near the holdout rate, which is what coincidence alone gives).",
                       details={"holdout_copy_rate": copy_hold if c_hold is not None else None, "unit": unit_word,
                                "holdout_train_copy_rate": hold_rate, "train_duplicate_rate": train_rate,
                                "base_rate": base}))
    records = "histories" if is_unit_entity else "rows"
    n_syn_units = len(syn_keys) if is_unit_entity else len(c_syn)
    n_train_units = len(tr_keys) if is_unit_entity else len(c_train)
    excess, excess_ci = priv.copy_excess(copy_train, base, n_synthetic=n_syn_units, n_train=n_train_units)
    out.append(_metric("privacy.exact_copies.excess", "privacy", excess,
                       f"Share of synthetic {records} that copy a training record, minus the share of training "
                       f"{records} that equal another training record (the leave-one-out copy rate) or, when smaller, "
                       f"the share of holdout {records} that equal a training record: the copies coincidence alone "
                       "gives in a table of few, coarse columns. 0 or below: no more copies than a fresh real "
                       "sample; a copy of the training data scores 1 minus that base rate. Taking the smaller of "
                       "the two, a holdout that overlaps train and duplicate training records each excuse nothing; "
                       "without a holdout the base is 0 (every copy counts). The interval is the sampling error "
                       "of the two shares, for information (the gate reads the value).",
                       ci=excess_ci, details={"copy_rate": copy_train, "base_rate": base,
                                              "train_duplicate_rate": train_rate,
                                              "holdout_train_copy_rate": hold_rate, "unit": unit_word}))

    # the attack space: rows, or one profile per entity
    if is_unit_entity:
        ek = schema.entity_key
        p_train, pcols = seq.entity_profiles(c_train, train[ek].reset_index(drop=True), schema, columns)
        p_syn, _ = seq.entity_profiles(c_syn, synthetic[ek].reset_index(drop=True), schema, columns)
        p_hold = (seq.entity_profiles(c_hold, hold[ek].reset_index(drop=True), schema, columns)[0]
                  if c_hold is not None else None)
        enc = Encoder(pcols).fit(p_train)
        a_train, a_syn = p_train, p_syn
        a_hold = p_hold
        e_train, e_syn = enc.transform(p_train), enc.transform(p_syn)
        e_hold = enc.transform(p_hold) if p_hold is not None else None
        acols = pcols
        qi = [c for c in pcols if c.name in schema.quasi_identifiers]
        sensitive = [c for c in pcols if c.name in schema.sensitive]
    else:
        enc, a_train, a_syn, a_hold = encoder, c_train, c_syn, c_hold
        e_train, e_syn, e_hold = x_train, x_syn, x_hold
        acols = columns
        qi = [c for c in columns if c.name in schema.quasi_identifiers]
        sensitive = [c for c in columns if c.name in schema.sensitive]

    no_hold = "no holdout: fit with --holdout or pass --holdout, so leakage can be told from generalisation"
    ids_texts = {
        "privacy.dcr.train_closer_share": (
            f"Share of synthetic {unit_word}s closer to a training record than to a holdout record, on the "
            "scale of equal-sized train and holdout: 0.5 is ideal; near 1 means the model reproduces the people it was trained on."),
        "privacy.dcr.distance_ratio": (
            "Median distance from synthetic records to the closest training record, divided by the same to the "
            "holdout: 1 is ideal; near 0 means synthetic records sit on top of training records."),
        "privacy.membership_inference.auc": (
            "A membership-inference attack (is this person in the training data? guessed from how close the "
            "nearest synthetic record is), as ROC AUC: 0.5 means the attacker learns nothing, 1 that every "
            "member is exposed."),
        "privacy.singling_out.risk": (
            "Singling-out risk (Anonymeter method): how much more often predicates built from synthetic records "
            "isolate exactly one training person than one holdout person; 0 = no risk beyond chance."),
        "privacy.attribute_inference.risk": (
            "Attribute-inference risk (Anonymeter method): how much better an attacker who knows some of a "
            "person's attributes guesses a secret one from the synthetic data for training people than for "
            "holdout people; 0 = no risk beyond what the population reveals. The secret column whose risk is most "
            "certainly above zero (highest lower confidence bound) is shown."),
    }
    if a_hold is None or len(a_hold) < 2:
        for mid, text in ids_texts.items():
            out.append(_metric(mid, "privacy", None, text, note=no_hold))
        return out

    rng = rngs["privacy"]
    n_cmp = min(len(a_train), len(a_hold), MAX_ATTACK_UNITS)
    tr_idx = _sample_idx(len(a_train), n_cmp, rng)
    ho_idx = _sample_idx(len(a_hold), n_cmp, rng)
    d = priv.dcr(e_train, e_hold, e_syn, train_sample=e_train[_sample_idx(len(e_train), len(e_hold), rng)])
    out.append(_metric("privacy.dcr.train_closer_share", "privacy", d.train_closer_share,
                       ids_texts["privacy.dcr.train_closer_share"],
                       details={"ideal": 0.5, "raw_share_closer_to_train": d.raw_share,
                                "train_to_holdout_size_ratio": len(e_train) / len(e_hold),
                                "median_dcr_train": d.median_train,
                                "median_dcr_holdout": d.median_holdout}))
    out.append(_metric("privacy.dcr.distance_ratio", "privacy", min(d.distance_ratio, 10.0),
                       ids_texts["privacy.dcr.distance_ratio"], details={"ideal": 1.0}))
    top = float(np.quantile(np.r_[d.train_distances, d.holdout_distances], 0.99)) or 1.0
    edges = np.linspace(0.0, top, 31)
    charts["dcr"] = {"edges": edges.tolist(),
                     "train": (np.histogram(np.clip(d.train_distances, 0, top), edges)[0] / len(d.train_distances)).tolist(),
                     "holdout": (np.histogram(np.clip(d.holdout_distances, 0, top), edges)[0] / len(d.holdout_distances)).tolist()}

    m = priv.membership_inference(e_train[tr_idx], e_hold[ho_idx], e_syn)
    out.append(_metric("privacy.membership_inference.auc", "privacy", m.auc, ids_texts["privacy.membership_inference.auc"],
                       ci=m.ci, details={"ideal": 0.5, "members": m.n_members, "non_members": m.n_non_members,
                                         "attack": "distance to the closest synthetic record", "ci": "DeLong 95%"}))
    charts["membership_roc"] = m.roc

    so = priv.singling_out(a_train.iloc[tr_idx].reset_index(drop=True), a_hold.iloc[ho_idx].reset_index(drop=True),
                           a_syn, acols, rng=rngs["singling_out"])
    out.append(_metric("privacy.singling_out.risk", "privacy", so.value, ids_texts["privacy.singling_out.risk"],
                       ci=so.ci, details={**so.summary(), "informative": so.attack_beats_baseline},
                       note=None if so.attack_beats_baseline else
                       "the attack does not beat random guessing; the risk estimate is not informative"))

    # attribute inference: secrets and what the attacker knows
    if qi:
        aux_all = qi
        secrets = sensitive + [c for c in acols if c not in qi and c not in sensitive]
    else:
        aux_all = None
        secrets = sensitive + [c for c in acols if c not in sensitive]
    secrets = secrets[:MAX_SECRETS]
    risks: dict[str, priv.Risk] = {}
    for secret in secrets:
        aux = [c for c in (aux_all or acols) if c.name != secret.name]
        if not aux:
            continue
        risks[secret.name] = priv.attribute_inference(a_train.iloc[tr_idx].reset_index(drop=True),
                                                      a_hold.iloc[ho_idx].reset_index(drop=True), a_syn, enc,
                                                      secret, aux, rng=rngs["attribute_inference"])
    if risks:
        # the worst secret is the one whose risk is most certainly above zero (highest lower
        # confidence bound): a max over point estimates would pick noise when 1 − control is small
        worst = max(risks, key=lambda k: (risks[k].ci[0], risks[k].value))
        r = risks[worst]
        out.append(_metric("privacy.attribute_inference.risk", "privacy", r.value,
                           ids_texts["privacy.attribute_inference.risk"], ci=r.ci,
                           details={"worst_secret": worst, "attacker_knows": "quasi-identifiers" if qi else "all other columns",
                                    "per_secret": {k: v.summary() for k, v in risks.items()}}))
    else:
        out.append(_metric("privacy.attribute_inference.risk", "privacy", None, ids_texts["privacy.attribute_inference.risk"],
                           note="no column to attack"))
    return out


# ====================================================================== charts
def _marginal_charts(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column]) -> dict[str, Any]:
    """Real vs synthetic distribution of each column, aggregates only: numeric bins span the
    public bounds or the synthetic range (never the real minimum or maximum); categories
    shown are public or present in the synthetic data (never a real-only value); a real
    cell of fewer than MIN_CELL rows is suppressed (shown as missing)."""
    out: dict[str, Any] = {}
    n_r, n_s = max(len(real), 1), max(len(synthetic), 1)
    for col in columns:
        r, s = real[col.name], synthetic[col.name]
        if is_numeric(col):
            sv = s.to_numpy(dtype=float)
            sv = sv[np.isfinite(sv)]
            if col.bounds is not None and col.kind != "datetime":
                lo, hi = float(col.bounds[0]), float(col.bounds[1])
            elif len(sv):
                lo, hi = (float(v) for v in np.quantile(sv, [0.005, 0.995]))
            else:
                continue
            if not hi > lo:
                hi = lo + 1.0
            edges = np.linspace(lo, hi, 21)
            rv = r.to_numpy(dtype=float)
            rv = rv[np.isfinite(rv)]
            rc = np.histogram(np.clip(rv, lo, hi), edges)[0]
            sc = np.histogram(np.clip(sv, lo, hi), edges)[0]
            out[col.name] = {"kind": "numeric", "edges": edges.tolist(),
                             "real": [c / n_r if c >= MIN_CELL or c == 0 else None for c in rc],
                             "synthetic": (sc / n_s).tolist(), "datetime": col.kind == "datetime"}
        else:
            public = list(col.categories or ()) + (["True", "False"] if col.kind == "boolean" else [])
            s_counts = s.fillna("(missing)").astype(str).value_counts()
            r_counts = r.fillna("(missing)").astype(str).value_counts()
            cats = list(dict.fromkeys(public + [c for c in s_counts.index[:20]]))[:25]
            real_shown = [int(r_counts.get(c, 0)) for c in cats]
            rest_real = len(real) - sum(real_shown)
            out[col.name] = {"kind": "discrete", "categories": cats + ["(other)"],
                             "real": [c / n_r if c >= MIN_CELL or c == 0 else None for c in real_shown]
                             + [rest_real / n_r if rest_real >= MIN_CELL else None],
                             "synthetic": [int(s_counts.get(c, 0)) / n_s for c in cats]
                             + [(len(synthetic) - sum(int(s_counts.get(c, 0)) for c in cats)) / n_s]}
    return out
