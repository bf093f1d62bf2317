"""The EVIDENCE sentences of the discrepancies, as polars expressions.

A site monitor acts on one sentence per finding, so every sentence quotes the value, unit, limit and
date the audit used, what the site recorded and what it decided. The wording lives here, in one
place, so that the classes read alike and the golden texts in the tests pin it down. Every builder
returns an aliased `pl.Expr` over the columns it names; null parts are left out, never printed as
"null".
"""

from __future__ import annotations

import polars as pl

from contracts.enums import Outcome, SiteDecision

_DECIDED_WORDS = {
    "MET": "met",
    "NOT_MET": "not met",
    "APPLIES": "applying",
    "NOT_APPLICABLE": "not applying",
    "UNVERIFIABLE": "unverifiable",
}


def outcome_words(column: str) -> pl.Expr:
    """`NOT_MET` -> `not met`, ... (unknown codes are shown as they are)."""
    expr = pl.col(column)
    return expr.replace_strict(_DECIDED_WORDS, default=expr, return_dtype=pl.String)


def _opt(*parts: pl.Expr | str) -> pl.Expr:
    """Concatenation that is null when any part is null (so `_join` leaves it out)."""
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts], ignore_nulls=False)


def _join(*parts: pl.Expr) -> pl.Expr:
    return pl.concat_str(list(parts), ignore_nulls=True)


def measured() -> pl.Expr:
    """`52 10^9/L on 2026-03-02` from VALUE, UNIT, DTC (null when there is no VALUE); a value converted to the
    protocol unit says what was delivered: `14.3379 g/dL (delivered: 8.9 mmol/L) on 2026-07-15`, so that
    the site finds the figure in its source documents."""
    return (
        pl.when(pl.col("VALUE").is_not_null())
        .then(_join(pl.col("VALUE"), _opt(" ", pl.col("UNIT")), _opt(" (delivered: ", pl.col("DELIVERED"), ")"),
                    _opt(" on ", pl.col("DTC"))))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _limit() -> pl.Expr:
    """`60 10^9/L` from LIMIT and UNIT; null when there is no LIMIT."""
    return pl.when(pl.col("LIMIT").is_not_null()).then(_join(pl.col("LIMIT"), _opt(" ", pl.col("UNIT"))))


def limit_clause() -> pl.Expr:
    """` (limit 60 10^9/L)`, empty when the component has no limit."""
    return _opt(" (limit ", _limit(), ")").fill_null("")


def component_fact() -> pl.Expr:
    """`IN10.PLT 52 10^9/L on 2026-03-02, limit 60 10^9/L`; without a value `EX05.HBV not applying
    (<reason>)`, the reason only when there is one."""
    limit = _opt(", limit ", _limit()).fill_null("")
    reason = _opt(" (", pl.col("REASON"), ")").fill_null("")
    return (
        pl.when(pl.col("VALUE").is_not_null())
        .then(_join(pl.col("CHECK_ID"), pl.lit(" "), measured(), limit))
        .otherwise(_join(pl.col("CHECK_ID"), pl.lit(" "), outcome_words("OUTCOME"), reason))
    )


def decision_clause() -> pl.Expr:
    """What the site decided, as the end of a sentence."""
    decision = pl.col("SITE_DECISION")
    return (
        pl.when(decision == SiteDecision.ENROLLED)
        .then(pl.lit("enrolled the subject"))
        .when(decision == SiteDecision.SCREEN_FAILURE)
        .then(pl.lit("recorded the subject as a screen failure"))
        .otherwise(pl.lit("has not yet decided (subject in screening)"))
    )


def ineligible_enrolled() -> pl.Expr:
    """`IN10.PLT 52 10^9/L on 2026-03-02 does not meet IN10 (limit 60 10^9/L); the site recorded
    IN10 as met (IN10=Y) and enrolled the subject.`"""
    verb = (
        pl.when(pl.col("OUTCOME") == Outcome.APPLIES)
        .then(pl.lit("meets exclusion"))
        .otherwise(pl.lit("does not meet"))
    )
    value = pl.coalesce(measured(), pl.format("({})", pl.col("REASON").fill_null("no value")))
    return pl.format(
        "{} {} {} {}{}; the site recorded {} and enrolled the subject.",
        pl.col("CHECK_ID"),
        value,
        verb,
        pl.col("CRITERION_ID"),
        limit_clause(),
        pl.col("SITE_PHRASE"),
    ).alias("EVIDENCE")


def unverifiable() -> pl.Expr:
    """`IN10.PLT could not be verified: <reason>; the site recorded ... and enrolled the subject.`"""
    return pl.format(
        "{} could not be verified: {}; the site recorded {} and enrolled the subject.",
        pl.col("CHECK_ID"),
        pl.col("REASON").fill_null("no usable result"),
        pl.col("SITE_PHRASE"),
    ).alias("EVIDENCE")


def ie_mismatch() -> pl.Expr:
    """`The site recorded IN07 as met (IN07=Y) but the audit recomputes IN07 as not met: IN07.KPS 70
    on 2026-03-01, limit 80; the site enrolled the subject.`

    Needs DETAILS: the facts of the components that decide the recomputed outcome.
    """
    return pl.format(
        "The site recorded {} but the audit recomputes {} as {}: {}; the site {}.",
        pl.col("SITE_PHRASE"),
        pl.col("CRITERION_ID"),
        outcome_words("OUTCOME"),
        pl.col("DETAILS"),
        decision_clause(),
    ).alias("EVIDENCE")


def criterion_summary() -> pl.Expr:
    """`IN07 as met (IN07.KPS 90 on 2026-03-01, limit 80)`; needs DETAILS."""
    return pl.format("{} as {} ({})", pl.col("CRITERION_ID"), outcome_words("OUTCOME"), pl.col("DETAILS"))


def screen_fail_unsupported() -> pl.Expr:
    """`The site recorded the subject as a screen failure on IN07=N, but the audit recomputes IN07 as
    met (IN07.KPS 90 on 2026-03-01, limit 80); ...`

    Needs RECORDED_FAILURES (`IN07=N and EX06=Y`) and SUMMARIES (criterion_summary joined by "; ").
    """
    return pl.format(
        "The site recorded the subject as a screen failure on {}, but the audit recomputes {}; "
        "no recorded reason for the screen failure is supported by the data.",
        pl.col("RECORDED_FAILURES"),
        pl.col("SUMMARIES"),
    ).alias("EVIDENCE")
