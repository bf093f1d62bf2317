"""Findings keep their FINDING_ID while they are the same problem, and their EVIDENCE_HASH changes exactly
when the facts they rest on change: never with the wording of a sentence, a row number or a file name."""

from __future__ import annotations

import polars as pl
import pytest

from checks.comparison.identity import with_identity
from contracts import DISCREPANCIES
from expectations import validate_domain
from ingestion.findings import Finding, findings_frame
from ingestion.findings import with_identity as ingestion_identity
from tests.test_expectations import FakeProtocol, dm_row, frame

STUDY = "SZ003"


def eligibility(**changes: dict) -> pl.DataFrame:
    """IN10 of SZ003-101-0001: PLT fails, HGB and ANC pass; `changes`: CHECK_ID -> column values."""
    rows = [
        {"USUBJID": "SZ003-101-0001", "CRITERION_ID": "IN10", "CHECK_ID": "IN10.PLT", "OUTCOME": "NOT_MET",
         "VALUE": "52", "UNIT": "10^9/L", "LIMIT": "60", "DTC": "2026-03-02", "REASON_CODE": None},
        {"USUBJID": "SZ003-101-0001", "CRITERION_ID": "IN10", "CHECK_ID": "IN10.HGB", "OUTCOME": "MET",
         "VALUE": "12.5", "UNIT": "g/dL", "LIMIT": "9", "DTC": "2026-03-02", "REASON_CODE": None},
        {"USUBJID": "SZ003-101-0001", "CRITERION_ID": "IN07", "CHECK_ID": "IN07", "OUTCOME": "MET",
         "VALUE": "90", "UNIT": "%", "LIMIT": "80", "DTC": "2026-03-01", "REASON_CODE": None},
    ]
    for row in rows:
        row.update(changes.get(row["CHECK_ID"], {}))
    return pl.DataFrame(rows, schema={k: pl.String for k in rows[0]})


def discrepancies(site: str = "101", evidence: str = "IN10.PLT 52 10^9/L on 2026-03-02 does not meet IN10.",
                  assessment: str = "IN10=Y; ENROLLED") -> pl.DataFrame:
    rows = [(site, "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT", "NOT_MET"),
            (site, "IN10", "IE_MISMATCH", "IMPORTANT", "NOT_MET"),
            (site, "IN07", "IE_MISMATCH", "QUERY", "MET"),
            (site, "PC05", "PROCESS", "QUERY", "AGE=44")]
    return pl.DataFrame([{"STUDYID": STUDY, "SITEID": s, "USUBJID": "SZ003-101-0001", "CHECK_ID": c, "CLASS": k,
                          "SEVERITY": v, "SITE_ASSESSMENT": assessment, "RECOMPUTED": r, "EVIDENCE": evidence}
                         for s, c, k, v, r in rows], schema={k: t for k, t in DISCREPANCIES.items()
                                                             if k not in ("FINDING_ID", "EVIDENCE_HASH")})


def identified(disc: pl.DataFrame, elig: pl.DataFrame) -> dict[str, tuple[str, str]]:
    out = with_identity(disc, elig)
    return {row["CHECK_ID"]: (row["FINDING_ID"], row["EVIDENCE_HASH"]) for row in out.iter_rows(named=True)}


BASE = identified(discrepancies(), eligibility())


def test_a_discrepancy_id_is_study_subject_check_and_class() -> None:
    assert len({fid for fid, _ in BASE.values()}) == 4 and all(fid.startswith("D-") for fid, _ in BASE.values())
    moved = identified(discrepancies(site="109"), eligibility())  # the subject moved site: same findings
    assert {c: f for c, (f, _) in moved.items()} == {c: f for c, (f, _) in BASE.items()}
    shuffled = with_identity(discrepancies().reverse(), eligibility().reverse())
    assert dict(zip(shuffled["CHECK_ID"], shuffled["FINDING_ID"], strict=True)) == {c: f for c, (f, _) in
                                                                                    BASE.items()}


def test_a_reworded_evidence_sentence_changes_no_hash() -> None:
    reworded = identified(discrepancies(evidence="Platelets of 52 x10^9/L are below the IN10 limit."), eligibility())
    assert reworded == BASE


@pytest.mark.parametrize("column", ["VALUE", "UNIT", "LIMIT", "DTC", "REASON_CODE"])
def test_a_changed_fact_of_the_failing_component_changes_its_findings_evidence(column: str) -> None:
    changed = identified(discrepancies(), eligibility(**{"IN10.PLT": {column: "55"}}))
    assert changed["IN10.PLT"][1] != BASE["IN10.PLT"][1]
    assert changed["IN10"][1] != BASE["IN10"][1]  # the criterion-level mismatch rests on the failing component
    assert changed["IN07"] == BASE["IN07"] and changed["PC05"] == BASE["PC05"]
    assert all(changed[c][0] == BASE[c][0] for c in BASE)  # the same findings


def test_a_component_that_does_not_decide_the_criterion_does_not_reopen_its_mismatch() -> None:
    changed = identified(discrepancies(), eligibility(**{"IN10.HGB": {"VALUE": "13.1"}}))
    assert changed == BASE


def test_the_sites_answer_and_the_recomputed_outcome_are_facts() -> None:
    changed = identified(discrepancies(assessment="IN10=Y; SCREEN FAILURE"), eligibility())
    assert all(changed[c][1] != BASE[c][1] for c in BASE)


@pytest.fixture(scope="module")
def validated() -> dict[str, pl.DataFrame]:
    """DM validated three ways: as delivered, reordered in a later delivery, and with one value corrected."""
    rows = [dm_row("SZ003-101-0001"), dm_row("SZ003-101-0002", SEX="X"), dm_row("SZ003-101-0003", SEX="Q"),
            dm_row("SZ003-101-0003", SEX="Q")]
    later = [rows[3], rows[0], rows[2], rows[1]]
    corrected = [rows[0], dm_row("SZ003-101-0002", SEX="Z"), rows[2], rows[3]]
    out = {}
    for name, delivered in (("first", rows), ("later", later), ("corrected", corrected)):
        dm = frame("dm", delivered)
        if name == "later":
            dm = dm.with_columns(pl.lit("SZ003/101/20261204T230000Z/dm.csv").alias("SOURCE_KEY"))
        result = validate_domain("dm", {"dm": dm}, study=STUDY, protocol=FakeProtocol())
        out[name] = result.findings.filter(pl.col("VARIABLE") == "SEX").sort("USUBJID", "FINDING_ID")
    return out


def test_a_validation_finding_keeps_its_id_in_another_delivery_and_row_order(validated) -> None:
    first, later = validated["first"], validated["later"]
    assert first.height == 3  # SEX=X once, SEX=Q on a DM record delivered twice
    assert first["SOURCE"].to_list() != later["SOURCE"].to_list()  # other file, other rows...
    assert sorted(first["FINDING_ID"].to_list()) == sorted(later["FINDING_ID"].to_list())  # ...same findings
    assert first["FINDING_ID"].n_unique() == 3  # the copy of a record is told apart
    assert sorted(first["EVIDENCE_HASH"].to_list()) == sorted(later["EVIDENCE_HASH"].to_list())


def test_a_corrected_value_keeps_the_id_and_changes_the_evidence(validated) -> None:
    first, corrected = validated["first"], validated["corrected"]
    before = first.filter(pl.col("USUBJID") == "SZ003-101-0002").row(0, named=True)
    after = corrected.filter(pl.col("USUBJID") == "SZ003-101-0002").row(0, named=True)
    assert after["FINDING_ID"] == before["FINDING_ID"] and after["EVIDENCE_HASH"] != before["EVIDENCE_HASH"]


def test_ingestion_findings_are_identified_without_delivery_folder_or_row() -> None:
    def night(delivery: str, rows: tuple[int, int]) -> pl.DataFrame:
        lb = f"SZ003/104/{delivery}/lb"
        ragged = "ingest.row_rejected.field_count"
        findings = [Finding(STUDY, "104", "ingest.delivery_rejected.checksum", "m", f"{lb}.xlsx", "LB", "sha256",
                            observed="abc"),
                    Finding(STUDY, "104", ragged, "m", f"{lb}.csv:{rows[0]}", "LB", None, observed="9 fields",
                            usubjid="SZ003-104-0001"),
                    Finding(STUDY, "104", ragged, "m", f"{lb}.csv:{rows[1]}", "LB", None, observed="8 fields",
                            usubjid="SZ003-104-0001")]
        return ingestion_identity(findings_frame(findings))

    one, two = night("20261127T230000Z", (5, 9)), night("20261204T230000Z", (7, 12))
    assert one["FINDING_ID"].to_list() == two["FINDING_ID"].to_list()
    assert one["FINDING_ID"].n_unique() == 3
    assert one["EVIDENCE_HASH"].to_list() == two["EVIDENCE_HASH"].to_list()
