"""Argument, path and option errors come before the heavy imports (issue 17).

A typo used to wait for torch and opacus (seconds; 28 s on a busy machine) before it was
refused. The check here is on STATE, not time: every error case runs in one fresh Python
process and, after each, the test reads whether `torch` is in `sys.modules`. Every error
is also one line that names the option and the fix (exit code 2). The cases are the ones
of benchmarks/bench_startup.py, which measures the wall time.

Negative control: the same script run against the code before this change (PYTHONPATH set
to a checkout of ef291ec) reports torch imported for every fit, audit and run case.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs each case through the installed command's own entry (`_run_app`: usage errors as one
# line too), stderr captured; reports the exit code, stderr and which heavy modules are loaded.
CHILD = r"""
import contextlib, io, json, sys
from synthkit.cli import _run_app
results = []
for name, argv in json.loads(sys.argv[1]):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = _run_app(argv)
        except SystemExit as exit_:
            code = exit_.code
    results.append({"name": name, "code": code, "stderr": err.getvalue(), "stdout": out.getvalue(),
                    "loaded": sorted(m for m in ("torch", "opacus", "sklearn", "sdmetrics") if m in sys.modules)})
print(json.dumps(results))
"""

LONG = "a-folder-with-a-rather-long-name-that-a-terminal-of-sixty-columns-would-fold"


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> tuple[Path, list[tuple[str, list[str], tuple[str, ...]]]]:
    tmp = tmp_path_factory.mktemp("fast")
    data = tmp / "small.csv"
    with data.open("w", newline="") as f:  # made-up public numbers
        w = csv.writer(f)
        w.writerow(["id", "t", "x", "y"])
        for i in range(40):
            w.writerow([i // 4, i % 4, i * 0.5, "a" if i % 3 else "b"])
    taken = tmp / "taken"
    taken.mkdir()
    (taken / "manifest.json").write_text("{}")
    job = tmp / "bad.yaml"
    job.write_text("version: 1\nname: ok\nsource: {uri: small.csv}\nschema: nope.yaml\nmodel: {name: dpctgn}\n"
                   "privacy: {epsilon: 1}\ngenerate: {rows: 10}\nthreads: 0\n")
    d, m = str(data), str(tmp / "m")
    fit = ["fit", d, "--out", m, "--epsilon", "1"]
    long_missing = str(tmp / LONG / LONG / "missing.csv")
    return tmp, [
        # (name, argv, words the one error line must hold)
        ("fit missing file", ["fit", str(tmp / "missing.csv"), "--epsilon", "1", "--out", m],
         ("missing.csv", "no such file")),
        ("fit long missing path", ["fit", long_missing, "--epsilon", "1", "--out", m], (long_missing,)),
        ("fit --epsilon 0", ["fit", d, "--out", m, "--epsilon", "0"], ("--epsilon", "give e.g.")),
        ("fit --delta 2", fit + ["--delta", "2"], ("--delta", "typical values")),
        ("fit --delta 0", fit + ["--delta", "0"], ("--delta",)),
        ("fit --model misspelled", fit + ["--model", "dpctgn"], ("dpctgn", "did you mean 'dpctgan'", "--model")),
        ("fit --entity-key unknown", fit + ["--entity-key", "ID"], ("--entity-key 'ID'", "did you mean 'id'")),
        ("fit --target unknown", fit + ["--target", "z"], ("target", "'z'")),
        ("fit --sequence-index unknown", fit + ["--model", "dphmm", "--entity-key", "id", "--sequence-index", "T"],
         ("--sequence-index 'T'",)),
        ("fit --out exists", ["fit", d, "--epsilon", "1", "--out", str(taken)], ("already exists", "--overwrite")),
        ("fit --epochs 0", fit + ["--epochs", "0"], ("--epochs 0", "greater than or equal to 1")),
        ("fit --device", fit + ["--device", "gpu"], ("--device 'gpu'", "'cuda'")),
        ("fit --threads 0", fit + ["--threads", "0"], ("--threads", "1 to 1024")),
        ("fit unknown option", fit + ["--epsilom", "1"], ("--epsilom", "synthkit fit --help")),
        ("generate not a bundle", ["generate", str(tmp / "nob"), "--rows", "5", "--out", str(tmp / "s.csv")],
         ("not a synthkit model bundle",)),
        ("generate --threads 0", ["generate", str(tmp / "nob"), "--rows", "5", "--out", str(tmp / "s.csv"),
                                  "--threads", "0"], ("--threads",)),
        ("inspect not a bundle", ["inspect", str(tmp / "nob")], ("not a synthkit model bundle",)),
        ("evaluate not a bundle", ["evaluate", str(tmp / "nob"), "--real", d, "--synthetic", d,
                                   "--out", str(tmp / "r")], ("not a synthkit model bundle",)),
        ("evaluate missing synthetic", ["evaluate", str(tmp / "nob"), "--real", d, "--synthetic",
                                        str(tmp / "nos.csv"), "--out", str(tmp / "r")], ("--synthetic", "no such file")),
        ("audit --epsilon 0", ["audit", d, "--epsilon", "0", "--out", str(tmp / "a")], ("--epsilon",)),
        ("audit --entity-key unknown", ["audit", d, "--epsilon", "1", "--entity-key", "nope", "--out",
                                        str(tmp / "a")], ("--entity-key 'nope'",)),
        ("audit missing file", ["audit", str(tmp / "missing.csv"), "--epsilon", "1", "--out", str(tmp / "a")],
         ("no such file",)),
        ("run invalid job", ["run", str(job)], ("model.name", "threads must be")),
        ("run missing job", ["run", str(tmp / "missing.yaml")], ("no such file",)),
        ("schema infer missing", ["schema", "infer", str(tmp / "missing.csv"), "--out", str(tmp / "s.yaml")],
         ("no such file",)),
        ("schema infer --entity-key", ["schema", "infer", d, "--entity-key", "nope", "--out", str(tmp / "s.yaml")],
         ("--entity-key 'nope'",)),
        *_light_cases(tmp, d, m),
    ]


def _light_cases(tmp: Path, d: str, m: str) -> list[tuple[str, list[str], tuple[str, ...]]]:
    """Refused before pandas too (trial 3 of issue 17: 1.3-4.2 s, growing with the file for
    --holdout). A table bundle's raw manifest (class and no sequence section agree) is
    enough to refuse --entities; the full validation is not reached."""
    table = tmp / "table_bundle"
    table.mkdir(exist_ok=True)
    (table / "manifest.json").write_text(json.dumps({"model": {"class": "DPTVAE", "name": "dptvae"}}))
    fit = ["fit", d, "--out", m, "--epsilon", "1"]
    return [
        ("fit --holdout 1.5", fit + ["--holdout", "1.5"], ("--holdout", "(0, 1)", "0.2")),
        ("fit --schema missing", fit + ["--schema", str(tmp / "missing.yaml")], ("missing.yaml", "--schema")),
        ("generate table bundle --entities", ["generate", str(table), "--entities", "5", "--out", str(tmp / "g")],
         ("--entities", "--rows")),
    ]


LIGHT_CHILD = CHILD.replace('("torch", "opacus", "sklearn", "sdmetrics")',
                            '("torch", "opacus", "sklearn", "sdmetrics", "pandas", "scipy", "polars")')


def test_a_bad_holdout_a_missing_schema_and_entities_for_a_table_come_before_pandas(tmp_path):
    """State, not time: one fresh process runs only these cases and then reads sys.modules.
    Negative control: on 580db96 --holdout 1.5 loaded pandas and polars (the data was read
    first) and --schema missing.yaml pandas (the schema module first): failed there. The
    stand-in manifest here is refused before pandas on 580db96 too (its structure is
    invalid); the control with a real table bundle is in tests/test_first_hour_target.py."""
    data = tmp_path / "small.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    todo = _light_cases(tmp_path, str(data), str(tmp_path / "m"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("SYNTHKIT_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", LIGHT_CHILD, json.dumps([(n, a) for n, a, _ in todo])],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for r in json.loads(proc.stdout):
        assert r["code"] == 2 and r["stderr"].startswith("error:"), r
        assert r["loaded"] == [], (r["name"], r["loaded"])


@pytest.fixture(scope="module")
def results(cases) -> list[dict]:
    tmp, todo = cases
    env = dict(os.environ, COLUMNS="60", PYTHONPATH=str(REPO))
    env.pop("SYNTHKIT_DEBUG", None)
    env.pop("SYNTHKIT_THREADS", None)
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps([(n, a) for n, a, _ in todo])], cwd=tmp,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_every_error_comes_before_torch_is_imported(results):
    # cumulative state: the first case that loads torch is the one to fix
    first = next((r["name"] for r in results if "torch" in r["loaded"]), None)
    assert first is None, f"{first!r} imported torch before refusing its input"
    assert not any(r["loaded"] for r in results), [(r["name"], r["loaded"]) for r in results if r["loaded"]]


def test_every_error_is_one_line_naming_the_option_and_the_fix(cases, results):
    needles = {name: words for name, _, words in cases[1]}
    for r in results:
        lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
        assert r["code"] == 2, (r["name"], r["code"], r["stderr"])
        assert len(lines) == 1 and lines[0].startswith("error:"), (r["name"], r["stderr"])
        for word in needles[r["name"]]:
            assert word in lines[0], (r["name"], word, lines[0])
        assert r["stdout"] == "", (r["name"], r["stdout"])


def test_a_long_path_stays_on_one_line_at_sixty_columns(results):
    r = next(r for r in results if r["name"] == "fit long missing path")
    assert len(r["stderr"].strip().splitlines()) == 1
    assert len(r["stderr"].strip()) > 2 * 60  # longer than the terminal, and still not folded


def test_the_model_names_and_hyperparameters_without_torch_match_the_models():
    """The torch-free lists the CLI and job specs check against (synthkit.manifest) are the
    models' own constructor arguments."""
    import inspect

    from synthkit.manifest import HYPERPARAMETERS, MODEL_NAMES
    from synthkit.models import REGISTRY

    assert set(MODEL_NAMES) == set(REGISTRY)
    for cls_name, cls in REGISTRY.items():
        assert MODEL_NAMES[cls_name] == cls.model_name
        assert set(HYPERPARAMETERS[cls_name].model_fields) == set(inspect.signature(cls.__init__).parameters) - {"self"}


# ------------------------------------------------------------------ quiet, exact output
def test_help_at_80_columns_shows_every_option_name_whole():
    from typer.testing import CliRunner

    from synthkit.cli import app

    runner = CliRunner()
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert top.exit_code == 0
    for command in ("fit", "generate", "evaluate", "audit", "run", "schema"):
        assert f"\n  {command} " in top.output, top.output
    fit = runner.invoke(app, ["fit", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert fit.exit_code == 0
    for option in ("--max-rows-per-entity", "--context-schema", "--sequence-index", "--threads", "--holdout-seed"):
        assert option in fit.output, option
    assert "…" not in fit.output and "<bool>" not in fit.output  # rich's cut names and flag labels
    assert max(len(line) for line in fit.output.splitlines()) <= 80
    for command in (["fit"], ["evaluate"], ["generate"], ["audit"], ["run"]):  # a repeated option shows
        out = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"}, terminal_width=80).output
        assert "list[" not in out, command  # what it takes, not typer's Python type


def test_a_library_that_sets_its_own_logger_to_info_stays_quiet_unless_verbose(caplog):
    """great-expectations sets its logger to INFO on import and announces every temporary
    folder; only --verbose shows that (setup_logging)."""
    import logging

    from synthkit.commands._common import setup_logging

    chatty = logging.getLogger("great_expectations.data_context.types.base")
    chatty.setLevel(logging.INFO)  # what the library does on import
    try:
        with caplog.at_level(logging.INFO):
            setup_logging(False)
            chatty.info("Created temporary directory")
            chatty.warning("a real warning")
            setup_logging(True)
            chatty.info("shown with --verbose")
    finally:
        setup_logging(False)
    messages = [r.getMessage() for r in caplog.records if r.name == chatty.name]
    assert messages == ["a real warning", "shown with --verbose"]


def test_synthkits_handler_shows_each_warning_once_on_the_current_stderr():
    """`audit` fits once per trial; a note about the data is printed once, not per trial."""
    import contextlib
    import io
    import logging

    from synthkit.commands._common import _StderrHandler

    handler = _StderrHandler()

    def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("synthkit.transforms", level, __file__, 1, msg, None, None)

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        for msg in ("column 'a': note", "column 'a': note", "column 'b': note"):
            handler.handle(record(msg))
        for _ in range(2):
            handler.handle(record("progress", logging.INFO))  # only warnings are folded
    assert err.getvalue().splitlines() == ["column 'a': note", "column 'b': note", "progress", "progress"]


# ------------------------------------------------------------------ a column name from the header alone
# A CSV's column names come from its header through the standard library (connectors.csvhead),
# with the layout decisions the whole read takes (it calls the same functions), so that a
# misspelled --target or --entity-key is refused before pandas, polars or pyarrow load.
# Each case: (name, file bytes, suffix, read options, whether the header-only path answers
# itself: False where it must hand the file to the whole read, which names it differently).
def _rows(n: int, *, wide_at: int) -> bytes:
    """`n` headerless rows of two numbers, one of three at 0-based row `wide_at` (under 64 KiB)."""
    rows = [f"{i},{i % 7}" for i in range(n)]
    rows[wide_at] += ",9"
    return ("\n".join(rows) + "\n").encode()


_HEADERS = [
    ("header", b"age,sex\n34,f\n51,m\n", ".csv", {}, True),
    ("no header: numbers over numbers", b"1,2,3\n4,5,6\n", ".csv", {}, True),
    ("a number over a text column is header evidence", b"name,2019\nann,x\nbo,y\n", ".csv", {}, True),
    ("a null marker in the first row is an empty field", b"NA,age\nx,1\ny,2\n", ".csv", {}, True),
    ("an empty field and a typed one: doubtful", b"a,,c\n1,2,3\n4,5,6\n", ".csv", {}, True),
    ("a repeated field", b"a,a\nx,y\nz,w\n", ".csv", {}, True),
    ("repeated after trimming", b"a, a\nx,y\n", ".csv", {"has_header": True}, True),
    ("--header on numbers", b"34,f\n51,m\n", ".csv", {"has_header": True}, True),
    ("--no-header on a header", b"age,sex\n34,f\n", ".csv", {"has_header": False}, True),
    ("--header with an empty name", b"a,,c\nx,y,z\n", ".csv", {"has_header": True}, True),
    ("--no-header after blank lines", b"\n\n1,2,3\n4,5,6\n", ".csv", {"has_header": False}, True),
    ("--no-header, wider rows at line 1,200 (beyond polars' inference)",
     _rows(1500, wide_at=1200), ".csv", {"has_header": False}, True),
    ("--header, a wider row below", b"a,b\n1,2,3\n", ".csv", {"has_header": True}, True),
    ("--header keeps a null marker as a name", b"NA,age\nx,1\n", ".csv", {"has_header": True}, True),
    ("byte order mark", b"\xef\xbb\xbfname,age\nann,3\nbo,4\n", ".csv", {}, True),
    ("leading blank lines", b"\n\nname,age\nann,3\nbo,4\n", ".csv", {}, True),
    ("a first line of spaces", b" \nname,age\nx,1\n", ".csv", {}, True),
    ("CRLF", b"name,age\r\nann,3\r\nbo,4\r\n", ".csv", {}, True),
    ("spaces kept in names", b" name , age\nann,3\n", ".csv", {}, True),
    ("semicolons sniffed", b"a;b;c\nx;1;2\ny;3;4\n", ".csv", {}, True),
    ("pipes sniffed", b"a|b\nx|1\ny|2\n", ".csv", {}, True),
    ("tab for .tsv", b"a b\tc\nx\t1\n", ".tsv", {}, True),
    ("separator given", b"a;b\nx;1\n", ".csv", {"separator": ";"}, True),
    ("quoted names", b'"name","age"\nx,1\ny,2\n', ".csv", {}, True),
    ("a separator inside quotes", b'"na,me",age\nx,1\n', ".csv", {}, True),
    ("quotes kept with quote_char=None", b'"name","age"\nx,1\n', ".csv", {"quote_char": None}, True),
    ("only a header", b"name,age\n", ".csv", {}, True),
    ("no end of line", b"name,age", ".csv", {}, True),
    ("latin-1", "größe,name\n1,x\n".encode("latin-1"), ".csv", {"encoding": "latin-1"}, True),
    ("utf-16", "größe,name\n1,x\n".encode("utf-16"), ".csv", {"encoding": "utf-16"}, True),
    ("unknown encoding", b"a,b\nx,1\n", ".csv", {"encoding": "no-such-codec"}, True),
    ("a control character in a name", b"a\x01,b\nx,1\n", ".csv", {}, True),
    ("NUL bytes", b"a,b\x00\nx,1\n", ".csv", {}, True),
    ("CR-only line ends", b"a,b\rx,1\ry,2\r", ".csv", {}, True),
    ("empty file", b"", ".csv", {}, True),
    ("blank file", b"\n \n", ".csv", {}, True),
    ("too many columns", (",".join(f"c{i}" for i in range(2001)) + "\n" + ",".join("x" * 2001) + "\n").encode(),
     ".csv", {}, True),
    # not plain: the whole read decides (polars keeps a doubled quote, csv would not)
    ("a doubled quote in a name", b'"na""me",age\nx,1\n', ".csv", {}, False),
    ("a name over two lines", b'"a\nb",c\nx,1\n', ".csv", {}, False),
    ("a bare CR inside a name", b"a\rb,c\nx,1\ny,2\n", ".csv", {}, False),
    ("invalid UTF-8 in the head", b"n\xe9,age\nx,1\n", ".csv", {}, False),
    ("--no-header, a wider row below", b"a,b\n1,2,3\n", ".csv", {"has_header": False}, False),
    ("--no-header, a line of spaces first", b" \n1,2\n3,4\n", ".csv", {"has_header": False}, False),
    ("--no-header, a wider row at line 1,000", _rows(1500, wide_at=999), ".csv", {"has_header": False}, False),
    ("--no-header, quoted fields", b'"a","b"\n1,2\n', ".csv", {"has_header": False}, False),
    ("a first line over 64 KiB", (",".join(f"column_name_{i:05d}_" + "x" * 60 for i in range(900)) + "\n").encode(),
     ".csv", {}, False),
]


def _verdict(action):  # type: ignore[no-untyped-def]
    from synthkit.errors import SourceError
    try:
        names = action()
        return ("columns", None if names is None else [str(c) for c in names])
    except SourceError as err:
        return ("refused", str(err))


@pytest.mark.parametrize("name, content, suffix, options, answers", _HEADERS, ids=[c[0] for c in _HEADERS])
def test_the_header_alone_gives_the_whole_reads_columns_or_refusal(tmp_path, name, content, suffix, options,
                                                                    answers):
    import connectors
    from connectors import csvhead

    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    whole = _verdict(lambda: connectors.read(path, n_rows=0, check_rows=False, **options).columns)
    alone = _verdict(lambda: csvhead.columns(path, **options))
    # a plain header is answered from the head, and exactly as the whole read answers it;
    # one that is not plain is handed over (None), never guessed
    assert alone == (whole if answers else ("columns", None))
    # what the CLI calls: always the whole read's answer
    assert _verdict(lambda: connectors.read_columns(path, **options)) == whole


def _parquet(frame_dict):  # type: ignore[no-untyped-def]
    import io

    import polars as pl
    buf = io.BytesIO()
    pl.DataFrame(frame_dict).write_parquet(buf)
    return buf.getvalue()


_SCANNED = [  # Parquet and JSON lines: names from polars' scan schema, or the whole read decides
    ("plain parquet", lambda: _parquet({"a": [1, 2], "b name": ["x", "y"]}), ".parquet"),
    ("parquet with a nested column", lambda: _parquet({"a": [1, 2], "l": [[1], [2, 3]]}), ".parquet"),
    ("parquet with a binary column", lambda: _parquet({"a": [1, 2], "b": [b"x", b"y"]}), ".parquet"),
    ("parquet with a struct column", lambda: _parquet({"a": [1, 2], "s": [{"k": 1}, {"k": 2}]}), ".parquet"),
    ("parquet with too many columns", lambda: _parquet({f"c{i}": [1] for i in range(2001)}), ".parquet"),
    ("not parquet", lambda: b"a,b\n1,2\n", ".parquet"),
    ("plain jsonl", lambda: b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y", "c": 3}\n', ".jsonl"),
    ("jsonl with a nested value", lambda: b'{"a": 1, "b": [1, 2]}\n', ".jsonl"),
    ("jsonl with a type change late", lambda: b'{"a": 1}\n' * 50 + b'{"a": "x"}\n', ".jsonl"),
    ("broken jsonl", lambda: b'{"a": 1}\n{"a": \n', ".jsonl"),
]


@pytest.mark.parametrize("name, content, suffix", _SCANNED, ids=[c[0] for c in _SCANNED])
def test_parquet_and_jsonl_names_are_the_whole_reads_columns_or_refusal(tmp_path, name, content, suffix):
    import connectors

    path = tmp_path / f"data{suffix}"
    path.write_bytes(content())
    whole = _verdict(lambda: connectors.read(path, n_rows=0, check_rows=False).columns)
    assert _verdict(lambda: connectors.read_columns(path)) == whole


def test_the_header_alone_refuses_a_missing_file_or_a_folder_as_the_whole_read(tmp_path):
    import connectors
    from connectors import csvhead

    (tmp_path / "folder.csv").mkdir()
    for path in (tmp_path / "missing.csv", tmp_path / "folder.csv"):
        whole = _verdict(lambda: connectors.read(path, n_rows=0, check_rows=False))
        assert whole[0] == "refused"
        assert _verdict(lambda: csvhead.columns(path)) == whole
        assert _verdict(lambda: connectors.read_columns(path)) == whole


# Runs the installed command's entry for each case in one process and, after each, reports
# which of the heavy modules are loaded (cumulative, so the slow case comes last).
HEADER_CHILD = r"""
import contextlib, io, json, sys
import connectors
heavy = ("torch", "pandas", "polars", "pyarrow")
results = [{"name": "import connectors; parse", "code": None, "stderr": "",
            "kind": connectors.parse(sys.argv[2]).kind, "loaded": [m for m in heavy if m in sys.modules]}]
from synthkit.cli import _run_app
for name, argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = _run_app(argv)
        except SystemExit as exit_:
            code = exit_.code
    results.append({"name": name, "code": code, "stderr": err.getvalue(),
                    "loaded": [m for m in heavy if m in sys.modules]})
print(json.dumps(results))
"""


def test_a_misspelled_column_is_refused_without_pandas_polars_or_pyarrow(tmp_path):
    """Negative control: on the code before (f0d0eca) `import connectors` alone loads pandas,
    polars and pyarrow, and every case below reports them loaded."""
    data = tmp_path / "visits.csv"
    data.write_text("patient,age,ward\n" + "".join(f"{i // 3},{30 + i % 50},w{i % 4}\n" for i in range(60)))
    quoted = tmp_path / "quoted.csv"  # a doubled quote: the header-only path hands it to the whole read
    quoted.write_text('patient,"a""ge"\n1,2\n3,4\n')
    out = str(tmp_path / "m")
    todo = [
        ("fit --target", ["fit", str(data), "--epsilon", "1", "--out", out, "--target", "agee"],
         ("--target 'agee'", "did you mean 'age'")),
        ("fit --entity-key --no-header", ["fit", str(data), "--epsilon", "1", "--out", out, "--no-header",
                                          "--entity-key", "patient"], ("--entity-key 'patient'", "column_0")),
        ("audit --entity-key", ["audit", str(data), "--epsilon", "1", "--out", out, "--entity-key", "Patient"],
         ("--entity-key 'Patient'", "did you mean 'patient'")),
        ("schema infer --entity-key", ["schema", "infer", str(data), "--out", str(tmp_path / "s.yaml"),
                                       "--entity-key", "ward_"], ("--entity-key 'ward_'", "did you mean 'ward'")),
        ("control: a header only the whole read names", ["fit", str(quoted), "--epsilon", "1", "--out", out,
                                                         "--target", "age"], ("--target 'age'", "'a\"\"ge'")),
    ]
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=str(REPO))
    for name in ("SYNTHKIT_DEBUG", "SYNTHKIT_THREADS"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-c", HEADER_CHILD, json.dumps([(n, a) for n, a, _ in todo]), str(data)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, *runs = json.loads(proc.stdout)
    assert first["kind"] == "csv" and first["loaded"] == [], first
    for (name, _, words), r in zip(todo, runs):
        lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
        assert r["code"] == 2 and len(lines) == 1 and lines[0].startswith("error:"), (name, r)
        for word in words:
            assert word in lines[0], (name, word, lines[0])
    assert [r["loaded"] for r in runs[:-1]] == [[]] * (len(runs) - 1), [(r["name"], r["loaded"]) for r in runs]
    # the control: the check sees a load when there is one (the whole read loads polars and pandas)
    assert {"pandas", "polars"} <= set(runs[-1]["loaded"]), runs[-1]


def test_every_public_name_of_the_lazy_connectors_package_resolves():
    """`connectors` loads its readers on first access (PEP 562); every name it exports and
    every submodule the tests and commands reach through it still resolves."""
    import types

    import connectors

    assert [n for n in connectors.__all__ if not hasattr(connectors, n)] == []
    for name in ("files", "sql", "source", "fhir", "camt053", "banktx", "csvhead", "uri"):
        assert isinstance(getattr(connectors, name), types.ModuleType), name
    assert connectors.Source is connectors.source.Source and connectors.files.NULL_VALUES == connectors.csvhead.NULL_VALUES
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        connectors.nope  # noqa: B018
