"""Format facts are public (declared in the schema) or canonical, never read from the rows
(issue 15, item 4).

Each test fits twice on NEIGHBOURING tables — the same rows but one — and compares what
the bundle records about formats: a boolean's spellings, a datetime's time zone, a
sequence index's time unit, the list of columns. On the code before this change one row
decided each of them (the first false spelling seen, the offset shared by every row,
whether ANY event had a time of day, whether ANY record filled a column), so each test
failed there. DP-noised numbers differ between the two fits and are not compared.

The fits are tiny (epochs=1, a few hundred rows): what is checked is state, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from connectors.banktx import read_source as read_banktx
from synthkit import DPCTGAN, DPTVAE, PrivacyBudget
from synthkit.bundle import load
from synthkit.models.hmm import DPHMM
from synthkit.schema import Column, Schema

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
SEQUENCE_BUDGET = PrivacyBudget(epsilon=10.0, delta=1e-6)  # a few hundred entities: the gap range needs it
N = 300


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _table(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Text booleans spelled True/False, times exported with a +02:00 offset."""
    rng = np.random.default_rng(seed)
    admitted = pd.Timestamp("2023-01-01T08:00:00+02:00") + pd.to_timedelta(rng.integers(0, 300 * 86400, n), unit="s")
    insured = np.where(rng.random(n) < 0.6, "True", "False").astype(object)
    insured[0] = "False"
    return pd.DataFrame({
        "insured": insured,
        "admitted": [t.isoformat() for t in admitted],
        "amount": np.round(rng.gamma(2.0, 40.0, n), 2),
        "ward": rng.choice(["icu", "surgery", "maternity"], n).astype(object),
    })


def _schema(**formats: Any) -> Schema:
    """Only public facts: kinds, bounds; format facts only where a test declares them."""
    spelling = {"true_false": formats["true_false"]} if "true_false" in formats else {}
    zone = {"timezone": formats["timezone"]} if "timezone" in formats else {}
    return Schema(columns=(
        Column(name="insured", kind="boolean", **spelling),
        Column(name="admitted", kind="datetime", bounds=("2022-12-01", "2024-01-01"), **zone),
        Column(name="amount", kind="continuous", bounds=(0.0, 1000.0)),
        Column(name="ward", kind="categorical", categories=("icu", "surgery", "maternity")),
    )).validate()


def _neighbour(frame: pd.DataFrame, column: str, value: Any) -> pd.DataFrame:
    """The same table with one row's `column` changed (row 0: the first value any scan sees)."""
    out = frame.copy()
    out.loc[0, column] = value
    return out


def _fit_manifest(model: Any, frame: pd.DataFrame, folder: Path, budget: PrivacyBudget = BUDGET,
                  **fit: Any) -> dict[str, Any]:
    model.fit(frame, budget=budget, **fit)
    model.save(folder)
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _format_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """Every format fact a manifest records: the schema's columns with their declared
    format keys, each transform's spellings and zone, and a sequence model's time axis."""
    facts: dict[str, Any] = {"columns": {name: {k: v for k, v in spec.items() if k in
                                                ("kind", "true_false", "timezone", "time_unit")}
                                         for name, spec in manifest["schema"]["columns"].items()}}
    for name, state in manifest["transformer"].items():
        facts[f"{name}.tokens"] = state.get("tokens")
        facts[f"{name}.tz"] = state.get("tz")
    if manifest.get("sequence"):
        facts["axis"] = manifest["sequence"]["layout"]["axis"]
    return facts


def _tvae() -> DPTVAE:
    return DPTVAE(epochs=1, batch_size=50, compress_dims=(16,), decompress_dims=(16,), embedding_dim=8,
                  device="cpu", seed=0)


# ------------------------------------------------------------------ booleans
def test_one_row_spelled_no_does_not_change_the_boolean_spelling(tmp_path: Path) -> None:
    real = _table()
    assert real.loc[0, "insured"] == "False"
    a = _fit_manifest(_tvae(), real, tmp_path / "a", schema=_schema())
    b = _fit_manifest(_tvae(), _neighbour(real, "insured", "no"), tmp_path / "b", schema=_schema())
    assert _format_facts(a) == _format_facts(b)
    assert a["transformer"]["insured"]["tokens"] is None  # canonical: a boolean column

    out = load(tmp_path / "b").sample(50, seed=1)
    assert out["insured"].dtype == "boolean"  # CSV writes true/false, read back as booleans


def test_a_declared_spelling_is_what_comes_out(tmp_path: Path) -> None:
    real = _table()
    model = _tvae()
    _fit_manifest(model, _neighbour(real, "insured", "no"), tmp_path / "m", schema=_schema(true_false=("yes", "no")))
    out = model.sample(200, seed=1)
    assert set(out["insured"].dropna()) <= {"yes", "no"} and out["insured"].notna().any()
    assert load(tmp_path / "m").sample(200, seed=1)["insured"].tolist() == out["insured"].tolist()


# ------------------------------------------------------------------ time zones
def test_one_row_with_another_utc_offset_does_not_change_the_time_zone(tmp_path: Path) -> None:
    real = _table()
    moved = pd.Timestamp(real.loc[0, "admitted"]).tz_convert("+01:00").isoformat()  # same instant, other offset
    a = _fit_manifest(_tvae(), real, tmp_path / "a", schema=_schema())
    b = _fit_manifest(_tvae(), _neighbour(real, "admitted", moved), tmp_path / "b", schema=_schema())
    assert _format_facts(a) == _format_facts(b)
    assert a["transformer"]["admitted"]["tz"] is None
    out = load(tmp_path / "a").sample(50, seed=1)
    assert pd.api.types.is_datetime64_dtype(out["admitted"]) and out["admitted"].dt.tz is None  # UTC, no offset


def test_a_declared_time_zone_is_what_comes_out_and_other_offsets_are_converted(tmp_path: Path) -> None:
    real = _table()
    moved = pd.Timestamp(real.loc[0, "admitted"]).tz_convert("+01:00").isoformat()
    model = _tvae()
    manifest = _fit_manifest(model, _neighbour(real, "admitted", moved), tmp_path / "m",
                             schema=_schema(timezone="Europe/Berlin"))
    assert manifest["transformer"]["admitted"]["tz"] == "Europe/Berlin"
    out = model.sample(100, seed=1)
    assert str(out["admitted"].dt.tz) == "Europe/Berlin"
    lo, hi = pd.Timestamp("2022-12-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC")
    assert out["admitted"].dropna().between(lo, hi).all()  # bounds are UTC instants


# ------------------------------------------------------------------ time unit
def _visits(n_entities: int = 400, seed: int = 0) -> pd.DataFrame:
    """Dated visits (every value a midnight), 3 per patient."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_entities):
        day = pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        for _ in range(3):
            day = day + pd.Timedelta(days=int(rng.integers(1, 30)))
            rows.append({"patient_id": f"P{i:04d}", "visit_date": day, "kind": str(rng.choice(["gp", "lab"]))})
    return pd.DataFrame(rows)


def _visit_schema(time_unit: str | None = None) -> Schema:
    return Schema(columns=(
        Column(name="patient_id", kind="identifier", nullable=False),
        Column(name="visit_date", kind="datetime", nullable=False, **({"time_unit": time_unit} if time_unit else {})),
        Column(name="kind", kind="categorical", nullable=False, categories=("gp", "lab")),
    ), entity_key="patient_id", sequence_index="visit_date").validate()


def _hmm() -> DPHMM:
    return DPHMM(n_states=2, epochs=1, batch_size=50, max_length=3, context_epochs=1, context_hidden=(8,),
                 context_embedding_dim=4, device="cpu", seed=0)


@pytest.mark.parametrize("time_unit", [None, "day"])
def test_one_event_with_a_time_of_day_does_not_change_the_time_unit(tmp_path: Path, time_unit: str | None) -> None:
    events = _visits()
    timed = events.copy()
    timed.loc[0, "visit_date"] = events.loc[0, "visit_date"] + pd.Timedelta(hours=10, minutes=30)
    a = _fit_manifest(_hmm(), events, tmp_path / "a", SEQUENCE_BUDGET, schema=_visit_schema(time_unit))
    model = _hmm()
    b = _fit_manifest(model, timed, tmp_path / "b", SEQUENCE_BUDGET, schema=_visit_schema(time_unit))
    assert _format_facts(a) == _format_facts(b)
    assert a["sequence"]["layout"]["axis"]["unit"] == (time_unit or "second")  # declared, else canonical
    if time_unit == "day":
        out = model.sample(40, seed=1)
        assert (out["visit_date"] == out["visit_date"].dt.normalize()).all()  # whole dates


# ------------------------------------------------------------------ connectors
def _bank_csv(path: Path, *, one_category: bool) -> Path:
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({
        "account": [f"DE{i % 60:04d}" for i in range(n)],
        "booking_date": [(pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(d))).date().isoformat()
                         for d in rng.integers(0, 200, n)],
        "amount": np.round(rng.normal(0, 80, n), 2),
        "currency": "EUR",
        "category": [None] * n,
    })
    if one_category:
        frame.loc[0, "category"] = "groceries"
    frame.to_csv(path, index=False)
    return path


def test_one_record_filling_an_empty_column_does_not_change_the_columns(tmp_path: Path) -> None:
    empty = read_banktx(_bank_csv(tmp_path / "a.csv", one_category=False), location="a.csv")
    filled = read_banktx(_bank_csv(tmp_path / "b.csv", one_category=True), location="b.csv")
    assert "category" in empty.tables["transactions"].columns
    assert list(empty.tables["transactions"].columns) == list(filled.tables["transactions"].columns)
    assert empty.schemas == filled.schemas
    assert empty.schemas["transactions"].column("booking_date").time_unit == "day"  # bank dates are dates


@pytest.mark.parametrize("model_class", [DPTVAE, DPCTGAN])
def test_all_null_columns_fit_and_generate(tmp_path: Path, model_class: type) -> None:
    """A column no record fills (kept by the connectors) fits under DP and comes out all
    null: a numeric one gets no DP range (no bin clears the noise), so it is released
    empty; a categorical or boolean one is all NULL label by its DP counts."""
    real = _table()
    for name in ("lab_value", "referral", "flag", "discharged"):
        real[name] = None
    schema = Schema(columns=(*_schema().columns, Column(name="lab_value", kind="continuous"),
                             Column(name="referral", kind="categorical"), Column(name="flag", kind="boolean"),
                             Column(name="discharged", kind="datetime"))).validate()
    params = dict(epochs=1, batch_size=50, embedding_dim=8, device="cpu", seed=0)
    shape = ({"compress_dims": (16,), "decompress_dims": (16,)} if model_class is DPTVAE
             else {"generator_dim": (16,), "critic_dim": (16,)})
    model = model_class(**shape, **params)
    manifest = _fit_manifest(model, real, tmp_path / "m", schema=schema)
    assert manifest["transformer"]["lab_value"]["empty"] is True
    assert manifest["transformer"]["discharged"]["empty"] is True
    out = load(tmp_path / "m").sample(200, seed=1)
    assert list(out.columns) == list(real.columns)
    assert out["lab_value"].isna().all() and out["discharged"].isna().all()
    assert out["amount"].notna().any()  # the other columns are generated as usual
