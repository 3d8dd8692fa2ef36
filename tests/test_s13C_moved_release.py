"""A release is its content, not its path (session 13, task C; review R-F2).

Before the fix, a release folder renamed or moved after publishing made the genuine release
event read as forged ("its release folder is missing"), the run read as `approved` again,
and `synthkit release publish` wrote the reviewed data out a second time as a new release
(a new manifest and release event, as if new) while the first copy lived on elsewhere.

Now: a folder renamed or moved beside the others is recognised by its manifest's SHA-256
(list says released, audit is clean, verify checks every byte there, publish names the new
path); one moved where synthkit does not look (or deleted) is refused by publish with one
line, since the recorded release holds the very data it would publish; `releases verify
--folder` checks it where it went. A folder still at its recorded path is judged there
(an edited release cannot hide behind an intact copy), and a forged release row that does
not name the run's data still blocks nothing (test_s12_forged_registry).

Negative control: run against 3e68075 (before this change), the first two tests fail: the
second `release publish` exits 0 and writes a second release folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reports import release as release_mod
from reports.registry import Registry
from synthkit.cli import app
from test_release import CONFIG, approve, stage_run, verify
from test_release_trail import reviewers_file  # noqa: F401 - the reviewers file fixture

runner = CliRunner()


@pytest.fixture
def reg(tmp_path) -> Registry:
    r = Registry(tmp_path / "registry.db")
    yield r
    r.close()


def _cli(reg: Registry, *args: str):
    return runner.invoke(app, [*args, "--registry", reg.url])


def _said(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


def _released(reg: Registry, tmp_path: Path) -> tuple[str, Path]:
    run_id = stage_run(reg, tmp_path, run_by="alice")
    assert approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy") \
        == "released"
    return run_id, tmp_path / "releases" / run_id


def _folders(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "releases").iterdir())


def test_a_renamed_release_is_recognised_and_never_published_again(reg, tmp_path, reviewers_file):
    run_id, folder = _released(reg, tmp_path)
    n_events = len(reg.events())
    renamed = folder.with_name(f"{run_id}-shipped")
    folder.rename(renamed)
    r = _cli(reg, "release", "publish", run_id, "--reviewers", str(reviewers_file))
    assert r.exit_code == 2 and "already been released" in _said(r) and str(renamed) in _said(r), r.output
    assert _folders(tmp_path) == [renamed.name] and len(reg.events()) == n_events  # nothing written, nothing recorded
    listed = next(x for x in json.loads(_cli(reg, "releases", "list", "--json", "--reviewers",
                                             str(reviewers_file)).output) if x["run_id"] == run_id)
    assert listed["status"] == "released" and listed["unverified_events"] == []
    audit = _cli(reg, "releases", "audit", "--reviewers", str(reviewers_file))
    assert audit.exit_code == 0 and "OK" in audit.output, audit.output
    shown = _cli(reg, "releases", "show", run_id, "--reviewers", str(reviewers_file))
    assert f"released to {renamed} (recorded at {folder})" in _said(shown), shown.output
    result = verify(reg, run_id)
    assert result.ok and result.path == str(renamed), result.problems
    assert any("moved" in n for n in result.notes)
    # identity by content: an edited file in the renamed folder is still caught there
    (renamed / "synthetic.csv").write_text("age,sex\n99,female\n80,male\n")
    bad = verify(reg, run_id)
    assert not bad.ok and any("synthetic.csv was modified" in p for p in bad.problems)


def test_b_a_release_moved_elsewhere_is_refused_with_one_line_and_verifies_there(reg, tmp_path, reviewers_file):
    run_id, folder = _released(reg, tmp_path)
    n_events = len(reg.events())
    archive = tmp_path / "archive" / "2026"
    archive.parent.mkdir()
    shutil.move(str(folder), str(archive))
    r = _cli(reg, "release", "publish", run_id, "--reviewers", str(reviewers_file))
    out = _said(r)
    assert r.exit_code == 2 and "already been released" in out and "--folder" in out, r.output
    assert len([line for line in r.output.splitlines() if line.startswith("error")]) == 1
    assert "Traceback" not in r.output
    assert _folders(tmp_path) == [] and len(reg.events()) == n_events
    with pytest.raises(Exception, match="already been released"):  # the library refuses too
        release_mod.publish(reg, run_id, released_by="bob", config=CONFIG)
    assert _folders(tmp_path) == []
    # the recorded path no longer holds it: verify says where to look, and checks it there
    v = _cli(reg, "releases", "verify", run_id, "--reviewers", str(reviewers_file))
    assert v.exit_code == 4 and "--folder" in _said(v)
    v = _cli(reg, "releases", "verify", run_id, "--reviewers", str(reviewers_file), "--folder", str(archive))
    assert v.exit_code == 0 and "OK" in v.output and str(archive) in _said(v), v.output
    (archive / "ledger.json").write_text("{}")
    v = _cli(reg, "releases", "verify", run_id, "--reviewers", str(reviewers_file), "--folder", str(archive))
    assert v.exit_code == 4 and "ledger.json was modified" in _said(v)
    # a --folder that holds nothing: says so, not "moved elsewhere? use --folder" (review R, s13 F3)
    v = _cli(reg, "releases", "verify", run_id, "--reviewers", str(reviewers_file), "--folder", str(tmp_path / "nope"))
    assert v.exit_code == 4 and "no release folder at" in _said(v) and "moved elsewhere" not in _said(v)


def test_c_a_folder_at_its_recorded_path_is_judged_there_not_by_an_intact_copy(reg, tmp_path):
    """Positive control for the search: it runs only when the recorded folder is gone."""
    run_id, folder = _released(reg, tmp_path)
    shutil.copytree(folder, folder.with_name("intact-copy"))
    (folder / "manifest.json").write_text((folder / "manifest.json").read_text() + " ")
    findings = release_mod.release_record_findings(reg, run_id)
    assert [(rec.path, why) for _seq, rec, why in findings] == \
        [(str(folder), "its manifest.json does not hash to the recorded SHA-256")]
    result = verify(reg, run_id)
    assert not result.ok and result.path == str(folder)
    assert "manifest.json differs from the one recorded at release" in result.problems


def test_d_a_folder_of_another_run_is_never_taken_for_this_release(reg, tmp_path):
    run_id, folder = _released(reg, tmp_path)
    other, other_folder = _released(reg, tmp_path / "second")  # its own staging and releases folder
    shutil.rmtree(folder)
    shutil.copytree(other_folder, folder.with_name("not-mine"))
    assert release_mod.relocated_release(reg, run_id, reg.release(run_id)) is None
    assert not verify(reg, run_id).ok and verify(reg, other).ok
