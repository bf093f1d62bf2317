"""End-to-end behaviour of evaluate() on the bundled SZ003 protocol, with the sample eligible subject."""

from __future__ import annotations

from datetime import date

import polars as pl

from checks import CRITERIA_COLUMNS, REFERENCE_COLUMNS, EligibilityResult, evaluate, load_protocol
from checks.sample import frames, subject_rows
from contracts import ELIGIBILITY

PROTOCOL = load_protocol()
AS_OF = date(2025, 6, 1)


def test_eligible_subject_meets_every_component():
    result = evaluate(frames(subject_rows()), PROTOCOL, AS_OF)
    assert isinstance(result, EligibilityResult)
    assert result.eligibility.columns == [*ELIGIBILITY, "REASON_CODE"]
    assert result.eligibility.height == 51
    outcomes = dict(zip(result.eligibility["CHECK_ID"], result.eligibility["OUTCOME"], strict=True))
    assert {c for c, o in outcomes.items() if c.startswith("IN") and o != "MET"} == set()
    assert {c for c, o in outcomes.items() if c.startswith("EX") and o != "NOT_APPLICABLE"} == set()
    assert result.criteria.columns == CRITERIA_COLUMNS
    assert result.criteria.height == 28
    assert result.reference.columns == REFERENCE_COLUMNS
    assert result.reference.row(0, named=True) == {
        "STUDYID": "SZ003", "SITEID": "101", "USUBJID": "SZ003-101-001", "SITE_DECISION": "ENROLLED",
        "CONSENT_DTC": "2025-02-09", "TREATMENT_START": "2025-03-01", "PROTOCOL_VERSION": "1.0"}


def test_rows_evaluated_counts_rows_after_rejection():
    domains = frames(subject_rows())
    rejected = pl.DataFrame({"SOURCE": [domains["lb"]["SOURCE"][0]], "DOMAIN": ["LB"], "VARIABLE": ["USUBJID"],
                             "MESSAGE": ["orphan"]})
    result = evaluate(domains, PROTOCOL, AS_OF, rejected=rejected)
    assert result.rows_evaluated["lb"] == domains["lb"].height - 1
    assert result.rows_evaluated["dm"] == 1
    row = result.eligibility.filter(pl.col("CHECK_ID") == "IN10.WBC").row(0, named=True)
    assert (row["OUTCOME"], row["REASON_CODE"]) == ("UNVERIFIABLE", "MISSING")
