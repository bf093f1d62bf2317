"""From a RawTable to the contracted domain frame: names checked, rows checked, columns added.

File-level problems (a header that cannot be trusted, a required column missing) raise
FileRejected. Row-level problems (a record of another study, a field too long to be a value,
a CSV record with the wrong number of fields) reject that row only. Every record read ends either
in the frame or among the rejected rows, so `rows_read = rows kept + rows rejected` holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from contracts import domain_spec
from ingestion.codes import Code
from ingestion.errors import FileRejected
from ingestion.table import ROW, RawTable

SOURCE = "SOURCE"
DELIVERY_SITEID = "DELIVERY_SITEID"
DECIMAL = "DECIMAL"
ADDED = (SOURCE, DELIVERY_SITEID, DECIMAL)

#: rejected-row columns (see `findings.row_findings`)
_REJECTED = pl.Schema({"ROW": pl.Int64, "USUBJID": pl.String, "CODE": pl.String, "VARIABLE": pl.String,
                       "OBSERVED": pl.String, "DETAIL": pl.String})


@dataclass(frozen=True)
class Shaped:
    frame: pl.DataFrame  # delivered columns (upper-case names) + SOURCE, DELIVERY_SITEID, DECIMAL
    rejected: pl.DataFrame  # one row per rejected record (schema _REJECTED)
    records: int
    notes: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_REJECTED))  # kept rows

    def reasons(self) -> dict[str, int]:
        counts = self.rejected.group_by("CODE").len().sort("CODE").rows()
        return {Code(code).reason: n for code, n in counts}


def column_names(raw: RawTable) -> tuple[list[str], list[str]]:
    """(positional columns to keep, their upper-case names); FileRejected for an untrustworthy header."""
    keep: list[str] = []
    names: list[str] = []
    for i, header in enumerate(raw.header):
        name = header.strip().upper()
        if not name:
            has_values = raw.frame.select(
                (pl.col(f"c{i}").is_not_null() & (pl.col(f"c{i}").str.strip_chars() != "")).any()
            ).item()
            if has_values:
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
    reserved = [n for n in names if n in ADDED]
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


def _ragged(raw: RawTable, width: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ROW": [r.row for r in raw.ragged],
            "USUBJID": [None] * len(raw.ragged),
            "CODE": [str(Code.ROW_RAGGED)] * len(raw.ragged),
            "VARIABLE": [None] * len(raw.ragged),
            "OBSERVED": [f"{r.fields} fields" for r in raw.ragged],
            "DETAIL": [f"record starting on line {r.line} has {r.fields} fields where the header has "
                       f"{width}; the row is not used" for r in raw.ragged],
        },
        schema=_REJECTED,
    )


def _row_code(names: list[str], study: str, limit: int) -> pl.Expr:
    """The row-rejection code of a row, or null. The length test comes first: a huge STUDYID is
    reported by its length and never echoed."""
    longest = pl.max_horizontal(pl.col(n).str.len_chars().fill_null(0) for n in names)
    other_study = pl.col("STUDYID").is_not_null() & (pl.col("STUDYID").str.strip_chars() != study)
    return (
        pl.when(longest > limit).then(pl.lit(str(Code.ROW_FIELD_TOO_LONG)))
        .when(other_study).then(pl.lit(str(Code.ROW_OTHER_STUDY)))
        .otherwise(pl.lit(None, pl.String))
    )


def _check_rows(data: pl.DataFrame, names: list[str], study: str, limit: int) -> pl.DataFrame:
    """`data` with `__CODE__` (null for a row that is kept), in ROW order.

    A value's byte length bounds its length in characters, so only rows with a long value in
    bytes or another STUDYID go through the exact (slower) checks of `_row_code`.
    """
    suspect = pl.any_horizontal(
        (pl.col("STUDYID").str.strip_chars() != study),
        *(pl.col(n).str.len_bytes() > limit for n in names),
    ).fill_null(False)  # a null mask would drop the row from both sides
    flagged = data.with_columns(suspect.alias("__SUSPECT__"))
    checked = flagged.filter(~pl.col("__SUSPECT__")).with_columns(pl.lit(None, pl.String).alias("__CODE__"))
    suspects = flagged.filter(pl.col("__SUSPECT__")).with_columns(_row_code(names, study, limit).alias("__CODE__"))
    if suspects.height:
        checked = pl.concat([checked, suspects]).sort(ROW)
    if checked.height != data.height:  # pragma: no cover - the accounting invariant
        raise AssertionError(f"{data.height} records checked into {checked.height}")
    return checked.drop("__SUSPECT__")


def _rejected_rows(bad: pl.DataFrame, names: list[str], study: str, limit: int) -> pl.DataFrame:
    """One rejected-row record (schema _REJECTED) per row of `bad` (rows with a `__CODE__`)."""
    usubjid = pl.col("USUBJID") if "USUBJID" in names else pl.lit(None, pl.String)
    longest = pl.max_horizontal(pl.col(n).str.len_chars().fill_null(0) for n in names)
    first_long = pl.coalesce(pl.when(pl.col(n).str.len_chars() > limit).then(pl.lit(n)) for n in names)
    too_long = pl.col("__CODE__") == str(Code.ROW_FIELD_TOO_LONG)
    return bad.select(
        pl.col(ROW).alias("ROW"),
        pl.when(usubjid.str.len_chars() <= limit).then(usubjid).alias("USUBJID"),
        pl.col("__CODE__").alias("CODE"),
        pl.when(too_long).then(first_long).otherwise(pl.lit("STUDYID")).alias("VARIABLE"),
        pl.when(too_long).then(longest.cast(pl.String) + pl.lit(" characters"))
        .otherwise(pl.col("STUDYID")).alias("OBSERVED"),
        pl.when(too_long)
        .then(pl.format("a field is {} characters long, more than the {} a value may have; the row is "
                        "not used", longest, pl.lit(limit)))
        .otherwise(pl.format("STUDYID is not {}; the row belongs to another study and is not used",
                             pl.lit(study)))
        .alias("DETAIL"),
    ).cast(_REJECTED)


def _cell_notes(raw: RawTable, kept: pl.DataFrame, keep: list[str], names: list[str]) -> pl.DataFrame:
    """Findings (schema _REJECTED, nothing rejected) for cells of kept rows read as missing."""
    name_of = dict(zip((int(c[1:]) for c in keep), names, strict=True))
    notes = [n for n in raw.notes if n.column in name_of]
    if not notes:
        return pl.DataFrame(schema=_REJECTED)
    usubjid = pl.col("USUBJID") if "USUBJID" in names else pl.lit(None, pl.String)
    cells = pl.DataFrame({"ROW": [n.row for n in notes], "VARIABLE": [name_of[n.column] for n in notes],
                          "OBSERVED": [n.observed for n in notes]}, schema_overrides={"ROW": pl.Int64})
    return (
        cells.join(kept.select(pl.col(ROW).alias("ROW"), usubjid.alias("USUBJID")), on="ROW", how="inner")
        .select(
            "ROW", "USUBJID",
            pl.lit(str(Code.VALUE_EXCEL_ERROR)).alias("CODE"),
            "VARIABLE", "OBSERVED",
            pl.format("{} holds the Excel error {}, not a value; it is read as missing",
                      pl.col("VARIABLE"), pl.col("OBSERVED")).alias("DETAIL"),
        )
        .sort("ROW", "VARIABLE")
        .cast(_REJECTED)
    )


def shape(raw: RawTable, *, domain: str, key: str, study: str, site: str, decimal: str,
          max_field_chars: int) -> Shaped:
    """The domain frame of one file and its rejected rows (see module docstring)."""
    keep, names = column_names(raw)
    required_columns(domain, names)  # STUDYID is required in every domain
    data = raw.frame.select(
        *(pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(n)
          for c, n in zip(keep, names, strict=True)),
        pl.col(ROW),
    )
    checked = _check_rows(data, names, study, max_field_chars)
    bad = checked.filter(pl.col("__CODE__").is_not_null())
    rejected = pl.concat([_ragged(raw, len(raw.header)),
                          _rejected_rows(bad, names, study, max_field_chars)]).sort("ROW")
    kept = checked.filter(pl.col("__CODE__").is_null())
    frame = kept.select(
        *names,
        pl.format("{}:{}", pl.lit(key), pl.col(ROW)).alias(SOURCE),
        pl.lit(site, pl.String).alias(DELIVERY_SITEID),
        pl.lit(decimal, pl.String).alias(DECIMAL),
    )
    return Shaped(frame=frame, rejected=rejected, records=raw.records,
                  notes=_cell_notes(raw, kept, keep, names))
