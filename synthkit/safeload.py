"""One safe way to read the YAML and JSON files a user hands to synthkit (schemas, jobs,
policies): bounded in size, nesting depth and alias expansion, so a hostile or broken file
ends in one clear line instead of a hang, unbounded memory or a RecursionError.

Why each limit:
- size (`max_bytes`): checked on the file's size before it is read, so a 20 MB comment is
  refused at once rather than scanned;
- nesting depth (`MAX_DEPTH`): parsers and the code walking their result recurse, and a
  file of 100,000 nested brackets would end in a RecursionError (or overflow the C stack
  of a native composer); no schema, job or policy is nested more than a few levels;
- YAML aliases (`MAX_NODES`): `&a [*b, *b, ...]` chains ("billion laughs") are small on
  disk and exponential once expanded (`str()` of a category list, a merge key, a copy).
  Aliases are allowed, but the document's size AFTER expansion is counted from the parser
  events — before anything is built — and capped; a recursive alias is refused.
The YAML is read with PyYAML's safe loader (libyaml's when installed): no tags that build
Python objects. Messages name the file and the problem, never a value from the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from synthkit.errors import SynthkitError

MAX_DEPTH = 64  # nested mappings/lists; schemas, jobs and policies use fewer than 8
MAX_NODES = 200_000  # YAML nodes after alias expansion (a 10,000-column schema has ~60,000)
SCHEMA_MAX_BYTES = 8 * 1024 * 1024
JOB_MAX_BYTES = 1024 * 1024
POLICY_MAX_BYTES = 1024 * 1024

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputLimitError(SynthkitError):
    """A user file is too large, too deeply nested, expands too far, or is not UTF-8/YAML/JSON.
    `problem` is the reason without the file; `where` names the file."""

    def __init__(self, problem: str, *, where: str) -> None:
        self.problem = problem
        self.where = where
        super().__init__(f"{where}: {problem}")


def read_text(path: str | Path, *, max_bytes: int, where: str | None = None) -> str:
    """The file's text (UTF-8, a BOM allowed) when it is a file of at most `max_bytes`."""
    p = Path(path)
    where = where or repr(str(p))
    if not p.is_file():
        raise InputLimitError("no such file", where=where)
    size = p.stat().st_size
    if size > max_bytes:
        raise InputLimitError(f"the file is {size:,} bytes, over the limit of {max_bytes:,}; "
                              "is this the right file? Remove long comments or split it", where=where)
    with open(p, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:  # grew while we looked
        raise InputLimitError(f"the file is over the limit of {max_bytes:,} bytes", where=where)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputLimitError(f"line {line} is not valid UTF-8; save the file as UTF-8", where=where) from None


def load_yaml(text: str, *, where: str, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """Parse one YAML document safely; see the module docstring for the limits."""
    try:
        _check_yaml_events(text, where=where, max_depth=max_depth, max_nodes=max_nodes)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        if "nesting depth" in str(getattr(err, "problem", "")):  # libyaml's own cap (1,000)
            raise InputLimitError(f"is nested more than {max_depth} levels deep; flatten it", where=where) from None
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputLimitError(f"not valid YAML{at}; check the indentation and quoting", where=where) from None
    except (ValueError, OverflowError):  # e.g. an integer of more than 4,300 digits
        raise InputLimitError("holds a number too large to read; shorten it", where=where) from None
    except RecursionError:  # unreachable after the depth check; kept as a last guard
        raise InputLimitError(f"is nested too deeply (limit {max_depth} levels)", where=where) from None


def _check_yaml_events(text: str, *, where: str, max_depth: int, max_nodes: int) -> None:
    """Depth and expanded size from the parser's event stream (iterative, nothing built)."""
    sizes: dict[str, int] = {}  # anchor -> expanded node count
    stack: list[list[Any]] = [[None, 0]]  # per open collection: its anchor, its expanded size
    total = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append([event.anchor, 1])
            added = 1
            if len(stack) - 1 > max_depth:
                raise InputLimitError(f"is nested more than {max_depth} levels deep; flatten it", where=where)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size = stack.pop()
            if anchor is not None:
                sizes[anchor] = size
            stack[-1][1] += size
            continue
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            added = 1
            stack[-1][1] += 1
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                raise InputLimitError("uses a YAML alias inside its own anchor (a recursive alias) or before "
                                      "it is defined; write the values out", where=where)
            added = sizes[event.anchor]
            stack[-1][1] += added
        else:
            continue
        total += added
        if total > max_nodes:
            raise InputLimitError(f"expands to more than {max_nodes:,} values (YAML aliases/anchors repeat "
                                  "content); write the values out or remove the aliases", where=where)


def load_json(text: str, *, where: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON safely: errors as one line, nesting depth capped after parsing."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputLimitError(f"not valid JSON (line {err.lineno}, column {err.colno})", where=where) from None
    except RecursionError:
        raise InputLimitError(f"is nested more than {max_depth} levels deep; flatten it", where=where) from None
    except ValueError:  # an integer of more than 4,300 digits
        raise InputLimitError("holds a number too large to read; shorten it", where=where) from None
    check_depth(data, where=where, max_depth=max_depth)
    return data


def check_depth(data: Any, *, where: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a parsed document nested deeper than `max_depth` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth + 1 > max_depth:
            raise InputLimitError(f"is nested more than {max_depth} levels deep; flatten it", where=where)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def load_file(path: str | Path, *, max_bytes: int, where: str | None = None) -> Any:
    """A YAML or JSON file (by suffix: .json is JSON, anything else YAML), within the limits."""
    p = Path(path)
    where = where or repr(str(p))
    text = read_text(p, max_bytes=max_bytes, where=where)
    if p.suffix.lower() == ".json":
        return load_json(text, where=where)
    return load_yaml(text, where=where)
