"""compare(): every discrepancy class, severity rule, checklist style and golden evidence sentence.

The inputs are tiny inline frames in the agreed EligibilityResult shape (eligibility / reference /
criteria), so these tests pin compare() independently of the evaluation engine; the end-to-end test
through checks.evaluate() lives in test_checks_compare_e2e.py.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date

import polars as pl
import pytest

from checks.comparison.compare import compare
from contracts import DISCREPANCIES, SUBJECTS
from contracts.enums import Category
from contracts.protocol import Component, Criterion, Protocol, ProtocolVersion, Rule
from contracts.records import EligibilityResult
from tests.support.evaluated import as_evaluated
from tests.support.sources import split_source

AS_OF = date(2026, 3, 20)

#: criterion -> (category, [(component, passing outcome, value, unit, limit)])
CRITERIA = {
    "IN07": ("INCLUSION", [("IN07.KPS", "MET", "90", None, "80")]),
    "IN10": ("INCLUSION", [("IN10.PLT", "MET", "150", "10^9/L", "60"),
                           ("IN10.HGB", "MET", "12.1", "g/dL", "9")]),
    "IN11": ("INCLUSION", [("IN11.CRCL", "MET", "80", "mL/min", "40")]),
    "EX07": ("EXCLUSION", [("EX07.ASC", "NOT_APPLICABLE", "2", "cm", "5")]),
}
#: the comparison of each component's single rule leaf (as in contracts/protocols/*.yaml); IN10.HGB has
#: a rule tree (no single comparator), so its evidence keeps the bare LIMIT
OPS = {"IN07.KPS": ">=", "IN10.PLT": ">=", "IN11.CRCL": ">=", "EX07.ASC": ">"}


def _rule(check_id: str) -> Rule:
    if check_id == "IN11.CRCL":  # as in the SZ003 protocol: the Cockcroft-Gault value compared with 40
        return Rule("derived", params={"value": "CRCL_CG", "op": OPS[check_id], "limit": 40})
    if check_id in OPS:
        return Rule("threshold", params={"op": OPS[check_id], "limit": 0})
    leaf = Rule("threshold", params={"op": ">="})
    return Rule("all", children=(leaf, leaf))


_VERSION = ProtocolVersion("1.0", date(2024, 1, 1))
PROTOCOL = Protocol(
    id="T1", title="comparison test protocol", version=_VERSION, versions=(_VERSION,),
    parameters={"screening_window_days": 28},
    criteria=tuple(Criterion(id=cid, category=Category(cat), text=cid, kind="C",
                             components=tuple(Component(id=c[0], text=c[0], rule=_rule(c[0])) for c in comps))
                   for cid, (cat, comps) in CRITERIA.items()),
)
COMPONENT_CRITERION = {c[0]: cid for cid, (_, comps) in CRITERIA.items() for c in comps}
CATEGORY = {cid: cat for cid, (cat, _) in CRITERIA.items()}
ELIG_COLUMNS = ["STUDYID", "SITEID", "USUBJID", "CRITERION_ID", "CHECK_ID", "OUTCOME", "VALUE", "UNIT",
                "LIMIT", "DTC", "REASON", "SOURCE", "REASON_CODE"]


def subject(usubjid: str, decision: str = "ENROLLED", site: str = "101", start: str = "2026-03-10",
            **overrides: dict) -> dict:
    """A subject spec: decision + component overrides {CHECK_ID: {OUTCOME, VALUE, ...}}."""
    return {"USUBJID": usubjid, "SITEID": site, "SITE_DECISION": decision, "TREATMENT_START": start,
            "overrides": {k.replace("_", "."): v for k, v in overrides.items()}}


def build(subjects: list[dict]) -> EligibilityResult:
    """An EligibilityResult in which every subject gets every component, passing by default."""
    elig = []
    for s in subjects:
        for cid, (_, comps) in CRITERIA.items():
            for check_id, outcome, value, unit, limit in comps:
                row = {"STUDYID": "SZ003", "SITEID": s["SITEID"], "USUBJID": s["USUBJID"], "CRITERION_ID": cid,
                       "CHECK_ID": check_id, "OUTCOME": outcome, "VALUE": value, "UNIT": unit, "LIMIT": limit,
                       "DTC": "2026-03-02", "REASON": None, "SOURCE": f"lb.csv:{len(elig) + 1}",
                       "REASON_CODE": None}
                row.update(s["overrides"].get(check_id, {}))
                elig.append(row)
    eligibility = pl.DataFrame(elig, schema=dict.fromkeys(ELIG_COLUMNS, pl.String))
    criteria = (
        eligibility.group_by("STUDYID", "SITEID", "USUBJID", "CRITERION_ID")
        .agg(
            pl.when(pl.col("OUTCOME").is_in(["NOT_MET", "APPLIES"]).any())
            .then(pl.col("OUTCOME").filter(pl.col("OUTCOME").is_in(["NOT_MET", "APPLIES"])).first())
            .when((pl.col("OUTCOME") == "UNVERIFIABLE").any())
            .then(pl.lit("UNVERIFIABLE"))
            .otherwise(pl.col("OUTCOME").first())
            .alias("OUTCOME")
        )
        .with_columns(pl.col("CRITERION_ID").replace_strict(CATEGORY).alias("CATEGORY"))
    )
    reference = pl.DataFrame(
        [{"STUDYID": "SZ003", "SITEID": s["SITEID"], "USUBJID": s["USUBJID"], "SITE_DECISION": s["SITE_DECISION"],
          "CONSENT_DTC": "2026-02-20", "TREATMENT_START": s["TREATMENT_START"], "TIVERS": "1.0"}
         for s in subjects],
        schema=dict.fromkeys(["STUDYID", "SITEID", "USUBJID", "SITE_DECISION", "CONSENT_DTC",
                              "TREATMENT_START", "TIVERS"], pl.String),
    )
    return EligibilityResult(eligibility=eligibility, reference=reference, criteria=criteria)


def ie(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return split_source(pl.DataFrame(
        [{"STUDYID": "SZ003", "USUBJID": u, "IETESTCD": c, "IECAT": CATEGORY[c.strip().upper()], "IEORRES": a,
          "IEDTC": "2026-03-05", "SOURCE": f"ie.csv:{i + 1}"} for i, (u, c, a) in enumerate(rows)],
        schema=dict.fromkeys(["STUDYID", "USUBJID", "IETESTCD", "IECAT", "IEORRES", "IEDTC", "SOURCE"], pl.String),
    ))


def full_checklist(usubjid: str, **answers: str) -> list[tuple[str, str, str]]:
    """Every criterion answered 'passing' (inclusion Y, exclusion N) unless overridden."""
    return [(usubjid, cid, answers.get(cid, "Y" if cat == "INCLUSION" else "N")) for cid, cat in CATEGORY.items()]


def dm(rows: list[dict]) -> pl.DataFrame:
    columns = ["STUDYID", "USUBJID", "SITEID", "BRTHDTC", "SEX", "RFICDTC", "RFXSTDTC", "AGE", "SOURCE"]
    full = [{"STUDYID": "SZ003", "SITEID": "101", "SEX": "M", "BRTHDTC": "1970-06-15", "RFICDTC": "2026-02-20",
             "AGE": "55", "SOURCE": f"dm.csv:{i + 1}", **r} for i, r in enumerate(rows)]
    return split_source(pl.DataFrame(full, schema=dict.fromkeys(columns, pl.String)))


def run(subjects: list[dict], ie_rows: list[tuple[str, str, str]] | None, **domains: pl.DataFrame):
    frames = dict(domains)
    if ie_rows is not None:
        frames["ie"] = ie(ie_rows)
    return compare_evaluated(build(subjects), frames)


def compare_evaluated(result: EligibilityResult, domains: dict[str, pl.DataFrame], **options):
    """compare() on a hand-made result completed as evaluate() would complete it for `domains`."""
    evaluated = as_evaluated(result, domains, PROTOCOL, AS_OF, exclusions=options.get("exclusions"),
                             rejected=options.get("rejected"))
    return compare(evaluated, domains, PROTOCOL, AS_OF, **options)


def rows(result, cls: str | None = None) -> list[dict]:
    frame = result.discrepancies
    if cls:
        frame = frame.filter(pl.col("CLASS") == cls)
    return frame.to_dicts()


def keys(result) -> list[tuple[str, str, str, str]]:
    return [(r["USUBJID"], r["CHECK_ID"], r["CLASS"], r["SEVERITY"]) for r in rows(result)]


# ------------------------------------------------------------------------------------------- clean


def test_clean_enrolled_subject_with_full_checklist_has_no_discrepancy():
    result = run([subject("S1")], full_checklist("S1"))
    assert result.discrepancies.height == 0
    assert result.subjects.to_dicts() == [{
        "STUDYID": "SZ003", "SITEID": "101", "USUBJID": "S1", "SITE_DECISION": "ENROLLED",
        "RECOMPUTED": "ELIGIBLE", "TREATMENT_START": "2026-03-10", "N_DISCREPANCIES": 0, "TIVERS": "1.0"}]
    assert result.subjects.schema == pl.Schema(SUBJECTS)
    assert result.discrepancies.schema == pl.Schema(DISCREPANCIES)


# ----------------------------------------------------------------------------- INELIGIBLE_ENROLLED


def test_ineligible_enrolled_per_failing_component_with_golden_evidence():
    result = run([subject("S1", IN10_PLT={"OUTCOME": "NOT_MET", "VALUE": "52"},
                          IN10_HGB={"OUTCOME": "NOT_MET", "VALUE": "8.1"})], full_checklist("S1"))
    found = rows(result, "INELIGIBLE_ENROLLED")
    assert [(r["CHECK_ID"], r["SEVERITY"], r["SITE_ASSESSMENT"], r["RECOMPUTED"]) for r in found] == [
        ("IN10.HGB", "IMPORTANT", "IN10=Y; ENROLLED", "NOT_MET"),
        ("IN10.PLT", "IMPORTANT", "IN10=Y; ENROLLED", "NOT_MET"),
    ]
    assert found[1]["EVIDENCE"] == (
        "IN10.PLT 52 10^9/L on 2026-03-02 does not meet IN10 (limit >= 60 10^9/L); "
        "the site recorded IN10 as met (IN10=Y) and enrolled the subject."
    )
    assert result.subjects["RECOMPUTED"].to_list() == ["INELIGIBLE"]


def test_exclusion_that_applies_to_an_enrolled_subject():
    result = run([subject("S1", EX07_ASC={"OUTCOME": "APPLIES", "VALUE": "6.2"})], full_checklist("S1"))
    (found,) = rows(result, "INELIGIBLE_ENROLLED")
    assert found["CHECK_ID"] == "EX07.ASC"
    assert found["RECOMPUTED"] == "APPLIES"
    assert found["EVIDENCE"] == (
        "EX07.ASC 6.2 cm on 2026-03-02 meets exclusion EX07 (limit > 5 cm); "
        "the site recorded EX07 as not applying (EX07=N) and enrolled the subject."
    )


@pytest.mark.parametrize("decision", ["SCREEN FAILURE", "IN SCREENING"])
def test_failing_component_of_a_subject_not_enrolled_is_not_ineligible_enrolled(decision):
    result = run([subject("S1", decision, IN10_PLT={"OUTCOME": "NOT_MET", "VALUE": "52"})],
                 full_checklist("S1", IN10="N"))
    assert rows(result, "INELIGIBLE_ENROLLED") == []
    assert rows(result, "IE_MISMATCH") == []


def test_site_and_audit_agree_on_a_failed_criterion_no_mismatch_but_still_ineligible_enrolled():
    result = run([subject("S1", IN10_PLT={"OUTCOME": "NOT_MET", "VALUE": "52"})], full_checklist("S1", IN10="N"))
    assert keys(result) == [("S1", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT")]
    assert rows(result)[0]["SITE_ASSESSMENT"] == "IN10=N; ENROLLED"


# -------------------------------------------------------------------------------------- IE_MISMATCH


def test_mismatch_hiding_an_ineligible_enrolment_is_important_with_golden_evidence():
    result = run([subject("S1", IN07_KPS={"OUTCOME": "NOT_MET", "VALUE": "70"})], full_checklist("S1"))
    (found,) = rows(result, "IE_MISMATCH")
    assert (found["CHECK_ID"], found["SEVERITY"], found["SITE_ASSESSMENT"], found["RECOMPUTED"]) == (
        "IN07", "IMPORTANT", "IN07=Y; ENROLLED", "NOT_MET")
    assert found["EVIDENCE"] == (
        "The site recorded IN07 as met (IN07=Y) but the audit recomputes IN07 as not met: "
        "IN07.KPS 70 on 2026-03-02, limit >= 80; the site enrolled the subject."
    )


@pytest.mark.parametrize(
    ("decision", "overrides", "answers", "check", "expected"),
    [
        # the site says not met, the data say met: the site under-reported, a query
        ("ENROLLED", {}, {"IN07": "N"}, "IN07", "QUERY"),
        ("SCREEN FAILURE", {}, {"IN07": "N"}, "IN07", "QUERY"),
        # the site says met, the data say not met, but the subject was not enrolled: a query
        ("SCREEN FAILURE", {"IN07_KPS": {"OUTCOME": "NOT_MET", "VALUE": "70"}}, {}, "IN07", "QUERY"),
        ("IN SCREENING", {"IN07_KPS": {"OUTCOME": "NOT_MET", "VALUE": "70"}}, {}, "IN07", "QUERY"),
        # exclusion: the site says it applies, the data say it does not
        ("ENROLLED", {}, {"EX07": "Y"}, "EX07", "QUERY"),
        # exclusion hidden by the site for an enrolled subject
        ("ENROLLED", {"EX07_ASC": {"OUTCOME": "APPLIES", "VALUE": "6"}}, {}, "EX07", "IMPORTANT"),
    ],
)
def test_mismatch_severity(decision, overrides, answers, check, expected):
    result = run([subject("S1", decision, **overrides)], full_checklist("S1", **answers))
    assert [(r["CHECK_ID"], r["SEVERITY"]) for r in rows(result, "IE_MISMATCH")] == [(check, expected)]


def test_mismatch_site_says_not_met_golden_evidence_lists_every_deciding_component():
    result = run([subject("S1", "SCREEN FAILURE")], full_checklist("S1", IN10="N"))
    (found,) = rows(result, "IE_MISMATCH")
    assert found["EVIDENCE"] == (
        "The site recorded IN10 as not met (IN10=N) but the audit recomputes IN10 as met: "
        "IN10.HGB 12.1 g/dL on 2026-03-02, limit 9 g/dL and IN10.PLT 150 10^9/L on 2026-03-02, limit >= 60 10^9/L; "
        "the site recorded the subject as a screen failure."
    )


def test_unverifiable_is_never_a_disagreement():
    unverifiable = {"OUTCOME": "UNVERIFIABLE", "VALUE": None, "UNIT": None, "LIMIT": None, "DTC": None,
                    "REASON": "no PLAT result in the screening window", "REASON_CODE": "MISSING"}
    for answer in ("Y", "N"):
        result = run([subject("S1", IN10_PLT=unverifiable)], full_checklist("S1", IN10=answer))
        assert rows(result, "IE_MISMATCH") == []


def test_unknown_site_answer_is_never_a_disagreement():
    result = run([subject("S1", IN07_KPS={"OUTCOME": "NOT_MET", "VALUE": "70"})], full_checklist("S1", IN07="U"))
    assert rows(result, "IE_MISMATCH") == []
    assert [r["CHECK_ID"] for r in rows(result, "PROCESS")] == ["PC04"]


# ------------------------------------------------------------------------------------- UNVERIFIABLE


def test_unverifiable_component_of_enrolled_subject_is_a_query_with_golden_evidence():
    unverifiable = {"OUTCOME": "UNVERIFIABLE", "VALUE": None, "UNIT": None, "LIMIT": None, "DTC": None,
                    "REASON": "no PLAT result in the screening window", "REASON_CODE": "MISSING"}
    result = run([subject("S1", IN10_PLT=unverifiable), subject("S2", "SCREEN FAILURE", IN10_PLT=unverifiable)],
                 full_checklist("S1") + full_checklist("S2", IN07="N"))
    found = rows(result, "UNVERIFIABLE")
    assert [(r["USUBJID"], r["CHECK_ID"], r["SEVERITY"], r["RECOMPUTED"]) for r in found] == [
        ("S1", "IN10.PLT", "QUERY", "UNVERIFIABLE")]
    assert found[0]["EVIDENCE"] == (
        "IN10.PLT could not be verified: no PLAT result in the screening window; "
        "the site recorded IN10 as met (IN10=Y) and enrolled the subject."
    )
    assert result.subjects.sort("USUBJID")["RECOMPUTED"].to_list() == ["UNVERIFIABLE", "UNVERIFIABLE"]


def test_recomputed_ineligible_wins_over_unverifiable():
    result = run([subject("S1", IN10_PLT={"OUTCOME": "UNVERIFIABLE", "VALUE": None},
                          EX07_ASC={"OUTCOME": "APPLIES", "VALUE": "7"})], full_checklist("S1"))
    assert result.subjects["RECOMPUTED"].to_list() == ["INELIGIBLE"]


# ------------------------------------------------------------------------- SCREEN_FAIL_UNSUPPORTED


def test_screen_failure_whose_recorded_failures_all_pass_golden_evidence():
    result = run([subject("S1", "SCREEN FAILURE")], full_checklist("S1", IN07="N", EX07="Y"))
    (found,) = rows(result, "SCREEN_FAIL_UNSUPPORTED")
    assert (found["CHECK_ID"], found["SEVERITY"], found["SITE_ASSESSMENT"], found["RECOMPUTED"]) == (
        "EX07,IN07", "QUERY", "EX07=Y and IN07=N; SCREEN FAILURE", "EX07=NOT_APPLICABLE; IN07=MET")
    assert found["EVIDENCE"] == (
        "The site recorded the subject as a screen failure on EX07=Y and IN07=N, but the audit recomputes "
        "EX07 as not applying (EX07.ASC 2 cm on 2026-03-02, limit > 5 cm); "
        "IN07 as met (IN07.KPS 90 on 2026-03-02, limit >= 80); "
        "no recorded reason for the screen failure is supported by the data."
    )
    # each unsupported reason is also a (query) IE mismatch
    assert [(r["CHECK_ID"], r["SEVERITY"]) for r in rows(result, "IE_MISMATCH")] == [
        ("EX07", "QUERY"), ("IN07", "QUERY")]


@pytest.mark.parametrize(
    "kps",
    [
        {"OUTCOME": "NOT_MET", "VALUE": "70"},  # one recorded reason is supported
        {"OUTCOME": "UNVERIFIABLE", "VALUE": None},  # cannot tell: not unsupported
    ],
)
def test_screen_failure_with_one_supported_or_unverifiable_reason_is_not_flagged(kps):
    result = run([subject("S1", "SCREEN FAILURE", IN07_KPS=kps)], full_checklist("S1", IN07="N", EX07="Y"))
    assert rows(result, "SCREEN_FAIL_UNSUPPORTED") == []


def test_screen_failure_without_recorded_failing_criterion_is_not_flagged():
    result = run([subject("S1", "SCREEN FAILURE")], full_checklist("S1"))
    assert rows(result, "SCREEN_FAIL_UNSUPPORTED") == []


def test_implied_answers_never_count_as_recorded_screen_failure_reasons():
    # not-met-only: only IN07=N delivered; IN07 recomputes NOT_MET, so the screen failure is supported
    result = run([subject("S1", "SCREEN FAILURE", IN07_KPS={"OUTCOME": "NOT_MET", "VALUE": "60"})],
                 [("S1", "IN07", "N")])
    assert result.discrepancies.height == 0


# --------------------------------------------------------------------------- checklist styles, PC04


def test_not_met_only_checklist_absent_criteria_count_as_met():
    # S1 screen failure with only its failing row; S2 enrolled with no IE row at all (SDTM style site)
    result = run([subject("S1", "SCREEN FAILURE", IN07_KPS={"OUTCOME": "NOT_MET", "VALUE": "60"}),
                  subject("S2")], [("S1", "IN07", "N")])
    assert result.discrepancies.height == 0
    styles = result.checklist.unique(["USUBJID", "STYLE"]).sort("USUBJID")["STYLE"].to_list()
    assert styles == ["NOT_MET_ONLY", "NOT_MET_ONLY"]


def test_not_met_only_checklist_implied_met_hides_ineligible_enrolment():
    result = run([subject("S1", "SCREEN FAILURE", IN07_KPS={"OUTCOME": "NOT_MET", "VALUE": "60"}),
                  subject("S2", IN10_PLT={"OUTCOME": "NOT_MET", "VALUE": "52"})], [("S1", "IN07", "N")])
    assert keys(result) == [("S2", "IN10", "IE_MISMATCH", "IMPORTANT"),
                            ("S2", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT")]
    mismatch = rows(result, "IE_MISMATCH")[0]
    assert mismatch["SITE_ASSESSMENT"] == "IN10=Y (implied); ENROLLED"
    assert mismatch["EVIDENCE"].startswith(
        "The site recorded IN10 as met (no IE row in a not-met-only checklist) but the audit recomputes")


def test_implied_answer_of_a_subject_still_in_screening_is_not_a_disagreement():
    result = run([subject("S1", "SCREEN FAILURE", IN07_KPS={"OUTCOME": "NOT_MET", "VALUE": "60"}),
                  subject("S2", "IN SCREENING", IN10_PLT={"OUTCOME": "NOT_MET", "VALUE": "52"})],
                 [("S1", "IN07", "N")])
    assert result.discrepancies.height == 0


def test_full_checklist_site_subject_without_rows_is_missing_checklist():
    result = run([subject("S1"), subject("S2"), subject("S3", "IN SCREENING")], full_checklist("S1"))
    found = rows(result, "PROCESS")
    assert [(r["USUBJID"], r["CHECK_ID"], r["SEVERITY"], r["RECOMPUTED"]) for r in found] == [
        ("S2", "PC04", "QUERY", "checklist missing")]
    assert found[0]["SITE_ASSESSMENT"] == "IE missing checklist, 0 of 4 criteria answered Y/N; ENROLLED"
    assert found[0]["EVIDENCE"] == (
        "No IE checklist was delivered for this subject, although the site enrolled the subject.")


def test_a_checklist_in_a_file_nobody_read_is_not_reported_missing():
    """Site 102's ie.csv was rejected as a whole (ingestion.unread): nothing is known of its subject's checklist, so
    no PC04 (the file's query asks for the file; the history keeps the night before's); site 101's subject, whose site
    delivered no IE row, is still missing its checklist, and an unread LB file says nothing of checklists."""
    unread = pl.DataFrame({"SITEID": ["102", "101"], "DOMAIN": ["IE", "LB"],
                           "SOURCE": ["SZ003/102/D1/ie.csv", "SZ003/101/D1/lb.csv"]})
    result = compare_evaluated(build([subject("S1"), subject("S2", site="102")]), {}, unread=unread)
    assert [(r["USUBJID"], r["CHECK_ID"], r["RECOMPUTED"]) for r in rows(result, "PROCESS")] == [
        ("S1", "PC04", "checklist missing")]
    assert [r["USUBJID"] for r in rows(compare_evaluated(build([subject("S1"), subject("S2", site="102")]), {}),
                                        "PROCESS")] == ["S1", "S2"]


def test_site_without_any_ie_row_is_missing_for_decided_subjects():
    result = run([subject("S1"), subject("S2", "SCREEN FAILURE"), subject("S3", "IN SCREENING")], None)
    assert keys(result) == [("S1", "PC04", "PROCESS", "QUERY"), ("S2", "PC04", "PROCESS", "QUERY")]


def test_incomplete_full_checklist_golden_evidence():
    answers = [r for r in full_checklist("S1", IN10="U") if r[1] != "EX07"]
    result = run([subject("S1")], answers)
    (found,) = rows(result, "PROCESS")
    assert (found["CHECK_ID"], found["RECOMPUTED"], found["SITE_ASSESSMENT"]) == (
        "PC04", "no answer for EX07; answer not Y/N for IN10=U",
        "IE full checklist, 2 of 4 criteria answered Y/N; ENROLLED")
    assert found["EVIDENCE"] == ("The site's IE checklist is incomplete although the site enrolled the subject: "
                                 "no answer for EX07; answer not Y/N for IN10=U.")


def test_conflicting_duplicate_answers_are_not_decided():
    result = run([subject("S1", IN07_KPS={"OUTCOME": "NOT_MET", "VALUE": "70"})],
                 [*full_checklist("S1"), ("S1", "IN07", "N")])
    assert rows(result, "IE_MISMATCH") == []
    assert [r["RECOMPUTED"] for r in rows(result, "PROCESS")] == ["answer not Y/N for IN07=N/Y"]


def test_answers_are_read_case_and_blank_insensitively():
    result = run([subject("S1")], [(u, f" {c.lower()} ", f" {a.lower()}") for u, c, a in full_checklist("S1")])
    assert result.discrepancies.height == 0


# --------------------------------------------------------------------------------------- determinism


def test_row_order_does_not_change_output():
    subjects = [subject("S1", IN10_PLT={"OUTCOME": "NOT_MET", "VALUE": "52"}),
                subject("S2", "SCREEN FAILURE", site="102"),
                subject("S3", IN07_KPS={"OUTCOME": "UNVERIFIABLE", "VALUE": None, "REASON": "missing"}),
                subject("S4")]
    answers = full_checklist("S1") + full_checklist("S2", IN07="N") + full_checklist("S3")
    dm_rows = [{"USUBJID": "S1", "AGE": "40"}, {"USUBJID": "S2"}, {"USUBJID": "S3"}, {"USUBJID": "S4"}]
    base = build(subjects)
    expected = compare_evaluated(base, {"ie": ie(answers), "dm": dm(dm_rows)})
    assert expected.discrepancies.height >= 6
    rng = random.Random(7)
    for _ in range(3):
        shuffled = EligibilityResult(
            eligibility=base.eligibility.sample(fraction=1.0, shuffle=True, seed=rng.randint(0, 999)),
            reference=base.reference.sample(fraction=1.0, shuffle=True, seed=rng.randint(0, 999)),
            criteria=base.criteria.sample(fraction=1.0, shuffle=True, seed=rng.randint(0, 999)),
        )
        got = compare_evaluated(shuffled, {
            "ie": ie(answers).sample(fraction=1.0, shuffle=True, seed=rng.randint(0, 999)),
            "dm": dm(dm_rows).sample(fraction=1.0, shuffle=True, seed=rng.randint(0, 999))})
        assert got.discrepancies.equals(expected.discrepancies)
        assert got.subjects.equals(expected.subjects)


def test_output_sorted_and_counted_per_subject():
    result = run([subject("S2", site="102", IN10_PLT={"OUTCOME": "NOT_MET", "VALUE": "52"}),
                  subject("S1", site="101", IN07_KPS={"OUTCOME": "NOT_MET", "VALUE": "50"})],
                 full_checklist("S1") + full_checklist("S2"))
    assert [(r["SITEID"], r["USUBJID"], r["CHECK_ID"], r["CLASS"]) for r in rows(result)] == [
        ("101", "S1", "IN07", "IE_MISMATCH"), ("101", "S1", "IN07.KPS", "INELIGIBLE_ENROLLED"),
        ("102", "S2", "IN10", "IE_MISMATCH"), ("102", "S2", "IN10.PLT", "INELIGIBLE_ENROLLED")]
    assert result.subjects["N_DISCREPANCIES"].to_list() == [2, 2]
    assert result.discrepancies.select("STATUS", "FIRST_SEEN", "DAYS_OPEN").null_count().row(0) == (4, 4, 4)


# ------------------------------------------------------------------------------- protocol versions


def test_checklist_follows_the_criteria_evaluated_for_each_subject():
    """A subject screened under another version is read against its own criteria (here IN99 too)."""
    data = build([subject("S1"), subject("S2")])
    extra = pl.DataFrame([{"STUDYID": "SZ003", "SITEID": "101", "USUBJID": "S2", "CRITERION_ID": "IN99",
                           "OUTCOME": "MET", "CATEGORY": "INCLUSION"}], schema=dict.fromkeys(data.criteria.columns,
                                                                                                pl.String))
    data = replace(data, criteria=pl.concat([data.criteria, extra.select(data.criteria.columns)]))
    result = compare(data, {"ie": ie(full_checklist("S1") + full_checklist("S2"))}, PROTOCOL, AS_OF)
    assert [(r["USUBJID"], r["CHECK_ID"], r["RECOMPUTED"]) for r in rows(result)] == [
        ("S2", "PC04", "no answer for IN99")]
    assert result.checklist.filter(pl.col("USUBJID") == "S1").height == 4


def test_subject_without_evaluated_criteria_is_unverifiable_and_gets_the_protocol_checklist():
    data = build([subject("S1"), subject("S2")])
    data = replace(data, criteria=data.criteria.filter(pl.col("USUBJID") == "S1"),
                   eligibility=data.eligibility.filter(pl.col("USUBJID") == "S1"))
    result = compare(data, {"ie": ie(full_checklist("S1") + full_checklist("S2"))}, PROTOCOL, AS_OF)
    assert result.subjects.select("USUBJID", "RECOMPUTED").rows() == [("S1", "ELIGIBLE"), ("S2", "UNVERIFIABLE")]
    assert result.checklist.filter(pl.col("USUBJID") == "S2").height == 4
    assert result.discrepancies.height == 0


def test_blank_answer_is_recorded_but_not_decided():
    answers = [(u, c, "  " if c == "IN10" else a) for u, c, a in full_checklist("S1")]
    result = run([subject("S1", IN10_PLT={"OUTCOME": "NOT_MET", "VALUE": "52"})], answers)
    assert keys(result) == [("S1", "IN10.PLT", "INELIGIBLE_ENROLLED", "IMPORTANT"), ("S1", "PC04", "PROCESS", "QUERY")]
    assert rows(result, "PROCESS")[0]["RECOMPUTED"] == "answer not Y/N for IN10=(blank)"
    assert rows(result, "INELIGIBLE_ENROLLED")[0]["SITE_ASSESSMENT"] == "IN10=(blank); ENROLLED"


def test_no_subject_gives_empty_tables_with_the_contracted_schema():
    empty = build([])
    result = compare(empty, {}, PROTOCOL, AS_OF)
    assert result.discrepancies.height == 0 and result.subjects.height == 0
    assert result.subjects.schema == pl.Schema(SUBJECTS)
    assert result.discrepancies.schema == pl.Schema(DISCREPANCIES)
