"""The published tables: fixed column order, sorted rows, and byte-stable CSV / Parquet encodings.

The same inputs with the same as-of date must give byte-identical files, so every table is put in a
canonical form (contracted columns first in contract order, extra columns after them by name, rows
sorted on the table's key and then on every column) before it is written with fixed settings.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from contracts import DISCREPANCIES, ELIGIBILITY, FINDINGS, SUBJECTS
from contracts.tables import IDENTITY, REVIEW, Schema
from core.safety import neutralise
from storage.files import PieceTarget, write_in_pieces

#: Published discrepancies carry more columns than the comparison's contract: the as-of date of the
#: run that found a finding gone (null while it is NEW or OPEN), the night whose audit found the finding as the row
#: shows it and why an open one was carried from that night (reporting.history), where the sponsor's review stands
#: (docs/review.md) and, for a finding that can be a deviation, whether DV lists it as CONFIRMED or
#: NOT YET REVIEWED.
PUBLISHED_DISCREPANCIES: Schema = {**DISCREPANCIES, "RESOLVED_ON": pl.String, "EVALUATED_ON": pl.String,
                                   "CARRIED": pl.String, **REVIEW, "DV_REVIEW": pl.String}

#: Published validation findings: the findings contract, their identity, the night they were first
#: reported (from the previous run's table) and the review columns.
PUBLISHED_VALIDATION: Schema = {**FINDINGS, **IDENTITY, "FIRST_SEEN": pl.String, "DAYS_OPEN": pl.Int64, **REVIEW}
#: the earlier data-quality findings tonight's audit no longer finds (reporting.history.validation_history), one row
#: per finding, published once, on the night they go: report.xlsx's "Resolved data quality" sheet and the
#: validation_resolved table, whose FINDING_IDs a reviewer may still act on (review.catalogue)
RESOLVED_VALIDATION: Schema = {"STUDYID": pl.String, "SITEID": pl.String, "USUBJID": pl.String, "DOMAIN": pl.String,
                               "VARIABLE": pl.String, "CHECK": pl.String, "MESSAGE": pl.String, "SOURCE": pl.String,
                               "FINDING_ID": pl.String, "FIRST_SEEN": pl.String, "RESOLVED_ON": pl.String,
                               "REVIEW_STATE": pl.String}

DV: Schema = {
    "STUDYID": pl.String,
    "DOMAIN": pl.String,
    "USUBJID": pl.String,
    "DVSEQ": pl.Int64,
    "DVREFID": pl.String,
    "DVTERM": pl.String,
    "DVDECOD": pl.String,
    "DVCAT": pl.String,
    "DVSCAT": pl.String,
    "DVSTDTC": pl.String,
    # not SDTM: whether the deviation is CONFIRMED by the sponsor's review or NOT YET REVIEWED
    "DVREVIEW": pl.String,
    # not in dv.xpt (a SAS v5 name has at most 8 characters): the finding behind the record
    "FINDING_ID": pl.String,
}


@dataclass(frozen=True)
class TableSpec:
    """How one published table is laid out."""

    name: str
    schema: Schema
    key: tuple[str, ...]


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("subjects", SUBJECTS, ("STUDYID", "SITEID", "USUBJID")),
        TableSpec("eligibility", ELIGIBILITY, ("STUDYID", "SITEID", "USUBJID", "CRITERION_ID", "CHECK_ID")),
        TableSpec("discrepancies", PUBLISHED_DISCREPANCIES, ("STUDYID", "SITEID", "USUBJID", "CHECK_ID", "CLASS")),
        TableSpec("validation", PUBLISHED_VALIDATION, ("STUDYID", "SITEID", "USUBJID", "DOMAIN", "VARIABLE", "SOURCE")),
        TableSpec("validation_resolved", RESOLVED_VALIDATION,
                  ("STUDYID", "SITEID", "USUBJID", "DOMAIN", "VARIABLE", "SOURCE", "CHECK", "FINDING_ID")),
        TableSpec("dv", DV, ("STUDYID", "USUBJID", "DVSEQ")),
    )
}


def canonical(frame: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """`frame` with the contracted columns (added as nulls when absent, cast to their dtype) first,
    extra columns after them by name, and rows in a total order."""
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in spec.schema.items()
               if name not in frame.columns]
    frame = frame.with_columns(missing) if missing else frame
    extras = sorted(c for c in frame.columns if c not in spec.schema)
    frame = frame.select(
        [pl.col(name).cast(dtype) for name, dtype in spec.schema.items()]
        + [pl.col(c).cast(pl.String) if frame.schema[c] == pl.Null else pl.col(c) for c in extras]
    )
    order = list(spec.key) + [c for c in frame.columns if c not in spec.key]
    return sort_total(frame, order, len(spec.key))


def sort_like(frame: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Rows of a table without a TableSpec in a total order: `key` first, then every column."""
    order = key + [c for c in frame.columns if c not in key]
    return sort_total(frame, order, len(key))


def sort_total(frame: pl.DataFrame, order: list[str], key: int) -> pl.DataFrame:
    """`frame` sorted on every column of `order` (nulls last), the first `key` of them being its key.

    Why not one sort on every column: polars encodes every sort column of every row, long texts
    included, which made the canonical sorts a tenth of publication. The rows are sorted on the key;
    the rows whose key another row shares (38 of the dirty benchmark's 125,000 validation findings) are
    then sorted among themselves on every column and put back in the places their key gave them. Later
    columns only ever order rows with the same key, so it is the full sort's order.
    """
    if frame.height < 2 or key >= len(order):
        return frame.sort(order, nulls_last=True, maintain_order=True)
    ordered = frame.sort(order[:key], nulls_last=True, maintain_order=True)
    same_as_previous = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in order[:key])
    tied = ordered.select((same_as_previous.fill_null(False) | same_as_previous.shift(-1).fill_null(False))
                          .arg_true()).to_series()
    if tied.len() == 0:
        return ordered
    placed = ordered[tied].with_row_index("_I").sort(order, nulls_last=True, maintain_order=True)["_I"]
    rows = pl.int_range(ordered.height, dtype=tied.dtype, eager=True).scatter(tied, tied.gather(placed))
    return ordered[rows]


def sorted_if_apart(frame: pl.DataFrame, prefix: list[str]) -> pl.DataFrame | None:
    """`frame` sorted on `prefix` (nulls last) when no two rows have the same `prefix` values (then any
    sort that begins with `prefix` gives this order); None when some do."""
    ordered = frame.sort(prefix, nulls_last=True, maintain_order=True)
    if ordered.height < 2:
        return ordered
    same_as_previous = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in prefix).slice(1)
    return None if ordered.select(same_as_previous.any()).item() else ordered


#: how every CSV output is written (header, comma, LF, quotes only where needed)
CSV_OPTIONS = {"include_header": True, "separator": ",", "line_terminator": "\n", "quote_style": "necessary"}
#: how every Parquet output is written: zstd level 1 (level 3 took a quarter more CPU for files hardly smaller on
#: the dirty benchmark: validation 5.4 MB at 3, 5.2 MB at 1; eligibility 3.6 and 3.9 MB), statistics on, one
#: row group per 128k rows (polars writes no timestamp into the file, so equal frames give equal bytes, checked
#: in tests)
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1, "statistics": True, "row_group_size": 131_072}


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """UTF-8 CSV, comma separated, with a header; text cells neutralised against formula injection."""
    return neutralised_csv_bytes(neutralise(frame))


def neutralised_csv_bytes(frame: pl.DataFrame) -> bytes:
    """`csv_bytes` of a frame whose text is already neutralised (core.safety.neutralise).

    Written into a bytes buffer: polars writes UTF-8, so no Python string is made and encoded again (two
    copies of a 70 MB table).
    """
    buffer = io.BytesIO()
    frame.write_csv(buffer, **CSV_OPTIONS)
    return buffer.getvalue()


#: rows of a table written by one polars call into memory before they are copied into the file (storage.files): a
#: slice of the eligibility table is about 35 MB of CSV
CSV_SLICE_ROWS = 250_000


def csv_pieces(safe: pl.DataFrame, *, header: bool = True) -> list[Callable[[PieceTarget], object]]:
    """The CSV of `safe` (its text already neutralised) as writers of CSV_SLICE_ROWS rows each, for
    storage.files.write_in_pieces; the first writes the header when `header` (of a frame without a row, the header
    alone). CSV rows do not depend on each other, so the pieces one after the other are the whole frame's CSV."""
    starts = range(0, max(safe.height, 1 if header else 0), CSV_SLICE_ROWS)
    return [lambda target, start=start: safe.slice(start, CSV_SLICE_ROWS).write_csv(
        target, **{**CSV_OPTIONS, "include_header": header and start == 0}) for start in starts]


def write_csv_file(frame: pl.DataFrame, path: Path, *, neutralised: bool = False) -> Path:
    """`csv_bytes` of `frame` written by polars into the file `path` (for a file to be stored with
    `Store.move_file`: a large table's bytes never pass through Python memory, docs/benchmarks.md), in slices
    that the kernel takes in small pieces (csv_pieces, storage.files); `neutralised`: its text is already
    (core.safety.neutralise)."""
    return write_in_pieces(path, csv_pieces(frame if neutralised else neutralise(frame)))


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """Parquet with PARQUET_OPTIONS."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, **PARQUET_OPTIONS)
    return buffer.getvalue()


def write_parquet_file(frame: pl.DataFrame, path: Path) -> Path:
    """`parquet_bytes` of `frame` written into the file `path` (as write_csv_file, in one piece)."""
    return write_in_pieces(path, [lambda target: frame.write_parquet(target, **PARQUET_OPTIONS)])
