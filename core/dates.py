"""Dates as sites deliver them: ISO 8601 text, possibly partial, read as intervals and never completed.

`2024-03` is every day of March 2024; a decision that depends on a date is taken only when every
possible day gives the same answer. Shared by validation (is it a date?), evaluation (windows,
ages) and the comparison's process checks (before consent?).
"""

from __future__ import annotations

import polars as pl

from core.values import blank_to_null

#: YYYY[-MM[-DD[Thh[:mm[:ss[.f]]][zone]]]]
_DATE = (
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(?:[01]\d|2[0-3])(?::[0-5]\d(?::[0-5]\d(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$"
)


def partial_date(text: pl.Expr | str) -> pl.Expr:
    """ISO 8601 text -> struct {earliest: Date, latest: Date, invalid: Boolean}.

    `2024` -> [2024-01-01, 2024-12-31], `2024-02` -> [2024-02-01, 2024-02-29], a full date (time
    ignored) -> [d, d]. Blank -> both null, invalid false (missing). Anything else (`12/03/2024`,
    `2024-13`, `2023-02-29`) -> both null and invalid true: never completed or reinterpreted.
    """
    text = blank_to_null(text)
    year = text.str.extract(_DATE, 1)
    month = text.str.extract(_DATE, 2)
    day = text.str.extract(_DATE, 3)
    first = pl.concat_str([year, pl.lit("-"), month.fill_null("01"), pl.lit("-"), day.fill_null("01")])
    earliest = first.str.to_date("%Y-%m-%d", strict=False)
    latest = (
        pl.when(day.is_not_null()).then(earliest)
        .when(month.is_not_null()).then(earliest.dt.month_end())
        .otherwise(pl.concat_str([year, pl.lit("-12-31")]).str.to_date("%Y-%m-%d", strict=False))
    )
    invalid = text.is_not_null() & earliest.is_null()
    return pl.struct(
        earliest.alias("earliest"),
        pl.when(earliest.is_not_null()).then(latest).alias("latest"),
        invalid.alias("invalid"),
    )


def date_bounds(text: pl.Expr | str) -> tuple[pl.Expr, pl.Expr]:
    """(earliest, latest) possible date of an ISO 8601 text, null when blank or not a date.

    `2026` -> 2026-01-01 .. 2026-12-31, `2026-02` -> 2026-02-01 .. 2026-02-28, `2026-02-03T10:00`
    -> 2026-02-03 .. 2026-02-03 (`partial_date`; nothing is ever completed or guessed).
    """
    parsed = partial_date(text)
    return parsed.struct.field("earliest"), parsed.struct.field("latest")


def completed_years(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    """Whole years from `start` to `end` (Int64): a birthday counts on its day, and a 29 February
    birthday completes a year on 1 March in common years. The one formula for every age."""
    def month_day(day: pl.Expr) -> pl.Expr:  # dt.month()/day() are Int8: widen before arithmetic
        return day.dt.month().cast(pl.Int32) * 100 + day.dt.day().cast(pl.Int32)

    before_birthday = month_day(end) < month_day(start)
    return end.dt.year().cast(pl.Int64) - start.dt.year().cast(pl.Int64) - before_birthday.cast(pl.Int64)


def with_partial_dates(frame: pl.LazyFrame, column: str, prefix: str) -> pl.LazyFrame:
    """Add `<prefix>_LO`, `<prefix>_HI`, `<prefix>_INVALID` (see `partial_date`) for a text column.

    Parses each distinct text once and joins the result back: a study has millions of result rows
    but only a few thousand distinct dates, and the ISO regex is the expensive part.
    """
    frame = frame.cache()  # read twice below: computed once
    parsed = (
        frame.select(pl.col(column).alias("_DATE_TEXT")).unique()
        .with_columns(partial_date(pl.col("_DATE_TEXT")).alias("_PD"))
        .select(
            "_DATE_TEXT",
            pl.col("_PD").struct.field("earliest").alias(f"{prefix}_LO"),
            pl.col("_PD").struct.field("latest").alias(f"{prefix}_HI"),
            pl.col("_PD").struct.field("invalid").alias(f"{prefix}_INVALID"),
        )
    )
    return (frame.join(parsed, left_on=column, right_on="_DATE_TEXT", how="left", nulls_equal=True)
            .with_columns(pl.col(f"{prefix}_INVALID").fill_null(False)))
