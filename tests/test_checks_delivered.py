"""checks.evaluation.delivered: the delivered text attached to eligibility rows by the source of their value."""

from __future__ import annotations

import polars as pl

from checks.evaluation.delivered import DELIVERED_COLUMNS, with_delivered

FACTS = pl.DataFrame(
    [("S1", "lb.csv:3", "HGB", "5.5 mmol/L", "mmol/L"),
     ("S1", "lb.csv:9", "ALT", "0.57 ukat/L", "ukat/L"),
     ("S1", "lb.csv:1; lb.csv:4", "LYM_ABS", "LYMLE 28.7 % x WBC 7.2 10^3/uL", None),
     ("S1", "lb.csv:19", "HBA1C", "47 mmol/mol", "mmol/mol"),
     ("S2", "lb.csv:3", "HGB", "130 g/L", "g/L")],
    schema=DELIVERED_COLUMNS, orient="row")


def _rows(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema={"USUBJID": pl.String, "VALUE": pl.String, "UNIT": pl.String,
                                            "SOURCE": pl.String}, orient="row")


def test_a_converted_or_computed_value_gets_what_was_delivered_by_its_source():
    table = _rows(("S1", "8.8605", "g/dL", "lb.csv:3"),  # converted
                  ("S2", "8.8605", "g/dL", "lb.csv:3"),  # the same source of another subject is another row
                  ("S1", "2.0664", "10^9/L", "lb.csv:1; lb.csv:4"),  # computed from a pair
                  ("S1", "0.57", "ukat/L", "lb.csv:9"),  # compared in the unit delivered (x ULN)
                  ("S1", "DIABETES MELLITUS: N; HBA1C=6.45", None, "mh.csv:8; lb.csv:19"),  # merged evidence
                  ("S1", None, None, "lb.csv:3"),  # no value: nothing quoted
                  ("S1", "12", "g/dL", "lb.csv:77"))  # delivered in the protocol unit
    assert with_delivered(table, FACTS)["DELIVERED"].to_list() == [
        "5.5 mmol/L", "130 g/L", "LYMLE 28.7 % x WBC 7.2 10^3/uL", None, "HBA1C=47 mmol/mol", None, None]


def test_without_any_delivered_text_the_column_is_there_and_empty():
    out = with_delivered(_rows(("S1", "1", "g/dL", "lb.csv:3")), FACTS.head(0))
    assert out.columns[-1] == "DELIVERED" and out["DELIVERED"].to_list() == [None]
