"""Returned workbooks as a reviewer or a site would send them back: the published sheet read, some rows
filled in, written again (Excel keeps the other sheets; the audit only reads this one)."""

from __future__ import annotations

import io

import fastexcel
import polars as pl
import xlsxwriter


def _sheet(data: bytes, name: str) -> pl.DataFrame:
    return fastexcel.read_excel(data).load_sheet(name, dtypes="string").to_polars()


def _write(frame: pl.DataFrame, name: str, formulas: dict[tuple[int, str], str] | None = None,
           others: dict[str, pl.DataFrame] | None = None) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False})
    for sheet_name, sheet_frame in {name: frame, **(others or {})}.items():
        sheet = book.add_worksheet(sheet_name)
        sheet.write_row(0, 0, sheet_frame.columns)
        for r, row in enumerate(sheet_frame.iter_rows(), start=1):
            for c, value in enumerate(row):
                if value is not None:
                    sheet.write_string(r, c, str(value))
        if sheet_name == name:
            for (row, column), formula in (formulas or {}).items():
                sheet.write_formula(row + 1, frame.columns.index(column), formula, None, "cached")
    book.close()
    return buffer.getvalue()


def returned_review(report_xlsx: bytes, decisions: dict[str, tuple[str, str | None, str | None]],
                    formulas: dict[tuple[int, str], str] | None = None,
                    change: dict[str, pl.Expr] | None = None) -> bytes:
    """report.xlsx's Review sheet with DECISION, TEXT, REVIEWER set for the given FINDING_IDs.

    `formulas`: (data row, column) -> a formula written into that cell; `change`: column -> expression
    applied to the whole sheet (to return a workbook of another study...)."""
    frame = _sheet(report_xlsx, "Review")
    for column, index in (("DECISION", 0), ("TEXT", 1), ("REVIEWER", 2)):
        mapping = {finding: values[index] for finding, values in decisions.items()}
        frame = frame.with_columns(pl.col("FINDING_ID").replace_strict(mapping, default=None, return_dtype=pl.String)
                                   .alias(column))
    if change:
        frame = frame.with_columns(**change)
    return _write(frame, "Review", formulas)


def returned_site_queries(site_xlsx: bytes, answers: dict[str, tuple[str, str | None]],
                          change: dict[str, pl.Expr] | None = None, keep: bytes | None = None) -> bytes:
    """A site's query workbook with SITE_RESPONSE and RESPONDED_BY filled on the queries that list the
    given FINDING_IDs (a consolidated query lists several: its answer is for each of them); `keep`: the
    published workbook whose other sheets (Detail, Also answered) go back too, as Excel keeps them."""
    frame = _sheet(site_xlsx, "Queries")
    listed = pl.col("FINDING_IDS").str.split(" ")
    for column, index in (("SITE_RESPONSE", 0), ("RESPONDED_BY", 1)):
        chain = pl.lit(None, pl.String)
        for finding, values in answers.items():
            chain = pl.when(listed.list.contains(pl.lit(finding))).then(pl.lit(values[index])).otherwise(chain)
        frame = frame.with_columns(chain.alias(column))
    if change:
        frame = frame.with_columns(**change)
    others = {name: _sheet(keep, name) for name in fastexcel.read_excel(keep).sheet_names if name != "Queries"} \
        if keep is not None else None
    return _write(frame, "Queries", others=others)


def findings_listed_with(site_xlsx: bytes, finding: str) -> list[str]:
    """The FINDING_IDs of the site query (the Queries sheet's row) that lists `finding`."""
    frame = _sheet(site_xlsx, "Queries").with_columns(pl.col("FINDING_IDS").str.split(" ").alias("_IDS"))
    listing = frame.filter(pl.col("_IDS").list.contains(pl.lit(finding)))["_IDS"]
    assert listing.len() == 1, f"{finding} is listed by {listing.len()} queries"
    return listing[0].to_list()
