"""Per-subject reference dates (DTS section 4): consent, treatment start, screening window, decision.

Every window-based rule is anchored on the treatment start, so it is computed once here for all
subjects: RFXSTDTC when the subject was dosed; else the date of the ENROLLED / SCREEN FAILURE
disposition; else (still in screening) the audit's as-of date. A dosing date that is partial,
invalid or excluded by validation leaves the treatment start unknown rather than falling back to
another date: the subject was dosed, only not on a date we can use.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from checks.evaluation.exclusions import excluded_messages
from contracts.enums import SiteDecision
from core.dates import partial_date
from core.source import SOURCE_COLUMNS, SOURCE_SCHEMA, source_order, source_text, typed_source
from core.values import coded_value, column_text
from core.versions import span_label, version_span

if TYPE_CHECKING:
    from contracts.protocol import Protocol

_DECISIONS = [SiteDecision.ENROLLED.value, SiteDecision.SCREEN_FAILURE.value]

#: columns of the published `reference` table (TIVERS: the protocol version the subject is judged by, or
#: `1.0 or 2.0` when its consent date cannot tell: core.versions)
REFERENCE_COLUMNS = ["STUDYID", "SITEID", "USUBJID", "SITE_DECISION", "CONSENT_DTC", "TREATMENT_START", "TIVERS"]


def _dm(dm: pl.DataFrame, exclusions: pl.DataFrame) -> pl.DataFrame:
    columns = ["STUDYID", "USUBJID", "SEX", "BRTHDTC", "RFICDTC", "RFXSTDTC", "AGE"]
    frame = dm.select(
        *[column_text(dm, c) for c in columns],
        # the site of the delivery path; DM.SITEID only when a caller has no delivery column at all
        pl.coalesce([column_text(dm, "DELIVERY_SITEID"), column_text(dm, "SITEID")]).alias("SITEID"),
        *typed_source(dm),
    ).filter(pl.col("USUBJID").is_not_null())
    frame = excluded_messages(frame, exclusions, "DM", {"SEX": "SEX", "BRTHDTC": "BRTHDTC", "RFICDTC": "RFICDTC",
                                                       "RFXSTDTC": "RFXSTDTC", "AGE": "AGE"})
    return (
        frame.sort("USUBJID", *source_order())
        .unique(subset="USUBJID", keep="first", maintain_order=True)
        .with_columns(source_text().alias("SOURCE"))
        .drop(SOURCE_COLUMNS)
    )


def _decisions(ds: pl.DataFrame | None, exclusions: pl.DataFrame) -> pl.DataFrame:
    """USUBJID -> SITE_DECISION and its date: the latest ENROLLED / SCREEN FAILURE record (ENROLLED on a tie).

    A record whose DSDECOD validation excluded is not read; an excluded DSSTDTC is an unknown date.
    """
    schema = {"USUBJID": pl.String, "SITE_DECISION": pl.String, "DS_DATE": pl.Date}
    if ds is None or ds.height == 0 or not {"USUBJID", "DSDECOD"} <= set(ds.columns):
        return pl.DataFrame(schema=schema)
    rows = ds.select(
        column_text(ds, "USUBJID"), coded_value(pl.col("DSDECOD")).alias("SITE_DECISION"),
        partial_date(column_text(ds, "DSSTDTC")).alias("_D"), *typed_source(ds),
    )
    rows = excluded_messages(rows, exclusions, "DS", {"DSDECOD": "DSDECOD", "DSSTDTC": "DSSTDTC"})
    rows = rows.filter(pl.col("SITE_DECISION").is_in(_DECISIONS) & pl.col("_X_DSDECOD").is_null())
    return (
        rows.with_columns(
            pl.when((pl.col("_D").struct.field("earliest") == pl.col("_D").struct.field("latest"))
                    & pl.col("_X_DSSTDTC").is_null())
            .then(pl.col("_D").struct.field("earliest")).alias("DS_DATE"),
            pl.col("_D").struct.field("latest").alias("_LATEST"),
            (pl.col("SITE_DECISION") == SiteDecision.ENROLLED.value).alias("_ENR"),
        )
        .sort("USUBJID", "_LATEST", "_ENR", *source_order(), nulls_last=False)
        .unique(subset="USUBJID", keep="last", maintain_order=True)
        .select(list(schema))
    )


def subject_reference(domains: dict[str, pl.DataFrame], protocol: Protocol, as_of: date,
                      exclusions: pl.DataFrame) -> pl.DataFrame:
    """One row per DM subject with the published reference columns and the typed dates rules need.

    Internal columns: TRT_DATE, WINDOW_START (Date, with `protocol`'s screening window), CONSENT_LO/HI,
    BIRTH_LO/HI, DOSE_LO/HI, BIRTH_INVALID, CONSENT_INVALID, SEX (coded), AGE (text), DM_SOURCE, the
    exclusion messages `_X_<variable>`, and `_V_FIRST` / `_V_LAST`: the protocol versions the consent
    date allows (indexes into `protocol.editions()`).
    """
    dm = domains.get("dm")
    if dm is None or "USUBJID" not in dm.columns:
        dm = pl.DataFrame(schema={"STUDYID": pl.String, "USUBJID": pl.String, **SOURCE_SCHEMA})
    subjects = _dm(dm, exclusions).join(_decisions(domains.get("ds"), exclusions), on="USUBJID", how="left")
    window = int(protocol.parameters["screening_window_days"])
    # each date parsed once into a column, then its fields read (an expression repeated in an eager
    # with_columns would be evaluated again each time)
    subjects = subjects.with_columns(partial_date(pl.col("RFXSTDTC")).alias("_DOSED"),
                                     partial_date(pl.col("RFICDTC")).alias("_CONSENT"),
                                     partial_date(pl.col("BRTHDTC")).alias("_BIRTH"))
    dosed, consent, birth = pl.col("_DOSED"), pl.col("_CONSENT"), pl.col("_BIRTH")
    decision = pl.col("SITE_DECISION").fill_null(SiteDecision.IN_SCREENING.value)
    dose_day = pl.when(dosed.struct.field("earliest") == dosed.struct.field("latest")).then(
        dosed.struct.field("earliest"))
    treatment = (
        pl.when(pl.col("RFXSTDTC").is_not_null())
        .then(pl.when(pl.col("_X_RFXSTDTC").is_null()).then(dose_day))
        .when(decision.is_in(_DECISIONS)).then(pl.col("DS_DATE"))
        .otherwise(pl.lit(as_of))
    )
    consent_ok = pl.col("_X_RFICDTC").is_null()
    birth_ok = pl.col("_X_BRTHDTC").is_null()
    dose_ok = pl.col("_X_RFXSTDTC").is_null()
    frame = subjects.with_columns(
        decision.alias("SITE_DECISION"),
        treatment.alias("TRT_DATE"),
        pl.when(consent_ok).then(consent.struct.field("earliest")).alias("CONSENT_LO"),
        pl.when(consent_ok).then(consent.struct.field("latest")).alias("CONSENT_HI"),
        consent.struct.field("invalid").alias("CONSENT_INVALID"),
        pl.when(birth_ok).then(birth.struct.field("earliest")).alias("BIRTH_LO"),
        pl.when(birth_ok).then(birth.struct.field("latest")).alias("BIRTH_HI"),
        birth.struct.field("invalid").alias("BIRTH_INVALID"),
        pl.when(dose_ok).then(dosed.struct.field("earliest")).alias("DOSE_LO"),
        pl.when(dose_ok).then(dosed.struct.field("latest")).alias("DOSE_HI"),
        pl.when(pl.col("_X_SEX").is_null()).then(coded_value(pl.col("SEX"))).alias("SEX"),  # excluded: unknown
        pl.col("SOURCE").alias("DM_SOURCE"),
    )
    versions = [edition.version for edition in protocol.editions()]
    first, last = version_span(pl.col("CONSENT_LO"), pl.col("CONSENT_HI"), versions)
    frame = frame.with_columns(
        (pl.col("TRT_DATE") - pl.duration(days=window)).alias("WINDOW_START"),
        pl.col("TRT_DATE").dt.to_string("%Y-%m-%d").alias("TREATMENT_START"),
        pl.col("RFICDTC").alias("CONSENT_DTC"),
        first.alias("_V_FIRST"), last.alias("_V_LAST"),
    ).with_columns(span_label(pl.col("_V_FIRST"), pl.col("_V_LAST"), versions).alias("TIVERS"))
    return frame.drop("SOURCE", "BRTHDTC", "_DOSED", "_CONSENT", "_BIRTH").sort("USUBJID")


#: columns of `subject_dm` (contracts.records.EligibilityResult.subject_dm)
SUBJECT_DM_COLUMNS = ["USUBJID", "RFICDTC", "RFXSTDTC", "AGE", "CONSENT_LO", "CONSENT_HI", "BIRTH_LO", "BIRTH_HI",
                      "DOSE_LO", "DOSE_HI", "SOURCE"]


def subject_dm(reference: pl.DataFrame) -> pl.DataFrame:
    """DM as the evaluation read it, one row per subject, for the comparison's process checks: the
    first DM row in delivery order, each value validation excluded blanked (its dates' bounds null),
    so that a process check never reads a DM row or value the eligibility did not."""
    def unless_excluded(column: str) -> pl.Expr:
        return pl.when(pl.col(f"_X_{column}").is_null()).then(pl.col(column)).alias(column)

    return reference.select("USUBJID", unless_excluded("RFICDTC"), unless_excluded("RFXSTDTC"),
                            unless_excluded("AGE"), *SUBJECT_DM_COLUMNS[4:-1],
                            pl.col("DM_SOURCE").alias("SOURCE"))  # the DM record: a process check's query names it
