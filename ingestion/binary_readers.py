"""Parquet and SAS v5 transport (XPT): typed columns, turned into text by `ingestion.text`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ingestion.codes import Code
from ingestion.errors import FileRejected
from ingestion.table import ROW, RawTable, positional
from ingestion.text import to_text

#: manifest encoding -> the name pyreadstat (iconv) knows for the character data of an XPT file
_XPT_ENCODINGS = {"utf-8": None, "latin-1": "LATIN1", "cp1252": "CP1252", "utf-16": "UTF-16",
                  "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE"}


_XPT_RECORD = 80  # a SAS v5 transport file is a sequence of 80-byte records


def _raw(typed: pl.DataFrame, decimal: str) -> RawTable:
    header = list(typed.columns)
    text = to_text(typed, decimal)
    frame = text.rename(dict(zip(text.columns, positional(len(header)), strict=True))).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW)
    )
    return RawTable(header=header, frame=frame)


def read_parquet(path: Path, decimal: str = ".") -> RawTable:
    try:
        typed = pl.read_parquet(path)
    except Exception as error:  # polars raises compute/IO/schema errors for damaged files
        raise FileRejected(Code.FILE_UNREADABLE,
                           f"not a readable Parquet file ({error.__class__.__name__})") from None
    return _raw(typed, decimal)


def read_xpt(path: Path, decimal: str = ".", encoding: str = "utf-8") -> RawTable:
    import pyreadstat

    size = path.stat().st_size
    if size % _XPT_RECORD:
        # pyreadstat reads the rows before the cut without complaint
        raise FileRejected(Code.FILE_UNREADABLE,
                           f"the file is {size} bytes, not a whole number of {_XPT_RECORD}-byte transport "
                           f"records: it is truncated or not a SAS v5 transport file", observed=str(size))
    try:
        typed, _meta = pyreadstat.read_xport(str(path), output_format="polars",
                                             encoding=_XPT_ENCODINGS.get(encoding))
    except Exception as error:  # pyreadstat raises ReadstatError / PyreadstatError and others
        raise FileRejected(Code.FILE_UNREADABLE,
                           f"not a readable SAS v5 transport file ({error.__class__.__name__})") from None
    return _raw(typed, decimal)
