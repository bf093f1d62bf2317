"""From RawTables to the contracted domain frames: names checked per file, rows checked per batch.

File-level problems (a header that cannot be trusted, a required column missing) raise FileRejected
in `prepare`, as each file is read: they concern the header only, so they cost no polars work.
Row-level problems (a record of another study, a field too long to be a value, a CSV record with
the wrong number of fields) reject that row only. `shape_files` checks the rows of every file of a
batch of sites at once, one set of polars expressions per domain over the files put end to end:
a site's delivery is a dozen small files, so checking them one by one made a study of 1,000 small
sites ten times dearer than the same rows from 100 sites. Every record read ends either in a frame
or among the rejected rows, so `rows_read = rows kept + rows rejected` holds for every file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from contracts import domain_spec
from core.source import SOURCE_KEY, SOURCE_ROW
from ingestion.codes import Code
from ingestion.csv_reader import PlainCsv, parse_plain
from ingestion.errors import FileRejected
from ingestion.table import ROW, CellNote, RaggedRow, RawTable

DELIVERY_SITEID = "DELIVERY_SITEID"
DECIMAL = "DECIMAL"
#: the columns ingestion adds to every delivered row (core.source: where it came from, typed)
ADDED = (SOURCE_KEY, SOURCE_ROW, DELIVERY_SITEID, DECIMAL)
#: names a delivered header may not use: the added ones, and SOURCE, which outputs render from them
RESERVED = (*ADDED, "SOURCE")

#: helper columns of a batch: the position of a row's file in the batch, and a row's position
FILE = "__FILE__"
_AT = "__AT__"
_CODE = "__CODE__"

#: row-level finding columns (see `findings.row_findings`): rejected rows and notes on kept rows
ROW_FINDINGS = pl.Schema({FILE: pl.Int64, "ROW": pl.Int64, "USUBJID": pl.String, "CODE": pl.String,
                          "VARIABLE": pl.String, "OBSERVED": pl.String, "DETAIL": pl.String})


@dataclass(frozen=True)
class Prepared:
    """One file whose header passed: its records under their delivered names, rows not yet checked."""

    key: str
    site: str
    domain: str  # lower-case
    decimal: str
    names: tuple[str, ...]  # upper-case delivered names, in header order
    frame: pl.DataFrame  # `names` (all String, as read) + ROW
    width: int  # fields in the header, named or not
    ragged: tuple[RaggedRow, ...] = ()
    notes: tuple[CellNote, ...] = ()  # cells of named columns read as missing; `column` indexes `names`

    @property
    def records(self) -> int:
        return self.frame.height + len(self.ragged)


@dataclass(frozen=True)
class ShapedFiles:
    """What `shape_files` made of a batch of prepared files (indexed by their position in it)."""

    frames: dict[int, pl.DataFrame]  # kept rows: `names` + SOURCE_KEY, SOURCE_ROW, DELIVERY_SITEID, DECIMAL
    rows: pl.DataFrame  # row-level findings (ROW_FINDINGS), by file then row
    rejected: dict[int, dict[str, int]]  # rejected rows by reason (`Code.reason`), files with any


def column_names(raw: RawTable) -> tuple[list[str], list[str]]:
    """(positional columns to keep, their upper-case names); FileRejected for an untrustworthy header."""

    def has_values(i: int) -> bool:
        return raw.frame.select((pl.col(f"c{i}").is_not_null() & (pl.col(f"c{i}").str.strip_chars() != "")).any()
                                ).item()

    return header_names(raw.header, has_values)


def header_names(header: list[str], has_values: Callable[[int], bool]) -> tuple[list[str], list[str]]:
    """`column_names` of a header; `has_values(i)` says whether column i, unnamed, holds any value."""
    keep: list[str] = []
    names: list[str] = []
    for i, text in enumerate(header):
        name = text.strip().upper()
        if not name:
            if has_values(i):
                raise FileRejected(Code.FILE_UNNAMED_COLUMN,
                                   f"column {i + 1} has values but no name in the header")
            continue  # e.g. a trailing separator on every line
        keep.append(f"c{i}")
        names.append(name)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FileRejected(Code.FILE_DUPLICATE_COLUMN,
                           f"the header names {', '.join(duplicates)} more than once",
                           variable=",".join(duplicates))
    reserved = [n for n in names if n in RESERVED]
    if reserved:
        raise FileRejected(Code.FILE_RESERVED_COLUMN,
                           f"the header uses {', '.join(reserved)}, a name the audit adds itself",
                           variable=",".join(reserved))
    return keep, names


def required_columns(domain: str, names: list[str]) -> None:
    missing = [v for v in domain_spec(domain).required() if v not in names]
    if missing:
        raise FileRejected(Code.FILE_MISSING_COLUMN,
                           f"required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                           f"missing (DTS section 2), so the {domain.upper()} file is not used",
                           variable=",".join(missing))


@dataclass(frozen=True)
class PlainFile:
    """A plain CSV file (csv_reader.PlainCsv) whose header passed, parsed later with its batch."""

    csv: PlainCsv
    key: str
    site: str
    domain: str
    decimal: str

    @property
    def records(self) -> int:
        return self.csv.records


def prepare_later(csv: PlainCsv, *, domain: str, key: str, site: str, decimal: str) -> Prepared | PlainFile:
    """`prepare`, left for `prepare_all` when the header alone can be checked (every column named)."""
    if any(not text.strip() for text in csv.header):  # whether a column without name is empty needs its rows
        return prepare(parse_plain([csv])[0], domain=domain, key=key, site=site, decimal=decimal)
    _, names = header_names(csv.header, lambda i: True)
    required_columns(domain, names)
    return PlainFile(csv=csv, key=key, site=site, domain=domain, decimal=decimal)


def prepare_all(files: list[Prepared | PlainFile]) -> list[Prepared]:
    """Every file prepared, in order; the plain CSV files among them parsed together (`parse_plain`)."""
    plain = [f for f in files if isinstance(f, PlainFile)]
    tables = iter(parse_plain([f.csv for f in plain]))
    return [prepare(next(tables), domain=f.domain, key=f.key, site=f.site, decimal=f.decimal)
            if isinstance(f, PlainFile) else f for f in files]


def prepare(raw: RawTable, *, domain: str, key: str, site: str, decimal: str) -> Prepared:
    """The file's records under their delivered names; FileRejected when its header cannot be used."""
    keep, names = column_names(raw)
    required_columns(domain, names)  # STUDYID is required in every domain
    if raw.frame.columns == [*keep, ROW]:  # the usual case: renaming a shallow copy costs no polars call
        frame = raw.frame.clone()
        frame.columns = [*names, ROW]
    else:
        frame = pl.DataFrame([raw.frame.get_column(c).alias(n) for c, n in zip(keep, names, strict=True)]
                             + [raw.frame.get_column(ROW)])
    position = {int(c[1:]): i for i, c in enumerate(keep)}
    notes = tuple(CellNote(n.row, position[n.column], n.observed) for n in raw.notes if n.column in position)
    return Prepared(key=key, site=site, domain=domain, decimal=decimal, names=tuple(names), frame=frame,
                    width=len(raw.header), ragged=tuple(raw.ragged), notes=notes)


def _longest(names: list[str]) -> pl.Expr:
    return pl.max_horizontal(pl.col(n).str.len_chars().fill_null(0) for n in names)


def _row_code(names: list[str], study: str, limit: int) -> pl.Expr:
    """The row-rejection code of a row, or null. The length test comes first: a huge STUDYID is
    reported by its length and never echoed."""
    other_study = pl.col("STUDYID").is_not_null() & (pl.col("STUDYID").str.strip_chars() != study)
    return (
        pl.when(_longest(names) > limit).then(pl.lit(str(Code.ROW_FIELD_TOO_LONG)))
        .when(other_study).then(pl.lit(str(Code.ROW_OTHER_STUDY)))
        .otherwise(pl.lit(None, pl.String))
    )


def _bad_rows(data: pl.DataFrame, names: list[str], study: str, limit: int) -> pl.DataFrame:
    """Rows of `data` to reject, with their position (`_AT`) and `_CODE`.

    A value's byte length bounds its length in characters, so only rows with a long value in
    bytes or another STUDYID go through the exact (slower) checks of `_row_code`.
    """
    suspect = pl.any_horizontal(
        (pl.col("STUDYID").str.strip_chars() != study),
        *(pl.col(n).str.len_bytes() > limit for n in names),
    ).fill_null(False)  # a null mask would drop the row from both sides
    return (
        data.with_row_index(_AT)
        .filter(suspect)
        .with_columns(_row_code(names, study, limit).alias(_CODE))
        .filter(pl.col(_CODE).is_not_null())
    )


def _rejected_rows(bad: pl.DataFrame, names: list[str], study: str, limit: int) -> pl.DataFrame:
    """One rejected-row record (ROW_FINDINGS) per row of `bad`, whose files all have the header `names`
    (the first column too long is named in the file's own column order)."""
    usubjid = pl.col("USUBJID") if "USUBJID" in names else pl.lit(None, pl.String)
    longest = _longest(names)
    first_long = pl.coalesce(pl.when(pl.col(n).str.len_chars() > limit).then(pl.lit(n)) for n in names)
    too_long = pl.col(_CODE) == str(Code.ROW_FIELD_TOO_LONG)
    return bad.select(
        pl.col(FILE),
        pl.col(ROW).alias("ROW"),
        pl.when(usubjid.str.len_chars() <= limit).then(usubjid).alias("USUBJID"),
        pl.col(_CODE).alias("CODE"),
        pl.when(too_long).then(first_long).otherwise(pl.lit("STUDYID")).alias("VARIABLE"),
        pl.when(too_long).then(longest.cast(pl.String) + pl.lit(" characters"))
        .otherwise(pl.col("STUDYID")).alias("OBSERVED"),
        pl.when(too_long)
        .then(pl.format("a field is {} characters long, more than the {} a value may have; the row is "
                        "not used", longest, pl.lit(limit)))
        .otherwise(pl.format("STUDYID is not {}; the row belongs to another study and is not used",
                             pl.lit(study)))
        .alias("DETAIL"),
    ).cast(ROW_FINDINGS)


def _ragged(files: list[Prepared], ids: list[int]) -> pl.DataFrame:
    rows = [(i, r, files[i].width) for i in ids for r in files[i].ragged]
    return pl.DataFrame(
        {
            FILE: [i for i, _, _ in rows],
            "ROW": [r.row for _, r, _ in rows],
            "USUBJID": [None] * len(rows),
            "CODE": [str(Code.ROW_RAGGED)] * len(rows),
            "VARIABLE": [None] * len(rows),
            "OBSERVED": [f"{r.fields} fields" for _, r, _ in rows],
            "DETAIL": [f"it starts on line {r.line} of the file and has {r.fields} fields where the header has "
                       f"{width}; the row is not used" for _, r, width in rows],
        },
        schema=ROW_FINDINGS,
    )


def _cell_notes(files: list[Prepared], ids: list[int], kept: pl.DataFrame) -> pl.DataFrame:
    """Findings (ROW_FINDINGS, nothing rejected) for cells of kept rows read as missing."""
    notes = [(i, n) for i in ids for n in files[i].notes]
    if not notes:
        return pl.DataFrame(schema=ROW_FINDINGS)
    usubjid = pl.col("USUBJID") if "USUBJID" in kept.columns else pl.lit(None, pl.String)
    cells = pl.DataFrame({FILE: [i for i, _ in notes], "ROW": [n.row for _, n in notes],
                          "VARIABLE": [files[i].names[n.column] for i, n in notes],
                          "OBSERVED": [n.observed for _, n in notes]},
                         schema_overrides={FILE: pl.Int64, "ROW": pl.Int64})
    return (
        cells.join(kept.select(pl.col(FILE).cast(pl.Int64), pl.col(ROW).alias("ROW"), usubjid.alias("USUBJID")),
                   on=[FILE, "ROW"], how="inner")
        .select(
            FILE, "ROW", "USUBJID",
            pl.lit(str(Code.VALUE_EXCEL_ERROR)).alias("CODE"),
            "VARIABLE", "OBSERVED",
            pl.format("{} holds the Excel error {}, not a value; it is read as missing",
                      pl.col("VARIABLE"), pl.col("OBSERVED")).alias("DETAIL"),
        )
        .cast(ROW_FINDINGS)
    )


def _shape_domain(files: list[Prepared], ids: list[int], study: str, limit: int, added: list[pl.Expr],
                  ) -> tuple[dict[int, pl.DataFrame], pl.DataFrame, pl.DataFrame]:
    """(kept frame per file, rejected rows, cell notes) of the files `ids`, all of one domain."""
    parts = [files[i].frame for i in ids]
    # a column one file lacks is null in its rows; one chunk per column, because polars 2.1 can panic
    # ("assertion failed: i < self.len()") on string expressions over rows filtered from many chunks
    data = pl.concat(parts, how="diagonal").rechunk()
    names = [c for c in data.columns if c != ROW]
    owner = np.repeat(np.asarray(ids, dtype=np.int64), [p.height for p in parts])
    data = data.select(
        *(pl.when(pl.col(n) == "").then(None).otherwise(pl.col(n)).alias(n) for n in names),
        pl.col(ROW),
        pl.Series(FILE, owner, dtype=pl.Int64),
    )
    bad = _bad_rows(data, names, study, limit)
    if bad.height:
        keep = np.ones(data.height, dtype=bool)
        keep[bad[_AT].to_numpy()] = False
        kept = data.filter(pl.Series(keep))
        by_header: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for i in bad[FILE].unique().sort().to_list():
            by_header[files[i].names].append(i)
        rejected = pl.concat([
            _rejected_rows(bad.filter(pl.col(FILE).is_in(members)), list(header), study, limit)
            for header, members in by_header.items()
        ])
    else:
        kept, rejected = data, pl.DataFrame(schema=ROW_FINDINGS)
    notes = _cell_notes(files, ids, kept)
    out = kept.select(*names, *added, pl.col(FILE))
    by_file = out.partition_by(FILE, as_dict=True, include_key=False)
    frames = {}
    for i in ids:
        columns = [*files[i].names, *ADDED]
        part = by_file.get((i,))
        frames[i] = part[columns] if part is not None else out.clear()[columns]
    return frames, rejected, notes


def _added(files: list[Prepared]) -> list[pl.Expr]:
    """SOURCE_KEY and SOURCE_ROW (object key and data row number), DELIVERY_SITEID and DECIMAL."""

    def of_file(values: list[str]) -> pl.Expr:
        return pl.lit(pl.Series(values, dtype=pl.String)).gather(pl.col(FILE))

    return [
        of_file([f.key for f in files]).alias(SOURCE_KEY),
        pl.col(ROW).cast(pl.Int64).alias(SOURCE_ROW),
        of_file([f.site for f in files]).alias(DELIVERY_SITEID),
        of_file([f.decimal for f in files]).alias(DECIMAL),
    ]


def shape_files(files: list[Prepared], *, study: str, max_field_chars: int) -> ShapedFiles:
    """Check the rows of every file at once (see the module docstring); files are named by position."""
    by_domain: dict[str, list[int]] = defaultdict(list)
    for i, file in enumerate(files):
        by_domain[file.domain].append(i)
    added = _added(files)
    frames: dict[int, pl.DataFrame] = {}
    rows = [_ragged(files, list(range(len(files))))]
    for domain in sorted(by_domain):
        kept, rejected, notes = _shape_domain(files, by_domain[domain], study, max_field_chars, added)
        frames.update(kept)
        rows += [rejected, notes]
    found = pl.concat(rows).sort(FILE, "ROW", "VARIABLE", maintain_order=True)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rejected_rows = found.filter(pl.col("CODE") != str(Code.VALUE_EXCEL_ERROR))
    for file, code, n in rejected_rows.group_by(FILE, "CODE").len().sort(FILE, "CODE").iter_rows():
        counts[file][Code(code).reason] = n
    return ShapedFiles(frames=frames, rows=found, rejected=dict(counts))
