"""Closed vocabularies of ingestion: finding codes, delivery statuses, row-rejection reasons.

Every problem ingestion reports carries one of these stable codes in the `EXPECTATION` column of
the findings table, so that reports, queries to sites and tests can rely on them while the readable
sentence in `MESSAGE` is free to improve.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl


class DeliveryStatus(StrEnum):
    """What ingestion did with one delivery folder (`contracts.DeliveryDecision.status`)."""

    USED = "USED"
    SUPERSEDED = "SUPERSEDED"
    INCOMPLETE = "INCOMPLETE"
    REJECTED = "REJECTED"
    #: stamped after the end of the audit's as-of date: a later night audits it, a re-run of this
    #: night must not (the same night gives the same tables whenever it is re-run)
    AFTER_AS_OF = "AFTER_AS_OF"


class Code(StrEnum):
    """Finding codes (`EXPECTATION`) of the ingestion stage."""

    # a whole site
    SITE_NOT_AUDITED = "ingest.site_not_audited"
    SITE_UNLISTABLE = "ingest.site_unlistable"
    # a delivery folder
    DELIVERY_BAD_NAME = "ingest.delivery_ignored.bad_name"
    DELIVERY_INCOMPLETE = "ingest.delivery_incomplete"
    # an unfinished folder older than the delivery audited: nothing of it is missing, it only wants removing
    DELIVERY_ABANDONED = "ingest.delivery_incomplete.superseded"
    DELIVERY_FALLBACK = "ingest.delivery_fallback"
    MANIFEST_UNPARSEABLE = "ingest.delivery_rejected.manifest_unparseable"
    MANIFEST_INVALID = "ingest.delivery_rejected.manifest_invalid"
    MANIFEST_MISMATCH = "ingest.delivery_rejected.manifest_mismatch"
    MISSING_FILE = "ingest.delivery_rejected.missing_file"
    CHECKSUM = "ingest.delivery_rejected.checksum"
    ROW_COUNT = "ingest.delivery_rejected.row_count"
    # objects that are not part of a delivery's manifest
    OBJECT_IGNORED = "ingest.object_ignored"
    # one file of a delivery (the rest of the delivery is used): codes beginning FILE_REJECTED_PREFIX
    FILE_EMPTY = "ingest.file_rejected.empty"
    FILE_UNREADABLE = "ingest.file_rejected.unreadable"
    FILE_UNDECODABLE = "ingest.file_rejected.undecodable"
    FILE_ENCODING_MISMATCH = "ingest.file_rejected.encoding_mismatch"
    FILE_MISSING_COLUMN = "ingest.file_rejected.missing_column"
    FILE_DUPLICATE_COLUMN = "ingest.file_rejected.duplicate_column"
    FILE_UNNAMED_COLUMN = "ingest.file_rejected.unnamed_column"
    FILE_RESERVED_COLUMN = "ingest.file_rejected.reserved_column"
    FILE_UNSUPPORTED_TYPE = "ingest.file_rejected.unsupported_column_type"
    FILE_UNKNOWN_DOMAIN = "ingest.file_rejected.unknown_domain"
    FILE_UNKNOWN_FORMAT = "ingest.file_rejected.unknown_format"
    FILE_DUPLICATE_DOMAIN = "ingest.file_rejected.duplicate_domain"
    # a setting of manifest.json that means nothing for its file and was ignored (the delivery is used)
    ENCODING_IGNORED = "ingest.note.encoding_ignored"
    # one value of a row (the row is used, the value is missing)
    VALUE_EXCEL_ERROR = "ingest.value_missing.excel_error"
    # one row of a file (the rest of the file is used)
    ROW_RAGGED = "ingest.row_rejected.field_count"
    ROW_OTHER_STUDY = "ingest.row_rejected.other_study"
    ROW_FIELD_TOO_LONG = "ingest.row_rejected.field_too_long"

    @property
    def reason(self) -> str:
        """Short reason key for `InputObject.rejected_reasons` (the code without its prefix)."""
        return self.value.rsplit(".", 1)[-1]


#: prefix of the codes that are notes, not problems: kept in `validation`, never sent to a site as a query
NOTE_PREFIX = "ingest.note."


def is_note(findings: pl.DataFrame) -> pl.Expr:
    """Per row of `findings` (a validation table): whether it is a note (NOTE_PREFIX: a manifest setting that was
    ignored); False on every row of a table without EXPECTATION."""
    if "EXPECTATION" not in findings.columns:
        return pl.lit(False)
    return pl.col("EXPECTATION").cast(pl.String).str.starts_with(NOTE_PREFIX).fill_null(False)


def without_notes(findings: pl.DataFrame) -> pl.DataFrame:
    """`findings` (a validation table) without its notes.

    A note is kept for the record and asks nothing of anyone: it is no data finding to count, rate or review
    (a user trial saw an `encoding` given for an xlsx raise its site's data-error rate and wait in the review
    backlog as UNREVIEWED)."""
    return findings.filter(~is_note(findings)) if "EXPECTATION" in findings.columns else findings


#: what every code of a file rejected as a whole (the rest of its delivery used) begins with
FILE_REJECTED_PREFIX = "ingest.file_rejected."
#: the `InputObject.rejected_reasons` keys of a file rejected as a whole: none of its rows was audited
FILE_REJECTED_REASONS = frozenset(code.reason for code in Code if code.value.startswith(FILE_REJECTED_PREFIX))
#: reason recorded for the rows of every file of a delivery that was rejected as a whole
DELIVERY_REJECTED_REASON = "delivery_rejected"
