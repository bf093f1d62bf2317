"""Failing rows of a suite run -> rows of the `validation` table, exclusions and rejected rows.

GE says which rows failed each expectation, by their rendered SOURCE (the suite's row index); everything
a reader needs (site, subject, the observed value, a sentence naming the problem and the expected value)
comes from the prepared frame by a join on it, with the message templates of suites.yaml filled per row
by polars. Exclusions and rejected rows name their rows by the typed source (core.source).
"""

from __future__ import annotations

import re

import polars as pl

from contracts.tables import EVIDENCE_HASH, EXCLUSIONS, FINDING_ID, FINDINGS, IDENTITY, empty_table
from core.source import SOURCE_COLUMNS, rows_words
from core.values import decimal_hint
from expectations.identity import identity_columns
from expectations.model import WITHHELD, Check
from expectations.spec import Action

_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
#: the placeholder of why the check's variable is not a number when it has the other decimal mark (core.values)
DECIMAL_HINT = "DECIMAL_HINT"
#: extra column after the contracted ones: the check id (DOMAIN.kind.VARIABLE), stable for reports
CHECK_COLUMN = "CHECK"
#: the findings of a suite run: the contracted columns, the check id, and the finding's identity
#: (expectations.identity)
VALIDATION_FINDINGS = {**FINDINGS, CHECK_COLUMN: pl.String, **IDENTITY}


def template_expr(template: str, check: Check) -> pl.Expr:
    """A message template as a polars string expression; {OBSERVED_TEXT} is the check's raw variable.

    A private variable (a birth date) is never quoted: it reads "(withheld)".
    """
    parts: list[pl.Expr] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > position:
            parts.append(pl.lit(template[position:match.start()]))
        name = match.group(1)
        column = check.variable if name == "OBSERVED_TEXT" else name
        if name == DECIMAL_HINT:
            parts.append(decimal_hint(pl.col(check.variable), pl.col("DECIMAL")))
        elif column in check.private:
            parts.append(pl.when(pl.col(column).is_null()).then(pl.lit("(blank)")).otherwise(pl.lit(WITHHELD)))
        else:
            parts.append(pl.col(column).cast(pl.String).fill_null("(blank)"))
        position = match.end()
    if position < len(template):
        parts.append(pl.lit(template[position:]))
    return pl.concat_str(parts) if parts else pl.lit("")


def template_columns(template: str, check: Check) -> set[str]:
    """Columns a template reads (to verify the templates against a prepared frame)."""
    names = _PLACEHOLDER.findall(template)
    used = {check.variable if n == "OBSERVED_TEXT" else n for n in names if n != DECIMAL_HINT}
    return used | ({check.variable, "DECIMAL"} if DECIMAL_HINT in names else set())


def map_failures(prepared: pl.DataFrame, checks: list[Check], failures: dict[str, list[str]], study: str,
                 texts: dict[str, pl.Expr] | None = None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(findings, exclusions, rejected) for the failing rows of every check.

    `texts` are the message-only columns (expectations.prepare.text_columns), added to failing rows.
    """
    from expectations.prepare import with_texts

    findings: list[pl.DataFrame] = []
    exclusions: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = []
    for check in checks:
        sources = failures.get(check.id) or []
        if not sources:
            continue
        rows = prepared.join(pl.DataFrame({"SOURCE": sources}, schema={"SOURCE": pl.String}).unique(),
                             on="SOURCE", how="semi")
        if check.explode:
            parallel = dict(check.explode_with)
            rows = (rows.with_columns(pl.col(check.explode).alias("X_ITEM"),
                                      *(pl.col(column).alias(alias) for column, alias in parallel.items()))
                    .explode("X_ITEM", *parallel.values()))
        used = template_columns(check.message, check) | template_columns(check.observed, check)
        wanted = {name: expr for name, expr in (texts or {}).items() if name in used}
        if wanted:
            rows = with_texts(rows, wanted)
        if check.one_per:
            rows = with_rows_text(rows, check.one_per)
        rows = rows.with_columns(template_expr(check.message, check).alias("X_MESSAGE"),
                                 template_expr(check.observed, check).alias("X_OBSERVED"))
        domain = check.finding_domain or check.domain
        variable = (pl.col(check.variable_column) if check.variable_column
                    else pl.lit(check.finding_variable or check.variable)).cast(pl.String)
        rows = identity_columns(rows, check, study, pl.col("DELIVERY_SITEID").cast(pl.String), variable,
                                pl.col("X_OBSERVED"))
        # a duplicated key is one finding at its first row (which keeps the id it would have alone)
        reported = rows.unique(list(check.one_per), keep="first", maintain_order=True) if check.one_per else rows
        findings.append(reported.select(
            pl.lit(study).alias("STUDYID"),
            pl.col("DELIVERY_SITEID").cast(pl.String).alias("SITEID"),
            (pl.lit(None, pl.String) if check.site_level else pl.col("X_USUBJID")).alias("USUBJID"),
            pl.lit(domain).alias("DOMAIN"),
            variable.alias("VARIABLE"),
            pl.lit(check.expectation).alias("EXPECTATION"),
            pl.col("X_OBSERVED").alias("OBSERVED"),
            pl.col("X_MESSAGE").alias("MESSAGE"),
            pl.col(check.source_column or "SOURCE").alias("SOURCE"),
            pl.lit(check.id).alias(CHECK_COLUMN),
            FINDING_ID,
            EVIDENCE_HASH,
        ))
        if check.action is Action.EXCLUDE or check.exclude_when:
            excluded = rows.filter(pl.col(check.exclude_when)) if check.exclude_when else rows
            exclusions.extend(excluded.select(*SOURCE_COLUMNS, pl.lit(check.domain).alias("DOMAIN"),
                                          pl.lit(variable).alias("VARIABLE"), pl.col("X_MESSAGE").alias("MESSAGE"))
                              for variable in check.excludes)
        if check.action is Action.REJECT:
            chosen = rows.filter(pl.col(check.reject_when)) if check.reject_when else rows
            rejected.append(chosen.select(*SOURCE_COLUMNS, pl.lit(check.domain).alias("DOMAIN"),
                                          pl.lit(check.variable).alias("VARIABLE"),
                                          pl.col("X_MESSAGE").alias("MESSAGE")))
    return (_concat(findings, VALIDATION_FINDINGS).sort("SITEID", "USUBJID", "SOURCE", CHECK_COLUMN,
                                                                         "OBSERVED", nulls_last=True),
            _concat(exclusions, EXCLUSIONS).unique([*SOURCE_COLUMNS, "VARIABLE"], keep="first", maintain_order=True),
            _concat(rejected, EXCLUSIONS).unique(list(SOURCE_COLUMNS), keep="first", maintain_order=True))


#: the message column the mapping adds for a check with `one_per`: every row of the group, by file
ROWS_TEXT = "X_ROWS_TEXT"


def with_rows_text(rows: pl.DataFrame, group: tuple[str, ...]) -> pl.DataFrame:
    """Failing rows in source order, each with X_ROWS_TEXT naming every row of its group.

    `SZ003/101/.../vs.csv records 12, 13 after the header` (one file; `…/vs.xlsx rows 12, 13 below the header`:
    how a site finds them, core.source.rows_words), files joined by "; ": the finding of a duplicated key names all
    its rows, and a site monitor finds them without a list of per-row findings.
    """
    rows = rows.sort(*SOURCE_COLUMNS)
    per_file = (rows.group_by([*group, "SOURCE_KEY"], maintain_order=True)
                .agg(pl.col("SOURCE_ROW").cast(pl.String).str.join(", ").alias("_ROWS"), pl.len().alias("_N"))
                .with_columns(pl.format("{} {}", pl.col("SOURCE_KEY"),
                                        rows_words(pl.col("SOURCE_KEY"), pl.col("_ROWS"), pl.col("_N") > 1))
                              .alias("_FILE")))
    texts = per_file.group_by(list(group), maintain_order=True).agg(pl.col("_FILE").str.join("; ").alias(ROWS_TEXT))
    return rows.join(texts, on=list(group), how="left", nulls_equal=True, maintain_order="left")


def _concat(frames: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    if not frames:
        return empty_table(schema)
    return pl.concat([f.cast(schema) for f in frames], how="vertical")
