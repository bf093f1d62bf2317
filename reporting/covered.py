"""Findings another finding already asks the site about: one query per problem, not one per check.

Two checks can see one problem: an enrolled subject without IE answers is PC04 (a discrepancy) and a
data-quality finding per missing answer; an ineligible enrolment is INELIGIBLE_ENROLLED on the component
and IE_MISMATCH on the criterion the site answered; a site whose VS file was rejected "delivers no WEIGHT
result". Each finding stays in its table, the report and the sponsor's review; only the site's query list
leaves out the one whose ask the other already makes. Which findings cover which is data
(reporting/data/queries.yaml `covered_by`), a list of rules read by `without_covered`:

    - finding: {data_check: DM.ie_checklist}   # what is left out of the site's queries
      by: {check: PC04}                        # when the site is asked this
      same: subject                            # about the same subject (see SAME)

A selector is one of `data_check` (a data-quality check id or its start, as `data_checks` keys; `*.*` is any),
`code` (an ingestion code or its start), `check` (a discrepancy's CHECK_ID) or `class` (a discrepancy's
CLASS), optionally with `cause` (the query's CAUSE, e.g. an UNVERIFIABLE component's reason code): all
that it names must hold. Two relations read text the audit itself wrote, for a result nobody delivered:
the data-quality finding's message names the discrepancy's check ("… EX06.LUNG cannot be verified …") and
every part of the discrepancy's reason names the finding's test ("no FEV1PP result"), so that a component
whose reason names another test too is not left out. A finding is left out only when a chain of covers
leads to a finding that is listed (a rejected file, then the site-level gap it causes, then the components
that gap names: re-sending the file answers all three); findings that would only cover each other stay
listed. An IMPORTANT finding (or one of unknown severity) is only left out for an IMPORTANT one.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from contracts.enums import DiscrepancyClass, ReasonCode, Severity
from contracts.tables import FINDING_ID
from core.source import RECORD_SEPARATOR
from expectations.spec import CheckKind
from reporting.check_keys import matching, names_a_code
from reporting.datafiles import DataFileError

#: what a covering finding must share with the finding it covers
SAME: dict[str, list[str]] = {
    "subject": ["STUDYID", "SITEID", "USUBJID"],
    "criterion": ["STUDYID", "SITEID", "USUBJID", "_CRITERION"],  # IN10 of IN10.PLT, EX07 of "EX07,IN07"
    "site": ["STUDYID", "SITEID"],  # a site's deliveries (its rejections and whether it is audited at all)
    "domain": ["STUDYID", "SITEID", "DOMAIN"],  # a site's file of that domain
    "file": ["STUDYID", "SITEID", "SOURCE"],  # one delivered file (a component names the rejected file it needs)
    # one delivered record: a component names the one excluded (among the records of its other rule parts)
    "record": ["STUDYID", "SITEID", "USUBJID", "SOURCE"],
    # a result nobody delivered (see _named): at the site ("site 113 delivers no FEV1PP result in FA for any
    # subject: EX06.LUNG cannot be verified ...") or for the subject ("... no ALB result in LB: IN11.ALB ...")
    "named_check": ["STUDYID", "SITEID"],
    "named_check_of_subject": ["STUDYID", "SITEID", "USUBJID"],
}
#: where a check id or a test code may stand in a text: between these characters or its ends
_WORD_EDGES = r"[\s:;,()]+"
_SELECTORS = ("data_check", "code", "check", "class")
#: what a selector may add to one of _SELECTORS
_NARROWING = ("cause",)
#: the values a `class` or `cause` may take (a misspelt one would silently cover nothing)
_KNOWN = {"class": {str(c) for c in DiscrepancyClass}, "cause": {str(c) for c in ReasonCode}}


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
            for kind, known in _KNOWN.items():
                if kind in selector and selector[kind] not in known:
                    raise DataFileError(f"{where}: rule {number}: {side}: {kind} {selector[kind]!r} is not one of "
                                        f"{', '.join(sorted(known))}")
            _check_key(where, number, side, selector)
        quality = [bool({"data_check", "code"} & set(rule[side])) for side in ("finding", "by")]
        if rule["same"].startswith("named_check") and quality[0] == quality[1]:
            raise DataFileError(f"{where}: rule {number}: {rule['same']} pairs a data-quality finding (data_check or "
                                "code) with a discrepancy (check or class)")


def _check_key(where: str, number: int, side: str, selector: dict[str, str]) -> None:
    """A `code` must be an ingestion code or the start of one, a `data_check` `<DOMAIN or *>.<check kind>...`: a
    misspelt key would match nothing and silently leave every finding listed."""
    if "code" in selector and not names_a_code(selector["code"]):
        raise DataFileError(f"{where}: rule {number}: {side}: code {selector['code']!r} is no ingestion code "
                            "nor the start of one")
    if "data_check" in selector:
        parts = selector["data_check"].split(".")
        if len(parts) < 2 or parts[1] not in {"*", *(str(kind) for kind in CheckKind)}:
            raise DataFileError(f"{where}: rule {number}: {side}: data_check {selector['data_check']!r} is not "
                                "<DOMAIN or *>.<check kind or *> (expectations/spec.py CheckKind)")


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


def _words(text: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit(" "), text.str.replace_all(_WORD_EDGES, " "), pl.lit(" ")])


def _has_word(text: pl.Expr, word: pl.Expr) -> pl.Expr:
    return _words(text).str.contains(pl.concat_str([pl.lit(" "), word, pl.lit(" ")]), literal=True).fill_null(False)


def _named(pairs: pl.DataFrame) -> pl.DataFrame:
    """The `pairs` (a candidate and a covering row, the latter's columns suffixed _BY) about one result nobody
    delivered: the data-quality finding's MESSAGE names the discrepancy's CHECK_ID, and every part (`; `) of the
    discrepancy's REASON names the test of the finding's OBSERVED (`FEV1PP: no result at the site`; a group
    `LYM or LYMLE` when it names one of them). So a site that never delivers WEIGHT covers neither a subject's
    IN11.CRCL whose reason is "creatinine: no CREAT result" nor one whose merged reason also names a stale ALB."""
    def side(column: str, origin: str) -> pl.Expr:
        return pl.when(pl.col("ORIGIN") == origin).then(pl.col(column)).otherwise(pl.col(f"{column}_BY"))
    item = side("OBSERVED", "VALIDATION").str.extract(r"^(.+?): no result", 1).str.split(" or ")
    named = pairs.with_row_index("_PAIR").filter(_has_word(side("MESSAGE", "VALIDATION"),
                                                           side("CHECK_ID", "DISCREPANCY")))
    parts = (named.with_columns(side("REASON", "DISCREPANCY").str.split("; ").alias("_PART"), item.alias("_ITEM"))
             .explode("_PART").with_row_index("_P").explode("_ITEM")
             .group_by("_PAIR", "_P").agg(_has_word(pl.col("_PART"), pl.col("_ITEM")).any().alias("_NAMES"))
             .group_by("_PAIR").agg(pl.col("_NAMES").all()).filter(pl.col("_NAMES")))
    return named.join(parts.select("_PAIR"), on="_PAIR", how="semi").drop("_PAIR")


#: what a pair of a candidate and its covering row carries of each (_named reads them)
_TEXT = ("ORIGIN", "CHECK_ID", "MESSAGE", "OBSERVED", "REASON", "SEVERITY")


def _rule_pairs(indexed: pl.DataFrame, rule: dict[str, Any]) -> pl.DataFrame:
    """(_ROW, _ROW_BY): the rows the rule would leave out, each with a row that covers it."""
    empty = pl.DataFrame(schema={"_ROW": pl.UInt32, "_ROW_BY": pl.UInt32})
    keys = SAME[rule["same"]]
    covering = indexed.filter(_selected(rule["by"]))
    candidates = indexed.filter(_selected(rule["finding"])) if covering.height else covering.clear()
    if covering.height == 0 or candidates.height == 0:
        return empty
    text = [(pl.col(c).cast(pl.String) if c in indexed.columns else pl.lit(None, pl.String)).alias(c) for c in _TEXT]
    if rule["same"] == "criterion":
        covering = covering.with_columns(_criteria().alias("_CRITERION")).explode("_CRITERION")
        candidates = candidates.with_columns(_criteria().list.first().alias("_CRITERION"))
    # a finding naming several records (files) shares each of them: a component that needs two rejected files (cm.csv
    # and lb.csv) is asked by the first file's query, not in a query of its own beside the two (helper-45)
    if rule["same"] in ("record", "file"):
        candidates = candidates.with_columns(pl.col("SOURCE").str.split(RECORD_SEPARATOR)).explode("SOURCE")
    pairs = (candidates.select("_ROW", *keys, *text)
             .join(covering.select(*keys, *text, "_ROW"), on=keys, how="inner", suffix="_BY")
             .unique(["_ROW", "_ROW_BY"], keep="first", maintain_order=True))
    # an important finding, or one of unknown severity, only for an important one
    pairs = pairs.filter((pl.col("SEVERITY") != Severity.IMPORTANT).fill_null(False)
                         | (pl.col("SEVERITY_BY") == Severity.IMPORTANT).fill_null(False))
    if rule["same"].startswith("named_check"):
        pairs = _named(pairs)
    return pairs.select("_ROW", "_ROW_BY")


#: on a listed finding's row: the FINDING_IDs (space-separated) of the findings left out because it covers them
COVERED_FINDING_IDS = "COVERED_FINDING_IDS"
#: ... and their subjects (space-separated, sorted): a site-level query names the subjects it is about
COVERED_SUBJECTS = "COVERED_SUBJECTS"


def without_covered(rows: pl.DataFrame, rules: list[dict[str, Any]]) -> pl.DataFrame:
    """`rows` (site-query rows of every finding: ORIGIN, CHECK_ID, CLASS, CAUSE, SEVERITY, REASON, MESSAGE,
    OBSERVED, FINDING_ID, the subject and DOMAIN) without those another row already asks about, by `rules` (see
    the module docstring), in their order, with COVERED_FINDING_IDS and COVERED_SUBJECTS: on a listed row, the
    findings left out for it and their subjects (null on the others).

    A finding no rule leaves out is listed; a finding is left out when a listed finding covers it, or one left
    out so in turn (followed until nothing changes: a few steps, the rules chain at most file -> site ->
    subject), and it is covered by the listed finding at the start of its chain (of the chains that reach it in
    the fewest steps, the one whose listed finding comes first in `rows`): the query that lists that finding
    asks the site about it, and the site's answer to that query is recorded for it too (review.imports). Only
    the rows a rule selects are joined, and the rows are copied once."""
    none = [pl.lit(None, pl.String).alias(COVERED_FINDING_IDS), pl.lit(None, pl.String).alias(COVERED_SUBJECTS)]
    indexed = rows.with_row_index("_ROW")
    # the rules read a few columns: each filters these, not every column of every finding
    read = {c for keys in SAME.values() for c in keys} | {"ORIGIN", "CHECK_ID", "CLASS", "CAUSE", *_TEXT}
    slim = indexed.select("_ROW", *(c for c in rows.columns if c in read))
    pairs = pl.concat([_rule_pairs(slim, rule) for rule in rules]) if rules else pl.DataFrame()
    if pairs.height == 0:
        return rows.with_columns(none)
    candidates = pairs["_ROW"].unique().implode()
    # (left-out row, the listed row its chain starts at): first those a listed row covers, then those they cover
    reached = pairs.filter(~pl.col("_ROW_BY").is_in(candidates)).select("_ROW", pl.col("_ROW_BY").alias("_ROOT"))
    while True:
        more = (pairs.filter(~pl.col("_ROW").is_in(reached["_ROW"].implode()))
                .join(reached.select(pl.col("_ROW").alias("_ROW_BY"), "_ROOT"), on="_ROW_BY", how="inner"))
        if more.height == 0:
            break
        reached = pl.concat([reached, more.select("_ROW", "_ROOT")])
    roots = reached.group_by("_ROW").agg(pl.col("_ROOT").min())
    ids = pl.col(FINDING_ID) if FINDING_ID in rows.columns else pl.lit(None, pl.String)
    subject = pl.col("USUBJID").cast(pl.String) if "USUBJID" in rows.columns else pl.lit(None, pl.String)
    covers = (roots.join(indexed.select("_ROW", ids.cast(pl.String).alias("_ID"), subject.alias("_SUBJECT")),
                         on="_ROW", how="inner")
              .sort("_ID", nulls_last=True)
              .group_by("_ROOT").agg(pl.col("_ID").drop_nulls().unique(maintain_order=True).str.join(" ")
                                     .alias(COVERED_FINDING_IDS),
                                     pl.col("_SUBJECT").drop_nulls().unique().sort().str.join(" ")
                                     .alias(COVERED_SUBJECTS))
              .with_columns(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c)
                            for c in (COVERED_FINDING_IDS, COVERED_SUBJECTS))
              .rename({"_ROOT": "_ROW"}))
    # the covers put in their rows' places (a join would copy every column of every finding once more)
    placed = [pl.repeat(None, rows.height, dtype=pl.String, eager=True).alias(name).scatter(covers["_ROW"],
                                                                                           covers[name])
              for name in (COVERED_FINDING_IDS, COVERED_SUBJECTS)]
    return indexed.with_columns(placed).filter(~pl.col("_ROW").is_in(roots["_ROW"].implode())).drop("_ROW")
