"""Scale-out partitions (issue 17): a study audited in partitions of whole sites gives exactly the tables of
the study audited at once, including a subject whose rows two sites delivered and sites whose files have
other columns; the partitions are planned so that no subject is split.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from contracts.records import BatchIndex, DomainValidation
from core.stack import stack_records
from expectations import finish_validation
from expectations.merge import merge_gx_results
from flows.partition import audit_partition, study_records
from flows.study_files import load_study_files
from generator import generate
from ingestion import ingest_sites
from ingestion.partition import batch_index, joined_batches, plan_partitions, study_schemas
from reporting.parted import in_canonical_order, part_frames
from reporting.tables import TABLES, canonical
from storage import LocalStore

AS_OF = date(2026, 11, 28)
STUDY = "SZ003"


def _index(subjects: int, ids: tuple[str, ...] = ()) -> BatchIndex:
    return BatchIndex(sites=["x"], not_audited={}, subjects=subjects,
                      subject_ids=pl.DataFrame({"USUBJID": list(ids)}, schema={"USUBJID": pl.String}), schemas={})


def test_partitions_are_consecutive_balanced_and_as_many_as_the_workers_or_the_memory_needs() -> None:
    assert plan_partitions([_index(100)] * 10, max_subjects=10_000, min_partitions=2) == [[0, 1, 2, 3, 4],
                                                                                          [5, 6, 7, 8, 9]]
    assert plan_partitions([_index(1000)] * 10, max_subjects=2_500, min_partitions=2) == [[0, 1], [2, 3, 4], [5, 6],
                                                                                           [7, 8, 9]]
    assert plan_partitions([_index(10)] * 3, max_subjects=10_000, min_partitions=8) == [[0], [1], [2]]
    assert plan_partitions([], max_subjects=10, min_partitions=2) == []


def test_a_subject_named_by_two_batches_joins_them_and_every_batch_between() -> None:
    indexes = [_index(1000, ("A",)), _index(1000), _index(1000, ("A", "B")), _index(1000, ("C",)), _index(1000)]
    assert joined_batches(indexes) == [True, True, False, False]
    plan = plan_partitions(indexes, max_subjects=1, min_partitions=5)
    assert plan == [[0, 1, 2], [3], [4]]


def test_merged_ge_results_count_every_part_and_keep_a_sample() -> None:
    def document(elements: int, unexpected: int, sources: list[str]) -> dict:
        return {"success": unexpected == 0, "statistics": {}, "results": [{
            "success": unexpected == 0, "expectation_config": {"type": "expect_x"},
            "result": {"element_count": elements, "unexpected_count": unexpected, "missing_count": 0,
                       "unexpected_percent": 0.0, "unexpected_percent_total": 0.0,
                       "unexpected_index_list": [{"SOURCE": sources}] if sources else [],
                       "partial_unexpected_index_list": [{"SOURCE": sources}] if sources else []}}]}

    merged = merge_gx_results([document(30, 0, []), document(10, 5, [f"k:{i}" for i in range(5)]),
                               document(60, 25, [f"m:{i}" for i in range(20)])])
    result = merged["results"][0]["result"]
    assert (result["element_count"], result["unexpected_count"], result["unexpected_percent"]) == (100, 30, 30.0)
    assert result["unexpected_index_list"][0]["SOURCE"][:6] == ["k:0", "k:1", "k:2", "k:3", "k:4", "m:0"]
    assert len(result["unexpected_index_list"][0]["SOURCE"]) == 20
    assert merged["success"] is False and merged["statistics"]["unsuccessful_expectations"] == 1


def test_stacked_records_refuse_parts_that_disagree_on_a_run_level_value() -> None:
    one = DomainValidation(domain="lb", study=STUDY)
    with pytest.raises(ValueError, match=r"DomainValidation\.domain differs"):
        stack_records([one, dataclasses.replace(one, domain="vs")])


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory):
    """A dirty 12-site study ingested one site per batch, with two cross-site habits planted in the rows:
    the second site delivers a lab row of the first site's subject, the sixth site's LB has a time-point column
    (LBTPTNUM) no other site has, and the last site delivers no LB at all."""
    root = tmp_path_factory.mktemp("partitioned")
    store = LocalStore(root)
    generate(store, study=STUDY, sites=12, subjects=240, seed=4, as_of=AS_OF, formats="csv", profile="dirty")
    sites = sorted(p.name for p in (Path(root) / STUDY).iterdir() if p.is_dir())
    found = [ingest_sites(store, STUDY, [site]) for site in sites]
    first, second = found[0][0], found[1][0]
    stray = first.frames["lb"].head(1).with_columns(
        pl.lit(second.site).alias("DELIVERY_SITEID"), pl.lit(second.frames["lb"]["SOURCE_KEY"][0]).alias("SOURCE_KEY"),
        pl.lit(second.frames["lb"]["SOURCE_ROW"].max() + 1, pl.Int64).alias("SOURCE_ROW"))
    frames = {**second.frames, "lb": pl.concat([second.frames["lb"], stray.select(second.frames["lb"].columns)],
                                               how="diagonal")}
    found[1] = [dataclasses.replace(second, frames=frames)]
    sixth = found[5][0]
    timed = sixth.frames["lb"].with_columns(pl.lit("1").alias("LBTPTNUM"))
    found[5] = [dataclasses.replace(sixth, frames={**sixth.frames, "lb": timed.select(
        "LBTPTNUM", *sixth.frames["lb"].columns)})]
    last = found[-1][0]
    found[-1] = [dataclasses.replace(last, frames={d: f for d, f in last.frames.items() if d != "lb"})]
    return found, stray["USUBJID"][0]


def _tables(ingest, parts, eligibility, comparison, table) -> dict[str, pl.DataFrame]:
    validation = finish_validation(parts)
    rows = eligibility.eligibility if table is None else pl.concat(list(part_frames(table)))
    return {
        "subjects": canonical(comparison.subjects, TABLES["subjects"]),
        "eligibility": canonical(rows, TABLES["eligibility"]),
        # the parts one after the other are the published table, canonical order included
        "eligibility_parts": canonical(rows, TABLES["eligibility"]) if table is None else rows,
        "discrepancies": canonical(comparison.discrepancies, TABLES["discrepancies"]),
        "validation": canonical(validation.findings, TABLES["validation"]),
        "exclusions": validation.exclusions.sort(pl.all()),
        "rejected": validation.rejected.sort(pl.all()),
        "ingestion": ingest.findings.sort(pl.all()),
        "expectations": pl.DataFrame({"x": [str(e) for e in validation.expectations]}),
    }


def test_a_study_audited_in_partitions_gives_the_tables_of_the_whole(batches) -> None:
    found, stray_subject = batches
    files = load_study_files()
    whole = audit_partition(STUDY, found, files, AS_OF)
    whole_records = study_records(STUDY, [whole])
    whole_tables = _tables(*whole_records)
    assert whole_tables["eligibility"].height > 10_000 and whole_tables["discrepancies"].height > 10

    indexes = [batch_index(batch) for batch in found]
    plan = plan_partitions(indexes, max_subjects=50, min_partitions=6)
    assert [0, 1] in [group[:2] for group in plan]  # the stray subject keeps sites 1 and 2 together
    assert len(plan) >= 5
    schemas = study_schemas(indexes)
    results = [audit_partition(STUDY, [found[i] for i in group], files, AS_OF, schemas) for group in plan]
    parted = study_records(STUDY, results)
    parted_tables = _tables(*parted)
    assert parted[4] is not None and len(parted[4].parts) == len(plan) and in_canonical_order(parted[4])

    for name, table in whole_tables.items():
        assert parted_tables[name].equals(table), name
    # what the plants are there for: the stray row is rejected as another site's subject in both
    rejected = whole_tables["validation"].filter(pl.col("CHECK").str.contains("subject_site"))
    assert rejected["USUBJID"].to_list() == [stray_subject]
    assert (parted[0].sites_audited, parted[0].sites_not_audited) == (whole_records[0].sites_audited,
                                                                       whole_records[0].sites_not_audited)
    assert [i.key for i in parted[0].inputs] == [i.key for i in whole_records[0].inputs]
    lb_key = [e for p in parted[1] if p.domain == "lb" for e in p.expectations if "unique_key" in str(e)]
    assert "LBTPTNUM" in str(lb_key)  # the study's natural key has the time point, for every partition


def test_without_the_study_columns_a_partition_would_validate_other_keys(batches) -> None:
    """Why every partition gets the study's columns: the checks' keys follow the columns delivered."""
    found, _ = batches
    last = found[-1][0]
    assert "lb" not in last.frames
    schemas = study_schemas([batch_index(batch) for batch in found])
    alone = audit_partition(STUDY, [found[-1]], load_study_files(), AS_OF, schemas)
    lb = next(p for p in alone.validation if p.domain == "lb")
    assert lb.rows == 0 and lb.expectations  # an empty LB frame with the study's columns: the suite is described


def test_a_packed_batch_carries_the_index_of_its_rows(batches) -> None:
    """The flow fetches a worker's batch index alone (flows.runners.fetch_from_workers): it must be the rows' own."""
    from ingestion.partition import pack_sites, unpack_sites

    found, _ = batches
    for batch in found[:3]:
        packed = pack_sites(batch)
        index = batch_index(batch)
        assert packed.index is not None and packed.index.sites == index.sites
        assert packed.index.subject_ids.equals(index.subject_ids) and packed.index.schemas == index.schemas
        assert batch_index(packed) is packed.index
        without = dataclasses.replace(packed, index=None)  # one packed without it: read from its rows
        assert batch_index(without).subject_ids.equals(index.subject_ids)
        assert [s.frames.keys() for s in unpack_sites(packed)] == [s.frames.keys() for s in batch]


def test_a_partition_task_logs_the_eligibility_rows_it_sends_as_a_part(batches, prefect_harness: None) -> None:
    # one partition of several sends its rows as a Parquet part and empties its record's table: the task's
    # log line once said "0 subject x component rows" on every Dask run
    import logging

    from prefect import flow

    from flows.tasks import audit_partition_task

    found, _ = batches
    files, schemas = load_study_files(), study_schemas([batch_index(batch) for batch in found])

    @flow(name="one-partition")
    def one_partition():
        return audit_partition_task(STUDY, found[2:4], files, AS_OF, schemas, label="sites-x")

    logged: list[str] = []
    keep = logging.Handler(logging.INFO)
    keep.emit = lambda record: logged.append(record.getMessage())  # type: ignore[method-assign]
    task_runs = logging.getLogger("prefect.task_runs")  # Prefect's run loggers do not reach the root's caplog
    task_runs.addHandler(keep)
    try:
        result = one_partition()
    finally:
        task_runs.removeHandler(keep)
    rows = pl.read_parquet(io.BytesIO(result.eligibility_part)).height
    assert result.eligibility.eligibility.height == 0 and rows > 100
    assert any(f" {rows} subject x component rows" in message for message in logged), logged
