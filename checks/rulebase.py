"""What every rule kind shares: the leaf result table, the evaluation context, parameter checking.

A rule kind turns its leaves (one table row per leaf of that kind, across all components) and the
prepared data into one long table, one row per subject x leaf, with a three-valued RESULT (True:
the leaf's condition holds, False: it does not, null: undecidable) and the evidence of the value
used. The engine then combines leaves with all / any / not and maps RESULT to outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from checks.units import UnitCatalog

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
OPS = (">=", ">", "<=", "<")


@dataclass(frozen=True)
class EvalContext:
    """The prepared data every rule kind reads (all subjects at once)."""

    reference: pl.LazyFrame  # one row per subject (checks.reference)
    facts: pl.LazyFrame  # one row per subject x domain x key x test (checks.facts, checks.derived)
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
Validator = Callable[[dict[str, Any]], dict[str, Any]]
Inputs = Callable[[dict[str, Any]], dict[str, set[str]]]


@dataclass(frozen=True)
class RuleKind:
    """A registered rule kind: how to check a leaf's keys, what it reads, how to evaluate it."""

    build: Builder
    validate: Validator
    inputs: Inputs
    reads_facts: bool = True  # False: the builder never reads EvalContext.facts (evaluated after they are freed)


def check_keys(params: dict[str, Any], required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any]:
    """Raise ValueError on a missing or unknown key (unknown keys in a protocol are errors)."""
    required, allowed = set(required), set(required) | set(optional) | {"label"}
    missing = required - set(params)
    unknown = set(params) - allowed
    if missing or unknown:
        raise ValueError(f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    return params


def check_comparison(params: dict[str, Any]) -> None:
    """A numeric comparison is either `op` + `limit` or `range: [low, high]` (inclusive)."""
    if "range" in params:
        if "op" in params or "limit" in params:
            raise ValueError("give either range or op + limit")
        low, high = params["range"]
        if not float(low) <= float(high):
            raise ValueError("range must be [low, high]")
        return
    if params.get("op") not in OPS or not isinstance(params.get("limit"), int | float):
        raise ValueError(f"op must be one of {OPS} and limit a number")


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
