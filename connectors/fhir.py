"""FHIR R4 → an entity table (patients) and event tables (encounters, observations, conditions).

Input: a folder (or one file) of FHIR JSON — Bundles (`*.json`, any bundle type, e.g. a
searchset or a transaction bundle) or single resources, and/or FHIR Bulk Data export
files (`*.ndjson`, one resource per line). Every Patient, Encounter, Observation and
Condition is validated with `fhir.resources` (>= 8, its `R4B` package): the library no
longer ships a separate 4.0.1 (R4) package, and R4B (4.3.0) changed none of these four
resources nor Bundle, so R4 documents validate there unchanged. Required value-set
bindings the library does not enforce (gender, statuses) are checked here.

What is learned and what never is (the mapping decides, not the data):
- patients: birth date, gender, deceased (flag and date), marital status, and the
  address's state and country as COARSE regions. Names, identifiers (MRN, SSN...),
  telecom, street lines, city, postal code and free text are never read at all; the
  resource id is kept as `patient_id`, kind `identifier` (the entity key, never learned).
- encounters: start (`time`), end, length of stay, status (`encounter_status`), class, type.
- observations: time (effective[x] or issued), status (`observation_status`), category, code and code system,
  value with unit (valueQuantity) or coded value (valueCodeableConcept); components (e.g.
  systolic/diastolic) become one row each. Free-text values (valueString) are not read.
- conditions: onset (`time`, else recordedDate), abatement, code, clinical and
  verification status, category.
Every column of the mapping is kept, also one the export never fills (e.g. no observation
has a coded value): whether it exists must not depend on one record; its null share is
learned under DP. Every event table is keyed by `patient_id` and `time` (UTC; the schema
declares `timezone: UTC` for FHIR instants, and `time_unit: day` for the birth date, a
FHIR `date`). Events whose subject is not
a Patient in the export, or that have no time, are dropped and counted in a warning.

Invalid input (not JSON, a resource that fails R4 validation, a code outside a required
value set) is reported as files, entry/line numbers, resource types, field paths and
counts — never a value. With `on_invalid="skip"` invalid resources are left out and
counted instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import pandas as pd

from connectors.source import Source, schema_of
from synthkit.errors import SourceError

log = logging.getLogger(__name__)

ENTITY_KEY = "patient_id"
TIME = "time"
USED_TYPES = ("Patient", "Encounter", "Observation", "Condition")
_MAX_PROBLEMS = 8

# R4 required bindings (public: the FHIR specification, not the data)
GENDER = ("male", "female", "other", "unknown")
ENCOUNTER_STATUS = ("planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
                    "entered-in-error", "unknown")
OBSERVATION_STATUS = ("registered", "preliminary", "final", "amended", "corrected", "cancelled",
                      "entered-in-error", "unknown")
CLINICAL_STATUS = ("active", "recurrence", "relapse", "inactive", "remission", "resolved")
VERIFICATION_STATUS = ("unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error")

PATIENT_KINDS = {"patient_id": "identifier", "birth_date": "datetime", "gender": "categorical",
                 "deceased": "boolean", "deceased_date": "datetime", "marital_status": "categorical",
                 "region": "categorical", "country": "categorical"}
ENCOUNTER_KINDS = {"patient_id": "identifier", "time": "datetime", "encounter_id": "identifier",
                   "end": "datetime", "length_of_stay_hours": "continuous", "encounter_status": "categorical",
                   "class_code": "categorical", "type_code": "categorical"}
OBSERVATION_KINDS = {"patient_id": "identifier", "time": "datetime", "observation_id": "identifier",
                     "observation_status": "categorical", "category": "categorical", "code": "categorical",
                     "code_system": "categorical", "value": "continuous", "unit": "categorical",
                     "value_code": "categorical"}
CONDITION_KINDS = {"patient_id": "identifier", "time": "datetime", "condition_id": "identifier",
                   "abatement": "datetime", "code": "categorical", "code_system": "categorical",
                   "clinical_status": "categorical", "verification_status": "categorical",
                   "category": "categorical"}
# format facts fixed by the standard: `date` fields hold dates, instants are read as UTC
FORMATS = {"birth_date": {"time_unit": "day"}, "deceased_date": {"timezone": "UTC"}, "time": {"timezone": "UTC"},
           "end": {"timezone": "UTC"}, "abatement": {"timezone": "UTC"}}
TABLE_KINDS = {"patients": PATIENT_KINDS, "encounters": ENCOUNTER_KINDS, "observations": OBSERVATION_KINDS,
               "conditions": CONDITION_KINDS}
EVENTS_TABLES = ("encounters", "observations", "conditions")
_BOUND = {  # (table, column) -> public categories; checked against the data
    ("patients", "gender"): GENDER,
    ("encounters", "encounter_status"): ENCOUNTER_STATUS,
    ("observations", "observation_status"): OBSERVATION_STATUS,
    ("conditions", "clinical_status"): CLINICAL_STATUS,
    ("conditions", "verification_status"): VERIFICATION_STATUS,
}


@dataclass(frozen=True, slots=True)
class _Record:
    resource: dict[str, Any]
    where: str             # "file.json entry 3" / "file.ndjson line 12": no value
    full_url: str | None


def read_source(path: Path, *, location: str, on_invalid: Literal["raise", "skip"] = "raise") -> Source:
    """Read a FHIR export folder (or file) into patients + event tables."""
    if on_invalid not in ("raise", "skip"):
        raise SourceError(f"{location!r}: on_invalid must be 'raise' or 'skip' (got {on_invalid!r})")
    files = _files(path, location)
    problems: list[str] = []
    n_invalid = 0
    skipped: Counter[str] = Counter()
    by_type: dict[str, list[_Record]] = {t: [] for t in USED_TYPES}
    for record in _records(files, location):
        rtype = record.resource.get("resourceType")
        if rtype not in by_type:
            skipped[str(rtype) if isinstance(rtype, str) and rtype.isalnum() else "(unknown)"] += 1
            continue
        issue = _validate(rtype, record.resource)
        if issue is not None:
            n_invalid += 1
            problems.append(f"{record.where} ({rtype}): {issue}")
            continue
        by_type[rtype].append(record)
    if n_invalid and on_invalid == "raise":
        raise SourceError(_problem_line(location, f"{n_invalid} invalid FHIR R4 resources", problems)
                          + "; fix them or pass on_invalid='skip'")
    if n_invalid:
        log.warning("%s: left out %d invalid FHIR resources", location, n_invalid)
    if skipped:
        log.info("%s: ignored resource types %s", location, dict(sorted(skipped.items())))
    if not by_type["Patient"]:
        raise SourceError(f"{location!r}: no Patient resources found in {len(files)} files; "
                          "the patients are the privacy unit and must be in the export")

    patients, aliases = _patients(by_type["Patient"], location)
    orphans = Counter[str]()
    timeless = Counter[str]()
    tables = {"patients": patients}
    for name, rtype, mapper in (("encounters", "Encounter", _encounter), ("observations", "Observation", _observation),
                                ("conditions", "Condition", _condition)):
        rows: list[dict[str, Any]] = []
        for record in by_type[rtype]:
            subject = _subject_key(record.resource, aliases)
            if subject is None:
                orphans[rtype] += 1
                continue
            new = mapper(record.resource)
            for row in new:
                row[ENTITY_KEY] = subject
            if any(row[TIME] is None for row in new):
                timeless[rtype] += 1
                new = [row for row in new if row[TIME] is not None]
            rows.extend(new)
        tables[name] = _frame(rows, TABLE_KINDS[name])
    if orphans:
        log.warning("%s: dropped events whose subject is not a Patient in the export: %s", location, dict(orphans))
    if timeless:
        log.warning("%s: dropped events with no time: %s", location, dict(timeless))

    bad_codes = []
    for (table, column), allowed in _BOUND.items():
        values = tables[table][column].dropna()
        outside = int((~values.isin(allowed)).sum())
        if outside:
            bad_codes.append(f"{table}.{column}: codes outside the FHIR R4 value set")
    if bad_codes:
        raise SourceError(_problem_line(location, "codes outside required FHIR value sets (fix the export: these fields take codes of the R4 value set only)", bad_codes))

    schemas = {
        name: schema_of(frame, TABLE_KINDS[name], entity_key=ENTITY_KEY, formats=FORMATS,
                        sequence_index=None if name == "patients" else TIME,
                        categories={c: v for (t, c), v in _BOUND.items() if t == name},
                        sensitive=("gender",) if name == "patients" else (),
                        quasi_identifiers=("birth_date", "gender", "region", "country") if name == "patients" else ())
        for name, frame in tables.items()
    }
    log.info("%s: read %d patients, %s", location, len(patients),
             ", ".join(f"{len(tables[n])} {n}" for n in EVENTS_TABLES))
    return Source(kind="fhir", location=location, tables=tables, schemas=schemas, entity_table="patients",
                  events_tables=EVENTS_TABLES, entity_key=ENTITY_KEY, sequence_index=TIME)


# ------------------------------------------------------------------ input
def _files(path: Path, location: str) -> list[Path]:
    if not path.exists():
        raise SourceError(f"{location!r}: no such file or folder")
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".json", ".ndjson"))
    if not files:
        raise SourceError(f"{location!r}: no .json or .ndjson files")
    return files


def _records(files: list[Path], location: str) -> Iterator[_Record]:
    for file in files:
        name = file.name
        if file.suffix.lower() == ".ndjson":
            with open(file, encoding="utf-8-sig", errors="strict") as f:
                try:
                    for number, line in enumerate(f, start=1):
                        if not line.strip():
                            continue
                        try:
                            doc = json.loads(line)
                        except json.JSONDecodeError:
                            raise SourceError(f"{location!r}: {name} line {number} is not valid JSON") from None
                        except (RecursionError, ValueError):  # ValueError: an integer of over 4,300 digits
                            raise SourceError(f"{location!r}: {name} line {number} is nested too deeply or holds a "
                                              "number too long to read; it is no FHIR resource") from None
                        _check_depth(doc, f"{name} line {number}", location)
                        if not isinstance(doc, dict):
                            raise SourceError(f"{location!r}: {name} line {number} is not a FHIR resource (a JSON object)")
                        yield from _unpack(doc, f"{name} line {number}", location)
                except UnicodeDecodeError:
                    raise SourceError(f"{location!r}: {name} is not UTF-8 (FHIR JSON must be UTF-8)") from None
        else:
            try:
                doc = json.loads(file.read_text(encoding="utf-8-sig"))
            except UnicodeDecodeError:
                raise SourceError(f"{location!r}: {name} is not UTF-8 (FHIR JSON must be UTF-8)") from None
            except json.JSONDecodeError as err:
                raise SourceError(f"{location!r}: {name} is not valid JSON (line {err.lineno})") from None
            except (RecursionError, ValueError):  # ValueError: an integer of over 4,300 digits
                raise SourceError(f"{location!r}: {name} is nested too deeply or holds a number too long to read; "
                                  "it is no FHIR resource or Bundle") from None
            _check_depth(doc, name, location)
            if not isinstance(doc, dict):
                raise SourceError(f"{location!r}: {name} is not a FHIR resource or Bundle (a JSON object)")
            yield from _unpack(doc, name, location)


# FHIR resources nest about a dozen levels (Bundle > entry > resource > component >
# valueCodeableConcept > coding ...); a Bundle nested in Bundles adds four per level.
MAX_DEPTH = 100


def _check_depth(doc: Any, where: str, location: str) -> None:
    """Refuse a document nested deeper than MAX_DEPTH before anything walks it: the Bundle
    unpacking and the R4 validation recurse, and would end in a RecursionError."""
    from synthkit.safeload import InputLimitError, check_depth
    try:
        check_depth(doc, where=where, max_depth=MAX_DEPTH)
    except InputLimitError:
        raise SourceError(f"{location!r}: {where} is nested more than {MAX_DEPTH} levels deep, which no FHIR "
                          "resource is; check the export") from None


def _unpack(doc: dict[str, Any], where: str, location: str) -> Iterator[_Record]:
    if doc.get("resourceType") != "Bundle":
        yield _Record(doc, where, None)
        return
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise SourceError(f"{location!r}: {where}: Bundle.entry must be a list")
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue  # e.g. a transaction-response entry without a resource
        full_url = entry.get("fullUrl")
        inner = f"{where} entry {i}"
        if resource.get("resourceType") == "Bundle":
            yield from _unpack(resource, inner, location)
        else:
            yield _Record(resource, inner, full_url if isinstance(full_url, str) else None)


_MODELS: dict[str, Any] = {}


def _validate(rtype: str, resource: dict[str, Any]) -> str | None:
    """None when the resource is valid R4, else field paths and error kinds (no values)."""
    from pydantic import ValidationError
    model = _MODELS.get(rtype)
    if model is None:
        from fhir.resources.R4B import get_fhir_model_class
        model = _MODELS[rtype] = get_fhir_model_class(rtype)
    try:
        model.model_validate(resource)
    except ValidationError as err:
        issues = sorted({f"{'.'.join(str(p) for p in e['loc']) or '(resource)'} ({e['type']})" for e in err.errors()})
        return ", ".join(issues[:4]) + (f" and {len(issues) - 4} more" if len(issues) > 4 else "")
    except (ValueError, TypeError) as err:
        return f"cannot be validated ({type(err).__name__})"
    return None


def _problem_line(location: str, head: str, problems: list[str]) -> str:
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
    return f"{location!r}: {head}: {shown}{more}"


# ------------------------------------------------------------------ mapping
def _patients(records: list[_Record], location: str) -> tuple[pd.DataFrame, dict[str, str]]:
    rows = []
    aliases: dict[str, str] = {}
    seen: set[str] = set()
    duplicates = 0
    for record in records:
        r = record.resource
        key = r.get("id") or record.full_url
        if not key:
            raise SourceError(f"{location!r}: {record.where} (Patient) has neither an id nor a Bundle fullUrl")
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        for alias in (key, f"Patient/{key}", record.full_url):
            if alias:
                aliases[alias] = key
        deceased = r.get("deceasedBoolean")
        if "deceasedDateTime" in r:
            deceased = True
        address = _home_address(r.get("address") or [])
        rows.append({
            "patient_id": key,
            "birth_date": r.get("birthDate"),
            "gender": r.get("gender"),
            "deceased": deceased,
            "deceased_date": r.get("deceasedDateTime"),
            "marital_status": _code(r.get("maritalStatus")),
            "region": address.get("state"),
            "country": address.get("country"),
        })
    if duplicates:
        log.warning("%s: %d Patient resources appear more than once; the first of each is kept", location, duplicates)
    frame = _frame(rows, PATIENT_KINDS)
    return frame, aliases


def _home_address(addresses: list[dict[str, Any]]) -> dict[str, Any]:
    current = [a for a in addresses if isinstance(a, dict) and not (a.get("period") or {}).get("end")]
    for a in current:
        if a.get("use") == "home":
            return a
    return current[0] if current else {}


def _encounter(r: dict[str, Any]) -> list[dict[str, Any]]:
    period = r.get("period") or {}
    start, end = period.get("start"), period.get("end")
    klass = r.get("class")
    types = r.get("type") or []
    return [{
        "time": start, "encounter_id": r.get("id"), "end": end, "length_of_stay_hours": None,
        "encounter_status": r.get("status"), "class_code": klass.get("code") if isinstance(klass, dict) else None,
        "type_code": _code(types[0]) if types else None,
    }]


def _observation(r: dict[str, Any]) -> list[dict[str, Any]]:
    time = (r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start")
            or r.get("effectiveInstant") or r.get("issued"))
    categories = r.get("category") or []
    base = {"time": time, "observation_id": r.get("id"), "observation_status": r.get("status"),
            "category": _code(categories[0]) if categories else None}
    parts = [r] + [c for c in (r.get("component") or []) if isinstance(c, dict)]
    rows = []
    for part in parts:
        code, system = _coding(part.get("code"))
        quantity = part.get("valueQuantity") or {}
        value_code = _code(part.get("valueCodeableConcept"))
        if "valueBoolean" in part:
            value_code = "true" if part["valueBoolean"] else "false"
        if part is r and len(parts) > 1 and not quantity and value_code is None:
            continue  # a panel whose values are all in its components
        rows.append(base | {"code": code, "code_system": system, "value": quantity.get("value"),
                            "unit": quantity.get("code") or quantity.get("unit"), "value_code": value_code})
    return rows


def _condition(r: dict[str, Any]) -> list[dict[str, Any]]:
    time = r.get("onsetDateTime") or (r.get("onsetPeriod") or {}).get("start") or r.get("recordedDate")
    abatement = r.get("abatementDateTime") or (r.get("abatementPeriod") or {}).get("start")
    code, system = _coding(r.get("code"))
    categories = r.get("category") or []
    return [{"time": time, "condition_id": r.get("id"), "abatement": abatement, "code": code, "code_system": system,
             "clinical_status": _code(r.get("clinicalStatus")), "verification_status": _code(r.get("verificationStatus")),
             "category": _code(categories[0]) if categories else None}]


def _coding(concept: Any) -> tuple[str | None, str | None]:
    if not isinstance(concept, dict):
        return None, None
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code"):
            return str(coding["code"]), coding.get("system")
    return None, None


def _code(concept: Any) -> str | None:
    return _coding(concept)[0]


_REFERENCE = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]*)?$")


def _subject_key(resource: dict[str, Any], aliases: dict[str, str]) -> str | None:
    subject = resource.get("subject") or resource.get("patient")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(ref, str):
        return None
    if ref in aliases:
        return aliases[ref]
    match = _REFERENCE.search(ref)
    return aliases.get(match.group(1)) if match else None


def _frame(rows: list[dict[str, Any]], kinds: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(kinds))
    for name, kind in kinds.items():
        col = frame[name]
        if kind == "datetime":
            if name == "birth_date":
                frame[name] = pd.to_datetime(col, format="ISO8601", errors="coerce")
            else:  # FHIR instants carry an offset; partial dates are taken as UTC midnight
                frame[name] = pd.to_datetime(col, format="ISO8601", errors="coerce", utc=True)
        elif kind == "continuous":
            frame[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind == "boolean":
            frame[name] = col.astype("object").where(col.notna(), None)
        else:
            frame[name] = col.astype("object").where(col.notna(), None)
    if "length_of_stay_hours" in frame:
        frame["length_of_stay_hours"] = (frame["end"] - frame["time"]).dt.total_seconds() / 3600.0
    if TIME in frame and len(frame):
        frame = frame.sort_values([ENTITY_KEY, TIME], kind="stable").reset_index(drop=True)
    return frame
