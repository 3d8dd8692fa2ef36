"""Fuzz suite (issue 16): hostile and malformed input through every CLI entry and
connector family ends in one clean line or a right success, never a Python exception,
a hang or a silent wrong success.

- The small corpus of `tests/fuzz_cases.py` runs in-process through typer's CliRunner;
  cases that could hang, exhaust memory or overflow the C stack on a regression
  (`isolate`) run in a child forked from one process that imported synthkit (as
  `python -m synthkit.cli` would run them) with a 60 s timeout and an address-space cap
  (that process's plus 4 GiB), so a regression fails the test instead of stalling CI.
- Hypothesis (derandomized, bounded examples, no deadline) feeds random CSV bytes and
  headers to `schema infer` and `connectors.read`, and random YAML documents to
  `schema check`.
- The larger corpus and the counts per class are `benchmarks/bench_fuzz.py`.

Cases of the corpus that still fail on this tree are listed in OPEN (with the class they
end in) and left out here, not marked xfail; the benchmark keeps running them.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import fuzz_cases as fc  # noqa: E402

import synthkit  # noqa: E402
from synthkit.cli import app  # noqa: E402
from synthkit.errors import SynthkitError  # noqa: E402

runner = CliRunner()
REPO = Path(synthkit.__file__).resolve().parents[1]  # the tree under test (also for the subprocesses)

# Cases of the small corpus that do not yet end as expected on this tree (name: the class
# they end in and where), left out of the parametrized test until fixed (issue 16).
OPEN: dict[str, str] = {
}


def invoke(argv: list[str]) -> tuple[int, str, bool]:
    """Run the CLI in-process: (exit code, stdout+stderr, an exception escaped the command)."""
    before = list(logging.root.handlers)
    try:
        # a user sees Python's warnings (RuntimeWarning and the like) on stderr: count them as output
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            result = runner.invoke(app, argv, catch_exceptions=True)
    finally:
        # `fit` calls logging.basicConfig on CliRunner's stream, which is closed afterwards
        for handler in logging.root.handlers[:]:
            if handler not in before:
                logging.root.removeHandler(handler)
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)  # off by default
    output = result.output + "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                                     for w in caught if not issubclass(w.category, hidden))
    if escaped:
        output += f"\nTraceback (most recent call last): {type(result.exception).__name__}"
    return result.exit_code, output, escaped


@pytest.fixture(scope="module")
def fork_server(tmp_path_factory):
    """One process that imported synthkit (and torch) and forks a child per isolated case."""
    home = tmp_path_factory.mktemp("fuzz-home")
    server = fc.ForkServer(REPO, fc.subprocess_env(home) | {"PYTHONPATH": str(REPO)})
    yield server
    server.close()


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> fc.Bases:
    def fit(argv: list[str]) -> tuple[int, str]:
        code, out, _ = invoke(argv)
        return code, out
    return fc.Bases(tmp_path_factory.mktemp("fuzz-bases"), fit)


CASES = [c for c in fc.small_corpus() if c.name not in OPEN]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_ends_cleanly(case: fc.Case, bases: fc.Bases, request, tmp_path: Path) -> None:
    work = fc.Work(tmp_path, bases)
    argv = case.build(work)
    if case.isolate:
        server = request.getfixturevalue("fork_server")
        code, output, timed_out = server.run(argv, tmp_path / "output.txt", timeout=60)
        cls, detail = fc.classify(case, work, code, output, timed_out=timed_out)
    else:
        code, output, escaped = invoke(argv)
        cls, detail = fc.classify(case, work, code, output, escaped=escaped)
    assert case.passes(cls), f"{case.name}: expected {case.expect}, got {cls}: {detail}"


def test_open_cases_are_in_the_corpus() -> None:
    names = {c.name for c in fc.small_corpus()}
    assert set(OPEN) <= names


def test_case_names_hold_no_data_values() -> None:
    """Ids are descriptive: no digit runs that could be a value, no paths."""
    import re
    for case in fc.large_corpus():
        assert re.fullmatch(r"[a-z0-9-]+", case.name), case.name
        assert not re.search(r"\d{4,}", case.name.replace("random-csv-bytes-", "").replace("random-schema-yaml-", "")
                             .replace("5000-digits", "").replace("10k", "").replace("20mb", "")), case.name


# ------------------------------------------------------------------ the classifier itself
def _case(expect: str) -> fc.Case:
    return fc.Case("t", "t", lambda w: [], expect)


@pytest.mark.parametrize("code,output,expect,cls", [
    (2, "error: bad thing\n", "error", "clean_error"),
    (1, "internal error: KeyError (run with SYNTHKIT_DEBUG=1 for details)\n", "error", "exception"),
    (2, "error: one\nerror: two\n", "error", "unclear_error"),
    (0, "wrote it\n", "error", "silent_wrong"),
    (0, "wrote it\n", "success", "success"),
    (2, "Usage: synthkit generate [OPTIONS]\nTry 'synthkit generate --help' for help.\n+- Error -+\n", "error",
     "clean_error"),
    (1, "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError\n", "either", "exception"),
    (1, "internal error: MemoryError\n", "error", "hang"),
])
def test_classify(code: int, output: str, expect: str, cls: str, tmp_path: Path) -> None:
    assert fc.classify(_case(expect), fc.Work(tmp_path, None), code, output)[0] == cls  # type: ignore[arg-type]


# ------------------------------------------------------------------ hypothesis
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

CSV_TOKENS = st.sampled_from(["a", "b", "x", "1", "-7", "0.5", "1e308", "-9223372036854775808", "inf", "nan", "",
                              ",", ",", ";", "\t", "\n", "\n", "\r\n", "\r", '"', " ", "\x00", "\xff", "é"])


def _one_line_error_or_success(code: int, output: str, escaped: bool) -> None:
    assert not escaped, output
    assert "Traceback" not in output and "internal error" not in output, output
    if code != 0:
        lines = [ln for ln in output.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), output


@FUZZ
@given(text=st.lists(CSV_TOKENS, max_size=120).map("".join))
def test_random_csv_text_infer(text: str, tmp_path_factory) -> None:
    work = tmp_path_factory.mktemp("h")
    data = work / "data.csv"
    data.write_bytes(text.encode("utf-8"))
    _one_line_error_or_success(*invoke(["schema", "infer", str(data), "--out", str(work / "s.yaml")]))


@FUZZ
@given(blob=st.binary(max_size=600), kind=st.sampled_from(["csv", "jsonl", "parquet"]))
def test_random_bytes_read(blob: bytes, kind: str, tmp_path_factory) -> None:
    """connectors.read on arbitrary bytes: a frame or a SynthkitError, nothing else."""
    import connectors
    path = tmp_path_factory.mktemp("h") / f"data.{kind}"
    path.write_bytes(blob)
    try:
        connectors.read(path)
    except SynthkitError:
        pass


NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@FUZZ
@given(names=st.lists(NAME, min_size=2, max_size=6, unique=True),
       values=st.lists(st.lists(st.integers(-10**6, 10**6), min_size=6, max_size=6), min_size=8, max_size=30))
def test_a_named_header_is_never_data(names: list[str], values: list[list[int]], tmp_path_factory) -> None:
    """Distinct, non-numeric names over numeric rows: the schema has exactly those columns
    (the header never becomes a data row, the columns never become column_0...)."""
    work = tmp_path_factory.mktemp("h")
    data = work / "data.csv"
    data.write_text(",".join(names) + "\n" + "".join(",".join(map(str, row[:len(names)])) + "\n" for row in values))
    code, output, escaped = invoke(["schema", "infer", str(data), "--out", str(work / "s.yaml")])
    assert code == 0 and not escaped, output
    import yaml
    assert list(yaml.safe_load((work / "s.yaml").read_text())["columns"]) == names


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    st.text(max_size=6))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["version", "columns", "kind", "bounds", "categories", "nullable", "entity_key",
                                     "rules", "decimals", "sensitive", "targets", "x"]), inner, max_size=4)),
    max_leaves=12)
COLUMN = st.fixed_dictionaries({"kind": st.sampled_from(["continuous", "integer", "categorical", "boolean",
                                                         "datetime", "identifier"])},
                               optional={"nullable": SCALARS, "bounds": DOCS, "categories": DOCS, "decimals": SCALARS})


@FUZZ
@given(doc=st.one_of(DOCS, st.fixed_dictionaries({"version": st.just(1),
                                                  "columns": st.dictionaries(NAME, COLUMN, min_size=1, max_size=3)})))
def test_random_schema_documents(doc: object, tmp_path_factory) -> None:
    """`schema check` on any YAML document: valid (and then it round-trips) or one line."""
    import yaml
    path = tmp_path_factory.mktemp("h") / "schema.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, output, escaped = invoke(["schema", "check", str(path)])
    _one_line_error_or_success(code, output, escaped)
    if code == 0:
        from synthkit.schema import Schema
        schema = Schema.load(path)
        assert Schema.from_yaml(schema.to_yaml()) == schema
