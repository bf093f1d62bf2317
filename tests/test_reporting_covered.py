"""One query per problem when two checks see it: the findings another finding already asks the site about."""

from __future__ import annotations

import polars as pl
import pytest

from contracts import DISCREPANCIES, ELIGIBILITY, FINDINGS
from reporting.covered import check_rules, without_covered
from reporting.datafiles import DataFileError, load
from reporting.queries import build_site_queries, consolidate_queries

SUBJECT = "SZ003-101-0013"


def _discrepancy(check: str, klass: str, severity: str = "IMPORTANT", subject: str = SUBJECT,
                 site: str = "101") -> dict:
    return {"STUDYID": "SZ003", "SITEID": site, "USUBJID": subject, "CHECK_ID": check, "CLASS": klass,
            "SEVERITY": severity, "SITE_ASSESSMENT": "IN10=Y; ENROLLED", "RECOMPUTED": "NOT_MET",
            "EVIDENCE": f"{check} {klass}", "STATUS": "NEW", "FIRST_SEEN": "2026-11-28", "DAYS_OPEN": 0}


def _site_queries(discrepancies: list[dict], validation: list[dict] | None = None) -> pl.DataFrame:
    return build_site_queries(pl.DataFrame(discrepancies, schema=DISCREPANCIES),
                              pl.DataFrame(validation or [], schema={**FINDINGS, "CHECK": pl.String,
                                                                     "FINDING_ID": pl.String}),
                              pl.DataFrame(schema=ELIGIBILITY))


def test_an_ineligible_enrolment_is_one_query_not_also_the_checklist_answer_behind_it():
    # a site-monitor trial: PLT 52 gave INELIGIBLE_ENROLLED (report the deviation) and IE_MISMATCH on IN10
    # ("correct either the IE checklist answer or the underlying data"), two important queries, two asks
    rows = _site_queries([_discrepancy("IN10", "IE_MISMATCH"), _discrepancy("IN10.PLT", "INELIGIBLE_ENROLLED"),
                          _discrepancy("IN07", "IE_MISMATCH", "QUERY")])
    assert rows.select("CHECK_ID", "CLASS").rows() == [("IN07", "IE_MISMATCH"), ("IN10.PLT", "INELIGIBLE_ENROLLED")]
    # another subject's ineligible enrolment covers nothing of this one
    other = _site_queries([_discrepancy("IN10", "IE_MISMATCH"),
                           _discrepancy("IN10.PLT", "INELIGIBLE_ENROLLED", subject="SZ003-101-0014")])
    assert other.height == 2


def test_a_screen_failure_without_support_is_one_query_for_the_criteria_it_names():
    rows = _site_queries([_discrepancy("EX07", "IE_MISMATCH", "QUERY"), _discrepancy("IN07", "IE_MISMATCH", "QUERY"),
                          _discrepancy("IN03", "IE_MISMATCH", "QUERY"),
                          _discrepancy("EX07,IN07", "SCREEN_FAIL_UNSUPPORTED", "QUERY")])
    assert sorted(rows["CHECK_ID"].to_list()) == ["EX07,IN07", "IN03"]


def test_a_site_whose_file_was_rejected_is_not_asked_for_the_results_it_sent_in_that_file():
    # the trial's site 102: vs.csv rejected for a missing VSORRESU, then "site 102 delivers no WEIGHT result in
    # VS for any subject ... please deliver it" although the file holds 27 WEIGHT rows
    def finding(site: str, domain: str, code: str, check: str | None, subject: str | None = None) -> dict:
        return {"STUDYID": "SZ003", "SITEID": site, "USUBJID": subject, "DOMAIN": domain, "VARIABLE": "X",
                "EXPECTATION": code, "CHECK": check, "OBSERVED": "x", "MESSAGE": f"{code} {check}",
                "SOURCE": f"SZ003/{site}/D/{domain.lower()}.csv"}
    validation = [finding("102", "VS", "ingest.file_rejected.missing_column", None),
                  finding("102", "VS", "expect_column_values_to_be_null", "DM.needed_results_site.SITE_MISSING_VS"),
                  finding("102", "VS", "expect_column_values_to_be_null", "DM.needed_results.MISSING_VS",
                          "SZ003-102-0001"),
                  finding("102", "FA", "expect_column_values_to_be_null", "DM.needed_results_site.SITE_MISSING_FA"),
                  finding("103", "VS", "expect_column_values_to_be_null", "DM.needed_results_site.SITE_MISSING_VS")]
    rows = _site_queries([], validation)
    assert rows.select("SITEID", "CHECK_ID").rows() == [
        ("102", "DM.needed_results_site.SITE_MISSING_FA"), ("102", "ingest.file_rejected.missing_column"),
        ("103", "DM.needed_results_site.SITE_MISSING_VS")]
    assert consolidate_queries(rows).height == 3


def test_an_important_finding_is_never_folded_into_a_query():
    rows = pl.DataFrame([
        {"STUDYID": "S", "SITEID": "1", "USUBJID": "S-1", "ORIGIN": "DISCREPANCY", "CHECK_ID": "IN10",
         "CLASS": "IE_MISMATCH", "SEVERITY": "IMPORTANT", "CAUSE": None, "DOMAIN": None},
        {"STUDYID": "S", "SITEID": "1", "USUBJID": "S-1", "ORIGIN": "DISCREPANCY", "CHECK_ID": "IN10.PLT",
         "CLASS": "UNVERIFIABLE", "SEVERITY": "QUERY", "CAUSE": "MISSING", "DOMAIN": None}])
    rule = {"finding": {"class": "IE_MISMATCH"}, "by": {"class": "UNVERIFIABLE"}, "same": "criterion"}
    assert without_covered(rows, [rule]).height == 2
    assert without_covered(rows.with_columns(pl.lit("QUERY").alias("SEVERITY")), [rule]).height == 1


def test_the_rules_are_the_studys_data_and_a_wrong_rule_is_an_error():
    rules = load("queries.yaml")["covered_by"]
    assert {(r["finding"].get("class") or r["finding"].get("data_check"), r["same"]) for r in rules} >= {
        ("DM.ie_checklist", "subject"), ("IE_MISMATCH", "criterion")}
    check_rules(rules)
    for wrong, message in [
        ({"DM.ie_checklist": "PC04"}, "expected a list of rules"),
        ([{"finding": {"class": "IE_MISMATCH"}, "by": {"class": "X"}}], "rule 1 must have exactly the keys"),
        ([{"finding": {"class": "IE_MISMATCH"}, "by": {"class": "X"}, "same": "visit"}], "rule 1: same must be"),
        ([{"finding": {"klass": "IE_MISMATCH"}, "by": {"class": "X"}, "same": "subject"}], "rule 1: finding must"),
        ([{"finding": {"class": "IE_MISMATCH"}, "by": {"check": None}, "same": "subject"}], "rule 1: by must"),
        ([{"finding": {"class": "IE_MISMATCH"}, "by": {"class": "INELIGIBLE"}, "same": "subject"}],
         "rule 1: by: class 'INELIGIBLE' is not one of"),
        ([{"finding": {"class": "UNVERIFIABLE", "cause": "MISING"}, "by": {"check": "PC03"}, "same": "subject"}],
         "rule 1: finding: cause 'MISING' is not one of"),
        ([{"finding": {"data_check": "DM.needed_result"}, "by": {"code": "ingest.file_rejected"}, "same": "domain"}],
         "rule 1: finding: data_check 'DM.needed_result' is not"),
        ([{"finding": {"data_check": "DM.needed_results"}, "by": {"code": "ingest.file_reject"}, "same": "domain"}],
         "rule 1: by: code 'ingest.file_reject' is no ingestion code"),
        ([{"finding": {"class": "UNVERIFIABLE"}, "by": {"class": "PROCESS"}, "same": "named_check"}],
         "rule 1: named_check pairs a data-quality finding"),
        ([{"finding": {"data_check": "DM.needed_results"}, "by": {"code": "ingest.file_rejected"},
           "same": "named_check_of_subject"}], "rule 1: named_check_of_subject pairs a data-quality finding"),
    ]:
        with pytest.raises(DataFileError, match=message):
            check_rules(wrong)


def test_an_enrolment_on_a_stale_result_is_the_important_query_not_also_an_unverifiable_one():
    # the second trial: site 111's stale HGB was PC03 (deliver the in-window result or report the deviation) and
    # IN10.HGB UNVERIFIABLE ("... or state why it is not available"), which let the site close it without the
    # deviation; another cause of the same subject is still asked
    def component(check: str, code: str) -> dict:
        return {"STUDYID": "SZ003", "SITEID": "111", "USUBJID": SUBJECT, "CRITERION_ID": check.split(".")[0],
                "CHECK_ID": check, "OUTCOME": "UNVERIFIABLE", "REASON": code, "REASON_CODE": code}
    eligibility = pl.DataFrame([component("IN10.HGB", "ONLY_BEFORE_WINDOW"), component("IN11.ALB", "MISSING")],
                               schema={**ELIGIBILITY, "REASON_CODE": pl.String})
    discrepancies = pl.DataFrame([_discrepancy("PC03", "PROCESS", site="111"),
                                  _discrepancy("IN10.HGB", "UNVERIFIABLE", "QUERY", site="111"),
                                  _discrepancy("IN11.ALB", "UNVERIFIABLE", "QUERY", site="111")], schema=DISCREPANCIES)
    rows = build_site_queries(discrepancies, pl.DataFrame(schema=FINDINGS), eligibility)
    assert rows.select("CHECK_ID", "CAUSE").rows() == [("IN11.ALB", "MISSING"), ("PC03", None)]
    without_pc03 = build_site_queries(discrepancies.filter(pl.col("CHECK_ID") != "PC03"),
                                      pl.DataFrame(schema=FINDINGS), eligibility)
    assert without_pc03["CHECK_ID"].to_list() == ["IN10.HGB", "IN11.ALB"]


def test_a_cause_only_narrows_a_selector():
    with pytest.raises(DataFileError, match="rule 1: finding must be one of"):
        check_rules([{"finding": {"cause": "MISSING"}, "by": {"check": "PC03"}, "same": "subject"}])
    check_rules([{"finding": {"class": "UNVERIFIABLE", "cause": "MISSING"}, "by": {"check": "PC03"},
                  "same": "subject"}])


def test_a_result_an_enrolled_subject_lacks_is_asked_by_its_unverifiable_component_only():
    # the second trial, site 106: ALB recorded NOT DONE was "the test is recorded as not done" (IN11.ALB) and
    # "ENROLLED subject has no ALB result ... please deliver this result", two queries that contradicted
    # each other; a subject without such a discrepancy (not enrolled) keeps its data-quality query
    def needed(subject: str) -> dict:
        return {"STUDYID": "SZ003", "SITEID": "106", "USUBJID": subject, "DOMAIN": "LB", "VARIABLE": "LBTESTCD",
                "EXPECTATION": "expect_column_values_to_be_null", "CHECK": "DM.needed_results.MISSING_LB",
                "OBSERVED": "ALB: no result", "MESSAGE": "ENROLLED subject has no ALB result in LB: IN11.ALB cannot "
                "be verified", "SOURCE": "SZ003/106/D/dm.csv:25"}
    def component(subject: str, check: str, reason: str) -> dict:
        return {"STUDYID": "SZ003", "SITEID": "106", "USUBJID": subject, "CRITERION_ID": check.split(".")[0],
                "CHECK_ID": check, "OUTCOME": "UNVERIFIABLE", "REASON": reason, "REASON_CODE": "NOT_DONE"}
    not_done = "ALB not done or blank in the screening window 2025-11-20..2025-12-18"
    cases = [("SZ003-106-0025", "IN11.ALB", not_done),  # the component the message names, about ALB
             ("SZ003-106-0027", "IN11.BILI", "BILI not done or blank in the screening window")]  # another test
    eligibility = pl.DataFrame([component(*case) for case in cases], schema={**ELIGIBILITY, "REASON_CODE": pl.String})
    discrepancies = pl.DataFrame([_discrepancy(check, "UNVERIFIABLE", "QUERY", subject=subject, site="106")
                                  for subject, check, _ in cases], schema=DISCREPANCIES)
    validation = pl.DataFrame([needed("SZ003-106-0025"), needed("SZ003-106-0026"), needed("SZ003-106-0027")],
                              schema={**FINDINGS, "CHECK": pl.String})
    rows = build_site_queries(discrepancies, validation, eligibility)
    assert rows.select("USUBJID", "CHECK_ID").rows() == [
        ("SZ003-106-0025", "IN11.ALB"), ("SZ003-106-0026", "DM.needed_results.MISSING_LB"),
        ("SZ003-106-0027", "IN11.BILI"), ("SZ003-106-0027", "DM.needed_results.MISSING_LB")]


def test_a_test_a_site_never_delivers_is_one_site_level_query_not_also_one_per_check():
    # the second trial, site 113: "site 113 delivers no FEV1PP result in FA for any subject: EX06.LUNG cannot be
    # verified for its 15 ENROLLED subjects" and "EX06.LUNG, the same finding (UNVERIFIABLE, MISSING) for 15
    # subjects ... deliver the missing result", two queries asking for one result
    def component(subject: str, site: str, check: str, code: str, reason: str = "no FEV1PP result") -> dict:
        return {"STUDYID": "SZ003", "SITEID": site, "USUBJID": subject, "CRITERION_ID": check.split(".")[0],
                "CHECK_ID": check, "OUTCOME": "UNVERIFIABLE", "REASON": reason, "REASON_CODE": code}
    cases = [("SZ003-113-0001", "113", "EX06.LUNG", "MISSING"), ("SZ003-113-0002", "113", "EX06.LUNG", "MISSING"),
             ("SZ003-113-0002", "113", "EX06", "MISSING"), ("SZ003-113-0002", "113", "IN11.ALB", "MISSING"),
             ("SZ003-113-0003", "113", "EX06.LUNG", "NOT_DONE"), ("SZ003-114-0001", "114", "EX06.LUNG", "MISSING")]
    eligibility = pl.DataFrame([component(*case) for case in cases], schema={**ELIGIBILITY, "REASON_CODE": pl.String})
    discrepancies = pl.DataFrame([_discrepancy(check, "UNVERIFIABLE", "QUERY", subject=subject, site=site)
                                  for subject, site, check, _ in cases], schema=DISCREPANCIES)
    site_level = {"STUDYID": "SZ003", "SITEID": "113", "USUBJID": None, "DOMAIN": "FA", "VARIABLE": "FATESTCD",
                  "EXPECTATION": "expect_column_values_to_be_null", "CHECK": "DM.needed_results_site.SITE_MISSING_FA",
                  "OBSERVED": "FEV1PP: no result at the site", "SOURCE": "SZ003/113/D/fa.csv",
                  "MESSAGE": "site 113 delivers no FEV1PP result in FA for any subject: EX06.LUNG cannot be verified "
                             "for its 15 ENROLLED subjects"}
    rows = build_site_queries(discrepancies, pl.DataFrame([site_level], schema={**FINDINGS, "CHECK": pl.String}),
                              eligibility)
    assert sorted(rows.select("USUBJID", "CHECK_ID").rows(), key=str) == sorted([
        (None, "DM.needed_results_site.SITE_MISSING_FA"),
        ("SZ003-113-0002", "EX06"),  # a criterion the message does not name as a word of its own
        ("SZ003-113-0002", "IN11.ALB"),  # another check
        ("SZ003-113-0003", "EX06.LUNG"),  # another cause: recorded NOT DONE
        ("SZ003-114-0001", "EX06.LUNG")], key=str)  # another site


def _crcl_case(reasons: dict[str, str], validation: list[dict]) -> pl.DataFrame:
    """The site queries of IN11.CRCL UNVERIFIABLE components (subject -> reason) at site 102 and `validation`."""
    eligibility = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "102", "USUBJID": subject, "CRITERION_ID": "IN11",
                                 "CHECK_ID": "IN11.CRCL", "OUTCOME": "UNVERIFIABLE", "REASON": reason,
                                 "REASON_CODE": "MISSING"} for subject, reason in reasons.items()],
                               schema={**ELIGIBILITY, "REASON_CODE": pl.String})
    discrepancies = pl.DataFrame([_discrepancy("IN11.CRCL", "UNVERIFIABLE", "QUERY", subject=subject, site="102")
                                  for subject in reasons], schema=DISCREPANCIES)
    return build_site_queries(discrepancies, pl.DataFrame(validation, schema={**FINDINGS, "CHECK": pl.String}),
                              eligibility)


def _needs(subject: str | None, test: str, domain: str, message: str) -> dict:
    site_level = subject is None
    return {"STUDYID": "SZ003", "SITEID": "102", "USUBJID": subject, "DOMAIN": domain, "VARIABLE": f"{domain}TESTCD",
            "EXPECTATION": "expect_column_values_to_be_null",
            "CHECK": (f"DM.needed_results_site.SITE_MISSING_{domain}" if site_level
                      else f"DM.needed_results.MISSING_{domain}"),
            "OBSERVED": f"{test}: no result{' at the site' if site_level else ''}", "MESSAGE": message,
            "SOURCE": "SZ003/102/D/dm.csv"}


def test_a_site_level_gap_covers_only_the_components_missing_that_test():
    # a review: "site 102 delivers no WEIGHT result" also hid a subject's IN11.CRCL whose reason was its missing
    # creatinine, and then that subject's own "no CREAT result" behind it: nobody asked for the creatinine
    site = _needs(None, "WEIGHT", "VS", "site 102 delivers no WEIGHT result in VS for any subject: IN11.CRCL cannot "
                                        "be verified for its 2 ENROLLED subjects")
    creat = _needs("SZ003-102-0002", "CREAT", "LB", "ENROLLED subject has no CREAT result in LB: IN11.CRCL cannot "
                                                    "be verified")
    rows = _crcl_case({"SZ003-102-0001": "weight: no WEIGHT result", "SZ003-102-0002": "creatinine: no CREAT result"},
                      [site, creat])
    assert sorted(rows.select("USUBJID", "CHECK_ID").rows(), key=str) == sorted([
        (None, "DM.needed_results_site.SITE_MISSING_VS"), ("SZ003-102-0002", "IN11.CRCL")], key=str)


def test_a_rejected_file_covers_the_gap_it_causes_and_the_components_that_gap_names():
    # a chain a review found: vs.csv rejected -> "site 102 delivers no WEIGHT result" -> IN11.CRCL "weight: no WEIGHT
    # result". Re-sending vs.csv answers all three, so the site is asked for the file only
    rejected = {"STUDYID": "SZ003", "SITEID": "102", "USUBJID": None, "DOMAIN": "VS", "VARIABLE": "VSORRESU",
                "EXPECTATION": "ingest.file_rejected.missing_column", "CHECK": None, "OBSERVED": None,
                "MESSAGE": "Site 102, file SZ003/102/D/vs.csv: required column VSORRESU missing", "SOURCE": "vs.csv"}
    site = _needs(None, "WEIGHT", "VS", "site 102 delivers no WEIGHT result in VS for any subject: IN11.CRCL cannot "
                                        "be verified for its 2 ENROLLED subjects")
    rows = _crcl_case({"SZ003-102-0001": "weight: no WEIGHT result"}, [rejected, site])
    assert rows["CHECK_ID"].to_list() == ["ingest.file_rejected.missing_column"]
    # a component whose merged reason also names another problem is still asked (the stale ALB is asked nowhere
    # else: PC03 reads only the first rule's code)
    merged = _crcl_case({"SZ003-102-0001": "weight: no WEIGHT result; ALB results only before the screening window"},
                        [rejected, site])
    assert merged["CHECK_ID"].to_list() == ["IN11.CRCL", "ingest.file_rejected.missing_column"]


def test_findings_that_would_only_cover_each_other_stay_listed():
    rows = pl.DataFrame([{"STUDYID": "S", "SITEID": "1", "USUBJID": "S-1", "ORIGIN": "DISCREPANCY", "CHECK_ID": check,
                          "CLASS": klass, "SEVERITY": "QUERY", "CAUSE": None, "DOMAIN": None}
                         for check, klass in (("IN10", "IE_MISMATCH"), ("PC04", "PROCESS"), ("IN07", "UNVERIFIABLE"))])
    cycle = [{"finding": {"class": "IE_MISMATCH"}, "by": {"class": "PROCESS"}, "same": "subject"},
             {"finding": {"class": "PROCESS"}, "by": {"class": "IE_MISMATCH"}, "same": "subject"}]
    assert without_covered(rows, cycle).height == 3  # no listed finding asks for either: both stay
    rooted = [*cycle, {"finding": {"class": "IE_MISMATCH"}, "by": {"class": "UNVERIFIABLE"}, "same": "subject"}]
    assert without_covered(rows, rooted)["CHECK_ID"].to_list() == ["IN07"]  # a listed one covers one, then the other


def test_a_site_level_gap_never_hides_an_important_finding():
    site = _needs(None, "WEIGHT", "VS", "site 102 delivers no WEIGHT result in VS for any subject: IN11.CRCL cannot "
                                        "be verified for its 1 ENROLLED subjects")
    rule = {"finding": {"class": "UNVERIFIABLE"}, "by": {"data_check": "DM.needed_results_site"},
            "same": "named_check"}
    rows = _crcl_case({"SZ003-102-0001": "weight: no WEIGHT result"}, [site])
    assert rows.height == 1  # the default rules: the component is left out
    raw = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "102", "USUBJID": "SZ003-102-0001", "ORIGIN": "DISCREPANCY",
                         "CHECK_ID": "IN11.CRCL", "CLASS": "UNVERIFIABLE", "SEVERITY": severity, "CAUSE": "MISSING",
                         "DOMAIN": None, "REASON": "weight: no WEIGHT result", "MESSAGE": None, "OBSERVED": None}
                        for severity in ("IMPORTANT", None)]
                       + [{"STUDYID": "SZ003", "SITEID": "102", "USUBJID": None, "ORIGIN": "VALIDATION",
                           "CHECK_ID": site["CHECK"], "CLASS": "VALIDATION", "SEVERITY": "QUERY",
                           "CAUSE": site["CHECK"], "DOMAIN": "VS", "REASON": None, "MESSAGE": site["MESSAGE"],
                           "OBSERVED": site["OBSERVED"]}])
    assert without_covered(raw, [rule]).height == 3  # neither the important nor the unknown one is left out
    assert without_covered(raw.with_columns(pl.lit("QUERY").alias("SEVERITY")), [rule]).height == 1


def test_a_left_out_finding_is_recorded_on_the_listed_finding_its_chain_starts_at():
    # the site's answer to the listed finding's query is recorded for the findings it covers (review.imports): each
    # left-out finding must name that finding, also through a chain (the cycle's members name the listed root)
    rows = pl.DataFrame([{"STUDYID": "S", "SITEID": "1", "USUBJID": "S-1", "ORIGIN": "DISCREPANCY", "CHECK_ID": check,
                          "CLASS": klass, "SEVERITY": "QUERY", "CAUSE": None, "DOMAIN": None, "FINDING_ID": finding}
                         for check, klass, finding in (("IN10", "IE_MISMATCH", "F-A"), ("PC04", "PROCESS", "F-B"),
                                                       ("IN07", "UNVERIFIABLE", "F-C"), ("EX01", "OTHER", "F-D"))])
    cycle = [{"finding": {"class": "IE_MISMATCH"}, "by": {"class": "PROCESS"}, "same": "subject"},
             {"finding": {"class": "PROCESS"}, "by": {"class": "IE_MISMATCH"}, "same": "subject"},
             {"finding": {"class": "IE_MISMATCH"}, "by": {"class": "UNVERIFIABLE"}, "same": "subject"}]
    listed = without_covered(rows, cycle)
    assert listed.select("FINDING_ID", "COVERED_FINDING_IDS").rows() == [("F-C", "F-A F-B"), ("F-D", None)]
    assert without_covered(rows, [])["COVERED_FINDING_IDS"].to_list() == [None] * 4


def test_every_finding_left_out_is_on_the_sites_also_answered_list_and_the_review_sheet_names_its_query():
    from reporting.queries import left_out_findings, site_query_of
    from review.catalogue import catalogue_of

    ids = {"IN10": "F-MISMATCH", "IN10.PLT": "F-INELIGIBLE", "IN07": "F-OTHER"}
    findings = [{**_discrepancy(check, klass, severity), "FINDING_ID": ids[check]} for check, klass, severity in
                (("IN10", "IE_MISMATCH", "IMPORTANT"), ("IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT"),
                 ("IN07", "IE_MISMATCH", "QUERY"))]
    queries = _site_queries(findings)
    disc = pl.DataFrame(findings, schema=DISCREPANCIES)
    left = left_out_findings(queries, catalogue_of(disc, None))
    query = queries.filter(pl.col("FINDING_ID") == "F-INELIGIBLE")["QUERY_ID"].item()
    assert left.select("QUERY_ID", "USUBJID", "FINDING_ID", "CHECK_ID", "CLASS", "SEVERITY", "COVERED_BY").rows() == [
        (query, SUBJECT, "F-MISMATCH", "IN10", "IE_MISMATCH", "IMPORTANT", "F-INELIGIBLE")]
    assert left["WHY_HERE"].to_list() == [f"not on the Queries sheet: query {query} asks the same, and the site's "
                                          "answer to it is recorded for this finding too"]
    asked = dict((f, (q, by)) for f, q, by in site_query_of(queries).select("FINDING_ID", "SITE_QUERY",
                                                                            "COVERED_BY").rows())
    other = queries.filter(pl.col("FINDING_ID") == "F-OTHER")["QUERY_ID"].item()
    assert asked == {"F-INELIGIBLE": (query, None), "F-OTHER": (other, None), "F-MISMATCH": (query, "F-INELIGIBLE")}


def test_a_component_a_data_quality_check_left_unverifiable_is_asked_by_that_records_query():
    # the dirty study's site 104: an HBV DNA result in copies/mL was the unit's query and, for the same record,
    # EX05.HBV and IN09.DNA asking to "correct the record": one problem, one query (the components are on the
    # site's Also answered sheet). A component of another record, and an important one, stay listed
    record, other = "SZ003/104/D/lb.csv:330", "SZ003/104/D/lb.csv:331"
    subject = "SZ003-104-0017"

    def component(check: str, source: str, severity: str = "QUERY", who: str = subject) -> tuple[dict, dict]:
        eligibility = {"STUDYID": "SZ003", "SITEID": "104", "USUBJID": who, "CRITERION_ID": check.split(".")[0],
                       "CHECK_ID": check, "OUTCOME": "UNVERIFIABLE", "REASON": "HBVDNA unit copies/mL cannot be used",
                       "REASON_CODE": "EXCLUDED_BY_VALIDATION", "SOURCE": source}
        return eligibility, {**_discrepancy(check, "UNVERIFIABLE", severity, subject=who, site="104"),
                             "FINDING_ID": f"D-{check}-{who}"}

    unit = {"STUDYID": "SZ003", "SITEID": "104", "USUBJID": subject, "DOMAIN": "LB", "VARIABLE": "LBORRESU",
            "EXPECTATION": "expect_column_values_to_be_in_set", "CHECK": "LB.unit_known.LBORRESU",
            "OBSERVED": "copies/mL", "MESSAGE": "unit copies/mL cannot be used", "SOURCE": record, "FINDING_ID": "V-1"}
    # a component decided by several rule parts names their records too (the excluded one among them)
    cases = [component("EX05.HBV", record), component("IN09.DNA", f"{other}; {record}"), component("IN10.PLT", other),
             component("IN06.BIL", record, "IMPORTANT"), component("EX05.HBV", record, who="SZ003-104-0018")]
    eligibility = pl.DataFrame([e for e, _ in cases], schema={**ELIGIBILITY, "REASON_CODE": pl.String})
    discrepancies = pl.DataFrame([d for _, d in cases], schema=DISCREPANCIES)
    rows = build_site_queries(discrepancies, pl.DataFrame([unit], schema={**FINDINGS, "CHECK": pl.String}),
                              eligibility)
    assert sorted(rows.select("USUBJID", "CHECK_ID").rows()) == [
        (subject, "IN06.BIL"), (subject, "IN10.PLT"), (subject, "LB.unit_known.LBORRESU"),
        ("SZ003-104-0018", "EX05.HBV")]
    covering = rows.filter(pl.col("CHECK_ID") == "LB.unit_known.LBORRESU")["COVERED_FINDING_IDS"].item()
    assert covering == f"D-EX05.HBV-{subject} D-IN09.DNA-{subject}"


def test_a_site_level_query_names_the_subjects_of_the_findings_it_covers():
    # a site-monitor trial: "EX06.LUNG cannot be verified for its 15 ENROLLED subjects ... deliver it for these
    # subjects" had no SUBJECTS (N_SUBJECTS 0): the subjects were only on the Also answered sheet
    site = _needs(None, "WEIGHT", "VS", "site 102 delivers no WEIGHT result in VS for any subject: IN11.CRCL cannot "
                                        "be verified for its 2 ENROLLED subjects")
    rows = _crcl_case({"SZ003-102-0002": "weight: no WEIGHT result", "SZ003-102-0001": "weight: no WEIGHT result"},
                      [site])
    [query] = consolidate_queries(rows).iter_rows(named=True)
    assert (query["CHECK_ID"], query["N_SUBJECTS"], query["SUBJECTS"]) == (
        "DM.needed_results_site.SITE_MISSING_VS", 2, "SZ003-102-0001, SZ003-102-0002")
    # a query with subjects of its own keeps them
    own = consolidate_queries(_crcl_case({"SZ003-102-0001": "creatinine: no CREAT result"}, [site]))
    assert own.filter(pl.col("CHECK_ID") == "IN11.CRCL")["SUBJECTS"].to_list() == ["SZ003-102-0001"]
    assert own.filter(pl.col("CHECK_ID") != "IN11.CRCL").select("N_SUBJECTS", "SUBJECTS").rows() == [(0, None)]


def _delivery_finding(site: str, code: str, message: str, domain: str | None = None) -> dict:
    return {"STUDYID": "SZ003", "SITEID": site, "USUBJID": None, "DOMAIN": domain, "VARIABLE": None,
            "EXPECTATION": code, "CHECK": None, "OBSERVED": "x", "MESSAGE": message,
            "SOURCE": f"SZ003/{site}/D/manifest.json", "FINDING_ID": f"V-{site}-{code}"}


def test_a_site_none_of_whose_deliveries_could_be_used_is_one_query_naming_each_rejection():
    # the dirty study's site 118 was three queries: the newest delivery's missing file, the older one's row count
    # and "not audited ... correcting the problems named in this site's other queries"
    validation = [
        _delivery_finding("118", "ingest.delivery_rejected.missing_file", "Site 118, delivery D2: tr.csv missing."),
        _delivery_finding("118", "ingest.delivery_rejected.row_count", "Site 118, file lb.csv: 438 rows.", "LB"),
        _delivery_finding("118", "ingest.site_not_audited", "Site 118 is not audited: every complete delivery was "
                          "rejected (D2: manifest.json lists tr.csv, not in the delivery folder; D1: lb.csv has 438 "
                          "data rows but manifest.json says 439)."),
        # another site's rejection is its own query
        _delivery_finding("119", "ingest.delivery_rejected.checksum", "Site 119, file lb.csv: its SHA-256 ...", "LB")]
    rows = _site_queries([], validation)
    assert rows.select("SITEID", "CHECK_ID").rows() == [("118", "ingest.site_not_audited"),
                                                         ("119", "ingest.delivery_rejected.checksum")]
    listed = rows.row(0, named=True)
    assert listed["COVERED_FINDING_IDS"] == ("V-118-ingest.delivery_rejected.missing_file "
                                             "V-118-ingest.delivery_rejected.row_count")
    assert listed["QUERY_TEXT"].startswith("Site 118 is not audited: every complete delivery was rejected (D2: ")
    assert listed["QUERY_TEXT"].endswith("where deliveries were rejected, correct the problems named above first.")


def test_a_site_audited_on_an_older_delivery_is_asked_to_correct_the_rejection_only():
    # site 120: the newest delivery's checksum, and "used instead of the newer delivery, which was rejected"
    validation = [
        _delivery_finding("120", "ingest.delivery_fallback", "Site 120, delivery D1: used instead of D2."),
        _delivery_finding("120", "ingest.delivery_rejected.checksum", "Site 120, file lb.xlsx: its SHA-256 ...", "LB"),
        _delivery_finding("121", "ingest.delivery_fallback", "Site 121, delivery D1: used instead of D2.")]
    rows = _site_queries([], validation)
    assert rows.select("SITEID", "CHECK_ID", "COVERED_FINDING_IDS").rows() == [
        ("120", "ingest.delivery_rejected.checksum", "V-120-ingest.delivery_fallback"),
        ("121", "ingest.delivery_fallback", None)]


def test_a_component_needing_two_rejected_files_is_asked_by_their_queries_not_on_its_own():
    """helper-45: a component that reads cm.csv and lb.csv, both rejected as a whole, names both files in its SOURCE;
    the file relation needed the whole SOURCE to be one file, so it was a query of its own beside the two files'."""
    files = ["SZ003/105/D/cm.csv", "SZ003/105/D/lb.csv"]
    eligibility = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "105", "USUBJID": SUBJECT, "CRITERION_ID": "IN09",
                                 "CHECK_ID": "IN09.TX", "OUTCOME": "UNVERIFIABLE", "REASON": "not read",
                                 "REASON_CODE": "FILE_NOT_READ", "SOURCE": "; ".join(files)}],
                               schema={**ELIGIBILITY, "REASON_CODE": pl.String})
    component = {**_discrepancy("IN09.TX", "UNVERIFIABLE", "QUERY", site="105"), "FINDING_ID": "D-1"}
    rejected = [{"STUDYID": "SZ003", "SITEID": "105", "USUBJID": None, "DOMAIN": key[-6:-4].upper(), "VARIABLE": None,
                 "EXPECTATION": "ingest.file_rejected.undecodable", "CHECK": None, "OBSERVED": None,
                 "MESSAGE": f"Site 105, file {key}: not text", "SOURCE": key, "FINDING_ID": f"V-{n}"}
                for n, key in enumerate(files)]
    rows = build_site_queries(pl.DataFrame([component], schema=DISCREPANCIES),
                              pl.DataFrame(rejected, schema={**FINDINGS, "CHECK": pl.String, "FINDING_ID": pl.String}),
                              eligibility)
    assert rows["CHECK_ID"].to_list() == ["ingest.file_rejected.undecodable"] * 2
    assert rows["COVERED_FINDING_IDS"].drop_nulls().to_list() == ["D-1"]
