"""The sponsor's review across nights, end to end, on a moto S3 server and on a local folder.

Night 1 publishes findings. Two reviewers record actions at the same moment through the installed CLI,
a third returns report.xlsx's Review sheet through the inbox, and a site answers its query workbook
(`review import`). Night 2, on the same data, keeps every decision and applies the inbox. Night 3, with
one value changed (the consent date of the subject whose consent followed the first dose), reopens
exactly the settled findings whose evidence changed and resolves the ones that are gone, their
threads kept. Then a ledger entry is edited behind the audit's back: the CLI and night 4 name it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import boto3
import polars as pl
import pytest

from generator import generate
from storage import LocalStore, S3Store
from tests.support.review_workbooks import returned_review, returned_site_queries

STUDY = "SZ003"
NIGHTS = [date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 1)]
CLI = str(Path(sys.executable).with_name("screening-audit"))


def _ids(frame: pl.DataFrame, **where: str) -> list[str]:
    rows = frame.filter(pl.all_horizontal([pl.col(k) == v for k, v in where.items()]))
    return rows["FINDING_ID"].to_list()


class Study:
    """One backend's landing and reports, the CLI environment, and helpers to read what a night published."""

    def __init__(self, kind: str, root: Path, endpoint: str | None) -> None:
        self.kind, self.endpoint = kind, endpoint
        self.env = {**os.environ, "COLUMNS": "200", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        if kind == "s3":
            bucket = f"review-nights-{os.getpid()}"
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
            self.landing_uri, self.reports_uri = f"s3://{bucket}/landing", f"s3://{bucket}/reports"
            self.landing = S3Store(self.landing_uri, endpoint_url=endpoint)
            self.reports = S3Store(self.reports_uri, endpoint_url=endpoint)
            self.env["AWS_ENDPOINT_URL"] = endpoint
        else:
            self.landing_uri, self.reports_uri = str(root / "landing"), str(root / "reports")
            self.landing, self.reports = LocalStore(self.landing_uri), LocalStore(self.reports_uri)

    def night(self, as_of: date):
        from flows.nightly import nightly_audit

        return nightly_audit(landing=self.landing_uri, reports=self.reports_uri, study=STUDY,
                             as_of=as_of.isoformat(), endpoint_url=self.endpoint)

    def table(self, as_of: date, name: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self.reports.read_bytes(f"{STUDY}/{as_of.isoformat()}/{name}.parquet")))

    def published(self, as_of: date, name: str) -> bytes:
        return self.reports.read_bytes(f"{STUDY}/{as_of.isoformat()}/{name}")

    def manifest(self, as_of: date) -> dict:
        return json.loads(self.published(as_of, "run_manifest.json"))

    def review(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([CLI, "review", *args, "--reports", self.reports_uri, "--study", STUDY],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ledger(self) -> pl.DataFrame:
        from review.ledger import read_ledger

        view = read_ledger(self.reports, STUDY, "UNREVIEWED")
        assert view.problems == []
        return view.entries

    def keys(self, folder: str) -> list[str]:
        return [info.key for info in self.reports.list(f"{STUDY}/_review/{folder}")]


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def _change_consent(study: Study, usubjid: str) -> str:
    """Night 3's one changed value: the subject's RFICDTC, one day before its first dose, in the DM file
    the audit used; the delivery's manifest updated as the site would. Returns the new date."""
    inputs = study.manifest(NIGHTS[1])["inputs"]
    site = usubjid.split("-")[1]
    key = next(i["key"] for i in inputs if i["site"] == site and i["domain"] == "DM")
    dm = pl.read_csv(io.BytesIO(study.landing.read_bytes(key)), infer_schema=False)
    start = dm.filter(pl.col("USUBJID") == usubjid)["RFXSTDTC"][0]
    consent = (date.fromisoformat(start) - timedelta(days=1)).isoformat()
    dm = dm.with_columns(pl.when(pl.col("USUBJID") == usubjid).then(pl.lit(consent)).otherwise(pl.col("RFICDTC"))
                         .alias("RFICDTC"))
    data = dm.write_csv(null_value="").encode("utf-8")
    study.landing.write_bytes(key, data)
    folder = key.rsplit("/", 1)[0]
    manifest = json.loads(study.landing.read_bytes(f"{folder}/manifest.json"))
    for entry in manifest["files"]:
        if entry["name"] == "dm.csv":
            entry["sha256"] = hashlib.sha256(data).hexdigest()
    study.landing.write_bytes(f"{folder}/manifest.json", json.dumps(manifest).encode("utf-8"))
    return consent


@pytest.fixture(scope="module", params=["local", "s3"])
def scenario(request, tmp_path_factory, prefect_harness) -> dict:
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    study = Study(request.param, tmp_path_factory.mktemp(f"review-{request.param}"), endpoint)
    generate(study.landing, study=STUDY, sites=3, subjects=40, seed=9, as_of=NIGHTS[0], formats="csv")
    seen: dict = {"study": study}

    # night 1: findings published, nobody has reviewed anything
    study.night(NIGHTS[0])
    first = study.table(NIGHTS[0], "discrepancies")
    subject = first.filter(pl.col("CHECK_ID") == "PC02")["USUBJID"][0]
    ids = {
        "pc01": _ids(first, USUBJID=subject, CHECK_ID="PC01")[0],
        "pc02": _ids(first, USUBJID=subject, CHECK_ID="PC02")[0],
        "control": _ids(first, CHECK_ID="PC05")[0],
        "answered": _ids(first, CHECK_ID="IN07", CLASS="IE_MISMATCH")[0],
    }
    seen.update(ids=ids, subject=subject, night1=first)

    # two reviewers at the same moment, through the CLI
    racers = [study.review("add", "--finding", ids["pc01"], "--action", "NOT_A_DEVIATION", "--by", "alice",
                           "--text", "consent form signed before the draw; EDC date typo"),
              study.review("add", "--finding", ids["pc02"], "--action", "ACKNOWLEDGE", "--by", "bob")]
    seen["racers"] = [_finish(p) for p in racers]

    # a third returns the Review sheet of night 1's workbook through the inbox
    workbook = returned_review(study.published(NIGHTS[0], "report.xlsx"), {
        ids["pc02"]: ("CONFIRM_DEVIATION", "dosed before consent: reported to the IRB", "carol"),
        ids["control"]: ("CLOSE", "age corrected in EDC, next delivery", "carol"),
    })
    study.reports.write_bytes(f"{STUDY}/_review/inbox/review-carol.xlsx", workbook)

    # a site answers one query in its query workbook, imported from the command line
    site = first.filter(pl.col("FINDING_ID") == ids["answered"])["SITEID"][0]
    answered = returned_site_queries(study.published(NIGHTS[0], f"site_queries/{site}.xlsx"),
                                     {ids["answered"]: ("IN07 re-assessed: KPS 90, checklist corrected", "Dr Lee")})
    path = tmp_path_factory.mktemp("returned") / f"queries-{site}.xlsx"
    path.write_bytes(answered)
    seen["site_import"] = _finish(study.review("import", str(path), "--site", site))
    seen["site"] = site

    # night 2, the same data
    study.night(NIGHTS[1])
    seen["night2"] = study.table(NIGHTS[1], "discrepancies")
    seen["ledger2"] = study.ledger()

    # night 3, one value changed
    seen["consent"] = _change_consent(study, subject)
    study.night(NIGHTS[2])
    seen["night3"] = study.table(NIGHTS[2], "discrepancies")
    seen["ledger3"] = study.ledger()
    seen["show_pc02"] = _finish(study.review("show", ids["pc02"]))

    # an entry edited behind the audit's back
    key = f"{STUDY}/_review/ledger/0000000001.json"
    body = json.loads(study.reports.read_bytes(key))
    body["entries"][0]["TEXT"] = (body["entries"][0]["TEXT"] or "") + " (edited)"
    body["entries"][0]["BY"] = "mallory"
    study.reports.write_bytes(key, json.dumps(body, sort_keys=True).encode("utf-8"))
    seen["list_after_edit"] = _finish(study.review("list"))
    study.night(NIGHTS[3])
    seen["night4"] = study.table(NIGHTS[3], "discrepancies")
    return seen


def test_both_reviewers_acting_at_the_same_moment_are_kept(scenario: dict) -> None:
    assert [code for code, _, _ in scenario["racers"]] == [0, 0], [err for _, _, err in scenario["racers"]]
    ledger = scenario["ledger2"]
    first_two = ledger.filter(pl.col("VIA") == "command line").sort("SEQ")
    assert sorted(first_two["BY"].to_list()) == ["alice", "bob"]
    assert sorted(first_two["SEQ"].to_list()) == [1, 2]  # one got entry 1, the other re-read and took entry 2


def test_night_two_applies_the_inbox_and_keeps_every_decision(scenario: dict) -> None:
    ids, night2, study = scenario["ids"], scenario["night2"], scenario["study"]
    state = {row["FINDING_ID"]: (row["REVIEW_STATE"], row["REVIEWED_BY"]) for row in night2.iter_rows(named=True)}
    assert state[ids["pc01"]] == ("NOT_A_DEVIATION", "alice")
    assert state[ids["pc02"]] == ("CONFIRMED", "carol")  # bob's ACKNOWLEDGE, then carol's decision
    assert state[ids["control"]] == ("CLOSED", "carol")
    assert state[ids["answered"]][0] == "ANSWERED"
    assert state[ids["answered"]][1] == f"site {scenario['site']} (Dr Lee)"
    assert scenario["site_import"][0] == 0, scenario["site_import"][2]
    ledger = scenario["ledger2"]
    assert ledger.height == 5 and "REOPEN" not in ledger["ACTION"].to_list()
    # the inbox is empty, the workbook is in processed/, its receipt says what was applied
    assert study.keys("inbox") == []
    assert any(key.endswith("review-carol.xlsx") for key in study.keys("processed"))
    receipts = [json.loads(study.reports.read_bytes(k)) for k in study.keys("receipts") if "review-carol" in k]
    assert [r["status"] for r in receipts] == ["APPLIED"]
    assert {r["finding_id"] for r in receipts[0]["applied"]} == {ids["pc02"], ids["control"]}
    # DV lists the confirmed deviation as such and leaves out the one judged not a deviation
    dv = study.table(NIGHTS[1], "dv")
    assert dv.filter(pl.col("FINDING_ID") == ids["pc02"])["DVREVIEW"].to_list() == ["CONFIRMED"]
    assert ids["pc01"] not in dv["FINDING_ID"].to_list()
    assert set(dv["DVREVIEW"].to_list()) <= {"CONFIRMED", "NOT YET REVIEWED"}
    # the site query lists leave out closed and not-a-deviation findings, not the others
    prefix = f"{STUDY}/{NIGHTS[1].isoformat()}/"
    queries = pl.concat([pl.read_csv(io.BytesIO(study.reports.read_bytes(info.key)), infer_schema=False)
                         for info in study.reports.list(prefix + "site_queries")
                         if info.key.endswith(".csv") and info.key.count("/") == prefix.count("/") + 1])
    queries = queries.with_columns(pl.col("FINDING_IDS").str.split(" ").alias("FINDING_ID")).explode("FINDING_ID")
    assert ids["pc01"] not in queries["FINDING_ID"].to_list()
    assert ids["control"] not in queries["FINDING_ID"].to_list()
    assert ids["pc02"] in queries["FINDING_ID"].to_list()
    # the confirmed deviation's query says the sponsor decided (helper-45: it still asked to correct or report)
    pc02 = queries.filter(pl.col("FINDING_ID") == ids["pc02"])["QUERY_TEXT"].item()
    assert "The sponsor's review confirmed this as a protocol deviation on " in pc02, pc02


def test_night_three_reopens_exactly_the_settled_findings_whose_evidence_changed(scenario: dict) -> None:
    ids, night2, night3 = scenario["ids"], scenario["night2"], scenario["night3"]
    settled = night2.filter(pl.col("REVIEW_STATE").is_in(["CLOSED", "NOT_A_DEVIATION"])
                            & (pl.col("STATUS") != "RESOLVED"))
    present3 = night3.filter(pl.col("STATUS") != "RESOLVED").select("FINDING_ID", pl.col("EVIDENCE_HASH").alias("NOW"))
    changed = settled.join(present3, on="FINDING_ID").filter(pl.col("EVIDENCE_HASH") != pl.col("NOW"))
    expected = set(changed["FINDING_ID"].to_list())
    assert expected == {ids["pc01"]}  # the consent date is one of PC01's facts; the closed PC05 did not change
    reopened = scenario["ledger3"].filter(pl.col("ACTION") == "REOPEN")
    assert set(reopened["FINDING_ID"].to_list()) == expected
    assert reopened["BY"].to_list() == ["screening-audit"]
    assert reopened["VIA"].to_list() == [f"nightly run {NIGHTS[2].isoformat()}"]
    assert "NOT_A_DEVIATION by alice" in reopened["TEXT"][0]
    state = dict(zip(night3["FINDING_ID"], night3["REVIEW_STATE"], strict=True))
    assert state[ids["pc01"]] == "REOPENED" and state[ids["control"]] == "CLOSED"
    html = scenario["study"].published(NIGHTS[2], "report.html").decode()
    reopened_section = html[html.index("Reopened since the last run"):html.index("Judged not a deviation")]
    assert ids["pc01"] in reopened_section and ids["control"] not in reopened_section


def test_night_three_resolves_the_findings_gone_and_keeps_their_threads(scenario: dict) -> None:
    ids, night2, night3 = scenario["ids"], scenario["night2"], scenario["night3"]
    before = set(night2.filter(pl.col("STATUS") != "RESOLVED")["FINDING_ID"].to_list())
    now = set(night3.filter(pl.col("STATUS") != "RESOLVED")["FINDING_ID"].to_list())
    gone = before - now
    assert ids["pc02"] in gone  # the first dose no longer precedes consent
    resolved = night3.filter(pl.col("STATUS") == "RESOLVED")
    assert set(resolved["FINDING_ID"].to_list()) == gone
    assert resolved.filter(pl.col("FINDING_ID") == ids["pc02"])["REVIEW_STATE"].to_list() == ["CONFIRMED"]
    # the confirmed deviation the data no longer show stays in dv, marked so, and the report says it (helper-45)
    study = scenario["study"]
    dv = study.table(NIGHTS[2], "dv")
    assert dv.filter(pl.col("FINDING_ID") == ids["pc02"])["DVREVIEW"].to_list() == ["CONFIRMED, NOT IN TONIGHT'S DATA"]
    html = study.published(NIGHTS[2], "report.html").decode()
    assert '<span id="confirmed-not-in-data">1 confirmed deviation(s) that tonight' in html
    code, out, err = scenario["show_pc02"]
    assert code == 0, err
    assert "ACKNOWLEDGE" in out and "CONFIRM_DEVIATION" in out and "carol" in out and "bob" in out


def test_an_edited_ledger_entry_is_named_by_the_cli_and_by_the_next_night(scenario: dict) -> None:
    code, out, err = scenario["list_after_edit"]
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "entry 1" in err and "0000000001.json" in err and "changed" in err
    study = scenario["study"]
    manifest = study.manifest(NIGHTS[3])["review"]
    assert manifest["status"] == "INVALID"
    assert any("entry 1 " in problem and "0000000001.json" in problem for problem in manifest["problems"])
    assert scenario["night4"]["REVIEW_STATE"].null_count() == scenario["night4"].height  # nothing guessed
    # the confirmed deviation the data no longer show stays in dv as last published: a broken ledger cannot say it was
    # withdrawn (it left dv that night, and no later night carried it again)
    ids = scenario["ids"]
    dv = study.table(NIGHTS[3], "dv")
    assert dv.filter(pl.col("FINDING_ID") == ids["pc02"])["DVREVIEW"].to_list() == ["CONFIRMED, NOT IN TONIGHT'S DATA"]
    html = study.published(NIGHTS[3], "report.html").decode()
    assert "The review ledger fails verification" in html and "0000000001.json" in html
    from review.ledger import read_ledger  # the run wrote nothing to the broken ledger

    assert read_ledger(study.reports, STUDY, "UNREVIEWED").head_seq == scenario["ledger3"]["SEQ"].max()
