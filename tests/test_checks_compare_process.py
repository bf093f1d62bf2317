"""Process checks PC01-PC06 through compare(): each side of each boundary, partial dates as intervals,
golden evidence sentences, and the strictness of process_checks.yaml."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from test_checks_compare import build, compare_evaluated, dm, full_checklist, ie, subject

from checks.comparison.process import ProcessConfigError, date_bounds, load_process_checks, parse_process_checks
from tests.support.sources import split_source

LB_COLUMNS = ["STUDYID", "USUBJID", "LBTESTCD", "LBORRES", "LBORRESU", "LBDTC", "LBSTAT", "DECIMAL", "SOURCE"]


def lb(records: list[dict]) -> pl.DataFrame:
    base = {"STUDYID": "SZ003", "USUBJID": "S1", "LBTESTCD": "PLAT", "LBORRES": "150", "LBORRESU": "10^9/L",
            "LBDTC": "2026-03-02", "LBSTAT": None, "DECIMAL": "."}
    return split_source(pl.DataFrame([{**base, "SOURCE": f"lb.csv:{i + 1}", **r} for i, r in enumerate(records)],
                                     schema=dict.fromkeys(LB_COLUMNS, pl.String)))


def frame(domain: str, records: list[dict]) -> pl.DataFrame:
    prefix = domain.upper()
    columns = ["STUDYID", "USUBJID", f"{prefix}TESTCD", f"{prefix}DTC", "SOURCE"]
    return split_source(pl.DataFrame([{"STUDYID": "SZ003", "USUBJID": "S1", "SOURCE": f"{domain}.csv:{i + 1}", **r}
                                      for i, r in enumerate(records)], schema=dict.fromkeys(columns, pl.String)))


def process(subjects: list[dict], check: str, **domains: pl.DataFrame) -> list[dict]:
    """The PROCESS rows of `check` for subjects that all have a clean full checklist."""
    answers = [row for s in subjects for row in full_checklist(s["USUBJID"])]
    frames = {"ie": ie(answers), **domains}
    found = compare_evaluated(build(subjects), frames).discrepancies
    return found.filter((pl.col("CLASS") == "PROCESS") & (pl.col("CHECK_ID") == check)).to_dicts()


# ------------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "lo", "hi"),
    [
        ("2026", date(2026, 1, 1), date(2026, 12, 31)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2026-02-03", date(2026, 2, 3), date(2026, 2, 3)),
        ("2026-02-03T10:00", date(2026, 2, 3), date(2026, 2, 3)),
        ("03/02/2026", None, None),
        ("2026-13", None, None),
        (None, None, None),
    ],
)
def test_date_bounds(text, lo, hi):
    lo_expr, hi_expr = date_bounds(pl.col("d"))
    got = pl.DataFrame({"d": [text]}, schema={"d": pl.String}).select(lo_expr.alias("lo"), hi_expr.alias("hi"))
    assert got.row(0) == (lo, hi)


# -------------------------------------------------------------------------------------------- PC01


@pytest.mark.parametrize(
    ("record", "consent", "flagged"),
    [
        ("2026-02-19", "2026-02-20", True),
        ("2026-02-20", "2026-02-20", False),  # same day is not before (times are not compared)
        ("2026-02-20T08:00", "2026-02-20T09:00", False),
        ("2026-01", "2026-02-20", True),  # all of January is before
        ("2026-02", "2026-02-20", False),  # February 21-28 would not be: undecided
        ("2026-02-19", "2026-02", False),  # consent could be 2026-02-01
        ("2025", "2026-02", True),
        ("19/02/2026", "2026-02-20", False),  # not a date: validation reports it, no guess here
    ],
)
def test_pc01_boundaries(record, consent, flagged):
    found = process([subject("S1")], "PC01", dm=dm([{"USUBJID": "S1", "RFICDTC": consent}]),
                    lb=lb([{"LBDTC": record}]))
    assert bool(found) is flagged
    if flagged:
        assert found[0]["SEVERITY"] == "IMPORTANT"


def test_pc01_golden_evidence_earliest_record_across_domains_and_not_done_ignored():
    found = process(
        [subject("S1", "SCREEN FAILURE")],
        "PC01",
        dm=dm([{"USUBJID": "S1", "RFICDTC": "2026-02-20"}]),
        lb=lb([{"LBDTC": "2026-02-18"}, {"LBDTC": "2026-02-01", "LBSTAT": "NOT DONE", "LBORRES": None}]),
        vs=frame("vs", [{"VSTESTCD": "WEIGHT", "VSDTC": "2026-02-10"}]),
        tr=frame("tr", [{"TRTESTCD": "LDIAM", "TRDTC": "2026-02-25"}]),
    )
    assert [(r["USUBJID"], r["SITE_ASSESSMENT"], r["RECOMPUTED"]) for r in found] == [
        ("S1", "RFICDTC=2026-02-20; SCREEN FAILURE", "2 record(s) before consent, earliest VS WEIGHT 2026-02-10")]
    assert found[0]["EVIDENCE"] == (
        "VS WEIGHT dated 2026-02-10 precedes informed consent (RFICDTC 2026-02-20); "
        "1 more screening record(s) are also dated before consent; "
        "the site recorded the subject as a screen failure."
    )
    # the deviation's own date (DV's DVSTDTC) and every record dated before consent, earliest first (the site
    # query's RECORD): a user trial found DVSTDTC was the treatment start and the site told "49 more records"
    assert (found[0]["DTC"], found[0]["SOURCE"]) == ("2026-02-10", "vs.csv:1; lb.csv:1")
    # a check of the subject's DM dates names its DM record (its query's RECORD), with no date of its own
    others = process([subject("S1")], "PC02", dm=dm([{"USUBJID": "S1", "RFICDTC": None}]))
    assert (others[0]["DTC"], others[0]["SOURCE"]) == (None, "dm.csv:1")


def test_a_procedure_before_consent_is_dated_in_dv_by_the_procedure_not_the_treatment_start():
    # docs/outputs.md: DVSTDTC is "the finding's own date when the comparison gives one"; the comparison gave none,
    # so every PC01 deviation was dated by the treatment start (2026-03-10 here)
    from reporting.dv import build_dv

    consent = dm([{"USUBJID": "S1", "RFICDTC": "2026-02-20", "RFXSTDTC": "2026-03-10"}])
    weight = frame("vs", [{"VSTESTCD": "WEIGHT", "VSDTC": "2026-02-10"}])
    result = compare_evaluated(build([subject("S1")]), {"ie": ie(full_checklist("S1")), "dm": consent, "vs": weight})
    dv = build_dv(result.discrepancies, result.subjects).filter(pl.col("DVREFID") == "PC01")
    assert dv["DVSTDTC"].to_list() == ["2026-02-10"]


# -------------------------------------------------------------------------------------------- PC02


@pytest.mark.parametrize(
    ("decision", "consent", "dose", "recomputed"),
    [
        ("ENROLLED", "2026-02-20", "2026-02-19", "first dose before consent"),
        ("ENROLLED", "2026-02-20", "2026-02-20", None),  # same day
        ("ENROLLED", "2026-02-20", "2026-02", None),  # partial dose date: undecided
        ("ENROLLED", "2026-02-20", "2026-01", "first dose before consent"),
        ("ENROLLED", None, None, "no usable consent date"),
        ("ENROLLED", "20/02/2026", "2026-03-01", "no usable consent date"),
        ("SCREEN FAILURE", None, None, None),  # no decision to enrol, no dose
        ("SCREEN FAILURE", None, "2026-03-01", "no usable consent date"),  # dosed anyway
    ],
)
def test_pc02_boundaries(decision, consent, dose, recomputed):
    found = process([subject("S1", decision)], "PC02",
                    dm=dm([{"USUBJID": "S1", "RFICDTC": consent, "RFXSTDTC": dose}]))
    assert [r["RECOMPUTED"] for r in found] == ([recomputed] if recomputed else [])
    assert all(r["SEVERITY"] == "IMPORTANT" for r in found)


def test_pc02_golden_evidence():
    before = process([subject("S1")], "PC02", dm=dm([{"USUBJID": "S1", "RFXSTDTC": "2026-02-19"}]))
    assert before[0]["EVIDENCE"] == (
        "First dose RFXSTDTC 2026-02-19 is before informed consent RFICDTC 2026-02-20; the site enrolled the subject.")
    assert before[0]["SITE_ASSESSMENT"] == "RFICDTC=2026-02-20; RFXSTDTC=2026-02-19; ENROLLED"
    bad = process([subject("S1")], "PC02", dm=dm([{"USUBJID": "S1", "RFICDTC": "20/02/2026",
                                                   "RFXSTDTC": "2026-03-01"}]))
    assert bad[0]["EVIDENCE"] == ("The subject was dosed (RFXSTDTC 2026-03-01) but DM has no usable informed "
                                  "consent date (RFICDTC '20/02/2026' is not a date).")
    missing = process([subject("S1")], "PC02", dm=dm([{"USUBJID": "S1", "RFICDTC": " "}]))
    assert missing[0]["EVIDENCE"] == ("The subject was enrolled but DM has no usable informed consent date "
                                      "(RFICDTC missing).")


# -------------------------------------------------------------------------------------------- PC03


def stale(reason_code: str = "ONLY_BEFORE_WINDOW") -> dict:
    return {"OUTCOME": "UNVERIFIABLE", "VALUE": None, "UNIT": None, "LIMIT": None, "DTC": None,
            "REASON": "latest PLAT 2026-01-15 is before the window start 2026-02-10",
            "REASON_CODE": reason_code}


def test_pc03_enrolled_on_stale_result_golden_evidence():
    found = process([subject("S1", IN10_PLT=stale(), IN11_CRCL=stale())], "PC03")
    assert [(r["SEVERITY"], r["SITE_ASSESSMENT"], r["RECOMPUTED"]) for r in found] == [
        ("IMPORTANT", "ENROLLED", "only pre-window results: IN10.PLT, IN11.CRCL")]
    assert found[0]["EVIDENCE"] == (
        "Only results dated before the screening window exist ("
        "IN10.PLT: latest PLAT 2026-01-15 is before the window start 2026-02-10; "
        "IN11.CRCL: latest PLAT 2026-01-15 is before the window start 2026-02-10); "
        "the site enrolled the subject (treatment start 2026-03-10), so a stale result was likely relied on."
    )


def test_pc03_names_each_stale_record_in_check_order():
    """Evaluation names the latest stale record of each component; PC03 lists them, its query's RECORD too."""
    # a stale creatinine and the clearance computed from it (with the weight) name the creatinine's record once
    found = process([subject("S1", IN11_CRCL={**stale(), "SOURCE": "SZ003/101/D/lb.csv:9; SZ003/101/D/vs.csv:2"},
                             IN11_CREAT={**stale(), "SOURCE": "SZ003/101/D/lb.csv:9"},
                             IN10_PLT={**stale(), "SOURCE": "SZ003/101/D/lb.csv:4"})], "PC03")
    assert found[0]["SOURCE"] == "SZ003/101/D/lb.csv:4; SZ003/101/D/lb.csv:9; SZ003/101/D/vs.csv:2"
    unnamed = process([subject("S1", IN10_PLT={**stale(), "SOURCE": None})], "PC03")
    assert unnamed[0]["SOURCE"] is None  # none named: none listed


@pytest.mark.parametrize(("decision", "code"), [("SCREEN FAILURE", "ONLY_BEFORE_WINDOW"), ("ENROLLED", "MISSING")])
def test_pc03_not_for_screen_failures_nor_other_reasons(decision, code):
    assert process([subject("S1", decision, IN10_PLT=stale(code))], "PC03") == []


# -------------------------------------------------------------------------------------------- PC05


@pytest.mark.parametrize(
    ("birth", "consent", "age", "flagged"),
    [
        ("1970-06-15", "2026-02-20", "55", False),
        ("1970-06-15", "2026-02-20", "56", True),
        ("1970-02-20", "2026-02-20", "56", False),  # birthday on the consent day counts
        ("1970-02-21", "2026-02-20", "55", False),  # the day before the birthday
        ("1970-02-21", "2026-02-20", "56", True),
        ("1970", "2026-02-20", "55", False),  # partial birth date: 55 or 56 are both possible
        ("1970", "2026-02-20", "56", False),
        ("1970", "2026-02-20", "54", True),
        ("1970", "2026-02-20", "57", True),
        ("1970-06-15", "2026-02-20", "fifty", False),  # not a number: validation's finding
        ("1970-06-15", "2026-02-20", None, False),
        ("1970-06-15", None, "30", False),  # no consent date: PC02's business
    ],
)
def test_pc05_boundaries(birth, consent, age, flagged):
    found = process([subject("S1")], "PC05", dm=dm([{"USUBJID": "S1", "BRTHDTC": birth, "RFICDTC": consent,
                                                     "AGE": age}]))
    assert bool(found) is flagged
    assert all(r["SEVERITY"] == "QUERY" for r in found)


def test_pc05_golden_evidence_with_partial_birth_date():
    (found,) = process([subject("S1")], "PC05", dm=dm([{"USUBJID": "S1", "BRTHDTC": "1970", "AGE": "54"}]))
    assert (found["SITE_ASSESSMENT"], found["RECOMPUTED"]) == ("AGE=54", "AGE=55 to 56")
    assert found["SOURCE"] == "dm.csv:1"  # the DM record to correct: its query's RECORD
    assert found["EVIDENCE"] == (
        "DM.AGE 54 disagrees with the age computed from the birth date (BRTHDTC) and RFICDTC 2026-02-20: "
        "55 to 56 years.")


# -------------------------------------------------------------------------------------------- PC06


@pytest.mark.parametrize(
    ("recomputed", "site", "unit", "decimal", "flagged"),
    [
        ("40", "36", "mL/min", ".", False),  # exactly 10 % apart: not more than 10 %
        ("40", "35.9", "mL/min", ".", True),  # 10.25 % and 35.9 < 40 <= 40
        ("44", "39.6", "mL/min", ".", False),  # exactly 10 % the other way
        ("50", "41", "mL/min", ".", False),  # 18 % apart but both >= 40
        ("39", "44", "mL/min", ".", True),  # 12.8 %, recomputed below 40, site above
        ("41", "39.5", "mL/min", ".", False),  # different sides but only 3.7 % apart
        ("40", "0,5", "mL/s", ",", True),  # 0.5 mL/s = 30 mL/min, decimal comma
        ("40", "<30", "mL/min", ".", False),  # censored: not compared
        ("40", "30", "mg/dL", ".", False),  # not a clearance unit: not compared
    ],
)
def test_pc06_boundaries(recomputed, site, unit, decimal, flagged):
    subjects = [subject("S1", IN11_CRCL={"VALUE": recomputed})]
    found = process(subjects, "PC06", lb=lb([{"LBTESTCD": "CREATCLR", "LBORRES": site, "LBORRESU": unit,
                                              "DECIMAL": decimal}]))
    assert bool(found) is flagged
    assert all(r["SEVERITY"] == "QUERY" for r in found)


def test_pc06_compares_the_same_day_only_and_golden_evidence():
    subjects = [subject("S1", IN11_CRCL={"VALUE": "38.24", "OUTCOME": "NOT_MET"})]
    other_day = process(subjects, "PC06", lb=lb([{"LBTESTCD": "CREATCLR", "LBORRES": "62", "LBORRESU": "mL/min",
                                                  "LBDTC": "2026-02-27"}]))
    assert other_day == []
    (found,) = process(subjects, "PC06", lb=lb([{"LBTESTCD": "CREATCLR", "LBORRES": "62", "LBORRESU": "mL/min"}]))
    assert (found["SITE_ASSESSMENT"], found["RECOMPUTED"]) == ("CREATCLR=62 mL/min", "IN11.CRCL=38.2 mL/min")
    assert found["EVIDENCE"] == (
        "Site-reported CREATCLR 62 mL/min on 2026-03-02 differs by 62.1 % from the recomputed Cockcroft-Gault "
        "value 38.2 mL/min (IN11.CRCL) and falls on the other side of 40 mL/min; the site enrolled the subject."
    )


# ---------------------------------------------------------------------------------- configuration


def test_bundled_process_checks_and_severities():
    assert [(c.id, c.severity) for c in load_process_checks()] == [
        ("PC01", "IMPORTANT"), ("PC02", "IMPORTANT"), ("PC03", "IMPORTANT"),
        ("PC04", "QUERY"), ("PC05", "QUERY"), ("PC06", "QUERY")]


def _raw() -> dict:
    return {"checks": {"PC05": {"title": "age", "severity": "QUERY", "params": {}}}}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["checks"].update({"PC99": {"severity": "QUERY"}}),
        lambda r: r["checks"]["PC05"].update({"sevrity": "QUERY"}),
        lambda r: r["checks"]["PC05"].update({"severity": "MAJOR"}),
        lambda r: r["checks"]["PC05"].update({"params": {"extra": 1}}),
        lambda r: r.update({"other": {}}),
    ],
)
def test_process_checks_file_is_strict(mutate):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ProcessConfigError):
        parse_process_checks(raw)


def test_a_check_can_be_switched_off_and_its_severity_changed_by_data():
    subjects = [subject("S1")]
    data = build(subjects)
    domains = {"ie": ie(full_checklist("S1")), "dm": dm([{"USUBJID": "S1", "AGE": "20", "RFXSTDTC": "2026-01-01"}])}
    checks = parse_process_checks({"checks": {"PC05": {"severity": "IMPORTANT", "params": {}}}})
    found = compare_evaluated(data, domains, process_checks=checks).discrepancies
    assert found.select("CHECK_ID", "SEVERITY").rows() == [("PC05", "IMPORTANT")]


def test_duplicate_dm_rows_the_first_in_delivery_order_is_read():
    rows = dm([{"USUBJID": "S1", "AGE": "40", "SOURCE": "dm.csv:10"},
               {"USUBJID": "S1", "AGE": "55", "SOURCE": "dm.csv:9"}])
    assert process([subject("S1")], "PC05", dm=rows) == []
    assert process([subject("S1")], "PC05", dm=rows.reverse()) == []
    swapped = rows.with_columns(pl.Series("SOURCE_ROW", [9, 10]))
    assert [r["SITE_ASSESSMENT"] for r in process([subject("S1")], "PC05", dm=swapped)] == ["AGE=40"]


def test_values_excluded_and_rows_rejected_by_validation_are_not_read():
    subjects = [subject("S1")]
    rows = dm([{"USUBJID": "S1", "AGE": "20", "RFXSTDTC": "2026-02-01", "SOURCE": "dm.csv:1"}])
    data = build(subjects)
    domains = {"ie": ie(full_checklist("S1")), "dm": rows, "lb": lb([{"LBDTC": "2026-02-01", "SOURCE": "lb.csv:7"}])}
    found = compare_evaluated(data, domains).discrepancies["CHECK_ID"].to_list()
    assert found == ["PC01", "PC02", "PC05"]
    exclusions = split_source(pl.DataFrame({"SOURCE": ["dm.csv:1", "dm.csv:1"], "DOMAIN": ["DM", "dm"],
                                            "VARIABLE": ["BRTHDTC", "rfxstdtc"], "MESSAGE": ["bad", "bad"]}))
    rejected = split_source(pl.DataFrame({"SOURCE": ["lb.csv:7"], "DOMAIN": ["LB"], "VARIABLE": ["USUBJID"],
                                          "MESSAGE": ["orphan"]}))
    clean = compare_evaluated(data, domains, exclusions=exclusions, rejected=rejected)
    assert clean.discrepancies.height == 0
