"""DPHMM on a small clinical panel shaped like survival/pbcseq (issue 18, session 11): 300
patients, 1-16 visits, a day index with gaps over 0..5000, 0/1 float flags with NaN, a
skewed positive lab value, a rising age; a context table with a 3-valued status and a
90% / 10% sex. Fitted with the defaults at eps = 3 (no --max-length) through the CLI.

Every generated number must lie inside its column's released range (read from the
bundle), a column generated empty must be all null, the flags only 0/1/NaN, and the index
finite, whole, strictly increasing per entity and inside the reach of the released starts
and gaps.

Negative control: df40585 (before the fix) stops the default fit with "too few entities to
choose the number of events kept per entity" (rc 2) and, with --max-length 20, writes
`day` at ±9.2e18 and flags at -16,480 (trial T); the main test fails there. The panel's
brackets (test_panel_is_shaped_like_pbcseq) pass on both."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")

FLAGS = ("ascites", "hepato", "spiders")


def panel(n: int = 300, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows, ctx = [], []
    for i in range(1, n + 1):
        k = 1 + int(rng.binomial(15, 0.35))
        gaps = rng.choice([180, 365, 730], size=k - 1, p=[0.3, 0.6, 0.1]) + rng.integers(-20, 21, size=k - 1)
        day = np.concatenate([[0], np.cumsum(np.maximum(gaps, 1))])
        day = day[day <= 5000]
        age0 = float(rng.normal(50, 10))
        base = rng.random(3) < np.array([0.1, 0.5, 0.3])
        lab = float(rng.lognormal(0.0, 1.0))
        for d in day:
            flags = [np.nan if rng.random() < 0.1 else float(b or rng.random() < 0.1) for b in base]
            rows.append({"id": i, "day": int(d), "age_visit": round(age0 + d / 365.25, 2),
                         **dict(zip(FLAGS, flags)),
                         "bili": np.nan if rng.random() < 0.05 else round(lab * float(rng.lognormal(0, 0.3)), 1)})
        ctx.append({"id": i, "status": int(rng.choice([0, 1, 2], p=[0.55, 0.06, 0.39])),
                    "sex": "f" if rng.random() < 0.9 else "m", "age": round(age0, 2)})
    return pd.DataFrame(rows), pd.DataFrame(ctx)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("pbc")
    events, ctx = panel()
    ev, cx = folder / "events.csv", folder / "ctx.csv"
    events.to_csv(ev, index=False)
    ctx.to_csv(cx, index=False)
    bundle, out = folder / "B", folder / "S"
    handler = _Collect()
    logging.getLogger("synthkit").addHandler(handler)
    try:
        fit = runner.invoke(app, ["fit", str(ev), "--context", str(cx), "--entity-key", "id", "--sequence-index",
                                  "day", "--model", "dphmm", "--epsilon", "3", "--epochs", "2", "--device", "cpu",
                                  "--seed", "0", "--out", str(bundle)], catch_exceptions=False)
        gen = None
        if fit.exit_code == 0:
            gen = runner.invoke(app, ["generate", str(bundle), "--entities", "300", "--out", str(out), "--seed", "1"],
                                catch_exceptions=False)
    finally:
        logging.getLogger("synthkit").removeHandler(handler)
    return {"fit": fit, "gen": gen, "bundle": bundle, "out": out, "log": handler.lines}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_panel_is_shaped_like_pbcseq():
    """Brackets on the data (pass before and after the fix)."""
    events, ctx = panel()
    lengths = events.groupby("id").size()
    assert 250 <= len(ctx) <= 350 and 4 <= lengths.mean() <= 8 and lengths.max() <= 16
    assert 0 <= events["day"].min() and events["day"].max() <= 5000
    for f in FLAGS:
        assert set(events[f].dropna().unique()) <= {0.0, 1.0} and events[f].isna().any()
    assert (events["bili"].dropna() > 0).all() and events["bili"].skew() > 1
    assert (events.groupby("id")["age_visit"].diff().dropna() >= 0).all()
    assert 0.85 <= (ctx["sex"] == "f").mean() <= 0.95


def _bounds(manifest: dict, name: str) -> tuple[tuple[float, float] | None, bool]:
    state = manifest["transformer"].get(name, {})
    b = state.get("bounds")
    return (None if b is None else (float(b[0]), float(b[1]))), bool(state.get("empty", False))


def test_defaults_on_a_small_panel_keep_every_value_in_its_released_range(fitted):
    fit, gen = fitted["fit"], fitted["gen"]
    assert fit.exit_code == 0, fit.output[-2000:]  # the defaults work on 300 entities (no --max-length)
    assert gen is not None and gen.exit_code == 0, gen.output[-2000:]
    assert any("public cap" in line or "max_length chosen under DP" in line for line in fitted["log"])
    manifest = json.loads((fitted["bundle"] / "manifest.json").read_text())
    ctx_manifest = json.loads((fitted["bundle"] / "context" / "manifest.json").read_text())
    events = pd.read_csv(fitted["out"] / "events.csv")
    context = pd.read_csv(fitted["out"] / "context.csv")
    assert len(context) == 300 and len(events) > 0  # bracket
    # the last guard (ranges.within_released) clips what a decoding step let out; the decoder
    # itself must keep to the ranges, or the checks below could not fail (review R)
    assert not any("fell outside its released range" in line for line in fitted["log"]), fitted["log"]

    # every numeric event column: inside its released range, or all null where empty
    for name in ("age_visit", *FLAGS, "bili"):
        bounds, empty = _bounds(manifest, name)
        x = pd.to_numeric(events[name], errors="coerce")
        if empty:
            assert x.isna().all(), name
            assert any(repr(name) in line and "bounds" in line for line in fitted["log"]), name  # named, with the fix
            continue
        assert bounds is not None, name
        vals = x.dropna()
        assert ((vals >= bounds[0] - 1e-9) & (vals <= bounds[1] + 1e-9)).all(), (name, vals.min(), vals.max(), bounds)
    for f in FLAGS:
        assert set(pd.to_numeric(events[f], errors="coerce").dropna().unique()) <= {0.0, 1.0}, f

    # context numbers likewise
    unlearned = manifest["training"].get("unlearned_context") or []
    for name in ("status", "age"):
        bounds, empty = _bounds(ctx_manifest, name)
        empty = empty or name in unlearned
        x = pd.to_numeric(context[name], errors="coerce")
        if empty:
            assert x.isna().all(), name
            continue
        vals = x.dropna()
        assert ((vals >= bounds[0] - 1e-9) & (vals <= bounds[1] + 1e-9)).all(), (name, vals.min(), vals.max(), bounds)

    # the index: whole, finite, strictly increasing, inside the released starts' and gaps' reach
    day = pd.to_numeric(events["day"], errors="raise").to_numpy(dtype=float)
    assert np.isfinite(day).all() and (np.abs(day) <= 2.0**52).all()
    assert (events.assign(day=day).groupby("id")["day"].diff().dropna() > 0).all()
    layout = manifest["sequence"]["layout"]
    g_hi = float(np.exp(layout["gap"]["transform"]["bounds"][1])) if layout.get("gap") else 1.0
    g_hi = max([g_hi, *[float(v) for v in layout["gap"].get("labels", [])]]) if layout.get("gap") else g_hi
    start = ctx_manifest["transformer"]["__start__"]
    if start.get("labels") is not None:
        whole = [float(v) for v in start["labels"] if v not in ("__other__", "__null__")]
        s_lo, s_hi = min(whole), max(whole)
    else:
        s_lo, s_hi = (float(v) for v in start["bounds"])
    reach = s_hi + (int(layout["max_length"]) - 1) * g_hi
    assert day.min() >= s_lo - 0.5 and day.max() <= min(reach, 2.0**53) + 0.5, (day.min(), day.max(), s_lo, reach)


def test_a_declared_non_decreasing_column_is_numeric():
    """--non-decreasing age_visit without a schema: the noise of the DP kind inference may
    call the column labels; the declaration (public) makes it continuous instead of being
    refused, and a refusal names the option (control df40585: no `declared_numeric`, and
    the message said only 'non_decreasing')."""
    from synthkit.errors import ConfigError
    from synthkit.models.hmm.kinds import declared_numeric
    from synthkit.models.hmm.trends import check_non_decreasing
    from synthkit.schema import Column, Schema

    schema = Schema(columns=(Column(name="id", kind="identifier", nullable=False),
                             Column(name="day", kind="integer", nullable=False),
                             Column(name="age_visit", kind="categorical", nullable=False),
                             Column(name="stage", kind="categorical")),
                    entity_key="id", sequence_index="day").validate()
    fixed = declared_numeric(schema, ("age_visit",))
    assert fixed.column("age_visit").kind == "continuous" and not fixed.column("age_visit").nullable
    assert fixed.column("stage").kind == "categorical"  # not declared: left as inferred (bracket)
    with pytest.raises(ConfigError, match="--non-decreasing"):
        check_non_decreasing(("stage",), [c for c in fixed.columns if c.name not in ("id", "day")])
