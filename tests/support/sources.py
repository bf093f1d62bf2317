"""Test tables written with a readable SOURCE text, turned into the typed columns stages read."""

from __future__ import annotations

import polars as pl


def split_source(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its SOURCE text (`<object key>:<row>`) as SOURCE_KEY and SOURCE_ROW (core.source)."""
    if "SOURCE" not in frame.columns:
        return frame
    return frame.with_columns(
        pl.col("SOURCE").str.extract(r"^(.*):\d+$", 1).alias("SOURCE_KEY"),
        pl.col("SOURCE").str.extract(r":(\d+)$", 1).cast(pl.Int64).alias("SOURCE_ROW"),
    ).drop("SOURCE")
