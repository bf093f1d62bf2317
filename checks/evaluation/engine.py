"""evaluate(): every component of every criterion for every subject, as one long table with evidence.

Flow: drop rejected rows -> reference dates per subject -> facts (latest in-window value per test)
and derived values -> one builder call per rule kind over all leaves and subjects -> combine leaves
bottom-up through the rule trees (three-valued all / any / not) -> outcomes per component -> roll-up
per criterion. No step loops over subjects or rows; the loops are over rule kinds and tree depth.

An amended protocol (several versions, `Protocol.editions()`): the steps from the facts to the outcomes
run once per version over the subjects whose consent date allows it, and checks.evaluation.versions
merges them (a subject whose consent spans an amendment gets what its versions decide alike). A
single-version protocol takes exactly the single pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import polars as pl

from checks.evaluation.delivered import delivered_facts, with_delivered
from checks.evaluation.derived import DerivedContext, derived_facts
from checks.evaluation.exclusions import drop_rejected, normalise
from checks.evaluation.facts import empty_facts, findings_facts
from checks.evaluation.reference import REFERENCE_COLUMNS, subject_dm, subject_reference
from checks.evaluation.rulebase import LEAF_SCHEMA, EvalContext, Leaf
from checks.evaluation.rules import RULE_BUILDERS, evaluate_leaves
from checks.evaluation.unread import without_unread
from checks.evaluation.versions import edition_derived, merge_editions
from contracts import ELIGIBILITY, check_table
from contracts.enums import Outcome, ReasonCode
from contracts.protocol import Category, Component, Criterion, Protocol, Rule
from contracts.records import EligibilityResult
from contracts.units import UnitCatalog, load_units
from core.source import with_distinct_records

_EVIDENCE = ["LABEL", "VALUE", "UNIT", "LIMIT", "DTC", "SOURCE", "REASON_CODE", "REASON"]
CRITERIA_COLUMNS = ["STUDYID", "SITEID", "USUBJID", "CRITERION_ID", "CATEGORY", "OUTCOME"]


@dataclass(frozen=True)
class _Node:
    id: int
    parent: int | None
    order: int
    op: str  # all / any / not / leaf
    depth: int


def _flatten(rule: Rule, parent: int | None, order: int, depth: int, nodes: list[_Node],
             leaves: list[Leaf]) -> int:
    """Number the nodes of a rule tree (a loop over the protocol, not over data)."""
    ident = len(nodes)
    op = rule.kind if rule.kind in ("all", "any", "not") else "leaf"
    nodes.append(_Node(ident, parent, order, op, depth))
    if op == "leaf":
        leaves.append(Leaf(ident, rule.kind, rule.params))
    for i, child in enumerate(rule.children):
        _flatten(child, ident, i, depth + 1, nodes, leaves)
    return ident


def _component_tree(criterion: Criterion, component: Component) -> Rule:
    """Applicability folded into the tree: inclusion = not(when) or rule; exclusion = when and rule."""
    if component.applies_when is None:
        return component.rule
    if criterion.category is Category.INCLUSION:
        return Rule("any", children=(Rule("not", children=(component.applies_when,)), component.rule))
    return Rule("all", children=(component.applies_when, component.rule))


def _labelled(value: pl.Expr, separator: str = "=") -> pl.Expr:
    """`LABEL=VALUE`, unless there is no label or the value already names it (`HEART FAILURE: Y`)."""
    label = pl.col("LABEL")
    return (pl.when(value.is_null()).then(None)
            .when(label.is_null() | value.str.starts_with(label.fill_null(""))).then(value)
            .otherwise(pl.format("{}{}{}", label, pl.lit(separator), value)))


_OPS = {"not": 0, "all": 1, "any": 2}
_IS_NOT = pl.col("_OP") == _OPS["not"]
_SINGLE = pl.col("_K") == 1
#: merged evidence column -> the column it merges (VALUE and LIMIT with their labels)
_MERGED = {"_M_VALUE": "_LV", "_M_LIMIT": "_LL", "_M_DTC": "DTC", "_M_SOURCE": "SOURCE", "_M_REASON": "REASON"}


def _combine(pool: pl.DataFrame, at_level: pl.Series, nodes: pl.DataFrame) -> pl.DataFrame:
    """Results of the parents of the `pool` rows whose node is `at_level` (three-valued), with the
    evidence of the deciding children.

    Subjects are the integer `_S` (evaluate() numbers them) and a parent of a subject the integer key
    `_G` = _S x nodes + PARENT: grouping and joining millions of rows on integers, not on USUBJID text.
    """
    single, several = _split_by_deciding_count(_deciding_children(pool, at_level, nodes))
    merged = _merged_parents(several, _most_children(nodes))
    return pl.concat([single.select(merged.columns), merged], how="vertical_relaxed")


def _child_rows(pool: pl.DataFrame, at_level: pl.Series, nodes: pl.DataFrame) -> pl.LazyFrame:
    """The `pool` rows of the nodes at this level, with their parent (PARENT, its operator `_OP`, the
    group key `_G`), their ORDER among its children and `_I`, their row in `pool`.

    Only keys and RESULT: the logic needs no more, and the evidence of the deciding children is gathered
    once at the end (by `_I`) rather than carried through the join and the filter.
    """
    ids = nodes["NODE_ID"].to_list()
    parent = dict(zip(ids, nodes["PARENT"].to_list(), strict=True))
    order = dict(zip(ids, nodes["ORDER"].to_list(), strict=True))
    operator = {ident: _OPS.get(op, -1) for ident, op in zip(ids, nodes["OP"].to_list(), strict=True)}
    return pool.select("_S", "NODE_ID", "RESULT").with_row_index("_I").lazy().filter(
        pl.col("NODE_ID").is_in(at_level.implode())
    ).with_columns(
        pl.col("NODE_ID").replace_strict(parent, return_dtype=pl.Int64).alias("PARENT"),
        pl.col("NODE_ID").replace_strict(order, return_dtype=pl.Int64).alias("ORDER"),
    ).with_columns(
        pl.col("PARENT").replace_strict(operator, return_dtype=pl.Int8).alias("_OP"),
        (pl.col("_S").cast(pl.Int64) * nodes.height + pl.col("PARENT")).alias("_G"),
    )


def _parent_results(children: pl.LazyFrame) -> pl.LazyFrame:
    """NODE_RESULT of each parent `_G`, in three-valued logic: `not` negates its child; `all` is False
    when a child is False, else null when a child is null; `any` is True when a child is True, else null
    when a child is null."""
    return children.group_by("_G").agg(
        pl.col("_OP").first(),
        (pl.col("RESULT") == True).any().alias("_T"),  # noqa: E712 (null-aware any)
        (pl.col("RESULT") == False).any().alias("_F"),  # noqa: E712
        pl.col("RESULT").is_null().any().alias("_N"),
        pl.col("RESULT").first().alias("_FIRST"),
    ).select(
        "_G",
        pl.when(pl.col("_OP") == _OPS["not"]).then(~pl.col("_FIRST"))
        .when(pl.col("_OP") == _OPS["all"]).then(pl.when(pl.col("_F")).then(False).when(pl.col("_N")).then(None)
                                                 .otherwise(True))
        .otherwise(pl.when(pl.col("_T")).then(True).when(pl.col("_N")).then(None).otherwise(False))
        .alias("NODE_RESULT")
    )


def _deciding_children(pool: pl.DataFrame, at_level: pl.Series, nodes: pl.DataFrame) -> pl.DataFrame:
    """The children that decide their parent's result (those whose RESULT equals it; every child of a
    `not`), with their parent's NODE_RESULT, `_K` (the number of deciding children of that parent) and
    their evidence, gathered from `pool` once."""
    children = _child_rows(pool, at_level, nodes)
    deciding = (
        children.join(_parent_results(children), on="_G")
        .filter(_IS_NOT | pl.col("RESULT").eq_missing(pl.col("NODE_RESULT")))
        .with_columns(pl.len().over("_G").alias("_K"))
        .collect(engine="in-memory")
    )
    return pl.concat(
        [deciding.drop("_I"), pool.select(pl.col(_EVIDENCE).gather(deciding["_I"]))], how="horizontal")


def _split_by_deciding_count(deciding: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the parents decided by one child, as result rows; the children of the parents decided by several).

    One deciding child is the usual case: its evidence is the parent's as it is, with no per-group string
    work. The children of the others are put in rule order with each piece of evidence once, for merging.
    """
    single = deciding.filter(_SINGLE).select(
        "_S", pl.col("PARENT").alias("NODE_ID"), pl.col("NODE_RESULT").alias("RESULT"), "LABEL",
        _labelled(pl.col("VALUE")).alias("VALUE"), "UNIT",
        pl.when(~_IS_NOT).then(pl.col("LIMIT")).alias("LIMIT"), "DTC", "SOURCE", "REASON_CODE", "REASON",
    )
    several = (
        deciding.filter(pl.col("_K") > 1)
        .sort("_G", "ORDER")
        .unique(subset=["_G", "LABEL", "VALUE", "SOURCE", "REASON"], keep="first", maintain_order=True)
    )
    return single, several


def _most_children(nodes: pl.DataFrame) -> int:
    """The largest number of children of one parent: how far back `_unless_repeated` has to look.

    The roots' null PARENT is not a parent (counted, it would make this the number of components)."""
    counts = nodes.filter(pl.col("PARENT").is_not_null()).group_by("PARENT").len()
    return int(counts.select(pl.col("len").max()).item() or 1)


def _unless_repeated(column: str, width: int) -> pl.Expr:
    """`column`, blanked where it equals one of the previous rows of its group `_G`.

    The rows are sorted by `_G` and a group has at most `width` rows, so `width - 1` shifted comparisons
    find every repeat; this avoids per-group list work, which is slow for many groups."""
    value, earlier = pl.col(column), pl.lit(False)
    for back in range(1, width):
        earlier = earlier | ((value == value.shift(back)) & (pl.col("_G") == pl.col("_G").shift(back))
                             ).fill_null(False)
    return pl.when(earlier).then(None).otherwise(value)


def _merged_parents(several: pl.DataFrame, width: int) -> pl.DataFrame:
    """Result rows of the parents decided by several children: each group's distinct non-null evidence
    values in rule order, joined with "; " (see `_merged_evidence`)."""
    merged = (
        several.with_columns(_labelled(pl.col("VALUE")).alias("_LV"),
                             _labelled(pl.col("LIMIT"), separator=" ").alias("_LL"))
        .with_columns(*[_unless_repeated(source, width).alias(name) for name, source in _MERGED.items()])
        .group_by("_G", maintain_order=True).agg(
            pl.col("_S").first(), pl.col("PARENT").first(),
            pl.len().alias("_K"),
            pl.col("NODE_RESULT").first().alias("RESULT"),
            pl.col("_OP").first().alias("_OP"),
            *[pl.col(c).first().alias(f"_1_{c}") for c in _EVIDENCE],
            pl.col("_LV").first().alias("_1L_VALUE"),
            *[pl.col(name) for name in _MERGED],
            pl.col("REASON_CODE").drop_nulls().first().alias("_M_REASON_CODE"),
        )
        .with_columns(*[pl.col(name).list.join("; ") for name in _MERGED])
    )
    return merged.select("_S", pl.col("PARENT").alias("NODE_ID"), "RESULT", *[_merged_evidence(c) for c in _EVIDENCE])


def _merged_evidence(column: str) -> pl.Expr:
    """One evidence column of a merged parent: the first child's value when there was one child (`_1_`),
    else the merged values (`_M_`, null when empty). LABEL and UNIT are not merged."""
    if column == "UNIT":
        return pl.when(_SINGLE).then(pl.col("_1_UNIT")).alias("UNIT")
    if column == "LABEL":
        return pl.when(_SINGLE).then(pl.col("_1_LABEL")).alias("LABEL")
    if column == "VALUE":
        return (pl.when(_SINGLE).then(pl.col("_1L_VALUE"))
                .otherwise(pl.when(pl.col("_M_VALUE") != "").then(pl.col("_M_VALUE"))).alias("VALUE"))
    if column == "LIMIT":  # a `not` node's limit would read as the opposite of what it tests
        return (pl.when(_IS_NOT).then(None).when(_SINGLE).then(pl.col("_1_LIMIT"))
                .otherwise(pl.when(pl.col("_M_LIMIT") != "").then(pl.col("_M_LIMIT"))).alias("LIMIT"))
    merged_value = pl.col(f"_M_{column}")
    if column != "REASON_CODE":
        merged_value = pl.when(merged_value != "").then(merged_value)
    return pl.when(_SINGLE).then(pl.col(f"_1_{column}")).otherwise(merged_value).alias(column)


def _roll_up(leaf_results: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """Every node's result and evidence, computed from the deepest level up to the component roots
    (subjects as `_S`).

    The rows of each level are appended as chunks (no copy of the rows below); each level reads its
    children's keys only and gathers the evidence of the deciding ones (see _combine). LABEL is read
    only to merge evidence and is not published: it is not returned, so it is released here.
    """
    results = leaf_results.rename({"LEAF_ID": "NODE_ID"}).select("_S", "NODE_ID", "RESULT", *_EVIDENCE)
    depth = int(nodes.select(pl.col("DEPTH").max()).item() or 0)
    for level in range(depth, 0, -1):
        at_level = nodes.filter(pl.col("DEPTH") == level)["NODE_ID"]
        results = pl.concat([results, _combine(results, at_level, nodes)], how="vertical_relaxed")
    return results.drop("LABEL")


def _outcome() -> pl.Expr:
    inclusion = pl.col("CATEGORY") == Category.INCLUSION.value
    return (
        pl.when(pl.col("RESULT").is_null()).then(pl.lit(Outcome.UNVERIFIABLE.value))
        .when(inclusion).then(pl.when(pl.col("RESULT")).then(pl.lit(Outcome.MET.value))
                              .otherwise(pl.lit(Outcome.NOT_MET.value)))
        .otherwise(pl.when(pl.col("RESULT")).then(pl.lit(Outcome.APPLIES.value))
                   .otherwise(pl.lit(Outcome.NOT_APPLICABLE.value)))
    )


def _criteria(eligibility: pl.DataFrame) -> pl.DataFrame:
    """NOT_MET / APPLIES when any component is; else UNVERIFIABLE when any is; else MET / NOT_APPLICABLE."""
    failed = pl.col("OUTCOME").is_in([Outcome.NOT_MET.value, Outcome.APPLIES.value])
    unverifiable = pl.col("OUTCOME") == Outcome.UNVERIFIABLE.value
    inclusion = pl.col("CATEGORY") == Category.INCLUSION.value
    # `_RANK` numbers the subjects (one STUDYID / SITEID / USUBJID each) and `_C` the criteria (CATEGORY
    # follows CRITERION_ID): the same groups as by those text columns, found on integers
    return (
        eligibility.group_by("_RANK", "_C", maintain_order=True)
        .agg(*[pl.col(c).first() for c in ("STUDYID", "SITEID", "USUBJID", "CRITERION_ID", "CATEGORY")],
             failed.any().alias("_F"), unverifiable.any().alias("_U"))
        .with_columns(
            pl.when(pl.col("_F")).then(pl.when(inclusion).then(pl.lit(Outcome.NOT_MET.value))
                                       .otherwise(pl.lit(Outcome.APPLIES.value)))
            .when(pl.col("_U")).then(pl.lit(Outcome.UNVERIFIABLE.value))
            .when(inclusion).then(pl.lit(Outcome.MET.value)).otherwise(pl.lit(Outcome.NOT_APPLICABLE.value))
            .alias("OUTCOME")
        ).select(CRITERIA_COLUMNS)
    )


def _layout(protocol: Protocol) -> tuple[pl.DataFrame, pl.DataFrame, list[Leaf]]:
    """(nodes, components, leaves) of the whole protocol; components are numbered by their row `_P`."""
    nodes: list[_Node] = []
    leaves: list[Leaf] = []
    roots: list[dict[str, Any]] = []
    criterion_number = {criterion.id: number for number, criterion in enumerate(protocol.criteria)}
    for order, (criterion, component) in enumerate(protocol.components()):
        root = _flatten(_component_tree(criterion, component), None, 0, 0, nodes, leaves)
        roots.append({"NODE_ID": root, "CRITERION_ID": criterion.id, "CHECK_ID": component.id,
                      "CATEGORY": criterion.category.value, "ORDER": order, "_C": criterion_number[criterion.id]})
    node_frame = pl.DataFrame(
        {"NODE_ID": [n.id for n in nodes], "PARENT": [n.parent for n in nodes],
         "ORDER": [n.order for n in nodes], "OP": [n.op for n in nodes], "DEPTH": [n.depth for n in nodes]},
        schema={"NODE_ID": pl.Int64, "PARENT": pl.Int64, "ORDER": pl.Int64, "OP": pl.String, "DEPTH": pl.Int64},
    )
    components = pl.DataFrame(roots, schema={"NODE_ID": pl.Int64, "CRITERION_ID": pl.String, "CHECK_ID": pl.String,
                                             "CATEGORY": pl.String, "ORDER": pl.Int64, "_C": pl.Int64})
    return node_frame, components.with_row_index("_P"), leaves


def _prepare_domains(domains: dict[str, pl.DataFrame], rejected: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Drop rejected rows. Frames are rechunked: polars 2.1's streaming engine can panic on string
    expressions over multi-chunk string columns (seen with frames built by concat and filter)."""
    return {name.lower(): drop_rejected(frame, rejected).rechunk() for name, frame in domains.items()}


def _derived_names(leaves: list[Leaf]) -> set[str]:
    """The derived values (AGE_AT_CONSENT, CRCL_CG, LYM_ABS...) the protocol's leaves compare."""
    return {str(leaf.params["value"]).upper() for leaf in leaves if leaf.kind == "derived"}


def _facts(context: EvalContext, needed_tests: dict[str, set[str]], derived: set[str],
           same_day: str = "latest") -> pl.LazyFrame:
    """One row per subject x test: the latest usable finding in the window, then the derived values.

    Collected with the in-memory engine (less CPU than streaming for these plans, same tables). The
    derived rows are appended to the findings facts without rechunking, which would copy them."""
    found = findings_facts(context.domains, needed_tests, context.reference, context.catalog,
                           context.exclusions, same_day).collect(engine="in-memory").rechunk()
    with_derived = derived_facts(derived, context.reference, found.lazy(),
                                 DerivedContext(context.domains, context.catalog, context.exclusions))
    return with_derived.collect(engine="in-memory").lazy()


def _leaf_rows(leaves: list[Leaf], context: EvalContext) -> pl.DataFrame:
    """One row per subject x leaf of `leaves` (an empty table when there are none)."""
    return evaluate_leaves(leaves, context) if leaves else pl.DataFrame(schema=LEAF_SCHEMA)


def _fact_leaf_rows(context: EvalContext, protocol: Protocol,
                    leaves: list[Leaf]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The leaves of the kinds that read the facts (`RuleBuilder.reads_facts`), the derived values
    as numbers (contracts.DERIVED_VALUES, for the comparison) and the delivered texts of the converted or
    computed values (checks.evaluation.delivered).

    The facts are built here and released when this returns: the other kinds (event records) and the
    roll-up then allocate without them alive."""
    facts = _facts(context, protocol.needed_tests(), _derived_names(leaves), protocol.same_day_measurements)
    reading = [leaf for leaf in leaves if RULE_BUILDERS[leaf.kind].reads_facts]
    derived = facts.filter(pl.col("DOMAIN") == "DERIVED").select(
        "USUBJID", pl.col("TESTCD").alias("NAME"), "LO", "HI", "DTC").collect()
    return _leaf_rows(reading, replace(context, facts=facts)), derived, delivered_facts(facts)


@dataclass(frozen=True)
class _EditionLeaves:
    """One protocol version's share of the evaluation: its subjects' reference rows (the subjects whose
    consent allows that version), one row per subject x leaf, and the derived values."""

    reference: pl.DataFrame
    table: pl.DataFrame
    derived: pl.DataFrame
    delivered: pl.DataFrame  # checks.evaluation.delivered.DELIVERED_COLUMNS


def _edition_reference(reference: pl.DataFrame, edition: Protocol, index: int, amended: bool) -> pl.DataFrame:
    """The subjects one version judges, with that version's screening window (a single version: all)."""
    if not amended:
        return reference
    window = int(edition.parameters["screening_window_days"])
    return reference.filter((pl.col("_V_FIRST") <= index) & (pl.col("_V_LAST") >= index)).with_columns(
        (pl.col("TRT_DATE") - pl.duration(days=window)).alias("WINDOW_START")).rechunk()


def _leaf_tables(domains: dict[str, pl.DataFrame], exclusions: pl.DataFrame, rejected: pl.DataFrame,
                 protocol: Protocol, as_of: date, layouts: list[tuple[Protocol, list[Leaf]]],
                 catalog: UnitCatalog, unread: pl.DataFrame | None = None,
                 ) -> tuple[pl.DataFrame, dict[str, int], list[_EditionLeaves]]:
    """Prepare domains -> reference -> per protocol version: facts -> leaves: (reference, rows evaluated per
    domain, each version's leaf rows keyed by USUBJID over its own subjects, with its derived values).

    Everything that reads the delivered domains is here: the cleaned domains are released when this
    returns, before the roll-up. The kinds that read the facts run first (see `_fact_leaf_rows`). One
    evaluation per version, over the subjects that version judges (most subjects are judged by one).
    """
    clean = _prepare_domains(domains, rejected)
    reference = subject_reference(clean, protocol, as_of, exclusions).rechunk()
    parts = []
    for index, (edition, leaves) in enumerate(layouts):
        own = _edition_reference(reference, edition, index, len(layouts) > 1)
        context = EvalContext(reference=own.lazy(), facts=empty_facts().lazy(), domains=clean,
                              exclusions=exclusions, catalog=catalog, parameters=dict(edition.parameters))
        others = [leaf for leaf in leaves if not RULE_BUILDERS[leaf.kind].reads_facts]
        fact_rows, derived, delivered = _fact_leaf_rows(context, edition, leaves)
        rows = without_unread(pl.concat([fact_rows, _leaf_rows(others, context)], how="vertical"), leaves, own, unread)
        parts.append(_EditionLeaves(own, rows, derived, delivered))
    return reference, {name: frame.height for name, frame in clean.items()}, parts


def _subject_numbers(reference: pl.DataFrame) -> pl.DataFrame:
    """STUDYID, SITEID, USUBJID, TIVERS of each subject with `_S`, its row in `reference` (the roll-up's
    integer subject key), and `_RANK`, its position in the published order (SITEID, USUBJID, nulls last)."""
    return (reference.select("STUDYID", "SITEID", "USUBJID", "TIVERS").with_row_index("_S")
            .sort("SITEID", "USUBJID", nulls_last=True).with_row_index("_RANK"))


def _keyed_by_subject(leaf_rows: pl.DataFrame, subjects: pl.DataFrame) -> pl.DataFrame:
    """`leaf_rows` with the subject number `_S` instead of USUBJID.

    `_S` is added as a column (a join would copy every evidence column). Rows of no reference subject
    (none expected) are dropped, as a join did."""
    keyed = leaf_rows.with_columns(
        leaf_rows["USUBJID"].replace_strict(subjects["USUBJID"], subjects["_S"], default=None).alias("_S")
    ).drop("USUBJID")
    if keyed["_S"].null_count():
        return keyed.filter(pl.col("_S").is_not_null())
    return keyed


def _published_order(results: pl.DataFrame, subjects: pl.DataFrame, components: pl.DataFrame) -> pl.DataFrame:
    """One row per subject x component root, in the published order (SITEID, USUBJID, component order):
    `_I` (its row in `results`), `_S`, `_P` (its row in `components`), `_RANK` and `_C`.

    Found on integer keys only: joining and sorting the wide rows would copy them."""
    return (
        results.select("_S", "NODE_ID").with_row_index("_I")
        .join(components.select("NODE_ID", "_P", "ORDER", "_C"), on="NODE_ID")  # the component roots
        .join(subjects.select("_S", "_RANK"), on="_S")
        .sort("_RANK", "ORDER")  # = SITEID, USUBJID, ORDER (nulls last)
    )


def _roots_in_published_order(results: pl.DataFrame, subjects: pl.DataFrame,
                              components: pl.DataFrame) -> pl.DataFrame:
    """The component roots of `results` in the published order: `_RANK`, `_C`, `_S`, `_P`, RESULT and the
    published evidence, each column gathered once in that order (the node rows are released when the
    caller replaces them with these)."""
    keys = _published_order(results, subjects, components)
    evidence = results.select("RESULT", "VALUE", "UNIT", "LIMIT", "DTC", "SOURCE", "REASON_CODE", "REASON")
    return pl.concat([keys.select("_RANK", "_C", "_S", "_P"), evidence.select(pl.all().gather(keys["_I"]))],
                     how="horizontal")


def _with_texts(rows: pl.DataFrame, subjects: pl.DataFrame, components: pl.DataFrame) -> pl.DataFrame:
    """`rows` with their subject's STUDYID, SITEID, USUBJID and their component's CRITERION_ID, CHECK_ID,
    CATEGORY instead of `_S` and `_P`: gathered by position (subjects are numbered 0..n-1 by `_S`,
    components by their row `_P`), not joined and sorted, which would copy them."""
    return pl.concat([
        rows.select("_RANK", "_C"),
        subjects.sort("_S").select(pl.col("STUDYID", "SITEID", "USUBJID", "TIVERS").gather(rows["_S"])),
        components.select(pl.col("CRITERION_ID", "CHECK_ID", "CATEGORY").gather(rows["_P"])),
        rows.drop("_RANK", "_C", "_S", "_P"),
    ], how="horizontal")


def _with_outcomes(rows: pl.DataFrame) -> pl.DataFrame:
    """The eligibility columns with their types: OUTCOME from RESULT and CATEGORY, and the reason of an
    undecided component filled in; CATEGORY, `_RANK` and `_C` kept for the criteria roll-up."""
    undecided = pl.col("RESULT").is_null()
    return rows.with_columns(
        _outcome().alias("OUTCOME"),
        pl.when(undecided).then(pl.col("REASON_CODE").fill_null(ReasonCode.UNDECIDED_CONDITION.value))
        .alias("REASON_CODE"),
        pl.when(undecided).then(pl.col("REASON").fill_null("the data cannot decide this component"))
        .alias("REASON"),
    ).select(*[pl.col(c).cast(t) for c, t in ELIGIBILITY.items()], pl.col("REASON_CODE").cast(pl.String),
             pl.col("DELIVERED"), pl.col("CATEGORY"), pl.col("_RANK"), pl.col("_C"))


def _publishable(part: _EditionLeaves, nodes: pl.DataFrame, components: pl.DataFrame) -> pl.DataFrame:
    """One version's leaf rows rolled up to one row per subject x component, in the published order, with
    outcomes (the eligibility columns, REASON_CODE, and CATEGORY, `_RANK`, `_C` for the criteria)."""
    subjects = _subject_numbers(part.reference)  # subjects as integers from here on
    table = _keyed_by_subject(part.table, subjects)
    table = _roll_up(table, nodes)  # + one row per subject x inner node and component root
    table = _roots_in_published_order(table, subjects, components)
    table = _with_texts(table, subjects, components)
    return _with_outcomes(with_delivered(table, part.delivered))


def evaluate(domains: dict[str, pl.DataFrame], protocol: Protocol, as_of: date,
             exclusions: pl.DataFrame | None = None, rejected: pl.DataFrame | None = None,
             catalog: UnitCatalog | None = None, unread: pl.DataFrame | None = None) -> EligibilityResult:
    """Re-evaluate every component of `protocol` for every DM subject (see the module docstring).

    `domains`: lower-case domain -> frame as delivered (delivered columns text, plus SOURCE_KEY,
    SOURCE_ROW, DELIVERY_SITEID, DECIMAL). Rows whose source is in `rejected` are dropped; a value whose
    row and VARIABLE are in `exclusions` is never used; a component reading a domain whose file its site delivered
    but ingestion rejected as a whole (`unread`: ingestion.unread.unread_files) is not decided by that file's
    absence (checks.evaluation.unread). An amended protocol (`protocol.editions()`)
    judges each subject by the version in force at its consent (checks.evaluation.versions).

    Memory: each step's large intermediates are its own locals, released when it returns; `table`, the
    one long table handed from step to step, is replaced by each step's result (the rows of the step
    before are not kept alive through the next ones).
    """
    catalog = catalog or load_units()
    editions = protocol.editions()
    layouts = [_layout(edition) for edition in editions]
    # prepare domains -> reference -> facts -> leaves: one row per subject x leaf, per version
    reference, rows_evaluated, parts = _leaf_tables(domains, normalise(exclusions), normalise(rejected), protocol,
                                                    as_of, [(e, leaves) for e, (_, _, leaves) in
                                                            zip(editions, layouts, strict=True)], catalog, unread)
    tables = []
    for index, (nodes, components, _) in enumerate(layouts):
        tables.append(_publishable(parts[index], nodes, components))
        parts[index] = replace(parts[index], table=pl.DataFrame())  # its leaf rows are no longer needed
    if len(editions) == 1:
        table, derived = tables[0], parts[0].derived
    else:
        table = merge_editions(tables, reference, editions)
        derived = edition_derived([part.derived for part in parts])
    criteria = _criteria(table)
    return EligibilityResult(
        eligibility=check_table(with_distinct_records(table.drop("CATEGORY", "_RANK", "_C")), ELIGIBILITY,
                                "eligibility"),
        reference=reference.select(REFERENCE_COLUMNS).sort("SITEID", "USUBJID", nulls_last=True),
        criteria=criteria,
        rows_evaluated=rows_evaluated,
        protocol_id=protocol.id,
        protocol_version=protocol.versions_text(),
        subject_dm=subject_dm(reference).sort("USUBJID"),
        derived=derived.sort("USUBJID", "NAME"),
    )
