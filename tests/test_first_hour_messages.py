"""Messages that contradicted each other or the user (issue 17, third new-user trial,
finding 7).

1. The healthcare gate rejected a release on `privacy.singling_out.risk` "CI high 0.693 >
   0.05" while the report's own line said "the attack does not beat random guessing; the
   risk estimate is not informative". An uninformative estimate that misses the threshold
   is now a check that could not be measured (the policy's `if_missing` decides: healthcare
   still fails it, with that reason); a real (informative) high risk stays a measured
   failure; a bound that holds still passes.
   Negative control: `test_an_uninformative_attack_is_not_a_measured_risk_above_the_limit`
   against 580db96 fails (its row says "above the maximum 0.05").
2. `schema infer` without --entity-key, then `fit --schema s.yaml --entity-key id` was
   refused: "--entity-key differs from the schema's entity_key" although the schema
   declares none. The CLI key is now taken (the privacy unit becomes the entity).
   Negative control: `test_a_schema_without_entity_key_takes_the_cli_key` against 580db96
   fails with that ConfigError.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_gate import dp_privacy, make_report

from reports.gate import evaluate_gate
from reports.policy import load_policy

SO = "privacy.singling_out.risk"
NOTE = "the attack does not beat random guessing; the risk estimate is not informative"


def _with_singling_out(value: float, ci: tuple[float, float], *, informative: bool):
    report = make_report(privacy=dp_privacy(unit="entity", epsilon=2.9999))
    metrics = [dataclasses.replace(m, value=value, ci=ci, note=None if informative else NOTE,
                                   details={"attack_beats_baseline": informative, "informative": informative})
               if m.id == SO else m for m in report.metrics]
    return dataclasses.replace(report, metrics=metrics)


def _row(report, policy):
    return next(c for c in evaluate_gate(report, policy).checks if c.metric == SO)


def test_an_uninformative_attack_is_not_a_measured_risk_above_the_limit():
    """The Titanic case: value 0.12, CI (0, 0.693), attack no better than random."""
    row = _row(_with_singling_out(0.12, (0.0, 0.693), informative=False), load_policy("healthcare"))
    assert not row.passed and not row.skipped  # healthcare: if_missing: fail
    assert "not measured" in row.note and "not informative" in row.note, row.note
    assert "above the maximum" not in row.note, row.note


def test_a_real_high_risk_stays_a_measured_failure():
    """Positive control: the attack beats random guessing and the interval is above 0.05."""
    row = _row(_with_singling_out(0.4, (0.3, 0.5), informative=True), load_policy("healthcare"))
    assert not row.passed and "above the maximum 0.05" in row.note, row.note
    assert "not measured" not in row.note


def test_an_uninformative_attack_with_a_bound_that_holds_passes():
    """A narrow interval under the limit bounds the risk whatever the attack's strength: it
    passes, as on 580db96 (no check becomes stricter)."""
    row = _row(_with_singling_out(0.01, (0.0, 0.03), informative=False), load_policy("healthcare"))
    assert row.passed and not row.skipped and row.note is None


def test_a_policy_that_skips_what_cannot_be_measured_skips_it(tmp_path):
    from reports.policy import parse_policy
    policy = parse_policy({"name": "skip-so",
                           "checks": [{"metric": SO, "max": 0.05, "use": "ci_high", "if_missing": "skip",
                                       "why": "test"}]}, where="test")
    row = _row(_with_singling_out(0.12, (0.0, 0.693), informative=False), policy)
    assert row.passed and row.skipped and "not measured" in row.note


# ------------------------------------------------------------------ --entity-key and a schema without one
def test_a_schema_without_entity_key_takes_the_cli_key(tmp_path):
    from synthkit.cli import fit_model
    from synthkit.errors import ConfigError

    rng = np.random.default_rng(7)  # made-up public numbers: 150 entities x 2 rows
    frame = pd.DataFrame({"id": np.repeat(np.arange(150), 2), "x": rng.normal(10, 2, 300).round(2),
                          "c": rng.choice(["u", "v"], 300)})
    frame.to_csv(tmp_path / "p.csv", index=False)
    schema = tmp_path / "s.yaml"  # what `schema infer p.csv` writes: no entity_key, every column nullable
    schema.write_text("version: 1\ncolumns:\n  id: {kind: integer, nullable: true}\n"
                      "  x: {kind: continuous, nullable: true, bounds: [0, 20]}\n"
                      "  c: {kind: categorical, nullable: true, categories: [u, v]}\n")
    synth = fit_model(data=tmp_path / "p.csv", schema_path=schema, model="dptvae", epsilon=3.0, delta=1e-6,
                      no_privacy=False, epochs=1, batch_size=None, entity_key="id", max_rows_per_entity=2,
                      device="cpu", seed=1, out=tmp_path / "m", overwrite=False)
    summary = synth.privacy_summary()
    assert summary["unit"] == "entity" and "per entity" in summary["guarantee"], summary
    # a schema that declares another key is still refused, naming both
    other = tmp_path / "o.yaml"
    other.write_text(schema.read_text().replace("version: 1\n", "version: 1\nentity_key: c\n")
                     .replace("c: {kind: categorical, nullable: true, categories: [u, v]}",
                              "c: {kind: identifier, nullable: false}"))
    with pytest.raises(ConfigError, match="differs from the schema's entity_key 'c'"):
        fit_model(data=tmp_path / "p.csv", schema_path=other, model="dptvae", epsilon=3.0, delta=1e-6,
                  no_privacy=False, epochs=1, batch_size=None, entity_key="id", max_rows_per_entity=2,
                  device="cpu", seed=1, out=tmp_path / "m2", overwrite=False)
    assert not Path(tmp_path / "m2").exists()
