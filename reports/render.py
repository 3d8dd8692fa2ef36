"""Render a `Report` as one self-contained HTML file, and as a short text summary.

The HTML has no external resource at all — no script, font, stylesheet or image is
fetched — so it opens offline, in an air-gapped review room, and from an e-mail
attachment. Charts are inline SVG drawn here from the report's aggregate chart data
(each is a `<figure class="chart" data-chart="...">` holding an `<svg>`), so what the
reviewer sees is exactly what the JSON holds. Every text from the report is escaped.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any, Sequence

from reports.model import Metric, Report, atomic_write_text

REAL, SYN, ACCENT = "#4C72B0", "#DD8452", "#55A868"
_SECTION_TITLES = {"fidelity": "Fidelity", "diversity": "Diversity and mode collapse", "privacy": "Privacy leakage",
                   "bias": "Bias across groups", "sequence": "Sequences", "validation": "Validation"}


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def _dir(m: Metric) -> str:
    return {"higher_is_better": "higher is better", "lower_is_better": "lower is better",
            "closer_to_target": f"ideal {_fmt(m.target, 2)}"}[m.direction]


# ------------------------------------------------------------------ SVG primitives
def _figure(name: str, title: str, svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f'<figure class="chart" data-chart="{_e(name)}"><h4>{_e(title)}</h4>{svg}{cap}</figure>')


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">{body}</svg>')


def _legend(x: int, y: int, items: Sequence[tuple[str, str]]) -> str:
    out = []
    for i, (color, text) in enumerate(items):
        out.append(f'<rect x="{x + i * 110}" y="{y}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + i * 110 + 14}" y="{y + 9}" font-size="11">{_e(text)}</text>')
    return "".join(out)


def hbar_chart(labels: list[str], values: list[float | None], *, label: str, vmax: float = 1.0) -> str:
    row, left, width = 18, 150, 300
    h = row * len(labels) + 24
    body = []
    for i, (lab, v) in enumerate(zip(labels, values)):
        y = i * row + 4
        body.append(f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end">{_e(lab[:24])}</text>')
        if v is not None:
            w = max(0.0, min(1.0, v / vmax)) * width
            body.append(f'<rect class="bar" x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 5}" fill="{REAL}">'
                        f'<title>{_e(lab)}: {_fmt(v)}</title></rect>'
                        f'<text x="{left + w + 4:.1f}" y="{y + 12}" font-size="10">{_fmt(v, 2)}</text>')
    body.append(f'<line x1="{left}" y1="0" x2="{left}" y2="{h - 20}" stroke="#999"/>')
    return _svg(left + width + 50, h, "".join(body), label)


def grouped_bars(categories: list[str], series: list[tuple[str, str, list[float | None]]], *, label: str,
                 width: int = 460, height: int = 190) -> str:
    left, bottom, top = 36, 40, 18
    plot_w, plot_h = width - left - 8, height - bottom - top
    vals = [v for _, _, vs in series for v in vs if v is not None]
    vmax = max(vals) if vals and max(vals) > 0 else 1.0
    n = max(len(categories), 1)
    slot = plot_w / n
    bw = max(1.0, slot * 0.8 / max(len(series), 1))
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
            f'<text x="{left - 4}" y="{top + 4}" font-size="9" text-anchor="end">{_fmt(vmax, 2)}</text>',
            f'<text x="{left - 4}" y="{top + plot_h}" font-size="9" text-anchor="end">0</text>']
    for i, cat in enumerate(categories):
        x0 = left + i * slot + slot * 0.1
        for j, (_, color, vs) in enumerate(series):
            v = vs[i] if i < len(vs) else None
            if v is None:
                continue
            hgt = v / vmax * plot_h
            body.append(f'<rect class="bar" x="{x0 + j * bw:.1f}" y="{top + plot_h - hgt:.1f}" width="{bw:.1f}" '
                        f'height="{hgt:.1f}" fill="{color}"><title>{_e(cat)}: {_fmt(v)}</title></rect>')
        if n <= 12:
            body.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{top + plot_h + 12}" font-size="9" '
                        f'text-anchor="middle">{_e(str(cat)[:10])}</text>')
    body.append(_legend(left, height - 14, [(c, name) for name, c, _ in series]))
    return _svg(width, height, "".join(body), label)


def line_chart(series: list[tuple[str, str, list[float], list[float]]], *, label: str, diagonal: bool = False,
               xlabel: str = "", ylabel: str = "", width: int = 320, height: int = 240,
               xmax: float | None = None, ymax: float | None = None) -> str:
    left, bottom, top, right = 40, 44, 12, 10
    pw, ph = width - left - right, height - bottom - top
    xs = [x for _, _, xv, _ in series for x in xv] or [1.0]
    ys = [y for _, _, _, yv in series for y in yv] or [1.0]
    x_hi = xmax if xmax is not None else (max(xs) or 1.0)
    y_hi = ymax if ymax is not None else (max(ys) or 1.0)

    def px(x: float) -> float:
        return left + x / x_hi * pw

    def py(y: float) -> float:
        return top + ph - y / y_hi * ph

    body = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>',
            f'<text x="{left + pw / 2}" y="{height - 22}" font-size="10" text-anchor="middle">{_e(xlabel)}</text>',
            f'<text x="10" y="{top + ph / 2}" font-size="10" transform="rotate(-90 10 {top + ph / 2})" '
            f'text-anchor="middle">{_e(ylabel)}</text>',
            f'<text x="{left}" y="{top + ph + 11}" font-size="9">0</text>',
            f'<text x="{left + pw}" y="{top + ph + 11}" font-size="9" text-anchor="end">{_fmt(x_hi, 2)}</text>']
    if diagonal:
        body.append(f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(x_hi)}" y2="{py(y_hi)}" stroke="#999" stroke-dasharray="4 3"/>')
    for name, color, xv, yv in series:
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xv, yv) if y is not None)
        body.append(f'<polyline class="line" points="{pts}" fill="none" stroke="{color}" stroke-width="2">'
                    f'<title>{_e(name)}</title></polyline>')
    body.append(_legend(left, height - 12, [(c, n) for n, c, _, _ in series]))
    return _svg(width, height, "".join(body), label)


def heatmap(names: list[str], matrix: list[list[float | None]], *, label: str) -> str:
    n = len(names)
    cell = max(8, min(26, 420 // max(n, 1)))
    left, top = 110, 100
    body = []
    for i, a in enumerate(names):
        body.append(f'<text x="{left - 4}" y="{top + i * cell + cell * 0.7:.1f}" font-size="9" text-anchor="end">'
                    f'{_e(a[:18])}</text>')
        x = left + i * cell + cell * 0.6
        body.append(f'<text x="{x:.1f}" y="{top - 4}" font-size="9" transform="rotate(-60 {x:.1f} {top - 4})">'
                    f'{_e(a[:18])}</text>')
        for j, b in enumerate(names):
            v = matrix[i][j] if i < len(matrix) and j < len(matrix[i]) else None
            if v is None:
                color = "#eee"
            else:  # white (0) → green (1)
                t = max(0.0, min(1.0, v))
                color = f"rgb({int(255 - 170 * t)},{int(255 - 87 * t)},{int(255 - 151 * t)})"
            body.append(f'<rect class="cell" x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" '
                        f'height="{cell - 1}" fill="{color}"><title>{_e(a)} × {_e(b)}: {_fmt(v)}</title></rect>')
    return _svg(left + n * cell + 10, top + n * cell + 10, "".join(body), label)


# ------------------------------------------------------------------ page
def _metric_rows(metrics: list[Metric]) -> str:
    rows = []
    for m in metrics:
        ci = f" [{_fmt(m.ci[0])}, {_fmt(m.ci[1])}]" if m.ci else ""
        note = f'<div class="note">{_e(m.note)}</div>' if m.note else ""
        rows.append(f'<tr data-metric="{_e(m.id)}"><td><code>{_e(m.id)}</code></td>'
                    f'<td class="num">{_fmt(m.value)}{_e(ci)}</td><td>{_e(_dir(m))}</td>'
                    f'<td>{_e(m.explanation)}{note}</td></tr>')
    return ('<table class="metrics"><thead><tr><th>metric</th><th>value [95% CI]</th><th>direction</th>'
            '<th>what it means</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def _charts_for(section: str, charts: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if section == "fidelity":
        cs = charts.get("column_shapes")
        if cs:
            out.append(_figure("column_shapes", "Column shapes per column",
                               hbar_chart(cs["columns"], cs["scores"], label="column shape scores"),
                               "1 = the synthetic column has the same distribution as the real one."))
        pt = charts.get("pair_trends")
        if pt and len(pt["columns"]) >= 2:
            out.append(_figure("pair_trends", "Column pair trends",
                               heatmap(pt["columns"], pt["matrix"], label="pair trend scores"),
                               "Darker = the relationship between the two columns is better preserved."))
        for name, mg in list((charts.get("marginals") or {}).items())[:24]:
            if mg["kind"] == "numeric":
                edges = mg["edges"]
                cats = [f"{edges[i]:.3g}" for i in range(len(edges) - 1)]
            else:
                cats = mg["categories"]
            out.append(_figure(f"marginal:{name}", f"Distribution of {name}",
                               grouped_bars(cats, [("real", REAL, mg["real"]), ("synthetic", SYN, mg["synthetic"])],
                                            label=f"distribution of {name}"),
                               "Shares of rows; real cells with fewer than 10 rows are not shown."))
    elif section == "diversity":
        md = charts.get("modes")
        if md and md["real_share"]:
            cats = [f"mode {i + 1}" for i in range(len(md["real_share"]))]
            out.append(_figure("modes", "Clusters (modes) of the real data",
                               grouped_bars(cats, [("real", REAL, md["real_share"]),
                                                   ("synthetic", SYN, md["synthetic_share"])], label="mode shares"),
                               "A mode with little or no synthetic mass was dropped by the generator."))
    elif section == "privacy":
        d = charts.get("dcr")
        if d:
            mids = [(a + b) / 2 for a, b in zip(d["edges"][:-1], d["edges"][1:])]
            out.append(_figure("dcr", "Distance from synthetic rows to the closest real record",
                               line_chart([("to train", REAL, mids, d["train"]), ("to holdout", ACCENT, mids, d["holdout"])],
                                          label="distance to closest record", xlabel="distance", ylabel="share"),
                               "The two curves should overlap; mass near 0 only for train means copying."))
        roc = charts.get("membership_roc")
        if roc:
            out.append(_figure("membership_roc", "Membership-inference attack (ROC)",
                               line_chart([("attack", SYN, roc["fpr"], roc["tpr"])], label="membership ROC",
                                          diagonal=True, xlabel="false positive rate", ylabel="true positive rate",
                                          xmax=1.0, ymax=1.0),
                               "The dashed diagonal is an attacker who learns nothing."))
    elif section == "bias":
        for attr, groups in (charts.get("bias") or {}).items():
            if not groups:
                continue
            cats = [g["group"] for g in groups]
            out.append(_figure(f"bias:{attr}", f"Representation of groups of {attr}",
                               grouped_bars(cats, [("real", REAL, [g["real_share"] for g in groups]),
                                                   ("synthetic", SYN, [g["synthetic_share"] for g in groups])],
                                            label=f"representation of {attr}"),
                               "Each group's share of the rows."))
    elif section == "sequence":
        st = charts.get("sequence_steps")
        if st and st["scores"]:
            xs = list(range(1, len(st["scores"]) + 1))
            out.append(_figure("sequence_steps", "Per-step marginals",
                               line_chart([("column shapes", REAL, xs, st["scores"])], label="per-step scores",
                                          xlabel="event number", ylabel="score", ymax=1.0),
                               "Column-shape score of the n-th event of each history."))
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{margin-bottom:4px} .sub{color:#666;margin-top:0}
.ledger{border:2px solid #4C72B0;border-radius:6px;padding:10px 14px;background:#f5f8fc}
.ledger.nonprivate{border-color:#c0392b;background:#fdf2f1}
table{border-collapse:collapse;width:100%;margin:8px 0 16px} th,td{border-bottom:1px solid #ddd;padding:5px 8px;text-align:left;vertical-align:top;font-size:13px}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums} code{font-size:12px}
.note{color:#a15c00;font-size:12px;margin-top:2px}
.charts{display:flex;flex-wrap:wrap;gap:12px} figure.chart{margin:0;border:1px solid #e3e3e3;border-radius:4px;padding:6px;background:#fff}
figure.chart h4{margin:0 0 4px;font-size:13px} figcaption{font-size:11px;color:#666;max-width:460px}
.ok{color:#2e7d32}.fail{color:#c0392b}
"""


def render_html(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write the report as one HTML file (atomically) and return its path."""
    p = Path(path)
    atomic_write_text(p, to_html(report))
    return p


def to_html(report: Report) -> str:
    pv = report.privacy or {}
    private = pv.get("private")
    ledger_rows = "".join(
        f"<tr><td>{_e(e.get('name'))}</td><td>{_e(e.get('kind'))}</td><td class='num'>"
        f"{_fmt(e.get('epsilon_alone'), 4) if e.get('kind') != 'threshold' else 'δ ' + _e(e.get('delta_alone'))}</td></tr>"
        for e in pv.get("events", []))
    if private:
        head = (f"<p><b>{_e(pv.get('guarantee'))}</b> — epsilon spent {_fmt(pv.get('epsilon_spent'), 4)} of target "
                f"{_e(pv.get('target_epsilon'))}, delta {_e(pv.get('target_delta'))}; privacy unit: {_e(pv.get('unit'))} "
                f"(at most {_e(pv.get('max_rows_per_unit'))} row(s) per unit).</p>")
        ledger = (head + "<table><thead><tr><th>event</th><th>kind</th><th>epsilon alone</th></tr></thead><tbody>"
                  + ledger_rows + "</tbody></table>")
    else:
        ledger = f"<p><b>{_e(pv.get('guarantee', 'no formal privacy guarantee'))}</b></p>"
    d = report.data
    sections = []
    for sec in ("fidelity", "diversity", "privacy", "bias", "sequence", "validation"):
        ms = report.section(sec)
        if not ms:
            continue
        charts = _charts_for(sec, report.charts)
        extra = _validation_table(report.validation) if sec == "validation" else ""
        sections.append(f'<section id="{sec}"><h2>{_e(_SECTION_TITLES[sec])}</h2>{_metric_rows(ms)}'
                        + (f'<div class="charts">{"".join(charts)}</div>' if charts else "") + extra + "</section>")
    model = report.model or {}
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>synthkit evaluation report</title><style>{_CSS}</style></head><body>"
        "<h1>Synthetic data evaluation</h1>"
        f"<p class=\"sub\">{_e(model.get('class') or 'unknown model')} · {_e(d.get('kind'))} data · "
        f"train {_e(d.get('n_train'))} / holdout {_e(d.get('n_holdout'))} / synthetic {_e(d.get('n_synthetic'))} rows · "
        f"created {_e(report.created_at)} · report format {_e(report.format_version)}</p>"
        f"<section id=\"ledger\" class=\"ledger{'' if private else ' nonprivate'}\"><h2>Privacy ledger</h2>{ledger}</section>"
        f"<p>Holdout: {_e(d.get('holdout_source'))}. Every number below is an aggregate; no real record appears in this "
        "report.</p>" + "".join(sections) + "</body></html>")


def _validation_table(v: dict[str, Any]) -> str:
    if not v:
        return ""
    rows = "".join(
        f"<tr><td class='{'ok' if e['success'] else 'fail'}'>{'pass' if e['success'] else 'FAIL'}</td>"
        f"<td>{_e(e['description'])}</td><td>{_e(e['expectation'])}</td>"
        f"<td class='num'>{_fmt(e.get('unexpected_percent'), 2) if e.get('unexpected_percent') is not None else ''}</td></tr>"
        for e in v.get("expectations", []))
    return (f"<p>{_e(v.get('engine'))}: {_e(v.get('n_passed'))} of {_e(v.get('n_expectations'))} checks pass.</p>"
            "<table class=\"validation\"><thead><tr><th>result</th><th>check</th><th>expectation</th>"
            "<th>% rows failing</th></tr></thead><tbody>" + rows + "</tbody></table>")


def summary_text(report: Report) -> str:
    """A short terminal summary: the guarantee, then one line per metric."""
    pv = report.privacy or {}
    lines = [f"privacy: {pv.get('guarantee', 'unknown')}",
             f"data: {report.data.get('kind')} · train {report.data.get('n_train')} · holdout "
             f"{report.data.get('n_holdout')} · synthetic {report.data.get('n_synthetic')}"]
    for sec in ("fidelity", "diversity", "privacy", "bias", "sequence", "validation"):
        ms = report.section(sec)
        if not ms:
            continue
        lines.append(f"{_SECTION_TITLES[sec]}:")
        for m in ms:
            ci = f" [{_fmt(m.ci[0])}, {_fmt(m.ci[1])}]" if m.ci else ""
            note = f"  ({m.note})" if m.note else ""
            lines.append(f"  {m.id:<45} {_fmt(m.value):>7}{ci}  {_dir(m)}{note}")
    return "\n".join(lines)
