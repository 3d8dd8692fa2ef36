"""Brackets for every evaluation metric (STYLE.md "Tests that mean something", kind 4).

Synthetic frames are built directly (no model is trained here):
- `independent`: fresh draws from the same generating distribution → near-ideal scores;
- `copy`: the train rows themselves → maximal leakage (copies, DCR share 1, MIA AUC 1);
- `shuffled`: every column permuted independently → shapes kept, pair trends destroyed;
- `drop_mode` / `drop_category`: a mixture component or a category never generated →
  caught by mode and category coverage;
- `under_group`: one sensitive group kept at a fifth of its share → caught by bias.
Train and holdout have equal sizes here so the privacy shares have their 50% ideal
without any correction; `test_dcr_size_correction` checks the unequal-size case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import reports
from conftest_data import nmes
from reports.model import Report, is_known_metric_id
from synthkit.schema import Schema

N = 1500


def mixture(n: int, seed: int, *, drop_mode: bool = False, drop_category: bool = False) -> pd.DataFrame:
    """Three 2-D Gaussian clusters, a category tied to the cluster, a sensitive group
    (15%) that shifts x, an age, and a flag predictable from x."""
    rng = np.random.default_rng(seed)
    comp = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    if drop_mode:
        comp = np.where(comp == 2, 0, comp)
    means = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 6.0]])
    xy = means[comp] + rng.normal(size=(n, 2))
    group = np.where(rng.random(n) < 0.15, "b", "a")
    cat = np.array(["x", "y", "z"])[(comp + (rng.random(n) < 0.2)) % 3]
    if drop_category:
        cat = np.where(cat == "z", "x", cat)
    return pd.DataFrame({"x": xy[:, 0] + (group == "b"), "y": xy[:, 1], "cat": cat, "group": group,
                         "age": rng.integers(18, 90, size=n), "flag": xy[:, 0] + rng.normal(size=n) > 2})


SCHEMA = Schema.from_dict({"sensitive": ["group"], "columns": {
    "x": "continuous", "y": "continuous", "cat": {"kind": "categorical", "categories": ["x", "y", "z"]},
    "group": {"kind": "categorical", "categories": ["a", "b"]}, "age": {"kind": "integer", "bounds": [0, 120]},
    "flag": "boolean"}})


def shuffle_columns(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})


def under_represent(frame: pd.DataFrame, group: str, keep: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mask = (frame["group"] == group).to_numpy() & (rng.random(len(frame)) > keep)
    return frame[~mask].reset_index(drop=True)


TRAIN, HOLDOUT = mixture(N, 1), mixture(N, 2)
SYNTHETIC = {
    "independent": mixture(N, 3),
    "copy": TRAIN.copy(),
    "shuffled": shuffle_columns(mixture(N, 3), 4),
    "drop_mode": mixture(N, 5, drop_mode=True),
    "drop_category": mixture(N, 6, drop_category=True),
    "under_group": under_represent(mixture(int(N * 1.2), 7), "b", keep=0.2, seed=8),
}


@pytest.fixture(scope="module")
def results() -> dict[str, Report]:
    # `flag` named explicitly, `y` declared in the schema: utility is scored for both
    schema = SCHEMA.with_targets(["y"])
    return {name: reports.evaluate(real=TRAIN, synthetic=syn, holdout=HOLDOUT, schema=schema, target="flag", seed=0)
            for name, syn in SYNTHETIC.items()}


def v(report: Report, metric_id: str) -> float:
    value = report.metric(metric_id).value
    assert value is not None, f"{metric_id} was not computed: {report.metric(metric_id).note}"
    return value


# ------------------------------------------------------------------ fidelity
def test_quality_brackets(results):
    ind, shuf = results["independent"], results["shuffled"]
    assert v(ind, "fidelity.quality.column_shapes") > 0.95
    assert v(ind, "fidelity.quality.column_pair_trends") > 0.93
    # shuffling keeps every column's distribution ...
    assert v(shuf, "fidelity.quality.column_shapes") > 0.95
    # ... and destroys the relations between columns: every related pair loses, and so does
    # the mean over all 15 pairs (5 of which, with age or group, are unrelated anyway)
    assert v(shuf, "fidelity.quality.column_pair_trends") < v(ind, "fidelity.quality.column_pair_trends") - 0.07

    def pair(report: Report, a: str, b: str) -> float:
        chart = report.charts["pair_trends"]
        return chart["matrix"][chart["columns"].index(a)][chart["columns"].index(b)]

    for a, b in (("x", "cat"), ("y", "cat"), ("x", "flag")):
        assert pair(shuf, a, b) < pair(ind, a, b) - 0.15, (a, b)
        assert pair(ind, a, b) > 0.9, (a, b)
    # every pair is counted, numeric pairs included (sdmetrics' QualityReport leaves them NaN)
    det = ind.metric("fidelity.quality.column_pair_trends").details
    assert det["n_pairs"] == det["n_pairs_scored"] == 6 * 5 // 2


def test_detection_brackets(results):
    assert abs(v(results["independent"], "fidelity.detection.auc") - 0.5) < 0.05
    assert v(results["shuffled"], "fidelity.detection.auc") > 0.85
    assert v(results["shuffled"], "fidelity.detection.score") < 0.3


def test_ml_utility_brackets(results):
    ind, shuf = results["independent"], results["shuffled"]
    assert v(ind, "fidelity.ml_utility.ratio") == pytest.approx(1.0, abs=0.03)
    assert v(ind, "fidelity.ml_utility.trtr") > 0.85
    # shuffled data keeps no link between x and flag: the model trained on it is a coin toss
    assert v(shuf, "fidelity.ml_utility.tstr") < 0.6
    assert v(shuf, "fidelity.ml_utility.ratio") < 0.7


def test_ml_utility_per_declared_target(results):
    ind, shuf = results["independent"], results["shuffled"]
    for report in (ind, shuf):
        m = report.metric("fidelity.ml_utility.min_ratio")
        per = m.details["per_target"]
        assert list(per) == ["flag", "y"] and report.data["targets"] == ["flag", "y"]
        # the legacy ids describe the first target, so existing policies keep their meaning
        assert per["flag"]["ratio"] == v(report, "fidelity.ml_utility.ratio")
        assert per["flag"]["tstr"] == v(report, "fidelity.ml_utility.tstr")
        assert per["y"]["task"] == "regression" and per["flag"]["task"] == "binary"
        assert m.value == min(d["ratio"] for d in per.values())
        assert m.details["worst_target"] == min(per, key=lambda n: per[n]["ratio"])
    assert v(ind, "fidelity.ml_utility.min_ratio") > 0.9
    # y depends on the cluster (x, cat): shuffled columns leave nothing to learn for either target
    assert v(shuf, "fidelity.ml_utility.min_ratio") < 0.5
    assert shuf.metric("fidelity.ml_utility.min_ratio").details["per_target"]["y"]["ratio"] < 0.5


def test_ml_utility_absent_without_target():
    r = reports.evaluate(real=TRAIN.head(400), synthetic=SYNTHETIC["independent"].head(400),
                         holdout=HOLDOUT.head(400), schema=SCHEMA, seed=0)
    for mid in ("fidelity.ml_utility.tstr", "fidelity.ml_utility.min_ratio"):
        m = r.metric(mid)
        assert m.value is None and "target" in m.note


def test_every_unusable_target_is_named_in_one_error():
    from synthkit.errors import ConfigError
    schema = Schema.from_dict({"columns": {"pid": "identifier", "x": "continuous", "flag": "boolean"}})
    frame = TRAIN[["x", "flag"]].head(50).assign(pid=range(50))
    with pytest.raises(ConfigError) as info:
        reports.evaluate(real=frame, synthetic=frame, schema=schema, target="pid", targets=["ghost", "x"], seed=0)
    assert "'pid'" in str(info.value) and "'ghost'" in str(info.value) and "'x'" not in str(info.value).split(";")[0]


def test_association_signs_brackets(results):
    mid = "fidelity.association_signs.kept_share"
    assert v(results["copy"], mid) == 1.0
    assert v(results["independent"], mid) == 1.0
    det = results["shuffled"].metric(mid).details
    # x-flag, y-cat, ... are strong in the mixture; shuffled, each synthetic r ~ N(0, 1/sqrt(1500))
    # passes the 0.05 bar with the real sign with probability 0.026, so 3 or more of the
    # strong associations kept would have probability below 0.002
    assert det["n_strong"] >= 6
    assert det["n_kept"] <= 2 and v(results["shuffled"], mid) <= 2 / det["n_strong"]
    assert results["copy"].metric(mid).details["n_flipped"] == 0


# ------------------------------------------------------------------ diversity
def test_coverage_and_modes_brackets(results):
    ind, mode, cat = results["independent"], results["drop_mode"], results["drop_category"]
    assert v(ind, "diversity.category_coverage") == 1.0
    assert v(ind, "diversity.mode_coverage") == 1.0
    assert v(ind, "diversity.mode_mass_distance") < 0.05
    # one of three categories of `cat` is never generated: coverage over 3 discrete columns
    # (cat, group, flag) = (2/3 + 1 + 1) / 3
    assert v(cat, "diversity.category_coverage") == pytest.approx((2 / 3 + 1 + 1) / 3)
    # the third cluster (20% of the mass) is gone
    assert v(mode, "diversity.mode_coverage") < 0.95
    assert v(mode, "diversity.mode_mass_distance") > 0.12
    assert v(mode, "diversity.range_coverage") < v(ind, "diversity.range_coverage") - 0.05


def test_prdc_brackets(results):
    ind, mode = results["independent"], results["drop_mode"]
    for name in ("precision", "recall", "coverage"):
        assert v(ind, f"diversity.prdc.{name}") > 0.9
    assert v(ind, "diversity.prdc.density") == pytest.approx(1.0, abs=0.15)
    # the dropped mode: real rows there have no synthetic neighbour
    assert v(mode, "diversity.prdc.coverage") < v(ind, "diversity.prdc.coverage") - 0.1
    assert v(mode, "diversity.prdc.recall") < v(ind, "diversity.prdc.recall") - 0.03


def test_duplicate_rate_brackets(results):
    assert v(results["independent"], "diversity.duplicate_rate") == 0.0
    doubled = pd.concat([TRAIN.head(500), TRAIN.head(500)], ignore_index=True)
    r = reports.evaluate(real=TRAIN, synthetic=doubled, holdout=HOLDOUT, schema=SCHEMA, seed=0)
    assert v(r, "diversity.duplicate_rate") == pytest.approx(0.5)


# ------------------------------------------------------------------ privacy
def test_exact_copies_brackets(results):
    assert v(results["copy"], "privacy.exact_copies.rate") == 1.0
    assert v(results["independent"], "privacy.exact_copies.rate") == 0.0
    assert results["copy"].metric("privacy.exact_copies.rate").details["holdout_copy_rate"] == 0.0


def test_dcr_brackets(results):
    assert v(results["copy"], "privacy.dcr.train_closer_share") > 0.99
    # independent draws: the share is a mean of N Bernoulli(0.5): 4 standard errors = 4 * 0.5 / sqrt(N)
    assert abs(v(results["independent"], "privacy.dcr.train_closer_share") - 0.5) < 4 * 0.5 / np.sqrt(N)
    assert v(results["copy"], "privacy.dcr.distance_ratio") < 0.05
    assert v(results["independent"], "privacy.dcr.distance_ratio") == pytest.approx(1.0, abs=0.15)


def test_dcr_size_correction():
    """Train four times the holdout: the raw share of independent draws closer to train is
    about 0.8, the reported (equal-size scale) share about 0.5; a copy still scores 1."""
    big = mixture(4 * 600, 11)
    hold = mixture(600, 12)
    ind = reports.evaluate(real=big, synthetic=mixture(1200, 13), holdout=hold, schema=SCHEMA, seed=0)
    cp = reports.evaluate(real=big, synthetic=big.sample(1200, random_state=0), holdout=hold, schema=SCHEMA, seed=0)
    m = ind.metric("privacy.dcr.train_closer_share")
    assert m.details["raw_share_closer_to_train"] == pytest.approx(0.8, abs=0.05)
    assert m.value == pytest.approx(0.5, abs=0.08)
    assert v(cp, "privacy.dcr.train_closer_share") > 0.99


def test_membership_inference_brackets(results):
    cp = results["copy"].metric("privacy.membership_inference.auc")
    ind = results["independent"].metric("privacy.membership_inference.auc")
    assert cp.value > 0.99 and cp.ci[0] > 0.95
    assert ind.ci[0] < 0.5 + 0.02 and ind.ci[1] > 0.5 - 0.02  # the CI holds (or nearly holds) the ideal
    assert abs(ind.value - 0.5) < 0.05
    assert ind.ci[1] - ind.ci[0] < 0.1


def test_singling_out_brackets(results):
    cp = results["copy"].metric("privacy.singling_out.risk")
    ind = results["independent"].metric("privacy.singling_out.risk")
    assert cp.ci[0] > 0.5
    assert cp.details["attack_beats_baseline"]
    assert ind.value < 0.05


def test_attribute_inference_brackets(results):
    cp = results["copy"].metric("privacy.attribute_inference.risk")
    ind = results["independent"].metric("privacy.attribute_inference.risk")
    # the attacker knows every other column: with a copy the nearest synthetic row is the target itself
    assert cp.ci[0] > 0.5
    # independent draws: no secret's risk is significantly above zero (1 − control is small for
    # predictable secrets such as flag, which widens their intervals; the lower bound is what counts)
    assert ind.ci[0] < 0.02
    for secret in ind.details["per_secret"].values():
        assert secret["attack_rate"] - secret["control_rate"] < 0.05
    assert set(cp.details["per_secret"]) == {"group", "x", "y", "cat", "age", "flag"}


def test_privacy_metrics_need_a_holdout():
    r = reports.evaluate(real=TRAIN, synthetic=SYNTHETIC["copy"], schema=SCHEMA, seed=0)
    for mid in ("privacy.dcr.train_closer_share", "privacy.membership_inference.auc", "privacy.singling_out.risk",
                "privacy.attribute_inference.risk"):
        m = r.metric(mid)
        assert m.value is None and "holdout" in m.note
    assert r.metric("privacy.exact_copies.rate").value == 1.0  # copies need no holdout


# ------------------------------------------------------------------ bias
def test_bias_brackets(results):
    ind, under = results["independent"], results["under_group"]
    assert v(ind, "bias.group.min_representation_ratio") == pytest.approx(1.0, abs=0.15)
    assert v(ind, "bias.group.representation_gap") < 0.03
    # group b kept at a fifth: its synthetic share is about 0.2 * 0.15 / (0.85 + 0.2 * 0.15)
    expected = 0.2 * 0.15 / (0.85 + 0.2 * 0.15) / 0.15
    assert v(under, "bias.group.min_representation_ratio") == pytest.approx(expected, abs=0.08)
    assert v(under, "bias.group.representation_gap") > 0.08
    groups = {g["group"]: g for g in under.metric("bias.group.representation_gap").details["groups"]}
    assert set(groups) == {"a", "b"}


def test_bias_fidelity_gap_catches_a_distorted_group(results):
    """Group b's rows shuffled column-wise inside the group: its fidelity stays (shapes),
    so shift x for group b only: its subgroup fidelity drops, group a's does not."""
    syn = mixture(N, 3)
    b = syn["group"] == "b"
    syn.loc[b, "x"] = syn.loc[b, "x"] + 3.0
    r = reports.evaluate(real=TRAIN, synthetic=syn, holdout=HOLDOUT, schema=SCHEMA, target="flag", seed=0)
    assert v(r, "bias.group.max_fidelity_gap") > v(results["independent"], "bias.group.max_fidelity_gap") + 0.05
    assert v(r, "bias.group.max_utility_gap") > v(results["independent"], "bias.group.max_utility_gap")


# ------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def nmes_parts():
    import synthkit
    from pathlib import Path
    schema = Schema.load(Path(synthkit.__file__).parent / "data" / "nmes1988.schema.yaml")
    df = nmes(3600, seed=0)
    return schema, df.iloc[:1200].reset_index(drop=True), df.iloc[1200:2400].reset_index(drop=True), \
        df.iloc[2400:].reset_index(drop=True)


def test_real_table_copy_vs_disjoint_sample(nmes_parts):
    """NMES1988: a disjoint sample of the same survey is 'independent draws'; the train
    rows themselves are the copy."""
    schema, train, hold, other = nmes_parts
    ind = reports.evaluate(real=train, synthetic=other, holdout=hold, schema=schema, target="visits", seed=0)
    cp = reports.evaluate(real=train, synthetic=train, holdout=hold, schema=schema, target="visits", seed=0)
    assert v(ind, "fidelity.quality.column_shapes") > 0.93
    assert v(ind, "fidelity.quality.column_pair_trends") > 0.9
    assert abs(v(ind, "privacy.membership_inference.auc") - 0.5) < 0.05
    assert abs(v(ind, "privacy.dcr.train_closer_share") - 0.5) < 0.06
    assert v(ind, "privacy.exact_copies.rate") < 0.01
    assert v(cp, "privacy.exact_copies.rate") == 1.0
    assert v(cp, "privacy.membership_inference.auc") > 0.99
    assert v(cp, "privacy.dcr.train_closer_share") > 0.95
    # sensitive attributes from the schema each get their section
    # two samples of 1,200: a share differs by at most 4 standard errors, 4·sqrt(2·¼/1200)
    for attr in ("gender", "afam"):
        assert v(ind, f"bias.{attr}.representation_gap") < 4 * np.sqrt(2 * 0.25 / 1200)
    assert v(ind, "validation.success_rate") == 1.0


# ------------------------------------------------------------------ the report itself
def test_every_emitted_id_is_documented(results):
    for report in results.values():
        for m in report.metrics:
            assert is_known_metric_id(m.id), m.id


def test_seeded_evaluation_is_reproducible():
    a = reports.evaluate(real=TRAIN.head(500), synthetic=SYNTHETIC["independent"].head(500), holdout=HOLDOUT.head(500),
                         schema=SCHEMA, target="flag", seed=3)
    b = reports.evaluate(real=TRAIN.head(500), synthetic=SYNTHETIC["independent"].head(500), holdout=HOLDOUT.head(500),
                         schema=SCHEMA, target="flag", seed=3)
    assert [(m.id, m.value, m.ci) for m in a.metrics] == [(m.id, m.value, m.ci) for m in b.metrics]


def test_pair_trends_score_a_synthetic_pair_at_the_largest_doubles_zero_not_an_error():
    """Synthetic values near 1e308 (their spread overflows): sdmetrics refused the pair as
    constant with ConstantInputError, which reached the user as an internal error."""
    from reports.fidelity import pair_trends
    from synthkit.schema import Column

    rng = np.random.default_rng(0)
    real = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    real["b"] += real["a"]
    synthetic = pd.DataFrame({"a": np.full(200, 1e308), "b": rng.normal(size=200)})  # its mean overflows: std nan
    cols = [Column(name="a", kind="continuous", nullable=False), Column(name="b", kind="continuous", nullable=False)]
    assert pair_trends(real, synthetic, cols) == {("a", "b"): 0.0}
    assert pair_trends(real, real, cols)[("a", "b")] == pytest.approx(1.0)  # control
