"""Connectors, FHIR R4: Bundles and bulk NDJSON built here from the specification's resource
shapes (Patient, Encounter, Observation, Condition), valid and invalid, mapped to the
patients entity table and event tables; names and identifiers never read; errors name
files, entries and fields, never values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import connectors
from synthkit.errors import SourceError
from synthkit.table import Table

SECRET = "SECRET_CELL_VALUE_4242"


def patient(pid: str, *, birth: str = "1970-05-17", gender: str = "female", **extra) -> dict:
    return {
        "resourceType": "Patient", "id": pid,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.1", "value": f"{SECRET}-ssn-{pid}"}],
        "name": [{"family": f"{SECRET}-family", "given": [f"{SECRET}-given"]}],
        "telecom": [{"system": "phone", "value": f"{SECRET}-phone"}],
        "gender": gender, "birthDate": birth,
        "address": [{"use": "home", "line": [f"{SECRET} street 1"], "city": f"{SECRET}-city",
                     "postalCode": "12345", "state": "MA", "country": "US"}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
        **extra,
    }


def encounter(eid: str, subject: str, start: str, end: str | None = None, status: str = "finished") -> dict:
    period = {"start": start} | ({"end": end} if end else {})
    return {"resourceType": "Encounter", "id": eid, "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}],
            "subject": {"reference": subject}, "period": period}


def observation(oid: str, subject: str, when: str, code: str = "8867-4", value: float = 72.0, unit: str = "/min") -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": subject}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def blood_pressure(oid: str, subject: str, when: str) -> dict:
    def component(code: str, value: float) -> dict:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": {"reference": subject}, "effectiveDateTime": when,
            "component": [component("8480-6", 120.0), component("8462-4", 80.0)]}


def condition(cid: str, subject: str, onset: str, clinical: str = "active") -> dict:
    return {"resourceType": "Condition", "id": cid,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": clinical}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": "confirmed"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            "subject": {"reference": subject}, "onsetDateTime": onset}


def bundle(resources: list[dict], *, full_urls: list[str] | None = None) -> dict:
    entries = []
    for i, r in enumerate(resources):
        entry = {"resource": r}
        if full_urls:
            entry["fullUrl"] = full_urls[i]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """Two patients in a searchset Bundle, one in a transaction Bundle with urn:uuid
    references, and bulk NDJSON for the rest."""
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(bundle([
        patient("p1", birth="1970-05-17", gender="female"),
        patient("p2", birth="1985", gender="male", deceasedDateTime="2023-02-01T08:00:00+01:00"),
        encounter("e1", "Patient/p1", "2023-01-05T10:00:00+01:00", "2023-01-05T12:30:00+01:00"),
        observation("o1", "Patient/p1", "2023-01-05T10:15:00+01:00", value=88.0),
        blood_pressure("o2", "Patient/p1", "2023-01-05T10:20:00+01:00"),
        condition("c1", "Patient/p2", "2022-12-24"),
        {"resourceType": "Practitioner", "id": "dr1", "name": [{"family": SECRET}]},
    ])))
    uuid = "urn:uuid:6c2f7a52-8f7b-4a5e-9e3b-0b1e1f0a0c01"
    p3 = patient("ignored", gender="other")
    del p3["id"]
    (folder / "b.json").write_text(json.dumps(bundle(
        [p3, encounter("e3", uuid, "2023-03-01T09:00:00Z")], full_urls=[uuid, "urn:uuid:e3"]) | {"type": "transaction"}))
    (folder / "Observation.ndjson").write_text("\n".join(json.dumps(o) for o in [
        observation("o3", "Patient/p2", "2023-02-01T07:00:00+01:00", code="2339-0", value=5.4, unit="mmol/L"),
        observation("o4", "Patient/unknown", "2023-02-01T07:00:00Z"),
    ]) + "\n")
    return folder


def test_fhir_export_maps_to_patients_and_events(export: Path) -> None:
    source = connectors.read_source(f"fhir:{export}")
    assert source.kind == "fhir" and source.entity_table == "patients" and source.entity_key == "patient_id"
    assert source.events_tables == ("encounters", "observations", "conditions") and source.sequence_index == "time"
    patients = source.tables["patients"].set_index("patient_id")
    assert sorted(patients.index) == ["p1", "p2", "urn:uuid:6c2f7a52-8f7b-4a5e-9e3b-0b1e1f0a0c01"]
    assert patients.loc["p1", "birth_date"] == pd.Timestamp("1970-05-17")
    assert patients.loc["p2", "birth_date"] == pd.Timestamp("1985-01-01")  # partial date → first day
    assert patients.loc["p2", "deceased"] is True and patients.loc["p1", "deceased"] is None
    assert patients.loc["p2", "deceased_date"] == pd.Timestamp("2023-02-01T07:00:00Z")
    assert patients.loc["p1", "region"] == "MA" and patients.loc["p1", "marital_status"] == "M"
    # names, identifiers, telecom, street, city: never read
    for frame in source.tables.values():
        assert not frame.astype(str).apply(lambda c: c.str.contains(SECRET)).any().any()

    enc = source.tables["encounters"].set_index("encounter_id")
    assert enc.loc["e1", "time"] == pd.Timestamp("2023-01-05T09:00:00Z")  # offsets → UTC
    assert enc.loc["e1", "length_of_stay_hours"] == 2.5
    assert enc.loc["e3", "patient_id"] == "urn:uuid:6c2f7a52-8f7b-4a5e-9e3b-0b1e1f0a0c01"  # urn reference resolved

    obs = source.tables["observations"]
    assert sorted(obs["observation_id"]) == ["o1", "o2", "o2", "o3"]  # o4's subject is not exported: dropped
    bp = obs[obs["observation_id"] == "o2"].set_index("code")
    assert bp.loc["8480-6", "value"] == 120.0 and bp.loc["8462-4", "unit"] == "mm[Hg]"
    assert obs.set_index("observation_id").loc["o3", "unit"] == "mmol/L"
    cond = source.tables["conditions"].iloc[0]
    assert cond["clinical_status"] == "active" and cond["time"] == pd.Timestamp("2022-12-24T00:00:00Z")


def test_schemas_mark_identifiers_and_public_value_sets(export: Path) -> None:
    source = connectors.read_source(f"fhir:{export}")
    patients = source.schemas["patients"]
    assert patients.entity_key == "patient_id" and patients.column("patient_id").kind == "identifier"
    assert patients.column("gender").categories == ("male", "female", "other", "unknown")
    assert {"birth_date", "region"} <= set(patients.quasi_identifiers)
    assert source.schemas["encounters"].column("encounter_id").kind == "identifier"
    for name, frame in source.tables.items():  # each table validates against its schema
        Table.from_frame(frame, source.schemas[name])


def test_every_mapped_column_is_kept_and_formats_come_from_the_standard(export: Path) -> None:
    """A column no resource fills (no observation here has a coded value) is kept: whether
    it exists must not depend on one record. Time zone and date-ness are FHIR's, not the data's."""
    from connectors.fhir import TABLE_KINDS
    source = connectors.read_source(f"fhir:{export}")
    for name, frame in source.tables.items():
        assert list(frame.columns) == list(TABLE_KINDS[name]) == source.schemas[name].names
    assert source.tables["observations"]["value_code"].isna().all()
    assert source.schemas["patients"].column("birth_date").time_unit == "day"
    assert source.schemas["encounters"].column("time").timezone == "UTC"
    assert source.sequence_frames().events_schema.column("time").timezone == "UTC"


def test_sequence_frames_stack_events_by_patient_and_time(export: Path) -> None:
    sf = connectors.read_source(f"fhir:{export}").sequence_frames()
    events = sf.events
    assert sf.entity_key == "patient_id" and sf.sequence_index == "time"
    assert list(events.columns[:3]) == ["patient_id", "time", "event_type"]
    assert len(events) == 1 + 1 + 4 + 1  # encounters e1, e3; observations o1, o2 x2, o3; condition c1
    assert events.groupby("patient_id")["time"].apply(lambda t: t.is_monotonic_increasing).all()
    p1 = events[events["patient_id"] == "p1"]
    assert p1["event_type"].tolist() == ["encounters", "observations", "observations", "observations"]
    assert set(events["patient_id"]) == set(sf.context["patient_id"])  # p1, p2 and the urn patient
    assert sf.events_schema.column("event_type").categories == ("encounters", "observations", "conditions")
    assert sf.events_schema.column("value").nullable  # absent for encounters and conditions
    Table.from_frame(events, sf.events_schema)
    Table.from_frame(sf.context, sf.context_schema)


def test_invalid_resources_are_reported_by_file_entry_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    bad_birth = patient("p1", birth=f"{SECRET}")
    bad_obs = observation("o1", "Patient/p1", "2023-01-01T00:00:00Z")
    del bad_obs["code"]
    unknown_field = patient("p2") | {"favouriteColour": SECRET}
    (folder / "x.json").write_text(json.dumps(bundle([bad_birth, bad_obs, unknown_field, patient("p3")])))
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"fhir:{folder}")
    message = str(err.value)
    assert "3 invalid FHIR R4 resources" in message
    assert "x.json entry 0 (Patient): birthDate" in message
    assert "x.json entry 1 (Observation): code (missing)" in message
    assert "favouriteColour (extra_forbidden)" in message
    assert SECRET not in message
    source = connectors.read_source(f"fhir:{folder}", on_invalid="skip")
    assert source.tables["patients"]["patient_id"].tolist() == ["p3"]


def test_codes_outside_required_value_sets_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "codes"
    folder.mkdir()
    (folder / "p.ndjson").write_text(json.dumps(patient("p1", gender="f")) + "\n" + json.dumps(patient("p2")) + "\n")
    with pytest.raises(SourceError, match=r"patients.gender: codes outside the FHIR R4 value set"):
        connectors.read_source(f"fhir:{folder}")


@pytest.mark.parametrize("content, problem", [
    ('{"resourceType": "Patient", "id": "p1",\n "gender": ', r"not valid JSON \(line 2\)"),
    ("[1, 2]", "not a FHIR resource or Bundle"),
])
def test_broken_json_is_named(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "broken.json").write_text(content)
    with pytest.raises(SourceError, match=problem):
        connectors.read_source(f"fhir:{tmp_path}")


def test_ndjson_line_numbers_and_no_patients(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").write_text(json.dumps(patient("p1")) + "\n" + SECRET + "\n")
    with pytest.raises(SourceError, match="Patient.ndjson line 2 is not valid JSON") as err:
        connectors.read_source(f"fhir:{tmp_path}")
    assert SECRET not in str(err.value)
    (tmp_path / "Patient.ndjson").write_text(json.dumps(condition("c1", "Patient/p1", "2020-01-01")) + "\n")
    with pytest.raises(SourceError, match="no Patient resources"):
        connectors.read_source(f"fhir:{tmp_path}")


def test_missing_folder_and_table_pick(export: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        connectors.read_source(f"fhir:{export / 'nope'}")
    with pytest.raises(SourceError, match="several tables"):
        connectors.read(f"fhir:{export}")
    patients = connectors.read(f"fhir:{export}", table="patients")
    assert len(patients) == 3 and np.all(patients.columns[:2] == ["patient_id", "birth_date"])
