"""A DPHMM bundle that carries the DP length margin (77ebef9, 35cf74e: fits without
--max-length) saves, loads and generates through the CLI, with and without a context table;
a forged margin (wrong size, negative, non-finite, above 2**53, all 0) is refused as a corrupt
manifest.

The margin lives in the bundle's training record (12734bb), validated on load.
Negative control: at 35cf74e (the margin written into the layout, the manifest schema not
told of it) both round trips fail at `generate` with "manifest field
sequence.layout.length_margin: Extra inputs are not permitted" (session 10's review R1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ENV = {**os.environ, "SYNTHKIT_THREADS": "1"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synthkit", *args], capture_output=True, text=True, env=ENV)


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("panel")
    rng = np.random.default_rng(5)
    rows = [{"id": e, "t": t, "x": round(float(rng.normal()), 3), "c": str(rng.choice(["a", "b", "c"]))}
            for e in range(600) for t in range(int(rng.integers(2, 7)))]
    pd.DataFrame(rows).to_csv(d / "ev.csv", index=False)
    pd.DataFrame({"id": range(600), "g": rng.choice(["u", "v"], 600)}).to_csv(d / "ctx.csv", index=False)
    return d


def _margin(bundle: Path) -> list[float] | None:
    found: list[list[float]] = []

    def walk(o: object) -> None:
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "length_margin" and v is not None:
                    found.append(v)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(json.loads((bundle / "manifest.json").read_text()))
    return found[0] if found else None


@pytest.mark.parametrize("with_context", [False, True], ids=["events-only", "with-context"])
def test_length_margin_bundle_round_trip(panel: Path, tmp_path: Path, with_context: bool) -> None:
    extra = ["--context", str(panel / "ctx.csv")] if with_context else []
    fit = _cli("fit", str(panel / "ev.csv"), *extra, "--model", "dphmm", "--entity-key", "id",
               "--sequence-index", "t", "--epsilon", "3", "--epochs", "1", "--out", str(tmp_path / "m"))
    assert fit.returncode == 0, fit.stderr[-2000:]
    margin = _margin(tmp_path / "m")
    assert margin is not None and len(margin) >= 2 and all(c >= 0 for c in margin)  # the case under test
    gen = _cli("generate", str(tmp_path / "m"), "--entities", "40", "--out", str(tmp_path / "out"))
    assert gen.returncode == 0, gen.stderr[-2000:]
    events = pd.read_csv(tmp_path / "out" / "events.csv")
    assert events["id"].nunique() <= 40 and len(events) > 0
    assert _cli("inspect", str(tmp_path / "m")).returncode == 0

    # forged margins are refused as a corrupt manifest, never used
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())

    def forge(value: object) -> str:
        def walk(o: object) -> None:
            if isinstance(o, dict):
                for k in list(o):
                    if k == "length_margin":
                        o[k] = value
                    else:
                        walk(o[k])
            elif isinstance(o, list):
                for v in o:
                    walk(v)
        m = json.loads(json.dumps(manifest))
        walk(m)
        (tmp_path / "m" / "manifest.json").write_text(json.dumps(m))
        out = _cli("generate", str(tmp_path / "m"), "--entities", "5", "--out", str(tmp_path / "forged"))
        assert out.returncode != 0 and not (tmp_path / "forged").exists()
        return out.stderr
    assert "length_margin" in forge(margin + [1.0])
    assert "length_margin" in forge([-1.0] + margin[1:])
    forge(["nan"] * len(margin))
    assert "length_margin" in forge([1e308] * len(margin))  # overflowed sampling before (R2)
    assert "length_margin" in forge([0.0] * len(margin))  # a fit never writes an empty margin
