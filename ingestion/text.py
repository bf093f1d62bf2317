"""Typed columns (Parquet, SAS XPT) to faithful text, so every format reaches the checks the same way.

Ingestion never interprets values; but Parquet and XPT carry numbers and dates, not text. Their
text is written here once, the same way for every file: integers without `.0`, other numbers in
the shortest decimal form at 15 significant digits (the precision a SAS or IEEE double carries
reliably, so `9.5` and never `9.500000000000002`), never in exponent notation, with the decimal
mark the manifest declares for the file; dates as ISO 8601.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ingestion.codes import Code
from ingestion.errors import FileRejected

_INTEGRAL_LIMIT = 1e15  # below this a float that is integral is printed as an integer exactly
_SIG_DIGITS = 15


def _positional(value: float) -> str:
    return np.format_float_positional(value, precision=_SIG_DIGITS, unique=True, fractional=False, trim="-")


def float_text(column: pl.Series, decimal: str) -> pl.Series:
    """Text of a float column: integers without `.0`, 15 significant digits, no exponent, NaN -> null."""
    v = pl.col("v")
    integral = v.is_finite() & (v.round(0) == v) & (v.abs() < _INTEGRAL_LIMIT)
    frame = pl.DataFrame({"v": column.cast(pl.Float64)}).with_columns(
        integral.alias("integral"),
        v.round_sig_figs(_SIG_DIGITS).cast(pl.String).alias("f"),
    )
    # polars writes 1e-7 / 1e+20 in exponent form: rewrite only those (rare) distinct values
    exponent = frame.filter(v.is_finite() & ~pl.col("integral") & pl.col("f").str.contains("e"))
    fixes = {f: _positional(float(f)) for f in exponent.get_column("f").unique().to_list()}
    text = frame.select(
        pl.when(pl.col("integral")).then(v.cast(pl.Int64).cast(pl.String))
        .when(v.is_finite()).then(pl.col("f").replace(fixes) if fixes else pl.col("f"))
        .when(v.is_nan()).then(None)
        .otherwise(v.cast(pl.String))  # +-inf stays visible; the checks flag it
        .alias(column.name)
    ).to_series()
    if decimal != ".":
        text = text.str.replace(".", decimal, literal=True)
    return text


def to_text(frame: pl.DataFrame, decimal: str = ".") -> pl.DataFrame:
    """Every column of `frame` as `pl.String`; FileRejected for a column type with no faithful text."""
    columns: list[pl.Series] = []
    for series in frame.iter_columns():
        dtype = series.dtype
        if dtype == pl.String:
            columns.append(series)
        elif dtype.is_float():
            columns.append(float_text(series, decimal))
        elif dtype.is_integer() or dtype == pl.Boolean or dtype == pl.Null:
            columns.append(series.cast(pl.String))
        elif dtype.is_decimal():
            text = series.cast(pl.String)
            columns.append(text.str.replace(".", decimal, literal=True) if decimal != "." else text)
        elif isinstance(dtype, pl.Categorical | pl.Enum):
            columns.append(series.cast(pl.String))
        elif dtype == pl.Date:
            columns.append(series.dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            columns.append(series.dt.strftime("%Y-%m-%dT%H:%M:%S"))
        elif dtype == pl.Time:
            columns.append(series.dt.strftime("%H:%M:%S"))
        else:
            raise FileRejected(Code.FILE_UNSUPPORTED_TYPE,
                               f"column {series.name!r} has type {dtype}, which has no plain text form",
                               variable=str(series.name), observed=str(dtype))
    return pl.DataFrame(columns)
