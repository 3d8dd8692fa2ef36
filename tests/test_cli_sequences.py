"""CLI for sequences: fit --model dphmm, generate --entities (a folder with the events and
context tables, written atomically), inspect (the entity as the privacy unit)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app
from test_hmm import clinic

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path, Path]:
    events, patients = clinic(n=700, seed=2)
    folder = tmp_path_factory.mktemp("seq")
    ev, pt = folder / "visits.csv", folder / "patients.csv"
    events.to_csv(ev, index=False)
    patients.to_csv(pt, index=False)
    long = folder / "long.csv"
    events.merge(patients, on="patient_id").to_csv(long, index=False)
    return ev, pt, long


def _fit(data: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", str(data), "--model", "dphmm", "--entity-key", "patient_id", "--sequence-index", "visit_date",
            "--epsilon", "3", "--delta", "1e-6", "--epochs", "2", "--batch-size", "100", "--device", "cpu",
            "--seed", "0", "--out", str(out), *extra]


def test_fit_generate_inspect_with_context_table(files, tmp_path):
    ev, pt, _ = files
    model = tmp_path / "m"
    r = _run(*_fit(ev, model, "--context", str(pt), "--max-length", "8", "--states", "3"))
    assert r.exit_code == 0, r.output
    assert (model / "manifest.json").is_file() and (model / "context" / "manifest.json").is_file()

    out = tmp_path / "syn"
    r = _run("generate", str(model), "--entities", "400", "--out", str(out), "--seed", "1")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["context.csv", "events.csv"]
    events, context = pd.read_csv(out / "events.csv"), pd.read_csv(out / "context.csv")
    assert list(events.columns) == ["patient_id", "visit_date", "kind", "lab", "n_meds"]
    assert list(context.columns) == ["patient_id", "sex", "site", "birth_year"]
    assert len(context) == 400 and set(events["patient_id"]) <= set(context["patient_id"])
    dates = pd.to_datetime(events["visit_date"])
    assert (dates.groupby(events["patient_id"]).diff().dropna() > pd.Timedelta(0)).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".syn")]  # no partial folder left

    again = tmp_path / "syn2"
    _run("generate", str(model), "--entities", "400", "--out", str(again), "--seed", "1")
    assert (again / "events.csv").read_bytes() == (out / "events.csv").read_bytes()  # seeded: identical
    r = _run("generate", str(model), "--entities", "10", "--out", str(out), "--seed", "2")
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = _run("generate", str(model), "--rows", "10", "--out", str(tmp_path / "x"))
    assert r.exit_code == 2 and "--entities" in r.output

    info = json.loads(_run("inspect", str(model), "--json").output)
    assert info["model"] == "DPHMM"
    assert info["privacy"]["unit"] == "entity" and info["privacy"]["max_rows_per_unit"] == 8
    assert info["privacy"]["epsilon_spent"] <= 3.0 + 1e-9
    assert info["sequence"]["context_model"] == "DPTVAE" and info["sequence"]["context_table"] is True
    names = {e["name"] for e in info["privacy"]["events"]}
    assert {"count:entities", "dp-sgd:hmm", "context:dp-sgd", "gaps:common", "categories:kind"} <= names
    text = _run("inspect", str(model)).output
    assert "differential privacy per entity" in " ".join(text.split())
    assert "one entity's whole sequence" in " ".join(text.split())


def test_one_table_form_parquet_and_errors(files, tmp_path):
    _, _, long = files
    model = tmp_path / "m1"
    r = _run(*_fit(long, model, "--context-column", "sex", "--context-column", "site",
                   "--context-column", "birth_year"))
    assert r.exit_code == 0, r.output
    out = tmp_path / "syn"
    r = _run("generate", str(model), "--entities", "200", "--out", str(out), "--format", "parquet", "--seed", "0")
    assert r.exit_code == 0, r.output
    events = pd.read_parquet(out / "events.parquet")
    assert list(events.columns) == list(pd.read_csv(long, nrows=1).columns)
    assert (events.groupby("patient_id")[["sex", "site", "birth_year"]].nunique(dropna=False) == 1).all().all()
    assert pd.api.types.is_datetime64_any_dtype(events["visit_date"])

    bad = _fit(long, tmp_path / "never")
    bad.remove("--sequence-index")
    bad.remove("visit_date")
    r = _run(*bad)
    assert r.exit_code == 2 and "--sequence-index" in r.output and "Traceback" not in r.output
    r = _run("fit", str(long), "--model", "dptvae", "--sequence-index", "visit_date", "--epsilon", "3",
             "--out", str(tmp_path / "never"))
    assert r.exit_code == 2 and "dphmm" in r.output
    assert not (tmp_path / "never").exists()


def test_events_without_context_columns_fit_and_generate(files, tmp_path):
    """A transactions export (entity key, time index, event columns, no per-entity
    attribute) is a valid sequence input: its bundle's context schema holds only the
    entity key, and `generate` must sample it (it refused every such bundle with "no
    column to learn" from the manifest check)."""
    ev, _, _ = files
    events_only = tmp_path / "events_only.csv"
    pd.read_csv(ev).to_csv(events_only, index=False)
    model = tmp_path / "m"
    r = _run(*_fit(events_only, model, "--max-length", "6", "--states", "2"))
    assert r.exit_code == 0, r.output
    manifest = json.loads((model / "manifest.json").read_text())
    assert list(manifest["sequence"]["context_schema"]["columns"]) == ["patient_id"]

    out = tmp_path / "syn"
    r = _run("generate", str(model), "--entities", "50", "--out", str(out), "--seed", "1")
    assert r.exit_code == 0, r.output
    events = pd.read_csv(out / "events.csv")
    assert list(events.columns) == ["patient_id", "visit_date", "kind", "lab", "n_meds"]
    assert 1 <= events["patient_id"].nunique() <= 50
    assert events.groupby("patient_id").size().max() <= 6
    r = _run("inspect", str(model))
    assert r.exit_code == 0, r.output


def test_a_context_table_of_identifiers_only_fits_generates_and_evaluates(files, tmp_path):
    """A context table whose only columns besides the key are identifiers (a record number)
    gives entities with no attribute to learn: the fit must still be sampled like an
    events-only one (it was refused: "no column to learn"), the identifier comes back as
    surrogates, and `evaluate` scores the events with the sequence metrics."""
    ev, pt, _ = files
    ids = pd.read_csv(pt)[["patient_id"]]
    ids["record_no"] = [f"R{i * 7 + 3:07d}" for i in range(len(ids))]
    ctx = tmp_path / "ids.csv"
    ids.to_csv(ctx, index=False)
    model = tmp_path / "m"
    r = _run(*_fit(ev, model, "--context", str(ctx), "--max-length", "6", "--states", "2"))
    assert r.exit_code == 0, r.output
    manifest = json.loads((model / "manifest.json").read_text())
    kinds = {n: c["kind"] for n, c in manifest["sequence"]["context_schema"]["columns"].items()}
    assert kinds == {"patient_id": "identifier", "record_no": "identifier"}

    out = tmp_path / "syn"
    r = _run("generate", str(model), "--entities", "60", "--out", str(out), "--seed", "1")
    assert r.exit_code == 0, r.output
    context, events = pd.read_csv(out / "context.csv"), pd.read_csv(out / "events.csv")
    assert list(context.columns) == ["patient_id", "record_no"] and len(context) == 60
    assert context["record_no"].is_unique and not set(context["record_no"]) & set(ids["record_no"])
    assert set(events["patient_id"]) <= set(context["patient_id"])

    rep = tmp_path / "rep"
    r = _run("evaluate", str(model), "--real", str(ev), "--synthetic", str(out / "events.csv"), "--out", str(rep),
             "--format", "json")
    assert r.exit_code == 0, r.output
    metrics = json.loads((rep / "report.json").read_text())
    names = json.dumps(metrics)
    for name in ("sequence.length_similarity", "sequence.ordering_violations"):
        assert name in names, name


def test_non_decreasing_is_a_public_fit_option(files, tmp_path):
    """`--non-decreasing COLUMN` (public, like --max-gap) declares an event column that never
    falls within an entity; the generated column then never falls. A misspelled column is
    refused before any fit, and the option belongs to dphmm only."""
    ev, _, _ = files
    model = tmp_path / "m"
    r = _run(*_fit(ev, model, "--max-length", "6", "--states", "2", "--non-decreasing", "n_meds"))
    assert r.exit_code == 0, r.output
    out = tmp_path / "syn"
    r = _run("generate", str(model), "--entities", "150", "--out", str(out), "--seed", "1")
    assert r.exit_code == 0, r.output
    events = pd.read_csv(out / "events.csv").sort_values(["patient_id", "visit_date"], kind="stable")
    steps = events.groupby("patient_id")["n_meds"].diff().dropna()
    assert len(steps) > 20 and (steps >= 0).all()

    r = _run(*_fit(ev, tmp_path / "never", "--non-decreasing", "n_med"))
    assert r.exit_code == 2 and "--non-decreasing 'n_med'" in r.output and "n_meds" in r.output
    r = _run("fit", str(ev), "--model", "dptvae", "--epsilon", "3", "--non-decreasing", "n_meds",
             "--out", str(tmp_path / "never"))
    assert r.exit_code == 2 and "dphmm only" in r.output
    assert not (tmp_path / "never").exists()
