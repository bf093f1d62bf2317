"""Records of the same kind from disjoint parts of a study (scale-out partitions), stacked into one.

A stage record is a frozen dataclass of frames (one row per subject, per component...), per-domain
counts and run-level values. The study's record is the parts' frames stacked, their counts summed
and the run-level values (the protocol's id, the criteria's list) taken from the first part, which
must agree with every other part: a disagreement means the parts were not audited alike, and is an
error rather than a silently wrong record.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import polars as pl

Record = TypeVar("Record")


def stack_records(parts: list[Record]) -> Record:
    """One record of the parts' type: frames stacked (in part order), dicts of counts summed, the rest equal."""
    if not parts:
        raise ValueError("nothing to stack")
    first = parts[0]
    if len(parts) == 1:
        return first
    values: dict[str, Any] = {}
    for item in dataclasses.fields(first):  # type: ignore[arg-type]
        column = [getattr(part, item.name) for part in parts]
        head = column[0]
        if isinstance(head, pl.DataFrame):
            values[item.name] = stack_frames(column)
        elif isinstance(head, dict) and all(isinstance(v, int) for part in column for v in part.values()):
            values[item.name] = {k: sum(part.get(k, 0) for part in column) for k in _keys(column)}
        elif all(value == head for value in column[1:]):
            values[item.name] = head
        else:
            raise ValueError(f"{type(first).__name__}.{item.name} differs between parts")
    return type(first)(**values)


def _keys(dicts: list[dict]) -> list:
    seen: dict = {}
    for d in dicts:
        seen.update(dict.fromkeys(d))
    return list(seen)


def stack_frames(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The frames one under the other; a column all-null in one part (dtype Null) takes the others' type."""
    present = [f for f in frames if f.height] or frames[:1]
    return present[0] if len(present) == 1 else pl.concat(present, how="vertical_relaxed")
