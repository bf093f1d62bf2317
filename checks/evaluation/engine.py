"""evaluate(): every component of every criterion for every subject, as one long table with evidence.

Flow: drop rejected rows -> reference dates per subject -> facts (latest in-window value per test)
and derived values -> one builder call per rule kind over all leaves and subjects -> combine leaves
bottom-up through the rule trees (three-valued all / any / not) -> outcomes per component -> roll-up
per criterion. No step loops over subjects or rows; the loops are over rule kinds and tree depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from checks.evaluation.derived import DerivedContext, derived_facts
from checks.evaluation.exclusions import drop_rejected, normalise
from checks.evaluation.facts import empty_facts, findings_facts
from checks.evaluation.reference import REFERENCE_COLUMNS, subject_reference
from checks.evaluation.rulebase import LEAF_SCHEMA, EvalContext, Leaf
from checks.evaluation.rules import RULE_BUILDERS, evaluate_leaves
from contracts import ELIGIBILITY, check_table
from contracts.enums import Outcome, ReasonCode
from contracts.protocol import Category, Component, Criterion, Protocol, Rule
from contracts.records import EligibilityResult
from contracts.units import UnitCatalog, load_units

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


def _combine(pool: pl.DataFrame, at_level: pl.Series, nodes: pl.DataFrame) -> pl.DataFrame:
    """Results of the parents of the `pool` rows whose node is `at_level` (three-valued), with the
    evidence of the deciding children.

    Subjects are the integer `_S` (evaluate() numbers them) and a parent of a subject the integer key
    `_G` = _S x nodes + PARENT: grouping and joining millions of rows on integers, not on USUBJID text.
    """
    size = nodes.height
    parent = dict(zip(nodes["NODE_ID"].to_list(), nodes["PARENT"].to_list(), strict=True))
    order = dict(zip(nodes["NODE_ID"].to_list(), nodes["ORDER"].to_list(), strict=True))
    operator = {ident: _OPS.get(op, -1) for ident, op in zip(nodes["NODE_ID"].to_list(), nodes["OP"].to_list(),
                                                               strict=True)}
    # the logic runs on a narrow frame (keys and RESULT); the evidence of the deciding children is
    # gathered once at the end, rather than carried through the join and the filter
    rows = pool.select("_S", "NODE_ID", "RESULT").with_row_index("_I").lazy().filter(
        pl.col("NODE_ID").is_in(at_level.implode())
    ).with_columns(
        pl.col("NODE_ID").replace_strict(parent, return_dtype=pl.Int64).alias("PARENT"),
        pl.col("NODE_ID").replace_strict(order, return_dtype=pl.Int64).alias("ORDER"),
    ).with_columns(
        pl.col("PARENT").replace_strict(operator, return_dtype=pl.Int8).alias("_OP"),
        (pl.col("_S").cast(pl.Int64) * size + pl.col("PARENT")).alias("_G"),
    )
    result = rows.group_by("_G").agg(
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
    is_not = pl.col("_OP") == _OPS["not"]
    deciding = (
        rows.join(result, on="_G")
        .filter(is_not | pl.col("RESULT").eq_missing(pl.col("NODE_RESULT")))
        .with_columns(pl.len().over("_G").alias("_K"))
        .collect(engine="in-memory")
    )
    contributing = pl.concat(
        [deciding.drop("_I"), pool.select(pl.col(_EVIDENCE).gather(deciding["_I"]))], how="horizontal")
    del deciding
    # one deciding child (the usual case): its evidence as it is, no per-group string work
    single_rows = contributing.filter(pl.col("_K") == 1).select(
        "_S", pl.col("PARENT").alias("NODE_ID"), pl.col("NODE_RESULT").alias("RESULT"), "LABEL",
        _labelled(pl.col("VALUE")).alias("VALUE"), "UNIT",
        pl.when(~is_not).then(pl.col("LIMIT")).alias("LIMIT"), "DTC", "SOURCE", "REASON_CODE", "REASON",
    )
    contributing = (  # several: in rule order, each piece of evidence once
        contributing.filter(pl.col("_K") > 1)
        .sort("_G", "ORDER")
        .unique(subset=["_G", "LABEL", "VALUE", "SOURCE", "REASON"], keep="first", maintain_order=True)
    )
    # the merged evidence: each group's distinct non-null values in rule order, joined with "; ". Done
    # without per-group list work (slow for hundreds of thousands of groups): a value equal to one of
    # the previous rows of its group is blanked (groups are sorted and have at most `width` rows),
    # then each group's values are gathered as a list and joined.
    # children per parent (the roots' null PARENT is not a parent: counting it made `width` the number of
    # components, and `distinct` compared each value with ~50 earlier rows instead of 2 at s100)
    width = int(nodes.filter(pl.col("PARENT").is_not_null()).group_by("PARENT").len()["len"].max() or 1)
    merged_columns = {"_M_VALUE": "_LV", "_M_LIMIT": "_LL", "_M_DTC": "DTC", "_M_SOURCE": "SOURCE",
                      "_M_REASON": "REASON"}

    def distinct(column: str) -> pl.Expr:
        value, earlier = pl.col(column), pl.lit(False)
        for back in range(1, width):
            earlier = earlier | ((value == value.shift(back)) & (pl.col("_G") == pl.col("_G").shift(back))
                                 ).fill_null(False)
        return pl.when(earlier).then(None).otherwise(value)

    merged = (
        contributing.with_columns(_labelled(pl.col("VALUE")).alias("_LV"),
                                  _labelled(pl.col("LIMIT"), separator=" ").alias("_LL"))
        .with_columns(*[distinct(source).alias(name) for name, source in merged_columns.items()])
        .group_by("_G", maintain_order=True).agg(
            pl.col("_S").first(), pl.col("PARENT").first(),
            pl.len().alias("_K"),
            pl.col("NODE_RESULT").first().alias("RESULT"),
            pl.col("_OP").first().alias("_OP"),
            *[pl.col(c).first().alias(f"_1_{c}") for c in _EVIDENCE],
            pl.col("_LV").first().alias("_1L_VALUE"),
            *[pl.col(name) for name in merged_columns],
            pl.col("REASON_CODE").drop_nulls().first().alias("_M_REASON_CODE"),
        )
        .with_columns(*[pl.col(name).list.join("; ") for name in merged_columns])
    )
    single = pl.col("_K") == 1

    def pick(column: str) -> pl.Expr:
        if column == "UNIT":
            return pl.when(single).then(pl.col("_1_UNIT")).alias("UNIT")
        if column == "LABEL":
            return pl.when(single).then(pl.col("_1_LABEL")).alias("LABEL")
        if column == "VALUE":
            return (pl.when(single).then(pl.col("_1L_VALUE"))
                    .otherwise(pl.when(pl.col("_M_VALUE") != "").then(pl.col("_M_VALUE"))).alias("VALUE"))
        if column == "LIMIT":  # a `not` node's limit would read as the opposite of what it tests
            return (pl.when(is_not).then(None).when(single).then(pl.col("_1_LIMIT"))
                    .otherwise(pl.when(pl.col("_M_LIMIT") != "").then(pl.col("_M_LIMIT"))).alias("LIMIT"))
        merged_value = pl.col(f"_M_{column}")
        if column != "REASON_CODE":
            merged_value = pl.when(merged_value != "").then(merged_value)
        return pl.when(single).then(pl.col(f"_1_{column}")).otherwise(merged_value).alias(column)

    multiple = merged.select("_S", pl.col("PARENT").alias("NODE_ID"), "RESULT", *[pick(c) for c in _EVIDENCE])
    return pl.concat([single_rows.select(multiple.columns), multiple], how="vertical_relaxed")


def _roll_up(leaf_results: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    """Every node's result, computed from the deepest level up to the component roots (subjects as `_S`).

    The rows of each level are appended as chunks (no copy of the rows below); each level reads its
    children's keys only and gathers the evidence of the deciding ones (see _combine).
    """
    results = leaf_results.rename({"LEAF_ID": "NODE_ID"}).select("_S", "NODE_ID", "RESULT", *_EVIDENCE)
    depth = int(nodes.select(pl.col("DEPTH").max()).item() or 0)
    for level in range(depth, 0, -1):
        at_level = nodes.filter(pl.col("DEPTH") == level)["NODE_ID"]
        results = pl.concat([results, _combine(results, at_level, nodes)], how="vertical_relaxed")
    return results


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
    """(nodes, components, leaves) of the whole protocol."""
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
    return node_frame, components, leaves


def _prepare_domains(domains: dict[str, pl.DataFrame], rejected: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Drop rejected rows. Frames are rechunked: polars 2.1's streaming engine can panic on string
    expressions over multi-chunk string columns (seen with frames built by concat and filter)."""
    return {name.lower(): drop_rejected(frame, rejected).rechunk() for name, frame in domains.items()}


def evaluate(domains: dict[str, pl.DataFrame], protocol: Protocol, as_of: date,
             exclusions: pl.DataFrame | None = None, rejected: pl.DataFrame | None = None,
             catalog: UnitCatalog | None = None) -> EligibilityResult:
    """Re-evaluate every component of `protocol` for every DM subject (see the module docstring).

    `domains`: lower-case domain -> frame as delivered (all columns text, plus SOURCE,
    DELIVERY_SITEID, DECIMAL). Rows whose SOURCE is in `rejected` are dropped; a value whose row and
    VARIABLE are in `exclusions` is never used.
    """
    catalog = catalog or load_units()
    excluded, rejected_rows = normalise(exclusions), normalise(rejected)
    clean = _prepare_domains(domains, rejected_rows)
    rows_evaluated = {name: frame.height for name, frame in clean.items()}
    reference = subject_reference(clean, protocol, as_of, excluded).rechunk()
    nodes, components, leaves = _layout(protocol)
    reference_lazy = reference.lazy()
    # the in-memory engine: measured faster than streaming for these plans (less CPU, same tables)
    found = findings_facts(clean, protocol.needed_tests(), reference_lazy, catalog, excluded).collect(
        engine="in-memory").rechunk()
    wanted = {str(leaf.params["value"]).upper() for leaf in leaves if leaf.kind == "derived"}
    derived = derived_facts(wanted, reference_lazy, found.lazy(), DerivedContext(clean, catalog, excluded))
    # not rechunked: the findings facts stay the chunks they are (a copy of them was ~150 MB at s100)
    facts = derived.collect(engine="in-memory").lazy()
    ctx = EvalContext(reference=reference_lazy, facts=facts, domains=clean, exclusions=excluded, catalog=catalog,
                      parameters=dict(protocol.parameters))
    # the kinds that read the facts first; the facts are then released before the others (event records)
    # and the roll-up allocate: at s100 they are ~170 MB that need not be alive at the same time
    reading = [leaf for leaf in leaves if RULE_BUILDERS[leaf.kind].reads_facts]
    fact_results = evaluate_leaves(reading, ctx) if reading else pl.DataFrame(schema=LEAF_SCHEMA)
    del found, derived, facts, ctx
    ctx = EvalContext(reference=reference_lazy, facts=empty_facts().lazy(), domains=clean, exclusions=excluded,
                      catalog=catalog, parameters=dict(protocol.parameters))
    others = [leaf for leaf in leaves if not RULE_BUILDERS[leaf.kind].reads_facts]
    leaf_results = pl.concat(
        [fact_results, evaluate_leaves(others, ctx) if others else pl.DataFrame(schema=LEAF_SCHEMA)],
        how="vertical")
    # the cleaned domains are not read past the leaves: released before the roll-up
    del fact_results, ctx, clean
    # subjects as integers from here on: _S for the roll-up, _RANK = position in the published order
    subjects = (reference.select("STUDYID", "SITEID", "USUBJID").with_row_index("_S")
                .sort("SITEID", "USUBJID", nulls_last=True).with_row_index("_RANK"))
    # _S added as a column (a join would copy every evidence column of the ~700k leaf rows at s100)
    leaf_results = leaf_results.with_columns(
        leaf_results["USUBJID"].replace_strict(subjects["USUBJID"], subjects["_S"], default=None).alias("_S")
    ).drop("USUBJID")
    if leaf_results["_S"].null_count():  # rows of no reference subject (none expected): dropped, as a join did
        leaf_results = leaf_results.filter(pl.col("_S").is_not_null())
    results = _roll_up(leaf_results, nodes)
    del leaf_results
    # the published order (SITEID, USUBJID, component order) is found on integer keys; the evidence
    # columns are then gathered once in that order (joining and sorting the wide rows copied them thrice)
    # (and so are the subject and component texts: joined and sorted, they were copied twice)
    components = components.with_row_index("_P")
    keys = (
        results.select("_S", "NODE_ID").with_row_index("_I")
        .join(components.select("NODE_ID", "_P", "ORDER", "_C"), on="NODE_ID")  # the component roots
        .join(subjects.select("_S", "_RANK"), on="_S")
        .sort("_RANK", "ORDER")  # = SITEID, USUBJID, ORDER (nulls last)
    )
    evidence = results.select("RESULT", "VALUE", "UNIT", "LIMIT", "DTC", "SOURCE", "REASON_CODE", "REASON")
    del results
    evidence = evidence.select(pl.all().gather(keys["_I"]))
    texts = pl.concat([  # subjects are numbered 0..n-1 by _S, components by their row _P
        subjects.sort("_S").select(pl.col("STUDYID", "SITEID", "USUBJID").gather(keys["_S"])),
        components.select(pl.col("CRITERION_ID", "CHECK_ID", "CATEGORY").gather(keys["_P"])),
    ], how="horizontal")
    undecided = pl.col("RESULT").is_null()
    eligibility = (
        pl.concat([keys.select("_RANK", "_C"), texts, evidence], how="horizontal")
        .with_columns(
            _outcome().alias("OUTCOME"),
            pl.when(undecided).then(pl.col("REASON_CODE").fill_null(ReasonCode.UNDECIDED_CONDITION.value))
            .alias("REASON_CODE"),
            pl.when(undecided).then(pl.col("REASON").fill_null("the data cannot decide this component"))
            .alias("REASON"),
        )
        .select(*[pl.col(c).cast(t) for c, t in ELIGIBILITY.items()], pl.col("REASON_CODE").cast(pl.String),
                 pl.col("CATEGORY"), pl.col("_RANK"), pl.col("_C"))
    )
    del keys, texts, evidence
    criteria = _criteria(eligibility)
    eligibility = check_table(eligibility.drop("CATEGORY", "_RANK", "_C"), ELIGIBILITY, "eligibility")
    return EligibilityResult(
        eligibility=eligibility,
        reference=reference.select(REFERENCE_COLUMNS).sort("SITEID", "USUBJID", nulls_last=True),
        criteria=criteria,
        rows_evaluated=rows_evaluated,
        protocol_id=protocol.id,
        protocol_version=protocol.tivers,
    )
