"""End-to-end behaviour of evaluate() on the bundled SZ003 protocol, with the sample eligible subject."""

from __future__ import annotations

from datetime import date

import polars as pl

from checks.evaluation import CRITERIA_COLUMNS, REFERENCE_COLUMNS, EligibilityResult, evaluate
from contracts import ELIGIBILITY
from contracts.protocol import load_protocol
from tests.support.sample_subject import frames, subject_rows

PROTOCOL = load_protocol()
AS_OF = date(2025, 6, 1)


def test_eligible_subject_meets_every_component():
    result = evaluate(frames(subject_rows()), PROTOCOL, AS_OF)
    assert isinstance(result, EligibilityResult)
    assert result.eligibility.columns == [*ELIGIBILITY, "REASON_CODE", "DELIVERED"]
    assert result.eligibility.height == 51
    outcomes = dict(zip(result.eligibility["CHECK_ID"], result.eligibility["OUTCOME"], strict=True))
    assert {c for c, o in outcomes.items() if c.startswith("IN") and o != "MET"} == set()
    assert {c for c, o in outcomes.items() if c.startswith("EX") and o != "NOT_APPLICABLE"} == set()
    assert result.criteria.columns == CRITERIA_COLUMNS
    assert result.criteria.height == 28
    assert result.reference.columns == REFERENCE_COLUMNS
    assert result.reference.row(0, named=True) == {
        "STUDYID": "SZ003", "SITEID": "101", "USUBJID": "SZ003-101-001", "SITE_DECISION": "ENROLLED",
        "CONSENT_DTC": "2025-02-09", "TREATMENT_START": "2025-03-01", "TIVERS": "1.0"}


def test_rows_evaluated_counts_rows_after_rejection():
    domains = frames(subject_rows())
    rejected = domains["lb"].head(1).select("SOURCE_KEY", "SOURCE_ROW", DOMAIN=pl.lit("LB"),
                                            VARIABLE=pl.lit("USUBJID"), MESSAGE=pl.lit("orphan"))
    result = evaluate(domains, PROTOCOL, AS_OF, rejected=rejected)
    assert result.rows_evaluated["lb"] == domains["lb"].height - 1
    assert result.rows_evaluated["dm"] == 1
    row = result.eligibility.filter(pl.col("CHECK_ID") == "IN10.WBC").row(0, named=True)
    assert (row["OUTCOME"], row["REASON_CODE"]) == ("UNVERIFIABLE", "MISSING")


# ---------------------------------------------------------------------------- validation exclusions


def _exclude(domains: dict[str, pl.DataFrame], domain: str, where: pl.Expr, variable: str,
             message: str) -> pl.DataFrame:
    return domains[domain.lower()].filter(where).select("SOURCE_KEY", "SOURCE_ROW", DOMAIN=pl.lit(domain),
                                                         VARIABLE=pl.lit(variable), MESSAGE=pl.lit(message))


def _component(result: EligibilityResult, check: str, subject: str = "SZ003-101-001") -> dict:
    return result.eligibility.filter((pl.col("CHECK_ID") == check) & (pl.col("USUBJID") == subject)).row(
        0, named=True)


def test_excluded_value_is_never_used():
    domains = frames(subject_rows())
    exclusions = _exclude(domains, "LB", pl.col("LBTESTCD") == "HGB", "LBORRES",
                          "HGB 250 g/dL is outside the plausible range 2-25 g/dL")
    row = _component(evaluate(domains, PROTOCOL, AS_OF, exclusions=exclusions), "IN10.HGB")
    assert (row["OUTCOME"], row["REASON_CODE"], row["VALUE"]) == ("UNVERIFIABLE", "EXCLUDED_BY_VALIDATION", None)
    assert row["REASON"] == "HGB 250 g/dL is outside the plausible range 2-25 g/dL"
    # the excluded record is named, so that the component's query can point the site at it
    hgb = domains["lb"].filter(pl.col("LBTESTCD") == "HGB").row(0, named=True)
    assert row["SOURCE"] == f"{hgb['SOURCE_KEY']}:{hgb['SOURCE_ROW']}"


def test_an_excluded_lym_without_a_pair_names_the_excluded_record():
    # an excluded LYM without a LYMLE x WBC pair of the same draw is data nobody can use: the component names the
    # record, so that its data-quality query is the site's one question (a review: a LYM delivered twice with
    # conflicting values was also "no LYM result", a second query)
    rows = subject_rows()
    rows["lb"] = [r for r in rows["lb"] if r["LBTESTCD"] != "LYMLE"]
    domains = frames(rows)
    exclusions = _exclude(domains, "LB", pl.col("LBTESTCD") == "LYM", "LBORRES", "LYM implausible")
    row = _component(evaluate(domains, PROTOCOL, AS_OF, exclusions=exclusions), "IN10.LYM")
    lym = domains["lb"].filter(pl.col("LBTESTCD") == "LYM").row(0, named=True)
    assert (row["OUTCOME"], row["REASON_CODE"], row["REASON"], row["SOURCE"]) == (
        "UNVERIFIABLE", "EXCLUDED_BY_VALIDATION",
        "LYM implausible (and no LYMLE and WBC of the same draw in the screening window)",
        f"{lym['SOURCE_KEY']}:{lym['SOURCE_ROW']}")


def test_an_excluded_latest_value_is_not_replaced_by_an_earlier_usable_one():
    """The latest result decides; when validation excluded it, nobody knows it, and the one before it is no stand-in
    (*changed*: the earlier 12.5 was used, MET, whatever the latest really was)."""
    rows = subject_rows()
    rows["lb"].append({**next(r for r in rows["lb"] if r["LBTESTCD"] == "HGB"), "LBORRES": "250",
                       "LBDTC": "2025-02-25"})
    domains = frames(rows)
    exclusions = _exclude(domains, "LB", (pl.col("LBTESTCD") == "HGB") & (pl.col("LBORRES") == "250"), "LBORRES",
                          "implausible")
    row = _component(evaluate(domains, PROTOCOL, AS_OF, exclusions=exclusions), "IN10.HGB")
    assert (row["OUTCOME"], row["REASON_CODE"], row["VALUE"]) == ("UNVERIFIABLE", "EXCLUDED_BY_VALIDATION", None)
    assert row["REASON"] == ("HGB: the latest result in the screening window is not used, and an earlier one does not "
                             "stand in for it (implausible)")


def test_excluded_upper_limit_makes_uln_component_unverifiable():
    domains = frames(subject_rows())
    exclusions = _exclude(domains, "LB", pl.col("LBTESTCD") == "ALT", "LBORNRHI", "ALT range 0-4000 implausible")
    row = _component(evaluate(domains, PROTOCOL, AS_OF, exclusions=exclusions), "IN11.ALT")
    assert (row["OUTCOME"], row["REASON_CODE"], row["REASON"]) == (
        "UNVERIFIABLE", "NO_ULN", "ALT range 0-4000 implausible")


def test_excluded_birth_date_gives_a_neutral_reason():
    domains = frames(subject_rows())
    exclusions = _exclude(domains, "DM", pl.lit(True), "BRTHDTC", "BRTHDTC 1960-05-10 is after RFICDTC")
    row = _component(evaluate(domains, PROTOCOL, AS_OF, exclusions=exclusions), "IN06")
    assert (row["OUTCOME"], row["REASON_CODE"]) == ("UNVERIFIABLE", "EXCLUDED_BY_VALIDATION")
    assert "1960" not in row["REASON"]


def test_excluded_history_date_is_not_read():
    rows = subject_rows()
    rows["mh"] = [r for r in rows["mh"] if r["MHTERM"] != "PRIOR MALIGNANCY"]
    rows["mh"].append({"STUDYID": "SZ003", "USUBJID": "SZ003-101-001", "MHTERM": "PRIOR MALIGNANCY",
                       "MHOCCUR": "Y", "MHSTDTC": "2023-01-01", "MHENDTC": "2023-06-01", "MHENRF": ""})
    domains = frames(rows)
    exclusions = _exclude(domains, "MH", pl.col("MHTERM") == "PRIOR MALIGNANCY", "MHSTDTC", "onset after consent")
    row = _component(evaluate(domains, PROTOCOL, AS_OF, exclusions=exclusions), "EX02")
    assert (row["OUTCOME"], row["REASON_CODE"], row["REASON"]) == (
        "UNVERIFIABLE", "EXCLUDED_BY_VALIDATION", "onset after consent")


def test_rejected_dm_row_removes_the_subject():
    domains = frames(subject_rows(), subject_rows(usubjid="SZ003-101-002"))
    rejected = _exclude(domains, "DM", pl.col("USUBJID") == "SZ003-101-002", "USUBJID", "duplicate subject")
    result = evaluate(domains, PROTOCOL, AS_OF, rejected=rejected)
    assert result.reference["USUBJID"].to_list() == ["SZ003-101-001"]
    assert result.eligibility["USUBJID"].unique().to_list() == ["SZ003-101-001"]


# ------------------------------------------------------------------------------ reference dates


def test_reference_dates_per_decision():
    screen_failure = subject_rows(usubjid="SZ003-102-001", site="102", decision="SCREEN FAILURE")
    in_screening = subject_rows(usubjid="SZ003-102-002", site="102", decision="IN SCREENING")
    enrolled_not_dosed = subject_rows(usubjid="SZ003-102-003", site="102")
    enrolled_not_dosed["dm"][0]["RFXSTDTC"] = ""
    partial_dose = subject_rows(usubjid="SZ003-102-004", site="102")
    partial_dose["dm"][0]["RFXSTDTC"] = "2025-03"
    domains = frames(screen_failure, in_screening, enrolled_not_dosed, partial_dose)
    result = evaluate(domains, PROTOCOL, AS_OF)
    got = {r["USUBJID"]: (r["SITE_DECISION"], r["TREATMENT_START"]) for r in result.reference.iter_rows(named=True)}
    assert got == {
        "SZ003-102-001": ("SCREEN FAILURE", "2025-03-01"),
        "SZ003-102-002": ("IN SCREENING", "2025-06-01"),
        "SZ003-102-003": ("ENROLLED", "2025-03-01"),
        "SZ003-102-004": ("ENROLLED", None),
    }
    in_screening_wbc = _component(result, "IN10.WBC", "SZ003-102-002")
    assert (in_screening_wbc["OUTCOME"], in_screening_wbc["REASON_CODE"]) == ("UNVERIFIABLE", "ONLY_BEFORE_WINDOW")
    partial = _component(result, "IN10.WBC", "SZ003-102-004")
    assert (partial["OUTCOME"], partial["REASON_CODE"]) == ("UNVERIFIABLE", "NO_TREATMENT_START")


def test_siteid_comes_from_the_delivery_and_version_from_consent():
    rows = subject_rows()
    rows["dm"][0]["SITEID"] = "999"  # the row says otherwise: the delivery path wins
    early = subject_rows(usubjid="SZ003-101-002", start=date(2024, 1, 10))  # consent 2023-12-21
    result = evaluate(frames(rows, early, site="101"), PROTOCOL, AS_OF)
    got = {r["USUBJID"]: (r["SITEID"], r["TIVERS"]) for r in result.reference.iter_rows(named=True)}
    # consent before the first version's effective date: judged by the first version (no earlier text exists)
    assert got == {"SZ003-101-001": ("101", "1.0"), "SZ003-101-002": ("101", "1.0")}
    assert set(result.eligibility["TIVERS"]) == {"1.0"}


# ------------------------------------------------------------------------------------- roll-up


def _with_lb(test: str, result: str, unit: str, usubjid: str) -> dict:
    rows = subject_rows(usubjid=usubjid)
    for row in rows["lb"]:
        if row["LBTESTCD"] == test:
            row.update({"LBORRES": result, "LBORRESU": unit})
    return rows


def test_criterion_roll_up():
    low_wbc = _with_lb("WBC", "2.0", "10^9/L", "S-1")
    low_wbc["lb"] = [r if r["LBTESTCD"] != "PLAT" else {**r, "LBORRESU": "bogus"} for r in low_wbc["lb"]]
    only_unverifiable = _with_lb("PLAT", "180", "bogus", "S-2")
    hiv = _with_lb("HIV12AB", "POSITIVE", "", "S-3")
    result = evaluate(frames(low_wbc, only_unverifiable, hiv, site="101"), PROTOCOL, AS_OF)
    criteria = {(r["USUBJID"], r["CRITERION_ID"]): (r["CATEGORY"], r["OUTCOME"])
                for r in result.criteria.iter_rows(named=True)}
    assert criteria[("S-1", "IN10")] == ("INCLUSION", "NOT_MET")
    assert criteria[("S-2", "IN10")] == ("INCLUSION", "UNVERIFIABLE")
    assert criteria[("S-3", "IN10")] == ("INCLUSION", "MET")
    assert criteria[("S-3", "EX05")] == ("EXCLUSION", "APPLIES")
    assert criteria[("S-1", "EX05")] == ("EXCLUSION", "NOT_APPLICABLE")


def test_same_input_gives_identical_tables():
    domains = frames(subject_rows(), _with_lb("WBC", "<2", "10^9/L", "S-2"), site="101")
    first, second = evaluate(domains, PROTOCOL, AS_OF), evaluate(domains, PROTOCOL, AS_OF)
    assert first.eligibility.equals(second.eligibility)
    assert first.criteria.equals(second.criteria)
    assert first.reference.equals(second.reference)


def test_excluded_sex_is_unknown_for_cockcroft_gault_and_pregnancy():
    domains = frames(subject_rows())
    exclusions = _exclude(domains, "DM", pl.lit(True), "SEX", "SEX 'X' is not M/F/U")
    result = evaluate(domains, PROTOCOL, AS_OF, exclusions=exclusions)
    crcl = _component(result, "IN11.CRCL")
    assert crcl["OUTCOME"] == "MET"  # 82 mL/min even with the female factor: both factors agree
    assert crcl["VALUE"] == "69.784 to 82.0988"
    pregnancy = _component(result, "EX15")
    assert (pregnancy["OUTCOME"], pregnancy["REASON_CODE"]) == ("NOT_APPLICABLE", None)


def test_excluded_disposition_date_leaves_treatment_start_unknown():
    screen_failure = subject_rows(decision="SCREEN FAILURE")
    domains = frames(screen_failure)
    exclusions = _exclude(domains, "DS", pl.col("DSDECOD") == "SCREEN FAILURE", "DSSTDTC", "date before consent")
    result = evaluate(domains, PROTOCOL, AS_OF, exclusions=exclusions)
    assert result.reference.select("SITE_DECISION", "TREATMENT_START").row(0) == ("SCREEN FAILURE", None)


def test_no_data_gives_empty_contracted_tables():
    result = evaluate({}, PROTOCOL, AS_OF)
    assert result.eligibility.columns == [*ELIGIBILITY, "REASON_CODE", "DELIVERED"]
    assert (result.eligibility.height, result.reference.height, result.criteria.height) == (0, 0, 0)


def test_a_value_converted_to_the_protocol_unit_keeps_what_the_site_delivered():
    # the site finds "8.9 mmol/L" in its records, not the 14.3379 g/dL the audit compares with the limit
    rows = subject_rows()
    rows["lb"] = [{**r, "LBORRES": " 8.90", "LBORRESU": "mmol/L", "LBORNRHI": "10.5"} if r["LBTESTCD"] == "HGB"
                  else r for r in rows["lb"]]
    result = evaluate(frames(rows), PROTOCOL, AS_OF)
    hgb = _component(result, "IN10.HGB")
    assert (hgb["UNIT"], hgb["DELIVERED"]) == ("g/dL", "8.90 mmol/L")  # as written, trimmed
    assert float(hgb["VALUE"]) > 14  # converted: the delivered figure is not the value compared
    # a value in the protocol unit, or compared in its own unit (x ULN), was not converted: nothing to add
    assert _component(result, "IN10.WBC")["DELIVERED"] is None
    assert _component(result, "IN11.ALT")["DELIVERED"] is None
