"""The checks of one domain, generated from the sources of truth by builders registered by kind.

Every check is generated from contracts/domains.yaml, contracts/units.yaml and the protocol by a small
builder in `BUILDERS`. A builder returns `Piece`s: the expectation (a GE type and kwargs, plain data
so that the suites can be listed without importing Great Expectations), the derived columns it needs
in the prepared polars frame, and the columns of the frame handed to GE. Per-row work (parsing, unit
lookup, plausibility) is a polars expression, so a suite has a couple of dozen expectations per domain
whatever the number of tests or sites.
"""

from __future__ import annotations

from collections.abc import Callable

from expectations.build_dts import (
    build_allowed,
    build_dates,
    build_formula,
    build_key,
    build_required,
    build_site,
    build_study,
    build_subject,
)
from expectations.build_protocol import build_ie, build_needs
from expectations.build_results import build_ranges, build_results, convert, result_columns
from expectations.model import WITHHELD, Check, Context, Piece

__all__ = ["BUILDERS", "WITHHELD", "Check", "Context", "Piece", "build", "convert", "result_columns"]

#: check builders, in suite order; each reads only the Context
BUILDERS: dict[str, Callable[[Context], list[Piece]]] = {
    "required": build_required,
    "allowed": build_allowed,
    "formula": build_formula,
    "study": build_study,
    "site": build_site,
    "subject": build_subject,
    "dates": build_dates,
    "key": build_key,
    "results": build_results,
    "ranges": build_ranges,
    "ie": build_ie,
    "needs": build_needs,
}


def build(ctx: Context) -> list[Piece]:
    """Every piece of one domain's suite, in a stable order."""
    return [piece for builder in BUILDERS.values() for piece in builder(ctx)]
