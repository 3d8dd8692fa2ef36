"""`synthkit fit fhir:exports/ --model dphmm`: a FHIR R4 export (Patient → entity table;
Encounter, Observation → events) fitted end to end through the CLI; the bundle records the
source kind and a redacted location only, and no name, identifier or address of the
export reaches the bundle or the output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from synthkit.cli import app
from test_connectors_fhir import SECRET, bundle, encounter, observation, patient

runner = CliRunner()


def _export(folder: Path, n_patients: int = 500, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    resources = []
    for i in range(n_patients):
        pid = f"p{i}"
        resources.append(patient(pid, birth=f"{rng.integers(1930, 2000)}-0{rng.integers(1, 10)}-1{rng.integers(0, 9)}",
                                 gender=str(rng.choice(["female", "male"]))))
        day = 1
        for j in range(int(rng.integers(1, 5))):
            day += int(rng.integers(1, 9))
            when = f"2023-03-{day:02d}T10:00:00Z"
            resources.append(encounter(f"e{i}-{j}", f"Patient/{pid}", when))
            resources.append(observation(f"o{i}-{j}", f"Patient/{pid}", when.replace("10:00", "10:15"),
                                         value=float(np.round(rng.normal(75, 8), 1))))
    folder.mkdir()
    (folder / "export.json").write_text(json.dumps(bundle(resources)))
    return folder


def _schemas_with_public_bounds(export: Path, folder: Path) -> tuple[Path, Path]:
    """What a user does with the source's suggested schemas: declare PUBLIC bounds (a
    plausible birth-date range, the export window, a physiological range)."""
    import dataclasses

    import connectors
    frames = connectors.read_source(f"fhir:{export}").sequence_frames()
    public = {"birth_date": ("1900-01-01", "2025-12-31"), "time": ("2020-01-01", "2025-12-31"), "value": (0, 300)}
    paths = []
    for name, schema in (("events", frames.events_schema), ("context", frames.context_schema)):
        for col in schema.columns:
            if col.name in public:
                schema = schema.with_column(dataclasses.replace(col, bounds=public[col.name]))
        path = folder / f"{name}.schema.yaml"
        schema.save(path)
        paths.append(path)
    return paths[0], paths[1]


def test_fit_and_generate_from_a_fhir_export(tmp_path: Path) -> None:
    export = _export(tmp_path / "exports")
    events_schema, context_schema = _schemas_with_public_bounds(export, tmp_path)
    model = tmp_path / "model"
    r = runner.invoke(app, ["fit", f"fhir:{export}", "--model", "dphmm", "--epsilon", "3", "--delta", "1e-6",
                            "--epochs", "2", "--batch-size", "64", "--max-length", "8", "--device", "cpu",
                            "--seed", "0", "--out", str(model),
                            "--schema", str(events_schema), "--context-schema", str(context_schema)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["source"] == {"kind": "fhir", "location": f"fhir:{export}".rstrip("/")}
    assert manifest["privacy"]["summary"]["unit"] == "entity"
    assert manifest["privacy"]["summary"]["epsilon_spent"] <= 3.0 + 1e-9

    out = tmp_path / "syn"
    r = runner.invoke(app, ["generate", str(model), "--entities", "50", "--out", str(out), "--seed", "1"],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    import pandas as pd
    events = pd.read_csv(out / "events.csv")
    context = pd.read_csv(out / "context.csv")
    assert len(context) == 50 and len(events) >= 50
    for path in [*model.rglob("*"), *out.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path.name
