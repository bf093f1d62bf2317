"""Column contracts of the tables between stages and in the published outputs.

Each contract is an ordered mapping of column name to polars dtype. A stage may add columns after
the contracted ones (they are kept), but never drop, rename or retype a contracted one.
"""

from __future__ import annotations

import polars as pl

Schema = dict[str, type[pl.DataType] | pl.DataType]

_STR = pl.String

#: Data-quality findings (published as `validation`). Ingestion findings (file rejected, delivery
#: rejected, ...) use the same table with DOMAIN/VARIABLE as far as they are known and EXPECTATION
#: naming the rule (`ingest.file_rejected.missing_column`, `expect_column_values_to_be_in_set`, ...).
FINDINGS: Schema = {
    "STUDYID": _STR,
    "SITEID": _STR,
    "USUBJID": _STR,
    "DOMAIN": _STR,
    "VARIABLE": _STR,
    "EXPECTATION": _STR,
    "OBSERVED": _STR,
    "MESSAGE": _STR,
    "SOURCE": _STR,
}

#: Values that validation judged unusable for eligibility (e.g. a haemoglobin of 250 g/dL). The
#: evaluation never uses the value of such a row's VARIABLE; a component left without a usable
#: value is UNVERIFIABLE with MESSAGE as its reason. Joined on the row's typed source (core.source:
#: object key and data row number).
EXCLUSIONS: Schema = {
    "SOURCE_KEY": _STR,
    "SOURCE_ROW": pl.Int64,
    "DOMAIN": _STR,
    "VARIABLE": _STR,
    "MESSAGE": _STR,
}

#: One row per subject x criterion component.
ELIGIBILITY: Schema = {
    "STUDYID": _STR,
    "SITEID": _STR,
    "USUBJID": _STR,
    "CRITERION_ID": _STR,
    "CHECK_ID": _STR,
    "OUTCOME": _STR,
    "VALUE": _STR,
    "UNIT": _STR,
    "LIMIT": _STR,
    "DTC": _STR,
    "REASON": _STR,
    "SOURCE": _STR,
    "TIVERS": _STR,  # the protocol version the subject is judged by (`1.0 or 2.0`: its consent cannot tell)
}

#: DM as the evaluation read it, for the comparison (EligibilityResult.subject_dm).
SUBJECT_DM: Schema = {
    "USUBJID": _STR, "RFICDTC": _STR, "RFXSTDTC": _STR, "AGE": _STR,
    "CONSENT_LO": pl.Date, "CONSENT_HI": pl.Date, "BIRTH_LO": pl.Date, "BIRTH_HI": pl.Date,
    "DOSE_LO": pl.Date, "DOSE_HI": pl.Date,
    "SOURCE": _STR,  # the DM record (`<key>:<row>`), which the checks of its dates and age name
}

#: The derived values a protocol compares, per subject (EligibilityResult.derived).
DERIVED_VALUES: Schema = {"USUBJID": _STR, "NAME": _STR, "LO": pl.Float64, "HI": pl.Float64, "DTC": _STR}

#: One row per screened subject (a DM row).
SUBJECTS: Schema = {
    "STUDYID": _STR,
    "SITEID": _STR,
    "USUBJID": _STR,
    "SITE_DECISION": _STR,
    "RECOMPUTED": _STR,
    "TREATMENT_START": _STR,
    "N_DISCREPANCIES": pl.Int64,
    "TIVERS": _STR,  # the protocol version in force at the subject's consent (docs/criteria.md, "Versions")
}

#: One row per finding of the comparison. STATUS / FIRST_SEEN / DAYS_OPEN are filled by the
#: reporting stage from the history of earlier runs (compare leaves them null). FINDING_ID and
#: EVIDENCE_HASH are the finding's identity across nights and the fingerprint of its facts
#: (checks.comparison.identity; docs/review.md).
DISCREPANCIES: Schema = {
    "STUDYID": _STR,
    "SITEID": _STR,
    "USUBJID": _STR,
    "CHECK_ID": _STR,
    "CLASS": _STR,
    "SEVERITY": _STR,
    "SITE_ASSESSMENT": _STR,
    "RECOMPUTED": _STR,
    "EVIDENCE": _STR,
    "STATUS": _STR,
    "FIRST_SEEN": _STR,
    "DAYS_OPEN": pl.Int64,
    # a process check's own date and records (PC01: the earliest procedure before consent, and every record dated
    # before it): DV's DVSTDTC and the query's record. Empty for a component's findings, whose value, date and
    # record are its eligibility row's.
    "DTC": _STR,
    "SOURCE": _STR,
    "FINDING_ID": _STR,
    "EVIDENCE_HASH": _STR,
}


#: A finding's identity across nights and the fingerprint of the facts it rests on (docs/review.md). The
#: comparison adds them to every discrepancy, validation and ingestion to every finding; published
#: discrepancies and validation findings carry them after their contracted columns.
FINDING_ID = "FINDING_ID"
EVIDENCE_HASH = "EVIDENCE_HASH"
IDENTITY: Schema = {FINDING_ID: _STR, EVIDENCE_HASH: _STR}

#: Where a finding stands in the sponsor's review (the fold of the review ledger, docs/review.md):
#: the state, who acted last and when (UTC, ISO 8601), and the latest text of its thread.
REVIEW: Schema = {
    "REVIEW_STATE": _STR,
    "REVIEWED_BY": _STR,
    "REVIEWED_AT": _STR,
    "LAST_TEXT": _STR,
}


def is_open(status: str = "STATUS") -> pl.Expr:
    """A finding present tonight: NEW or OPEN. A null STATUS (a table before the history was applied)
    counts as present; only RESOLVED rows, published once when a finding is gone, are not."""
    column = pl.col(status).cast(pl.String)
    return column.is_null() | (column != "RESOLVED")


class ContractError(ValueError):
    """A table handed between stages does not have its contracted columns and types."""


def check_table(frame: pl.DataFrame, schema: Schema, name: str) -> pl.DataFrame:
    """Return `frame` when it carries every contracted column with its dtype, else raise."""
    missing = [column for column in schema if column not in frame.columns]
    wrong = [
        f"{column} is {frame.schema[column]}, expected {dtype}"
        for column, dtype in schema.items()
        if column in frame.columns and frame.schema[column] != dtype
        and frame.schema[column] != pl.Null
    ]
    if missing or wrong:
        raise ContractError(f"table {name!r} breaks its contract: missing {missing}; {wrong}")
    return frame


def empty_table(schema: Schema) -> pl.DataFrame:
    """An empty frame with the contracted columns, for a stage that found nothing."""
    return pl.DataFrame(schema=schema)
