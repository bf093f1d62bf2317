"""What every rule kind shares: the leaf result table, the evaluation context, parameter checking.

A rule kind turns its leaves (one table row per leaf of that kind, across all components) and the
prepared data into one long table, one row per subject x leaf, with a three-valued RESULT (True:
the leaf's condition holds, False: it does not, null: undecidable) and the evidence of the value
used. The engine then combines leaves with all / any / not and maps RESULT to outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from contracts.units import UnitCatalog

#: one row per subject x leaf
LEAF_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "USUBJID": pl.String,
    "LEAF_ID": pl.Int64,
    "RESULT": pl.Boolean,
    "LABEL": pl.String,
    "VALUE": pl.String,
    "UNIT": pl.String,
    "LIMIT": pl.String,
    "DTC": pl.String,
    "SOURCE": pl.String,
    "REASON_CODE": pl.String,
    "REASON": pl.String,
}
LEAF_COLUMNS = list(LEAF_SCHEMA)


@dataclass(frozen=True)
class EvalContext:
    """The prepared data every rule kind reads (all subjects at once)."""

    reference: pl.LazyFrame  # one row per subject (checks.evaluation.reference)
    facts: pl.LazyFrame  # one row per subject x domain x key x test (evaluation.facts and .derived)
    domains: dict[str, pl.DataFrame]  # delivered frames, rejected rows dropped
    exclusions: pl.DataFrame
    catalog: UnitCatalog
    parameters: dict[str, int | float] = field(default_factory=dict)


@dataclass(frozen=True)
class Leaf:
    id: int
    kind: str
    params: dict[str, Any]


Builder = Callable[[list[Leaf], EvalContext], pl.LazyFrame]


@dataclass(frozen=True)
class RuleBuilder:
    """How one rule kind (declared in contracts.rule_kinds) is evaluated over all its leaves at once."""

    build: Builder
    reads_facts: bool = True  # False: the builder never reads EvalContext.facts (evaluated after they are freed)


def leaf_table(leaves: list[Leaf], columns: dict[str, Callable[[Leaf], Any]],
               schema: dict[str, pl.DataType | type[pl.DataType]]) -> pl.DataFrame:
    """One row per leaf with the parameter columns a builder needs (a loop over leaves, not data)."""
    data = {name: [get(leaf) for leaf in leaves] for name, get in columns.items()}
    return pl.DataFrame({"LEAF_ID": [leaf.id for leaf in leaves], **data},
                        schema={"LEAF_ID": pl.Int64, **schema})


def empty_leaf_results() -> pl.LazyFrame:
    return pl.DataFrame(schema=LEAF_SCHEMA).lazy()


def finish(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Select the leaf result columns in order with their types."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in LEAF_SCHEMA.items()])
