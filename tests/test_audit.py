"""Privacy audit (synthkit.audit): the ε lower bound is valid, the attack has power, and the
audit catches a broken DP implementation.

- exact: the one-run p-value against a brute-force evaluation of Steinke et al.'s formula;
  the largest attainable bound in closed form; the ROC of known scores;
- statistical: on ε-DP randomised response (a mechanism whose ε is exact) the 95% bound
  exceeds ε in at most the share of runs the confidence allows, and a 3-DP mechanism is
  shown to be more than 1-DP;
- brackets on real data (NMES1988, tiny models, CI size):
  (a) no privacy + a memorising model → bound far above the claim ε = 1 of a DP run;
  (b) DPCTGAN and DPTVAE at ε = 1 → bound at or below their claim;
  (c) a broken variant (category discovery without its threshold, so a category held by one
      person is released while the ledger still claims ε = 1) → bound above the claim;
- the CLI writes audit.json (atomically) and audit.html with an inline SVG ROC, and never a
  data value; the report section is JSON-able;
- an audit whose design cannot show more than the claim (max_attainable <= claimed ε) is
  "inconclusive" (passed None) in audit.json, the report section, audit.html and the CLI,
  never "consistent"; with enough canaries the same bound is "consistent" (a pass);
- the same brackets for the sequence model DPHMM (canary = a whole crafted entity) on
  small seeded visit sequences: (a) no privacy, (b) ε = 1, (c) category discovery without
  its threshold; and `synthkit audit --model dphmm` from the CLI.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

import synthkit
import synthkit.transforms
from conftest_data import nmes
from synthkit import DPCTGAN, DPHMM, DPTVAE, PrivacyBudget, Schema
from synthkit.noise import _fixed_for_tests
from synthkit.audit import (
    CANARY_TOKEN,
    GUESS_GRID,
    AuditResult,
    BoundResult,
    SequenceFamily,
    audit_section,
    canary_spec,
    craft_canaries,
    epsilon_lower_bound,
    one_run_epsilon,
    one_run_p_value,
    pooled_canaries_needed,
    render_html,
    roc_curve,
    roc_summary,
    run_audit,
)
from synthkit.cli import app
from synthkit.ledger import GaussianEvent, ThresholdEvent
from synthkit.schema import Column

CLAIM = PrivacyBudget(epsilon=1.0, delta=1e-6)
COLUMNS = ["visits", "hospital", "health", "chronic", "region", "age", "gender", "school", "income", "insurance"]
TINY = {
    DPTVAE: {"embedding_dim": 16, "compress_dims": (64,), "decompress_dims": (64,)},
    DPCTGAN: {"embedding_dim": 16, "generator_dim": (64,), "critic_dim": (64,)},
}
# CI-size audit: 4 training runs x 64 canaries = 256 pooled canaries (see test (a) for what
# that design can show at most)
N_ROWS, N_CANARIES, N_TRIALS = 400, 64, 4


# ====================================================================== statistics
def _p_value_brute_force(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Steinke, Nasr & Jagielski (2023), written out term by term with exact binomials."""
    q = math.exp(eps) / (1 + math.exp(eps))
    pmf = [math.comb(r, j) * q**j * (1 - q) ** (r - j) for j in range(r + 1)]
    beta = sum(pmf[v:])
    alpha = max((sum(pmf[v - i:v]) / i for i in range(1, v + 1)), default=0.0)
    return min(beta + alpha * delta * 2 * m, 1.0)


@pytest.mark.parametrize("m,r,v,eps,delta", [(100, 40, 30, 0.5, 0.0), (100, 40, 30, 0.5, 1e-3),
                                             (256, 90, 90, 2.0, 1e-6), (64, 10, 3, 0.0, 1e-2), (50, 1, 1, 3.0, 0.0)])
def test_p_value_matches_the_published_formula(m, r, v, eps, delta):
    got = one_run_p_value(n_canaries=m, n_guesses=r, n_correct=v, epsilon=eps, delta=delta)
    assert got == pytest.approx(_p_value_brute_force(m, r, v, eps, delta), rel=1e-9, abs=1e-15)


def test_bound_of_perfect_guesses_has_its_closed_form():
    """With δ = 0 and r guesses all right, p(ε) = q(ε)^r, so the bound is log(p/(1−p)) with
    p = s^(1/r) — e.g. 90 guesses at s = 0.05/10 give ε = 2.80."""
    s = 0.05 / len(GUESS_GRID)
    for r in (10, 32, 90):
        p = s ** (1 / r)
        assert one_run_epsilon(n_canaries=256, n_guesses=r, n_correct=r, delta=0.0, significance=s) == \
            pytest.approx(math.log(p / (1 - p)), abs=1e-4)
    # half right is what a coin does: nothing to show
    assert one_run_epsilon(n_canaries=256, n_guesses=90, n_correct=45, delta=1e-6, significance=s) == 0.0


def _randomised_response(m: int, eps: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each membership bit reported truthfully with probability e^ε/(1+e^ε): exactly ε-DP in
    each bit (the extremal mechanism of Kairouz et al. 2015). A tiny independent jitter
    makes the ranking strict (post-processing)."""
    rng = np.random.default_rng(seed)
    bits = rng.random(m) < 0.5
    flip = rng.random(m) < 1 / (1 + math.exp(eps))
    return np.where(flip, ~bits, bits) + 0.01 * rng.random(m), bits


def test_bound_is_valid_and_has_power_on_randomised_response():
    """Validity: over 100 independent audits of 1-DP randomised response with 200 canaries,
    a 95% bound may exceed 1 in at most 5% of them in expectation; 11 or more exceedances
    happen with probability P[Binomial(100, 0.05) ≥ 11] = 1.1% for a valid bound.
    Power: 3-DP randomised response with 1,000 canaries must be shown to be more than 1-DP
    (the bound is about 2.4 there)."""
    over = sum(epsilon_lower_bound(*_randomised_response(200, 1.0, s), delta=1e-6,
                                   rng=np.random.default_rng(s)).epsilon_lower_bound > 1.0 for s in range(100))
    assert stats.binom.sf(10, 100, 0.05) < 0.012  # the arithmetic above
    assert over <= 10, f"{over} of 100 bounds exceed the true epsilon"
    strong = epsilon_lower_bound(*_randomised_response(1000, 3.0, 0), delta=1e-6, rng=np.random.default_rng(0))
    assert 1.5 < strong.epsilon_lower_bound <= 3.0


def test_roc_of_known_scores():
    bits = np.array([True, True, False, False])
    fpr, tpr = roc_curve(np.array([4.0, 3.0, 2.0, 1.0]), bits)
    assert fpr.tolist() == [0, 0, 0, 0.5, 1] and tpr.tolist() == [0, 0.5, 1, 1, 1]
    assert roc_summary(np.array([4.0, 3.0, 2.0, 1.0]), bits)["auc"] == 1.0
    assert roc_summary(np.array([1.0, 2.0, 3.0, 4.0]), bits)["auc"] == 0.0
    tied = roc_summary(np.ones(4), bits)
    assert tied["auc"] == 0.5 and tied["tpr_at_fpr"]["0.01"] == 0.0  # ties cannot be split by a threshold


# ====================================================================== canaries
@pytest.fixture(scope="module")
def schema() -> Schema:
    """NMES1988's shipped schema on 10 columns, with `region`'s categories NOT declared (they
    are learned under DP, so a canary can hold a category of its own) and public bounds for
    income (so 400 rows suffice at ε = 1)."""
    full = Schema.load(Path(synthkit.__file__).parent / "data" / "nmes1988.schema.yaml")
    cols = [full.column(c) for c in COLUMNS]
    s = Schema(columns=tuple(cols), sensitive=("gender",))
    s = s.with_column(Column(name="region", kind="categorical", nullable=False))
    return s.with_column(Column(name="income", kind="continuous", nullable=False, bounds=(-1.0, 60.0)))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return nmes(N_ROWS, seed=0)[COLUMNS]


def test_canaries_are_outliers_in_units_of_the_schema(frame, schema):
    reference = frame.sample(frac=1.0, random_state=1)  # stands in for a reference fit's output
    spec = canary_spec(schema, reference=reference, learned_bounds={})
    can = craft_canaries(frame, schema, spec, n_canaries=8, rows_per_canary=1, rng=np.random.default_rng(0))
    assert can["canary"].tolist() == list(range(8))
    assert can["region"].nunique() == 8 and not can["region"].isin(frame["region"]).any()  # unique tokens
    assert set(can["health"]) <= {"poor", "average", "excellent"} and set(can["insurance"]) <= {"yes", "no"}
    for name, (lo, hi) in spec.placements.items():
        assert set(can[name]) <= {lo, hi}  # every numeric value sits in a tail
        x = reference[name].to_numpy(dtype=float)
        assert np.mean(x < lo) <= 0.011 and np.mean(x > hi) <= 0.011
    entity = Schema(columns=(Column(name="pid", kind="identifier", nullable=False), *schema.columns),
                    entity_key="pid")
    grouped = craft_canaries(frame.assign(pid="x"), entity, spec, n_canaries=3, rows_per_canary=4,
                             rng=np.random.default_rng(0))
    assert grouped.groupby("pid").size().tolist() == [4, 4, 4]  # a canary is a whole entity (k rows)


# ====================================================================== brackets on real data
def _audit(frame, schema, model, budget, *, epochs: int, seed: int = 0, **kw):
    return run_audit(frame, schema=schema, model=model, budget=budget, delta=CLAIM.delta, n_canaries=N_CANARIES,
                     n_trials=N_TRIALS, model_params={"epochs": epochs, "batch_size": 50, "device": "cpu",
                                                      **TINY[model if model in TINY else model.__mro__[1]]},
                     n_synthetic=10_000, seed=seed, workers=1, **kw)


def test_a_memorising_model_without_privacy_exceeds_the_claim(frame, schema):
    """(a) DPTVAE with --no-privacy (categories released exactly, 30 epochs on 400 rows).
    Arithmetic: 4 runs x 64 canaries = 256 pooled canaries; the grid has 10 guess counts, so
    each is tested at 0.05/10. The most the design can show is 3.87 (128 right "in"
    guesses). Guessing "in" for the top 90 canaries (35%) all correctly rejects every ε with
    q(ε)^90 ≤ 0.005, i.e. ε ≤ 2.80; we require more than twice the claim of the DP runs."""
    result = _audit(frame, schema, DPTVAE, None, epochs=30)
    assert result.verdict == "no_guarantee" and result.claimed_epsilon is None
    assert result.bound.max_attainable == pytest.approx(3.865, abs=0.01)
    assert result.bound.epsilon_lower_bound > 2 * CLAIM.epsilon
    assert result.roc["tpr_at_fpr"]["0.01"] > 0.5


@pytest.mark.parametrize("model", [DPTVAE, DPCTGAN], ids=["dptvae", "dpctgan"])
def test_b_dp_models_stay_at_or_below_their_claim(frame, schema, model):
    """(b) Each shipped DP model at ε = 1: the bound must not refute the claim (for a correct
    implementation this fails with probability below 5%, whatever the attack)."""
    result = _audit(frame, schema, model, CLAIM, epochs=10)
    assert result.claimed_epsilon is not None and result.claimed_epsilon <= CLAIM.epsilon * (1 + 1e-9)
    assert result.bound.epsilon_lower_bound <= result.claimed_epsilon
    assert result.verdict == "consistent"


def _select_without_threshold(counts, *, sigma, k, threshold_delta, name, ledger, rng, public_keys=()):
    """The bug: noisy counts for every observed category, no threshold (so a category held by
    one person is released), while the ledger is charged exactly as if it were correct."""
    ledger.charge(GaussianEvent(name=name, sigma=sigma, sensitivity=float(k)))
    ledger.charge(ThresholdEvent(name=name + ":threshold", delta=threshold_delta))
    keys = sorted(set(counts) | set(public_keys))
    return {c: float(counts.get(c, 0) + z) for c, z in zip(keys, rng.normal(0.0, sigma, size=len(keys)))}


class UnthresholdedDPTVAE(DPTVAE):
    def fit(self, *args, **kwargs):
        with mock.patch.object(synthkit.transforms, "select_partitions", _select_without_threshold):
            return super().fit(*args, **kwargs)


class UnthresholdedDPCTGAN(DPCTGAN):
    def fit(self, *args, **kwargs):
        with mock.patch.object(synthkit.transforms, "select_partitions", _select_without_threshold):
            return super().fit(*args, **kwargs)


@pytest.mark.parametrize("model", [UnthresholdedDPTVAE, UnthresholdedDPCTGAN], ids=["dptvae", "dpctgan"])
def test_c_a_broken_variant_is_caught(frame, schema, model):
    """(c) Same data, claim and seeds as (b), but category discovery skips its threshold. The
    ledger still says ε = 1; the audit must refute it. (Run against the unbroken models,
    this very assertion fails: that is test (b).)"""
    result = _audit(frame, schema, model, CLAIM, epochs=10)
    assert result.claimed_epsilon is not None and result.claimed_epsilon <= CLAIM.epsilon * (1 + 1e-9)
    assert result.bound.epsilon_lower_bound > result.claimed_epsilon
    assert result.verdict == "violation"


def test_audit_is_reproducible_and_parallel_runs_agree(frame, schema):
    """Without a budget the seed fixes everything: the same bound and ROC, and trials in 2
    worker processes give the same result as in-process (each trial's seeds do not depend
    on where it runs). Under a budget the DP noise of every trial is fresh OS entropy, as in
    a real release, so only the internal test hook reproduces it (in-process)."""
    kw = dict(schema=schema, model="dptvae", n_canaries=16, n_trials=2, n_synthetic=2000, seed=7,
              model_params={"epochs": 2, "batch_size": 50, "device": "cpu", **TINY[DPTVAE]})
    one = run_audit(frame, workers=1, budget=None, delta=1e-6, **kw).to_dict()
    two = run_audit(frame, workers=2, budget=None, delta=1e-6, **kw).to_dict()
    assert two["result"] == one["result"] and two["roc"] == one["roc"]
    assert two["timing"]["workers"] == 2
    with _fixed_for_tests(3):
        p = run_audit(frame, workers=1, budget=CLAIM, **kw).to_dict()
    with _fixed_for_tests(3):
        q = run_audit(frame, workers=1, budget=CLAIM, **kw).to_dict()
    assert p["result"] == q["result"] and p["roc"] == q["roc"]


# ====================================================================== CLI and report
SECRET = "SECRET_CELL_VALUE_4242"


def test_cli_writes_audit_json_and_html_without_data_values(frame, schema, tmp_path):
    data = frame.copy()
    data.loc[0, "region"] = SECRET  # one person's category: must appear nowhere in the outputs
    csv = tmp_path / "nmes.csv"
    data.to_csv(csv, index=False)
    schema_path = tmp_path / "schema.yaml"
    schema.save(schema_path)
    out = tmp_path / "audit"
    args = ["audit", str(csv), "--schema", str(schema_path), "--model", "dptvae", "--epsilon", "1",
            "--delta", "1e-6", "--canaries", "8", "--trials", "2", "--epochs", "1", "--batch-size", "50",
            "--synthetic-rows", "1000", "--workers", "1", "--device", "cpu", "--seed", "0", "--out", str(out)]
    runner = CliRunner()
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "audit.json").read_text())
    assert report["kind"] == "synthkit.privacy_audit"
    assert report["privacy"]["target_epsilon"] == 1.0 and report["result"]["confidence"] == 0.95
    assert report["result"]["n_canaries"] == 16 and report["design"]["trials"] == 2
    # 16 pooled canaries can show at most 0.93 < 1: the audit cannot refute the claim
    assert report["result"]["max_attainable"] < 1.0
    assert report["result"]["verdict"] == "inconclusive" and report["result"]["passed"] is None
    assert "verdict: inconclusive" in r.output
    page = (out / "audit.html").read_text()
    assert "INCONCLUSIVE" in page
    assert page.startswith("<!doctype html>") and "<svg" in page and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    for path in (out / "audit.json", out / "audit.html"):
        assert SECRET not in path.read_text()
    assert not list(out.glob("*.tmp"))
    again = runner.invoke(app, args)  # refuses to overwrite, one line, exit code 2
    assert again.exit_code == 2 and "--overwrite" in again.output
    both = runner.invoke(app, [*args, "--no-privacy", "--overwrite"])
    assert both.exit_code == 2 and "contradict" in both.output


def test_report_section_is_jsonable_and_judges_the_claim():
    base = {
        "model": "dptvae",
        "privacy": {"claimed_epsilon": 1.0, "delta": 1e-6},
        "result": {"epsilon_lower_bound": 0.4, "confidence": 0.95, "verdict": "consistent", "explanation": "x"},
        "roc": {"auc": 0.6, "tpr_at_fpr": {"0.01": 0.02, "0.05": 0.08, "0.1": 0.15}, "curve": [[0, 0], [1, 1]]},
        "design": {"canary_recipe": ["a"]},
    }
    sec = audit_section(base)
    json.dumps(sec)
    by_id = {m["id"]: m for m in sec["metrics"]}
    assert by_id["privacy.audit.epsilon_lower_bound"]["passed"] is True
    assert by_id["privacy.audit.epsilon_lower_bound"]["threshold"] == 1.0
    assert set(by_id) >= {"privacy.audit.auc", "privacy.audit.tpr_at_fpr_0.01"}
    assert sec["svg"].startswith("<svg") and "epsilon=1.00" in sec["svg"]
    refuted = audit_section({**base, "result": {**base["result"], "epsilon_lower_bound": 1.7, "verdict": "violation"}})
    assert refuted["metrics"][0]["passed"] is False


def _result(*, claimed: float | None, lower: float, canaries: int, trials: int, delta: float = 1e-6) -> AuditResult:
    """An AuditResult as run_audit builds it, with the bound's max_attainable computed the way
    epsilon_lower_bound does (perfectly separated scores), and no model fitted."""
    pooled = canaries * trials
    top = epsilon_lower_bound(np.arange(pooled, 0, -1, dtype=float), np.arange(pooled) < pooled // 2,
                              delta=delta, rng=np.random.default_rng(0)).max_attainable
    bound = BoundResult(epsilon_lower_bound=lower, confidence=0.95, n_canaries=pooled, n_included=pooled // 2,
                        n_guesses=pooled // 10, n_correct=pooled // 20, guessed_in=pooled // 10, guessed_out=0,
                        n_grid=len(GUESS_GRID), max_attainable=top)
    return AuditResult(model="dptvae", hyperparameters={"epochs": 1}, private=claimed is not None,
                       target_epsilon=claimed, claimed_epsilon=claimed, delta=delta, guarantee="test", unit="row",
                       n_canaries=canaries, n_trials=trials, n_synthetic=100, recipe=("a tail value",), bound=bound,
                       roc={"auc": 0.5, "tpr_at_fpr": {"0.01": 0.01}, "curve": [[0.0, 0.0], [1.0, 1.0]]},
                       seconds=1.0, seconds_per_trial=0.5, workers=1, device="cpu")


def test_an_audit_without_power_is_inconclusive_not_a_pass():
    """64 canaries x 200 runs = 12,800 pooled canaries can show at most 7.65 at delta = 1e-6:
    against a claim of 8 a bound of 0.1 says nothing, so the verdict is "inconclusive" and
    the report's pass/fail is None (the code before this fix said "consistent", a pass)."""
    result = _result(claimed=8.0, lower=0.1, canaries=64, trials=200)
    assert result.bound.max_attainable == pytest.approx(7.65, abs=0.01)
    assert result.verdict == "inconclusive"
    data = json.loads(json.dumps(result.to_dict()))  # what audit.json holds
    assert data["result"]["verdict"] == "inconclusive" and data["result"]["passed"] is None
    text = data["result"]["explanation"]
    assert text.startswith("inconclusive (no power to refute epsilon = 8.00): the most this design can show is 7.65; "
                           "use more canaries/trials")
    needed = pooled_canaries_needed(8.0, delta=1e-6, confidence=0.95)
    assert needed is not None and 12_800 < needed < 25_000
    assert f"--trials {math.ceil(needed / 64)} with --canaries 64" in text
    sec = audit_section(data)
    assert sec["verdict"] == "inconclusive"
    lower_bound = {m["id"]: m for m in sec["metrics"]}["privacy.audit.epsilon_lower_bound"]
    assert lower_bound["passed"] is None and lower_bound["explanation"] == text
    page = render_html(data)
    assert "INCONCLUSIVE" in page and "no violation found" not in page and ">pass<" not in page


def test_the_same_bound_with_enough_power_is_consistent_and_a_pass():
    """Same bound against a claim of 1: 12,800 pooled canaries could have shown 7.65 > 1, so
    a bound of 0.1 is evidence ("consistent", a pass); above the claim it is a violation."""
    result = _result(claimed=1.0, lower=0.1, canaries=64, trials=200)
    assert result.verdict == "consistent"
    data = result.to_dict()
    assert data["result"]["passed"] is True and "no violation found" in data["result"]["explanation"]
    assert audit_section(data)["metrics"][0]["passed"] is True
    assert "no violation found" in render_html(data)
    refuted = _result(claimed=1.0, lower=1.7, canaries=64, trials=200)
    assert refuted.verdict == "violation" and audit_section(refuted)["metrics"][0]["passed"] is False
    # the edge: max_attainable exactly at the claim cannot refute it either
    edge = _result(claimed=1.0, lower=0.2, canaries=8, trials=2)
    edge = dataclasses.replace(edge, claimed_epsilon=edge.bound.max_attainable)
    assert edge.verdict == "inconclusive"


def test_canaries_needed_matches_the_bound_and_its_delta_ceiling():
    """The advice is right: with the advised pooled count a perfect attack shows more than the
    claim, with 2% fewer it does not. At delta = 1e-6 no count shows more than about 8.2
    (the delta term grows with the count), and the explanation says so instead of advising."""
    for claim in (1.0, 3.0, 5.0):
        needed = pooled_canaries_needed(claim, delta=1e-6, confidence=0.95)
        for m, above in ((needed, True), (int(needed * 0.98), False)):
            top = epsilon_lower_bound(np.arange(m, 0, -1, dtype=float), np.arange(m) < m // 2, delta=1e-6,
                                      rng=np.random.default_rng(0)).max_attainable
            assert (top > claim) is above, (claim, m, top)
    assert pooled_canaries_needed(10.0, delta=1e-6, confidence=0.95) is None
    text = _result(claimed=10.0, lower=0.1, canaries=64, trials=200).explanation()
    assert text.startswith("inconclusive (no power to refute epsilon = 10.00)")
    assert "more canaries/trials cannot help" in text and "cannot check a claim this large" in text


def test_an_old_audit_json_without_power_is_not_read_as_a_pass():
    """audit.json files written before "inconclusive" existed say "consistent" for an audit
    without power; the report section recomputes the verdict from the numbers."""
    data = _result(claimed=8.0, lower=0.1, canaries=64, trials=200).to_dict()
    data["result"] = {**data["result"], "verdict": "consistent", "explanation": "no violation found"}
    del data["result"]["passed"]
    sec = audit_section(data)
    assert sec["verdict"] == "inconclusive" and sec["metrics"][0]["passed"] is None
    assert sec["metrics"][0]["explanation"].startswith("inconclusive (no power to refute epsilon = 8.00)")


def test_cli_says_inconclusive(tmp_path, monkeypatch):
    """The CLI text and audit.json of an audit without power (run_audit replaced by a result
    built in place: the CLI only formats it)."""
    import synthkit.audit
    monkeypatch.setattr(synthkit.audit, "run_audit",
                        lambda *a, **k: _result(claimed=8.0, lower=0.1, canaries=64, trials=200))
    csv = tmp_path / "d.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}).to_csv(csv, index=False)
    out = tmp_path / "audit"
    r = CliRunner().invoke(app, ["audit", str(csv), "--epsilon", "8", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # the console wraps long lines
    assert "verdict: inconclusive" in text and "no power to refute epsilon = 8.00" in text
    assert "use more canaries/trials" in text and "no violation found" not in text
    report = json.loads((out / "audit.json").read_text())
    assert report["result"]["verdict"] == "inconclusive" and report["result"]["passed"] is None


# ====================================================================== sequences (DPHMM)
SEQ_LENGTH = 6
SEQ_PARAMS = {"n_states": 4, "epochs": 5, "batch_size": 50, "max_length": SEQ_LENGTH, "context_epochs": 5,
              "context_hidden": (32,), "context_embedding_dim": 8, "device": "cpu"}


def visits(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Entities with 2..6 visits on an integer clock: a visit kind (categories learned under
    DP), a lab value around a per-entity level, and static group and age (context columns)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        group, age, t = rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2]), int(rng.integers(20, 80)), int(rng.integers(5))
        level = rng.normal(0.0, 1.0)
        for j in range(int(rng.integers(2, SEQ_LENGTH + 1))):
            t += int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])) if j else 0
            rows.append((f"E{i:05d}", t, rng.choice(["gp", "lab", "ward"], p=[0.5, 0.3, 0.2]),
                         float(level + rng.normal(0.0, 0.5)), group, age))
    return pd.DataFrame(rows, columns=["id", "t", "kind", "value", "group", "age"])


def visit_schema() -> Schema:
    """Public bounds for the clock, the lab value and age (so 1,000 entities suffice at ε = 1);
    the categories of kind and group are NOT declared (learned under DP), so a canary can hold
    one of its own in each."""
    return Schema(columns=(
        Column(name="id", kind="identifier", nullable=False),
        Column(name="t", kind="integer", nullable=False, bounds=(0, 40)),
        Column(name="kind", kind="categorical", nullable=False),
        Column(name="value", kind="continuous", nullable=False, bounds=(-5.0, 5.0)),
        Column(name="group", kind="categorical", nullable=False),
        Column(name="age", kind="integer", nullable=False, bounds=(0, 100)),
    ), entity_key="id", sequence_index="t", context_columns=("group", "age"))


@pytest.fixture(scope="module")
def seq_frame() -> pd.DataFrame:
    return visits()


@pytest.fixture(scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny ops: intra-op threads only contend on a shared machine
    yield
    torch.set_num_threads(before)


def test_sequence_canaries_are_whole_outlier_entities(seq_frame, _one_thread):
    schema = visit_schema()
    model = DPHMM(**SEQ_PARAMS, seed=0).fit(seq_frame, schema=schema, budget=None)
    reference = model.sample(2000, seed=1)  # stands in for the reference fit's output
    family = SequenceFamily(entity_key="id", sequence_index="t", context_columns=("group", "age"),
                            max_length=SEQ_LENGTH)
    spec = family.spec(schema, reference=reference, model=model)
    can = family.craft(seq_frame, schema, spec, n_canaries=8, rng=np.random.default_rng(0))
    assert list(can.columns) == ["canary", *schema.names]
    assert can.groupby("id").size().tolist() == [SEQ_LENGTH] * 8  # a whole entity at the contribution bound
    assert can.groupby("id")["canary"].nunique().eq(1).all() and can["id"].nunique() == 8
    assert spec.token_columns == ("kind", "group")
    tokens = [CANARY_TOKEN.format(i=i) for i in range(8)]
    for name in ("kind", "group"):  # a unique token per canary, in all of its events
        assert can.groupby("canary")[name].agg(set).tolist() == [{t} for t in tokens]
    assert can.groupby("canary")["age"].nunique().eq(1).all()  # context is static
    lo, hi = spec.events.placements["value"]
    assert set(can["value"]) <= {lo, hi} and np.mean(reference["value"] < lo) <= 0.011
    t = can.groupby("canary")["t"]
    assert (t.min() >= 0).all() and (t.max() <= 40).all() and t.apply(lambda x: x.diff().dropna().gt(0).all()).all()
    assert can["t"].dtype == seq_frame["t"].dtype and can["age"].dtype == seq_frame["age"].dtype
    scores = family.scores(reference, can, schema, spec)
    assert scores.shape == (8,) and np.all((scores >= 0) & (scores <= 1))  # no token in a canary-free output
    with_copy = pd.concat([reference, can.drop(columns="canary")], ignore_index=True)
    copied = family.scores(with_copy, can, schema, spec)
    assert np.allclose(copied, 2.0)  # one entity with each token, at distance 0 (an exact copy)


def _seq_audit(frame, model, budget, *, seed: int = 0):
    return run_audit(frame, schema=visit_schema(), model=model, budget=budget, delta=CLAIM.delta,
                     n_canaries=N_CANARIES, n_trials=N_TRIALS, model_params=SEQ_PARAMS, seed=seed, workers=1)


def test_a_dphmm_without_privacy_exceeds_the_claim(seq_frame, _one_thread):
    """(a) DPHMM with --no-privacy releases every category, so a planted canary's token is
    generated and an absent one's cannot be. Same design as the table bracket (a): 256
    pooled canaries, at most 3.87 to show; 90 right "in" guesses give 2.80; we require more
    than twice the claim of the DP run (b). (Against the DP model of (b) this fails: 0.)"""
    result = _seq_audit(seq_frame, DPHMM, None)
    assert result.verdict == "no_guarantee" and result.unit == "entity"
    assert result.bound.epsilon_lower_bound > 2 * CLAIM.epsilon
    assert result.roc["tpr_at_fpr"]["0.01"] > 0.5


@pytest.mark.slow
def test_b_dphmm_stays_at_or_below_its_claim(seq_frame, _one_thread):
    """(b) DPHMM at ε = 1 (preprocessing, context model and DP-SGD in one ledger): the bound
    must not refute the claim (fails with probability below 5% for a correct implementation)."""
    result = _seq_audit(seq_frame, DPHMM, CLAIM)
    assert result.claimed_epsilon is not None and result.claimed_epsilon <= CLAIM.epsilon * (1 + 1e-9)
    assert result.bound.epsilon_lower_bound <= result.claimed_epsilon
    assert result.verdict == "consistent"


class UnthresholdedDPHMM(DPHMM):
    """Category discovery (events and context) without its threshold; the ledger still charges
    as if it were correct, so it claims ε = 1."""

    def fit(self, *args, **kwargs):
        with mock.patch.object(synthkit.transforms, "select_partitions", _select_without_threshold):
            return super().fit(*args, **kwargs)


@pytest.mark.slow
def test_c_a_broken_dphmm_is_caught(seq_frame, _one_thread):
    """(c) Same data, claim and seeds as (b), with the threshold bug: the audit must refute
    the claim. (Against the unbroken DPHMM this very assertion fails: that is test (b).)"""
    result = _seq_audit(seq_frame, UnthresholdedDPHMM, CLAIM)
    assert result.claimed_epsilon is not None and result.claimed_epsilon <= CLAIM.epsilon * (1 + 1e-9)
    assert result.bound.epsilon_lower_bound > result.claimed_epsilon
    assert result.verdict == "violation"


def test_cli_audits_dphmm_without_writing_canaries_or_data_values(seq_frame, tmp_path, _one_thread):
    data = seq_frame.copy()
    data.loc[data["id"] == "E00003", "kind"] = SECRET  # one entity's category: must appear nowhere
    csv = tmp_path / "events.csv"
    data.to_csv(csv, index=False)
    schema_path = tmp_path / "schema.yaml"
    visit_schema().save(schema_path)
    out = tmp_path / "audit"
    args = ["audit", str(csv), "--schema", str(schema_path), "--model", "dphmm", "--entity-key", "id",
            "--sequence-index", "t", "--context-column", "group", "--context-column", "age", "--epsilon", "1",
            "--delta", "1e-6", "--canaries", "8", "--trials", "2", "--epochs", "1", "--batch-size", "50",
            "--max-length", "4", "--states", "2", "--context-epochs", "2", "--synthetic-rows", "2000",
            "--workers", "1", "--device", "cpu", "--seed", "0", "--out", str(out)]
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "audit.json").read_text())
    assert report["model"] == "dphmm" and report["privacy"]["unit"] == "entity"
    assert report["privacy"]["target_epsilon"] == 1.0 and report["result"]["n_canaries"] == 16
    assert report["design"]["synthetic_entities_per_trial"] == 2000 and "entities" in report["design"]["attack"]
    assert report["hyperparameters"]["max_length"] == 4 and report["hyperparameters"]["context_epochs"] == 2
    assert report["result"]["max_attainable"] < 1.0  # 16 pooled canaries: no power against epsilon = 1
    assert report["result"]["verdict"] == "inconclusive" and report["result"]["passed"] is None
    for path in (out / "audit.json", out / "audit.html"):
        text = path.read_text()
        assert SECRET not in text and "__synthkit_canary_" not in text and "canary-0" not in text
        assert "E0000" not in text  # no entity key of the data
    wrong = CliRunner().invoke(app, [*args[:5], "dptvae", *args[6:], "--overwrite"])
    assert wrong.exit_code == 2 and "apply to --model dphmm only" in wrong.output
