"""Which protocol version a subject consented under: the span of versions its consent date allows.

Versions are in force from their effective date until the next version's. A subject is judged by the
version in force at its informed consent (RFICDTC). The consent date is an interval (a partial
`2025-03` is any day of March), so a subject has a *span* of versions: the version in force on the
earliest possible day to the one in force on the latest. A complete date gives one version; a partial
date across an amendment, or an unknown consent date (missing, invalid, excluded), gives several, and
only what every version of the span agrees on can then be decided (checks.evaluation.versions).

A consent before the first version's effective date is judged by the first version: no earlier text
exists. Versions are numbered 0..n-1 by effective date (`Protocol.editions()` order). Shared by the
evaluation (reference dates) and validation (which criteria a subject's checklist must answer).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from contracts.protocol import ProtocolVersion

#: how a span of several versions is named in TIVERS (`1.0 or 2.0`): it reads as what it means
SPAN_SEPARATOR = " or "


def _index_on(day: pl.Expr, versions: Sequence[ProtocolVersion]) -> pl.Expr:
    """Index of the version in force on `day` (0 before the first's effective date); null for a null day."""
    index: pl.Expr = pl.lit(0, dtype=pl.Int32)
    for number, version in enumerate(versions[1:], start=1):
        index = pl.when(day >= pl.lit(version.effective)).then(pl.lit(number, dtype=pl.Int32)).otherwise(index)
    return pl.when(day.is_not_null()).then(index)


def version_span(earliest: pl.Expr, latest: pl.Expr, versions: Sequence[ProtocolVersion]) -> tuple[pl.Expr, pl.Expr]:
    """(first, last) version index a consent date in [earliest, latest] allows; every version when the
    date is unknown. `versions` in effective-date order."""
    last = len(versions) - 1
    first_index = _index_on(earliest, versions).fill_null(0)
    last_index = _index_on(latest, versions).fill_null(last)
    unknown = earliest.is_null() | latest.is_null()
    return (pl.when(unknown).then(pl.lit(0, dtype=pl.Int32)).otherwise(first_index),
            pl.when(unknown).then(pl.lit(last, dtype=pl.Int32)).otherwise(last_index))


def span_labels(versions: Sequence[ProtocolVersion]) -> dict[tuple[int, int], str]:
    """(first, last) -> TIVERS text: `2.0`, or `1.0 or 2.0` for a span, for every possible span."""
    names = [v.tivers for v in versions]
    return {(first, last): SPAN_SEPARATOR.join(names[first:last + 1])
            for first in range(len(names)) for last in range(first, len(names))}


def span_label(first: pl.Expr, last: pl.Expr, versions: Sequence[ProtocolVersion]) -> pl.Expr:
    """The TIVERS text of a span (see `span_labels`)."""
    count = len(versions)
    labels = {f * count + last_: text for (f, last_), text in span_labels(versions).items()}
    return (first.cast(pl.Int64) * count + last.cast(pl.Int64)).replace_strict(labels, return_dtype=pl.String)
