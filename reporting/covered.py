"""Findings another finding already asks the site about: one query per problem, not one per check.

Two checks can see one problem: an enrolled subject without IE answers is PC04 (a discrepancy) and a
data-quality finding per missing answer; an ineligible enrolment is INELIGIBLE_ENROLLED on the component
and IE_MISMATCH on the criterion the site answered; a site whose VS file was rejected "delivers no WEIGHT
result". Each finding stays in its table, the report and the sponsor's review; only the site's query list
leaves out the one whose ask the other already makes. Which findings cover which is data
(reporting/data/queries.yaml `covered_by`), a list of rules read by `without_covered`:

    - finding: {data_check: DM.ie_checklist}   # what is left out of the site's queries
      by: {check: PC04}                        # when the site is asked this
      same: subject                            # about the same subject (criterion, domain, named_check)

A selector is one of `data_check` (a data-quality check id or its start, as `data_checks` keys),
`code` (an ingestion code or its start), `check` (a discrepancy's CHECK_ID) or `class` (a discrepancy's
CLASS), optionally with `cause` (the query's CAUSE, e.g. an UNVERIFIABLE component's reason code): all
that it names must hold. An IMPORTANT finding is only left out for an IMPORTANT one: an important deviation is never
folded into a query.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from contracts.enums import Severity
from reporting.check_keys import matching
from reporting.datafiles import DataFileError

#: what a covering finding must share with the finding it covers
SAME: dict[str, list[str]] = {
    "subject": ["STUDYID", "SITEID", "USUBJID"],
    "criterion": ["STUDYID", "SITEID", "USUBJID", "_CRITERION"],  # IN10 of IN10.PLT, EX07 of "EX07,IN07"
    "domain": ["STUDYID", "SITEID", "DOMAIN"],  # a site's file of that domain
    # the site, and the covering finding's message names the covered one's check ("site 113 delivers no FEV1PP
    # result in FA for any subject: EX06.LUNG cannot be verified for its 15 ENROLLED subjects")
    "named_check": ["STUDYID", "SITEID"],
}
#: where a check id may stand in a message: between these characters or its ends
_WORD_EDGES = r"[\s:;,()]+"
_SELECTORS = ("data_check", "code", "check", "class")
#: what a selector may add to one of _SELECTORS
_NARROWING = ("cause",)


def check_rules(rules: Any) -> None:
    """Refuse a `covered_by` that is not a list of {finding, by, same} rules with one known selector each."""
    where = "queries.yaml: covered_by"
    if not isinstance(rules, list):
        raise DataFileError(f"{where}: expected a list of rules (finding, by, same)")
    for number, rule in enumerate(rules, start=1):
        if not isinstance(rule, dict) or set(rule) != {"finding", "by", "same"}:
            raise DataFileError(f"{where}: rule {number} must have exactly the keys finding, by and same")
        if rule["same"] not in SAME:
            raise DataFileError(f"{where}: rule {number}: same must be one of {', '.join(SAME)}")
        for side in ("finding", "by"):
            selector = rule[side]
            if (not isinstance(selector, dict) or len(set(selector) & set(_SELECTORS)) != 1
                    or set(selector) - set(_SELECTORS) - set(_NARROWING)
                    or not all(isinstance(value, str) and value for value in selector.values())):
                raise DataFileError(f"{where}: rule {number}: {side} must be one of {', '.join(_SELECTORS)} "
                                    f"(and, optionally, {', '.join(_NARROWING)}) with a text value")


def _selected(selector: dict[str, str]) -> pl.Expr:
    """The rows a selector names (every key of it holds)."""
    def one(kind: str, value: str) -> pl.Expr:
        if kind == "data_check":
            return matching("CAUSE", value)
        if kind == "code":
            return matching("CHECK_ID", value)
        if kind == "cause":
            return (pl.col("CAUSE") == value).fill_null(False)
        column = "CHECK_ID" if kind == "check" else "CLASS"
        return ((pl.col("ORIGIN") == "DISCREPANCY") & (pl.col(column) == value)).fill_null(False)
    return pl.all_horizontal(one(kind, value) for kind, value in selector.items())


def _criteria() -> pl.Expr:
    """The criteria a CHECK_ID names: IN10 for IN10.PLT, EX07 and IN07 for `EX07,IN07`."""
    return pl.col("CHECK_ID").str.split(",").list.eval(pl.element().str.strip_chars().str.split(".").list.first())


def without_covered(rows: pl.DataFrame, rules: list[dict[str, Any]]) -> pl.DataFrame:
    """`rows` (site-query rows of every finding: ORIGIN, CHECK_ID, CLASS, CAUSE, SEVERITY, the subject and
    DOMAIN) without those another row already asks about, by `rules` (see the module docstring), in their
    order. Every rule reads the night's rows as they are (a finding covers another even when a rule leaves it
    out of the list too: the site is then asked through the finding that covers it). Only the few rows a rule
    selects on either side are joined, and the rows are copied once, never once per rule."""
    important = pl.col("SEVERITY") == Severity.IMPORTANT
    indexed = rows.with_row_index("_ROW")
    covered: list[pl.Series] = []
    for rule in rules:
        keys = SAME[rule["same"]]
        covering = rows.filter(_selected(rule["by"]))
        candidates = indexed.filter(_selected(rule["finding"]))
        if covering.height == 0 or candidates.height == 0:
            continue
        if rule["same"] == "criterion":
            covering = covering.with_columns(_criteria().alias("_CRITERION")).explode("_CRITERION")
            candidates = candidates.with_columns(_criteria().list.first().alias("_CRITERION"))
        if rule["same"] == "named_check":  # one covering finding per site and test: a join within the site
            words = pl.concat_str([pl.lit(" "), pl.col("MESSAGE").str.replace_all(_WORD_EDGES, " "), pl.lit(" ")])
            covering = covering.select(*keys, words.alias("_WORDS"), "SEVERITY")
            pairs = candidates.select("_ROW", *keys, "CHECK_ID", "SEVERITY").join(covering, on=keys, how="inner",
                                                                                   suffix="_BY")
            named = pl.col("_WORDS").str.contains(pl.concat_str([pl.lit(" "), pl.col("CHECK_ID"), pl.lit(" ")]),
                                                  literal=True)
            covered.append(pairs.filter(named & (~important.fill_null(False)
                                                 | (pl.col("SEVERITY_BY") == Severity.IMPORTANT)))["_ROW"])
            continue
        asked = covering.group_by(keys).agg(important.any().alias("_BY_IMPORTANT"))
        covered.append(candidates.join(asked, on=keys, how="inner")
                       .filter(~important.fill_null(False) | pl.col("_BY_IMPORTANT"))["_ROW"])
    left_out = pl.concat(covered) if covered else pl.Series("_ROW", [], pl.UInt32)
    if left_out.len() == 0:
        return rows
    return indexed.filter(~pl.col("_ROW").is_in(left_out.implode())).drop("_ROW")
