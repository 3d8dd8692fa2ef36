"""The HTML report is one self-contained file that renders in headless Chromium with no
network access, its charts present in the rendered DOM and on a screenshot."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import reports
from test_reports_metrics import HOLDOUT, SCHEMA, TRAIN, mixture

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]  # any fetch would fail


@pytest.fixture(scope="module")
def html_file(tmp_path_factory) -> Path:
    r = reports.evaluate(real=TRAIN.head(600), synthetic=mixture(600, 3), holdout=HOLDOUT.head(600), schema=SCHEMA,
                         target="flag", seed=0)
    return reports.render_html(r, tmp_path_factory.mktemp("html") / "report.html")


def test_html_is_self_contained(html_file):
    text = html_file.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text and "@import" not in text and "url(" not in text
    assert text.count('class="chart"') >= 8


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)")
def test_renders_in_headless_chromium_with_charts(html_file, tmp_path):
    dom = _chromium(["--dump-dom", html_file.as_uri()], tmp_path).stdout
    charts = re.findall(r'<figure class="chart" data-chart="([^"]+)"', dom)
    for name in ("column_shapes", "pair_trends", "modes", "dcr", "membership_roc", "bias:group"):
        assert name in charts
    assert len(re.findall(r"<svg\b", dom)) == len(charts)
    assert len(re.findall(r'class="bar"', dom)) > 50 and 'class="line"' in dom and 'class="cell"' in dom
    assert 'data-metric="privacy.membership_inference.auc"' in dom
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1200,3000", html_file.as_uri()], tmp_path)
    assert shot.is_file()
    from PIL import Image  # a page with charts has many colours; a blank or text-only page does not
    img = Image.open(shot).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20)
    blue = sum(n for n, c in colours if c == (0x4C, 0x72, 0xB0))
    orange = sum(n for n, c in colours if c == (0xDD, 0x84, 0x52))
    assert blue > 5_000 and orange > 5_000
