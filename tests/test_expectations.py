"""Validation suites on tiny planted data: each kind of finding, and none on clean data.

The Great Expectations runs are module-scoped fixtures (one planted trial, one clean trial), because
each run costs a second or more; every test then asserts on their results.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest
import yaml

from contracts import EXCLUSIONS, FINDINGS, check_table
from contracts.protocol import Protocol, parse_protocol
from core.source import source_text
from expectations import finish_validation, list_expectations, publish_data_docs, validate_domain
from storage import LocalStore

STUDY = "SZ003"


#: A small real protocol: three criteria whose rules read exactly HGB, PLAT, CREAT (with WEIGHT, through
#: the Cockcroft-Gault clearance), HBSAG, HBVDNA and HCG, so that the completeness suites have needs.
PROTOCOL_YAML = """
id: SZ003
title: validation test protocol
version: {tivers: "1.0", effective: 2024-01-01}
parameters: {screening_window_days: 28}
criteria:
  - id: IN06
    category: INCLUSION
    components:
      - {id: IN06, rule: {kind: derived, value: AGE_AT_CONSENT, range: [18, 80]}}
  - id: IN10
    category: INCLUSION
    components:
      - {id: IN10.HGB, rule: {kind: threshold, domain: LB, test: HGB, op: ">=", limit: 9}}
      - {id: IN10.PLT, rule: {kind: threshold, domain: LB, test: PLAT, op: ">=", limit: 60}}
      - {id: IN10.CRCL, rule: {kind: derived, value: CRCL_CG, op: ">=", limit: 40}}
      - id: IN10.HBV
        applies_when: {kind: coded, domain: LB, test: HBSAG, values: [POSITIVE], valid: [POSITIVE, NEGATIVE]}
        rule: {kind: threshold, domain: LB, test: HBVDNA, op: "<", limit: 200}
  - id: EX15
    category: EXCLUSION
    components:
      - {id: EX15, rule: {kind: coded, domain: LB, test: HCG, values: [POSITIVE]}}
"""


def FakeProtocol() -> Protocol:
    return parse_protocol(yaml.safe_load(PROTOCOL_YAML))


def frame(domain: str, rows: list[dict], site: str = "101") -> pl.DataFrame:
    """A delivered frame as ingestion hands it over: all text, plus SOURCE_KEY / SOURCE_ROW / DELIVERY_SITEID /
    DECIMAL."""
    data = pl.DataFrame(rows, infer_schema_length=None).cast(pl.String)
    return data.with_columns(
        pl.lit(f"SZ003/{site}/20261127T230000Z/{domain}.csv").alias("SOURCE_KEY"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("SOURCE_ROW"),
        pl.lit(site).alias("DELIVERY_SITEID"), pl.lit(".").alias("DECIMAL"))


def dm_row(subject: str, sex: str = "M", dosed: bool = True, **extra) -> dict:
    row = dict(STUDYID=STUDY, USUBJID=subject, SITEID="101", SUBJID=subject[-3:], BRTHDTC="1960-05",
               SEX=sex, RFICDTC="2026-01-05", RFXSTDTC="2026-02-01" if dosed else None, AGE="65", COUNTRY="DEU")
    return {**row, **extra}


def lb_row(subject: str, test: str, result: str, unit: str | None, low: str | None = None,
           high: str | None = None, date: str = "2026-01-20", **extra) -> dict:
    row = dict(STUDYID=STUDY, USUBJID=subject, LBTESTCD=test, LBORRES=result, LBORRESU=unit,
               LBORNRLO=low, LBORNRHI=high, LBSTAT=None, LBDTC=date)
    return {**row, **extra}


def complete_lb(subject: str, **overrides: tuple) -> list[dict]:
    """Every needed result of a clean subject (HBsAg negative, so HBV DNA is not needed)."""
    tests = {"HGB": ("13.5", "g/dL", "12", "16"), "PLAT": ("210", "10^9/L", "150", "400"),
             "CREAT": ("80", "umol/L", "60", "110"), "HBSAG": ("NEGATIVE", None, None, None),
             "HCG": ("NEGATIVE", None, None, None)}
    tests.update(overrides)
    return [lb_row(subject, test, *values) for test, values in tests.items()]


def ie_rows(subject: str, answers: dict[str, str]) -> list[dict]:
    categories = {"IN06": "INCLUSION", "IN10": "INCLUSION", "EX15": "EXCLUSION"}
    return [dict(STUDYID=STUDY, USUBJID=subject, IETESTCD=c, IECAT=categories.get(c, "INCLUSION"), IEORRES=a,
                 IEDTC="2026-01-30") for c, a in answers.items()]


def vs_row(subject: str, test: str = "WEIGHT", result: str = "72", unit: str = "kg") -> dict:
    return dict(STUDYID=STUDY, USUBJID=subject, VSTESTCD=test, VSORRES=result, VSORRESU=unit, VSDTC="2026-01-20")


def ds_row(subject: str, decod: str = "ENROLLED") -> dict:
    return dict(STUDYID=STUDY, USUBJID=subject, DSCAT="DISPOSITION EVENT", DSDECOD=decod, DSTERM=None,
                DSSTDTC="2026-02-01")


CLEAN_IE = {"IN06": "Y", "IN10": "Y", "EX15": "N"}


def clean_trial() -> dict[str, pl.DataFrame]:
    subjects = ["SZ003-101-001", "SZ003-101-002"]
    return {
        "dm": frame("dm", [dm_row(subjects[0], "F"), dm_row(subjects[1], "M")]),
        "ds": frame("ds", [ds_row(s) for s in subjects]),
        "ie": frame("ie", [r for s in subjects for r in ie_rows(s, CLEAN_IE)]),
        "lb": frame("lb", [*complete_lb(subjects[0]), *complete_lb(subjects[1], HGB=("135", "g/L", "120", "160")),
                           lb_row(subjects[0], "HBVDNA", "<10", "IU/mL"),
                           lb_row(subjects[0], "ALT", "0.5", "ukat/L", "0.1", "0.6", date="2026-01-21"),
                           lb_row(subjects[1], "HCVRNA", "NOT DETECTED", None)]),
        "vs": frame("vs", [vs_row(s) for s in subjects]),
    }


S1, S2, S3, S4 = "SZ003-101-001", "SZ003-101-002", "SZ003-101-003", "SZ003-102-004"


def planted_trial() -> dict[str, pl.DataFrame]:
    """One clean subject (S1) and one planted problem per row elsewhere; comments name the finding."""
    dm = pl.concat([
        frame("dm", [
            dm_row(S1, "F"),
            dm_row(S2, "X", dosed=False, BRTHDTC="1960-13"),  # SEX not allowed; invalid date
            dm_row(S3, dosed=False, RFICDTC=" "),  # required value blank
            dm_row(S3, dosed=False, COUNTRY="FRA"),  # duplicate DM key, conflicting
        ]),
        frame("dm", [dm_row(S4, dosed=False, SITEID="101")], site="102"),  # SITEID differs from the path
    ])
    lb = frame("lb", [
        *complete_lb(S1, HBSAG=("REACTIVE", None, None, None)),  # HBsAg positive: HBV DNA needed, absent
        lb_row(S2, "HGB", "250", "g/dL", "12", "16"),  # implausible high
        lb_row(S2, "PLAT", "-5", "10^9/L", "150", "400"),  # implausible low (negative count)
        lb_row(S2, "WBC", "abc", "10^9/L", "4", "10"),  # not a number
        lb_row(S2, "CREAT", "80", "furlongs", "60", "110"),  # unknown unit
        lb_row(S2, "ALB", "40", "g/L", "50", "35"),  # reference range low above high
        lb_row(S2, "LYM", "1.2", "10^9/L", "x", "4"),  # reference low not a number
        lb_row(S2, "ALT", "30", "U/L", "0.1", "0.6"),  # reference range in another unit than the result
        lb_row(S2, "HBSAG", "maybe", None),  # qualitative result not a known code
        lb_row("SZ003-101-999", "HGB", "13", "g/dL"),  # subject not in DM
        lb_row(S2, "BILI", "0.5", "mg/dL", STUDYID="SZ999"),  # another study
        lb_row(S2, "AST", "", "U/L", "5", "40", LBSTAT="NOT DONE"),  # blank result allowed when NOT DONE
        lb_row(S2, "AMYLASE", "", "U/L", "5", "40"),  # blank result, not NOT DONE
        lb_row(S2, "LYM", "900000", "cells/uL", date="2026-01-21"),  # implausible once converted
    ])
    lb_other_site = frame("lb", [lb_row(S1, "HGB", "12", "g/dL", date="2026-01-22")], site="102")  # wrong site
    return {
        "dm": dm,
        # S3 and S4 are still in screening; S2's verbatim reason would run as a spreadsheet formula
        "ds": frame("ds", [ds_row(S1), {**ds_row(S2, "SCREEN FAILURE"), "DSTERM": '=HYPERLINK("x")'}]),
        "ie": frame("ie", [
            *ie_rows(S1, CLEAN_IE),
            *ie_rows(S1, {"IN06": "N"}),  # second, conflicting answer for IN06
            *ie_rows(S2, {"IN06": "Y", "IN99": "Y"}),  # unknown criterion; IN10 and EX15 missing
            dict(STUDYID=STUDY, USUBJID=S2, IETESTCD="EX15", IECAT="INCLUSION", IEORRES="N", IEDTC="2026-02-30"),
        ]),
        "lb": pl.concat([lb, lb_other_site]),
        "vs": frame("vs", [vs_row(S1, result="720", unit="kg")]),  # implausible weight
    }


def run(domains: dict[str, pl.DataFrame], workdir: Path, threads: int = 1):
    """One validate_domain per domain (in parallel threads, as the flow may run them), then finish."""
    def one(domain: str):
        return validate_domain(domain, domains, study=STUDY, protocol=FakeProtocol())

    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = list(pool.map(one, ("dm", "ds", "ie", "lb", "vs", "mh")))
    return finish_validation(parts, workdir=workdir)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    return run(planted_trial(), tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory):
    return run(clean_trial(), tmp_path_factory.mktemp("clean"), threads=3)


def findings_of(result, kind: str) -> pl.DataFrame:
    return result.findings.filter(pl.col("CHECK").str.contains(f".{kind}.", literal=True))


def test_clean_trial_has_no_finding(clean) -> None:
    assert clean.findings.height == 0, clean.findings.select("CHECK", "OBSERVED", "MESSAGE").to_dicts()
    assert clean.exclusions.height == 0
    assert clean.rejected.height == 0
    assert clean.rows_validated == {"dm": 2, "ds": 2, "ie": 6, "lb": 13, "vs": 2, "mh": 0}


def test_tables_keep_their_contracts(planted) -> None:
    check_table(planted.findings, FINDINGS, "validation")
    check_table(planted.exclusions, EXCLUSIONS, "exclusions")
    assert planted.findings.filter(pl.col("SITEID").is_null() | pl.col("SOURCE").is_null()).height == 0


@pytest.mark.parametrize(("kind", "source", "observed", "message_part"), [
    ("plausible_high", "lb.csv:6", "250 g/dL", "above the plausible range 2-25 g/dL"),
    ("plausible_low", "lb.csv:7", "-5 10^9/L", "below the plausible range 0-2000 10^9/L"),
    ("plausible_high", "lb.csv:18", "900000 cells/uL", "LYM 900000 cells/uL (900 10^9/L) is above the plausible range"),
    ("numeric_result", "lb.csv:8", "abc", "WBC result abc is not a number"),
    ("unit_known", "lb.csv:9", "furlongs", "UNKNOWN_UNIT"),
    ("range_order", "lb.csv:10", "50-35 g/L", "low 50 is not below high 35"),
    ("range_numeric", "lb.csv:11", "x", "LBORNRLO x is not a number"),
    ("range_unit", "lb.csv:12", "0.1-0.6 U/L", "not plausible in the result's unit"),
    ("coded_result", "lb.csv:13", "maybe", "not a known qualitative result"),
    ("in_dm", "lb.csv:14", "SZ003-101-999", "not in DM"),
    ("study", "lb.csv:15", "SZ999", "not the audited study SZ003"),
    ("required_unless_not_done", "lb.csv:17", "(blank)", "LBORRES is blank and LBSTAT does not say NOT DONE"),
    ("subject_site", "102/20261127T230000Z/lb.csv:1", "101", "belongs to site 101 in DM but was delivered by site 102"),
    ("allowed", "dm.csv:2", "X", "SEX X is not one of the DTS values M, F, U"),
    ("iso_date", "dm.csv:2", "(withheld)", "BRTHDTC (withheld) is not an ISO 8601 date"),
    ("required", "dm.csv:3", "(blank)", "RFICDTC is blank"),
    ("site", "102/20261127T230000Z/dm.csv:1", "101", "differs from the delivery path's site 102"),
    ("plausible_high", "vs.csv:1", "720 kg", "above the plausible range 20-300 kg"),
    ("ie_criterion", "ie.csv:6", "IN99", "not a criterion of protocol SZ003"),
    ("ie_category", "ie.csv:7", "INCLUSION", "differs from the protocol's category EXCLUSION"),
    ("iso_date", "ie.csv:7", "2026-02-30", "IEDTC 2026-02-30 is not an ISO 8601 date"),
    ("formula_text", "ds.csv:2", '=HYPERLINK("x")', "DSTERM =HYPERLINK(\"x\") would run as a formula"),
])
def test_each_planted_problem_is_one_readable_finding(planted, kind, source, observed, message_part) -> None:
    rows = findings_of(planted, kind).filter(pl.col("SOURCE").str.ends_with(source))
    assert rows.height == 1, findings_of(planted, kind).select("SOURCE", "MESSAGE").to_dicts()
    assert rows["OBSERVED"][0] == observed
    assert message_part in rows["MESSAGE"][0]


def test_clean_rows_of_the_planted_trial_have_no_finding(planted) -> None:
    clean_lb = [f"lb.csv:{i}$" for i in range(1, 6)]  # S1's complete results (HBsAg REACTIVE is a valid code)
    hits = planted.findings.filter(pl.col("SOURCE").str.contains("/101/")
                                   & pl.col("SOURCE").str.contains("|".join(clean_lb)))
    assert hits.height == 0, hits.to_dicts()
    assert findings_of(planted, "required_unless_not_done").filter(
        pl.col("SOURCE").str.ends_with("lb.csv:16")).height == 0  # NOT DONE with a blank result is fine


def test_duplicate_keys_reject_conflicting_rows(planted) -> None:
    dups = findings_of(planted, "unique_key")
    # one finding per duplicated key, at its first row, naming every row of the key
    assert dups.filter(pl.col("DOMAIN") == "DM")["SOURCE"].str.extract(r"(dm\.csv:\d)").to_list() == ["dm.csv:3"]
    assert ("occurs 2 times in DM (conflicting values: SZ003/101/20261127T230000Z/dm.csv records 3, 4 after the "
            "header); none of them is used") in dups["MESSAGE"][0]
    ie = dups.filter(pl.col("DOMAIN") == "IE")
    assert ie["OBSERVED"].to_list() == ["USUBJID=SZ003-101-001, IETESTCD=IN06"]
    rejected = set(planted.rejected.select(source_text()).to_series().str.extract(r"/([a-z]+\.csv:\d+)$"))
    assert {"dm.csv:3", "dm.csv:4", "ie.csv:1", "ie.csv:4", "lb.csv:14", "lb.csv:15"} <= rejected


def test_identical_copies_keep_the_first(tmp_path: Path) -> None:
    row = ie_rows(S1, {"IN06": "Y"})[0]
    domains = {"dm": frame("dm", [dm_row(S1)]), "ie": frame("ie", [row, row])}
    part = validate_domain("ie", domains, study=STUDY)
    assert part.findings["MESSAGE"].to_list() == [
        "USUBJID=SZ003-101-001, IETESTCD=IN06 occurs 2 times in IE (identical copies: "
        "SZ003/101/20261127T230000Z/ie.csv records 1, 2 after the header); only the first copy is used"]
    assert part.rejected.select("SOURCE_KEY", "SOURCE_ROW").rows() == [domains["ie"].select("SOURCE_KEY",
                                                                                             "SOURCE_ROW").row(1)]


def _vs(subject: str, result: str, **qualifiers) -> dict:
    return {**vs_row(subject, "SYSBP", result, "mmHg"), "VSDTC": "2026-01-20", **qualifiers}


def test_repeated_measurements_told_apart_by_time_point_and_position_are_not_duplicates(tmp_path: Path) -> None:
    """DTS section 2: the natural key includes --TPTNUM, --POS... where delivered."""
    rows = [_vs(S1, "120", VSTPTNUM="1", VSTPT="1 MIN", VSPOS="SITTING"),
            _vs(S1, "124", VSTPTNUM="2", VSTPT="3 MIN", VSPOS="SITTING"),
            _vs(S1, "118", VSTPTNUM="1", VSTPT="1 MIN", VSPOS="STANDING"),
            _vs(S1, "131", VSTPTNUM="1", VSTPT="1 MIN", VSPOS="SITTING"),  # a true duplicate of row 1: conflicting
            _vs(S1, "99", VSTPTNUM="1", VSTPT="1 MIN", VSPOS="SITTING")]  # three rows of one key, one finding
    domains = {"dm": frame("dm", [dm_row(S1)]), "vs": frame("vs", rows)}
    part = validate_domain("vs", domains, study=STUDY)
    dups = part.findings.filter(pl.col("CHECK") == "VS.unique_key.USUBJID+VSTESTCD+VSDTC")
    assert dups.height == 1
    row = dups.row(0, named=True)
    assert row["SOURCE"] == "SZ003/101/20261127T230000Z/vs.csv:1"
    assert row["MESSAGE"] == (
        "USUBJID=SZ003-101-001, VSTESTCD=SYSBP, VSDTC=2026-01-20, VSTPTNUM=1, VSTPT=1 MIN, VSPOS=SITTING occurs 3 "
        "times in VS (conflicting values: SZ003/101/20261127T230000Z/vs.csv records 1, 4, 5 after the header); none "
        "of them is used")
    # rows 2 and 3 are other measurements; 1, 4 and 5 stay records of a measurement whose value is not known
    assert part.rejected.height == 0
    assert sorted(part.exclusions.filter(pl.col("VARIABLE") == "VSORRES")["SOURCE_ROW"].to_list()) == [1, 4, 5]


def test_a_blank_qualifier_is_a_value_of_its_own(tmp_path: Path) -> None:
    rows = [_vs(S1, "120", VSTPTNUM="1"), _vs(S1, "124", VSTPTNUM=None), _vs(S1, "126", VSTPTNUM=None)]
    domains = {"dm": frame("dm", [dm_row(S1)]), "vs": frame("vs", rows)}
    part = validate_domain("vs", domains, study=STUDY)
    assert part.findings.filter(pl.col("CHECK").str.contains("unique_key"))["SOURCE"].to_list() == [
        "SZ003/101/20261127T230000Z/vs.csv:2"]  # rows 2 and 3 (both blank) are one key; row 1 is another
    assert sorted(part.exclusions.filter(pl.col("VARIABLE") == "VSORRES")["SOURCE_ROW"].to_list()) == [2, 3]


def test_without_qualifier_columns_the_same_test_and_date_twice_is_a_duplicate(tmp_path: Path) -> None:
    domains = {"dm": frame("dm", [dm_row(S1)]), "vs": frame("vs", [_vs(S1, "120"), _vs(S1, "124")])}
    part = validate_domain("vs", domains, study=STUDY)
    assert sorted(part.exclusions.filter(pl.col("VARIABLE") == "VSORRES")["SOURCE_ROW"].to_list()) == [1, 2]
    assert part.findings.filter(pl.col("CHECK").str.contains("unique_key")).height == 1


def test_implausible_and_unusable_values_are_excluded(planted) -> None:
    excluded = {(s.rsplit("/", 1)[-1], v)
                for s, v in planted.exclusions.select(source_text(), "VARIABLE").iter_rows()}
    assert {("lb.csv:6", "LBORRES"), ("lb.csv:7", "LBORRES"), ("lb.csv:8", "LBORRES"), ("lb.csv:9", "LBORRES"),
            ("lb.csv:13", "LBORRES"), ("lb.csv:10", "LBORNRHI"), ("lb.csv:11", "LBORNRLO"),
            ("lb.csv:12", "LBORNRHI"), ("vs.csv:1", "VSORRES"), ("dm.csv:2", "BRTHDTC")} <= excluded
    message = planted.exclusions.filter(source_text().str.ends_with("/lb.csv:6"))["MESSAGE"][0]
    assert message.startswith("HGB 250 g/dL") and "not used for eligibility" in message


def test_needed_results_follow_the_conditions(planted) -> None:
    needs = findings_of(planted, "needed_results").filter(pl.col("USUBJID") == S1)
    # S1 is an enrolled woman with a reactive HBsAg: HBV DNA is needed and absent; HCG is present
    assert needs.select("DOMAIN", "VARIABLE", "OBSERVED").rows() == [("LB", "LBTESTCD", "HBVDNA: no result")]
    assert needs["MESSAGE"][0] == ("ENROLLED subject has no HBVDNA result in LB: "
                                   "IN10.HBV cannot be verified")  # the component that reads it is named
    # S2 is a screen failure: results are not required, the IE checklist is
    assert findings_of(planted, "needed_results").filter(pl.col("USUBJID") == S2).height == 0


def test_a_test_a_site_never_delivers_is_one_finding_for_the_site(tmp_path: Path) -> None:
    """Site 102 has no weight for any subject: one site-level finding, not one per subject; at site 101
    one subject lacks it while the other has it: that subject's own finding."""
    s5, s6, s7 = "SZ003-102-005", "SZ003-102-006", "SZ003-102-007"
    site_102 = [s5, s6, s7]
    domains = {
        "dm": pl.concat([frame("dm", [dm_row(S1), dm_row(S2)]),
                         frame("dm", [dm_row(s, SITEID="102", dosed=s != s7) for s in site_102], site="102")]),
        "ds": pl.concat([frame("ds", [ds_row(S1), ds_row(S2)]),
                         frame("ds", [ds_row(s5), ds_row(s6), ds_row(s7, "SCREEN FAILURE")], site="102")]),
        "lb": pl.concat([frame("lb", [*complete_lb(S1), *complete_lb(S2)]),
                         frame("lb", [r for s in site_102 for r in complete_lb(s)], site="102")]),
        "vs": frame("vs", [vs_row(S1)]),  # S2 and every subject of site 102 without a weight
    }
    part = validate_domain("dm", domains, study=STUDY, protocol=FakeProtocol())
    weight = part.findings.filter(pl.col("DOMAIN") == "VS").sort("SITEID")
    assert weight.select("SITEID", "USUBJID", "VARIABLE", "OBSERVED", "CHECK").rows() == [
        ("101", S2, "VSTESTCD", "WEIGHT: no result", "DM.needed_results.MISSING_VS"),
        ("102", None, "VSTESTCD", "WEIGHT: no result at the site", "DM.needed_results_site.SITE_MISSING_VS")]
    site = weight.row(1, named=True)
    assert site["MESSAGE"] == ("Site 102 delivers no WEIGHT result in VS for any subject: IN10.CRCL cannot be "
                               "verified for its 2 ENROLLED subjects")  # the screen failure needs no weight
    assert site["SOURCE"] == "SZ003/102/20261127T230000Z/dm.csv"  # no VS file from the site: its DM file


def test_a_single_subject_gap_stays_that_subjects_finding(tmp_path: Path) -> None:
    s5 = "SZ003-102-005"
    domains = {"dm": frame("dm", [dm_row(s5, SITEID="102")], site="102"),
               "ds": frame("ds", [ds_row(s5)], site="102"),
               "lb": frame("lb", complete_lb(s5), site="102"),
               "vs": frame("vs", [vs_row(S1)])}
    part = validate_domain("dm", domains, study=STUDY, protocol=FakeProtocol())
    assert part.findings.filter(pl.col("DOMAIN") == "VS")["USUBJID"].to_list() == [s5]


def test_ie_checklist_of_decided_subjects(planted) -> None:
    missing = findings_of(planted, "ie_checklist")
    assert missing.select("USUBJID", "OBSERVED").rows() == [(S2, "IN10: no answer")]


def test_data_docs_are_built_and_published(planted, tmp_path: Path) -> None:
    index = planted.data_docs / "index.html"
    html = index.read_text(encoding="utf-8")
    assert "screening_lb" in html and "screening_dm" in html
    keys = publish_data_docs(planted.data_docs, LocalStore(tmp_path), "SZ003/2026-11-28/data_docs")
    assert "SZ003/2026-11-28/data_docs/index.html" in keys
    assert (tmp_path / "SZ003/2026-11-28/data_docs/index.html").read_text(encoding="utf-8") == html


def test_expectations_are_saved_with_the_run(planted) -> None:
    ids = [item["id"] for item in planted.expectations]
    assert len(ids) == len(set(ids))
    assert "LB.plausible_high.LBORRES" in ids and "DM.ie_checklist.MISSING_IE" in ids


def test_list_expectations_is_generated_from_the_sources() -> None:
    items = list_expectations(FakeProtocol())
    by_id = {item["id"]: item for item in items}
    assert by_id["DM.allowed.SEX"]["kwargs"] == {"column": "SEX", "value_set": ["M", "F", "U"]}
    assert by_id["IE.ie_criterion.IETESTCD"]["kwargs"]["value_set"] == ["EX15", "IN06", "IN10"]
    assert by_id["DM.needed_results.MISSING_LB"]["meaning"].endswith("(LB CREAT, HBSAG, HBVDNA, HCG, HGB, PLAT)")
    assert by_id["LB.plausible_high.LBORRES"]["expectation"] == "expect_column_pair_values_a_to_be_greater_than_b"
    assert {item["domain"] for item in items} == {"DM", "DS", "IE", "LB", "VS", "MH", "CM", "PR", "TU", "TR", "FA"}
    # without a protocol, only the DTS and unit-catalog checks remain
    assert not [i for i in list_expectations() if i["kind"] in {"needed_results", "ie_checklist", "ie_criterion"}]


def test_birth_dates_are_never_quoted(planted) -> None:
    """A non-ISO birth date is reported, but its value appears in no table, message, result or Data Docs."""
    flagged = planted.findings.filter((pl.col("VARIABLE") == "BRTHDTC") & (pl.col("USUBJID") == S2))
    assert flagged["OBSERVED"].to_list() == ["(withheld)"]
    tables = [planted.findings, planted.exclusions, planted.rejected]
    text = "\n".join(str(row) for table in tables for row in table.rows())
    files = [p for p in planted.data_docs.parent.rglob("*") if p.is_file() and p.suffix in {".html", ".json"}]
    assert files
    text += "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    for birth in ("1960-13", "1960-05"):
        assert birth not in text


def test_a_domain_returns_its_ge_documents_as_data_and_writes_no_file(tmp_path: Path, monkeypatch) -> None:
    """No shared disk: what a validation task sends back is plain JSON data (no path, nothing left in a
    folder of the worker), from which the caller alone builds the Data Docs; a birth date is in none of it."""
    import json
    import pickle

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    part = validate_domain("dm", planted_trial(), study=STUDY, protocol=FakeProtocol())
    assert list(tmp_path.iterdir()) == []
    documents = json.dumps([part.gx_suite, part.gx_result])
    assert part.gx_suite["name"] == "screening_dm" and part.gx_result["success"] is False
    assert "Path(" not in repr(pickle.loads(pickle.dumps(part)))
    for birth in ("1960-13", "1960-05"):
        assert birth not in documents
    from expectations.docs import build_data_docs

    site = build_data_docs([part], tmp_path / "flow")
    assert "screening_dm" in (site / "index.html").read_text(encoding="utf-8")


def test_a_result_document_holds_a_sample_of_the_failing_rows_whatever_their_number(tmp_path: Path) -> None:
    """GE returns every failing row of a compound-key check in its "partial" list, and a query naming each:
    the document the Data Docs are built from keeps SAMPLE_ROWS of them (the failing rows are the findings)."""
    from expectations.gx_run import SAMPLE_ROWS

    rows = [_vs(S1, str(100 + i % 2)) for i in range(60)]  # one key delivered 60 times, with two values
    domains = {"dm": frame("dm", [dm_row(S1)]), "vs": frame("vs", rows)}
    part = validate_domain("vs", domains, study=STUDY)
    # no row is used (every one excluded: a measurement whose value is not known)
    assert sorted(part.exclusions.filter(pl.col("VARIABLE") == "VSORRES")["SOURCE_ROW"].to_list()) == \
        list(range(1, 61))
    results = [r["result"] for r in part.gx_result["results"]
               if r["expectation_config"]["type"] == "expect_compound_columns_to_be_unique"]
    failing = [r for r in results if r.get("unexpected_count")]
    assert failing and all(r["unexpected_count"] == 60 for r in failing)
    for result in failing:
        for key in ("unexpected_index_list", "partial_unexpected_index_list"):
            assert [len(entry["SOURCE"]) for entry in result[key]] == [SAMPLE_ROWS]
        assert "unexpected_index_query" not in result


def test_a_number_with_the_other_decimal_mark_names_the_manifest_setting(tmp_path: Path) -> None:
    """A user trial: a site whose manifest declared "decimal": "," at its top level while its files use "." got
    ~1,700 findings "8.0 is not a number", each asking to check the value against the source; the one-line fix,
    the manifest's setting, was named nowhere. The value is still not read (never a guess)."""
    lb = frame("lb", [lb_row(S1, "HGB", "13.5", "g/dL", "12", "16"),
                      lb_row(S1, "PLAT", "210", "10^9/L", "150", "400,0")])
    comma = lb.with_columns(pl.lit(",").alias("DECIMAL"))
    domains = {"dm": frame("dm", [dm_row(S1)])}
    wrong = validate_domain("lb", {**domains, "lb": comma}, study=STUDY).findings
    by_check = dict(zip(wrong["CHECK"], wrong["MESSAGE"], strict=False))
    assert by_check["LB.numeric_result.LBORRES"] == (
        "HGB result 13.5 is not a number (or a censored number like <0.5), because manifest.json declares the "
        "decimal comma for this file (its own entry, or the manifest's top-level \"decimal\") and '.' is not read "
        "as one: not used")
    assert "LB.range_numeric.LBORNRHI" not in by_check  # "400,0" is a number with the decimal comma
    right = validate_domain("lb", {**domains, "lb": lb}, study=STUDY).findings
    assert right.filter(pl.col("CHECK") == "LB.numeric_result.LBORRES").height == 0
    assert right.filter(pl.col("CHECK") == "LB.range_numeric.LBORNRHI")["MESSAGE"].to_list() == [
        "PLAT LBORNRHI 400,0 is not a number, because this file's decimal mark is '.' (manifest.json declares no "
        "\"decimal\": \",\" for it) and ',' is not read as one: the reference limit is not used"]


@pytest.mark.parametrize(("text", "mark", "hint"), [
    ("8.0", ",", "declares the decimal comma"), ("9,5", ".", "declares no"), ("<0,5", ".", "declares no"),
    ("-1,5", ".", "declares no"), ("1,234", ".", "thousands separator"), ("1.234", ",", "thousands separator"),
    ("9,5", ",", ""), ("8.0", ".", ""), ("abc", ",", ""), (None, ",", ""), ("1,234.5", ".", ""), ("1.234,5", ",", "")])
def test_the_decimal_hint_names_the_setting_and_never_a_thousands_separator_as_a_decimal_mark(text, mark, hint):
    """A mark followed by three digits may be a thousands separator (helper-38): `1,234` in a "." file told to
    declare the decimal comma would be read as 1.234, a thousand times too small, without any finding."""
    from core.values import decimal_hint

    said = pl.select(decimal_hint(pl.lit(text, pl.String), pl.lit(mark))).item()
    assert (hint in said) if hint else said == ""
    if hint == "thousands separator":
        assert "decimal comma" not in said and "no separator" in said
