"""A domain whose file the site delivered but ingestion rejected as a whole: its absence decides nothing.

helper-44 re-encoded one site's cm.csv (UTF-16 under a latin-1 manifest): the file was rejected, and every HBV-exposed
subject's antiviral therapy (IN09.TX) became NOT_MET, nine false ineligible enrolments, while the steroid exclusion
(EX11.STER) read "no steroid" for everyone. Unknown is UNVERIFIABLE (DTS section 2), never NOT_MET or NOT_APPLICABLE.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from checks.evaluation import evaluate
from contracts.protocol import load_protocol
from ingestion.unread import UNREAD, unread_files, used_deliveries
from tests.support.sample_subject import frames, subject_rows

AS_OF = date(2025, 6, 1)
CM_KEY = "SZ003/101/20250301T000000Z/cm.csv"


def _exposed(usubjid: str, site: str) -> dict[str, list[dict]]:
    rows = subject_rows(usubjid, site=site)
    for row in rows["lb"]:
        if row["LBTESTCD"] == "HBCAB":
            row["LBORRES"] = "POSITIVE"
    rows["lb"].append({**rows["lb"][0], "LBTESTCD": "HBVDNA", "LBORRES": "50", "LBORRESU": "IU/mL", "LBORNRHI": ""})
    return rows


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], tuple[str, str | None, str | None, str | None]]:
    domains = frames(_exposed("SZ003-101-001", "101"), _exposed("SZ003-102-001", "102"))
    unread = pl.DataFrame({"SITEID": ["101"], "DOMAIN": ["CM"], "SOURCE": [CM_KEY]}, schema=UNREAD)
    result = evaluate(domains, load_protocol(), AS_OF, unread=unread)
    rows = result.eligibility.filter(pl.col("CHECK_ID").is_in(["IN09.TX", "EX11.STER", "IN10.PLT"]))
    return {(r["USUBJID"], r["CHECK_ID"]): (r["OUTCOME"], r["REASON_CODE"], r["SOURCE"], r["REASON"])
            for r in rows.iter_rows(named=True)}


def test_a_component_reading_the_rejected_file_is_unverifiable_naming_it(outcomes) -> None:
    outcome, code, source, reason = outcomes[("SZ003-101-001", "IN09.TX")]
    assert (outcome, code, source) == ("UNVERIFIABLE", "FILE_NOT_READ", CM_KEY)
    assert reason == "the site's cm.csv was rejected as a whole and not read, so this cannot be decided without it"
    assert outcomes[("SZ003-101-001", "EX11.STER")][:2] == ("UNVERIFIABLE", "FILE_NOT_READ")


def test_other_components_and_other_sites_are_judged_as_before(outcomes) -> None:
    assert outcomes[("SZ003-101-001", "IN10.PLT")][0] == "MET"  # lb.csv was read
    assert outcomes[("SZ003-102-001", "IN09.TX")][0] == "NOT_MET"  # its cm.csv was read: no therapy delivered
    assert outcomes[("SZ003-102-001", "EX11.STER")][0] == "NOT_APPLICABLE"


def test_only_the_files_of_the_deliveries_audited_are_unread() -> None:
    findings = pl.DataFrame({
        "SITEID": ["101", "101", "102"], "DOMAIN": ["CM", "LB", "MH"],
        "EXPECTATION": ["ingest.file_rejected.unreadable", "ingest.file_rejected.unreadable",
                        "ingest.row_rejected.short_row"],
        "SOURCE": [CM_KEY, "SZ003/101/20250201T000000Z/lb.csv", "SZ003/102/20250301T000000Z/mh.csv:4"]})
    used = used_deliveries([{"site": "101", "delivery": "20250301T000000Z", "status": "USED"},
                            {"site": "101", "delivery": "20250201T000000Z", "status": "SUPERSEDED"},
                            {"site": "102", "delivery": "20250301T000000Z", "status": "USED"}])
    assert unread_files(findings, used).rows() == [("101", "CM", CM_KEY)]


def test_a_stray_file_named_after_a_domain_hides_nothing_and_a_domain_read_after_all_is_not_unread() -> None:
    """helper-46: `lb.txt` (unknown_format, no domain) beside a good lb.csv made every LB component unverifiable."""
    from contracts.records import DeliveryDecision, IngestResult, InputObject
    from ingestion.unread import unread_in

    folder = "SZ003/101/20250301T000000Z"
    findings = pl.DataFrame({
        "SITEID": ["101", "101", "101"], "DOMAIN": [None, "CM", "VS"],
        "EXPECTATION": ["ingest.file_rejected.unknown_format", "ingest.file_rejected.unreadable",
                        "ingest.file_rejected.duplicate_domain"],
        "SOURCE": [f"{folder}/lb.txt", f"{folder}/cm.csv", f"{folder}/vs.xlsx"]})
    inputs = [InputObject(f"{folder}/lb.csv", "101", "lb", "x", rows_read=10),
              InputObject(f"{folder}/cm.csv", "101", "cm", "x", rows_read=4, rows_rejected=4,
                          rejected_reasons={"unreadable": 4}),
              InputObject(f"{folder}/vs.csv", "101", "vs", "x", rows_read=3)]  # read after all
    ingest = IngestResult(study="SZ003", domains={}, inputs=inputs, findings=findings, sites_audited=["101"],
                          sites_not_audited={},
                          deliveries=[DeliveryDecision(site="101", delivery="20250301T000000Z", status="USED")])
    assert unread_in(ingest).rows() == [("101", "CM", f"{folder}/cm.csv")]
