"""What the outputs say of the review: the review columns, DV (confirmed and not yet reviewed), site query
lists without settled findings, the Review sheet's drop-downs, the backlog and tonight's reopenings; and
what a night does with the ledger (reopen on new evidence, nothing written on a re-run or a broken ledger)."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from contracts import is_open
from reporting import render_outputs
from reporting.assemble import review_manifest, with_review
from reporting.review_summary import (
    backlog_by_site,
    backlog_by_state_and_age,
    listed_apart,
    reopened_tonight,
    review_backlog,
)
from review.append import append_actions
from review.catalogue import catalogue_of
from review.ledger import object_key, read_ledger, review_key
from review.machine import load_machine
from review.night import review_night
from review.proposals import proposals
from storage import LocalStore
from tests.support.published import seal
from tests.support.sample_outputs import make_outputs

STUDY = "SZ003"
AS_OF = date(2026, 11, 28)
MACHINE = load_machine()


@pytest.fixture
def night(tmp_path: Path) -> dict:
    """Sample outputs, a local reports store, and a few decisions in the ledger."""
    store = LocalStore(tmp_path / "reports")
    outputs = make_outputs(n_subjects=80, n_sites=3, as_of=AS_OF)
    disc = outputs.discrepancies.with_columns(pl.lit("NEW").alias("STATUS"), pl.lit(AS_OF.isoformat())
                                              .alias("FIRST_SEEN"), pl.lit(0, pl.Int64).alias("DAYS_OPEN"))
    outputs = replace(outputs, discrepancies=disc)
    important = disc.filter(pl.col("SEVERITY") == "IMPORTANT")["FINDING_ID"].to_list()
    query = disc.filter(pl.col("SEVERITY") == "QUERY")["FINDING_ID"].to_list()
    catalogue = catalogue_of(disc, outputs.validation)

    def act(rows: list[tuple[str, str, str | None]]) -> None:
        outcome = append_actions(store, STUDY, proposals([{"FINDING_ID": f, "ACTION": a, "BY": "alice", "TEXT": t}
                                                          for f, a, t in rows]), catalogue, MACHINE, "tonight")
        assert outcome.refused.height == 0

    act([(important[0], "CONFIRM_DEVIATION", None), (important[1], "NOT_A_DEVIATION", "lab error"),
         (important[2], "CONFIRM_DEVIATION", None), (important[3], "ACKNOWLEDGE", None), (query[0], "CLOSE", None),
         (query[1], "NOT_A_DEVIATION", "the site is right")])
    act([(important[2], "CLOSE", "reported to the IRB")])  # a confirmed deviation, closed: still a deviation
    return {"store": store, "outputs": outputs, "important": important, "query": query, "catalogue": catalogue}


def _reviewed(night: dict, as_of: date = AS_OF):
    outputs = night["outputs"]
    result = review_night(outputs.discrepancies, outputs.validation, night["store"], study=STUDY, as_of=as_of)
    disc, validation = with_review(outputs.discrepancies, outputs.validation, result)
    return replace(outputs, discrepancies=disc, validation=validation, review=result), result


def test_the_outputs_carry_the_review_state_and_dv_what_the_review_says(night: dict) -> None:
    outputs, _ = _reviewed(night)
    files = {f.key: f.data for f in render_outputs(outputs)}
    disc = pl.read_parquet(io.BytesIO(files["discrepancies.parquet"]))
    state = dict(zip(disc["FINDING_ID"], disc["REVIEW_STATE"], strict=True))
    imp, query = night["important"], night["query"]
    assert [state[f] for f in imp[:4]] == ["CONFIRMED", "NOT_A_DEVIATION", "CLOSED", "ACKNOWLEDGED"]
    assert disc.filter(pl.col("FINDING_ID") == imp[1])["LAST_TEXT"].to_list() == ["lab error"]
    dv = pl.read_parquet(io.BytesIO(files["dv.parquet"]))
    marks = dict(zip(dv["FINDING_ID"], dv["DVREVIEW"], strict=True))
    assert marks[imp[0]] == "CONFIRMED" and marks[imp[2]] == "CONFIRMED"  # closed after its confirmation
    assert marks[imp[3]] == "NOT YET REVIEWED" and imp[1] not in marks  # judged not a deviation
    assert dv.height == len(imp) - 1 and set(marks.values()) == {"CONFIRMED", "NOT YET REVIEWED"}
    queries = pl.concat([pl.read_csv(io.BytesIO(data), infer_schema=False) for key, data in files.items()
                         if key.startswith("site_queries/") and key.endswith(".csv") and key.count("/") == 1])
    listed = queries["FINDING_IDS"].str.split(" ").explode()  # one query per problem lists its findings
    assert not {imp[1], imp[2], query[0], query[1]} & set(listed.to_list())  # settled
    assert {imp[0], imp[3]} <= set(listed.to_list())
    assert listed.n_unique() == listed.len()  # each finding in one query


def test_the_review_sheet_offers_only_the_actions_each_state_allows(night: dict) -> None:
    outputs, _ = _reviewed(night)
    report = next(f.data for f in render_outputs(outputs) if f.key == "report.xlsx")
    import fastexcel

    sheet = fastexcel.read_excel(report).load_sheet("Review", dtypes="string").to_polars()
    settled = {night["important"][1], night["important"][2], night["query"][0], night["query"][1]}
    assert not settled & set(sheet["FINDING_ID"].to_list())
    live = outputs.discrepancies.filter(is_open()).height + outputs.validation.height
    assert sheet.height == live - len(settled)
    assert {"DECISION", "TEXT", "REVIEWER", "EVIDENCE_HASH"} <= set(sheet.columns)
    with zipfile.ZipFile(io.BytesIO(report)) as archive:
        xml = archive.read("xl/worksheets/sheet2.xml").decode()  # the second sheet: Review
    rules = [(column, first, last or first, choices) for column, first, last, choices in re.findall(
        r'<dataValidation type="list"[^>]*sqref="([A-Z]+)(\d+)(?::[A-Z]+(\d+))?"[^>]*><formula1>"([^<]*)"</formula1>',
        xml)]
    assert rules and {column for column, _, _, _ in rules} == {"T"}  # DECISION is column T
    covered = sum(int(last) - int(first) + 1 for _, first, last, _ in rules)
    assert covered == sheet.height
    for _, first, last, choices in rules:
        rows = sheet.slice(int(first) - 2, int(last) - int(first) + 1)
        state, = set(rows["REVIEW_STATE"].to_list())
        important = set(rows["SEVERITY"].to_list()) == {"IMPORTANT"}
        allowed = [a for a in MACHINE.allowed(state) if a != "CONFIRM_DEVIATION" or important]
        assert choices.split(",") == allowed


def test_a_review_sheet_too_long_to_write_is_its_pointer_without_drop_downs(night: dict, monkeypatch) -> None:
    # the dirty benchmark's night: 130,000 open findings; the sheet says where to decide instead
    import importlib

    import fastexcel

    publish_module = importlib.import_module("reporting.publish")  # the package exports a function of that name
    outputs, _ = _reviewed(night)
    monkeypatch.setattr(publish_module, "MAX_SHEET_ROWS", 3)
    report = next(f.data for f in render_outputs(outputs) if f.key == "report.xlsx")
    sheet = fastexcel.read_excel(report).load_sheet("Review", dtypes="string").to_polars()
    assert sheet.columns == ["NOTE"] and sheet.height == 1
    assert "'screening-audit review list'" in sheet["NOTE"][0]
    with zipfile.ZipFile(io.BytesIO(report)) as archive:
        assert "dataValidation" not in archive.read("xl/worksheets/sheet2.xml").decode()


def test_backlog_reopenings_and_the_list_apart_are_plain_tables(night: dict) -> None:
    outputs, _ = _reviewed(night)
    backlog = review_backlog(outputs)
    assert backlog.columns == ["REVIEW_STATE", "AGE_BUCKET", "SITEID", "N"]
    assert set(backlog["REVIEW_STATE"].to_list()) <= {"UNREVIEWED", "ACKNOWLEDGED", "CONFIRMED"}
    live = outputs.discrepancies.filter(is_open()).height + outputs.validation.height
    assert backlog["N"].sum() == live - 4  # everything present tonight but the four settled findings
    by_state = backlog_by_state_and_age(backlog)
    assert by_state.columns == ["REVIEW_STATE", "0-7 days", "8-14 days", "15-30 days", "31-90 days", "over 90 days",
                                "TOTAL"]
    assert by_state.filter(pl.col("REVIEW_STATE") == "CONFIRMED")["TOTAL"].to_list() == [1]
    assert backlog_by_site(backlog)["TOTAL"].sum() == backlog["N"].sum()
    apart = listed_apart(outputs)
    assert set(apart["FINDING_ID"].to_list()) == {night["important"][1], night["query"][1]}
    assert reopened_tonight(outputs).height == 0


def test_changed_evidence_reopens_a_settled_finding_once_and_the_report_says_so(night: dict) -> None:
    changed = {night["important"][1], night["query"][0]}  # not a deviation, closed
    unchanged_confirmed = night["important"][0]
    disc = night["outputs"].discrepancies.with_columns(
        pl.when(pl.col("FINDING_ID").is_in(list(changed | {unchanged_confirmed})))
        .then(pl.lit("new evidence")).otherwise(pl.col("EVIDENCE_HASH")).alias("EVIDENCE_HASH"))
    night["outputs"] = replace(night["outputs"], discrepancies=disc)
    outputs, result = _reviewed(night)
    reopened = read_ledger(night["store"], STUDY, MACHINE.initial).entries.filter(pl.col("ACTION") == "REOPEN")
    assert set(reopened["FINDING_ID"].to_list()) == changed  # a CONFIRMED finding is not settled: not reopened
    assert set(reopened["BY"].to_list()) == {"screening-audit"}
    assert set(result.reopened["FINDING_ID"].to_list()) == changed
    assert set(reopened_tonight(outputs)["FINDING_ID"].to_list()) == changed
    _, again = _reviewed(night)  # the same night again: nothing more to reopen
    assert read_ledger(night["store"], STUDY, MACHINE.initial).entries.filter(pl.col("ACTION") == "REOPEN").height == 2
    assert set(again.reopened["FINDING_ID"].to_list()) == changed  # still "since the last run"
    html = next(f.data for f in render_outputs(outputs) if f.key == "report.html").decode()
    section = html[html.index('<section id="review"'):html.index("Judged not a deviation")]
    assert all(finding in section for finding in changed)
    assert "finding(s) reopened since the last run" in html


def test_a_rerun_of_a_past_night_writes_nothing_to_the_ledger(night: dict) -> None:
    store = night["store"]
    store.write_bytes(f"{STUDY}/2026-12-05/run_manifest.json", b"{}")
    seal(store, f"{STUDY}/2026-12-05")  # a later night is published
    store.write_bytes(review_key(STUDY, "inbox", "late.xlsx"), b"not read on a re-run")
    disc = night["outputs"].discrepancies.with_columns(pl.lit("new evidence").alias("EVIDENCE_HASH"))
    night["outputs"] = replace(night["outputs"], discrepancies=disc)
    before = sorted(info.key for info in store.list(review_key(STUDY)))
    _, result = _reviewed(night)
    assert result.ledger["read_only"] is True and result.ledger["status"] == "VERIFIED"
    assert sorted(info.key for info in store.list(review_key(STUDY))) == before


def test_a_broken_ledger_is_reported_and_not_used(night: dict) -> None:
    store = night["store"]
    store.delete(object_key(STUDY, 1))
    outputs, result = _reviewed(night)
    assert result.ledger["status"] == "INVALID"
    assert any("entries 1 to 6 are missing" in p for p in result.ledger["problems"])
    assert review_manifest(result)["status"] == "INVALID"
    assert outputs.discrepancies["REVIEW_STATE"].null_count() == outputs.discrepancies.height
    files = {f.key: f.data for f in render_outputs(outputs)}
    dv = pl.read_parquet(io.BytesIO(files["dv.parquet"]))
    important = outputs.discrepancies.filter((pl.col("SEVERITY") == "IMPORTANT") & is_open())
    assert dv.height == important.height and set(dv["DVREVIEW"].to_list()) == {"REVIEW UNKNOWN"}
    html = files["report.html"].decode()
    assert "The review ledger fails verification" in html and "entries 1 to 6 are missing" in html


@pytest.mark.parametrize("unreviewed_when_missing", [True, False])
def test_the_review_row_count_is_the_number_of_review_rows_whatever_the_states(unreviewed_when_missing) -> None:
    # the report writes a pointer instead of a Review sheet over 50,000 rows from this count, without the rows
    from reporting.review_sheet import review_row_count, review_rows

    outputs = make_outputs(n_subjects=60, n_sites=3)
    machine = load_machine()
    states = [None, machine.initial, *sorted(machine.settled), *machine.states]
    disc = outputs.discrepancies.with_columns(
        pl.Series("REVIEW_STATE", [states[i % len(states)] for i in range(outputs.discrepancies.height)],
                  dtype=pl.String))
    validation = outputs.validation.with_columns(
        pl.Series("REVIEW_STATE", [states[(i * 7) % len(states)] for i in range(outputs.validation.height)],
                  dtype=pl.String))
    validation = pl.concat([validation, validation.head(3)])  # an identity listed twice counts once
    rows = review_rows(disc, validation, machine, unreviewed_when_missing=unreviewed_when_missing)
    assert 0 < rows.height < disc.height + validation.height
    assert review_row_count(disc, validation, machine, unreviewed_when_missing=unreviewed_when_missing) == rows.height


def test_a_rerun_of_the_night_reports_the_workbooks_its_first_attempt_applied(night: dict) -> None:
    """The receipts a night reports are those saved since the previous night's manifest, not only those this
    process applied: a re-run (which applies nothing twice) used to publish the night with none of them."""
    import json
    from datetime import UTC, datetime

    from review.imports import Receipt, save_receipt

    store = night["store"]
    before, after = datetime(2026, 11, 27, 23, 0, tzinfo=UTC), datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    for name, at in (("review-monday.xlsx", before), ("review-tuesday.xlsx", after)):
        save_receipt(store, Receipt(study=STUDY, workbook=name, sha256=name.ljust(64, "0"), status="APPLIED",
                                    kind="REVIEW", received_at=at.isoformat()), name, at)
    previous = f"{STUDY}/2026-11-27"  # the previous published night, its manifest made between the two
    store.write_bytes(f"{previous}/run_manifest.json",
                      json.dumps({"generated_at": "2026-11-28T00:10:00+00:00", "review": {"entries": 0}}).encode())
    seal(store, previous)
    first = _reviewed(night)[1]
    again = _reviewed(night)[1]  # the same night re-run: nothing left in the inbox
    assert [r["workbook"] for r in first.receipts] == ["review-tuesday.xlsx"]
    assert again.receipts == first.receipts
    assert [w["workbook"] for w in review_manifest(again)["workbooks"]] == ["review-tuesday.xlsx"]


def test_a_resolved_finding_has_no_dv_review_mark_as_it_is_not_in_dv(night: dict) -> None:
    """outputs.md: DV_REVIEW is CONFIRMED or NOT YET REVIEWED "when it is in DV"; DV has no RESOLVED row."""
    gone = night["important"][3]  # acknowledged (NOT YET REVIEWED while present), now gone from the data
    disc = night["outputs"].discrepancies.with_columns(
        pl.when(pl.col("FINDING_ID") == gone).then(pl.lit("RESOLVED")).otherwise(pl.col("STATUS")).alias("STATUS"))
    night["outputs"] = replace(night["outputs"], discrepancies=disc)
    outputs, _ = _reviewed(night)
    marks = dict(zip(outputs.discrepancies["FINDING_ID"], outputs.discrepancies["DV_REVIEW"], strict=True))
    assert marks[gone] is None and marks[night["important"][0]] == "CONFIRMED"
    invalid = replace(outputs.review, ledger={"status": "INVALID"})
    broken = with_review(outputs.discrepancies, outputs.validation, invalid)
    unknown = dict(zip(broken[0]["FINDING_ID"], broken[0]["DV_REVIEW"], strict=True))
    assert unknown[gone] is None and unknown[night["important"][0]] == "REVIEW UNKNOWN"


def test_a_validation_finding_is_listed_for_review_under_its_check_not_the_generic_expectation() -> None:
    """review list and the Review sheet said `expect_column_values_to_be_in_set` on every unit finding."""
    validation = pl.DataFrame({"FINDING_ID": ["V-1", "V-2"], "SITEID": ["101", "101"],
                               "EXPECTATION": ["expect_column_values_to_be_in_set"] * 2,
                               "CHECK": ["LB.unit_known.LBORRESU", None], "MESSAGE": ["m", "m"]})
    assert catalogue_of(None, validation)["CHECK_ID"].to_list() == [
        "LB.unit_known.LBORRESU", "expect_column_values_to_be_in_set"]  # a finding without a check keeps the type
    assert catalogue_of(None, validation.drop("CHECK"))["CHECK_ID"].to_list() == [
        "expect_column_values_to_be_in_set"] * 2


def test_the_report_counts_a_returned_workbooks_rows_and_findings_apart() -> None:
    # a user trial: the command's receipt said "4 row(s) applied (9 findings ...)", the report "9 row(s) applied"
    from reporting.html import receipt_line

    applied = [{"row": row, "finding_id": f"D-{i}"} for i, row in enumerate([2, 2, 2, 3, 4, 4, 4, 4, 5])]
    refused = [{"row": 6, "finding_id": f"D-R{i}"} for i in range(28)]  # one unnamed answer to a 28-finding query
    receipt = {"workbook": "102.xlsx", "status": "PARTLY_APPLIED", "applied": applied, "refused": refused}
    assert receipt_line(receipt) == ("102.xlsx: partly applied, 4 row(s) (9 findings) applied, 1 row(s) (28 findings) "
                                     "refused")
    one_each = {**receipt, "applied": applied[:1], "refused": [], "status": "APPLIED"}
    assert receipt_line(one_each) == "102.xlsx: applied, 1 row(s) applied, 0 row(s) refused"


def test_a_rerun_of_a_past_night_keeps_its_markers_so_the_next_night_still_reports_what_came_between(
        night: dict) -> None:
    # a user trial: re-running night 1 after night 2 republished night 1's manifest with the ledger's entries and
    # time of the re-run; re-running night 2 then measured "since the last run" from them and lost the workbooks
    # and reopenings between the two nights
    import json
    from datetime import UTC, datetime

    from review.imports import Receipt, save_receipt

    store = night["store"]
    first_night, second_night = AS_OF, date(2026, 11, 29)

    def publish(as_of: date, result) -> None:
        prefix = f"{STUDY}/{as_of.isoformat()}"
        store.write_bytes(f"{prefix}/run_manifest.json", json.dumps({
            "generated_at": "2026-11-28T00:10:00+00:00", "review": review_manifest(result)}).encode())
        seal(store, prefix)

    def review(as_of: date, now: datetime):
        outputs = night["outputs"]
        return review_night(outputs.discrepancies, outputs.validation, store, study=STUDY, as_of=as_of, now=now)

    one = review(first_night, datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    publish(first_night, one)
    between = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # a workbook applied between the two nights
    save_receipt(store, Receipt(study=STUDY, workbook="between.xlsx", sha256="b" * 64, status="APPLIED",
                                kind="REVIEW", received_at=between.isoformat()), "between.xlsx", between)
    two = review(second_night, datetime(2026, 11, 29, 1, 0, tzinfo=UTC))
    publish(second_night, two)
    assert [r["workbook"] for r in two.receipts] == ["between.xlsx"]
    rerun_one = review(first_night, datetime(2026, 12, 6, 7, 0, tzinfo=UTC))  # a past night: read-only
    assert rerun_one.ledger["read_only"] is True
    assert (rerun_one.ledger["since_entries"], rerun_one.ledger["since_at"]) == (
        one.ledger["since_entries"], one.ledger["since_at"])
    publish(first_night, rerun_one)
    rerun_two = review(second_night, datetime(2026, 12, 6, 7, 5, tzinfo=UTC))
    assert [r["workbook"] for r in rerun_two.receipts] == ["between.xlsx"]


def test_a_past_night_run_for_the_first_time_takes_the_markers_of_the_night_before(night: dict) -> None:
    # helper-30: a night never published before, run after a later one (a backfill), recorded tonight's markers,
    # and the later night's re-run then lost what came between
    import json
    from datetime import UTC, datetime

    store, outputs = night["store"], night["outputs"]

    def review(as_of: date, now: datetime):
        return review_night(outputs.discrepancies, outputs.validation, store, study=STUDY, as_of=as_of, now=now)

    def publish(as_of: date, result) -> None:
        prefix = f"{STUDY}/{as_of.isoformat()}"
        store.write_bytes(f"{prefix}/run_manifest.json", json.dumps({"review": review_manifest(result)}).encode())
        seal(store, prefix)

    first = review(AS_OF, datetime(2026, 11, 28, 1, 0, tzinfo=UTC))
    publish(AS_OF, first)
    publish(date(2026, 11, 30), review(date(2026, 11, 30), datetime(2026, 11, 30, 1, 0, tzinfo=UTC)))
    backfill = review(date(2026, 11, 29), datetime(2026, 12, 6, 7, 0, tzinfo=UTC))
    assert backfill.ledger["read_only"] is True
    assert (backfill.ledger["since_entries"], backfill.ledger["since_at"]) == (
        first.ledger["since_entries"], first.ledger["since_at"])


def test_a_workbook_imported_in_the_second_a_night_marked_is_reported_by_the_next_night(night: dict) -> None:
    """Receipt keys are stamped to the second. A `review import` saved in the very second a night marked, after
    that night had listed its receipts, was reported by no night ("the same second counts as before")."""
    import json
    from datetime import UTC, datetime

    from review.imports import Receipt, save_receipt

    store = night["store"]
    first_night, second_night = date(2026, 12, 1), date(2026, 12, 2)
    marked = datetime(2026, 12, 1, 1, 0, 0, tzinfo=UTC)

    def receipt(name: str, at: datetime) -> None:
        save_receipt(store, Receipt(study=STUDY, workbook=name, sha256=name[0] * 64, status="APPLIED",
                                    kind="REVIEW", received_at=at.isoformat()), name, at)

    def review(as_of: date, now: datetime):
        outputs = night["outputs"]
        return review_night(outputs.discrepancies, outputs.validation, store, study=STUDY, as_of=as_of, now=now)

    receipt("before.xlsx", marked)  # saved in the marker's second, before the night listed the receipts
    one = review(first_night, marked)
    assert "before.xlsx" in [r["workbook"] for r in one.receipts]
    assert [key.rsplit("/", 1)[-1].split("-")[-1] for key in one.ledger["since_receipts"]] == ["before.xlsx.json"]
    prefix = f"{STUDY}/{first_night.isoformat()}"
    store.write_bytes(f"{prefix}/run_manifest.json", json.dumps({
        "generated_at": marked.isoformat(), "review": review_manifest(one)}).encode())
    seal(store, prefix)
    receipt("after.xlsx", marked.replace(microsecond=600_000))  # the same second, once the night had listed
    two = review(second_night, datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
    assert [r["workbook"] for r in two.receipts] == ["after.xlsx"]  # and not before.xlsx a second time


def test_a_receipt_saved_after_the_marker_is_reported_by_one_night_only(night: dict) -> None:
    """helper-35: with the marker taken before the listing, a receipt stamped a second later but saved before the
    listing was reported tonight, and again by the next night."""
    import json
    from datetime import UTC, datetime, timedelta

    from review.imports import Receipt, save_receipt

    store = night["store"]
    marked = datetime(2026, 12, 3, 1, 0, 0, tzinfo=UTC)
    save_receipt(store, Receipt(study=STUDY, workbook="race.xlsx", sha256="r" * 64, status="APPLIED", kind="REVIEW",
                                received_at=marked.isoformat()), "race.xlsx", marked + timedelta(seconds=1))

    def review(as_of: date, now: datetime):
        outputs = night["outputs"]
        return review_night(outputs.discrepancies, outputs.validation, store, study=STUDY, as_of=as_of, now=now)

    one = review(date(2026, 12, 3), marked)
    prefix = f"{STUDY}/2026-12-03"
    store.write_bytes(f"{prefix}/run_manifest.json", json.dumps({
        "generated_at": marked.isoformat(), "review": review_manifest(one)}).encode())
    seal(store, prefix)
    two = review(date(2026, 12, 4), datetime(2026, 12, 4, 1, 0, tzinfo=UTC))
    nights = [[r["workbook"] for r in result.receipts].count("race.xlsx") for result in (one, two)]
    assert nights == [0, 1]


def test_a_night_marked_before_receipts_were_named_keeps_its_second_when_re_run(night: dict) -> None:
    """helper-35: a re-run of a night published before this version wrote an empty list of named receipts, and the
    re-run of the next night then listed that night's own receipt of its marker's second again."""
    import json
    from datetime import UTC, datetime

    from review.imports import Receipt, save_receipt

    store = night["store"]
    first, second = date(2026, 12, 7), date(2026, 12, 8)
    marked = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)
    save_receipt(store, Receipt(study=STUDY, workbook="inbox.xlsx", sha256="i" * 64, status="APPLIED", kind="REVIEW",
                                received_at=marked.isoformat()), "inbox.xlsx", marked)

    def publish(as_of: date, review_section: dict) -> None:
        prefix = f"{STUDY}/{as_of.isoformat()}"
        store.write_bytes(f"{prefix}/run_manifest.json", json.dumps({
            "generated_at": marked.isoformat(), "review": review_section}).encode())
        seal(store, prefix)

    def review(as_of: date, now: datetime):
        outputs = night["outputs"]
        return review_night(outputs.discrepancies, outputs.validation, store, study=STUDY, as_of=as_of, now=now)

    # night 1 as an older version published it: its marker's second counted as before, nothing named
    publish(first, {"entries": 0, "since_entries": 0, "since_at": marked.isoformat()})
    two = review(second, datetime(2026, 12, 8, 1, 0, tzinfo=UTC))
    publish(second, review_manifest(two))
    assert "inbox.xlsx" not in [r["workbook"] for r in two.receipts]
    rerun_one = review(first, datetime(2026, 12, 9, 7, 0, tzinfo=UTC))  # read-only: a later night is published
    assert "since_receipts" not in rerun_one.ledger
    publish(first, review_manifest(rerun_one))
    rerun_two = review(second, datetime(2026, 12, 9, 7, 5, tzinfo=UTC))
    assert "inbox.xlsx" not in [r["workbook"] for r in rerun_two.receipts]
