"""Published tables that arrive in parts (a cluster run's partitions), written without gathering them.

At 100,000 subjects the eligibility table has five million rows: on a Dask cluster each partition
returns its share already in canonical form and Parquet-encoded (`table_part`, a few MB), and the flow
streams the parts into eligibility.csv and eligibility.parquet one at a time (polars' streaming sinks;
the bytes are those of the table written at once, tests/test_parted_tables.py), so the flow's memory
does not grow with the study. What else reads the table (the eligibility matrix, the values behind
each query) reads it part by part too.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import polars as pl

from contracts.records import PartedTable
from core.safety import neutralise
from reporting.tables import PARQUET_OPTIONS, TABLES, canonical, csv_pieces
from storage.files import PieceTarget, write_in_pieces

#: the part's own encoding: fast, it is decoded a few times and never published as it is
_PART_COMPRESSION = "lz4"


def table_part(frame: pl.DataFrame, name: str) -> bytes:
    """One partition's rows of a published table, canonical, as Parquet bytes."""
    buffer = io.BytesIO()
    canonical(frame, TABLES[name]).write_parquet(buffer, compression=_PART_COMPRESSION, statistics=False)
    return buffer.getvalue()


def part_rows(part: bytes) -> int:
    """How many rows a part (`table_part`) holds, read from its Parquet footer without decoding it."""
    return pl.scan_parquet(io.BytesIO(part)).select(pl.len()).collect().item()


def part_frames(table: PartedTable, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
    """The parts decoded, one at a time, in order (only `columns`, when given)."""
    for part in table.parts:
        yield pl.read_parquet(io.BytesIO(part), columns=columns)


def _scan(table: PartedTable) -> pl.LazyFrame:
    return pl.concat([pl.scan_parquet(io.BytesIO(part)) for part in table.parts], how="vertical_relaxed")


def in_canonical_order(table: PartedTable) -> bool:
    """Whether the parts one after the other are the table in canonical order (each part is sorted; the
    last key of a part must come before the first of the next, on the table's key columns)."""
    key = list(TABLES[table.name].key)
    edges = []
    for part in table.parts:
        frame = pl.scan_parquet(io.BytesIO(part)).select(key)
        edges.append(pl.concat([frame.head(1), frame.tail(1)]).collect())
    ends = [edge for edge in edges if edge.height]
    for before, after in pairwise(ends):
        pair = pl.concat([before.tail(1), after.head(1)])
        if pair.null_count().sum_horizontal().item() or pair.sort(key, maintain_order=True).row(0) != pair.row(0) \
                or pair.row(0) == pair.row(1):
            return False
    return True


def gathered(table: PartedTable) -> pl.DataFrame:
    """The whole table in memory, canonical (when the parts are not in order: never on a normal run)."""
    return canonical(_scan(table).collect(), TABLES[table.name])


def write_csv(table: PartedTable, path: Path) -> Path:
    """The table's CSV (reporting.tables.csv_bytes: header, text neutralised against formulas), one part
    after the other: CSV rows do not depend on each other, so the file is the whole table's."""
    def pieces() -> Iterator[Callable[[PieceTarget], object]]:
        # one part decoded at a time, and of it one slice's CSV in memory (a partition can hold a site larger than
        # PARTITION_SUBJECTS): each is copied into the file before the next is made
        for at, frame in enumerate(part_frames(table)):
            yield from csv_pieces(frame.pipe(neutralise), header=at == 0)

    return write_in_pieces(path, pieces())


def write_parquet(table: PartedTable, path: Path) -> Path:
    """The table's Parquet (reporting.tables.parquet_bytes' settings), streamed."""
    _scan(table).sink_parquet(path, **PARQUET_OPTIONS)
    return path
