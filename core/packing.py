"""A record of frames shipped to another process compressed: every DataFrame in it as zstd Arrow IPC.

Why: what a flow hands to a Dask task is pickled into the task graph, held by the scheduler until the
task has run and copied on the way; a run's outputs at 100,000 subjects are a few hundred MB as
frames and several times smaller compressed (the flow's memory, docs/benchmarks.md "Scale-out").
Frames in fields of the record and of the dataclasses it holds (one level: RunOutputs.review) are
packed; everything else travels as it is.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import polars as pl

Record = TypeVar("Record")


@dataclass(frozen=True)
class Packed(Generic[Record]):
    """`record` with its frames emptied, and those frames by field path (`review.states`) as bytes."""

    record: Record
    frames: dict[str, bytes] = field(default_factory=dict)


def frame_bytes(frame: pl.DataFrame) -> bytes:
    """A frame as zstd-compressed Arrow IPC (`frame_of` reads it back, dtypes and all)."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="zstd")
    return buffer.getvalue()


def frame_of(data: bytes) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(data))


def pack(record: Record) -> Packed[Record]:
    """The record with every frame (its own fields' and those of the dataclasses it holds) compressed."""
    frames: dict[str, bytes] = {}

    def strip(item: Any, prefix: str) -> Any:
        changes = {}
        for spec in dataclasses.fields(item):
            value = getattr(item, spec.name)
            if isinstance(value, pl.DataFrame):
                frames[prefix + spec.name] = frame_bytes(value)
                changes[spec.name] = value.clear(0)
            elif dataclasses.is_dataclass(value) and not isinstance(value, type) and not prefix:
                changes[spec.name] = strip(value, f"{spec.name}.")
        return dataclasses.replace(item, **changes) if changes else item

    return Packed(strip(record, ""), frames)


def unpack(packed: Packed[Record]) -> Record:
    """The record as it was packed."""
    nested: dict[str, dict[str, Any]] = {}
    own: dict[str, Any] = {}
    for path, data in packed.frames.items():
        frame = frame_of(data)
        head, _, tail = path.partition(".")
        if tail:
            nested.setdefault(head, {})[tail] = frame
        else:
            own[head] = frame
    for name, changes in nested.items():
        own[name] = dataclasses.replace(getattr(packed.record, name), **changes)
    return dataclasses.replace(packed.record, **own) if own else packed.record
