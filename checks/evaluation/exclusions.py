"""Validation's exclusions and rejections (contracts.EXCLUSIONS), applied to delivered rows.

Rejected rows are dropped before anything else (they count as rejected in the reconciliation).
An excluded value is never read: the rows keep a `_X_<name>` column with validation's MESSAGE, so
that a component left with nothing else usable says why (EXCLUDED_BY_VALIDATION).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import polars as pl

from contracts import EXCLUSIONS
from core.source import SOURCE_COLUMNS, SOURCE_KEY


def normalise(table: pl.DataFrame | None) -> pl.DataFrame:
    """An exclusions / rejected table with the contracted columns (an empty one for None)."""
    if table is None or table.height == 0:
        return pl.DataFrame(schema=EXCLUSIONS)
    return table.select(
        [pl.col(c).cast(dtype) if c in table.columns else pl.lit(None, dtype=dtype).alias(c)
         for c, dtype in EXCLUSIONS.items()]
    ).with_columns(pl.col("DOMAIN").str.to_uppercase(), pl.col("VARIABLE").str.to_uppercase())


def drop_rejected(frame: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """The rows of `frame` that validation did not reject (matched on their typed source).

    A frame none of whose rows is rejected (most of them: rejections are rare and name one file's
    rows) is returned as it is, not copied: evaluation and comparison both start from these frames,
    and a copy of every domain would be a large part of their peak memory (docs/benchmarks.md)."""
    if rejected.height == 0 or SOURCE_KEY not in frame.columns:
        return frame
    files = rejected[SOURCE_KEY].drop_nulls().unique()
    if not frame.select(pl.col(SOURCE_KEY).is_in(files.implode()).any()).item():
        return frame
    return frame.join(rejected.select(SOURCE_COLUMNS).unique(), on=list(SOURCE_COLUMNS), how="anti",
                      maintain_order="left")


Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def excluded_messages(frame: Frame, exclusions: pl.DataFrame, domain: str,
                      names: Mapping[str, str | Sequence[str]]) -> Frame:
    """Add `_X_<name>`: the MESSAGE of an exclusion of one of `names[name]`'s variables on that row.

    `names` maps an output name to one variable or a list (e.g. RESULT -> [LBORRES, LBORRESU]): a
    result is unusable when either its text or its unit was excluded.
    """
    wanted = {name: [v.upper() for v in ([variables] if isinstance(variables, str) else variables)]
              for name, variables in names.items()}
    rows = exclusions.filter(pl.col("DOMAIN") == domain.upper())
    if rows.height == 0:  # the usual case: nothing excluded in this domain, no join over millions of rows
        return frame.with_columns(pl.lit(None, dtype=pl.String).alias(f"_X_{name}") for name in wanted)
    per_name = []
    for name, variables in wanted.items():
        per_name.append(
            rows.filter(pl.col("VARIABLE").is_in(variables))
            .group_by(SOURCE_COLUMNS).agg(pl.col("MESSAGE").sort().first().alias(f"_X_{name}"))
        )
    for part in per_name:
        if isinstance(frame, pl.LazyFrame):
            frame = frame.join(part.lazy(), on=list(SOURCE_COLUMNS), how="left")
        else:
            frame = frame.join(part, on=list(SOURCE_COLUMNS), how="left")
    return frame
