"""The layout of a CSV file, decided from its first 64 KiB with the standard library only.

What is decided here: the text checks (NUL bytes, CR-only line endings), the delimiter,
whether the first row is a header (conservatively: `_header`), and which column names are
refused. Both readers call these functions, so they cannot disagree: `connectors.files`
(the whole read through polars) and `columns` below (the header alone, what
`connectors.read_columns` and the CLI's checks use, issue 17). This module imports neither
pandas, polars nor pyarrow, so a misspelled column is refused in a fraction of a second,
before any of them is loaded.

Privacy: a header becomes column names, which synthkit treats as PUBLIC schema; that is why
the detection takes a doubtful first row as data or asks. Errors name positions, line
numbers and counts, never a cell value.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from pathlib import Path
from typing import Sequence

from synthkit.errors import SourceError

# the reader's logger: a note of the header detection is the whole read's note
log = logging.getLogger("connectors.files")

NULL_VALUES = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
_SNIFF_BYTES = 64 * 1024
_MAX_LINES_SHOWN = 5
# Widest table read: a model learns every column, and fitting thousands of them takes more
# than minutes; a wider export is almost always a pivot or a wrong delimiter.
MAX_COLUMNS = 2_000
_SNIFF_ROWS = 200  # rows after the first that header detection compares it with
_INFER_ROWS = 1000  # rows polars infers types from; without a header, also its column count
_NUMBER_OR_DATE = re.compile(r"^\s*([-+]?(\d+[.,]?\d*|\.\d+)([eE][-+]?\d+)?|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}.*)\s*$")


# ------------------------------------------------------------------ the header alone
def columns(path: Path, *, separator: str | None = None, encoding: str = "utf8", has_header: bool | None = None,
            quote_char: str | None = '"', null_values: Sequence[str] = NULL_VALUES) -> list[str] | None:
    """The column names the whole read (`connectors.files.read`) gives this CSV, from its
    first 64 KiB, with the same refusals in the same order: a missing file, an unknown
    encoding, an empty file, NUL bytes or CR-only lines, a doubtful header, repeated or
    unprintable names, too many columns.

    None where the first record is not plain enough to be sure polars names it the same
    (a quote inside a field, a field over several lines, a bare CR, a head that is not valid
    in its encoding, a first line longer than 64 KiB; without a header, rows of different
    widths or quoting in the rows polars counts columns over): the caller then reads it the slow
    way. What lies beyond the head (a malformed row further down, a byte invalid in the
    encoding) is the whole read's to refuse, as it is for a read of no rows."""
    check_file(path)
    head = _encoded_head(path, encoding)
    if head is None:
        return None
    text = _head_of(head)
    sep, header = layout(path, text, encoding=encoding, separator=separator, has_header=has_header,
                         quote_char=quote_char, null_values=null_values)
    fields = _first_record(text, sep, quote_char, cut=len(head) == _SNIFF_BYTES, header=header)
    if fields is None:
        return None
    # polars names the columns of a headerless file column_0, column_1, ... (a test
    # compares these names with the whole read's, so an upgrade that changes them fails)
    names = fields if header else [f"column_{i}" for i in range(len(fields))]
    check_names(path, names, encoding)
    if (wide := too_many_columns(str(path), len(names))) is not None:
        raise SourceError(wide)
    return names


def check_file(path: Path) -> None:
    where = str(path)
    if not path.exists():
        raise SourceError(f"{where!r}: no such file")
    if not path.is_file():
        raise SourceError(f"{where!r}: not a file")


def decoder(path: Path, encoding: str) -> codecs.IncrementalDecoder:
    try:
        return codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise SourceError(f"{str(path)!r}: unknown encoding {encoding!r}; "
                          "use e.g. utf-8, latin-1, cp1252, utf-16") from None


def is_utf8(encoding: str) -> bool:
    """UTF-8 (with or without a BOM) is read as it is; any other encoding is transcoded."""
    return encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig")


def _encoded_head(path: Path, encoding: str) -> bytes | None:
    """The first 64 KiB of the file's UTF-8 text: what the whole read sniffs (it transcodes a
    file in another encoding first, then reads the head of the copy). None when this part
    is not valid in the encoding: the whole read names the line."""
    if is_utf8(encoding):
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
        try:
            codecs.getincrementaldecoder("utf-8")(errors="strict").decode(head, final=len(head) < _SNIFF_BYTES)
        except UnicodeDecodeError:
            return None
        return head
    decode = decoder(path, encoding)
    out = bytearray()
    with open(path, "rb") as f:
        while len(out) < _SNIFF_BYTES:
            chunk = f.read(_SNIFF_BYTES)
            try:
                out += decode.decode(chunk, final=not chunk).encode("utf-8")
            except UnicodeDecodeError:
                return None
            if not chunk:
                break
    return bytes(out[:_SNIFF_BYTES])


def _first_record(text: str, sep: str, quote_char: str | None, *, cut: bool, header: bool) -> list[str] | None:
    """The fields of the first non-blank line, where they are unambiguous: no quote inside
    a field, no field over two lines, no bare CR; else None. Without a header polars counts
    the columns of the widest of the rows it infers types from, so the head must hold all
    of them (or the whole file), unquoted and of one width."""
    lines = text.split("\n")
    if not header:
        window = [line[:-1] if line.endswith("\r") else line for line in lines]
        window = [line for line in window if line][: _INFER_ROWS + 100]
        if cut and len(window) < _INFER_ROWS + 100:
            return None
        if any("\r" in line or (quote_char is not None and quote_char in line) for line in window):
            return None
        if not window or len({len(line.split(sep)) for line in window}) != 1:
            return None
    for i, line in enumerate(lines):
        line = line[:-1] if line.endswith("\r") else line
        if line:
            break
    else:
        return None
    if i == len(lines) - 1 and cut:  # no end of line within the head: the line may go on
        return None
    if "\r" in line:
        return None
    if quote_char is None or quote_char not in line:
        return line.split(sep)
    try:
        records = list(csv.reader([line], delimiter=sep, quotechar=quote_char, strict=True))
    except csv.Error:
        return None
    if len(records) != 1 or any(quote_char in field for field in records[0]):
        return None
    return records[0]


# ------------------------------------------------------------------ shared by both readers
def layout(path: Path, head: str, *, encoding: str, separator: str | None, has_header: bool | None,
           quote_char: str | None, null_values: Sequence[str]) -> tuple[str, bool]:
    """(delimiter, whether the first row is the header) of a CSV whose UTF-8 head is `head`,
    or the one-line refusal of an empty, binary, CR-only or doubtful file."""
    if not head.strip():
        raise SourceError(f"{str(path)!r}: the file is empty")
    _check_text(path, head, encoding)
    sep = separator or _sniff_separator(path, head)
    return sep, _header(path, head, sep, quote_char, has_header, null_values)


def check_names(path: Path, names: list[str], encoding: str) -> None:
    """Refuse column names no schema can hold: repeated or unprintable ones."""
    where = str(path)
    if len(set(names)) != len(names):
        raise SourceError(f"{where!r}: the header has repeated column names; rename them or pass has_header=False")
    if any(not n.isprintable() for n in names):
        raise SourceError(f"{where!r}: the header holds control or binary characters; "
                          f"is this a text CSV file in encoding {encoding!r}?")


def too_many_columns(where: str, n_columns: int) -> str | None:
    if n_columns > MAX_COLUMNS:
        return (f"{where!r}: {n_columns:,} columns, over the limit of {MAX_COLUMNS:,}; select the "
                "columns to learn (a wrong delimiter also gives many columns)")
    return None


def _head_text(path: Path) -> str:
    """The first 64 KiB of a UTF-8 file as text, without a BOM or a cut last line."""
    with open(path, "rb") as f:
        return _head_of(f.read(_SNIFF_BYTES))


def _head_of(head: bytes) -> str:
    text = head.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    if len(head) == _SNIFF_BYTES and "\n" in text:  # drop a possibly cut last line
        text = text[: text.rfind("\n") + 1]
    return text


def _sniff_separator(path: Path, sample_text: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    try:
        return csv.Sniffer().sniff(sample_text, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _check_text(path: Path, head: str, encoding: str) -> None:
    """Refuse what polars would misread without a word: NUL bytes (a binary file, or UTF-16
    read as UTF-8) and old-Mac CR-only line endings (the whole file would be one row)."""
    where = str(path)
    if "\x00" in head:
        raise SourceError(f"{where!r}: the file holds NUL bytes, so it is binary or not in encoding {encoding!r}; "
                          "give a text CSV, or pass its encoding (e.g. --encoding utf-16)")
    if "\r" in head and "\n" not in head.rstrip("\r\n") and head.count("\r") > 1:
        raise SourceError(f"{where!r}: lines end in a bare carriage return (CR, old Mac style), which is not "
                          "read; convert the line endings to LF or CRLF (e.g. `tr '\\r' '\\n'`)")


def _header(path: Path, sample_text: str, sep: str, quote_char: str | None, has_header: bool | None,
            null_values: Sequence[str] = NULL_VALUES) -> bool:
    """Whether the first row is the header: as given, or detected; never a silent guess.

    Evidence for a header: a field whose type differs from the column below it (text over
    numbers or dates, a number over text). Evidence for data: a number or date over such a
    column (or with nothing below), an empty field, a field repeated in the row. One kind
    only decides; both kinds, or only the weak data signs (empty, repeated), are an error that asks
    for --header or --no-header: reading a header as data turns every column into text,
    and reading data as a header publishes a private row as column names. Fields are named
    by position, as the row may be private data."""
    where = str(path)
    try:
        rows = list(csv.reader(io.StringIO(sample_text), delimiter=sep, quotechar=quote_char or '"'))
    except csv.Error:
        rows = []  # broken quoting: polars or the diagnosis names it
    rows = [r for r in rows[: _SNIFF_ROWS + 1] if r]
    if not rows:
        return True if has_header is None else has_header
    first = rows[0]
    if has_header is False:
        return False
    nulls = set(null_values)
    if has_header is None:  # a null marker (NA, null, ...) in the first row is an empty field
        first = ["" if f.strip() in nulls else f for f in first]
        rows = [first] + [["" if f.strip() in nulls else f for f in r] for r in rows[1:]]
    empty = [i + 1 for i, f in enumerate(first) if not f.strip()]
    repeated = _repeated(first)
    if has_header is True:
        problems = [f"column {i} of the header is empty" for i in empty]
        problems += [f"the header names column {first[i - 1].strip()!r} more than once (columns "
                     f"{', '.join(map(str, positions))})" for positions in repeated for i in positions[:1]]
        if problems:
            raise SourceError(f"{where!r}: {'; '.join(problems[:_MAX_LINES_SHOWN])}; give every column a "
                              "unique name in the header, or read it with --no-header (has_header=False)")
        return True
    below = rows[1:]
    strong_header: list[int] = []
    strong_data: list[int] = []
    weak_data: list[str] = [f"field {i} is empty" for i in empty]
    weak_data += [f"fields {' and '.join(map(str, positions))} repeat" for positions in repeated]
    for i, field in enumerate(first):
        if not field.strip():
            continue
        values = [r[i] for r in below if i < len(r) and r[i].strip()]
        numeric_below = bool(values) and all(_NUMBER_OR_DATE.match(v) for v in values)
        is_number = bool(_NUMBER_OR_DATE.match(field))
        if is_number and (numeric_below or not values):
            strong_data.append(i + 1)
        elif is_number or numeric_below:  # its type differs from the column's below it
            strong_header.append(i + 1)
    if strong_header and (strong_data or weak_data):
        signs = [f"field {i} is a number or date" for i in strong_data] + weak_data
        raise SourceError(f"{where!r}: cannot tell whether the first row is a header: fields "
                          f"{_positions(strong_header)} differ in type from their column (like column names), but "
                          f"{'; '.join(signs[:_MAX_LINES_SHOWN])}; if it is a header give every column a unique, "
                          "non-empty name that is not a number and pass --header (has_header=True), "
                          "else pass --no-header (has_header=False)")
    if strong_data:
        log.warning("%s: the first row holds numbers or dates where the column holds them too, so the file is "
                    "read without a header (columns column_0, column_1, ...); pass --header if it has one", path)
        return False
    if weak_data:
        raise SourceError(f"{where!r}: cannot tell whether the first row is a header "
                          f"({'; '.join(weak_data[:_MAX_LINES_SHOWN])}); if it is a header give every column a "
                          "unique, non-empty name and pass --header (has_header=True), else pass --no-header "
                          "(has_header=False)")
    return True


def _repeated(fields: list[str]) -> list[list[int]]:
    """Positions (1-based) of each non-empty field that occurs more than once."""
    seen: dict[str, list[int]] = {}
    for i, f in enumerate(fields):
        if f.strip():
            seen.setdefault(f.strip(), []).append(i + 1)
    return [positions for positions in seen.values() if len(positions) > 1]


def _positions(positions: list[int]) -> str:
    shown = ", ".join(map(str, positions[:_MAX_LINES_SHOWN]))
    return shown + (f" and {len(positions) - _MAX_LINES_SHOWN} more" if len(positions) > _MAX_LINES_SHOWN else "")
