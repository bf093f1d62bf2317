"""CSV as the DTS allows it: declared encoding, comma / semicolon (or tab) separator, quoted fields.

The fast path is pyarrow's multi-threaded reader, which refuses any record whose field count
differs from the header. Only then is the file re-read with Python's `csv` module to find those
records: they are rejected row by row (a shifted field is never realigned by guessing) and every
other record is kept. Blank lines are not records.
"""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from ingestion.codes import Code
from ingestion.errors import FileRejected
from ingestion.table import ROW, RaggedRow, RawTable, positional

_SEPARATORS = (",", ";", "\t")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode(data: bytes, encoding: str) -> str:
    """The text of a CSV file in its declared encoding, or FileRejected saying where it breaks."""
    if not data.strip():
        raise FileRejected(Code.FILE_EMPTY, "the file is empty")
    if encoding == "utf-8" and data.startswith(_UTF16_BOMS):
        raise FileRejected(Code.FILE_ENCODING_MISMATCH,
                           "the file starts with a UTF-16 byte order mark but the manifest declares utf-8",
                           observed="utf-16")
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


def detect_separator(text: str) -> str:
    """The separator the header uses: the most frequent of , ; TAB outside quotes (comma on a tie)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    outside = "".join(part for i, part in enumerate(first.split('"')) if i % 2 == 0)
    counts = {sep: outside.count(sep) for sep in _SEPARATORS}
    best = max(counts.values())
    return next(sep for sep in _SEPARATORS if counts[sep] == best) if best else ","


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, min(limit, sys.maxsize)))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _records(text: str, separator: str) -> Iterator[tuple[int, list[str]]]:
    """(starting line, fields) of every non-blank record; FileRejected on broken quoting."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, quotechar='"',
                        doublequote=True, strict=True)
    line = 1
    with _field_limit(len(text) + 1):
        try:
            for record in reader:
                start, line = line, reader.line_num + 1
                if record:
                    yield start, record
        except csv.Error as error:
            raise FileRejected(Code.FILE_UNREADABLE,
                               f"broken CSV quoting near line {reader.line_num}: {error}") from None


def _header(text: str, separator: str) -> list[str]:
    for _, record in _records(text, separator):
        return record
    raise FileRejected(Code.FILE_EMPTY, "the file is empty")


def _fast(data: bytes, header: list[str], separator: str) -> pl.DataFrame | None:
    """All records with pyarrow, or None when a record has the wrong field count (or anything odd)."""
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=True, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=separator, quote_char='"', double_quote=True,
                                             newlines_in_values=True, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                                 strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
        return None
    if table.column_names != header or any(t != pa.string() for t in table.schema.types):
        return None
    table = table.rename_columns(positional(len(header)))
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW))


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


def read_csv(path: Path, encoding: str) -> RawTable:
    """A delivered CSV file as a RawTable (see module docstring)."""
    raw = path.read_bytes()
    text = decode(raw, encoding)
    separator = detect_separator(text)
    header = _header(text, separator)
    utf8 = raw[len(_UTF8_BOM):] if encoding == "utf-8" and raw.startswith(_UTF8_BOM) else raw
    data = utf8 if encoding == "utf-8" else text.encode("utf-8")
    # an odd number of quote characters means a quoted field is never closed: pyarrow would
    # silently swallow the rest of the file into it, Python's strict reader says where it breaks
    balanced = text.count('"') % 2 == 0
    frame = _fast(data, header, separator) if balanced and len(set(header)) == len(header) else None
    if frame is not None:
        return RawTable(header=header, frame=frame)
    return _slow(text, header, separator)
