"""checks.comparison.evidence: the wording building blocks, golden texts for every combination of present parts."""

from __future__ import annotations

import polars as pl
import pytest

from checks.comparison import evidence

COLUMNS = ["CHECK_ID", "CRITERION_ID", "OUTCOME", "VALUE", "UNIT", "DELIVERED", "LIMIT", "DTC", "REASON",
           "SITE_DECISION", "SITE_PHRASE"]


def one(expr: pl.Expr, **values: str | None) -> str:
    row = {c: None for c in COLUMNS} | {"CHECK_ID": "IN10.PLT", "CRITERION_ID": "IN10"} | values
    return pl.DataFrame([row], schema=dict.fromkeys(COLUMNS, pl.String)).select(expr.alias("x")).item()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"VALUE": "52", "UNIT": "10^9/L", "LIMIT": "60", "DTC": "2026-03-02", "OUTCOME": "NOT_MET"},
         "IN10.PLT 52 10^9/L on 2026-03-02, limit 60 10^9/L"),
        ({"VALUE": "POSITIVE", "OUTCOME": "APPLIES"}, "IN10.PLT POSITIVE"),
        ({"VALUE": "70", "LIMIT": "80", "OUTCOME": "NOT_MET"}, "IN10.PLT 70, limit 80"),
        ({"OUTCOME": "NOT_APPLICABLE", "REASON": "HBSAG and HBCAB negative"},
         "IN10.PLT not applying (HBSAG and HBCAB negative)"),
        ({"OUTCOME": "MET"}, "IN10.PLT met"),
        ({"OUTCOME": "SOMETHING_NEW"}, "IN10.PLT SOMETHING_NEW"),
        # a value converted to the protocol unit says what the site delivered, as the site wrote it
        ({"VALUE": "14.3379", "UNIT": "g/dL", "DELIVERED": "8.9 mmol/L", "LIMIT": "9", "DTC": "2026-07-15",
          "OUTCOME": "MET"}, "IN10.PLT 14.3379 g/dL (delivered: 8.9 mmol/L) on 2026-07-15, limit 9 g/dL"),
    ],
)
def test_component_fact(values, expected):
    assert one(evidence.component_fact(), **values) == expected


@pytest.mark.parametrize(
    ("decision", "expected"),
    [("ENROLLED", "enrolled the subject"), ("SCREEN FAILURE", "recorded the subject as a screen failure"),
     ("IN SCREENING", "has not yet decided (subject in screening)"),
     (None, "has not yet decided (subject in screening)")],
)
def test_decision_clause(decision, expected):
    assert one(evidence.decision_clause(), SITE_DECISION=decision) == expected


def test_ineligible_sentence_without_value_quotes_the_reason_and_never_prints_null():
    text = one(evidence.ineligible_enrolled().alias("x"), OUTCOME="APPLIES", CHECK_ID="EX03.ENC",
               CRITERION_ID="EX03", REASON="MH ENCEPHALOPATHY = Y",
               SITE_PHRASE="EX03 as not applying (EX03=N)")
    assert text == ("EX03.ENC (MH ENCEPHALOPATHY = Y) meets exclusion EX03; the site recorded EX03 as not "
                    "applying (EX03=N) and enrolled the subject.")
