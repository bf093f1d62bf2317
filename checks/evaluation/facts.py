"""The value each subject has for each finding test: the latest usable result in the screening window.

DTS section 4: the value used is the latest non-missing result dated on or before treatment start
and no earlier than the screening window before it. This module does that selection once for all
subjects and all tests the protocol reads (LB, VS, FA, TR), then types the chosen result (number
with censoring in the protocol unit, unit problems, coded / qualitative value, ULN). When nothing
is usable it records why (a ReasonCode and a sentence), so that rules never have to re-derive it.

Row and site order never matter: "latest" is ordered by date (and time), then by planned time point
(`--TPTNUM`, where delivered), then by SOURCE (object key, row). Several measurements of one test on
the latest day (time points, positions, replicates: DTS section 2) are resolved as the protocol's
`same_day_measurements` says: `latest` (the default) takes the latest of them, `mean` their mean when
they are all plain numbers in one unit (else the component cannot be verified: averaging a censored
`<0.5` or mixing units would guess a value).
"""

from __future__ import annotations

import polars as pl

from checks.evaluation.exclusions import excluded_messages
from contracts.enums import ReasonCode
from contracts.units import TestKind, UnitCatalog
from core.dates import with_partial_dates
from core.source import source_order, source_text, typed_source
from core.values import (
    attach_units,
    blank_to_null,
    bounds,
    coded_value,
    convert_with_units,
    decide,
    format_number,
    per_distinct,
    qualitative_result,
    unit_key,
    with_parsed_numbers,
)

FINDINGS_DOMAINS = ("LB", "VS", "FA", "TR")
_KEY = {"TR": "TRLNKID"}  # findings keyed below the test (TR: one measurement per lesion)

#: columns of the facts table (one row per subject x domain x key x test)
FACT_COLUMNS = [
    "USUBJID", "DOMAIN", "KEY", "TESTCD", "F_REASON", "F_REASON_TEXT", "TEXT", "DELIVERED_TEXT", "DTC", "SOURCE",
    "LO", "HI", "LO_OPEN", "HI_OPEN", "CENSOR", "PUNIT", "VALUE_TEXT", "N_REASON", "N_REASON_TEXT",
    "R_LO", "R_HI", "R_LO_OPEN", "R_HI_OPEN", "ROW_UNIT", "ROW_VALUE_TEXT", "ULN", "ULN_REASON",
    "CODED", "C_REASON", "C_REASON_TEXT", "U_REASON", "U_REASON_TEXT",
]


def _column(frame: pl.DataFrame, name: str) -> pl.Expr:
    if name not in frame.columns:
        return pl.lit(None, dtype=pl.String)
    return pl.col(name).cast(pl.String)


def finding_rows(frame: pl.DataFrame, domain: str, tests: set[str], exclusions: pl.DataFrame) -> pl.LazyFrame:
    """The delivered rows of one findings domain for the needed tests, in a common shape."""
    d = domain.upper()
    rows = frame.lazy().select(
        blank_to_null(_column(frame, "USUBJID")).alias("USUBJID"),
        pl.lit(d).alias("DOMAIN"),
        (blank_to_null(_column(frame, _KEY[d])) if d in _KEY else pl.lit("")).fill_null("").alias("KEY"),
        per_distinct(frame, f"{d}TESTCD", coded_value).alias("TESTCD"),
        blank_to_null(_column(frame, f"{d}ORRES")).alias("TEXT"),
        blank_to_null(_column(frame, f"{d}ORRESU")).alias("UNIT_TEXT"),
        blank_to_null(_column(frame, f"{d}DTC")).alias("DTC"),
        (per_distinct(frame, f"{d}STAT", coded_value) == "NOT DONE").fill_null(False).alias("NOT_DONE"),
        blank_to_null(_column(frame, f"{d}ORNRHI")).alias("ULN_TEXT"),
        # the planned time point orders same-date measurements (SDTM --TPTNUM is numeric); null when absent
        blank_to_null(_column(frame, f"{d}TPTNUM")).cast(pl.Float64, strict=False).alias("TPTNUM"),
        *typed_source(frame),
        _column(frame, "DECIMAL").fill_null(".").alias("DECIMAL"),
    ).filter(pl.col("TESTCD").is_in(sorted(tests)) & pl.col("USUBJID").is_not_null())
    names = {"RESULT": [f"{d}ORRES", f"{d}ORRESU", f"{d}DTC", f"{d}TESTCD", f"{d}STAT", f"{d}STRESC",
                        f"{d}STRESN", f"{d}STRESU", *([_KEY[d]] if d in _KEY else [])],
             "ULN": [f"{d}ORNRHI"]}
    return excluded_messages(rows, exclusions, d, names)


def _window_status() -> pl.Expr:
    """IN / BEFORE / AFTER the screening window, or why that cannot be told (dates as intervals)."""
    lo, hi = pl.col("D_LO"), pl.col("D_HI")
    start, end = pl.col("WINDOW_START"), pl.col("TRT_DATE")
    return (
        pl.when(end.is_null()).then(pl.lit("NO_REF"))
        .when(pl.col("D_INVALID")).then(pl.lit("INVALID"))
        .when(lo.is_null()).then(pl.lit("NO_DATE"))
        .when(hi < start).then(pl.lit("BEFORE"))
        .when(lo > end).then(pl.lit("AFTER"))
        .when((lo >= start) & (hi <= end)).then(pl.lit("IN"))
        .otherwise(pl.lit("UNDECIDED"))
    ).alias("WSTATUS")


_PRECEDENCE = [  # reason for a subject x test with no usable in-window result, first that applies
    ("ANY_EXCLUDED", ReasonCode.EXCLUDED_BY_VALIDATION),
    ("ANY_NO_REF", ReasonCode.NO_TREATMENT_START),
    ("ANY_UNDECIDED", ReasonCode.PARTIAL_DATE_UNDECIDABLE),
    ("ANY_INVALID", ReasonCode.INVALID_DATE),
    ("ANY_NO_DATE", ReasonCode.MISSING_DATE),
    ("ANY_IN", ReasonCode.NOT_DONE),
    ("ANY_BEFORE", ReasonCode.ONLY_BEFORE_WINDOW),
    ("ANY_AFTER", ReasonCode.ONLY_AFTER_START),
]


#: the reasons `select_latest` gives a subject x test without a usable result in the window (each names the record
#: behind it in SOURCE, but for a missing result or treatment start): a derived value reads them as "no result"
SELECTION_REASONS = frozenset({code.value for _, code in _PRECEDENCE} | {ReasonCode.MISSING.value})


def _no_value_reason() -> pl.Expr:
    expr = pl.lit(ReasonCode.MISSING.value)
    for flag, code in reversed(_PRECEDENCE):
        expr = pl.when(pl.col(flag)).then(pl.lit(code.value)).otherwise(expr)
    return expr


def _window_text() -> pl.Expr:
    return pl.format("{}..{}", pl.col("WINDOW_START").dt.to_string("%Y-%m-%d"),
                     pl.col("TRT_DATE").dt.to_string("%Y-%m-%d"))


def selection_reason_text() -> pl.Expr:
    """A sentence for F_REASON (no usable in-window result), from the aggregated row statuses."""
    test = pl.col("TESTCD")
    code = pl.col("F_REASON")
    return (
        pl.when(code == ReasonCode.EXCLUDED_BY_VALIDATION.value).then(pl.col("EXCL_MESSAGE"))
        .when(code == ReasonCode.NO_TREATMENT_START.value)
        .then(pl.lit("no treatment start date to anchor the screening window"))
        .when(code == ReasonCode.PARTIAL_DATE_UNDECIDABLE.value)
        .then(pl.format("{} result dated {} may or may not be in the screening window {}", test,
                        pl.col("UNDECIDED_DTC"), _window_text()))
        .when(code == ReasonCode.INVALID_DATE.value)
        .then(pl.format("{} result date is not ISO 8601: {}", test, pl.col("INVALID_DTC")))
        .when(code == ReasonCode.MISSING_DATE.value).then(pl.format("{} result without a date", test))
        .when(code == ReasonCode.NOT_DONE.value)
        .then(pl.format("{} not done or blank in the screening window {}", test, _window_text()))
        .when(code == ReasonCode.ONLY_BEFORE_WINDOW.value)
        .then(pl.format("{} results only before the screening window {} (latest {})", test, _window_text(),
                        pl.col("BEFORE_DTC")))
        .when(code == ReasonCode.ONLY_AFTER_START.value)
        .then(pl.format("{} results only after treatment start {}", test,
                        pl.col("TRT_DATE").dt.to_string("%Y-%m-%d")))
        .when(code == ReasonCode.MISSING.value).then(pl.format("no {} result", test))
    )


#: `same_day_measurements` choices of the protocol (contracts.protocol.SAME_DAY_CHOICES)
LATEST, MEAN = "latest", "mean"


def _latest_order(keys: list[str]) -> list[pl.Expr | str]:
    return [*keys, "D_HI", "D_LO", "DTC", pl.col("TPTNUM"), *source_order()]


#: what orders results in time before their record (`_latest_order`): the columns a chosen result keeps until
#: `_without_excluded_latest` has compared it with the excluded ones
_MOMENT = ["D_LO", "D_HI", "TPTNUM"]


def _moment() -> pl.Expr:
    """When a result was measured, as `_latest_order` orders it before the record (equal for two records of one
    moment, a duplicated key's)."""
    return pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in ("D_HI", "D_LO", "DTC", "TPTNUM")],
                         separator="|")


def _measured_in_window() -> pl.Expr:
    """A result delivered and done, dated in the screening window (usable or not)."""
    return pl.col("TEXT").is_not_null() & ~pl.col("NOT_DONE") & (pl.col("WSTATUS") == "IN")


def _without_excluded_latest(rows: pl.LazyFrame, chosen: pl.LazyFrame, keys: list[str], mean: bool) -> pl.LazyFrame:
    """`chosen` without a value where validation excluded the latest in-window result, or (`mean`) a numeric
    measurement of the chosen day: the figure that decides is not known, and an earlier one, or the mean of the
    others, would stand in for it (a duplicated replicate with conflicting values left one of three WBC
    replicates, whose 2.6 was MET where the day's mean was 2.3 or 2.4, a user trial; a platelet count delivered
    twice, 40 and 42, let a count of 180 two days earlier decide, a review).

    "Latest" is `_latest_order`'s moment (date, time, time point); an excluded result at the chosen one's moment
    counts as later. F_REASON is then EXCLUDED_BY_VALIDATION, with the excluded record (the first of that moment,
    or day, in its file, where a duplicated key's finding is) and validation's message, so that its data-quality
    query asks for the one correction (reporting/covered.py)."""
    moment = ["D_HI", "D_LO", "DTC", "TPTNUM"]
    day = pl.when(pl.col("D_LO") == pl.col("D_HI")).then(pl.col("D_HI"))
    excluded = rows.filter(pl.col("_X_RESULT").is_not_null() & _measured_in_window()).select(
        *keys, *moment, day.alias("_DAY"), pl.col("_X_RESULT").alias("_XR_MESSAGE"),
        source_text().alias("_XR_SOURCE"), *[e.alias(f"_S{i}") for i, e in enumerate(source_order())])
    by_source = [f"_S{i}" for i in range(len(source_order()))]
    # only the subject x tests with an excluded in-window result (few) are compared: the others keep their choice
    touched = excluded.select(keys).unique()
    mine = chosen.join(touched, on=keys, how="semi", nulls_equal=True).select(
        *keys, *moment, day.alias("_DAY"), "TEXT", "DECIMAL", pl.lit(0).alias("_E"))
    both = (pl.concat([mine.drop("TEXT", "DECIMAL"),
                       excluded.join(mine.select(keys), on=keys, how="semi", nulls_equal=True)
                       .with_columns(pl.lit(1).alias("_E"))], how="diagonal_relaxed")
            .sort(*keys, *moment, "_E", *by_source, nulls_last=False)
            .with_columns(_moment().alias("_AT")))
    last = pl.col("_AT").last()
    at_latest = (pl.col("_E") == 1) & (pl.col("_AT") == last)
    found = both.group_by(keys).agg(
        (pl.col("_E").last() == 1).alias("_LATER"),
        pl.col("_XR_MESSAGE").filter(at_latest).first().alias("_LATER_MESSAGE"),
        pl.col("_XR_SOURCE").filter(at_latest).first().alias("_LATER_SOURCE"),
        pl.col("_DAY").filter(pl.col("_E") == 0).first().alias("_CHOSEN_DAY"),
    )
    if mean:  # the chosen day's excluded measurements (a number chosen: coded results are never averaged)
        same_day = (pl.col("_E") == 1) & (pl.col("_DAY") == pl.col("_DAY").filter(pl.col("_E") == 0).first())
        found = found.join(both.group_by(keys).agg(
            pl.col("_XR_MESSAGE").filter(same_day).first().alias("_DAY_MESSAGE"),
            pl.col("_XR_SOURCE").filter(same_day).first().alias("_DAY_SOURCE")), on=keys, how="left",
            nulls_equal=True)
        numeric = with_parsed_numbers(mine.select(*keys, "TEXT", "DECIMAL"), "TEXT", "DECIMAL", "_C").select(
            *keys, pl.col("_C_NUM").is_not_null().alias("_NUMERIC"))
        found = found.join(numeric, on=keys, how="left", nulls_equal=True)
        averaged = pl.col("_NUMERIC").fill_null(False) & pl.col("_DAY_SOURCE").is_not_null()
    else:  # the columns the expressions below read, empty
        averaged = pl.lit(False)
        found = found.with_columns(pl.lit(None, pl.String).alias("_DAY_MESSAGE"), pl.lit(None, pl.String).alias(
            "_DAY_SOURCE"), pl.lit(None, pl.Boolean).alias("_NUMERIC"))
    later = pl.col("_LATER").fill_null(False)
    hit = later | averaged
    # a day whose mean is not taken says so first (its excluded record is the first of the day)
    text = (pl.when(averaged).then(pl.format(
                "{} on {}: the protocol uses the mean of the day's measurements and one of them is not used ({})",
                pl.col("TESTCD"), pl.col("_CHOSEN_DAY").dt.to_string("%Y-%m-%d"), pl.col("_DAY_MESSAGE")))
            .when(later).then(pl.format(
                "{}: the latest result in the screening window is not used, and an earlier one does not stand in "
                "for it ({})", pl.col("TESTCD"), pl.col("_LATER_MESSAGE"))))
    return (
        chosen.join(found, on=keys, how="left", nulls_equal=True)
        .with_columns(
            pl.when(hit).then(None).otherwise(pl.col("TEXT")).alias("TEXT"),
            pl.when(hit).then(None).otherwise(pl.col("MEAN_OF")).alias("MEAN_OF"),
            # no result is used, so none has a date (the unused earlier one's date was part of the evidence: a
            # closed finding reopened when only that record's date moved, a user trial)
            pl.when(hit).then(None).otherwise(pl.col("DTC")).alias("DTC"),
            pl.when(averaged).then(pl.col("_DAY_SOURCE")).when(later).then(pl.col("_LATER_SOURCE"))
            .otherwise(pl.col("SOURCE")).alias("SOURCE"),
            pl.when(hit).then(pl.lit(ReasonCode.EXCLUDED_BY_VALIDATION.value)).otherwise(pl.col("F_REASON"))
            .alias("F_REASON"),
            pl.when(hit).then(text).otherwise(pl.col("F_REASON_TEXT")).alias("F_REASON_TEXT"),
        )
        .drop("_LATER", "_LATER_MESSAGE", "_LATER_SOURCE", "_CHOSEN_DAY", "_DAY_MESSAGE", "_DAY_SOURCE", "_NUMERIC")
    )


def _mean_of_same_day(several: pl.LazyFrame, chosen: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """`chosen` (the latest of several candidates) with the mean of the candidates of its day instead.

    The replicates are the candidates dated on the latest one's day (a full date; a partial date has no
    day to share). Their mean is taken only when every one is a plain number (no `<` / `>`) in one
    unit: then TEXT is the mean (decimal point) and SOURCE lists every replicate. Otherwise F_REASON
    says why no value is used. A day with one measurement keeps it as it is, and so do coded results
    (no replicate is a number: POSITIVE / NEGATIVE are not averaged, the latest is used).
    """
    day = pl.when(pl.col("D_LO") == pl.col("D_HI")).then(pl.col("D_HI"))
    days = chosen.select(*keys, day.alias("_DAY"))
    replicates = with_parsed_numbers(
        several.join(days, on=keys, how="inner", nulls_equal=True).filter(pl.col("D_LO") == pl.col("_DAY"))
        .with_columns(unit_key(pl.col("UNIT_TEXT").fill_null("")).alias("_UNIT_KEY")),
        "TEXT", "DECIMAL", "_R")
    summary = (
        replicates.sort(*keys, *source_order())
        .group_by(keys).agg(
            pl.len().alias("_N_SAME_DAY"),
            (pl.col("_R_NUM").is_not_null() & pl.col("_R_CENSOR").is_null()).all().alias("_PLAIN"),
            (pl.col("_UNIT_KEY").n_unique() == 1).alias("_ONE_UNIT"),
            pl.col("_R_NUM").is_not_null().any().alias("_ANY_NUMBER"),
            pl.col("_R_NUM").mean().alias("_MEAN"),
            source_text().str.join("; ").alias("_SOURCES"),
            # "; " between them: "162,5, 155,1" would read as four figures at a decimal-comma site
            pl.col("TEXT").str.strip_chars().str.join("; ").alias("_TEXTS"),
            pl.col("UNIT_TEXT").str.strip_chars().drop_nulls().first().alias("_UNIT_TEXT"),
            pl.col("_DAY").first(),
        )
        .filter((pl.col("_N_SAME_DAY") > 1) & pl.col("_ANY_NUMBER"))  # coded results are never averaged
    )
    averaged = pl.col("_N_SAME_DAY").is_not_null() & pl.col("_PLAIN") & pl.col("_ONE_UNIT")
    refused = pl.col("_N_SAME_DAY").is_not_null() & ~(pl.col("_PLAIN") & pl.col("_ONE_UNIT"))
    return (
        chosen.join(summary, on=keys, how="left", nulls_equal=True)
        .with_columns(
            pl.when(averaged).then(format_number(pl.col("_MEAN"))).when(refused).then(None)
            .otherwise(pl.col("TEXT")).alias("TEXT"),
            pl.when(averaged).then(pl.lit(".")).otherwise(pl.col("DECIMAL")).alias("DECIMAL"),
            # the figures the site wrote, which a query quotes beside the mean (a user trial: "PLT 58.5 10^9/L"
            # was no figure the site could confirm against its source)
            pl.when(averaged).then(pl.concat_str([
                pl.format("mean of {} measurements:", pl.col("_N_SAME_DAY")), pl.col("_TEXTS"), pl.col("_UNIT_TEXT")],
                separator=" ", ignore_nulls=True)).alias("MEAN_OF"),
            pl.when(pl.col("_N_SAME_DAY").is_not_null()).then(pl.col("_SOURCES")).otherwise(pl.col("SOURCE"))
            .alias("SOURCE"),
            pl.when(refused).then(pl.lit(ReasonCode.REPLICATES_NOT_AVERAGED.value)).alias("F_REASON"),
            pl.when(refused).then(pl.format(
                "{} {} measurements on {} cannot be averaged (the protocol uses their mean): not all are plain "
                "numbers in one unit", pl.col("TESTCD"), pl.col("_N_SAME_DAY"),
                pl.col("_DAY").dt.to_string("%Y-%m-%d"))).alias("F_REASON_TEXT"),
        )
        .drop("_N_SAME_DAY", "_PLAIN", "_ONE_UNIT", "_ANY_NUMBER", "_MEAN", "_SOURCES", "_TEXTS", "_UNIT_TEXT", "_DAY")
    )


def select_latest(rows: pl.LazyFrame, reference: pl.LazyFrame, same_day: str = LATEST, *,
                  any_excluded: bool = True) -> pl.LazyFrame:
    """One row per subject x domain x key x test: the chosen result, or F_REASON when there is none.

    `same_day` is the protocol's `same_day_measurements` (`latest` or `mean`, see the module's doc).
    `any_excluded`: False when validation excluded no value of these rows (most nights and domains), which
    spares comparing every choice with the excluded results (`_without_excluded_latest`).
    """
    keys = ["USUBJID", "DOMAIN", "KEY", "TESTCD"]
    rows = (
        with_partial_dates(
            rows.join(reference.select("USUBJID", "TRT_DATE", "WINDOW_START"), on="USUBJID", how="inner"),
            "DTC", "D")
        .with_columns(_window_status())
        .with_columns(
            (pl.col("_X_RESULT").is_null() & _measured_in_window()).alias("CANDIDATE"),
        )
        .with_columns(pl.col("CANDIDATE").sum().over(keys).alias("_N"))  # candidates of the subject x test
        .cache()
    )
    candidates = rows.filter(pl.col("CANDIDATE"))
    # most subject x test have one candidate: only the others need ordering (and the SOURCE sort keys)
    columns = [*keys, "TEXT", "UNIT_TEXT", "DTC", source_text().alias("SOURCE"), "DECIMAL", "ULN_TEXT", "_X_ULN",
               "TRT_DATE", "WINDOW_START"]
    no_reason = [pl.lit(None, dtype=pl.String).alias("F_REASON"), pl.lit(None, dtype=pl.String).alias("F_REASON_TEXT"),
                 pl.lit(None, dtype=pl.String).alias("MEAN_OF")]
    several_rows = candidates.filter(pl.col("_N") > 1)
    several = (
        several_rows.sort(*_latest_order(keys), nulls_last=False)
        .unique(subset=keys, keep="last", maintain_order=True)
        .select(*columns, *_MOMENT).with_columns(no_reason)
    )
    if same_day == MEAN:
        several = _mean_of_same_day(several_rows, several, keys)
    chosen = pl.concat([candidates.filter(pl.col("_N") == 1).select(*columns, *_MOMENT).with_columns(no_reason),
                        several], how="vertical")
    if any_excluded:
        chosen = _without_excluded_latest(rows, chosen, keys, mean=same_day == MEAN)
    chosen = chosen.drop(_MOMENT)
    # subject x test without any usable in-window result (usually few): why not
    usable = pl.col("_X_RESULT").is_null()

    statuses = [("NO_REF", "NO_REF"), ("UNDECIDED", "UNDECIDED"), ("INVALID", "INVALID"), ("NO_DATE", "NO_DATE"),
                ("IN", "IN"), ("BEFORE", "BEFORE"), ("AFTER", "AFTER")]
    # the record behind each reason, the latest of its status (a partial or unreadable date, a result not done in
    # the window, the latest before it...): a site monitor is pointed at it, as at a record validation excluded.
    # Without a treatment start the subject's DM record is the problem, not the result
    named = {f"ANY_{name}": name for _, name in statuses if name != "NO_REF"}
    behind = pl.when(pl.col("F_REASON") == ReasonCode.EXCLUDED_BY_VALIDATION.value).then(pl.col("EXCL_SOURCE"))
    for flag, code in _PRECEDENCE:
        if flag in named:
            behind = behind.when(pl.col("F_REASON") == code.value).then(pl.col(f"_SOURCE_{named[flag]}"))
    missing = (
        rows.filter(pl.col("_N") == 0)
        .sort(*_latest_order(keys), nulls_last=False)
        .with_columns(
            *[pl.when(usable & (pl.col("WSTATUS") == name)).then(source_text()).alias(f"_SOURCE_{name}")
              for name in named.values()],
            pl.when(~usable).then(pl.col("_X_RESULT")).alias("_EXCL"),
            pl.when(~usable).then(source_text()).alias("_EXCL_SOURCE"),
            pl.when(~usable).then(_moment()).alias("_EXCL_AT"),
            pl.when(pl.col("WSTATUS") == "UNDECIDED").then(pl.col("DTC")).alias("_UNDECIDED"),
            pl.when(pl.col("WSTATUS") == "INVALID").then(pl.col("DTC")).alias("_INVALID"),
            pl.when(pl.col("WSTATUS") == "BEFORE").then(pl.col("DTC")).alias("_BEFORE"),
        )
        .group_by(keys).agg(
            (~usable).any().alias("ANY_EXCLUDED"),
            # the latest excluded record, the first in its file of those at that moment: a duplicated key's
            # finding is at its first row, whose query then stands for the component (reporting/covered.py)
            *[pl.col(name).filter(pl.col("_EXCL_AT") == pl.col("_EXCL_AT").drop_nulls().last()).first().alias(alias)
              for name, alias in (("_EXCL", "EXCL_MESSAGE"), ("_EXCL_SOURCE", "EXCL_SOURCE"))],
            *[(usable & (pl.col("WSTATUS") == status)).any().alias(f"ANY_{name}") for status, name in statuses],
            pl.col("_UNDECIDED").drop_nulls().last().alias("UNDECIDED_DTC"),
            pl.col("_INVALID").drop_nulls().last().alias("INVALID_DTC"),
            pl.col("_BEFORE").drop_nulls().last().alias("BEFORE_DTC"),
            *[pl.col(f"_SOURCE_{name}").drop_nulls().last() for name in named.values()],
            pl.col("TRT_DATE").first(), pl.col("WINDOW_START").first(),
        )
        .with_columns(_no_value_reason().alias("F_REASON"))
        .with_columns(selection_reason_text().alias("F_REASON_TEXT"),
                      # the record a data-quality check excluded: its query can name it (`Record: …/lb.csv record
                      # 12 after the header`), beside the data-quality query on the same record
                      behind.alias("SOURCE"))
        .select(*keys, "F_REASON", "F_REASON_TEXT", "SOURCE", "TRT_DATE", "WINDOW_START")
    )
    return pl.concat([chosen, missing], how="diagonal_relaxed")


def _prefix() -> pl.Expr:
    return pl.col("CENSOR").fill_null("")


def type_facts(facts: pl.LazyFrame, domain: str | None, catalog: UnitCatalog) -> pl.LazyFrame:
    """Type the chosen results: numbers in the protocol unit, coded values, ULN.

    `domain` None types rows of every findings domain at once (the frame's DOMAIN column). Built in
    small stages (each column computed once, then referenced) to keep the query plan small.
    """
    entries = {f"{d}|{code}": e for (d, code), e in catalog.tests.items() if domain is None or d == domain.upper()}
    protocol_units = {key: e.unit for key, e in entries.items() if e.unit}
    qualitative = sorted(key for key, e in entries.items() if e.kind is TestKind.QUALITATIVE)
    positive_above = {key: e.positive_above for key, e in entries.items() if e.positive_above is not None}
    domain_expr = pl.col("DOMAIN") if domain is None else pl.lit(domain.upper())
    facts = facts.with_columns(pl.concat_str([domain_expr, pl.lit("|"), pl.col("TESTCD")]).alias("_DT"))
    facts = with_parsed_numbers(with_parsed_numbers(attach_units(facts, catalog, domain), "TEXT", "DECIMAL", "_P"),
                                "ULN_TEXT", "DECIMAL", "_U").with_columns(
        pl.col("_P_NUM").alias("NUM"),
        pl.col("_P_CENSOR").alias("CENSOR"),
        pl.when(pl.col("_U_CENSOR").is_null() & (pl.col("_U_NUM") > 0) & pl.col("_X_ULN").is_null())
        .then(pl.col("_U_NUM")).alias("ULN"),
    ).with_columns(
        bounds(pl.col("NUM"), pl.col("CENSOR")).alias("_B"),
    ).with_columns(
        pl.col("_B").struct.field("lo").alias("R_LO"), pl.col("_B").struct.field("hi").alias("R_HI"),
        pl.col("_B").struct.field("lo_open").alias("LO_OPEN"), pl.col("_B").struct.field("hi_open").alias("HI_OPEN"),
    ).with_columns(
        convert_with_units(pl.col("R_LO")).alias("LO"), convert_with_units(pl.col("R_HI")).alias("HI"),
        pl.col("LO_OPEN").alias("R_LO_OPEN"), pl.col("HI_OPEN").alias("R_HI_OPEN"),
        pl.col("_DT").replace_strict(protocol_units, default=None, return_dtype=pl.String).alias("PUNIT"),
        pl.when(pl.col("_X_ULN").is_not_null()).then(pl.col("_X_ULN"))
        .when(pl.col("ULN_TEXT").is_null()).then(pl.format("{} has no upper limit of normal", pl.col("TESTCD")))
        .when(pl.col("ULN").is_null())
        .then(pl.format("{} upper limit of normal '{}' is not a usable number", pl.col("TESTCD"), pl.col("ULN_TEXT")))
        .alias("ULN_REASON"),
    ).with_columns(  # each bound formatted once, then assembled
        *[format_number(pl.col(c)).alias(f"_T_{c}") for c in ("LO", "HI", "R_LO", "R_HI")],
    ).with_columns(
        _value_text("CENSOR", "LO", "HI").alias("VALUE_TEXT"),
        _value_text("CENSOR", "R_LO", "R_HI").alias("ROW_VALUE_TEXT"),
        pl.when(pl.col("F_REASON").is_not_null()).then(pl.col("F_REASON"))
        .when(pl.col("NUM").is_null()).then(pl.lit(ReasonCode.NOT_NUMERIC.value))
        .otherwise(pl.col("UNIT_PROB")).alias("N_REASON"),
    ).drop("_T_LO", "_T_HI", "_T_R_LO", "_T_R_HI").with_columns(
        _numeric_reason_text().alias("N_REASON_TEXT"),
        pl.lit(ReasonCode.CENSORED_UNDECIDABLE.value).alias("U_REASON"),
        pl.lit(None, dtype=pl.String).alias("U_REASON_TEXT"),
    )
    return _coded(facts, catalog, qualitative, positive_above)


def delivered_text(prefix: str | None = None, *, converted_only: bool = True,
                   averaged: pl.Expr | None = None) -> pl.Expr:
    """The result as the site wrote it (`8.90 mmol/L`, `prefix` before it) where the audit converted it to
    another unit (null otherwise, and where `averaged`, a mean of replicates; `converted_only=False`: always,
    for a value computed from it): a site looks for that figure in its records, not for the `14.3379 g/dL`
    compared with the limit. Shown beside VALUE in the eligibility table and the evidence (DELIVERED)."""
    shown = pl.col("TEXT").is_not_null()
    if converted_only:
        shown = shown & pl.col("ROW_UNIT").ne(pl.col("PUNIT")).fill_null(False)
    if averaged is not None:  # the mean of same-day replicates (select_latest) is no figure the site wrote
        shown = shown & ~averaged.fill_null(False)
    parts = [pl.col("TEXT").str.strip_chars(), pl.col("UNIT_TEXT").str.strip_chars()]
    return pl.when(shown).then(pl.concat_str([pl.lit(prefix), *parts] if prefix else parts, separator=" ",
                                             ignore_nulls=True))


def _value_text(censor: str, lo: str, hi: str) -> pl.Expr:
    """The interval in words, from the bounds already formatted as `_T_<lo>` / `_T_<hi>`."""
    c = pl.col(censor)
    lo_text, hi_text = pl.col(f"_T_{lo}"), pl.col(f"_T_{hi}")
    return (
        pl.when(c.is_in(["<", "<="])).then(pl.concat_str([c, hi_text]))
        .when(c.is_in([">", ">="])).then(pl.concat_str([c, lo_text]))
        .when(pl.col(lo) == pl.col(hi)).then(lo_text)
        .when(pl.col(lo).is_not_null())
        .then(pl.format("{} to {}", lo_text, hi_text))
    )


def _numeric_reason_text() -> pl.Expr:
    code = pl.col("N_REASON")
    test, text, unit = pl.col("TESTCD"), pl.col("TEXT"), pl.col("UNIT_TEXT")
    return (
        pl.when(pl.col("F_REASON").is_not_null()).then(pl.col("F_REASON_TEXT"))
        .when(code == ReasonCode.NOT_NUMERIC.value).then(pl.format("{} result '{}' is not a number", test, text))
        .when(code == ReasonCode.MISSING_UNIT.value).then(pl.format("{} result {} has no unit", test, text))
        .when(code == ReasonCode.UNKNOWN_UNIT.value)
        .then(pl.format("{} unit '{}' is not in the unit catalog", test, unit))
        .when(code == ReasonCode.UNIT_NOT_CONVERTIBLE.value)
        .then(pl.format("{} unit '{}' has no fixed factor to {}", test, unit, pl.col("PUNIT").fill_null("?")))
    )


def _coded(facts: pl.LazyFrame, catalog: UnitCatalog, qualitative: list[str],
           positive_above: dict[str, float]) -> pl.LazyFrame:
    """CODED: the coded answer; for qualitative tests the catalog's POSITIVE / NEGATIVE, a number above
    `positive_above` (in the protocol unit) reading as POSITIVE."""
    is_qual = pl.col("_DT").is_in(qualitative)
    limit = pl.col("_DT").replace_strict(positive_above, default=None, return_dtype=pl.Float64)
    numeric_code = pl.when(pl.col("UNIT_PROB").is_null()).then(
        pl.when(decide(pl.col("LO"), pl.col("HI"), pl.col("LO_OPEN"), pl.col("HI_OPEN"), ">", limit))
        .then(pl.lit("POSITIVE"))
        .when(decide(pl.col("LO"), pl.col("HI"), pl.col("LO_OPEN"), pl.col("HI_OPEN"), "<=", limit))
        .then(pl.lit("NEGATIVE")))
    by_number = is_qual & limit.is_not_null() & pl.col("NUM").is_not_null()
    coded = (
        pl.when(by_number).then(numeric_code)
        .when(is_qual).then(qualitative_result(pl.col("TEXT"), catalog))
        .otherwise(coded_value(pl.col("TEXT")))
    )
    reason = (
        pl.when(pl.col("F_REASON").is_not_null()).then(pl.col("F_REASON"))
        .when(by_number & pl.col("UNIT_PROB").is_not_null()).then(pl.col("UNIT_PROB"))
        .when(by_number & pl.col("CODED").is_null()).then(pl.lit(ReasonCode.CENSORED_UNDECIDABLE.value))
        .when(pl.col("CODED").is_null()).then(pl.lit(ReasonCode.INVALID_CODE.value))
    )
    text = (
        pl.when(pl.col("F_REASON").is_not_null()).then(pl.col("F_REASON_TEXT"))
        .when(pl.col("C_REASON") == ReasonCode.CENSORED_UNDECIDABLE.value)
        .then(pl.format("{} {} cannot tell detected from not detected", pl.col("TESTCD"), pl.col("TEXT")))
        .when(pl.col("C_REASON") == ReasonCode.INVALID_CODE.value)
        .then(pl.format("{} result '{}' is not a recognised code", pl.col("TESTCD"), pl.col("TEXT")))
        .when(pl.col("C_REASON").is_not_null()).then(pl.col("N_REASON_TEXT"))
    )
    return (facts.with_columns(coded.alias("CODED")).with_columns(reason.alias("C_REASON"))
            .with_columns(text.alias("C_REASON_TEXT")))


def findings_facts(domains: dict[str, pl.DataFrame], needed: dict[str, set[str]], reference: pl.LazyFrame,
                   catalog: UnitCatalog, exclusions: pl.DataFrame, same_day: str = LATEST) -> pl.LazyFrame:
    """The facts table for every needed finding test of every subject that has at least one row of it.

    `same_day`: the protocol's `same_day_measurements` (`latest` or `mean`)."""
    parts = []
    for domain in FINDINGS_DOMAINS:
        frame = domains.get(domain.lower())
        tests = needed.get(domain.lower(), set())
        if frame is not None and tests and frame.height > 0:
            # whether validation excluded a value of this domain: without, no choice needs comparing with one
            excluded = exclusions.height > 0 and exclusions.filter(pl.col("DOMAIN") == domain).height > 0
            parts.append((finding_rows(frame, domain, tests, exclusions), excluded))
    if not parts:
        return empty_facts().lazy()
    # one domain after the other (parallel=False): a subject x test never spans domains, so each
    # domain's selection and typing stand alone, and only one domain's intermediate rows are in memory
    typed = [type_facts(select_latest(rows, reference, same_day, any_excluded=excluded), None, catalog)
             .with_columns(pl.when(pl.col("MEAN_OF").is_not_null() & pl.col("TEXT").is_not_null())
                           .then(pl.col("MEAN_OF"))
                           .otherwise(delivered_text(averaged=pl.col("SOURCE").str.contains("; ", literal=True)))
                           .alias("DELIVERED_TEXT")).select(FACT_COLUMNS)
             for rows, excluded in parts]
    return pl.concat(typed, how="vertical_relaxed", parallel=False)


def empty_facts() -> pl.DataFrame:
    types = {"LO": pl.Float64, "HI": pl.Float64, "R_LO": pl.Float64, "R_HI": pl.Float64, "ULN": pl.Float64,
             "LO_OPEN": pl.Boolean, "HI_OPEN": pl.Boolean, "R_LO_OPEN": pl.Boolean, "R_HI_OPEN": pl.Boolean}
    return pl.DataFrame(schema={c: types.get(c, pl.String) for c in FACT_COLUMNS})
