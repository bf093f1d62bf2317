"""`RawTable`: what every format reader returns, before names are checked and columns added."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

#: column of a RawTable frame with the 1-based data row number of each record
ROW = "__ROW__"


@dataclass(frozen=True)
class RaggedRow:
    """A CSV record whose field count differs from the header's: rejected, never realigned."""

    row: int  # 1-based data row number
    line: int  # physical line where the record starts (1-based, header line included)
    fields: int


@dataclass(frozen=True)
class CellNote:
    """A cell read as missing because it holds no value (an Excel error such as `#N/A`)."""

    row: int  # 1-based data row number
    column: int  # 0-based position in the header
    observed: str  # what the cell holds, e.g. "#N/A"


@dataclass(frozen=True)
class RawTable:
    """Header as delivered, all-String data in positional columns `c0..cN`, plus `ROW`.

    Columns are positional because a delivered header may repeat or omit names; `header[i]` names
    column `c{i}`. `records` counts every data record read (kept or ragged), the number the
    manifest's `rows` must equal.
    """

    header: list[str]
    frame: pl.DataFrame
    ragged: list[RaggedRow] = field(default_factory=list)
    notes: list[CellNote] = field(default_factory=list)

    @property
    def records(self) -> int:
        return self.frame.height + len(self.ragged)


def positional(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]
