"""CSV as the DTS allows it: declared encoding, comma / semicolon (or tab) separator, quoted fields.

The fast path is polars' reader plus a vectorized count of the fields of every record; a file
with a record whose field count differs from the header's (or with broken quoting) is re-read
with Python's strict `csv` module, which names each such record and its line: those records are
rejected row by row (a shifted field is never realigned by guessing), every other one is kept.
Blank lines are not records.
"""

from __future__ import annotations

import csv
import io
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ingestion.codes import Code
from ingestion.errors import FileRejected
from ingestion.table import ROW, RaggedRow, RawTable, positional

_SEPARATORS = (",", ";", "\t")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_HEADER_PREFIX = 1 << 20
_QUOTED = r'"[^"]*"'


def decode(data: bytes, encoding: str) -> str:
    """The text of a CSV file in its declared encoding, or FileRejected saying where it breaks."""
    if not data.strip():
        raise FileRejected(Code.FILE_EMPTY, "the file is empty")
    if not encoding.startswith("utf-16") and data.startswith(_UTF16_BOMS):
        # also under a single-byte encoding, which reads the mark as two characters and the text as NUL-riddled
        # "binary data" (helper-44): the site is told which encoding its file is in
        raise FileRejected(Code.FILE_ENCODING_MISMATCH,
                           f"the file starts with a UTF-16 byte order mark but the manifest declares {encoding}",
                           observed="utf-16")
    if encoding.startswith("utf-16") and b"\x00" not in data[:4096]:
        # the header is ASCII, which UTF-16 writes with a zero byte per character
        raise FileRejected(Code.FILE_ENCODING_MISMATCH,
                           f"the manifest declares {encoding} but the file has none of the zero bytes "
                           f"UTF-16 text has: it is in a single-byte encoding or UTF-8", observed="not utf-16")
    single_byte = encoding in ("latin-1", "cp1252")
    if single_byte and (data.startswith(_UTF8_BOM) or (not data.isascii() and _is_utf8(data))):
        raise FileRejected(Code.FILE_ENCODING_MISMATCH,
                           f"the file is UTF-8 but the manifest declares {encoding}; its accented "
                           f"characters would be read wrongly", observed="utf-8")
    codec = "utf-8-sig" if encoding == "utf-8" else encoding
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as error:
        where = f"byte {error.start + 1}"
        if not encoding.startswith("utf-16"):
            line = data.count(b"\n", 0, error.start) + 1
            where += f" (line {line})"
        raise FileRejected(Code.FILE_UNDECODABLE,
                           f"{where} is not valid {encoding}, the encoding the manifest declares",
                           observed=f"0x{data[error.start:error.start + 1].hex()}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise FileRejected(Code.FILE_UNREADABLE,
                           f"the file contains NUL characters (first on line {line}): binary data, not CSV "
                           f"text in {encoding}", observed="NUL")
    if not text.strip():
        raise FileRejected(Code.FILE_EMPTY, "the file is empty")
    return text


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _first_line(text: str) -> str:
    start = len(text) - len(text.lstrip("\r\n"))
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def detect_separator(text: str) -> str:
    """The separator the header uses: the most frequent of , ; TAB outside quotes (comma on a tie)."""
    first = _first_line(text)
    outside = "".join(part for i, part in enumerate(first.split('"')) if i % 2 == 0)
    counts = {sep: outside.count(sep) for sep in _SEPARATORS}
    best = max(counts.values())
    return next(sep for sep in _SEPARATORS if counts[sep] == best) if best else ","


_LIMIT_LOCK = threading.Lock()


def _allow_fields_of(size: int) -> None:
    """Let Python's csv module read fields up to `size` characters (its default stops at 128 KiB).

    The limit is process-wide, so it is only ever raised, never put back: a site's batch may be
    read in one thread while another thread is in the middle of a file with a longer field (a
    long field is then rejected by the row checks with its length, not as an unreadable file).
    """
    with _LIMIT_LOCK:
        if csv.field_size_limit() < size:
            csv.field_size_limit(min(size, sys.maxsize))


def _records(text: str, separator: str) -> Iterator[tuple[int, list[str]]]:
    """(starting line, fields) of every non-blank record; FileRejected on broken quoting."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, quotechar='"',
                        doublequote=True, strict=True)
    line = 1
    _allow_fields_of(len(text) + 1)
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if record:
                yield start, record
    except csv.Error as error:
        raise FileRejected(Code.FILE_UNREADABLE,
                           f"broken CSV quoting near line {reader.line_num}: {error}") from None


def _header(text: str, separator: str) -> list[str]:
    # the header is the first record: parse a prefix, never a copy of the whole file
    for _, record in _records(text[: _HEADER_PREFIX], separator):
        return record
    raise FileRejected(Code.FILE_EMPTY, "the file is empty")


def _lines(text: str) -> list[str]:
    """The physical lines after the header once every quoted section is removed (a quoted field may
    hold separators and newlines): each is then exactly one record and its separators are structural.
    """
    if '"' in text:
        text = pl.Series([text]).str.replace_all(_QUOTED, "").item()
    lines = text.split("\n")  # one C-level split of the whole text, not a loop over rows
    if text.endswith("\n"):
        lines.pop()
    return lines[1:]


def _fields(lines: pl.Expr, separator: str) -> pl.Expr:
    """Fields of each line, 0 for a blank line."""
    lines = lines.str.strip_chars_end("\r")
    return pl.when(lines.str.len_bytes() == 0).then(0).otherwise(lines.str.count_matches(separator, literal=True) + 1)


def _field_counts(text: str, separator: str) -> pl.Series:
    """Fields per line after the header, 0 for a blank line, counted without a Python loop."""
    return pl.DataFrame({"line": _lines(text)}, schema={"line": pl.String}).select(
        _fields(pl.col("line"), separator)).to_series()


def _fast(text: str, header: list[str], separator: str) -> pl.DataFrame | None:
    """All records with polars' reader, or None when a record's field count is off (or anything odd).

    Polars fills a short record with empty fields and reads a blank line as a record: the field
    counts of the lines tell both apart, so a short record is never silently padded. Without a
    blank line, one vectorised count of separators per line (fewest = most = width - 1) settles
    it: a delivery is many small files, so the number of polars calls per file is what counts.
    """
    width = len(header)
    try:
        frame = pl.read_csv(text.encode("utf-8"), has_header=True, separator=separator, quote_char='"',
                            infer_schema=False, empty_string_is_null=False, new_columns=positional(width))
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError,
            pl.exceptions.SchemaError):  # e.g. a bare carriage return inside the header line
        return None
    lines = _lines(text)
    if frame.width != width or len(lines) != frame.height:
        return None
    if "" in lines or "\r" in lines:  # a blank line (not a record): count exactly, drop its row
        counts = _field_counts(text, separator)
        if not counts.is_in([0, width]).all():
            return None
        frame = frame.filter(counts > 0)
    elif lines:
        separators = pl.Series(lines, dtype=pl.String).str.count_matches(separator, literal=True)
        if not separators.min() == separators.max() == width - 1:
            return None  # a ragged record: the slow path says which, with its line
    return frame.hstack([pl.Series(ROW, np.arange(1, frame.height + 1, dtype=np.int64))])


def _slow(text: str, header: list[str], separator: str) -> RawTable:
    width = len(header)
    good: list[list[str]] = []
    numbers: list[int] = []
    ragged: list[RaggedRow] = []
    records = _records(text, separator)
    next(records)  # the header
    for row, (line, record) in enumerate(records, start=1):
        if len(record) == width:
            good.append(record)
            numbers.append(row)
        else:
            ragged.append(RaggedRow(row=row, line=line, fields=len(record)))
    names = positional(width)
    columns = list(zip(*good, strict=True)) if good else [() for _ in names]
    frame = pl.DataFrame({ROW: numbers, **{n: list(c) for n, c in zip(names, columns, strict=True)}},
                         schema={ROW: pl.Int64, **dict.fromkeys(names, pl.String)})
    return RawTable(header=header, frame=frame.select(*names, ROW), ragged=ragged)


@dataclass(frozen=True)
class PlainCsv:
    """A decoded CSV file simple enough to be parsed together with others (`parse_plain`).

    Plain means: no quote character, no blank line and no carriage return except before a line
    feed. Then every line after the header is exactly one record, for polars' reader as for
    Python's, so `records` is known before any parsing, and only the field count of each line is
    left to check.
    """

    header: list[str]
    separator: str
    text: str  # from the header on
    records: int  # the lines after the header


def _text(path: Path, encoding: str) -> tuple[str, str, list[str]]:
    """(text from the header on, separator, header) of a delivered CSV file."""
    text = decode(path.read_bytes(), encoding)
    text = text[len(text) - len(text.lstrip("\r\n")):]  # blank lines before the header
    separator = detect_separator(text)
    return text, separator, _header(text, separator)


def _plain(text: str, separator: str, header: list[str]) -> PlainCsv | None:
    if '"' in text or text.count("\r") != text.count("\r\n") or len(set(header)) != len(header):
        return None
    lines = _lines(text)
    if "" in lines or "\r" in lines:
        return None
    return PlainCsv(header=header, separator=separator, text=text, records=len(lines))


def _read(text: str, separator: str, header: list[str]) -> RawTable:
    # an odd number of quote characters means a quoted field is never closed: the fast reader
    # would swallow the rest of the file into it, Python's strict reader says where it breaks
    balanced = text.count('"') % 2 == 0
    frame = _fast(text, header, separator) if balanced and len(set(header)) == len(header) else None
    if frame is not None:
        return RawTable(header=header, frame=frame)
    return _slow(text, header, separator)


def read_csv(path: Path, encoding: str) -> RawTable:
    """A delivered CSV file as a RawTable (see module docstring)."""
    plain = read_csv_or_plain(path, encoding)
    return parse_plain([plain])[0] if isinstance(plain, PlainCsv) else plain


def read_csv_or_plain(path: Path, encoding: str) -> RawTable | PlainCsv:
    """`read_csv`, except that a plain file (see PlainCsv) is returned unparsed, for `parse_plain`."""
    text, separator, header = _text(path, encoding)
    return _plain(text, separator, header) or _read(text, separator, header)


def _body(text: str) -> str:
    """The lines after the header line of a plain file, without the final line break."""
    rest = text.partition("\n")[2]
    return rest[:-1] if rest.endswith("\n") else rest


def _parse_group(files: list[PlainCsv]) -> list[RawTable]:
    """Plain files of one separator and width: one count of separators over all their lines, one
    polars read of all the files whose lines all have the header's width; the others take the
    exact path, which names each ragged record."""
    separator, width = files[0].separator, len(files[0].header)
    bodies = [_body(f.text) for f in files]
    filled = [i for i, f in enumerate(files) if f.records]
    tables: dict[int, RawTable] = {i: RawTable(header=f.header, frame=_empty(width))
                                   for i, f in enumerate(files) if not f.records}
    if not filled:
        return [tables[i] for i in range(len(files))]
    sizes = np.array([files[i].records for i in filled], dtype=np.int64)
    lines = pl.Series("\n".join(bodies[i] for i in filled).split("\n"), dtype=pl.String)
    if len(lines) != int(sizes.sum()):  # pragma: no cover - a plain file's lines are its records
        raise AssertionError(f"{int(sizes.sum())} records in {len(lines)} lines")
    off = lines.str.count_matches(separator, literal=True).to_numpy() != width - 1
    ragged = {filled[j] for j in np.searchsorted(np.cumsum(sizes), np.flatnonzero(off), side="right").tolist()}
    tables.update({i: _slow(files[i].text, files[i].header, separator) for i in ragged})
    even = [i for i in filled if i not in ragged]
    if even:
        body = "\n".join(bodies[i] for i in even) + "\n"
        try:
            frame = pl.read_csv(body.encode("utf-8"), has_header=False, separator=separator, quote_char='"',
                                infer_schema=False, empty_string_is_null=False, new_columns=positional(width))
        except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError,
                pl.exceptions.SchemaError):
            frame = None
        n = np.array([files[i].records for i in even], dtype=np.int64)
        if frame is None or frame.width != width or frame.height != int(n.sum()):
            tables.update({i: _read(files[i].text, separator, files[i].header) for i in even})
        else:
            starts = np.concatenate([[0], np.cumsum(n)[:-1]])
            rows = np.arange(frame.height, dtype=np.int64) - np.repeat(starts, n) + 1
            frame = frame.hstack([pl.Series(ROW, rows)])
            tables.update({i: RawTable(header=files[i].header, frame=frame.slice(int(start), int(size)))
                           for i, start, size in zip(even, starts, n, strict=True)})
    return [tables[i] for i in range(len(files))]


def _empty(width: int) -> pl.DataFrame:
    return pl.DataFrame(schema={**dict.fromkeys(positional(width), pl.String), ROW: pl.Int64})


def parse_plain(files: list[PlainCsv]) -> list[RawTable]:
    """The RawTable of every plain file, in order, parsed with a few polars calls in all: a delivery
    is a dozen small files, and polars' fixed cost per call, not the rows, dominated reading them
    one by one."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, f in enumerate(files):
        groups.setdefault((f.separator, len(f.header)), []).append(i)
    tables: dict[int, RawTable] = {}
    for members in groups.values():
        tables.update(zip(members, _parse_group([files[i] for i in members]), strict=True))
    return [tables[i] for i in range(len(files))]
