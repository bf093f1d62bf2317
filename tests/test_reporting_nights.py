"""Three nights end to end through publish(): each night a new delivery changes the findings, and
the published discrepancies, report and site queries say NEW / OPEN / RESOLVED correctly."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import date

import polars as pl
import pytest

from contracts import DISCREPANCIES
from reporting import apply_history, publish
from reporting.history import run_trend
from storage import LocalStore, S3Store
from tests.support.published import seal
from tests.support.sample_outputs import make_outputs

STUDY = "SZ003"
NIGHTS = [date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)]
PLT = ("101", "SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT")
AGE = ("101", "SZ003-101-0002", "PC05", "PROCESS", "QUERY")
HBV = ("102", "SZ003-102-0003", "EX05.HBV", "INELIGIBLE_ENROLLED", "IMPORTANT")
ALT = ("102", "SZ003-102-0004", "IN11.ALT", "UNVERIFIABLE", "QUERY")
# night 1: PLT, AGE, HBV.  night 2 (site 101 corrected the age): PLT, HBV, ALT.  night 3 (site 101
# corrected the platelets, site 102's new delivery resolves the HBV finding): ALT only
DELIVERIES = [[PLT, AGE, HBV], [PLT, HBV, ALT], [ALT]]


def findings(rows) -> pl.DataFrame:
    return pl.DataFrame(
        [{"STUDYID": STUDY, "SITEID": s, "USUBJID": u, "CHECK_ID": c, "CLASS": k, "SEVERITY": v,
          "SITE_ASSESSMENT": "Y; ENROLLED", "RECOMPUTED": "NOT_MET", "EVIDENCE": f"{c} evidence for {u}",
          "STATUS": None, "FIRST_SEEN": None, "DAYS_OPEN": None} for s, u, c, k, v in rows],
        schema=DISCREPANCIES)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "reports")
    return S3Store(f"s3://{request.getfixturevalue('s3_bucket')}/reports",
                   endpoint_url=request.getfixturevalue("s3_endpoint"))


def run_nights(store) -> None:
    for night, rows in zip(NIGHTS, DELIVERIES, strict=True):
        base = make_outputs(n_subjects=8, n_sites=2, as_of=night)
        history = apply_history(findings(rows), store, study=STUDY, as_of=night)
        publish(replace(base, discrepancies=history), store, f"{STUDY}/{night.isoformat()}")
        seal(store, f"{STUDY}/{night.isoformat()}")


def published(store, night: date, name: str) -> bytes:
    return store.read_bytes(f"{STUDY}/{night.isoformat()}/{name}")


def test_three_nights(store):
    run_nights(store)
    third = pl.read_csv(io.BytesIO(published(store, NIGHTS[2], "discrepancies.csv")), infer_schema=False)
    got = {(r["USUBJID"], r["CHECK_ID"]): (r["STATUS"], r["FIRST_SEEN"], r["DAYS_OPEN"], r["RESOLVED_ON"])
           for r in third.iter_rows(named=True)}
    assert got == {
        ("SZ003-102-0004", "IN11.ALT"): ("OPEN", "2026-11-27", "1", None),
        ("SZ003-101-0001", "IN10.PLT"): ("RESOLVED", "2026-11-26", "2", "2026-11-28"),
        ("SZ003-102-0003", "EX05.HBV"): ("RESOLVED", "2026-11-26", "2", "2026-11-28"),
    }  # AGE was resolved on night 2 and is not repeated
    second = pl.read_parquet(io.BytesIO(published(store, NIGHTS[1], "discrepancies.parquet")))
    assert dict(zip(second["CHECK_ID"], second["STATUS"], strict=True)) == {
        "IN10.PLT": "OPEN", "EX05.HBV": "OPEN", "IN11.ALT": "NEW", "PC05": "RESOLVED"}

    # DV holds only tonight's important findings: none on night 3, two on night 2
    assert pl.read_csv(io.BytesIO(published(store, NIGHTS[2], "dv.csv"))).height == 0
    assert pl.read_csv(io.BytesIO(published(store, NIGHTS[1], "dv.csv")))["DVREFID"].to_list() == [
        "IN10.PLT", "EX05.HBV"]

    html = published(store, NIGHTS[2], "report.html").decode()
    numbers = dict(re.findall(r'id="n-([a-z-]+)">([^<]*)<', html))
    assert (numbers["important"], numbers["queries"], numbers["new"], numbers["resolved"]) == ("0", "1", "0", "2")
    assert "Compared with the run of 2026-11-27" in html
    assert 'id="trend"' in html and "<title>11-26: 2</title>" in html  # night 1 had 2 important findings

    # the trend read back from the reports location: open findings, new and resolved per night
    assert run_trend(store, study=STUDY, as_of=date(2026, 11, 29)).rows() == [
        ("2026-11-26", 2, 1, 3, 0), ("2026-11-27", 2, 1, 1, 1), ("2026-11-28", 0, 1, 0, 2)]

    # site 102 is asked about the open ALT finding only, with its age in days
    queries = pl.read_csv(io.BytesIO(published(store, NIGHTS[2], "site_queries/102.csv")), infer_schema=False)
    open_queries = queries.filter(pl.col("ORIGIN") == "DISCREPANCY")
    assert open_queries.select("CHECK_ID", "STATUS", "DAYS_OPEN").rows() == [("IN11.ALT", "OPEN", "1")]
