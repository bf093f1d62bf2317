"""History across nights: NEW / OPEN / RESOLVED, FIRST_SEEN and DAYS_OPEN.

The previous run's published `discrepancies.parquet` is the memory: no database. A finding is the
same finding on another night when its stable key (STUDYID, SITEID, USUBJID, CHECK_ID, CLASS) is the
same; its FINDING_ID (checks.comparison.identity), made of the same parts but the site, is carried
beside it, so that a RESOLVED finding keeps its review thread. A finding present tonight is NEW when
the previous run did not have it open, else OPEN with the FIRST_SEEN the previous run recorded. A
finding open in the previous run and gone tonight is published once more as RESOLVED (RESOLVED_ON =
tonight's as-of date); the next run skips RESOLVED rows, so a resolved finding is not repeated
forever. A finding that comes back after being resolved is NEW again.

Validation findings carry FIRST_SEEN and DAYS_OPEN too (`validation_history`, by FINDING_ID), so
that the review backlog can age them like the discrepancies; the earlier findings that are gone tonight,
at the sites audited tonight on their own newest delivery, are handed over apart
(`ValidationHistory.resolved`), for the report and the digest to say which data problems the sites fixed."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from datetime import date
from itertools import islice
from typing import Any, NamedTuple

import polars as pl

from checks.comparison.identity import discrepancy_id
from contracts import DISCREPANCIES, check_table, is_open
from contracts.enums import DiscrepancyClass, FindingStatus, Severity
from contracts.tables import FINDING_ID, REVIEW
from ingestion.codes import is_note
from ingestion.unread import unread_files, used_deliveries
from publication import published_nights
from reporting.dv import is_deviation
from reporting.risk import older_delivery_notes
from reporting.tables import PUBLISHED_DISCREPANCIES, RESOLVED_VALIDATION
from review.runs import read_manifest
from storage import ObjectNotFound, Store
from storage.keys import join_key

_log = logging.getLogger(__name__)

KEY = ["STUDYID", "SITEID", "USUBJID", "CHECK_ID", "CLASS"]
#: the night whose audit found a finding as the row shows it, and why an open finding was carried from it
EVALUATED_ON, CARRIED = "EVALUATED_ON", "CARRIED"
_REVIEW_COLUMNS = (*REVIEW, "DV_REVIEW")
DISCREPANCIES_FILE = "discrepancies.parquet"


def earlier_runs(store: Store, *, study: str, as_of: date, limit: int | None = None) -> list[date]:
    """As-of dates of the published runs of `study` strictly before `as_of`, newest first (at most `limit`).

    Only folders named like a date with a valid completion marker count (publication.published_nights):
    a folder a crashed run left half-written, or one whose promotion has not been finished yet, is not a
    published night. Staging folders and the lease live elsewhere (`_audit/`).
    """
    return list(islice(published_nights(store, study, before=as_of), limit))


def _discrepancies_key(study: str, run: date) -> str:
    return join_key(study, run.isoformat(), DISCREPANCIES_FILE)


def previous_run(store: Store, *, study: str, as_of: date) -> tuple[date, str] | None:
    """The latest published run of `study` strictly before `as_of`: (date, key of its discrepancies).

    Folders without a valid completion marker are not runs (see `earlier_runs`).
    """
    for run in published_nights(store, study, before=as_of):
        key = _discrepancies_key(study, run)
        if store.head(key) is not None:
            return run, key
    return None


TREND_COLUMNS = {"AS_OF": pl.String, "IMPORTANT": pl.Int64, "QUERY": pl.Int64, "NEW": pl.Int64,
                 "RESOLVED": pl.Int64}


def finding_counts(discrepancies: pl.DataFrame, as_of: str) -> pl.DataFrame:
    """One trend row: findings present (by severity), new and resolved in one run's table."""
    if "STATUS" not in discrepancies.columns:
        discrepancies = discrepancies.with_columns(pl.lit(None, pl.String).alias("STATUS"))
    status, live = pl.col("STATUS").cast(pl.String), is_open()
    return discrepancies.with_columns(is_deviation(discrepancies).alias("_DEVIATION")).select(
        pl.lit(as_of).alias("AS_OF"),
        pl.col("_DEVIATION").sum().cast(pl.Int64).alias("IMPORTANT"),
        ((pl.col("SEVERITY") == Severity.QUERY) & live).sum().cast(pl.Int64).alias("QUERY"),
        (status == FindingStatus.NEW).sum().cast(pl.Int64).alias("NEW"),
        (status == FindingStatus.RESOLVED).sum().cast(pl.Int64).alias("RESOLVED"),
    )


def run_trend(store: Store, *, study: str, as_of: date, limit: int = 30) -> pl.DataFrame:
    """Finding counts of up to `limit` earlier runs (columns TREND_COLUMNS), oldest first."""
    rows = []
    for run in earlier_runs(store, study=study, as_of=as_of, limit=limit):
        key = _discrepancies_key(study, run)
        if store.head(key) is None:
            continue
        frame = _read_run(store, key)
        rows.append(finding_counts(frame, run.isoformat()))
    if not rows:
        return pl.DataFrame(schema=TREND_COLUMNS)
    return pl.concat(rows).sort("AS_OF")


class HistoryError(RuntimeError):
    """An earlier run's discrepancies cannot be read: FIRST_SEEN would be lost, so the run stops."""


def _read_run(store: Store, key: str) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(io.BytesIO(store.read_bytes(key)))
    except (pl.exceptions.PolarsError, OSError) as error:
        raise HistoryError(f"cannot read the earlier run's findings {key!r} in {store.uri}: "
                           f"{type(error).__name__}; repair or remove that run folder") from error
    missing = [column for column in KEY if column not in frame.columns]
    if missing:
        raise HistoryError(f"the earlier run's findings {key!r} in {store.uri} lack the key columns {missing}")
    return frame


def _days(since: pl.Expr, until: date) -> pl.Expr:
    return (pl.lit(until) - since.str.to_date("%Y-%m-%d", strict=False)).dt.total_days().cast(pl.Int64)


def _previous_open(store: Store, study: str, as_of: date) -> tuple[pl.DataFrame, str] | None:
    """The previous run's open findings and the key of its discrepancies table (None on a study's first night)."""
    found = previous_run(store, study=study, as_of=as_of)
    if found is None:
        return None
    run, key = found
    frame = _read_run(store, key)
    first = pl.col("FIRST_SEEN").cast(pl.String) if "FIRST_SEEN" in frame.columns else pl.lit(None, pl.String)
    # a table published before EVALUATED_ON existed was all evaluated on its own night
    evaluated = pl.col(EVALUATED_ON).cast(pl.String) if EVALUATED_ON in frame.columns else pl.lit(None, pl.String)
    return (
        frame.filter(is_open() if "STATUS" in frame.columns else pl.lit(True))
        .with_columns(first.fill_null(run.isoformat()).alias("FIRST_SEEN"),
                      evaluated.fill_null(run.isoformat()).alias(EVALUATED_ON))
        .sort([*KEY, "FIRST_SEEN"], nulls_last=True, maintain_order=True)
        .unique(KEY, keep="first", maintain_order=True)
    ), key


#: why a deviation whose check tonight's audit could not verify is carried (its UNVERIFIABLE finding says why)
NOT_VERIFIABLE = ("its check could not be verified tonight (see the subject's UNVERIFIABLE finding on it): the "
                  "earlier finding is not disproven")


def _unverifiable(tonight: pl.DataFrame) -> pl.DataFrame:
    """(USUBJID, CHECK_ID, _CRITERION) of tonight's UNVERIFIABLE findings: the components tonight's audit could not
    decide, for lack of data (a rejected file, a result excluded by validation)."""
    found = tonight.filter(pl.col("CLASS") == DiscrepancyClass.UNVERIFIABLE) if "CLASS" in tonight.columns \
        else tonight.clear()
    return found.select(pl.col("USUBJID").cast(pl.String), pl.col("CHECK_ID").cast(pl.String),
                        pl.col("CHECK_ID").cast(pl.String).str.split(".").list.first().alias("_CRITERION")).unique()


def _carried(gone: pl.DataFrame, evaluated: pl.DataFrame, looked_again: Iterable[str],
             partial: Mapping[str, str], unverifiable: pl.DataFrame) -> pl.DataFrame:
    """`gone` (earlier open findings that tonight's audit does not have) with CARRIED: why tonight's audit could not
    have found the finding, or null when it looked and the finding is gone.

    Not looked at, not resolved: a site audited tonight on less than its newest delivery (`partial`: its note; an
    older delivery, its newest rejected, or its newest without a rejected file), a site not audited tonight, a
    subject the audited site's data no longer let the audit evaluate (its
    DM record rejected, say) tell nothing about the finding. A user trial saw an ineligible enrolment leave DV as
    RESOLVED the night a duplicated DM row kept its subject out of the audit, and every finding of a site that
    missed a night resolve, then come back NEW; a review saw a PC01 deviation resolve on a fallback delivery's older
    consent date and come back NEW the next night. A subject evaluated tonight at another site (its records moved)
    was looked at: its finding at the old site is resolved, not carried beside the new one (one FINDING_ID). And an
    important finding whose check tonight's audit could not verify (`unverifiable`: the subject's component, or for
    a criterion's finding any of its components, is UNVERIFIABLE tonight) is not disproven: a review saw an
    ineligible enrolment leave DV the night its lab file was rejected, replaced by a query."""
    looked = sorted({str(site) for site in looked_again})
    pairs = evaluated.select(pl.col("SITEID").cast(pl.String), pl.col("USUBJID").cast(pl.String)).drop_nulls().unique()
    anywhere = pairs["USUBJID"].unique().implode()
    site, subject = pl.col("SITEID"), pl.col("USUBJID")
    here = pl.col("_HERE").fill_null(False)
    component = pl.struct(subject, pl.col("CHECK_ID")).is_in(unverifiable.select("USUBJID", "CHECK_ID")
                                                               .to_struct().implode())
    criterion = pl.struct(subject, pl.col("CHECK_ID").alias("_CRITERION")).is_in(
        unverifiable.select("USUBJID", "_CRITERION").to_struct().implode())
    not_verified = ((pl.col("SEVERITY") == Severity.IMPORTANT)
                    & pl.when(pl.col("CHECK_ID").str.contains(".", literal=True)).then(component).otherwise(criterion))
    moved = subject.is_in(anywhere) & ~here  # evaluated tonight at another site: its records moved
    why = (pl.when(site.is_in(list(partial)) & ~moved)
           .then(pl.format("site {} {}", site, site.replace_strict(dict(partial), default=None,
                                                                   return_dtype=pl.String)))
           .when(not_verified.fill_null(False))
           .then(pl.lit(NOT_VERIFIABLE))
           .when(moved | here)
           .then(pl.lit(None, pl.String))
           .when(~site.is_in(looked))
           .then(pl.format("site {} not audited tonight", site))
           .when(pl.col("USUBJID").is_not_null())
           .then(pl.lit("subject not evaluated tonight: not among the subjects of the site's audited data "
                        "(see the site's data-quality findings)"))
           .otherwise(pl.lit(None, pl.String)))
    return (gone.join(pairs.with_columns(pl.lit(True).alias("_HERE")), on=["SITEID", "USUBJID"], how="left",
                      maintain_order="left")
            .with_columns(why.alias(CARRIED)).drop("_HERE"))


def _previous_starts(store: Store, key: str) -> pl.DataFrame:
    """(FINDING_ID, _DV_START) from the dv table beside the previous night's discrepancies: a carried deviation's
    DVSTDTC, which tonight's subjects (without its subject) cannot give; empty when that night has none."""
    folder = key.rsplit("/", 1)[0]
    try:
        dv = pl.read_parquet(io.BytesIO(store.read_bytes(join_key(folder, "dv.parquet"))),
                             columns=[FINDING_ID, "DVSTDTC"])
    except (ObjectNotFound, pl.exceptions.PolarsError, OSError) as error:
        _log.warning("no DV start dates from %s (%s): a carried deviation's DVSTDTC is its own date only",
                     folder, type(error).__name__)
        return pl.DataFrame(schema={FINDING_ID: pl.String, "_DV_START": pl.String})
    return (dv.select(pl.col(FINDING_ID).cast(pl.String), pl.col("DVSTDTC").cast(pl.String).alias("_DV_START"))
            .drop_nulls(FINDING_ID).unique(FINDING_ID, keep="first"))


def apply_history(discrepancies: pl.DataFrame, store: Store, *, study: str, as_of: date,
                  evaluated: pl.DataFrame | None = None, looked_again: Iterable[str] | None = None,
                  partial: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Tonight's discrepancies with STATUS / FIRST_SEEN / DAYS_OPEN / RESOLVED_ON set from the
    latest earlier run in the reports `store`, plus RESOLVED rows for findings that are gone.

    `evaluated` (USUBJID of the subjects tonight's audit evaluated), `looked_again` (the sites audited on all of
    their own newest delivery) and `partial` (the sites audited on less, with their note: an older delivery,
    reporting.risk.older_delivery_notes, or without a rejected file, partly_read): an earlier open finding that
    tonight's audit could not have found is not resolved but carried (_carried), OPEN, with CARRIED saying why,
    EVALUATED_ON the night whose audit found it and, for a deviation without a date of its own, DTC its DV start
    date of that night; without `evaluated` every finding gone is resolved. At a `partial` site a finding present
    both nights is carried too, as the earlier night found it: tonight's audit saw less (a rejected lb.csv moved a
    PC01 deviation's DV start date to a VS record's and reopened the sponsor's CLOSE as "evidence changed", a user
    trial). Tonight's other findings have EVALUATED_ON tonight and CARRIED null."""
    check_table(discrepancies, DISCREPANCIES, "discrepancies")
    today = as_of.isoformat()
    current = discrepancies.drop([c for c in ("STATUS", "FIRST_SEEN", "DAYS_OPEN", "RESOLVED_ON")
                                  if c in discrepancies.columns])
    found = _previous_open(store, study, as_of)
    previous, previous_key = found if found is not None else (pl.DataFrame(schema={**PUBLISHED_DISCREPANCIES}), None)
    if partial and evaluated is not None:
        # at a site tonight's audit saw only part of, a finding the earlier night had is kept as that night found it
        # (taken out of tonight's, it is carried below with the site's note)
        known = previous.select([pl.col(k).cast(pl.String) for k in KEY])
        current = current.filter(~(pl.col("SITEID").is_in(list(partial))
                                   & pl.struct(*KEY).is_in(known.to_struct().implode())))
    keys = previous.select([pl.col(k).cast(pl.String) for k in KEY] + [pl.col("FIRST_SEEN").alias("_FIRST")])
    tonight = (
        current.join(keys, on=KEY, how="left", nulls_equal=True)
        .with_columns(
            pl.when(pl.col("_FIRST").is_null()).then(pl.lit(FindingStatus.NEW)).otherwise(pl.lit(FindingStatus.OPEN)).alias("STATUS"),
            pl.col("_FIRST").fill_null(today).alias("FIRST_SEEN"),
            pl.lit(None, pl.String).alias("RESOLVED_ON"),
            pl.lit(today).alias(EVALUATED_ON),
            pl.lit(None, pl.String).alias(CARRIED),
        )
        .with_columns(_days(pl.col("FIRST_SEEN"), as_of).alias("DAYS_OPEN"))
        .drop("_FIRST")
    )
    gone = previous.join(current.select([pl.col(k).cast(pl.String) for k in KEY]).unique(), on=KEY,
                         how="anti", nulls_equal=True)
    if evaluated is not None:
        gone = _carried(gone, evaluated, looked_again if looked_again is not None else evaluated["SITEID"],
                        partial or {}, _unverifiable(current))
    else:
        gone = gone.with_columns(pl.lit(None, pl.String).alias(CARRIED))
    carried = pl.col(CARRIED).is_not_null()
    if (previous_key is not None and gone[CARRIED].null_count() < gone.height
            and {FINDING_ID, "DTC"} <= set(gone.columns)):
        # the carried deviation keeps the DVSTDTC its night gave it (tonight has no subject to take it from)
        gone = (gone.join(_previous_starts(store, previous_key), on=FINDING_ID, how="left", maintain_order="left")
                .with_columns(pl.when(carried).then(pl.coalesce(pl.col("DTC").cast(pl.String), "_DV_START"))
                              .otherwise(pl.col("DTC")).alias("DTC")).drop("_DV_START"))
    gone = (
        gone.with_columns(
            pl.when(carried).then(pl.lit(FindingStatus.OPEN)).otherwise(pl.lit(FindingStatus.RESOLVED)).alias("STATUS"),
            pl.when(carried).then(pl.lit(None, pl.String)).otherwise(pl.lit(today)).alias("RESOLVED_ON"),
            pl.when(carried).then(pl.col(EVALUATED_ON)).otherwise(pl.lit(today)).alias(EVALUATED_ON),
            _days(pl.col("FIRST_SEEN"), as_of).alias("DAYS_OPEN"),
        )
    )
    # the review columns are tonight's to set (reporting.assemble), never carried from an earlier night
    gone = gone.select([c for c in gone.columns if (c in tonight.columns or c in PUBLISHED_DISCREPANCIES)
                        and c not in _REVIEW_COLUMNS])
    merged = pl.concat([tonight, gone], how="diagonal_relaxed")
    # a finding published before FINDING_ID existed (or a table built by hand) gets its id from its key,
    # so that a RESOLVED finding keeps its review thread
    merged = merged.with_columns(pl.coalesce(pl.col(FINDING_ID), discrepancy_id()).alias(FINDING_ID))
    columns = [c for c in PUBLISHED_DISCREPANCIES if c in merged.columns] + [
        c for c in merged.columns if c not in PUBLISHED_DISCREPANCIES]
    return merged.select(columns).sort(KEY, nulls_last=True, maintain_order=True)


VALIDATION_FILE = "validation.parquet"
#: what a data-quality finding resolved tonight is listed with (validation_history; the published table's columns)
RESOLVED_VALIDATION_COLUMNS = RESOLVED_VALIDATION


class ValidationHistory(NamedTuple):
    """Tonight's data-quality findings with their history, and the earlier ones gone tonight."""

    findings: pl.DataFrame
    #: the earlier findings that tonight's audit no longer finds, at the sites it looked at again (columns
    #: RESOLVED_VALIDATION_COLUMNS, one row per finding); listed once, on the night they go
    resolved: pl.DataFrame


#: how many earlier nights a site's data-quality memory is looked for in: a site looked at again tonight that was
#: not audited on its own newest delivery in the last month resolves nothing tonight (its findings' FIRST_SEEN is
#: carried from what those nights published)
MEMORY_NIGHTS = 31


def looked_at_again(sites_audited: Iterable[str], deliveries: Iterable[Mapping[str, Any]]) -> set[str]:
    """The sites audited on their own newest delivery (`deliveries` as run_manifest.json lists them: site,
    status, reason): a site audited on an older one after its newest was rejected (a USED delivery with a
    reason) was not looked at again, and what only the rejected delivery had is not known to be fixed."""
    return {site for site in sites_audited if isinstance(site, str)} - set(older_delivery_notes(deliveries))


def partly_read(findings: pl.DataFrame, deliveries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Per site audited on its own newest delivery without a file ingestion rejected as a whole (`findings`: tonight's
    ingestion findings; `deliveries` as run_manifest.json lists them), its note: "audited without its rejected
    file(s) lb.csv: what they hold was not read". Such a site was not looked at again in full: what only the
    rejected file would show (a PC06 creatinine clearance, a lab value's plausibility) is not resolved, and its
    findings keep the evidence of the night that read everything (a user trial: a rejected lb.csv resolved them,
    and they came back NEW the night after)."""
    rejected = (unread_files(findings, used_deliveries(deliveries, own_newest_only=True))
                .group_by("SITEID")
                .agg(pl.col("SOURCE").str.extract(r"([^/]+)$", 1).unique().sort().str.join(", ").alias("_FILES")))
    return {site: f"audited without its rejected file(s) {files}: what they hold was not read"
            for site, files in rejected.iter_rows()}


def _covered_by(manifest: object, table: pl.DataFrame | None) -> set[str] | None:
    """`looked_at_again` of a published night's manifest (one without `deliveries` had no fallback to say), less the
    sites its validation `table` shows audited without a rejected file (partly_read: a rejected lb.csv's night is no
    memory of the lab findings, which came back NEW the night after, a user trial); None when it does not say which
    sites it audited (a manifest of another shape, or none): such a night is taken as every site's memory, as before
    nights recorded it."""
    if not isinstance(manifest, Mapping):
        return None
    audited, deliveries = manifest.get("sites_audited"), manifest.get("deliveries", [])
    if not isinstance(audited, list) or not isinstance(deliveries, list) \
            or not all(isinstance(item, Mapping) for item in deliveries):
        return None
    partly = partly_read(table, deliveries) if table is not None and {"SITEID", "SOURCE"} <= set(table.columns) \
        else {}
    return looked_at_again(audited, deliveries) - set(partly)


def _night_findings(store: Store, study: str, run: date, sites: set[str] | None = None, *, strict: bool = True,
                    ) -> pl.DataFrame | None:
    """A published night's validation findings with an identity (SITEID, FINDING_ID text; FIRST_SEEN filled
    with the night's date where empty), of `sites` only when given (the columns a resolution lists, read with
    the filter pushed into the Parquet reader); None when the night has no such table, or, not `strict`, when
    it cannot be read (an older night: the sites it was read for keep an unknown memory, and the night goes on)."""
    key = join_key(study, run.isoformat(), VALIDATION_FILE)
    if store.head(key) is None:
        return None
    try:
        scan = pl.scan_parquet(io.BytesIO(store.read_bytes(key)))
        names = scan.collect_schema().names()
        if FINDING_ID not in names or "SITEID" not in names:
            return None
        if sites is not None:
            wanted = {*RESOLVED_VALIDATION_COLUMNS, "EXPECTATION"}
            scan = scan.select([name for name in names if name in wanted]).filter(
                pl.col("SITEID").cast(pl.String).is_in(sorted(sites)))
        seen = pl.col("FIRST_SEEN").cast(pl.String) if "FIRST_SEEN" in names else pl.lit(None, pl.String)
        return (scan.with_columns(pl.col("SITEID").cast(pl.String), pl.col(FINDING_ID).cast(pl.String),
                                  seen.fill_null(run.isoformat()).alias("FIRST_SEEN"))
                .filter(pl.col(FINDING_ID).is_not_null()).collect())
    except (pl.exceptions.PolarsError, OSError) as error:
        if not strict:
            _log.warning("the validation findings of the earlier night %s cannot be read (%s): the sites looked for "
                         "in it resolve nothing tonight", run, type(error).__name__)
            return None
        raise HistoryError(f"cannot read the earlier run's validation findings {key!r} in {store.uri}: "
                           f"{type(error).__name__}; repair or remove that run folder") from error


class _Memory(NamedTuple):
    findings: pl.DataFrame  # earlier findings (FINDING_ID, SITEID, FIRST_SEEN, the published columns)
    complete: set[str]  # the sites whose findings since they were last looked at again are all in `findings`


def _memory(store: Store, study: str, as_of: date, looked_again: set[str]) -> _Memory:
    """What earlier nights published: the latest night with a validation table, for every site (FIRST_SEEN, as
    before), and for each site looked at again tonight every finding published since, and including, the latest
    night that looked at it again (`looked_at_again`): a site not audited last night is remembered from the
    night it was, with what it was told in between (its rejected deliveries). A site's memory is complete when
    every night of that walk had its table, or, for a site never looked at again, every night of the study was
    read; a site not looked at again tonight is not followed further back (a site that never delivered would have
    had every night read, a trial measured a seventh of publication)."""
    collecting, complete, unknown, parts = set(looked_again), set(), set(), []
    base = False
    every_night = published_nights(store, study, before=as_of)
    for run in islice(every_night, MEMORY_NIGHTS):
        if base and not collecting:
            break
        table = _night_findings(store, study, run, None if not base else collecting, strict=not base)
        if table is not None:
            parts.append(table)
            base = True
        else:
            unknown |= collecting
        covered = _covered_by(read_manifest(store, study, run), table)
        here = collecting if covered is None else collecting & covered
        complete |= here - unknown
        collecting -= here
    else:
        if next(every_night, None) is None:
            # every night of the study was read: a site never looked at again before (audited on an older delivery,
            # or rejected, since its first night) is remembered from the study's first night, which is all it was
            # ever told (a user trial: a site rejected on the first night had its rejection vanish, unlisted, the
            # night its corrected delivery was audited)
            complete |= collecting - unknown
    findings = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame(
        schema={FINDING_ID: pl.String, "SITEID": pl.String, "FIRST_SEEN": pl.String})
    return _Memory(findings, complete)


def _resolved_validation(memory: _Memory, current: pl.DataFrame, looked_again: set[str], as_of: date,
                         ) -> pl.DataFrame:
    """The remembered findings that `current` does not have, at a site looked at again tonight whose memory is
    complete: a site not audited tonight, or audited on an older delivery, keeps its problems unknown, not
    resolved. Notes (a manifest setting ignored) were never problems. Once per finding, with its earliest
    FIRST_SEEN."""
    previous = memory.findings
    expectation = pl.col("EXPECTATION") if "EXPECTATION" in previous.columns else pl.lit(None, pl.String)
    # ingestion's findings (a rejected delivery, a fallback) have no CHECK: their expectation names the problem, so
    # that two of them are not one row with a blank check (helper-34)
    check = pl.col("CHECK") if "CHECK" in previous.columns else pl.lit(None, pl.String)
    previous = previous.with_columns(pl.coalesce(check.cast(pl.String), expectation.cast(pl.String)).alias("CHECK"))
    columns = [name for name in RESOLVED_VALIDATION_COLUMNS if name in previous.columns]
    sites = sorted(looked_again & memory.complete)
    gone = (previous
            .filter(pl.col("SITEID").is_in(sites)
                    & ~is_note(previous)
                    & ~pl.col(FINDING_ID).is_in(current[FINDING_ID].drop_nulls().implode()))
            .select(*columns, pl.lit(as_of.isoformat()).alias("RESOLVED_ON"))
            .sort("FIRST_SEEN", nulls_last=True, maintain_order=True)
            .unique(FINDING_ID, keep="first", maintain_order=True))
    missing = [pl.lit(None, dtype).alias(name) for name, dtype in RESOLVED_VALIDATION_COLUMNS.items()
               if name not in gone.columns]
    return (gone.with_columns(missing).select([pl.col(name).cast(dtype)
                                               for name, dtype in RESOLVED_VALIDATION_COLUMNS.items()])
            .sort(["SITEID", "CHECK", "USUBJID", FINDING_ID], nulls_last=True))


def validation_history(validation: pl.DataFrame, store: Store, *, study: str, as_of: date,
                       looked_again: Iterable[str]) -> ValidationHistory:
    """Tonight's validation findings with FIRST_SEEN (the as-of date of the first night that reported the
    finding, carried by FINDING_ID) and DAYS_OPEN, and the earlier findings gone tonight at the sites of
    `looked_again` (audited tonight on their own newest delivery: `looked_at_again`).

    Validation findings have no RESOLVED rows of their own (the `validation` table lists failed expectations,
    as the specification says): the ones gone are handed over apart, for the report to say what the sites
    fixed. Each site is compared with what the audit told it since it was last looked at again (`_memory`),
    not only with last night's table, on which a site not audited that night has nothing: its fixes would
    never be listed, and what it still has would start again as new. A previous table without FINDING_ID
    (published before findings had one) carries and resolves nothing.
    """
    today = as_of.isoformat()
    looked_again = set(looked_again)
    current = validation.drop([c for c in ("FIRST_SEEN", "DAYS_OPEN") if c in validation.columns])
    if FINDING_ID not in current.columns:
        current = current.with_columns(pl.lit(None, pl.String).alias(FINDING_ID))
    memory = _memory(store, study, as_of, looked_again)
    first = (memory.findings.select(pl.col(FINDING_ID), pl.col("FIRST_SEEN").alias("_FIRST"))
             .sort("_FIRST", nulls_last=True).unique(FINDING_ID, keep="first"))
    findings = (current.join(first, on=FINDING_ID, how="left", maintain_order="left")
                .with_columns(pl.col("_FIRST").fill_null(today).alias("FIRST_SEEN"))
                .with_columns(_days(pl.col("FIRST_SEEN"), as_of).alias("DAYS_OPEN"))
                .drop("_FIRST"))
    return ValidationHistory(findings, _resolved_validation(memory, current, looked_again, as_of))

