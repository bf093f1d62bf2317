"""The `event` rule kind: a history, medication or procedure record (MH / CM / PR) in a time window.

Dates are intervals (a partial `2024-03` is any day of March), an ongoing record ends no earlier
than treatment start, and every timing constraint is three-valued: decided only when every possible
date agrees. A subject's leaf is True when some matching record satisfies every constraint, null
when none does but some record cannot be decided, False otherwise. Targeted medical history
(`require_each: true`) expects one record per listed term: a term without a record is MISSING,
while for CM / PR no matching record simply means no such medication or procedure.

Timing constraint (all relative to treatment start):
    {date: start | end | start_or_end, on_or_after | on_or_before: {days_before: N} | {years_before: N},
     or_ongoing: true}
plus `min_duration_days: N` (the record lasted at least N consecutive days, ends inclusive).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from checks.evaluation.exclusions import excluded_messages
from checks.evaluation.rulebase import EvalContext, Leaf, finish
from contracts.enums import ReasonCode
from contracts.rule_kinds import EVENT_DOMAINS
from core.dates import with_partial_dates
from core.source import SOURCE_COLUMNS, SOURCE_SCHEMA, source_order, source_text, typed_source
from core.values import blank_to_null, coded_value, column_text, per_distinct

_FOREVER = date(9999, 12, 31)


def _coded(frame: pl.DataFrame, column: str | None) -> pl.Expr:
    """coded_value of a column, computed once per distinct text (terms, flags: a few dozen values)."""
    if column is None:
        return pl.lit(None, dtype=pl.String)
    return per_distinct(frame, column, lambda text: coded_value(blank_to_null(text)))


def _records(domain: str, ctx: EvalContext, variables: set[str]) -> pl.LazyFrame:
    """The domain's rows with typed dates, ongoing flag, occurrence and exclusion messages."""
    spec = EVENT_DOMAINS[domain]
    frame = ctx.domains.get(domain.lower())
    if frame is None:
        frame = pl.DataFrame(schema={"USUBJID": pl.String, **SOURCE_SCHEMA})
    name = column_text(frame, spec["name"])
    if "alt_name" in spec:
        name = pl.coalesce([name, column_text(frame, spec["alt_name"])])
    rows = frame.lazy().select(
        column_text(frame, "USUBJID").alias("USUBJID"), *typed_source(frame),
        name.alias("NAME"), column_text(frame, spec["start"]).alias("STDTC"),
        column_text(frame, spec["end"]).alias("ENDTC"),
        (_coded(frame, spec.get("ongoing")) == "ONGOING").fill_null(False).alias("ONGOING"),
        _coded(frame, spec.get("occur")).alias("OCCUR"),
        *[_coded(frame, v).alias(f"M_{v}") for v in sorted(variables)],
    )
    read = sorted(variables | {c for k, c in spec.items() if k in ("name", "alt_name", "occur", "ongoing")})
    rows = excluded_messages(rows, ctx.exclusions, domain,
                             {"ROW": read, "START": [spec["start"]], "END": [spec["end"]]})
    ok_start, ok_end = pl.col("_X_START").is_null(), pl.col("_X_END").is_null()
    rows = with_partial_dates(with_partial_dates(rows, "STDTC", "_S"), "ENDTC", "_E")
    # the source's text and sort keys once per record, not once per leaf; the object key as its dense
    # rank: the same order, as an integer
    key, row = source_order()
    rows = rows.with_columns(source_text().alias("SOURCE"), key.rank("dense").alias("_SRC_KEY"),
                             row.alias("_SRC_ROW")).drop(SOURCE_COLUMNS)
    return rows.join(ctx.reference.select("USUBJID", "TRT_DATE"), on="USUBJID").with_columns(
        pl.when(ok_start).then(pl.col("_S_LO")).alias("S_LO"),
        pl.when(ok_start).then(pl.col("_S_HI")).alias("S_HI"),
        pl.col("_S_INVALID").alias("S_INVALID"),
        pl.when(~ok_end).then(None).when(pl.col("ENDTC").is_not_null()).then(pl.col("_E_LO"))
        .when(pl.col("ONGOING")).then(pl.col("TRT_DATE")).alias("E_LO"),
        pl.when(~ok_end).then(None).when(pl.col("ENDTC").is_not_null()).then(pl.col("_E_HI"))
        .when(pl.col("ONGOING")).then(pl.lit(_FOREVER)).alias("E_HI"),
        pl.col("_E_INVALID").alias("E_INVALID"),
    ).drop("_S_LO", "_S_HI", "_S_INVALID", "_E_LO", "_E_HI", "_E_INVALID")


def _anchor(offset: dict[str, int]) -> pl.Expr:
    (unit, amount), = offset.items()
    if unit == "years_before":
        return pl.col("TRT_DATE").dt.offset_by(f"{-amount}y")
    return pl.col("TRT_DATE") - pl.duration(days=amount)


def _side(lo: str, hi: str, after: bool, anchor: pl.Expr) -> pl.Expr:
    if after:
        return pl.when(pl.col(lo) >= anchor).then(True).when(pl.col(hi) < anchor).then(False)
    return pl.when(pl.col(hi) <= anchor).then(True).when(pl.col(lo) > anchor).then(False)


def _date_reason(which: str) -> pl.Expr:
    """Why a constraint on the start (S) or end (E) date could not be decided."""
    prefix = "start" if which == "S" else "end"
    column = "_X_START" if which == "S" else "_X_END"
    return (
        pl.when(pl.col("TRT_DATE").is_null()).then(pl.lit(ReasonCode.NO_TREATMENT_START.value))
        .when(pl.col(column).is_not_null()).then(pl.lit(ReasonCode.EXCLUDED_BY_VALIDATION.value))
        .when(pl.col(f"{which}_INVALID")).then(pl.lit(ReasonCode.INVALID_DATE.value))
        .when(pl.col(f"{which}_LO").is_null()).then(pl.lit(ReasonCode.MISSING_DATE.value))
        .otherwise(pl.lit(ReasonCode.PARTIAL_DATE_UNDECIDABLE.value))
    ).alias(f"_{prefix}")


def _constraint(constraint: dict[str, Any]) -> tuple[pl.Expr, pl.Expr, tuple[str, list[pl.Expr]]]:
    """(result, reason code when undecided, (limit text template, its arguments)) of one constraint."""
    after = "on_or_after" in constraint
    anchor = _anchor(constraint["on_or_after" if after else "on_or_before"])
    field = constraint["date"]
    on_start, on_end = _side("S_LO", "S_HI", after, anchor), _side("E_LO", "E_HI", after, anchor)
    result: pl.Expr
    reason: pl.Expr
    if field == "start":
        result, reason = on_start, pl.when(on_start.is_null()).then(_date_reason("S"))
    elif field == "end":
        result, reason = on_end, pl.when(on_end.is_null()).then(_date_reason("E"))
    else:
        result = on_start | on_end
        reason = pl.when(on_start.is_null()).then(_date_reason("S")).otherwise(_date_reason("E"))
    if constraint.get("or_ongoing"):
        result = result | pl.col("ONGOING")
    words = f"{field.replace('_or_', ' or ')} {'on/after' if after else 'on/before'} {{}}"
    words += " or ongoing" if constraint.get("or_ongoing") else ""
    return result, pl.when(result.is_null()).then(reason), (words, [anchor.dt.to_string("%Y-%m-%d")])


def _duration(days: int) -> tuple[pl.Expr, pl.Expr, tuple[str, list[pl.Expr]]]:
    """Consecutive days up to treatment start (exposure after it is not prior exposure), ends inclusive."""
    end_lo = pl.min_horizontal(pl.col("E_LO"), pl.col("TRT_DATE"))
    end_hi = pl.min_horizontal(pl.col("E_HI"), pl.col("TRT_DATE"))
    known = pl.col("E_LO").is_not_null() & pl.col("TRT_DATE").is_not_null()
    shortest = pl.when(known).then((end_lo - pl.col("S_HI")).dt.total_days() + 1)
    longest = pl.when(known).then((end_hi - pl.col("S_LO")).dt.total_days() + 1)
    result = pl.when(shortest >= days).then(True).when(longest < days).then(False)
    reason = pl.when(pl.col("S_LO").is_null()).then(_date_reason("S")).otherwise(_date_reason("E"))
    return result, pl.when(result.is_null()).then(reason), (f"at least {days} consecutive days", [])


def _row_reason_text(code: pl.Expr) -> pl.Expr:
    what = pl.format("{} {}", pl.col("DOMAIN"), pl.col("NAME").fill_null("?"))
    return (
        pl.when(code == ReasonCode.EXCLUDED_BY_VALIDATION.value)
        .then(pl.coalesce([pl.col("_X_ROW"), pl.col("_X_START"), pl.col("_X_END")]))
        .when(code == ReasonCode.NO_TREATMENT_START.value)
        .then(pl.lit("no treatment start date to anchor the window"))
        .when(code == ReasonCode.INVALID_CODE.value).then(pl.format("{}: occurrence is not Y or N", what))
        .when(code == ReasonCode.INVALID_DATE.value).then(pl.format("{}: a date is not ISO 8601 ({}/{})", what,
                                                                    pl.col("STDTC"), pl.col("ENDTC")))
        .when(code == ReasonCode.MISSING_DATE.value).then(pl.format("{}: the date the rule needs is missing", what))
        .when(code == ReasonCode.PARTIAL_DATE_UNDECIDABLE.value)
        .then(pl.format("{}: partial dates {}/{} may fall either side of the window", what,
                        pl.col("STDTC").fill_null(""), pl.col("ENDTC").fill_null("")))
    )


def _one_leaf(leaf: Leaf, ctx: EvalContext, records: dict[str, pl.DataFrame]) -> pl.LazyFrame:
    params = leaf.params
    domain = str(params["domain"]).upper()
    spec = EVENT_DOMAINS[domain]
    match = {str(k).upper(): [str(v).upper() for v in values] for k, values in params["match"].items()}
    rows = records[domain].lazy()
    for variable, values in match.items():
        rows = rows.filter(pl.col(f"M_{variable}").is_in(values))
    parts = [_constraint(c) for c in params.get("timing") or []]
    if params.get("min_duration_days"):
        parts.append(_duration(int(params["min_duration_days"])))
    result: pl.Expr = pl.lit(True)
    for part_result, _, _ in parts:
        result = result & part_result
    occur = pl.col("OCCUR")
    if "occur" in spec:
        result = pl.when(occur == "N").then(False).when(occur == "Y").then(result).otherwise(None)
    bad_occurrence = ~occur.is_in(["Y", "N"]).fill_null(False) if "occur" in spec else pl.lit(False)
    code: pl.Expr = (
        pl.when(pl.col("_X_ROW").is_not_null()).then(pl.lit(ReasonCode.EXCLUDED_BY_VALIDATION.value))
        .when(bad_occurrence).then(pl.lit(ReasonCode.INVALID_CODE.value))
    )
    code = pl.coalesce([code, *[reason for _, reason, _ in parts]]) if parts else code
    # one format() for the whole limit text (a scalar literal inside concat_str trips the streaming engine)
    template = "; ".join(piece for _, _, (piece, _) in parts)
    arguments = [arg for _, _, (_, args) in parts for arg in args]
    limit = (pl.format(template, *arguments) if arguments else pl.lit(template or None, dtype=pl.String))
    each = spec.get("each") if params.get("require_each") else None
    rows = rows.with_columns(
        pl.when(pl.col("_X_ROW").is_null()).then(result).alias("RESULT"),
        (pl.col(f"M_{each}") if each else pl.lit("")).alias("_EACH"),
        limit.alias("LIMIT"),
        # the record in words: "HEART FAILURE: Y" (history), "ANTI-TUMOR THERAPY: SORAFENIB" (CM / PR)
        pl.format("{}: {}", pl.col("NAME").fill_null("?"), occur).alias("_OCC_VALUE") if "occur" in spec
        else pl.format("{}: {}", pl.col(f"M_{next(iter(match))}"), pl.col("NAME").fill_null("?")).alias("_OCC_VALUE"),
    ).with_columns(pl.when(pl.col("RESULT").is_null()).then(code).alias("REASON_CODE"))
    rows = rows.with_columns(_row_reason_text(pl.col("REASON_CODE")).alias("REASON"))
    return _per_subject(rows, leaf, match.get(each, []) if each else [], domain,
                        ctx.reference.select("USUBJID"))


def _per_subject(rows: pl.LazyFrame, leaf: Leaf, expected: list[str], domain: str,
                 subjects: pl.LazyFrame) -> pl.LazyFrame:
    """Any True row decides True; else any undecided row (or an expected record missing) gives null."""
    rank = pl.when(pl.col("RESULT")).then(2).when(pl.col("RESULT").is_null()).then(1).otherwise(0)
    best = (
        rows.with_columns(rank.alias("_RANK"))
        .sort("USUBJID", "_EACH", "_RANK", "S_HI", "_SRC_KEY", "_SRC_ROW", nulls_last=False)
        .unique(subset=["USUBJID", "_EACH"], keep="last", maintain_order=True)
    )
    label = leaf.params.get("label")
    if expected:  # targeted history: every listed term needs a record
        grid = subjects.join(pl.DataFrame({"_EACH": expected}).lazy(), how="cross")
        best = grid.join(best, on=["USUBJID", "_EACH"], how="left").with_columns(
            pl.when(pl.col("_RANK").is_null()).then(1).otherwise(pl.col("_RANK")).alias("_RANK"),
            pl.when(pl.col("_RANK").is_null()).then(pl.lit(ReasonCode.MISSING.value))
            .otherwise(pl.col("REASON_CODE")).alias("REASON_CODE"),
            pl.when(pl.col("_RANK").is_null()).then(pl.format("no {} record for {}", pl.lit(domain), pl.col("_EACH")))
            .otherwise(pl.col("REASON")).alias("REASON"),
        )
    dtc = pl.when(pl.col("STDTC").is_not_null() | pl.col("ENDTC").is_not_null() | pl.col("ONGOING")).then(
        pl.format("{}/{}", pl.col("STDTC").fill_null(""),
                  pl.when(pl.col("ONGOING") & pl.col("ENDTC").is_null()).then(pl.lit("ONGOING"))
                  .otherwise(pl.col("ENDTC").fill_null(""))))
    value = pl.col("_OCC_VALUE")
    if expected:
        value = pl.coalesce([value, pl.format("{}: no record", pl.col("_EACH"))])

    def joined(expr: pl.Expr) -> pl.Expr:
        return expr.drop_nulls().unique(maintain_order=True).str.join("; ")

    top = (  # the records that decide: every term / record at the subject's best rank
        best.with_columns(pl.col("_RANK").max().over("USUBJID").alias("_TOP"), dtc.alias("_DTC"),
                          value.alias("_VALUE"))
        .filter(pl.col("_RANK") == pl.col("_TOP"))
        .with_columns(pl.len().over("USUBJID").alias("_K"))
    )
    columns = ["USUBJID", "_K", "_RANK", "RESULT", "_NAME", "VALUE", "DTC", "SOURCE", "LIMIT", "REASON_CODE",
               "REASON"]
    # one deciding record (the usual case): its own values, no per-group list work
    one = top.filter(pl.col("_K") == 1).select(
        "USUBJID", "_K", "_RANK", "RESULT", pl.coalesce([pl.col("NAME"), pl.col("_EACH")]).alias("_NAME"),
        pl.col("_VALUE").alias("VALUE"), pl.col("_DTC").alias("DTC"), "SOURCE", "LIMIT", "REASON_CODE", "REASON")
    several = (
        top.filter(pl.col("_K") > 1)
        .sort("USUBJID", "_EACH", "_SRC_KEY", "_SRC_ROW", nulls_last=False)
        .group_by("USUBJID", maintain_order=True).agg(
            pl.len().alias("_K"), pl.col("_RANK").first(), pl.col("RESULT").first(),
            pl.coalesce([pl.col("NAME"), pl.col("_EACH")]).first().alias("_NAME"),
            joined(pl.col("_VALUE")).alias("VALUE"), joined(pl.col("_DTC")).alias("DTC"),
            joined(pl.col("SOURCE")).alias("SOURCE"), pl.col("LIMIT").drop_nulls().first().alias("LIMIT"),
            pl.col("REASON_CODE").drop_nulls().first().alias("REASON_CODE"), joined(pl.col("REASON")).alias("REASON"),
        )
    )
    subject = pl.concat([one.select(columns), several.select(columns)], how="vertical_relaxed")
    single_term = (pl.col("_K") == 1) & pl.lit(bool(expected))
    return finish(
        subjects.join(subject, on="USUBJID", how="left").with_columns(
            pl.lit(leaf.id).alias("LEAF_ID"),
            pl.when(single_term).then(pl.col("_NAME")).otherwise(pl.lit(label, dtype=pl.String)).alias("LABEL"),
            pl.when(pl.col("_RANK").is_null()).then(False).otherwise(pl.col("RESULT")).alias("RESULT"),
            pl.when(pl.col("VALUE") != "").then(pl.col("VALUE")).alias("VALUE"),
            pl.lit(None, dtype=pl.String).alias("UNIT"),
            pl.when(pl.col("DTC") != "").then(pl.col("DTC")).alias("DTC"),
            pl.when(pl.col("SOURCE") != "").then(pl.col("SOURCE")).alias("SOURCE"),
            pl.when(pl.col("REASON") != "").then(pl.col("REASON")).alias("REASON"),
        )
    )


def build_events(leaves: list[Leaf], ctx: EvalContext) -> pl.LazyFrame:
    """Every event leaf over all subjects; each domain's records are typed once for all its leaves."""
    variables: dict[str, set[str]] = {}
    for leaf in leaves:
        domain = str(leaf.params["domain"]).upper()
        variables.setdefault(domain, set()).update(str(k).upper() for k in leaf.params["match"])
    records = {domain: _records(domain, ctx, names).with_columns(pl.lit(domain).alias("DOMAIN"))
               .collect(engine="in-memory").rechunk() for domain, names in variables.items()}
    return pl.concat([_one_leaf(leaf, ctx, records) for leaf in leaves], how="vertical")
