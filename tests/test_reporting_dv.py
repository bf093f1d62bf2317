"""SDTM DV from the important discrepancies, and dv.xpt read back with pyreadstat."""

from __future__ import annotations

from datetime import date

import polars as pl
import pyreadstat

from contracts import DISCREPANCIES, SUBJECTS
from reporting.dv import XPT_COLUMNS, build_dv, xpt_bytes
from reporting.tables import DV

AS_OF = date(2026, 11, 28)


def discrepancies() -> pl.DataFrame:
    rows = [
        ("101", "SZ003-101-0001", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT", "NEW",
         "Platelets 45 ×10^9/L on 2026-11-01, below the limit ≥ 60 ×10^9/L."),
        ("101", "SZ003-101-0001", "EX07", "INELIGIBLE_ENROLLED", "IMPORTANT", "OPEN", "EX07 ascites 6 cm > 5 cm."),
        ("101", "SZ003-101-0001", "PC01", "PROCESS", "IMPORTANT", "OPEN", "LB on 2026-10-01 before consent."),
        ("102", "SZ003-102-0003", "PC02", "PROCESS", "IMPORTANT", "NEW", None),
        ("102", "SZ003-102-0003", "IN04", "IE_MISMATCH", "IMPORTANT", "NEW", "x" * 400),
        ("102", "SZ003-102-0004", "PC03", "PROCESS", "IMPORTANT", "RESOLVED", "resolved: no DV"),
        ("102", "SZ003-102-0004", "IN11.ALT", "UNVERIFIABLE", "QUERY", "NEW", "a query: no DV"),
        ("102", "SZ003-102-0005", "ZZ99", "PROCESS", "IMPORTANT", "NEW", "unknown check"),
    ]
    return pl.DataFrame(
        [{"STUDYID": "SZ003", "SITEID": s, "USUBJID": u, "CHECK_ID": c, "CLASS": k, "SEVERITY": sev,
          "SITE_ASSESSMENT": None, "RECOMPUTED": None, "EVIDENCE": e, "STATUS": st, "FIRST_SEEN": "2026-11-20",
          "DAYS_OPEN": 8} for s, u, c, k, sev, st, e in rows],
        schema=DISCREPANCIES,
    )


def subjects() -> pl.DataFrame:
    return pl.DataFrame(
        [{"STUDYID": "SZ003", "SITEID": "101", "USUBJID": "SZ003-101-0001", "SITE_DECISION": "ENROLLED",
          "RECOMPUTED": "INELIGIBLE", "TREATMENT_START": "2026-11-10", "N_DISCREPANCIES": 3},
         {"STUDYID": "SZ003", "SITEID": "102", "USUBJID": "SZ003-102-0003", "SITE_DECISION": "ENROLLED",
          "RECOMPUTED": "INELIGIBLE", "TREATMENT_START": None, "N_DISCREPANCIES": 2}],
        schema=SUBJECTS,
    )


def test_dv_rows_terms_and_sequence():
    dv = build_dv(discrepancies(), subjects())
    assert dv.columns == list(DV)
    rows = {(r["USUBJID"], r["DVREFID"]): r for r in dv.iter_rows(named=True)}
    assert set(rows) == {("SZ003-101-0001", "EX07"), ("SZ003-101-0001", "IN10.PLT"), ("SZ003-101-0001", "PC01"),
                         ("SZ003-102-0003", "IN04"), ("SZ003-102-0003", "PC02"), ("SZ003-102-0005", "ZZ99")}
    plt = rows[("SZ003-101-0001", "IN10.PLT")]
    assert (plt["DOMAIN"], plt["DVDECOD"], plt["DVCAT"], plt["DVSCAT"], plt["DVSTDTC"]) == (
        "DV", "SELECTION CRITERIA NOT MET", "ELIGIBILITY", "INCLUSION CRITERION NOT MET", "2026-11-10")
    assert plt["DVTERM"].startswith("IN10.PLT: Platelets 45")
    assert rows[("SZ003-101-0001", "EX07")]["DVSCAT"] == "EXCLUSION CRITERION MET"
    assert rows[("SZ003-101-0001", "EX07")]["DVTERM"] == "EX07 ascites 6 cm > 5 cm."  # CHECK_ID not repeated
    assert rows[("SZ003-101-0001", "PC01")]["DVCAT"] == "INFORMED CONSENT"
    pc02 = rows[("SZ003-102-0003", "PC02")]
    assert (pc02["DVCAT"], pc02["DVTERM"], pc02["DVSTDTC"]) == ("INFORMED CONSENT", "PC02 PROCESS", None)
    assert len(rows[("SZ003-102-0003", "IN04")]["DVTERM"]) == 200
    assert rows[("SZ003-102-0005", "ZZ99")]["DVDECOD"] == "OTHER PROTOCOL DEVIATION"
    # DVSEQ numbers each subject's records 1..n in DVREFID order
    assert dv.select("USUBJID", "DVREFID", "DVSEQ").rows() == [
        ("SZ003-101-0001", "EX07", 1), ("SZ003-101-0001", "IN10.PLT", 2), ("SZ003-101-0001", "PC01", 3),
        ("SZ003-102-0003", "IN04", 1), ("SZ003-102-0003", "PC02", 2), ("SZ003-102-0005", "ZZ99", 1)]


def test_dv_uses_the_findings_own_date_when_given():
    dv = build_dv(discrepancies().with_columns(pl.lit("2026-10-01").alias("DTC")), subjects())
    assert set(dv["DVSTDTC"].to_list()) == {"2026-10-01"}


def test_xpt_reads_back_with_pyreadstat(tmp_path):
    dv = build_dv(discrepancies(), subjects())
    data = xpt_bytes(dv, AS_OF)
    path = tmp_path / "dv.xpt"
    path.write_bytes(data)
    frame, meta = pyreadstat.read_xport(str(path))
    assert list(frame.columns) == XPT_COLUMNS == [c for c in DV if c != "FINDING_ID"]
    assert all(len(name) <= 8 for name in frame.columns)
    assert meta.table_name == "DV"
    assert dict(zip(meta.column_names, meta.column_labels, strict=True))["DVDECOD"] == "Protocol Deviation Coded Term"
    assert len(frame) == dv.height
    assert frame["DVSEQ"].tolist() == [1.0, 2.0, 3.0, 1.0, 2.0, 1.0]
    term = frame.loc[frame["DVREFID"] == "IN10.PLT", "DVTERM"].iloc[0]
    # transport files are ASCII: symbols are spelled out, nothing is dropped silently
    assert term == "IN10.PLT: Platelets 45 x10^9/L on 2026-11-01, below the limit >= 60 x10^9/L."
    assert frame["DVTERM"].str.len().max() <= 200
    assert frame.loc[frame["DVREFID"] == "PC02", "DVSTDTC"].iloc[0] == ""
    # the header stamps are the as-of date, so the file depends on its inputs only
    assert b"28NOV26:00:00:00" in data[:800]
    assert xpt_bytes(dv, AS_OF) == data


def test_empty_dv_still_writes_a_readable_transport_file(tmp_path):
    dv = build_dv(discrepancies().filter(pl.col("SEVERITY") == "NONE"), subjects())
    assert dv.height == 0 and dv.columns == list(DV)
    path = tmp_path / "dv.xpt"
    path.write_bytes(xpt_bytes(dv, AS_OF))
    frame, _ = pyreadstat.read_xport(str(path))
    assert list(frame.columns) == XPT_COLUMNS and len(frame) == 0


def test_an_ineligible_enrolment_the_checklist_hid_is_one_dv_record_not_two():
    # two user trials: INELIGIBLE_ENROLLED on IN10.PLT and the IE_MISMATCH on IN10 were two DV records for one
    # enrolment (counted twice), and confirming the one left the other "not yet reviewed"
    disc = discrepancies()
    hidden = disc.filter(pl.col("CHECK_ID") == "IN10.PLT").with_columns(
        pl.lit("IN10").alias("CHECK_ID"), pl.lit("IE_MISMATCH").alias("CLASS"))
    other = hidden.with_columns(pl.lit("SZ003-101-0009").alias("USUBJID"))  # no ineligible enrolment behind it
    dv = build_dv(pl.concat([disc, hidden, other]), subjects())
    assert dv.filter(pl.col("USUBJID") == "SZ003-101-0001")["DVREFID"].to_list() == ["EX07", "IN10.PLT", "PC01"]
    assert dv.filter(pl.col("USUBJID") == "SZ003-101-0009")["DVREFID"].to_list() == ["IN10"]
    # the IE_MISMATCH of another criterion (IN04 of 102-0003) stays: nothing else stands for it
    assert "IN04" in dv["DVREFID"].to_list()


def test_a_confirmed_ie_mismatch_confirms_the_record_that_stands_for_it():
    # helper-30: the IE_MISMATCH confirmed, its INELIGIBLE_ENROLLED not yet decided: DV showed the enrolment's only
    # record as NOT YET REVIEWED, and the confirmation was nowhere
    disc = discrepancies().with_columns(pl.lit(None, pl.String).alias("REVIEW_STATE"),
                                        pl.lit("NOT YET REVIEWED").alias("DV_REVIEW"))
    hidden = disc.filter(pl.col("CHECK_ID") == "IN10.PLT").with_columns(
        pl.lit("IN10").alias("CHECK_ID"), pl.lit("IE_MISMATCH").alias("CLASS"), pl.lit("CONFIRMED").alias("DV_REVIEW"))
    dv = build_dv(pl.concat([disc, hidden]), subjects())
    marks = dict(dv.filter(pl.col("USUBJID") == "SZ003-101-0001").select("DVREFID", "DVREVIEW").rows())
    assert marks == {"EX07": "NOT YET REVIEWED", "IN10.PLT": "CONFIRMED", "PC01": "NOT YET REVIEWED"}


def _judged_enrolment_with_its_answer(answer_state: str, answer_dv: str) -> pl.DataFrame:
    """discrepancies() with 101-0001's IN10.PLT enrolment judged NOT_A_DEVIATION, and the IE_MISMATCH on IN10 that
    it stands for in the given review state (the others UNREVIEWED)."""
    disc = discrepancies().with_columns(pl.lit("UNREVIEWED").alias("REVIEW_STATE"),
                                        pl.lit("NOT YET REVIEWED").alias("DV_REVIEW"))
    enrolment = pl.col("CHECK_ID") == "IN10.PLT"
    disc = disc.with_columns(pl.when(enrolment).then(pl.lit("NOT_A_DEVIATION")).otherwise(pl.col("REVIEW_STATE"))
                             .alias("REVIEW_STATE"),
                             pl.when(enrolment).then(pl.lit(None, pl.String)).otherwise(pl.col("DV_REVIEW"))
                             .alias("DV_REVIEW"))
    answer = disc.filter(enrolment).with_columns(
        pl.lit("IN10").alias("CHECK_ID"), pl.lit("IE_MISMATCH").alias("CLASS"), pl.lit(answer_state).alias(
            "REVIEW_STATE"), pl.lit(answer_dv).alias("DV_REVIEW"))
    return pl.concat([disc, answer])


def test_an_ineligible_enrolment_judged_not_a_deviation_takes_its_hidden_checklist_answer_with_it():
    """A user trial: INELIGIBLE_ENROLLED judged NOT_A_DEVIATION brought the IE_MISMATCH it stood for into dv as NOT
    YET REVIEWED (and into the site's queries): the reviewer's decision undone by the other half of one deviation."""
    dv = build_dv(_judged_enrolment_with_its_answer("UNREVIEWED", "NOT YET REVIEWED"), subjects())
    assert dv.filter(pl.col("USUBJID") == "SZ003-101-0001")["DVREFID"].to_list() == ["EX07", "PC01"]


def test_a_confirmed_checklist_answer_stands_on_its_own_beside_an_enrolment_judged_not_a_deviation():
    """A review: with the enrolment NOT_A_DEVIATION and its IE_MISMATCH CONFIRMED, the confirmation brought the
    enrolment back into dv as CONFIRMED, a record pointing at a finding judged not a deviation. The confirmed
    IE_MISMATCH is its own record."""
    dv = build_dv(_judged_enrolment_with_its_answer("CONFIRMED", "CONFIRMED"), subjects())
    marks = dict(dv.filter(pl.col("USUBJID") == "SZ003-101-0001").select("DVREFID", "DVREVIEW").rows())
    assert marks == {"EX07": "NOT YET REVIEWED", "IN10": "CONFIRMED", "PC01": "NOT YET REVIEWED"}


def test_a_confirmed_deviation_tonights_data_no_longer_show_stays_in_dv_marked_so() -> None:
    """helper-45: a confirmed and closed PC02 left dv without a word the night the site moved the consent date."""
    with_ids = discrepancies().with_columns(pl.format("D-{}-{}", "USUBJID", "CHECK_ID").alias("FINDING_ID"))
    tonight = build_dv(with_ids, subjects())
    gone = tonight.filter(pl.col("DVREFID") == "PC02").with_columns(pl.lit("CONFIRMED").alias("DVREVIEW"))
    still = tonight.filter(pl.col("DVREFID") == "EX07").with_columns(pl.lit("CONFIRMED").alias("DVREVIEW"))
    later = with_ids.filter(pl.col("CHECK_ID") != "PC02")  # the site's correction: PC02 is no longer found
    dv = build_dv(later, subjects(), earlier=pl.concat([gone, still]))
    kept = dv.filter(pl.col("DVREFID") == "PC02")
    assert kept.select("FINDING_ID", "DVTERM", "DVREVIEW").rows() == [
        (gone["FINDING_ID"][0], gone["DVTERM"][0], "CONFIRMED, NOT IN TONIGHT'S DATA")]
    # a deviation still in tonight's data is judged tonight (once, not also carried), and DVSEQ counts both
    assert dv.filter(pl.col("DVREFID") == "EX07").height == 1
    assert dv.filter(pl.col("USUBJID") == "SZ003-102-0003")["DVSEQ"].to_list() == [1, 2]
    assert build_dv(later, subjects()).height == dv.height - 1
    # news the night it leaves the data, not the nights after (the digest's "nothing new", helper-46)
    from reporting.digest import _nothing_new
    from reporting.dv import left_the_data_tonight

    assert left_the_data_tonight(later, pl.concat([gone, still])) == 1
    assert left_the_data_tonight(later, kept) == 0
    quiet = {"headline": {"new": 0, "new_data_findings": 0, "rows_reconcile": True, "confirmed_left_data_tonight": 0},
             "reopened_total": 0, "not_audited_new_total": 0, "protocol_change": None}
    assert _nothing_new(quiet)
    assert not _nothing_new({**quiet, "headline": {**quiet["headline"], "confirmed_left_data_tonight": 1}})
