"""DESIGN.md §3 dependency arrows: reports and the dashboard read ledgers and reports only;
they must never load torch/opacus (nor the dashboard the connectors)."""

from __future__ import annotations

import os
import subprocess
import sys


def _loaded_after(imports: str) -> set[str]:
    code = (f"import sys\nimport {imports}\n"
            "print(' '.join(sorted(m for m in ('torch', 'opacus', 'connectors') if m in sys.modules)))")
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stdout.split())


def test_reports_never_import_torch():
    assert _loaded_after("reports, reports.gate, reports.policy, reports.registry, reports.release") \
        .isdisjoint({"torch", "opacus"})


def test_dashboard_never_imports_torch_or_connectors():
    assert _loaded_after("app.views") == set()


def test_models_still_load_on_access():
    assert "torch" in _loaded_after("synthkit; synthkit.DPCTGAN")
