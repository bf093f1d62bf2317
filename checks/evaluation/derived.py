"""Derived values: computed from several delivered values, as intervals, never from a guessed input.

Each derived value is a function of the reference table and the facts table returning rows of the
facts shape (DOMAIN = "DERIVED"), so that the `derived` rule kind compares them exactly like a
delivered result. Inputs that are intervals (a partial birth date, a censored creatinine, a sex
that is neither M nor F) give an interval; a threshold is decided only when the whole interval is
on one side of it. Which derived value a rule reads is data (`value: CRCL_CG`); the formulas are
here because they are medicine, not configuration.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from checks.evaluation.facts import FACT_COLUMNS, SELECTION_REASONS, delivered_text, finding_rows, type_facts
from contracts.enums import ReasonCode
from contracts.rule_kinds import DERIVED_VALUES
from contracts.units import UnitCatalog
from core.dates import completed_years
from core.source import SOURCE_KEY, SOURCE_ROW, source_order, source_text
from core.values import format_number

_DERIVED = "DERIVED"


def _interval_text(lo: pl.Expr, hi: pl.Expr) -> pl.Expr:
    return (pl.when(lo == hi).then(format_number(lo))
            .when(lo.is_not_null()).then(pl.format("{} to {}", format_number(lo), format_number(hi))))


def _fact(name: str, unit: str, frame: pl.LazyFrame) -> pl.LazyFrame:
    """Fill the facts columns a derived value does not use."""
    frame = frame.with_columns(pl.lit(_DERIVED).alias("DOMAIN"), pl.lit("").alias("KEY"),
                               pl.lit(name).alias("TESTCD"), pl.lit(unit).alias("PUNIT"))
    present = set(frame.collect_schema().names())
    fill = {"LO_OPEN": False, "HI_OPEN": False}
    exprs = []
    for column in FACT_COLUMNS:
        if column in present:
            exprs.append(pl.col(column))
        elif column in fill:
            exprs.append(pl.lit(fill[column]).alias(column))
        elif column in ("R_LO", "R_HI", "ULN"):
            exprs.append(pl.lit(None, dtype=pl.Float64).alias(column))
        elif column in ("R_LO_OPEN", "R_HI_OPEN"):
            exprs.append(pl.lit(None, dtype=pl.Boolean).alias(column))
        else:
            exprs.append(pl.lit(None, dtype=pl.String).alias(column))
    return frame.select(exprs)


def age_at_consent(reference: pl.LazyFrame, facts: pl.LazyFrame, ctx: DerivedContext) -> pl.LazyFrame:
    """Completed years from BRTHDTC to RFICDTC; partial dates give [youngest, oldest] possible ages."""
    lo = completed_years(pl.col("BIRTH_HI"), pl.col("CONSENT_LO")).cast(pl.Float64)
    hi = completed_years(pl.col("BIRTH_LO"), pl.col("CONSENT_HI")).cast(pl.Float64)
    reason = (
        pl.when(pl.col("_X_BRTHDTC").is_not_null() | pl.col("_X_RFICDTC").is_not_null())
        .then(pl.lit(ReasonCode.EXCLUDED_BY_VALIDATION.value))
        .when(pl.col("BIRTH_INVALID") | pl.col("CONSENT_INVALID")).then(pl.lit(ReasonCode.INVALID_DATE.value))
        .when(pl.col("BIRTH_LO").is_null() | pl.col("CONSENT_LO").is_null())
        .then(pl.lit(ReasonCode.DERIVED_INPUT_MISSING.value))
    )
    text = (  # never quotes the birth date: it must not leave the landing area
        pl.when(pl.col("_X_BRTHDTC").is_not_null()).then(pl.lit("birth date excluded by validation"))
        .when(pl.col("_X_RFICDTC").is_not_null()).then(pl.col("_X_RFICDTC"))
        .when(pl.col("BIRTH_INVALID")).then(pl.lit("birth date is not an ISO 8601 date"))
        .when(pl.col("CONSENT_INVALID")).then(pl.lit("consent date is not an ISO 8601 date"))
        .when(pl.col("BIRTH_LO").is_null()).then(pl.lit("no birth date"))
        .when(pl.col("CONSENT_LO").is_null()).then(pl.lit("no consent date"))
    )
    frame = reference.select(
        "USUBJID",
        pl.when(reason.is_null()).then(lo).alias("LO"),
        pl.when(reason.is_null()).then(hi).alias("HI"),
        reason.alias("N_REASON"), text.alias("N_REASON_TEXT"),
        pl.col("CONSENT_DTC").alias("DTC"), pl.col("DM_SOURCE").alias("SOURCE"),
    ).with_columns(
        _interval_text(pl.col("LO"), pl.col("HI")).alias("VALUE_TEXT"),
        pl.lit(ReasonCode.PARTIAL_DATE_UNDECIDABLE.value).alias("U_REASON"),
        pl.format("partial birth or consent date: age is {} to {} years", format_number(pl.col("LO")),
                  format_number(pl.col("HI"))).alias("U_REASON_TEXT"),
    )
    return _fact("AGE_AT_CONSENT", "years", frame)


def _input(facts: pl.LazyFrame, domain: str, test: str, prefix: str) -> pl.LazyFrame:
    return facts.filter((pl.col("DOMAIN") == domain) & (pl.col("TESTCD") == test) & (pl.col("KEY") == "")).select(
        "USUBJID",
        *[pl.col(c).alias(f"{prefix}_{c}") for c in ("LO", "HI", "N_REASON", "N_REASON_TEXT", "DTC", "SOURCE")])


def _input_reason(prefix: str, label: str, test: str) -> tuple[pl.Expr, pl.Expr]:
    code = pl.col(f"{prefix}_N_REASON")
    missing = pl.col(f"{prefix}_SOURCE").is_null() & code.is_null()
    return (
        pl.when(missing).then(pl.lit(ReasonCode.MISSING.value)).otherwise(code),
        pl.when(missing).then(pl.lit(f"{label}: no {test} result"))
        .when(code.is_not_null()).then(pl.format("{}: {}", pl.lit(label), pl.col(f"{prefix}_N_REASON_TEXT"))),
    )


def crcl_cockcroft_gault(reference: pl.LazyFrame, facts: pl.LazyFrame, ctx: DerivedContext) -> pl.LazyFrame:
    """(140 - age) x weight [x 0.85 female] / (72 x creatinine mg/dL); age at consent, weight and
    creatinine the in-window values. SEX other than M/F spans both factors."""
    frame = (
        reference.select("USUBJID", "SEX", "DM_SOURCE")
        .join(_input(facts, _DERIVED, "AGE_AT_CONSENT", "AGE"), on="USUBJID", how="left")
        .join(_input(facts, "LB", "CREAT", "CR"), on="USUBJID", how="left")
        .join(_input(facts, "VS", "WEIGHT", "WT"), on="USUBJID", how="left")
    )
    inputs = [_input_reason("AGE", "age", "age"), _input_reason("CR", "creatinine", "CREAT"),
              _input_reason("WT", "weight", "WEIGHT")]
    reason = pl.coalesce([code for code, _ in inputs])
    text = pl.coalesce([sentence for _, sentence in inputs])
    sex_lo = pl.when(pl.col("SEX") == "M").then(1.0).otherwise(0.85)
    sex_hi = pl.when(pl.col("SEX") == "F").then(0.85).otherwise(1.0)
    cr_lo = pl.max_horizontal(pl.col("CR_LO"), pl.lit(0.0))
    lo = (140 - pl.col("AGE_HI")) * pl.max_horizontal(pl.col("WT_LO"), pl.lit(0.0)) * sex_lo / (72 * pl.col("CR_HI"))
    hi = pl.when(cr_lo > 0).then((140 - pl.col("AGE_LO")) * pl.col("WT_HI") * sex_hi / (72 * cr_lo)).otherwise(
        float("inf"))
    sources = pl.concat_str([pl.col("CR_SOURCE"), pl.col("WT_SOURCE"), pl.col("DM_SOURCE")], separator="; ",
                            ignore_nulls=True)
    undecided = (
        pl.when(pl.col("CR_LO") != pl.col("CR_HI")).then(pl.lit(ReasonCode.CENSORED_UNDECIDABLE.value))
        .when(pl.col("AGE_LO") != pl.col("AGE_HI")).then(pl.lit(ReasonCode.PARTIAL_DATE_UNDECIDABLE.value))
        .when(pl.col("WT_LO") != pl.col("WT_HI")).then(pl.lit(ReasonCode.CENSORED_UNDECIDABLE.value))
        .otherwise(pl.lit(ReasonCode.DERIVED_INPUT_MISSING.value))
    )
    undecided_text = (
        pl.when(pl.col("CR_LO") != pl.col("CR_HI")).then(pl.lit("a censored creatinine"))
        .when(pl.col("AGE_LO") != pl.col("AGE_HI")).then(pl.lit("a partial birth or consent date"))
        .when(pl.col("WT_LO") != pl.col("WT_HI")).then(pl.lit("a censored weight"))
        .otherwise(pl.format("SEX '{}' (neither M nor F)", pl.col("SEX").fill_null("")))
    )
    frame = frame.select(
        "USUBJID",
        undecided.alias("U_REASON"),
        pl.format("CrCl could be either side of the limit because of {}", undecided_text).alias("U_REASON_TEXT"),
        pl.when(reason.is_null()).then(lo.round_sig_figs(12)).alias("LO"),
        pl.when(reason.is_null()).then(hi).alias("HI"),
        reason.alias("N_REASON"), text.alias("N_REASON_TEXT"),
        pl.col("CR_DTC").alias("DTC"), sources.alias("SOURCE"),
    ).with_columns(
        pl.when(pl.col("HI").is_finite()).then(pl.col("HI").round_sig_figs(12)).otherwise(pl.col("HI")).alias("HI")
    ).with_columns(
        pl.when(pl.col("HI").is_infinite()).then(pl.format(">={}", format_number(pl.col("LO"))))
        .otherwise(_interval_text(pl.col("LO"), pl.col("HI"))).alias("VALUE_TEXT"))
    return _fact("CRCL_CG", "mL/min", frame)


def _draw_pairs(ctx: DerivedContext, reference: pl.LazyFrame) -> pl.LazyFrame:
    """Absolute lymphocytes from LYMLE x WBC measured on the same draw (same LBDTC), latest in window."""
    lb = ctx.domains.get("lb")
    schema = {"USUBJID": pl.String, "P_LO": pl.Float64, "P_HI": pl.Float64, "P_DTC": pl.String,
              "P_SOURCE": pl.String, "P_DELIVERED": pl.String}
    if lb is None or lb.height == 0:
        return pl.DataFrame(schema=schema).lazy()
    rows = finding_rows(lb, "LB", {"LYMLE", "WBC"}, ctx.exclusions)
    in_window = (
        rows.join(reference.select("USUBJID", "TRT_DATE", "WINDOW_START"), on="USUBJID")
        .with_columns(pl.col("DTC").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).alias("_DAY"))
        .filter(pl.col("_X_RESULT").is_null() & pl.col("TEXT").is_not_null() & ~pl.col("NOT_DONE")
                & (pl.col("_DAY") >= pl.col("WINDOW_START")) & (pl.col("_DAY") <= pl.col("TRT_DATE"))
                & pl.col("DTC").str.contains(r"^\d{4}-\d{2}-\d{2}"))
        .with_columns(pl.lit(None, dtype=pl.String).alias("F_REASON"),
                      pl.lit(None, dtype=pl.String).alias("F_REASON_TEXT"))
    )
    typed = type_facts(in_window, "LB", ctx.catalog).filter(pl.col("N_REASON").is_null())
    lymle = typed.filter(pl.col("TESTCD") == "LYMLE").select(
        "USUBJID", "DTC", pl.col("LO").alias("L_LO"), pl.col("HI").alias("L_HI"), source_text().alias("L_SRC"),
        pl.col(SOURCE_KEY).alias("L_KEY"), pl.col(SOURCE_ROW).alias("L_ROW"),
        delivered_text("LYMLE", converted_only=False).alias("L_TXT"))
    wbc = typed.filter(pl.col("TESTCD") == "WBC").select(
        "USUBJID", "DTC", pl.col("LO").alias("W_LO"), pl.col("HI").alias("W_HI"), source_text().alias("W_SRC"),
        pl.col(SOURCE_KEY).alias("W_KEY"), pl.col(SOURCE_ROW).alias("W_ROW"), "_DAY",
        delivered_text("WBC", converted_only=False).alias("W_TXT"))
    pairs = lymle.join(wbc, on=["USUBJID", "DTC"]).with_columns(
        (pl.max_horizontal("W_LO", pl.lit(0.0)) * pl.max_horizontal("L_LO", pl.lit(0.0)) / 100).round_sig_figs(12)
        .alias("P_LO"),
        (pl.col("W_HI") * pl.col("L_HI") / 100).alias("P_HI"),
        pl.concat_str(["W_SRC", "L_SRC"], separator="; ").alias("P_SOURCE"),
        pl.col("DTC").alias("P_DTC"),
        pl.format("{} x {}", pl.col("L_TXT"), pl.col("W_TXT")).alias("P_DELIVERED"),
    ).with_columns(
        pl.when(pl.col("P_HI").is_finite()).then(pl.col("P_HI").round_sig_figs(12)).otherwise(pl.col("P_HI"))
    )
    # latest draw; several pairs on one draw (duplicate rows): the last WBC, then LYMLE row in file order
    return (
        pairs.sort("USUBJID", "_DAY", "DTC", *source_order("W_KEY", "W_ROW"), *source_order("L_KEY", "L_ROW"))
        .unique(subset="USUBJID", keep="last", maintain_order=True)
        .select(list(schema))
    )


def lymphocytes_absolute(reference: pl.LazyFrame, facts: pl.LazyFrame, ctx: DerivedContext) -> pl.LazyFrame:
    """LYM when it has a usable in-window value, else LYMLE x WBC of the same draw (10^9/L)."""
    direct = facts.filter((pl.col("DOMAIN") == "LB") & (pl.col("TESTCD") == "LYM") & (pl.col("KEY") == ""))
    frame = (
        reference.select("USUBJID")
        .join(direct.select("USUBJID", "LO", "HI", "LO_OPEN", "HI_OPEN", "VALUE_TEXT", "N_REASON", "N_REASON_TEXT",
                            "DTC", "SOURCE", "DELIVERED_TEXT"), on="USUBJID", how="left")
        .join(_draw_pairs(ctx, reference), on="USUBJID", how="left")
    )
    use_direct = pl.col("SOURCE").is_not_null() & pl.col("N_REASON").is_null()
    use_pair = ~use_direct & pl.col("P_SOURCE").is_not_null()
    # no LYM to offer: none delivered, or none usable in the window (an excluded one, one not done, only older
    # ones...: the fact names the record behind its reason, facts.SELECTION_REASONS, but it is no data either)
    unselected = pl.col("N_REASON").is_in(list(SELECTION_REASONS)).fill_null(False)
    # ... except a LYM validation excluded, which is data nobody can use: the component names its record, so that
    # the record's data-quality query is the one question (a LYM delivered twice with conflicting values was also
    # "no LYM result", a second query, a review)
    excluded = ~use_direct & ~use_pair & (pl.col("N_REASON") == ReasonCode.EXCLUDED_BY_VALIDATION.value).fill_null(
        False)
    no_data = ~use_direct & ~use_pair & ~excluded & (pl.col("SOURCE").is_null() | unselected)
    frame = frame.select(
        "USUBJID",
        pl.when(use_direct).then(pl.col("LO")).when(use_pair).then(pl.col("P_LO")).alias("LO"),
        pl.when(use_direct).then(pl.col("HI")).when(use_pair).then(pl.col("P_HI")).alias("HI"),
        pl.when(use_direct).then(pl.col("LO_OPEN")).otherwise(False).alias("LO_OPEN"),
        pl.when(use_direct).then(pl.col("HI_OPEN")).otherwise(False).alias("HI_OPEN"),
        pl.when(use_direct).then(pl.col("VALUE_TEXT"))
        .when(use_pair).then(_interval_text(pl.col("P_LO"), pl.col("P_HI"))).alias("VALUE_TEXT"),
        pl.when(use_direct | use_pair).then(None).when(no_data).then(pl.lit(ReasonCode.MISSING.value))
        .otherwise(pl.col("N_REASON")).alias("N_REASON"),
        pl.when(use_direct | use_pair).then(None)
        .when(no_data).then(pl.lit("no LYM result and no LYMLE and WBC of the same draw in the screening window"))
        .when(excluded).then(pl.concat_str([pl.col("N_REASON_TEXT"), pl.lit(
            " (and no LYMLE and WBC of the same draw in the screening window)")]))
        .otherwise(pl.col("N_REASON_TEXT")).alias("N_REASON_TEXT"),
        pl.when(use_pair).then(pl.col("P_DTC")).otherwise(pl.col("DTC")).alias("DTC"),
        pl.when(use_pair).then(pl.col("P_SOURCE")).when(no_data).then(None).otherwise(pl.col("SOURCE"))
        .alias("SOURCE"),
        # what the site delivered, for the evidence: the pair it was computed from, or LYM in another unit
        pl.when(use_pair).then(pl.col("P_DELIVERED")).when(use_direct).then(pl.col("DELIVERED_TEXT"))
        .alias("DELIVERED_TEXT"),
    )
    return _fact("LYM_ABS", "10^9/L", frame)


class DerivedContext:
    """What derived values may read besides reference and facts: the delivered domains and catalog."""

    def __init__(self, domains: dict[str, pl.DataFrame], catalog: UnitCatalog, exclusions: pl.DataFrame):
        self.domains = domains
        self.catalog = catalog
        self.exclusions = exclusions


DerivedBuilder = Callable[[pl.LazyFrame, pl.LazyFrame, DerivedContext], pl.LazyFrame]

#: name -> formula, for every value declared in contracts.rule_kinds.DERIVED_VALUES (inputs, and the
#: values each depends on: CRCL_CG reads AGE_AT_CONSENT)
DERIVED_BUILDERS: dict[str, DerivedBuilder] = {
    "AGE_AT_CONSENT": age_at_consent,
    "CRCL_CG": crcl_cockcroft_gault,
    "LYM_ABS": lymphocytes_absolute,
}


def derived_facts(names: set[str], reference: pl.LazyFrame, facts: pl.LazyFrame,
                  ctx: DerivedContext) -> pl.LazyFrame:
    """`facts` plus the rows of the derived values in `names` (and of those they depend on)."""
    wanted = set(names)
    for name in list(names):
        wanted.update(DERIVED_VALUES[name].depends)
    parts: list[pl.DataFrame] = []
    for name in DERIVED_VALUES:  # in declaration order: a value may read the ones before it
        if name in wanted:
            builder = DERIVED_BUILDERS[name]
            # each value collected on its own (a lazy plan that embeds `facts` in itself grows with every
            # value), and only its own rows: the large findings facts are copied once, at the end
            known = pl.concat([facts, *[part.lazy() for part in parts]], how="vertical_relaxed")
            parts.append(builder(reference, known, ctx).collect(engine="in-memory"))
    return pl.concat([facts, *[part.lazy() for part in parts]], how="vertical_relaxed")
