"""End to end through checks.evaluate() and compare() on small inline domains.

A three-criterion protocol (IN07 KPS, IN10 blood counts, EX07 ascites) parsed from YAML text, and
six subjects at two sites, each built to show one behaviour: a clean enrolment, an ineligible
enrolment hidden by the checklist, an unsupported screen failure, a stale result (PC03), and an SDTM
not-met-only site. The assertions are the exact discrepancy keys and two golden evidence sentences.
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
import yaml

from checks.comparison.compare import compare
from checks.evaluation import evaluate
from contracts.protocol import parse_protocol

AS_OF = date(2026, 3, 20)

PROTOCOL_YAML = """
id: T3
title: three criteria
version: {tivers: "1.0", effective: 2020-01-01}
parameters: {screening_window_days: 28}
criteria:
  - id: IN07
    category: INCLUSION
    text: KPS >= 80
    components:
      - {id: IN07, text: FA KPS >= 80, rule: {kind: threshold, domain: FA, test: KPS, op: ">=", limit: 80}}
  - id: IN10
    category: INCLUSION
    text: blood counts
    components:
      - {id: IN10.PLT, text: PLAT >= 60, rule: {kind: threshold, domain: LB, test: PLAT, op: ">=", limit: 60}}
      - {id: IN10.HGB, text: HGB >= 9, rule: {kind: threshold, domain: LB, test: HGB, op: ">=", limit: 9.0}}
  - id: EX07
    category: EXCLUSION
    text: ascites > 5 cm
    components:
      - {id: EX07, text: FA ASCDEPTH > 5 cm, rule: {kind: threshold, domain: FA, test: ASCDEPTH, op: ">", limit: 5}}
"""


def _frame(domain: str, site_of: dict[str, str], rows: list[dict]) -> pl.DataFrame:
    columns = sorted({key for row in rows for key in row})
    data = [{c: row.get(c) for c in columns} for row in rows]
    frame = pl.DataFrame(data, schema=dict.fromkeys(columns, pl.String), orient="row")
    return frame.with_columns(
        pl.lit("SZ003").alias("STUDYID"),
        pl.format("SZ003/{}/20260320T000000Z/{}.csv:{}", pl.col("USUBJID").replace_strict(site_of),
                  pl.lit(domain), pl.int_range(1, pl.len() + 1)).alias("SOURCE"),
        pl.col("USUBJID").replace_strict(site_of).alias("DELIVERY_SITEID"),
        pl.lit(".").alias("DECIMAL"),
    )


SITE_OF = {"A1": "101", "A2": "101", "A3": "101", "A4": "101", "B1": "102", "B2": "102"}


def _labs(usubjid: str, plat: str, hgb: str, day: str = "2026-03-02") -> list[dict]:
    return [
        {"USUBJID": usubjid, "LBTESTCD": "PLAT", "LBORRES": plat, "LBORRESU": "10^9/L", "LBORNRLO": "150",
         "LBORNRHI": "400", "LBDTC": day},
        {"USUBJID": usubjid, "LBTESTCD": "HGB", "LBORRES": hgb, "LBORRESU": "g/dL", "LBORNRLO": "12",
         "LBORNRHI": "16", "LBDTC": day},
    ]


def _fa(usubjid: str, kps: str, ascites: str = "1") -> list[dict]:
    return [
        {"USUBJID": usubjid, "FATESTCD": "KPS", "FAORRES": kps, "FAORRESU": None, "FADTC": "2026-03-03"},
        {"USUBJID": usubjid, "FATESTCD": "ASCDEPTH", "FAORRES": ascites, "FAORRESU": "cm", "FADTC": "2026-03-03"},
    ]


def _ie(usubjid: str, **answers: str) -> list[dict]:
    full = {"IN07": "Y", "IN10": "Y", "EX07": "N"} | answers
    return [{"USUBJID": usubjid, "IETESTCD": c, "IECAT": "EXCLUSION" if c.startswith("EX") else "INCLUSION",
             "IEORRES": a, "IEDTC": "2026-03-05"} for c, a in full.items()]


def domains() -> dict[str, pl.DataFrame]:
    # A4 consented early: its haemoglobin of 2026-01-20 follows consent but predates the window
    dm = [{"USUBJID": u, "SITEID": SITE_OF[u], "SUBJID": u, "BRTHDTC": "1970-06-15", "SEX": "M",
           "RFICDTC": consent, "RFXSTDTC": start, "AGE": "55"}
          for u, consent, start in [("A1", "2026-02-20", "2026-03-10"), ("A2", "2026-02-20", "2026-03-10"),
                                    ("A3", "2026-02-20", None), ("A4", "2026-01-10", "2026-03-10"),
                                    ("B1", "2026-02-20", "2026-03-10"), ("B2", "2026-02-20", None)]]
    ds = [{"USUBJID": u, "DSCAT": "DISPOSITION EVENT", "DSDECOD": d, "DSSTDTC": "2026-03-09"}
          for u, d in [("A1", "ENROLLED"), ("A2", "ENROLLED"), ("A3", "SCREEN FAILURE"), ("A4", "ENROLLED"),
                       ("B1", "ENROLLED"), ("B2", "SCREEN FAILURE")]]
    lb = (_labs("A1", "150", "12.5") + _labs("A2", "52", "12.5") + _labs("A3", "180", "13")
          + _labs("A4", "150", "12.5")[:1] + _labs("A4", "150", "12.5", day="2026-01-20")[1:]
          + _labs("B1", "150", "12.5") + _labs("B2", "150", "12.5"))
    fa = (_fa("A1", "90") + _fa("A2", "90") + _fa("A3", "90") + _fa("A4", "90") + _fa("B1", "90", ascites="7")
          + _fa("B2", "70"))
    # site 102 delivers SDTM-style not-met-only IE: B2's failing row only, nothing for B1
    ie = _ie("A1") + _ie("A2") + _ie("A3", IN07="N") + _ie("A4") + [
        {"USUBJID": "B2", "IETESTCD": "IN07", "IECAT": "INCLUSION", "IEORRES": "N", "IEDTC": "2026-03-05"}]
    site_of = SITE_OF
    return {
        "dm": _frame("dm", site_of, dm), "ds": _frame("ds", site_of, ds), "lb": _frame("lb", site_of, lb),
        "fa": _frame("fa", site_of, fa), "ie": _frame("ie", site_of, ie),
    }


@pytest.fixture(scope="module")
def outcome():
    protocol = parse_protocol(yaml.safe_load(PROTOCOL_YAML))
    data = domains()
    result = evaluate(data, protocol, AS_OF)
    return compare(result, data, protocol, AS_OF)


def test_end_to_end_discrepancy_keys(outcome):
    keys = outcome.discrepancies.select("SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY").rows()
    assert keys == [
        ("101", "A2", "IN10", "IE_MISMATCH", "IMPORTANT"),
        ("101", "A2", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT"),
        ("101", "A3", "IN07", "IE_MISMATCH", "QUERY"),
        ("101", "A3", "IN07", "SCREEN_FAIL_UNSUPPORTED", "QUERY"),
        ("101", "A4", "IN10.HGB", "UNVERIFIABLE", "QUERY"),
        ("101", "A4", "PC03", "PROCESS", "IMPORTANT"),
        # site 102 is not-met-only (B2 has only its failing row), so B1's absent EX07 is an implied
        # "does not apply"; B2's recorded IN07=N is supported (KPS 70): nothing to report
        ("102", "B1", "EX07", "IE_MISMATCH", "IMPORTANT"),
        ("102", "B1", "EX07", "INELIGIBLE_ENROLLED", "IMPORTANT"),
    ]


def test_end_to_end_subjects(outcome):
    assert outcome.subjects.select("USUBJID", "SITE_DECISION", "RECOMPUTED", "N_DISCREPANCIES").rows() == [
        ("A1", "ENROLLED", "ELIGIBLE", 0),
        ("A2", "ENROLLED", "INELIGIBLE", 2),
        ("A3", "SCREEN FAILURE", "ELIGIBLE", 2),
        ("A4", "ENROLLED", "UNVERIFIABLE", 2),
        ("B1", "ENROLLED", "INELIGIBLE", 2),
        ("B2", "SCREEN FAILURE", "INELIGIBLE", 0),
    ]


def test_end_to_end_golden_evidence(outcome):
    evidence = dict(zip(
        outcome.discrepancies.select(pl.concat_str("USUBJID", "CHECK_ID", "CLASS", separator="/")).to_series(),
        outcome.discrepancies["EVIDENCE"], strict=True))
    assert evidence["A2/IN10.PLT/INELIGIBLE_ENROLLED"] == (
        "IN10.PLT 52 10^9/L on 2026-03-02 does not meet IN10 (limit >= 60 10^9/L); "
        "the site recorded IN10 as met (IN10=Y) and enrolled the subject.")
    assert evidence["B1/EX07/INELIGIBLE_ENROLLED"] == (
        "EX07 7 cm on 2026-03-03 meets exclusion EX07 (limit > 5 cm); the site recorded EX07 as not applying "
        "(no IE row in a not-met-only checklist) and enrolled the subject.")
