"""Evaluation of synthetic data (fidelity, diversity, privacy leakage, bias, sequences,
validation), the typed report it produces, and its rendering.

    import reports
    report = reports.evaluate(real=frame, synthetic=synthetic, model_dir="model/")
    report.save("report/report.json"); reports.render_html(report, "report/report.html")

`reports.model` (the Report contract) is light; the heavy evaluation modules (sklearn,
sdmetrics, great-expectations) are imported only when `evaluate` is first used.
"""

from __future__ import annotations

from typing import Any

from reports.model import METRIC_IDS, REPORT_FORMAT_VERSION, Metric, Report, metric_spec

__all__ = ["METRIC_IDS", "REPORT_FORMAT_VERSION", "Metric", "Report", "metric_spec", "evaluate", "render_html"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from reports.evaluation import evaluate
        return evaluate
    if name == "render_html":
        from reports.render import render_html
        return render_html
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
