"""`screening-audit review ...` as a user runs it (the installed CLI, a subprocess): every bad input gives
one line and exit 2 and writes nothing; list, show, add, import and export do what they say."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from reporting import publish
from reporting.history import apply_history
from review.catalogue import published_catalogue
from storage import LocalStore
from tests.support.published import seal
from tests.support.review_workbooks import returned_review
from tests.support.sample_outputs import make_outputs

STUDY = "SZ003"
AS_OF = date(2026, 11, 28)
CLI = str(Path(sys.executable).with_name("screening-audit"))
NOTE = "V-0123456789abcdef"
GONE = "V-fedcba9876543210"  # a data-quality finding the night resolved (its validation_resolved table)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("review-cli") / "reports"
    store = LocalStore(root)
    outputs = make_outputs(n_subjects=60, n_sites=3, as_of=AS_OF)
    note = outputs.validation.head(1).with_columns(  # a manifest setting that was ignored: no review state
        pl.lit(None, pl.String).alias("USUBJID"), pl.lit("ingest.note.encoding_ignored").alias("EXPECTATION"),
        pl.lit(NOTE).alias("FINDING_ID"))
    gone = outputs.validation.head(1).select(
        "STUDYID", "SITEID", "USUBJID", "DOMAIN", "VARIABLE", pl.col("EXPECTATION").alias("CHECK"), "MESSAGE",
        "SOURCE", pl.lit(GONE).alias("FINDING_ID"), pl.lit("2026-11-20").alias("FIRST_SEEN"),
        pl.lit(AS_OF.isoformat()).alias("RESOLVED_ON"), pl.lit(None, pl.String).alias("REVIEW_STATE"))
    outputs = replace(outputs, discrepancies=apply_history(outputs.discrepancies, store, study=STUDY, as_of=AS_OF),
                      validation=pl.concat([outputs.validation, note]), validation_resolved=gone)
    publish(outputs, store, f"{STUDY}/{AS_OF.isoformat()}")
    seal(store, f"{STUDY}/{AS_OF.isoformat()}")  # a published night, as a run leaves it
    _, catalogue = published_catalogue(store, STUDY)
    return {"root": root, "store": store, "catalogue": catalogue,
            "important": catalogue.filter(pl.col("SEVERITY") == "IMPORTANT")["FINDING_ID"].to_list(),
            "query": catalogue.filter(pl.col("SEVERITY") == "QUERY")["FINDING_ID"].to_list()}


def review(reports: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([CLI, "review", *args, "--reports", str(reports["root"]), "--study", STUDY], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _written(reports: dict) -> list[str]:
    return sorted(info.key for info in reports["store"].list(f"{STUDY}/_review"))


def test_add_records_an_action_and_prints_the_transition(reports: dict) -> None:
    finding = reports["important"][0]
    result = review(reports, "add", "--finding", finding, "--action", "acknowledge", "--by", "alice")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"ACKNOWLEDGE on {finding}: UNREVIEWED -> ACKNOWLEDGED")


def test_a_data_quality_finding_the_latest_run_resolved_can_still_be_answered(reports: dict) -> None:
    """The report's "Resolved data quality" sheet lists it (validation_resolved.csv too): a reviewer recording the
    site's answer to it was refused as "not in the latest run", while a returned workbook's answer was kept."""
    table = pl.read_csv(reports["root"] / STUDY / AS_OF.isoformat() / "validation_resolved.csv", infer_schema=False)
    assert table["FINDING_ID"].to_list() == [GONE]
    result = review(reports, "add", "--finding", GONE, "--action", "SITE_RESPONSE", "--by", "Dr Lee",
                    "--text", "value corrected in the new delivery")
    assert result.returncode == 0, result.stderr
    assert f"SITE_RESPONSE on {GONE}" in result.stdout
    shown = review(reports, "show", GONE)
    assert shown.returncode == 0 and "value corrected in the new delivery" in shown.stdout, shown.stderr
    listed = review(reports, "list", "--include-resolved", "--format", "csv")
    assert listed.returncode == 0 and GONE in listed.stdout, listed.stderr
    assert GONE not in review(reports, "list", "--format", "csv").stdout  # gone tonight: listed when asked for


@pytest.mark.parametrize(("args", "message"), [
    (["--finding", "D-0000000000000000", "--action", "CLOSE", "--by", "bob"],
     "error: unknown finding D-0000000000000000: not in the latest run (2026-11-28) nor in the review ledger"),
    (["--finding", "{important1}", "--action", "CLOSE"],
     "error: --by is missing: name the person (or site) taking the action"),
    (["--action", "CLOSE", "--by", "bob"],
     "error: --finding is missing: the FINDING_ID of the finding (see `review list`)"),
    (["--finding", "{important1}", "--by", "bob"],
     "error: --action is missing (one of ACKNOWLEDGE, QUERY_SENT, SITE_RESPONSE, CONFIRM_DEVIATION, NOT_A_DEVIATION, "
     "CLOSE, REOPEN, COMMENT)"),
    (["--finding", "{important1}", "--action", "NOT_A_DEVIATION", "--by", "bob"],
     "error: NOT_A_DEVIATION needs a text (a reason or an answer)"),
    (["--finding", "{important1}", "--action", "REOPEN", "--by", "bob", "--text", "why not"],
     "error: REOPEN is not allowed on {important1} in state UNREVIEWED (allowed: ACKNOWLEDGE, QUERY_SENT, "
     "SITE_RESPONSE, CONFIRM_DEVIATION, NOT_A_DEVIATION, CLOSE, COMMENT)"),
    (["--finding", "{query0}", "--action", "CONFIRM_DEVIATION", "--by", "bob"],
     "error: CONFIRM_DEVIATION applies only to IMPORTANT findings; {query0} is QUERY"),
    # a query's refusal never offers CONFIRM_DEVIATION, which its severity would refuse
    (["--finding", "{query0}", "--action", "REOPEN", "--by", "bob", "--text", "why not"],
     "error: REOPEN is not allowed on {query0} in state UNREVIEWED (allowed: ACKNOWLEDGE, QUERY_SENT, "
     "SITE_RESPONSE, NOT_A_DEVIATION, CLOSE, COMMENT)"),
    (["--finding", "{important1}", "--action", "ESCALATE", "--by", "bob"],
     "error: unknown action ESCALATE (one of ACKNOWLEDGE, QUERY_SENT, SITE_RESPONSE, CONFIRM_DEVIATION, "
     "NOT_A_DEVIATION, CLOSE, REOPEN, COMMENT)"),
    (["--finding", "{important1}", "--action", "COMMENT", "--by", "bob", "--text", "bell\x07"],
     "error: BY or TEXT contains a control character"),
])
def test_a_bad_action_is_one_line_exit_2_and_nothing_written(reports: dict, args: list[str], message: str) -> None:
    values = {"important1": reports["important"][1], "query0": reports["query"][0]}
    before = _written(reports)
    result = review(reports, "add", *[a.format(**values) for a in args])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message.format(**values)]
    assert result.stdout == "" and _written(reports) == before


def test_list_filters_by_state_and_site_in_every_format(reports: dict) -> None:
    finding = reports["important"][2]
    assert review(reports, "add", "--finding", finding, "--action", "CLOSE", "--by", "bob").returncode == 0
    closed = review(reports, "list", "--state", "closed", "--format", "json")
    assert closed.returncode == 0, closed.stderr
    rows = json.loads(closed.stdout)
    assert [(r["FINDING_ID"], r["REVIEW_STATE"], r["REVIEWED_BY"]) for r in rows] == [(finding, "CLOSED", "bob")]
    site = rows[0]["SITEID"]
    listed = pl.read_csv(io.BytesIO(review(reports, "list", "--site", site, "--format", "csv").stdout.encode()),
                         infer_schema=False)
    assert set(listed["SITEID"].to_list()) == {site} and finding in listed["FINDING_ID"].to_list()
    table = review(reports, "list")
    assert table.returncode == 0 and finding in table.stdout and "REVIEW_STATE" in table.stdout
    unknown = review(reports, "list", "--state", "DONE")
    assert unknown.returncode == 2 and unknown.stderr.strip().startswith("error: unknown state DONE (one of ")


def test_show_gives_the_finding_with_its_whole_thread(reports: dict) -> None:
    finding = reports["important"][3]
    for args in (["--action", "ACKNOWLEDGE", "--by", "alice"],
                 ["--action", "COMMENT", "--by", "bob", "--text", "asked the monitor"],
                 ["--action", "CONFIRM_DEVIATION", "--by", "carol", "--text", "per SOP"]):
        assert review(reports, "add", "--finding", finding, *args).returncode == 0
    shown = review(reports, "show", finding)
    assert shown.returncode == 0, shown.stderr
    assert "REVIEW_STATE: CONFIRMED" in shown.stdout and "asked the monitor" in shown.stdout
    assert shown.stdout.index("ACKNOWLEDGE") < shown.stdout.index("COMMENT") < shown.stdout.index("CONFIRM_DEVIATION")
    # the heading explains the column; it says nothing of this thread (read as a statement by a new user)
    assert "OTHER_EVIDENCE is True for an entry made on other evidence than the latest run's" in \
        " ".join(shown.stdout.split())
    unknown = review(reports, "show", "D-ffffffffffffffff")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1


def test_import_applies_a_workbook_and_says_which_rows_were_refused(reports: dict, tmp_path: Path) -> None:
    report = reports["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/report.xlsx")
    good, bad = reports["important"][4], reports["query"][1]
    path = tmp_path / "report-dan.xlsx"
    path.write_bytes(returned_review(report, {good: ("ACKNOWLEDGE", None, "dan"), bad: ("CONFIRM_DEVIATION", None,
                                                                                         "dan")}))
    result = review(reports, "import", str(path))
    assert result.returncode == 4, result.stderr
    assert result.stdout.splitlines()[0].startswith("report-dan.xlsx: 1 row(s) applied, 1 refused, ")
    assert f"({bad}, CONFIRM_DEVIATION): refused: CONFIRM_DEVIATION applies only to IMPORTANT findings" in result.stdout
    assert "receipt: SZ003/_review/receipts/" in result.stdout


def test_import_refuses_another_studys_workbook_writing_nothing(reports: dict, tmp_path: Path) -> None:
    report = reports["store"].read_bytes(f"{STUDY}/{AS_OF.isoformat()}/report.xlsx")
    path = tmp_path / "other.xlsx"
    path.write_bytes(returned_review(report, {reports["important"][5]: ("ACKNOWLEDGE", None, "dan")},
                                     change={"STUDYID": pl.lit("SZ999")}))
    before = _written(reports)
    result = review(reports, "import", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: other.xlsx refused: this workbook is for study SZ999, not SZ003; nothing applied"]
    assert _written(reports) == before
    missing = review(reports, "import", str(tmp_path / "nowhere.xlsx"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_export_writes_the_whole_trail_for_an_inspection(reports: dict, tmp_path: Path) -> None:
    review(reports, "add", "--finding", reports["important"][6], "--action", "ACKNOWLEDGE", "--by", "erin")
    for suffix in ("csv", "parquet"):
        out = tmp_path / f"trail.{suffix}"
        result = review(reports, "export", "--out", str(out))
        assert result.returncode == 0, result.stderr
        trail = pl.read_csv(out, infer_schema=False) if suffix == "csv" else pl.read_parquet(out)
        assert trail["SEQ"].cast(pl.Int64).to_list() == list(range(1, trail.height + 1))
        assert {"FINDING_ID", "ACTION", "BY", "AT", "TEXT", "EVIDENCE_HASH", "PREV_HASH", "ENTRY_HASH", "SITEID",
                "USUBJID"} <= set(trail.columns)
        assert result.stdout.strip() == f"{trail.height} entries written to {out}"
    wrong = review(reports, "export", "--out", str(tmp_path / "trail.xlsx"))
    assert wrong.returncode == 2 and not (tmp_path / "trail.xlsx").exists()


def test_a_listing_piped_without_columns_keeps_each_column_whole(reports: dict) -> None:
    """`review list | less`: a pipe has no width, and Rich folded the table to 80 columns, one letter a line."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run([CLI, "review", "list", "--reports", str(reports["root"]), "--study", STUDY], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "FINDING_ID" in line)
    assert all(name in header for name in ("SITEID", "USUBJID", "CHECK_ID", "SEVERITY", "REVIEW_STATE",
                                          "REVIEWED_BY"))
    assert reports["important"][0] in result.stdout


def test_a_note_is_named_as_such_when_someone_tries_to_review_it(reports: dict) -> None:
    """A user trial: `review show` and `review add` on a note's FINDING_ID (in validation.csv) said it was "not in the
    latest run". It is refused (a note asks nothing), saying why; nothing is written."""
    before = _written(reports)
    for args in (["show", NOTE], ["add", "--finding", NOTE, "--action", "acknowledge", "--by", "alice"]):
        result = review(reports, *args)
        assert result.returncode == 2, result.stdout
        assert f"{NOTE} is a note of the latest run (2026-11-28)" in " ".join(result.stderr.split())
    assert _written(reports) == before
