"""Hostile and careless CLI input (issue 16): arguments out of range, outputs that cannot be
written or would not fit, reading options, numeric extremes, and the partial files a
killed write leaves behind (synthkit.partials), tested with a real SIGKILL.

Every error is one line naming the option (and file or column) and the fix, exit code 2.
Tests that wait for another process wait on its state (a line it prints, a file that has
grown), never on a sleep."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app
from synthkit.partials import is_partial_of, partials_of, remove_stale, staged_file, staged_folder

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
SECRET = 4242.4242  # a planted value that no message may show
HANG_GUARD_S = 900  # only fails a test whose subprocess never reaches the awaited state


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(r, *needles: str) -> str:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert lines and lines[0].startswith("error:"), r.output
    text = " ".join(r.output.split())
    for n in needles:
        assert n in text, (n, r.output)
    assert str(SECRET) not in text
    return text


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"age": rng.integers(18, 90, n), "bmi": rng.normal(27, 4, n).round(1),
                       "sex": rng.choice(["female", "male"], n)})
    df.loc[7, "bmi"] = SECRET
    path = tmp_path_factory.mktemp("limits") / "people.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def bundle(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "model"
    r = _run("fit", data, "--model", "dptvae", "--epsilon", "3", "--epochs", "1", "--batch-size", "100",
             "--device", "cpu", "--seed", "0", "--holdout", "0.2", "--holdout-seed", "1", "--out", out)
    assert r.exit_code == 0, r.output
    return out


# ------------------------------------------------------------------ arguments
@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_a_seed_out_of_range_is_one_line_naming_the_option(data, bundle, tmp_path, seed):
    _one_line_error(_run("fit", data, "--epsilon", "1", "--seed", seed, "--out", tmp_path / "m"), "--seed", "0..")
    _one_line_error(_run("fit", data, "--epsilon", "1", "--holdout", "0.2", "--holdout-seed", seed,
                         "--out", tmp_path / "m"), "--holdout-seed")
    _one_line_error(_run("generate", bundle, "--rows", "10", "--seed", seed, "--out", tmp_path / "s.csv"), "--seed")
    _one_line_error(_run("evaluate", bundle, "--real", data, "--synthetic", data, "--seed", seed,
                         "--out", tmp_path / "ev"), "--seed")
    assert list(tmp_path.iterdir()) == []


def test_rows_beyond_the_limit_are_refused_before_any_work(bundle, tmp_path):
    out = tmp_path / "s.csv"
    _one_line_error(_run("generate", bundle, "--rows", "99999999999999999999999", "--out", out),
                    "--rows", "1,000,000,000", "--seed")
    assert list(tmp_path.iterdir()) == []


def test_an_output_larger_than_the_free_space_is_refused(bundle, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 5000, 5000))
    _one_line_error(_run("generate", bundle, "--rows", "5000", "--out", tmp_path / "s.csv"),
                    "--rows 5000", "free", "lower --rows")
    assert list(tmp_path.iterdir()) == []


def test_the_estimate_of_a_large_output_is_shown_first(bundle, tmp_path, monkeypatch):
    import synthkit.cli
    monkeypatch.setattr(synthkit.cli, "ANNOUNCE_BYTES", 1)
    r = _run("generate", bundle, "--rows", "300", "--out", tmp_path / "s.csv")
    assert r.exit_code == 0, r.output
    announce = r.output.index("will be written")
    assert announce < r.output.index("wrote 300")
    assert len(pd.read_csv(tmp_path / "s.csv")) == 300


def test_an_out_that_cannot_be_written_is_one_line_naming_the_option(data, bundle, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _one_line_error(_run("generate", bundle, "--rows", "10", "--out", blocker / "s.csv"), "--out", "not a folder")
    _one_line_error(_run("fit", data, "--epsilon", "1", "--out", blocker / "m"), "--out", "not a folder")
    _one_line_error(_run("schema", "infer", data, "--out", blocker / "s.yaml"), "--out", "not a folder")
    _one_line_error(_run("evaluate", bundle, "--real", data, "--synthetic", data, "--out", blocker / "ev"),
                    "--out", "not a folder")
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a plain user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        _one_line_error(_run("generate", bundle, "--rows", "10", "--out", locked / "s.csv"), "--out", "not writable")
    assert {p.name for p in tmp_path.iterdir()} <= {"a-file", "locked"}  # nothing written


# ------------------------------------------------------------------ reading options
def test_header_and_encoding_reach_the_reader(tmp_path):
    headerless = tmp_path / "numbers.csv"
    headerless.write_text("".join(f"{i},{i * 2}\n" for i in range(50)))
    r = _run("schema", "infer", headerless, "--no-header", "--out", tmp_path / "a.yaml")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "a.yaml").read_text()
    assert "column_0" in text and "column_1" in text

    latin = tmp_path / "latin.csv"
    latin.write_bytes(("city,n\n" + "".join(f"{c},{i}\n" for i, c in
                                             enumerate(["Zürich", "Genève", "Malmö"] * 20))).encode("latin-1"))
    _one_line_error(_run("schema", "infer", latin, "--out", tmp_path / "b.yaml"), "encoding")
    r = _run("schema", "infer", latin, "--encoding", "latin-1", "--header", "--out", tmp_path / "b.yaml")
    assert r.exit_code == 0, r.output
    assert "city:" in (tmp_path / "b.yaml").read_text()


def test_fit_reads_with_no_header(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "numbers.csv"
    pd.DataFrame({"a": rng.normal(size=300).round(3), "b": rng.integers(0, 5, 300)}).to_csv(
        path, index=False, header=False)
    r = _run("fit", path, "--no-header", "--model", "dptvae", "--no-privacy", "--epochs", "1", "--batch-size",
             "100", "--device", "cpu", "--seed", "0", "--out", tmp_path / "m")
    assert r.exit_code == 0, r.output
    import json
    columns = json.loads((tmp_path / "m" / "manifest.json").read_text())["schema"]["columns"]
    assert list(columns) == ["column_0", "column_1"]


def test_evaluate_passes_header_and_encoding_to_every_read(bundle, data, tmp_path, monkeypatch):
    import connectors
    from synthkit.errors import SourceError
    seen = []

    def spy(uri, **options):
        seen.append((str(uri), options))
        if len(seen) == 2:
            raise SourceError("stop here")
        return pd.read_csv(data)

    monkeypatch.setattr(connectors, "read", spy)
    r = _run("evaluate", bundle, "--real", data, "--synthetic", data, "--no-header", "--encoding", "latin-1",
             "--out", tmp_path / "ev")
    _one_line_error(r, "stop here")
    assert [opts for _, opts in seen] == [{"has_header": False, "encoding": "latin-1"}] * 2


# ------------------------------------------------------------------ evaluate inputs
def test_evaluate_refuses_a_one_row_real_file(bundle, data, tmp_path):
    one = tmp_path / "one.csv"
    pd.read_csv(data).iloc[[7]].to_csv(one, index=False)  # the row with the planted value
    text = _one_line_error(_run("evaluate", bundle, "--real", one, "--synthetic", data, "--out", tmp_path / "ev"),
                           "--real", "one.csv", "fewer than 2 rows")
    assert " 1 row" not in text  # no exact count of private rows
    assert not (tmp_path / "ev").exists()


def test_evaluate_refuses_infinite_synthetic_values_naming_the_column(bundle, data, tmp_path):
    syn = pd.read_csv(data)
    syn.loc[:4, "bmi"] = np.inf
    syn.loc[5, "bmi"] = -np.inf
    path = tmp_path / "syn.csv"
    syn.to_csv(path, index=False)
    _one_line_error(_run("evaluate", bundle, "--real", data, "--synthetic", path, "--out", tmp_path / "ev"),
                    "--synthetic", "syn.csv", "'bmi'", "infinite")
    assert not (tmp_path / "ev").exists()


def test_singling_out_takes_extreme_and_infinite_synthetic_values():
    """A library caller may pass what the CLI refuses: ranges of ±1e308 (their width
    overflows) and ±inf are drawn from without an exception."""
    from reports.privacy import singling_out
    from synthkit.schema import Column
    rng = np.random.default_rng(0)
    columns = [Column(name="a", kind="continuous"), Column(name="b", kind="integer")]
    train = pd.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 9, 200)})
    holdout = pd.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 9, 200)})
    synthetic = pd.DataFrame({"a": np.r_[rng.normal(size=197), 1e308, -1e308, np.inf],
                              "b": np.r_[rng.integers(0, 9, 197), -np.inf, 0, 1]})
    risk = singling_out(train, holdout, synthetic, columns, rng=rng, n_attacks=200)
    assert np.isfinite(risk.value) and 0.0 <= risk.value <= 1.0


# ------------------------------------------------------------------ numeric extremes in fit
def test_dp_range_of_values_beyond_the_grid_is_an_interval():
    """Only the open top bin [2^60, inf) clears: the values are clipped to the last finite
    grid bin, which must be a real interval (it was [2^60, 2^60], and the histogram's
    bin index went negative)."""
    from synthkit.ledger import PrivacyBudget, PrivacyLedger
    from synthkit.mechanisms import GEOMETRIC_EDGES, geometric_bounds
    ledger = PrivacyLedger(PrivacyBudget(epsilon=1e6, delta=1e-6))
    for values in (np.full(500, 1e299), np.full(500, -1e299)):
        lo, hi = geometric_bounds(values, sigma=1.0, sensitivity=1.0, name="b", ledger=ledger,
                                  rng=np.random.default_rng(0), what="column 'x'")
        assert GEOMETRIC_EDGES[0] <= lo < hi <= GEOMETRIC_EDGES[-1]
        assert abs(lo if values[0] < 0 else hi) == GEOMETRIC_EDGES[-1]


def test_exact_range_and_modes_of_extreme_values_are_finite():
    from synthkit.ledger import PrivacyLedger
    from synthkit.mechanisms import MAX_ABS, fit_mixture_to_histogram, geometric_bounds
    ledger = PrivacyLedger(None)
    lo, hi = geometric_bounds(np.array([-1e308, 0.0, 1e308]), sigma=1.0, sensitivity=1.0, name="b",
                              ledger=ledger, rng=np.random.default_rng(0), what="column 'x'")
    assert (lo, hi) == (-MAX_ABS, MAX_ABS) and np.isfinite(hi - lo)
    lo, hi = geometric_bounds(np.full(9, 1e20), sigma=1.0, sensitivity=1.0, name="c", ledger=ledger,
                              rng=np.random.default_rng(0), what="column 'y'")
    assert lo < 1e20 < hi  # a constant column far from 0 still gets a usable range
    centres = np.linspace(-1e299, 1e299, 64)
    weights = np.exp(-0.5 * (np.linspace(-3, 3, 64)) ** 2)
    mu, sd, pi = fit_mixture_to_histogram(centres, weights, bin_width=centres[1] - centres[0])
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(sd)) and np.all(sd > 0)
    assert abs(pi.sum() - 1) < 1e-9 and abs(float(np.sum(mu * pi))) < 1e298  # symmetric: centred near 0
    # the rescaled fit is the unscaled fit scaled back (a power of two is exact)
    small = fit_mixture_to_histogram(centres / 2.0**994, weights, bin_width=(centres[1] - centres[0]) / 2.0**994)
    np.testing.assert_allclose(mu, small[0] * 2.0**994, rtol=1e-12)


def test_fit_of_values_near_the_largest_double(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    x[:300], x[300:320] = 1e299, -1e299
    path = tmp_path / "big.csv"
    pd.DataFrame({"a": x, "b": rng.integers(0, 5, 600)}).to_csv(path, index=False)
    schema = tmp_path / "s.yaml"
    schema.write_text("columns:\n  a: {kind: continuous}\n  b: {kind: integer}\n")
    for privacy in (["--epsilon", "3"], ["--no-privacy"]):
        out = tmp_path / f"m{len(privacy)}"
        r = _run("fit", path, "--schema", schema, "--model", "dptvae", *privacy, "--epochs", "1",
                 "--batch-size", "100", "--device", "cpu", "--seed", "0", "--out", out)
        assert r.exit_code == 0, r.output
        r = _run("generate", out, "--rows", "200", "--seed", "1", "--out", tmp_path / f"s{len(privacy)}.csv")
        assert r.exit_code == 0, r.output
        assert np.isfinite(pd.read_csv(tmp_path / f"s{len(privacy)}.csv")["a"]).all()


# ------------------------------------------------------------------ partial files
WRITER = """
import sys
from pathlib import Path
from synthkit.partials import staged_file, staged_folder
dest, kind = Path(sys.argv[1]), sys.argv[2]
with (staged_folder if kind == "folder" else staged_file)(dest) as partial:
    (partial / "events.csv" if kind == "folder" else partial).write_text("a,b\\n1,2\\n")
    print(partial, flush=True)
    sys.stdin.read()  # hold the partial (and its lock) until the test closes stdin or kills us
"""


def _writer(dest: Path, kind: str) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(dest), kind], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()  # the state: its partial exists and it holds the lock
    assert line, proc.stderr.read()
    return proc, Path(line.strip())


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_killed_writers_partial_is_removed_and_a_live_ones_kept(tmp_path, kind):
    dest = tmp_path / ("out.csv" if kind == "file" else "out")
    killed, killed_partial = _writer(dest, kind)
    alive, alive_partial = _writer(dest, kind)
    assert killed_partial != alive_partial and set(partials_of(dest)) == {killed_partial, alive_partial}
    assert remove_stale(dest) == []  # both writers alive: nothing removed
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert remove_stale(dest) == [killed_partial]
    assert not killed_partial.exists() and alive_partial.exists()
    alive.stdin.close()  # the live writer finishes and renames its partial over dest
    assert alive.wait() == 0, alive.stderr.read()
    assert partials_of(dest) == [] and not alive_partial.exists()
    assert (dest / "events.csv" if kind == "folder" else dest).read_text() == "a,b\n1,2\n"
    for proc in (killed, alive):
        proc.stdout.close()
        proc.stderr.close()


def test_partial_names_cannot_be_taken_for_finished_output(tmp_path):
    dest = tmp_path / "out.csv"
    with staged_file(dest) as partial:
        partial.write_text("x\n")
        assert partial.name.startswith(".out.csv.") and partial.suffix == ".partial"
        assert list(tmp_path.glob("*.csv")) == [] and list(tmp_path.glob("out*")) == []
        assert is_partial_of(partial, dest)
        assert not is_partial_of(partial, tmp_path / "out")  # another destination's partials are not its own
    assert dest.read_text() == "x\n" and partials_of(dest) == []
    with pytest.raises(RuntimeError):
        with staged_folder(tmp_path / "folder") as partial:
            (partial / "a.csv").write_text("x\n")
            raise RuntimeError("a failed write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # the failed one left nothing


def _wait_for_partial(dest: Path, proc: subprocess.Popen, min_bytes: int) -> Path:
    """Wait (on the file system, not a clock) until `proc` has a partial of `dest` holding at
    least `min_bytes`; the deadline only guards against a hang."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        for p in partials_of(dest):
            try:
                if p.stat().st_size >= min_bytes:
                    return p
            except FileNotFoundError:
                pass
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no partial of {dest} grew past {min_bytes} bytes")


def _generate_subprocess(bundle: Path, dest: Path, rows: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "synthkit.cli", "generate", str(bundle), "--rows", rows,
                             "--seed", "1", "--out", str(dest)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_a_generate_killed_with_sigkill_is_cleaned_up_by_the_next_run(bundle, tmp_path):
    dest = tmp_path / "syn.csv"
    proc = _generate_subprocess(bundle, dest, "20000000")
    partial = _wait_for_partial(dest, proc, 200_000)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert partial.exists() and not dest.exists()  # what the killed run left: a partial only

    r = _run("generate", bundle, "--rows", "500", "--seed", "1", "--out", dest)
    assert r.exit_code == 0, r.output
    assert not partial.exists() and partials_of(dest) == []
    assert len(pd.read_csv(dest)) == 500  # complete, from this run
    assert [p.name for p in tmp_path.iterdir()] == ["syn.csv"]  # nothing else that looks finished


def test_a_generate_stopped_with_sigterm_removes_its_partial(bundle, tmp_path):
    dest = tmp_path / "syn.csv"
    proc = _generate_subprocess(bundle, dest, "20000000")
    _wait_for_partial(dest, proc, 200_000)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() != 0
    proc.stderr.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["no[/x]such", "a[bold]b", "[/]"])
def test_an_error_naming_a_path_with_brackets_prints_it_as_written(tmp_path, name):
    """Errors print through rich: a path with [brackets] must not be read as markup (a
    closing tag without an opening one raised MarkupError, an internal error)."""
    missing = tmp_path / name
    r = runner.invoke(app, ["generate", str(missing), "--rows", "5", "--out", str(tmp_path / "out.csv")])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(missing) in lines[0]


@pytest.mark.parametrize("option, value", [("--epsilon", "-1"), ("--epsilon", "nan"), ("--epsilon", "inf"),
                                           ("--epochs", "0")])
def test_demo_refuses_bad_options_before_writing_or_printing_anything(tmp_path, option, value):
    """Before: `demo --epsilon -1` wrote the real data and printed 'real data: ...' before
    the job refused the budget."""
    out = tmp_path / "demo"
    r = runner.invoke(app, ["demo", option, value, "--out", str(out)])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and option in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("argv, option", [(["generate", "m", "--rows", "0", "--out", "o.csv"], "--rows"),
                                          (["fit", "d.csv", "--epsilon", "abc"], "--epsilon"),
                                          (["fit"], "DATA"), (["fitt", "x"], "fitt")])
def test_usage_errors_of_the_installed_command_are_one_line(tmp_path, argv, option):
    """`synthkit` as installed (main): a usage error is one 'error:' line naming the option
    and the help, exit 2 (it was click's multi-line usage box). The argument is named by its
    metavar, DATA (session 9: plain metavars in --help)."""
    r = subprocess.run([sys.executable, "-m", "synthkit.cli", *argv], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "200"})
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("error:") and option in lines[0] and "--help" in lines[0]
