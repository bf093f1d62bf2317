"""A table that arrives in parts (a cluster run's partitions) is published byte for byte as the whole table
would be: eligibility.csv / .parquet streamed from the parts, the eligibility matrix of report.xlsx and the
values quoted by the site queries read part by part (reporting.parted)."""

from __future__ import annotations

import dataclasses
import io
import math

import polars as pl

from contracts.records import PartedTable
from reporting import parted
from reporting.publish import render_outputs
from reporting.tables import TABLES, canonical, csv_bytes, parquet_bytes
from tests.support.sample_outputs import make_outputs


def _parts(frame: pl.DataFrame, sites: list[list[str]]) -> PartedTable:
    """The frame cut by consecutive groups of sites, as the partitions of a cluster run return it."""
    return PartedTable("eligibility", [parted.table_part(frame.filter(pl.col("SITEID").is_in(group)), "eligibility")
                                       for group in sites])


def test_every_published_file_is_the_same_from_parts_as_from_the_whole_table() -> None:
    outputs = make_outputs(n_subjects=120, n_sites=4)
    rows = outputs.eligibility.with_columns(  # a formula-like value, which the CSV must neutralise in every part
        pl.when(pl.col("USUBJID").str.ends_with("7")).then(pl.lit("=HYPERLINK(1)")).otherwise(pl.col("VALUE"))
        .alias("VALUE"))
    whole = dataclasses.replace(outputs, eligibility=rows)
    in_parts = dataclasses.replace(outputs, eligibility=_parts(rows, [["101"], ["102", "103"], ["104"]]))
    files = {f.key: f.data for f in render_outputs(whole)}
    from_parts = {f.key: f.data for f in render_outputs(in_parts)}
    assert sorted(files) == sorted(from_parts)
    assert files["eligibility.csv"] == csv_bytes(canonical(rows, TABLES["eligibility"]))
    assert b"'=HYPERLINK(1)" in files["eligibility.csv"]
    assert files["eligibility.parquet"] == parquet_bytes(canonical(rows, TABLES["eligibility"]))
    different = [key for key in files if files[key] != from_parts[key]]
    assert different == []


def test_a_parts_csv_in_slices_and_an_empty_first_part_give_the_whole_tables_csv(tmp_path, monkeypatch) -> None:
    """Each part is written a slice at a time (a partition can hold more rows than a slice), and a first part
    without a row still gives the header, as the whole table's CSV has it."""
    from reporting import tables

    monkeypatch.setattr(tables, "CSV_SLICE_ROWS", 7)
    real, counted = parted.write_in_pieces, []

    def counting(path, pieces):
        pieces = list(pieces)
        counted.append(len(pieces))
        return real(path, pieces)

    monkeypatch.setattr(parted, "write_in_pieces", counting)
    rows = make_outputs(n_subjects=60, n_sites=3).eligibility
    whole = csv_bytes(canonical(rows, TABLES["eligibility"]))
    written = parted.write_csv(_parts(rows, [[], ["101"], ["102", "103"]]), tmp_path / "e.csv").read_bytes()
    assert written == whole
    site_101 = rows.filter(pl.col("SITEID") == "101").height
    # the empty first part's header, then each part's rows 7 at a time
    assert counted == [1 + math.ceil(site_101 / 7) + math.ceil((rows.height - site_101) / 7)]
    assert written.count(b"STUDYID,") == 1
    empty = parted.write_csv(_parts(rows, [[]]), tmp_path / "empty.csv").read_bytes()
    assert empty == csv_bytes(canonical(rows.clear(), TABLES["eligibility"]))


def test_parts_out_of_order_are_gathered_and_sorted() -> None:
    rows = make_outputs(n_subjects=60, n_sites=3).eligibility
    backwards = _parts(rows, [["103"], ["101"], ["102"]])
    assert not parted.in_canonical_order(backwards)
    assert parted.in_canonical_order(_parts(rows, [["101"], ["102"], ["103"]]))
    assert parted.gathered(backwards).equals(canonical(rows, TABLES["eligibility"]))


def test_a_part_is_small_next_to_its_rows() -> None:
    rows = make_outputs(n_subjects=400, n_sites=4).eligibility
    part = parted.table_part(rows, "eligibility")
    assert len(part) < rows.estimated_size() / 3
    assert pl.read_parquet(io.BytesIO(part)).equals(canonical(rows, TABLES["eligibility"]))


def test_outputs_shipped_to_a_worker_arrive_as_they_left_and_much_smaller() -> None:
    import pickle

    from core.packing import pack, unpack

    outputs = make_outputs(n_subjects=400, n_sites=4)
    packed = pack(outputs)
    back = unpack(packed)
    for name in ("subjects", "eligibility", "discrepancies", "validation"):
        assert getattr(back, name).equals(getattr(outputs, name)), name
    assert (back.study, back.as_of, back.run_manifest) == (outputs.study, outputs.as_of, outputs.run_manifest)
    assert len(pickle.dumps(packed)) < len(pickle.dumps(outputs)) / 3
