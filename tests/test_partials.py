"""synthkit.partials: staged writes leave either the complete output or the old one, never a
partial taken for output; and where no `fcntl` exists (Windows) they still write, but never
remove another writer's partial. Plus the CLI's answer to an abort (Ctrl-C in a prompt)."""

from __future__ import annotations

import pytest

from synthkit import partials


def _leftovers(dest) -> list:
    return partials.partials_of(dest)


def test_staged_file_failure_keeps_the_old_output_and_leaves_no_partial(tmp_path):
    dest = tmp_path / "out.csv"
    dest.write_text("old\n")
    with pytest.raises(RuntimeError):
        with partials.staged_file(dest) as path:
            path.write_text("half of the new ro")
            raise RuntimeError("writer failed")
    assert dest.read_text() == "old\n"
    assert _leftovers(dest) == []

    with partials.staged_file(dest) as path:
        path.write_text("new\n")
        assert _leftovers(dest) == [path]  # hidden partial beside the destination while writing
    assert dest.read_text() == "new\n" and _leftovers(dest) == []


def test_staged_folder_replaces_the_old_folder_only_when_complete(tmp_path):
    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "a.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with partials.staged_folder(dest) as path:
            (path / "b.txt").write_text("new")
            raise KeyboardInterrupt
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"] and _leftovers(dest) == []

    with partials.staged_folder(dest) as path:
        (path / "b.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"] and _leftovers(dest) == []


def test_without_fcntl_writes_work_and_no_partial_is_judged_stale(tmp_path, monkeypatch):
    """Windows: no lock, so a dead writer's partial cannot be told from a live one's; the
    next run must leave it (it may belong to a writer still at work) and still write."""
    dest = tmp_path / "out.csv"
    foreign = tmp_path / f"{partials.partial_prefix(dest)}abcdefgh{partials.SUFFIX}"
    foreign.write_text("another writer's rows")
    assert partials.remove_stale(dest) == [foreign]  # with fcntl: its lock is free, so it goes

    foreign.write_text("another writer's rows")
    monkeypatch.setattr(partials, "fcntl", None)
    assert partials.remove_stale(dest) == []
    with partials.staged_file(dest) as path:
        path.write_text("x\n")
    assert dest.read_text() == "x\n"
    assert foreign.exists()
    with partials.staged_folder(tmp_path / "folder") as path:
        (path / "f").write_text("y")
    assert (tmp_path / "folder" / "f").read_text() == "y"


def test_an_abort_is_one_line_and_exit_130(monkeypatch, capsys):
    """typer.Abort (Ctrl-C at a prompt) through the installed command's wrapper: one line,
    exit 130, no AttributeError from a click module that typer's copy does not have."""
    import typer

    from synthkit import cli

    class Aborting:  # the click command `_run_app` builds from the app (session 9: get_command, for plain metavars)
        params: list = []
        commands: dict = {}

        def main(self, *args, **kwargs):
            raise typer.Abort()

    monkeypatch.setattr(cli.typer.main, "get_command", lambda app: Aborting())
    monkeypatch.setattr(cli, "_plain_metavars", lambda command: None)
    assert cli._run_app(["fit"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted")
