"""Policy format: the shipped policies are valid and commented, validation lists every
problem at once, unknown keys and metric ids are refused, `synthkit policy check`."""

from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from reports.model import METRIC_IDS, is_known_metric_id
from reports.policy import POLICY_DIR, PolicyError, load_policy, parse_policy, shipped_policies
from synthkit.cli import app

runner = CliRunner()


def test_three_policies_ship_and_all_require_dp():
    assert set(shipped_policies()) == {"default", "healthcare", "finance"}
    for name in shipped_policies():
        p = load_policy(name)
        assert p.name == name and p.privacy.require_dp and p.privacy.max_epsilon is not None
        assert not p.release.auto_release
        for c in p.checks:
            assert is_known_metric_id(c.metric), c.metric
    hc, fin, default = load_policy("healthcare"), load_policy("finance"), load_policy("default")
    assert hc.privacy.unit == "entity" and fin.privacy.unit == "entity" and default.privacy.unit == "row"
    assert hc.privacy.max_epsilon < fin.privacy.max_epsilon < default.privacy.max_epsilon
    assert hc.release.reviewers_required == 2


@pytest.mark.parametrize("name", ["default", "healthcare", "finance"])
def test_every_shipped_policy_holds_the_direction_of_strong_associations(name):
    checks = {c.metric: c for c in load_policy(name).checks}
    signs = checks["fidelity.association_signs.kept_share"]
    # skipped only when the real data has no strong association (the metric is then None)
    assert signs.min == 0.8 and signs.max is None and signs.if_missing == "skip"
    if name == "finance":  # model development is finance's main use: every declared target counts
        utility = checks["fidelity.ml_utility.min_ratio"]
        assert utility.min == 0.7 and utility.if_missing == "skip"
        assert "fidelity.ml_utility.ratio" not in checks  # min_ratio covers the first target too


@pytest.mark.parametrize("name", ["default", "healthcare", "finance"])
def test_every_threshold_is_explained(name):
    """Each check carries a `why` or a comment, and each privacy cap a comment above it."""
    text = (POLICY_DIR / f"{name}.yaml").read_text()
    blocks = re.split(r"\n  - metric: ", text.split("\nchecks:")[1].split("\nrelease:")[0])[1:]
    assert len(blocks) == len(load_policy(name).checks)
    for block in blocks:
        assert "why:" in block or "#" in block, block.splitlines()[0]
    privacy = text.split("\nprivacy:")[1].split("\nchecks:")[0].splitlines()
    for i, line in enumerate(privacy):
        if re.match(r"\s+(max_epsilon|max_delta|unit|require_dp):", line):
            assert "#" in line or privacy[i - 1].strip().startswith("#"), line


def test_validation_lists_every_problem_at_once():
    bad = {
        "name": "Bad Name",                                            # 1
        "colour": "red",                                               # 2 unknown top-level key
        "privacy": {"unit": "patient", "max_epsilon": -1, "epsilon": 3},  # 3 unit, 4 negative, 5 unknown key
        "checks": [
            {"metric": "privacy.membership_inference.acu", "max": 0.6},  # 6 typo in id
            {"metric": "fidelity.quality.overall", "max": 0.5},          # 7 wrong side of the direction
            {"metric": "privacy.exact_copies.rate", "max": "low"},       # 8 not a number
            {"metric": "privacy.*.auc", "max": 0.6},                     # 9 pattern outside bias
            {"metric": "privacy.dcr.train_closer_share"},                # 10 no threshold
            {"metric": "privacy.exact_copies.rate", "max": 0.1, "use": "mean", "limit": 3},  # 11 use, 12 key
        ],
        "release": {"reviewers_required": 0},                           # 13
    }
    with pytest.raises(PolicyError) as info:
        parse_policy(bad)
    problems = info.value.problems
    assert len(problems) == 13, problems
    text = " | ".join(problems)
    for needle in ("'name'", "['colour']", "privacy.unit", "privacy.max_epsilon", "['epsilon']",
                   "did you mean 'privacy.membership_inference.auc'", "only 'min' makes sense", "'low'",
                   "'*' is allowed only", "give a threshold", ".use must be", "['limit']",
                   "reviewers_required"):
        assert needle in text, needle
    assert str(info.value).startswith("invalid policy (13 problems): ")


def test_unknown_metric_ids_are_refused_and_known_ones_accepted():
    for mid in METRIC_IDS:
        concrete = mid.replace("{attribute}", "sex")
        direction, _ = METRIC_IDS[mid]
        bound = {"higher_is_better": "min", "lower_is_better": "max", "closer_to_target": "max"}[direction]
        parse_policy({"name": "one", "checks": [{"metric": concrete, bound: 0.5}]})
    for mid in ("privacy.membership_inference", "bias.sex", "fidelity.quality", "quality.overall"):
        with pytest.raises(PolicyError, match="unknown metric id"):
            parse_policy({"name": "one", "checks": [{"metric": mid, "max": 0.5}]})


def test_policy_hash_changes_with_any_threshold(tmp_path):
    text = (POLICY_DIR / "default.yaml").read_text()
    changed = tmp_path / "default.yaml"
    changed.write_text(text.replace("max: 0.6", "max: 0.61", 1))
    assert load_policy(changed).sha256 != load_policy("default").sha256
    assert load_policy(POLICY_DIR / "default.yaml").sha256 == load_policy("default").sha256


def test_auto_release_without_dp_is_refused():
    with pytest.raises(PolicyError, match="auto_release requires privacy.require_dp"):
        parse_policy({"name": "x", "privacy": {"require_dp": False}, "release": {"auto_release": True}})


def test_cli_policy_check(tmp_path):
    ok = runner.invoke(app, ["policy", "check", str(POLICY_DIR / "healthcare.yaml"), "finance"])
    assert ok.exit_code == 0, ok.output
    assert "healthcare.yaml: valid" in ok.output and "finance: valid" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "checks": [{"metric": "privacy.nope", "max": 1},
                                                             {"metric": "fidelity.quality.overall"}]}))
    r = runner.invoke(app, ["policy", "check", str(bad)])
    assert r.exit_code == 2
    assert "2 problems" in r.output and "Traceback" not in r.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    r = runner.invoke(app, ["policy", "check", str(broken)])
    assert r.exit_code == 2 and "not valid YAML" in r.output
    listing = runner.invoke(app, ["policy", "check", "--list-metrics"])
    assert listing.exit_code == 0
    assert [line.split("\t")[0] for line in listing.output.strip().splitlines()] == list(METRIC_IDS)
