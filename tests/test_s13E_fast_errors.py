"""Issue 17: a wrong argument is refused before numpy, pandas, pydantic, polars or torch
are imported (state, not timing: which modules `sys.modules` holds when the command exits).

NEGATIVE CONTROL: on 1d3f1f8 (before this change) `test_error_path_imports_nothing_heavy`
fails for all six cases (typer converted every value through pydantic, synthkit.ledger
imported numpy, the model check imported synthkit.manifest). The two equivalence tests hold
the standard-library shortcuts equal to what they stand in for; they skip on 1d3f1f8,
which has no shortcut.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("numpy", "pandas", "pydantic", "polars", "torch")
ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, sys
sys.argv = ["synthkit"] + sys.argv[1:]
from synthkit.cli import main
try:
    main()
except SystemExit as exit_:
    code = exit_.code
print(json.dumps({"code": code, "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)

CASES = {
    "missing data file": ["fit", "missing.csv", "--epsilon", "1", "--out", "m"],
    "epsilon 0": ["fit", "x.csv", "--epsilon", "0", "--out", "m"],
    "misspelled model": ["fit", "x.csv", "--epsilon", "1", "--model", "dpctgam", "--out", "m"],
    "unknown option": ["fit", "x.csv", "--epsilon", "1", "--bogus"],
    "entity key not a column": ["fit", "x.csv", "--epsilon", "1", "--entity-key", "nope", "--out", "m"],
    "generate: not a bundle": ["generate", "nob", "--rows", "10", "--out", "m"],
}
MESSAGES = {
    "missing data file": "'missing.csv': no such file; check the path given as DATA (the first argument)",
    "epsilon 0": "--epsilon 0 is not a budget: epsilon must be a finite number > 0",
    "misspelled model": "unknown model 'dpctgam' (did you mean 'dpctgan'?); choose one of "
                        "['dpctgan', 'dphmm', 'dptvae'] with --model",
    "unknown option": "No such option: --bogus",
    "entity key not a column": "--entity-key 'nope' is not a column of 'x.csv'",
    "generate: not a bundle": "'nob' is not a synthkit model bundle (no manifest.json)",
}


@pytest.mark.parametrize("case", list(CASES))
def test_error_path_imports_nothing_heavy(case: str, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
    done = subprocess.run([sys.executable, "-c", _PROBE, *CASES[case]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 2, done.stderr
    assert MESSAGES[case] in " ".join(done.stderr.split()), done.stderr
    assert result["heavy"] == [], f"{case}: imported {result['heavy']} before refusing the argument"
    assert not (tmp_path / "m").exists()


def test_model_shortcuts_match_the_manifest() -> None:
    """The names and always-allowed values the CLI knows without pydantic are the manifest's."""
    cli = pytest.importorskip("synthkit.cli")
    if not hasattr(cli, "_MODEL_CHOICES"):
        pytest.skip("code before the shortcut")
    from synthkit.commands._common import check_model_options
    from synthkit.manifest import MODEL_NAMES
    assert sorted(cli._MODEL_CHOICES) == sorted(MODEL_NAMES.values())
    for model in cli._MODEL_CHOICES:
        options = {name: (f"--{name}", value) for name, value in cli._ALWAYS_ALLOWED.items()}
        check_model_options(model, options, command="synthkit fit")  # accepted by every model
    from synthkit.errors import ConfigError
    for wrong in ("dpctgam", "DPCTGAN", "tvae", "x"):
        with pytest.raises(ConfigError) as slow:
            check_model_options(wrong, {}, command="synthkit fit")
        with pytest.raises(ConfigError) as fast:
            cli._check_model_options(wrong, {}, command="synthkit fit")
        assert str(fast.value) == str(slow.value)


def _typer_params():  # every (command, parameter) of the app
    import typer

    import synthkit.cli as cli
    command = typer.main.get_command(cli.app)

    def walk(c):
        for p in getattr(c, "params", ()):
            if getattr(p, "type_descriptor", None) is not None:
                yield p
        for sub in getattr(c, "commands", {}).values():
            yield from walk(sub)
    return list(walk(command))


VALUES = ["0", "1", "-3", "42", "007", "+5", " 5", "1.5", "1e3", "-2.5e-3", ".5", "1e999", "nan", "abc", "",
          "1_000", "70000", "100000", "100001", "data.csv", "-", "sqlite:///x.db", 0, 1, 2.5, True, False]


def test_fast_conversion_equals_typers() -> None:
    """For every parameter of every command and many values, the standard-library
    conversion gives what typer's pydantic one gives (value and type) or defers to it."""
    import synthkit.cli as cli
    if not hasattr(cli, "_fast_leaf"):
        pytest.skip("code before the shortcut")
    from typer._click import Context
    from typer._click.exceptions import BadParameter
    from typer._coercion import build_runtime_param

    import typer
    ctx = Context(typer.main.get_command(cli.app))
    fast_seen = 0
    for param in _typer_params():
        desc = param.type_descriptor
        slow = build_runtime_param(desc)
        is_list = desc.is_list
        for value in VALUES:
            given = (value,) if is_list else value
            try:
                expected = slow._coerce_value(given, param=param, ctx=ctx)
            except (BadParameter, ValueError, TypeError) as err:
                expected = ("refused", type(err).__name__)
            if is_list:
                item = cli._fast_leaf(desc.annotation.__args__[0], desc.parameter_info, value)
                got = cli._NOT_FAST if item is cli._NOT_FAST else [item]
            else:
                got = cli._fast_leaf(desc.annotation, desc.parameter_info, value)
            if got is cli._NOT_FAST:
                continue
            fast_seen += 1
            assert got == expected and type(got) is type(expected), (param.name, value, got, expected)
            if is_list:
                assert [type(x) for x in got] == [type(x) for x in expected]
    assert fast_seen > 500  # the shortcut is taken for the ordinary values


def test_missing_manifest_line_equals_read_manifests(tmp_path: Path) -> None:
    """cli._read_manifest refuses a folder without manifest.json in read_manifest's words."""
    import synthkit.cli as cli
    if not hasattr(cli, "_read_manifest"):
        pytest.skip("code before the shortcut")
    from synthkit.errors import ArtifactError
    from synthkit.manifest import read_manifest
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    for given in (tmp_path / "nope", tmp_path / "empty", tmp_path / "file", str(tmp_path / "a\nb"),
                  str(tmp_path / "/".join(["x" * 50] * 8)), "relative/bundle"):
        with pytest.raises(ArtifactError) as slow:
            read_manifest(given)
        with pytest.raises(ArtifactError) as fast:
            cli._read_manifest(given)
        assert str(fast.value) == str(slow.value)
