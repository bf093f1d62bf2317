"""Discrepancy history across nights: NEW / OPEN / RESOLVED, FIRST_SEEN, DAYS_OPEN, RESOLVED_ON."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from contracts import DISCREPANCIES
from reporting import apply_history
from reporting.history import previous_run
from reporting.tables import TABLES, canonical, parquet_bytes
from storage import LocalStore, S3Store
from tests.support.published import seal

STUDY = "SZ003"
NIGHTS = [date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)]


def findings(*rows: tuple[str, str, str, str]) -> pl.DataFrame:
    """(SITEID, USUBJID, CHECK_ID, CLASS) rows as a compare-stage discrepancies table."""
    return pl.DataFrame(
        [{"STUDYID": STUDY, "SITEID": s, "USUBJID": u, "CHECK_ID": c, "CLASS": k,
          "SEVERITY": "IMPORTANT" if k == "INELIGIBLE_ENROLLED" else "QUERY", "SITE_ASSESSMENT": "Y",
          "RECOMPUTED": "NOT_MET", "EVIDENCE": f"{c} evidence", "STATUS": None, "FIRST_SEEN": None,
          "DAYS_OPEN": None} for s, u, c, k in rows],
        schema=DISCREPANCIES,
    )


A = ("101", "SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED")
B = ("101", "SZ003-101-0002", "IN11.ALT", "UNVERIFIABLE")
C = ("102", "SZ003-102-0001", "EX07", "IE_MISMATCH")
D = ("102", "SZ003-102-0002", "PC05", "PROCESS")


def publish_discrepancies(store, night: date, frame: pl.DataFrame) -> None:
    table = canonical(frame, TABLES["discrepancies"])
    store.write_bytes(f"{STUDY}/{night.isoformat()}/discrepancies.parquet", parquet_bytes(table))
    seal(store, f"{STUDY}/{night.isoformat()}")


def by_key(frame: pl.DataFrame) -> dict[str, dict]:
    return {row["USUBJID"] + "/" + row["CHECK_ID"]: row for row in frame.iter_rows(named=True)}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "reports")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/reports", endpoint_url=endpoint)


def test_three_nights_new_open_resolved(store):
    # night 1: A, B, C.  night 2: A, C, D (B resolved).  night 3: C, D, B again (A resolved; B is back)
    deliveries = [findings(A, B, C), findings(A, C, D), findings(C, D, B)]
    results = []
    for night, frame in zip(NIGHTS, deliveries, strict=True):
        result = apply_history(frame, store, study=STUDY, as_of=night)
        publish_discrepancies(store, night, result)
        results.append(by_key(result))

    first, second, third = results
    assert {k: r["STATUS"] for k, r in first.items()} == {
        "SZ003-101-0001/IN10.PLT": "NEW", "SZ003-101-0002/IN11.ALT": "NEW", "SZ003-102-0001/EX07": "NEW"}
    assert all(r["FIRST_SEEN"] == "2026-11-26" and r["DAYS_OPEN"] == 0 for r in first.values())

    assert (second["SZ003-101-0001/IN10.PLT"]["STATUS"], second["SZ003-101-0001/IN10.PLT"]["FIRST_SEEN"],
            second["SZ003-101-0001/IN10.PLT"]["DAYS_OPEN"]) == ("OPEN", "2026-11-26", 1)
    assert (second["SZ003-102-0002/PC05"]["STATUS"], second["SZ003-102-0002/PC05"]["FIRST_SEEN"]) == (
        "NEW", "2026-11-27")
    resolved_b = second["SZ003-101-0002/IN11.ALT"]
    assert (resolved_b["STATUS"], resolved_b["FIRST_SEEN"], resolved_b["RESOLVED_ON"], resolved_b["DAYS_OPEN"]) == (
        "RESOLVED", "2026-11-26", "2026-11-27", 1)
    assert resolved_b["SEVERITY"] == "QUERY" and resolved_b["EVIDENCE"] == "IN11.ALT evidence"
    assert len(second) == 4

    assert (third["SZ003-102-0001/EX07"]["STATUS"], third["SZ003-102-0001/EX07"]["DAYS_OPEN"]) == ("OPEN", 2)
    assert (third["SZ003-102-0002/PC05"]["STATUS"], third["SZ003-102-0002/PC05"]["DAYS_OPEN"]) == ("OPEN", 1)
    resolved_a = third["SZ003-101-0001/IN10.PLT"]
    assert (resolved_a["STATUS"], resolved_a["FIRST_SEEN"], resolved_a["RESOLVED_ON"], resolved_a["DAYS_OPEN"]) == (
        "RESOLVED", "2026-11-26", "2026-11-28", 2)
    # B was resolved on night 2; it comes back on night 3 as a NEW finding, not an OPEN one
    back = third["SZ003-101-0002/IN11.ALT"]
    assert (back["STATUS"], back["FIRST_SEEN"], back["DAYS_OPEN"], back["RESOLVED_ON"]) == (
        "NEW", "2026-11-28", 0, None)
    assert len(third) == 4


def test_resolved_finding_is_reported_once(tmp_path):
    store = LocalStore(tmp_path)
    for night, frame in zip(NIGHTS, [findings(A, B), findings(A), findings(A)], strict=True):
        publish_discrepancies(store, night, apply_history(frame, store, study=STUDY, as_of=night))
    third = pl.read_parquet(tmp_path / STUDY / "2026-11-28" / "discrepancies.parquet")
    assert third["STATUS"].to_list() == ["OPEN"]
    assert third["DAYS_OPEN"].to_list() == [2]


def test_later_runs_staging_and_locks_are_ignored(tmp_path):
    store = LocalStore(tmp_path)
    publish_discrepancies(store, NIGHTS[0], apply_history(findings(A), store, study=STUDY, as_of=NIGHTS[0]))
    # a later run (a rerun of an earlier date must not see the future), a staging folder and a lock
    publish_discrepancies(store, date(2026, 12, 1), apply_history(findings(B), store, study=STUDY,
                                                                  as_of=date(2026, 12, 1)))
    store.write_bytes(f"{STUDY}/_staging/2026-11-27/discrepancies.parquet", b"not parquet")
    store.write_bytes(f"{STUDY}/2026-11-27.lock", b"lock")
    store.write_bytes(f"{STUDY}/2026-11-30/report.html", b"interrupted run without discrepancies")
    seal(store, f"{STUDY}/2026-11-30")
    assert previous_run(store, study=STUDY, as_of=NIGHTS[2]) == (
        NIGHTS[0], f"{STUDY}/2026-11-26/discrepancies.parquet")
    result = by_key(apply_history(findings(A), store, study=STUDY, as_of=NIGHTS[2]))
    assert (result["SZ003-101-0001/IN10.PLT"]["STATUS"], result["SZ003-101-0001/IN10.PLT"]["DAYS_OPEN"]) == ("OPEN", 2)


def test_a_night_without_a_valid_completion_marker_is_not_a_published_night(tmp_path):
    store = LocalStore(tmp_path)
    publish_discrepancies(store, NIGHTS[0], apply_history(findings(A), store, study=STUDY, as_of=NIGHTS[0]))
    # night 2 was copied in by a promotion that a crash interrupted: files, no marker
    second = apply_history(findings(A, B), store, study=STUDY, as_of=NIGHTS[1])
    store.write_bytes(f"{STUDY}/2026-11-27/discrepancies.parquet",
                      parquet_bytes(canonical(second, TABLES["discrepancies"])))
    assert previous_run(store, study=STUDY, as_of=NIGHTS[2])[0] == NIGHTS[0]
    # a marker that does not match the folder (a file replaced after sealing) is no better
    seal(store, f"{STUDY}/2026-11-27")
    store.write_bytes(f"{STUDY}/2026-11-27/discrepancies.parquet", b"half a file")
    assert previous_run(store, study=STUDY, as_of=NIGHTS[2])[0] == NIGHTS[0]
    # once complete, it is the previous night
    store.write_bytes(f"{STUDY}/2026-11-27/discrepancies.parquet",
                      parquet_bytes(canonical(second, TABLES["discrepancies"])))
    seal(store, f"{STUDY}/2026-11-27")
    assert previous_run(store, study=STUDY, as_of=NIGHTS[2])[0] == NIGHTS[1]


def test_rerun_of_the_same_date_is_identical(tmp_path):
    store = LocalStore(tmp_path)
    publish_discrepancies(store, NIGHTS[0], apply_history(findings(A, B), store, study=STUDY, as_of=NIGHTS[0]))
    once = apply_history(findings(A, C), store, study=STUDY, as_of=NIGHTS[1])
    publish_discrepancies(store, NIGHTS[1], once)
    again = apply_history(findings(A, C), store, study=STUDY, as_of=NIGHTS[1])
    assert once.equals(again)


def test_first_run_has_everything_new_and_contract_columns(tmp_path):
    result = apply_history(findings(A, D), LocalStore(tmp_path), study=STUDY, as_of=NIGHTS[0])
    assert result.columns[: len(DISCREPANCIES)] == list(DISCREPANCIES)
    assert result.schema["DAYS_OPEN"] == pl.Int64
    assert result["STATUS"].to_list() == ["NEW", "NEW"]
    assert result["RESOLVED_ON"].to_list() == [None, None]


def test_previous_run_without_first_seen_uses_its_date(tmp_path):
    store = LocalStore(tmp_path)
    legacy = findings(A).drop("STATUS", "FIRST_SEEN", "DAYS_OPEN")
    store.write_bytes(f"{STUDY}/2026-11-20/discrepancies.parquet", parquet_bytes(legacy))
    seal(store, f"{STUDY}/2026-11-20")
    row = apply_history(findings(A), store, study=STUDY, as_of=NIGHTS[0]).row(0, named=True)
    assert (row["STATUS"], row["FIRST_SEEN"], row["DAYS_OPEN"]) == ("OPEN", "2026-11-20", 6)


def test_findings_without_a_subject_match_on_null_keys(tmp_path):
    store = LocalStore(tmp_path)
    site_level = ("103", None, "PC04", "PROCESS")
    publish_discrepancies(store, NIGHTS[0], apply_history(findings(site_level), store, study=STUDY, as_of=NIGHTS[0]))
    row = apply_history(findings(site_level), store, study=STUDY, as_of=NIGHTS[1]).row(0, named=True)
    assert (row["STATUS"], row["DAYS_OPEN"]) == ("OPEN", 1)


def test_contract_is_checked(tmp_path):
    with pytest.raises(ValueError, match="discrepancies"):
        apply_history(pl.DataFrame({"STUDYID": ["X"]}), LocalStore(tmp_path), study=STUDY, as_of=NIGHTS[0])


def test_an_unreadable_earlier_run_stops_with_a_clear_error(tmp_path):
    from reporting.history import HistoryError

    store = LocalStore(tmp_path)
    store.write_bytes(f"{STUDY}/2026-11-25/discrepancies.parquet", b"PAR1 truncated")
    seal(store, f"{STUDY}/2026-11-25")  # published that way: the marker matches, the file is still unreadable
    with pytest.raises(HistoryError, match=r"2026-11-25/discrepancies\.parquet"):
        apply_history(findings(A), store, study=STUDY, as_of=NIGHTS[0])


def subjects_of(*rows: tuple[str, str, str, str]) -> pl.DataFrame:
    return pl.DataFrame({"SITEID": [r[0] for r in rows], "USUBJID": [r[1] for r in rows]})


def test_a_finding_the_audit_could_not_find_tonight_is_carried_not_resolved(tmp_path):
    """Two user-trial defects: an ineligible enrolment left DV as RESOLVED the night a duplicated DM row kept its
    subject out of the audit; every finding of a site that missed a night resolved, and came back NEW (FIRST_SEEN
    and DAYS_OPEN restarted) the night it delivered again."""
    store = LocalStore(tmp_path / "reports")
    night1 = apply_history(findings(A, B, C, D), store, study=STUDY, as_of=NIGHTS[0],
                           evaluated=subjects_of(A, B, C, D), looked_again=["101", "102"])
    assert set(night1["EVALUATED_ON"]) == {"2026-11-26"} and night1["CARRIED"].null_count() == 4
    publish_discrepancies(store, NIGHTS[0], night1)
    # night 2: site 102 is not audited; A's subject is not evaluated (site 101 audited); B was looked at and is gone
    night2 = apply_history(findings(), store, study=STUDY, as_of=NIGHTS[1],
                           evaluated=subjects_of(B), looked_again=["101"])
    rows = by_key(night2)
    assert {k: r["STATUS"] for k, r in rows.items()} == {
        "SZ003-101-0001/IN10.PLT": "OPEN", "SZ003-101-0002/IN11.ALT": "RESOLVED",
        "SZ003-102-0001/EX07": "OPEN", "SZ003-102-0002/PC05": "OPEN"}
    carried = rows["SZ003-102-0001/EX07"]
    assert (carried["CARRIED"], carried["EVALUATED_ON"], carried["FIRST_SEEN"], carried["DAYS_OPEN"],
            carried["RESOLVED_ON"]) == ("site 102 not audited tonight", "2026-11-26", "2026-11-26", 1, None)
    assert rows["SZ003-101-0001/IN10.PLT"]["CARRIED"].startswith("subject not evaluated tonight")
    assert rows["SZ003-101-0001/IN10.PLT"]["EVIDENCE"] == "IN10.PLT evidence"  # as the night that found it said
    resolved = rows["SZ003-101-0002/IN11.ALT"]
    assert (resolved["CARRIED"], resolved["RESOLVED_ON"], resolved["EVALUATED_ON"]) == (None, "2026-11-27",
                                                                                        "2026-11-27")
    # the carried ineligible enrolment is still an important deviation, as dv lists them
    from reporting.dv import is_deviation
    assert night2.filter(is_deviation(night2))["USUBJID"].to_list() == ["SZ003-101-0001"]
    publish_discrepancies(store, NIGHTS[1], night2)
    # night 3: site 102 is back and still has C; A's subject is still out: carried from the night that found it
    night3 = by_key(apply_history(findings(C), store, study=STUDY, as_of=NIGHTS[2],
                                  evaluated=subjects_of(B, C, D), looked_again=["101", "102"]))
    assert (night3["SZ003-102-0001/EX07"]["STATUS"], night3["SZ003-102-0001/EX07"]["FIRST_SEEN"],
            night3["SZ003-102-0001/EX07"]["CARRIED"]) == ("OPEN", "2026-11-26", None)
    assert night3["SZ003-102-0002/PC05"]["STATUS"] == "RESOLVED"  # looked at again, gone
    assert (night3["SZ003-101-0001/IN10.PLT"]["EVALUATED_ON"], night3["SZ003-101-0001/IN10.PLT"]["DAYS_OPEN"]) == (
        "2026-11-26", 2)
    assert "SZ003-101-0002/IN11.ALT" not in night3  # resolved once, not repeated


def test_without_what_tonight_evaluated_every_finding_gone_is_resolved(tmp_path):
    store = LocalStore(tmp_path / "reports")
    publish_discrepancies(store, NIGHTS[0], apply_history(findings(A, C), store, study=STUDY, as_of=NIGHTS[0]))
    night2 = apply_history(findings(), store, study=STUDY, as_of=NIGHTS[1])
    assert set(night2["STATUS"]) == {"RESOLVED"} and night2["CARRIED"].null_count() == 2


def test_a_fallback_site_carries_what_its_older_delivery_lacks_and_a_moved_subject_is_looked_at(tmp_path):
    """A review of the first version: a site audited on an older delivery (its newest rejected) resolved a PC01
    deviation on the older consent date, which came back NEW the next night; the data-quality side already held
    such a site as not looked at again. And a subject whose records moved to another site was carried at the old
    one beside its new row (one FINDING_ID, two DV records)."""
    store = LocalStore(tmp_path / "reports")
    publish_discrepancies(store, NIGHTS[0], apply_history(findings(A, B, C), store, study=STUDY, as_of=NIGHTS[0]))
    moved = ("102", A[1], A[2], A[3])  # A's subject is delivered by site 102 tonight
    older = {"101": "audited on its older delivery D1 (fallback: newer delivery D2 rejected)"}
    table = apply_history(findings(moved), store, study=STUDY, as_of=NIGHTS[1],
                          evaluated=subjects_of(moved, B, C), looked_again=["102"], partial=older)
    assert sorted(table.filter(pl.col("USUBJID") == A[1]).select("SITEID", "STATUS", "CARRIED").rows()) == [
        ("101", "RESOLVED", None), ("102", "NEW", None)]
    night2 = by_key(table)
    assert night2["SZ003-101-0002/IN11.ALT"]["CARRIED"] == f"site 101 {older['101']}"  # B: the fallback site
    assert night2["SZ003-101-0002/IN11.ALT"]["STATUS"] == "OPEN"
    assert night2["SZ003-102-0001/EX07"]["STATUS"] == "RESOLVED"  # C: looked at again, gone
    # A's subject was evaluated tonight at site 102 only: its finding at 101 is resolved, not carried beside it
    assert night2["SZ003-101-0001/IN10.PLT"]["SITEID"] == "102"  # (by_key keeps the last row of the key)
    # without the fallback, a moved subject's finding at its old site is resolved: it was looked at (at 102)
    store2 = LocalStore(tmp_path / "reports2")
    publish_discrepancies(store2, NIGHTS[0], apply_history(findings(A), store2, study=STUDY, as_of=NIGHTS[0]))
    night2 = apply_history(findings(moved), store2, study=STUDY, as_of=NIGHTS[1], evaluated=subjects_of(moved),
                           looked_again=["102"])
    assert sorted(night2.select("SITEID", "STATUS").rows()) == [("101", "RESOLVED"), ("102", "NEW")]


def test_a_carried_deviation_keeps_the_dv_start_date_its_night_gave_it(tmp_path):
    """DVSTDTC is the finding's own date or its subject's treatment start from tonight's subjects, where a carried
    finding's subject is not: the date went empty the night the site missed and came back the next (a review)."""
    from reporting.dv import build_dv
    from reporting.tables import DV

    store = LocalStore(tmp_path / "reports")
    night1 = apply_history(findings(A, C), store, study=STUDY, as_of=NIGHTS[0],
                           evaluated=subjects_of(A, C), looked_again=["101", "102"])
    subjects = pl.DataFrame({"STUDYID": [STUDY, STUDY], "SITEID": ["101", "102"], "USUBJID": [A[1], C[1]],
                             "TREATMENT_START": ["2026-10-16", None]})
    dv1 = build_dv(night1, subjects)
    assert dv1.select("USUBJID", "DVSTDTC").rows() == [(A[1], "2026-10-16")]
    publish_discrepancies(store, NIGHTS[0], night1)
    store.write_bytes(f"{STUDY}/{NIGHTS[0].isoformat()}/dv.parquet", parquet_bytes(dv1.select(list(DV))))
    seal(store, f"{STUDY}/{NIGHTS[0].isoformat()}")
    night2 = apply_history(findings(C), store, study=STUDY, as_of=NIGHTS[1], evaluated=subjects_of(C),
                           looked_again=["102"])  # site 101 not audited
    dv2 = build_dv(night2, subjects.filter(pl.col("SITEID") == "102"))
    columns = ["USUBJID", "DVSTDTC", "FINDING_ID"]
    assert dv2.select(columns).rows() == dv1.select(columns).rows()
    assert by_key(night2)["SZ003-101-0001/IN10.PLT"]["DTC"] == "2026-10-16"


def test_an_important_finding_whose_check_tonight_could_not_verify_is_carried(tmp_path):
    """helper-37: a subject evaluated tonight whose lab file was rejected turned its INELIGIBLE_ENROLLED into an
    UNVERIFIABLE query, and the deviation left DV as RESOLVED. Not verified is not disproven: the deviation (and the
    criterion's IE_MISMATCH) is carried beside tonight's UNVERIFIABLE finding; a component verified tonight is
    resolved whatever another component of its criterion is."""
    store = LocalStore(tmp_path / "reports")
    plt = ("101", "SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED")
    mismatch = ("101", "SZ003-101-0001", "IN10", "IE_MISMATCH")
    other = ("101", "SZ003-101-0002", "IN10.PLT", "INELIGIBLE_ENROLLED")
    night1 = findings(plt, mismatch, other).with_columns(pl.lit("IMPORTANT").alias("SEVERITY"))
    publish_discrepancies(store, NIGHTS[0], apply_history(night1, store, study=STUDY, as_of=NIGHTS[0]))
    tonight = findings(("101", "SZ003-101-0001", "IN10.PLT", "UNVERIFIABLE"),
                       ("101", "SZ003-101-0002", "IN10.HGB", "UNVERIFIABLE"))
    night2 = apply_history(tonight, store, study=STUDY, as_of=NIGHTS[1],
                           evaluated=subjects_of(plt, other), looked_again=["101"])
    rows = {(r["USUBJID"], r["CHECK_ID"], r["CLASS"]): (r["STATUS"], r["CARRIED"])
            for r in night2.iter_rows(named=True)}
    from reporting.history import NOT_VERIFIABLE
    assert rows == {
        ("SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED"): ("OPEN", NOT_VERIFIABLE),
        ("SZ003-101-0001", "IN10", "IE_MISMATCH"): ("OPEN", NOT_VERIFIABLE),
        ("SZ003-101-0001", "IN10.PLT", "UNVERIFIABLE"): ("NEW", None),
        ("SZ003-101-0002", "IN10.PLT", "INELIGIBLE_ENROLLED"): ("RESOLVED", None),  # PLT verified tonight
        ("SZ003-101-0002", "IN10.HGB", "UNVERIFIABLE"): ("NEW", None),
    }


def test_a_site_audited_without_a_rejected_file_keeps_its_findings_as_the_night_that_read_everything(tmp_path):
    """helper-39: a rejected lb.csv resolved a PC06 that needs it (back NEW the next night) and moved a PC01's
    evidence and DV start date to a VS record, which reopened the sponsor's CLOSE. At a site audited without a
    rejected file a finding gone is carried, and one present both nights keeps the earlier night's row."""
    from reporting.history import partly_read

    deliveries = [{"site": "101", "delivery": "D2", "status": "USED", "reason": ""},
                  {"site": "102", "delivery": "D5", "status": "USED", "reason": ""},
                  {"site": "102", "delivery": "D4", "status": "REJECTED", "reason": "sha256"}]
    ingest = pl.DataFrame({"SITEID": ["101", "101", "102", "102"],
                           "EXPECTATION": ["ingest.file_rejected.missing_column", "ingest.file_rejected.empty",
                                           "ingest.file_rejected.empty", "ingest.row_rejected.bad_date"],
                           "SOURCE": ["SZ003/101/D2/lb.csv", "SZ003/101/D2/cm.csv", "SZ003/102/D4/lb.csv",
                                      "SZ003/102/D5/vs.csv:4"]})
    partial = partly_read(ingest, deliveries)
    # site 102's rejected file was in its rejected delivery, not in the one audited; a row's rejection is no file's
    assert partial == {"101": "audited without its rejected file(s) cm.csv, lb.csv: what they hold was not read"}

    store = LocalStore(tmp_path / "reports")
    pc01 = ("101", "SZ003-101-0001", "PC01", "PROCESS")
    pc06 = ("101", "SZ003-101-0002", "PC06", "PROCESS")
    night1 = apply_history(findings(pc01, pc06), store, study=STUDY, as_of=NIGHTS[0],
                           evaluated=subjects_of(pc01, pc06), looked_again=["101"])
    publish_discrepancies(store, NIGHTS[0], night1.with_columns(pl.lit("H1").alias("EVIDENCE_HASH")))
    tonight = findings(pc01).with_columns(pl.lit("PC01 on a VS record").alias("EVIDENCE"),
                                          pl.lit("H2").alias("EVIDENCE_HASH"))
    night2 = by_key(apply_history(tonight, store, study=STUDY, as_of=NIGHTS[1], evaluated=subjects_of(pc01, pc06),
                                  looked_again=[], partial=partial))
    note = f"site 101 {partial['101']}"
    assert (night2["SZ003-101-0001/PC01"]["STATUS"], night2["SZ003-101-0001/PC01"]["EVIDENCE"],
            night2["SZ003-101-0001/PC01"]["EVIDENCE_HASH"], night2["SZ003-101-0001/PC01"]["CARRIED"],
            night2["SZ003-101-0001/PC01"]["EVALUATED_ON"]) == ("OPEN", "PC01 evidence", "H1", note, "2026-11-26")
    assert (night2["SZ003-101-0002/PC06"]["STATUS"], night2["SZ003-101-0002/PC06"]["CARRIED"]) == ("OPEN", note)
