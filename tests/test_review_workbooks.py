"""Returned workbooks: the Review sheet of report.xlsx and a site's query workbook, applied with a
receipt; formulas read as text; a workbook for another study or site refused whole; the inbox emptied."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from reporting import publish
from reporting.history import apply_history
from review.catalogue import published_catalogue
from review.imports import apply_workbook
from review.inbox import process_inbox
from review.ledger import read_ledger, review_key
from review.machine import load_machine
from review.workbook import MAX_UNZIPPED, WorkbookRefused, read_returned
from storage import LocalStore
from tests.support.published import seal
from tests.support.review_workbooks import findings_listed_with, returned_review, returned_site_queries
from tests.support.sample_outputs import make_outputs

STUDY = "SZ003"
AS_OF = date(2026, 11, 28)
MACHINE = load_machine()


@pytest.fixture
def run(tmp_path: Path) -> dict:
    """One published run (sample outputs) in a local reports folder, and its findings."""
    store = LocalStore(tmp_path / "reports")
    outputs = make_outputs(n_subjects=60, n_sites=3, as_of=AS_OF)
    from dataclasses import replace

    outputs = replace(outputs, discrepancies=apply_history(outputs.discrepancies, store, study=STUDY, as_of=AS_OF))
    publish(outputs, store, f"{STUDY}/{AS_OF.isoformat()}")
    seal(store, f"{STUDY}/{AS_OF.isoformat()}")  # a published night, as a run leaves it
    _, catalogue = published_catalogue(store, STUDY)
    report = store.read_bytes(f"{STUDY}/{AS_OF.isoformat()}/report.xlsx")
    important = catalogue.filter(pl.col("SEVERITY") == "IMPORTANT")["FINDING_ID"].to_list()
    queries = catalogue.filter((pl.col("SEVERITY") == "QUERY") & (pl.col("ORIGIN") == "DISCREPANCY"))
    return {"store": store, "catalogue": catalogue, "report": report, "important": important,
            "query": queries["FINDING_ID"].to_list(), "query_sites": queries["SITEID"].to_list()}


def _apply(run: dict, data: bytes, name: str = "returned.xlsx", **kwargs):
    return apply_workbook(run["store"], STUDY, data, name, run["catalogue"], "the latest run", MACHINE, **kwargs)


def _entries(run: dict) -> pl.DataFrame:
    return read_ledger(run["store"], STUDY, MACHINE.initial).require_intact().entries


def test_the_review_sheet_comes_back_as_actions_with_a_receipt(run: dict) -> None:
    first, second = run["important"][:2]
    data = returned_review(run["report"], {first: ("confirm_deviation", "confirmed on site visit", "carol"),
                                           second: ("ACKNOWLEDGE", None, "dan")})
    receipt = _apply(run, data, "report-carol.xlsx")
    assert receipt.status == "APPLIED" and receipt.kind == "REVIEW"
    assert [(r["finding_id"], r["action"]) for r in receipt.applied] == [(first, "CONFIRM_DEVIATION"),
                                                                        (second, "ACKNOWLEDGE")]
    entries = _entries(run)
    assert entries["BY"].to_list() == ["carol", "dan"]
    assert entries["VIA"][0].startswith("workbook report-carol.xlsx row ")
    saved = json.loads(run["store"].read_bytes(receipt.key))
    assert saved["applied"] == receipt.applied and saved["sha256"] == receipt.sha256
    assert receipt.without_decision == receipt.rows - 2


def test_a_refused_row_applies_nothing_and_the_receipt_says_why(run: dict) -> None:
    good, other = run["important"][:2]
    query = run["query"][0]
    data = returned_review(run["report"], {
        good: ("CLOSE", None, "carol"),
        query: ("CONFIRM_DEVIATION", None, "carol"),  # a QUERY finding cannot be confirmed
        other: ("NOT_A_DEVIATION", None, "carol"),  # needs a text
    })
    receipt = _apply(run, data)
    assert receipt.status == "PARTLY_APPLIED"
    assert [r["finding_id"] for r in receipt.applied] == [good]
    reasons = {r["finding_id"]: r["reason"] for r in receipt.refused}
    assert reasons[query] == f"CONFIRM_DEVIATION applies only to IMPORTANT findings; {query} is QUERY"
    assert reasons[other] == "NOT_A_DEVIATION needs a text (a reason or an answer)"
    assert _entries(run)["FINDING_ID"].to_list() == [good]


def test_formulas_are_read_as_their_text_never_as_a_value(run: dict) -> None:
    first, second = run["important"][:2]
    rows = read_returned(returned_review(run["report"], {})).rows.with_row_index()
    at = {finding: i for i, finding in rows.select("index", "FINDING_ID").iter_rows()}
    data = returned_review(run["report"], {first: ("CLOSE", None, "carol"), second: ("CLOSE", "y", "carol")},
                           formulas={(at[first], "TEXT"): '=HYPERLINK("http://evil.example","click")',
                                     (at[second], "DECISION"): '=IF(1,"CLOSE","")'})
    receipt = _apply(run, data)
    assert [r["finding_id"] for r in receipt.applied] == [first]
    assert _entries(run)["TEXT"].to_list() == ['=HYPERLINK("http://evil.example","click")']  # not "cached"
    assert receipt.refused[0]["reason"] == 'DECISION holds a formula (=IF(1,"CLOSE","")), not a value'


def test_two_rows_for_one_finding_are_both_refused(run: dict) -> None:
    first = run["important"][0]
    sheet = returned_review(run["report"], {first: ("CLOSE", None, "carol")})
    frame = read_returned(sheet).rows
    doubled = pl.concat([frame, frame.filter(pl.col("FINDING_ID") == first).with_columns(pl.lit("ACKNOWLEDGE")
                                                                                         .alias("DECISION"))])
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    doubled.drop([c for c in doubled.columns if c.endswith("_FORMULA") or c == "ROW"]).write_excel(book, "Review")
    book.close()
    receipt = _apply(run, buffer.getvalue())
    assert receipt.applied == [] and len(receipt.refused) == 2
    assert all("one action per finding in one workbook" in r["reason"] for r in receipt.refused)


@pytest.mark.parametrize(("change", "message"), [
    ({"STUDYID": pl.lit("SZ004")}, "this workbook is for study SZ004, not SZ003"),
    ({"STUDYID": pl.lit(None, pl.String)}, "no STUDYID in the workbook"),
])
def test_a_workbook_for_another_study_is_refused_whole(run: dict, change: dict, message: str) -> None:
    data = returned_review(run["report"], {run["important"][0]: ("CLOSE", None, "carol")}, change=change)
    receipt = _apply(run, data)
    assert receipt.status == "REFUSED" and receipt.reason.startswith(message)
    assert receipt.key is None and list(run["store"].list(review_key(STUDY))) == []  # nothing written


def test_a_site_workbook_becomes_site_responses_and_another_sites_is_refused(run: dict) -> None:
    finding, site = run["query"][0], run["query_sites"][0]
    published = run["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    data = returned_site_queries(published, {finding: ("value re-checked, it is right", "Dr Lee")})
    other = next(s for s in ("101", "102", "103") if s != site)
    refused = _apply(run, data, expected_site=other)
    assert refused.reason == f"this workbook holds site {site}'s queries, not site {other}'s"
    assert list(run["store"].list(review_key(STUDY))) == []
    receipt = _apply(run, data, expected_site=site)
    assert receipt.kind == "SITE" and receipt.site == site and receipt.status == "APPLIED"
    entry = _entries(run).row(0, named=True)
    assert (entry["ACTION"], entry["BY"], entry["TEXT"], entry["TO_STATE"]) == (
        "SITE_RESPONSE", f"site {site} (Dr Lee)", "value re-checked, it is right", "ANSWERED")


def test_a_site_answer_to_a_consolidated_query_is_recorded_for_each_finding_it_lists(run: dict) -> None:
    finding, site = run["query"][0], run["query_sites"][0]
    published = run["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    listed = findings_listed_with(published, finding)
    receipt = _apply(run, returned_site_queries(published, {finding: ("all re-checked", "Dr Lee")}),
                     expected_site=site)
    assert receipt.status == "APPLIED" and [a["finding_id"] for a in receipt.applied] == listed
    assert set(_entries(run)["FINDING_ID"]) == set(listed)


def test_a_site_answer_that_names_nobody_is_refused(run: dict) -> None:
    # a user trial: an answer with RESPONDED_BY empty was recorded as by "site 102", which nobody can be held to
    finding, site = run["query"][0], run["query_sites"][0]
    published = run["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    receipt = _apply(run, returned_site_queries(published, {finding: ("all re-checked", "  ")}), expected_site=site)
    assert receipt.applied == [] and receipt.refused
    assert {r["reason"] for r in receipt.refused} == {"RESPONDED_BY is blank: an answer must name who gave it"}
    assert _entries(run).height == 0


def test_a_query_sent_again_shows_the_site_its_earlier_answer(run: dict) -> None:
    # the next night's workbook: the finding is still there, so is its query; the site sees what it said
    from dataclasses import replace

    from contracts.records import ReviewResult
    from review.fold import current_states
    from tests.support.review_workbooks import _sheet

    finding, site = run["query"][0], run["query_sites"][0]
    published = run["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    assert "EARLIER_ANSWER" in _sheet(published, "Queries").columns  # empty before any answer
    # what a monitor works with comes first, side by side (QUERY_TEXT was the 17th column, SITE_RESPONSE the 21st);
    # the round trip below reads the returned workbook by column name
    assert _sheet(published, "Queries").columns[:10] == [
        "QUERY_ID", "SEVERITY", "STATUS", "CHECK_ID", "N_SUBJECTS", "SUBJECTS", "QUERY_TEXT", "EARLIER_ANSWER",
        "SITE_RESPONSE", "RESPONDED_BY"]
    assert _sheet(published, "Queries")["EARLIER_ANSWER"].drop_nulls().to_list() == []
    _apply(run, returned_site_queries(published, {finding: ("=1+2 re-checked", "Dr Lee")}), expected_site=site)
    entries = _entries(run)
    review = ReviewResult(states=current_states(entries, MACHINE), reopened=pl.DataFrame())
    outputs = replace(make_outputs(n_subjects=60, n_sites=3, as_of=AS_OF), review=review)
    from reporting.publish import render_outputs

    files = {f.key: f.data for f in render_outputs(outputs)}
    queries = _sheet(files[f"site_queries/{site}.xlsx"], "Queries")
    row = queries.filter(pl.col("FINDING_IDS").str.contains(finding, literal=True)).row(0, named=True)
    day = entries["AT"][0][:10]
    expected = f'"=1+2 re-checked" (site {site} (Dr Lee), {day})'  # a formula-like answer stays text
    assert row["EARLIER_ANSWER"] == expected  # the answer was recorded for each finding the query lists
    assert (row["SITE_RESPONSE"], row["RESPONDED_BY"]) == (None, None)  # a new answer is the site's to give
    # each finding of the query, in the Detail sheet and the detail CSV, shows the answer recorded for it
    detail = _sheet(files[f"site_queries/{site}.xlsx"], "Detail").filter(pl.col("QUERY_ID") == row["QUERY_ID"])
    assert detail.filter(pl.col("FINDING_ID").is_not_null())["EARLIER_ANSWER"].unique().to_list() == [expected]
    csv = pl.read_csv(files[f"site_queries/detail/{site}.csv"], infer_schema=False)
    assert csv.filter(pl.col("QUERY_ID") == row["QUERY_ID"])["EARLIER_ANSWER"].unique().to_list() == [expected]
    assert queries.filter(~pl.col("FINDING_IDS").str.contains(finding, literal=True))["EARLIER_ANSWER"].null_count() \
        == queries.height - 1


def test_a_site_answer_is_recorded_for_the_findings_left_out_behind_its_query(tmp_path: Path) -> None:
    # an ineligible enrolment is one query (INELIGIBLE_ENROLLED); the IE_MISMATCH on the same criterion is left out
    # of the site's list (reporting.covered). The site's answer must reach it too: before, the important mismatch
    # stayed unanswered in the sponsor's review, with no link to the query that had asked about it
    from dataclasses import replace

    from tests.support.review_workbooks import _sheet

    store = LocalStore(tmp_path / "reports")
    outputs = make_outputs(n_subjects=60, n_sites=3, as_of=AS_OF)
    ineligible = outputs.discrepancies.filter(pl.col("CLASS") == "INELIGIBLE_ENROLLED").row(0, named=True)
    criterion = ineligible["CHECK_ID"].split(".")[0]
    mismatch = pl.DataFrame([{**ineligible, "CHECK_ID": criterion, "CLASS": "IE_MISMATCH", "FINDING_ID": None,
                              "EVIDENCE_HASH": None, "EVIDENCE": f"the site recorded {criterion} as met"}],
                            schema=outputs.discrepancies.schema)
    discrepancies = apply_history(pl.concat([outputs.discrepancies, mismatch]), store, study=STUDY, as_of=AS_OF)
    publish(replace(outputs, discrepancies=discrepancies), store, f"{STUDY}/{AS_OF.isoformat()}")
    seal(store, f"{STUDY}/{AS_OF.isoformat()}")
    _, catalogue = published_catalogue(store, STUDY)
    ids = dict(catalogue.filter(pl.col("USUBJID") == ineligible["USUBJID"])
               .select(pl.col("CLASS"), pl.col("FINDING_ID")).filter(pl.col("CLASS").is_in(
                   ["INELIGIBLE_ENROLLED", "IE_MISMATCH"])).rows())
    site = ineligible["SITEID"]
    published = store.read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    queries = _sheet(published, "Queries")
    assert not queries["FINDING_IDS"].str.contains(ids["IE_MISMATCH"], literal=True).any()  # one query, not two
    asking = queries.filter(pl.col("FINDING_IDS").str.contains(ids["INELIGIBLE_ENROLLED"], literal=True))
    also = _sheet(published, "Also answered")
    assert also.select("QUERY_ID", "USUBJID", "FINDING_ID", "CHECK_ID", "CLASS", "COVERED_BY").rows() == [
        (asking["QUERY_ID"].item(), ineligible["USUBJID"], ids["IE_MISMATCH"], criterion, "IE_MISMATCH",
         ids["INELIGIBLE_ENROLLED"])]
    # a site that works from the CSVs has the same list (its workbook's sheet points there when too long)
    also_csv = pl.read_csv(io.BytesIO(store.read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/also_answered/"
                                                       f"{site}.csv")), infer_schema=False)
    assert also_csv.select("QUERY_ID", "FINDING_ID", "COVERED_BY").rows() == \
        also.select("QUERY_ID", "FINDING_ID", "COVERED_BY").rows()
    others = {o.key.rsplit("/", 1)[-1] for o in store.list(f"{STUDY}/{AS_OF.isoformat()}/site_queries/also_answered")}
    assert others == {f"{site}.csv"}  # only a site with left-out findings has the file
    # the sponsor's Review sheet lists both, each with the query that asks about it
    review = _sheet(store.read_bytes(f"{STUDY}/{AS_OF.isoformat()}/report.xlsx"), "Review")
    asked = {f: (q, by) for f, q, by in review.select("FINDING_ID", "SITE_QUERY", "COVERED_BY").rows()}
    assert asked[ids["IE_MISMATCH"]] == (asking["QUERY_ID"].item(), ids["INELIGIBLE_ENROLLED"])
    assert asked[ids["INELIGIBLE_ENROLLED"]] == (asking["QUERY_ID"].item(), None)
    # and so do `review list` and `review show`, from the run's per-site files: the same link for every finding
    from review.commands import list_findings, show_finding

    _, listed = list_findings(store, STUDY)
    links = {f: (q, by) for f, q, by in listed.select("FINDING_ID", "SITE_QUERY", "COVERED_BY").rows()}
    assert {f: links[f] for f in asked} == asked and sum(q is not None for q, _ in asked.values()) > 3
    shown, _, _ = show_finding(store, STUDY, ids["IE_MISMATCH"])
    assert (shown["SITE_QUERY"], shown["COVERED_BY"]) == (asking["QUERY_ID"].item(), ids["INELIGIBLE_ENROLLED"])
    # the site answers the one query it was sent (Excel keeps the other sheets of the workbook it returns)
    returned = returned_site_queries(published, {ids["INELIGIBLE_ENROLLED"]: ("deviation reported", "Dr Lee")},
                                     keep=published)
    receipt = apply_workbook(store, STUDY, returned, "returned.xlsx", catalogue, "the latest run", MACHINE,
                             expected_site=site)
    assert receipt.status == "APPLIED"
    assert sorted(a["finding_id"] for a in receipt.applied) == sorted(
        [*asking["FINDING_IDS"].item().split(" "), ids["IE_MISMATCH"]])
    entries = read_ledger(store, STUDY, MACHINE.initial).require_intact().entries
    left_out = entries.filter(pl.col("FINDING_ID") == ids["IE_MISMATCH"]).row(0, named=True)
    assert (left_out["ACTION"], left_out["TEXT"], left_out["TO_STATE"]) == ("SITE_RESPONSE", "deviation reported",
                                                                           "ANSWERED")
    assert left_out["VIA"] == (f"site workbook returned.xlsx row {asking_row(queries, asking)} (the answer to query "
                               f"{asking['QUERY_ID'].item()}, for a finding its Also answered sheet lists under it)")
    # a workbook returned without that sheet (a site that copied the Queries sheet alone) answers the listed ones
    bare = returned_site_queries(published, {ids["INELIGIBLE_ENROLLED"]: ("deviation reported again", "Dr Lee")})
    again = apply_workbook(store, STUDY, bare, "bare.xlsx", catalogue, "the latest run", MACHINE, expected_site=site)
    assert again.status == "APPLIED" and again.notes == []
    assert ids["IE_MISMATCH"] not in {a["finding_id"] for a in again.applied}
    # and one whose Also answered sheet lost its columns says so in its receipt (the answers are not all recorded)
    from tests.support.review_workbooks import _write

    third_answer = {ids["INELIGIBLE_ENROLLED"]: ("third answer", "Dr Lee")}
    filled = _sheet(returned_site_queries(published, third_answer), "Queries")
    renamed = _write(filled, "Queries", others={"Also answered": also.rename({"FINDING_ID": "ID"})})
    third = apply_workbook(store, STUDY, renamed, "renamed.xlsx", catalogue, "the latest run", MACHINE,
                           expected_site=site)
    assert third.status == "APPLIED" and ids["IE_MISMATCH"] not in {a["finding_id"] for a in third.applied}
    assert third.notes == ["the Also answered sheet has no QUERY_ID and FINDING_ID columns (a note, or columns "
                           "renamed): each answer was recorded for the findings its query lists only"]
    assert "the Also answered sheet has no QUERY_ID" in third.line()


def asking_row(queries: pl.DataFrame, asking: pl.DataFrame) -> int:
    """The Excel row of the query `asking` on the Queries sheet `queries` (the header is row 1)."""
    return queries["QUERY_ID"].to_list().index(asking["QUERY_ID"].item()) + 2


def test_an_also_answered_sheet_cannot_make_one_finding_answered_twice_nor_crash_the_import(run: dict) -> None:
    # helper-25's review: a Queries sheet with a FINDING_ID column beside FINDING_IDS made the import raise (and the
    # inbox stall night after night); a finding listed by a query and on Also answered refused both answers
    from tests.support.review_workbooks import _sheet, _write

    finding, site = run["query"][0], run["query_sites"][0]
    published = run["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    listed = findings_listed_with(published, finding)
    queries = _sheet(returned_site_queries(published, {finding: ("re-checked", "Dr Lee")}), "Queries")
    query = queries.filter(pl.col("FINDING_IDS").str.contains(finding, literal=True))["QUERY_ID"].item()
    other = run["catalogue"].filter((pl.col("SITEID") == site) & ~pl.col("FINDING_ID").is_in(listed))["FINDING_ID"][0]
    also = pl.DataFrame({"QUERY_ID": [query, query, query, query], "FINDING_ID": [listed[0], other, other, " "]})
    tampered = _write(queries.with_columns(pl.lit("F-X").alias("FINDING_ID"), pl.lit("x").alias("_ID")), "Queries",
                      others={"Also answered": also})
    receipt = _apply(run, tampered, expected_site=site)
    assert receipt.status == "APPLIED", receipt.refused
    assert sorted(a["finding_id"] for a in receipt.applied) == sorted([*listed, other])


def test_a_site_workbook_of_one_row_per_finding_is_still_read(run: dict) -> None:
    """Workbooks published before queries were consolidated name one FINDING_ID per row."""
    from tests.support.review_workbooks import _sheet, _write

    finding, site = run["query"][0], run["query_sites"][0]
    published = run["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    answered = _sheet(returned_site_queries(published, {finding: ("checked", "Dr Lee")}), "Queries")
    per_finding = (answered.with_columns(pl.col("FINDING_IDS").str.split(" ").alias("FINDING_ID"))
                   .explode("FINDING_ID").drop("FINDING_IDS")
                   .with_columns(pl.when(pl.col("FINDING_ID") == finding).then(pl.col("SITE_RESPONSE"))
                                 .alias("SITE_RESPONSE")))
    receipt = _apply(run, _write(per_finding, "Queries"), expected_site=site)
    assert receipt.status == "APPLIED" and [a["finding_id"] for a in receipt.applied] == [finding]


def test_a_site_workbook_with_a_row_of_another_site_refuses_that_row_or_the_whole_book(run: dict) -> None:
    finding, site = run["query"][0], run["query_sites"][0]
    published = run["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    mixed = returned_site_queries(published, {finding: ("answer", "Dr Lee")},
                                  change={"SITEID": pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("999"))
                                          .otherwise(pl.col("SITEID"))})
    receipt = _apply(run, mixed)
    assert receipt.status == "REFUSED" and "holds one site's queries" in receipt.reason


def test_the_same_workbook_is_not_applied_twice(run: dict) -> None:
    data = returned_review(run["report"], {run["important"][0]: ("ACKNOWLEDGE", None, "carol")})
    first = _apply(run, data)
    again = _apply(run, data)
    assert first.status == "APPLIED" and again.status == "REFUSED"
    assert again.reason == f"this workbook was applied before (receipt {first.key})"
    assert _entries(run).height == 1


def test_a_blank_evidence_hash_refuses_the_row(run: dict) -> None:
    first = run["important"][0]
    data = returned_review(run["report"], {first: ("ACKNOWLEDGE", None, "carol")},
                           change={"EVIDENCE_HASH": pl.lit(None, pl.String)})
    receipt = _apply(run, data)
    assert receipt.refused[0]["reason"] == "EVIDENCE_HASH is blank: the row cannot say which evidence was reviewed"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "message"), [
    (b"FINDING_ID,DECISION\n", "not an .xlsx workbook (not a zip archive)"),
    (_zip({"hello.txt": b"hi"}), "not an .xlsx workbook (no xl/workbook.xml)"),
    (_zip({"xl/workbook.xml": b"<x/>", "big": b"\0" * (MAX_UNZIPPED + 1)}), "refused as a possible zip bomb"),
])
def test_what_is_not_a_workbook_of_the_audit_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(WorkbookRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_returned(data)


def test_a_workbook_without_the_review_columns_is_refused(run: dict) -> None:
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    pl.DataFrame({"FINDING_ID": ["x"], "DECISION": ["CLOSE"]}).write_excel(book, "Review")
    book.close()
    with pytest.raises(WorkbookRefused, match="lacks the column"):
        read_returned(buffer.getvalue())
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    pl.DataFrame({"FINDING_ID": ["x"], "DECISION": ["CLOSE"]}).write_excel(book, "Data")
    book.close()
    with pytest.raises(WorkbookRefused, match="no Review sheet"):
        read_returned(buffer.getvalue())


def test_the_inbox_is_applied_and_emptied_with_a_receipt_for_everything(run: dict) -> None:
    store = run["store"]
    finding, site = run["query"][0], run["query_sites"][0]
    store.write_bytes(review_key(STUDY, "inbox", "review-carol.xlsx"),
                      returned_review(run["report"], {run["important"][0]: ("ACKNOWLEDGE", None, "carol")}))
    published = store.read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    answers = returned_site_queries(published, {finding: ("checked", "Dr Lee")})
    wrong = next(s for s in ("101", "102", "103") if s != site)
    store.write_bytes(review_key(STUDY, "inbox", site, "answers.xlsx"), answers)
    store.write_bytes(review_key(STUDY, "inbox", wrong, "answers.xlsx"),  # dropped in the wrong folder
                      returned_site_queries(published, {finding: ("checked again", "Dr Lee")}))
    store.write_bytes(review_key(STUDY, "inbox", "notes.txt"), b"hello")
    receipts = process_inbox(store, STUDY, run["catalogue"], "tonight's run", MACHINE)
    outcome = {(r.workbook, r.site): (r.status, r.reason) for r in receipts}
    assert outcome[("review-carol.xlsx", None)] == ("APPLIED", None)
    assert outcome[("answers.xlsx", site)] == ("APPLIED", None)
    assert outcome[("answers.xlsx", None)] == ("REFUSED", f"this workbook holds site {site}'s queries, not site "
                                                          f"{wrong}'s")
    assert outcome[("notes.txt", None)] == ("REFUSED", "not an .xlsx workbook")
    assert list(store.list(review_key(STUDY, "inbox"))) == []
    assert len(list(store.list(review_key(STUDY, "processed")))) == 4
    assert len(list(store.list(review_key(STUDY, "receipts")))) == 4
    listed = findings_listed_with(published, finding)  # the site answered the query that lists the finding
    entries = _entries(run)
    assert sorted(entries["ACTION"].to_list()) == ["ACKNOWLEDGE", *["SITE_RESPONSE"] * len(listed)]
    assert sorted(entries.filter(pl.col("ACTION") == "SITE_RESPONSE")["FINDING_ID"].to_list()) == sorted(listed)


def test_a_site_answer_to_a_data_problem_its_own_correction_resolved_tonight_is_kept(run: dict) -> None:
    """helper-45: a site fixed a value and answered its query in the same cycle; the next night the answer to the
    data-quality finding the fix resolved was refused as an unknown finding, and the site's explanation lost."""
    from review.night import answerable

    store = run["store"]
    validation = pl.read_parquet(io.BytesIO(store.read_bytes(f"{STUDY}/{AS_OF.isoformat()}/validation.parquet")))
    discrepancies = pl.read_parquet(io.BytesIO(store.read_bytes(f"{STUDY}/{AS_OF.isoformat()}/discrepancies.parquet")))
    gone = validation.filter(pl.col("FINDING_ID").is_not_null() & pl.col("SITEID").is_not_null()).head(1)
    finding, site = gone["FINDING_ID"][0], gone["SITEID"][0]
    published = store.read_bytes(f"{STUDY}/{AS_OF.isoformat()}/site_queries/{site}.xlsx")
    data = returned_site_queries(published, {finding: ("value corrected in the new delivery", "Dr Lee")})
    tonight = validation.filter(pl.col("FINDING_ID") != finding)  # the site's correction resolved it
    refused = apply_workbook(store, STUDY, data, "before.xlsx", answerable(discrepancies, tonight, None), "tonight",
                             MACHINE)
    assert finding in {r["finding_id"] for r in refused.refused}
    receipt = apply_workbook(store, STUDY, data, "after.xlsx", answerable(discrepancies, tonight, gone), "tonight",
                             MACHINE)
    assert finding in {r["finding_id"] for r in receipt.applied}
    assert finding not in {r["finding_id"] for r in receipt.refused}
    entry = _entries(run).filter(pl.col("FINDING_ID") == finding).row(0, named=True)
    assert (entry["ACTION"], entry["TEXT"]) == ("SITE_RESPONSE", "value corrected in the new delivery")
