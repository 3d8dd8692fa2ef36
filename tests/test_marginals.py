"""DP two-way marginals along a tree and sampling conditioned on them (synthkit.marginals).

Known structure on small seeded tables: a deterministic rule (relationship "husband" ⇒
sex "male"), a target that depends on marital status (P(high | married) = 0.45 against
0.05), and a numeric column whose level follows the target. The calibrated model must
keep all three; the same model without the pair calibration (the negative control, what
main did before) must break the rule and the target relation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit import DPTVAE, PrivacyBudget, Schema, infer_schema, load
from synthkit.marginals import PairTree, _conditional_quantiles, _spanning_tree, n_select_pairs

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    married = rng.random(n) < 0.5
    male = rng.random(n) < 0.6
    relationship = np.where(married, np.where(male, "husband", "wife"),
                            rng.choice(["own-child", "unmarried"], size=n))
    high = rng.random(n) < np.where(married, 0.45, 0.05)
    hours = np.round(rng.normal(np.where(high, 46, 36), 6)).clip(1, 99).astype(int)
    region = rng.choice(["north", "south", "east", "west"], size=n)
    return pd.DataFrame({"marital": np.where(married, "married", "never-married"),
                         "relationship": relationship, "sex": np.where(male, "male", "female"),
                         "region": region, "hours": hours, "income": np.where(high, "high", "low")})


def _schema(frame: pd.DataFrame) -> Schema:
    return infer_schema(frame, targets=["income"])


@pytest.fixture(scope="module")
def fitted():
    real = _table(6000, seed=1)
    schema = _schema(real)
    good = DPTVAE(epochs=3, batch_size=500, seed=0, device="cpu").fit(real, schema=schema, budget=BUDGET)
    control = DPTVAE(epochs=3, batch_size=500, seed=0, device="cpu", calibrate_pairs=False).fit(
        real, schema=schema, budget=BUDGET)
    return real, good, control


def _violations(frame: pd.DataFrame) -> float:
    """Share of husbands who are not male (0 in the real data)."""
    husbands = frame["relationship"] == "husband"
    return float((frame.loc[husbands, "sex"] != "male").mean()) if husbands.any() else 1.0


def _gap(frame: pd.DataFrame) -> float:
    """P(high | married) − P(high | never married): 0.40 in the generating model."""
    high = frame["income"] == "high"
    return float(high[frame["marital"] == "married"].mean() - high[frame["marital"] == "never-married"].mean())


def test_known_structure_is_recovered_and_the_control_loses_it(fitted):
    real, good, control = fitted
    syn, ctl = good.sample(6000, seed=3), control.sample(6000, seed=3)
    # the rule: real 0; the DP tables' cell (husband, female) is noise around 0, clipped
    # and shrunk, so a few per cent at most
    assert _violations(real) == 0.0
    assert _violations(syn) < 0.05
    assert _violations(ctl) > 0.2          # the control draws sex independently of relationship
    # the target relation: sampling error of a difference of two shares of ~3,000 rows
    # each is ~0.012 (sd); DP noise at eps 3 on 6,000 rows adds about as much
    assert abs(_gap(syn) - _gap(real)) < 0.08
    assert _gap(ctl) < 0.2
    # a numeric column that follows the target keeps its direction and its margin
    hi, lo = syn.loc[syn.income == "high", "hours"].mean(), syn.loc[syn.income == "low", "hours"].mean()
    assert hi - lo > 5                      # 10 in the generating model
    assert abs(syn["hours"].median() - real["hours"].median()) <= 2
    assert syn["hours"].isna().mean() < 0.02  # nullable by inference; the DP null share is near 0


def test_target_is_the_root_and_every_column_has_a_parent(fitted):
    _, good, _ = fitted
    tree = good.pairs_
    assert tree.root == "income"
    children = [c for _, c in tree.edges_]
    assert sorted(children + ["income"]) == sorted(good.transformer_.transforms)
    # a parent is always drawn before its child
    placed = {"income"}
    for _, child in tree.edges_:
        assert set(tree.parents_[child]) <= placed
        placed.add(child)


def test_ledger_charges_both_releases_with_their_sensitivities(fitted):
    _, good, _ = fitted
    d = len(good.transformer_.transforms)
    events = {e["name"]: e for e in good.ledger_.to_dict()["events"] if e["name"].startswith("pair-marginals")}
    assert set(events) == {"pair-marginals:select", "pair-marginals:tree"}
    assert events["pair-marginals:select"]["sensitivity"] == pytest.approx(np.sqrt(n_select_pairs(d)))
    assert events["pair-marginals:tree"]["sensitivity"] == pytest.approx(np.sqrt(d - 1))
    assert good.ledger_.epsilon_spent() <= BUDGET.epsilon + 1e-9


def test_each_row_adds_one_to_one_cell_of_every_table():
    """The sensitivity argument: without noise every conditional table sums to the row
    count (one cell per row), so adding a row moves each of the d − 1 tables by 1 in one
    cell: L2 sensitivity √(d − 1)."""
    real = _table(1500, seed=2)
    model = DPTVAE(epochs=1, batch_size=200, seed=0, device="cpu").fit(real, schema=_schema(real), budget=None)
    tree = model.pairs_
    for _, child in tree.edges_:
        assert tree.tables_[child].sum() == len(real)
        assert tree.pair_tables_[child].sum() == len(real)
    bigger = pd.concat([real, real.iloc[:1]], ignore_index=True)
    model2 = DPTVAE(epochs=1, batch_size=200, seed=0, device="cpu").fit(bigger, schema=_schema(real), budget=None)
    if model2.pairs_.parents_ == tree.parents_:
        diffs = [np.abs(model2.pairs_.tables_[c] - tree.tables_[c]).sum() for _, c in tree.edges_]
        assert diffs == [1.0] * len(diffs)


def test_bundle_round_trip_samples_identically(fitted, tmp_path):
    _, good, _ = fitted
    good.save(tmp_path / "m")
    again = load(tmp_path / "m")
    pd.testing.assert_frame_equal(good.sample(500, seed=9), again.sample(500, seed=9))
    assert again.pairs_.parents_ == good.pairs_.parents_


def test_corrupt_tables_are_refused(fitted, tmp_path):
    import json
    from synthkit.errors import ArtifactError
    _, good, _ = fitted
    path = good.save(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    child = next(iter(manifest["pairs"]["tables"]))
    manifest["pairs"]["tables"][child] = [[1.0]]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError):
        load(path)


def test_spanning_tree_keeps_strong_pairs_and_parents_first():
    scores = {(0, 1): 0.9, (1, 2): 0.8, (0, 2): 0.1, (2, 3): 0.7, (0, 3): 0.0, (1, 3): 0.0}
    tree = _spanning_tree(4, scores, root=0)
    assert tree == [(0, 1), (1, 2), (2, 3)]
    assert _spanning_tree(4, scores, root=3)[0] == (3, 2)


def test_conditional_quantiles_follow_the_conditional_shares():
    """Within each parent cell the values land in the bins with the given shares, and the
    order within a parent cell is the input's."""
    # (descending: a column holding 0..n-1 in row order is a row index, an identifier)
    real = pd.DataFrame({"x": np.arange(1000, dtype=float)[::-1].copy(), "g": np.repeat(["a", "b"], 500)})
    model = DPTVAE(epochs=1, batch_size=100, seed=0, device="cpu").fit(real, budget=None)
    tree = PairTree(model.transformer_)
    col = next(c for c in tree.columns() if c.name == "x")
    t = model.transformer_.transforms["x"]
    n_bins = len(col.edges) + 1
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 999, size=4000)
    parent = np.repeat([0, 1], 2000)
    shares = np.zeros((2, n_bins))
    shares[0, 0] = 1.0           # parent 0: all in the lowest bin
    shares[1, -2:] = 0.5          # parent 1: half each in the two highest bins
    out = _conditional_quantiles(t, col, x, parent, shares)
    cells = tree.cells(col, out)
    assert (cells[:2000] == 0).all()
    assert np.bincount(cells[2000:], minlength=n_bins)[-2:].tolist() == [1000, 1000]
    for g in (slice(0, 2000), slice(2000, 4000)):
        assert (np.diff(out[g][np.argsort(x[g])]) >= 0).all()  # monotone in the input (ties after rounding)


def test_declared_categories_are_all_reachable_and_inspect_states_the_threshold(fitted, tmp_path):
    """A declared (public) category absent from the data still appears, rarely; for
    discovered categories `inspect` states the count a category needs to be released."""
    from synthkit.cli import inspect_bundle
    from synthkit.mechanisms import partition_threshold
    real, good, _ = fitted
    d = _schema(real).to_dict()
    d["columns"]["region"] = {"kind": "categorical", "categories": ["north", "south", "east", "west", "centre"]}
    model = DPTVAE(epochs=1, batch_size=500, seed=0, device="cpu").fit(real, schema=Schema.from_dict(d), budget=BUDGET)
    syn = model.sample(6000, seed=2)
    shares = syn["region"].value_counts(normalize=True)
    assert set(shares.index) == {"north", "south", "east", "west", "centre"}
    assert shares["centre"] < 0.03     # absent in the data: a floor of at most half the noise std per table
    info = inspect_bundle(good.save(tmp_path / "m"))
    assert info["categories"]["region"]["public"] is False
    plan_tau = good.transformer_.transforms["region"].release_threshold_
    assert info["categories"]["region"]["release_threshold"] == pytest.approx(plan_tau, abs=0.1)
    assert plan_tau > partition_threshold(sigma=1.0, k=1, threshold_delta=1e-6)  # a real noise scale, not 1


def test_rare_parent_cells_outside_the_raking_head_are_calibrated():
    """A parent cell that the first RAKE_ROWS rows never show is raked on its own rows:
    its rows follow the DP conditional, not the network's raw softmax."""
    import torch
    from synthkit import marginals
    n = marginals.RAKE_ROWS + 3000
    logits = torch.zeros(3, n)                       # the network: uniform over 3 labels
    group = torch.zeros(n, dtype=torch.long)
    group[marginals.RAKE_ROWS:] = 1                   # cell 1 appears only after the head
    target = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    codes = marginals._rake_and_draw(logits, group, target, torch.Generator().manual_seed(0), {}, "c")
    late = codes[marginals.RAKE_ROWS:]
    assert (late == 2).mean() > 0.99                  # uncalibrated: about 1/3
    assert (codes[:marginals.RAKE_ROWS] == 2).mean() < 0.01


def test_decimals_stay_inside_the_bounds():
    from synthkit.schema import Column
    from synthkit.transforms import NumericTransform
    t = NumericTransform(Column(name="x", kind="continuous", decimals=1))
    t.bounds_ = (17.96, 87.36)
    out = t.round_to_decimals(np.array([17.96, 50.04, 87.36]))
    assert out.tolist() == [18.0, 50.0, 87.3]


# ------------------------------------------------------------------ one-value cells measured twice
def _spike_table(n: int) -> tuple[pd.DataFrame, Schema]:
    """A count with 30% zeros that depends on a group, a share with 45% exact zeros, and
    three categorical columns; bounds and categories declared (no DP ranges)."""
    rng = np.random.default_rng(5)
    group = rng.choice(["a", "b", "c"], size=n)
    visits = np.where(rng.random(n) < np.where(group == "a", 0.5, 0.2), 0, rng.integers(1, 9, size=n))
    spend = np.where(rng.random(n) < 0.45, 0.0, np.round(rng.uniform(1, 100, size=n), 2))
    frame = pd.DataFrame({"group": group, "visits": visits, "spend": spend,
                          "flag": rng.choice(["y", "n"], size=n), "region": rng.choice(["n", "s", "e", "w"], size=n)})
    schema = Schema.from_dict({"columns": {
        "group": {"kind": "categorical", "categories": ["a", "b", "c"], "nullable": False},
        "visits": {"kind": "integer", "bounds": [0, 8], "nullable": False},
        "spend": {"kind": "continuous", "bounds": [0, 100], "nullable": False},
        "flag": {"kind": "categorical", "categories": ["n", "y"], "nullable": False},
        "region": {"kind": "categorical", "categories": ["e", "n", "s", "w"], "nullable": False}}})
    return frame, schema


def _zero_shares(frame: pd.DataFrame, schema: Schema, seed: int) -> dict[str, tuple[float, float]]:
    """One private release (histograms and pair tables at ε = 1, as a fit plans them) from
    a fixed noise source: per spike column, (the histogram's zero share, the zero share of
    the margin the sampler follows)."""
    from synthkit.ledger import PrivacyLedger
    from synthkit.mechanisms import plan_preprocessing
    from synthkit.models.base import PAIRS_SHARE
    from synthkit.transforms import DataTransformer, FitContext

    budget = PrivacyBudget(epsilon=1.0, delta=1e-6)
    ledger = PrivacyLedger(budget=budget)
    transformer = DataTransformer(schema)
    plan = plan_preprocessing(budget=budget, k=1, n_histograms=transformer.n_histograms(),
                              n_discovery=transformer.n_discovery(), n_bounds=transformer.n_bounds(),
                              epsilon_share=0.8, pairs_share=PAIRS_SHARE)
    rng = np.random.default_rng(seed)
    transformer.fit(frame, FitContext(ledger=ledger, plan=plan, rng=rng, n_rows_dp=float(len(frame))))
    tree = PairTree(transformer).fit(frame, select_noise=plan.pairs_select_noise, noise=plan.pairs_noise, k=1,
                                     n_rows_dp=float(len(frame)), ledger=ledger, rng=rng)
    cols = {c.name: c for c in tree.columns()}
    out = {}
    for name in ("visits", "spend"):
        t, col = transformer.transforms[name], cols[name]
        zero = np.array([0.0])
        hist = (t.cdf(zero + 0.5) - t.cdf(zero - 0.5)) if name == "visits" else (t.cdf(np.nextafter(zero, 1)) - t.cdf(zero))
        out[name] = (float(hist[0]), float(tree.margin(col)[tree.cells(col, zero)[0]]))
    return out


def test_the_zero_cell_combines_the_histogram_and_the_pair_tables():
    """The zero cell of a column is measured by its DP histogram (one bin, std σ_hist) and,
    summed over the other column's cells, by each DP pair table it is in; weighting them
    by inverse variance (`PairTree._combined_point_shares`, post-processing) must make the
    margin the sampler follows closer to the truth than the histogram alone. 40 fixed
    noise draws at ε = 1, 1,500 rows: the root-mean-square error of the combined zero share
    must be under 0.85 of the histogram's (expected ≈ 0.7 from the plan's variances;
    before the change the sampler followed the histogram: ratio 1.0), and both sit near
    σ-scale errors (no bias: mean error under 3 standard errors)."""
    frame, schema = _spike_table(1500)
    truth = {"visits": float((frame.visits == 0).mean()), "spend": float((frame.spend == 0).mean())}
    err = {name: ([], []) for name in truth}
    for seed in range(40):
        for name, (hist, combined) in _zero_shares(frame, schema, seed).items():
            err[name][0].append(hist - truth[name])
            err[name][1].append(combined - truth[name])
    for name, (hist, combined) in err.items():
        hist, combined = np.asarray(hist), np.asarray(combined)
        rms_hist, rms_combined = np.sqrt(np.mean(hist**2)), np.sqrt(np.mean(combined**2))
        assert rms_combined < 0.85 * rms_hist, f"{name}: {rms_combined:.4f} vs {rms_hist:.4f}"
        assert abs(combined.mean()) < 3 * combined.std() / np.sqrt(len(combined)) + 1e-3, name
