"""How an audit run scores against a generated study's ground truth.

The demo prints it and the end-to-end tests assert it: every planted discrepancy found with its
class and severity, every planted data-quality row named in the findings, and nothing reported for
the subjects that were generated clean.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

_KEY = ["SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY"]


@dataclass(frozen=True)
class Score:
    expected: int  # planted discrepancies
    found: int  # of those, reported with the same class and severity
    missed: list[dict]
    unexpected: list[dict]  # reported discrepancies that no planted problem explains
    data_quality_expected: int  # planted bad rows
    data_quality_found: int  # of those, named by SOURCE in the findings

    @property
    def perfect(self) -> bool:
        return not self.missed and not self.unexpected and self.data_quality_found == self.data_quality_expected

    def line(self) -> str:
        return (f"planted discrepancies found: {self.found}/{self.expected}, unexpected: {len(self.unexpected)}; "
                f"planted bad rows named in findings: {self.data_quality_found}/{self.data_quality_expected}")


def score(ground_truth: dict, discrepancies: pl.DataFrame, findings: pl.DataFrame) -> Score:
    """Compare a run's discrepancies and findings with what the generator planted."""
    expected = pl.DataFrame(
        [{"SITEID": e["site"], "USUBJID": e["usubjid"], "CHECK_ID": e["check_id"], "CLASS": e["class"],
          "SEVERITY": e["severity"]} for e in ground_truth.get("expected_discrepancies", [])],
        schema=dict.fromkeys(_KEY, pl.String),
    ).unique()
    current = discrepancies
    if "STATUS" in current.columns:
        current = current.filter(pl.col("STATUS").fill_null("NEW") != "RESOLVED")
    reported = current.select(pl.col(_KEY).cast(pl.String)).unique()
    missed = expected.join(reported, on=_KEY, how="anti").sort(_KEY)
    unexpected = reported.join(expected, on=_KEY, how="anti").sort(_KEY)
    bad_rows = {row["source"] for row in ground_truth.get("data_quality", []) if row.get("source")}
    named = set(findings.get_column("SOURCE").drop_nulls().to_list()) if "SOURCE" in findings.columns else set()
    return Score(
        expected=expected.height,
        found=expected.height - missed.height,
        missed=missed.to_dicts(),
        unexpected=unexpected.to_dicts(),
        data_quality_expected=len(bad_rows),
        data_quality_found=len(bad_rows & named),
    )
