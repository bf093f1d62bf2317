"""A nightly run's publication from start to end: check the endpoint, take the lease, recover what
earlier runs left, give the run its staging prefix, promote it, clean up and release.

    <STUDYID>/<AS_OF>/...                              the published reports (docs/outputs.md)
    _audit/<STUDYID>/staging/<AS_OF>/<RUN_ID>/...       where a run writes before promotion

Why staging: the outputs of a run are written where no reader looks, sealed with their completion
marker, and only then promoted (publication.promotion). A run that fails or is killed before
promotion leaves the published folder exactly as it was; its staging is removed by itself (failure)
or by the next run (kill), which lists it in its run manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

from contracts.records import RunRecovery
from publication.conditional import check_conditional_writes
from publication.layout import final_prefix, staging_prefix
from publication.lease import DEFAULT_LEASE_EXPIRY, Lease, acquire_lease
from publication.marker import StagingWriter
from publication.promotion import discard, journaled_staging, promote, recover
from storage import Store

_log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter


@dataclass
class NightlyPublication:
    """Where one run publishes: it writes under `staging` (through `writer()`), then `promote()`s to `final`."""

    store: Store
    study: str
    as_of: date
    lease: Lease
    staging: str
    final: str
    recovery: RunRecovery
    logger: Logger = field(default=_log, repr=False)
    promoted: bool = False

    @property
    def run_id(self) -> str:
        return self.lease.record.run_id

    def writer(self, store: Store | None = None) -> StagingWriter:
        """A store that records what is written into this run's staging (give it to `reporting.publish`)."""
        return StagingWriter(store or self.store, self.staging)

    def promote(self, store: Store | None = None) -> list[str]:
        """Promote the sealed staging, as long as the lease is still ours; the published keys."""
        self.lease.confirm()
        keys = promote(store or self.store, self.staging, self.final, study=self.study,
                       guard=self.lease.ensure_held, confirm=self.lease.confirm, logger=self.logger)
        self.promoted = True
        return keys


@contextmanager
def nightly_publication(store: Store, study: str, as_of: date, *, run_id: str,
                        expiry: timedelta = DEFAULT_LEASE_EXPIRY,
                        logger: Logger | None = None) -> Iterator[NightlyPublication]:
    """The whole nightly run inside this block, holding the study's lease.

    On entry: check that the endpoint honours conditional writes (`ConditionalWritesUnsupported`
    otherwise), take the lease (`AuditLockedError` when a live run holds it), keep it renewed, finish
    a promotion a killed run left and remove dead runs' staging (`publication.recovery`). On exit:
    remove this run's staging if it was not promoted, then release the lease. A failure inside the block
    therefore leaves the published folder as it was.
    """
    log = logger or _log
    check_conditional_writes(store, study)
    lease = acquire_lease(store, study, run_id=run_id, expiry=expiry, logger=log)
    try:
        with lease.heartbeat():
            recovery = recover(store, study, guard=lease.ensure_held, lease_taken_over=lease.took_over, logger=log)
            publication = NightlyPublication(store, study, as_of, lease, staging_prefix(study, as_of, run_id),
                                             final_prefix(study, as_of), recovery, log)
            try:
                yield publication
            finally:
                _discard_unpromoted(publication, log)
    finally:
        try:
            lease.release()
        except Exception as error:  # never mask the run's own outcome; the lease expires by itself
            log.error("could not release the audit lease of %s: %s", study, type(error).__name__)


def _discard_unpromoted(publication: NightlyPublication, log: Logger) -> None:
    """Remove a run's staging unless it was promoted, or its promotion began (the journal names it: the
    next run completes that promotion from this staging, so it must stay)."""
    if publication.promoted:
        return
    try:
        if journaled_staging(publication.store, publication.study) == publication.staging:
            log.error("the promotion of %s was interrupted; the next run of %s completes it from %s",
                      publication.final, publication.study, publication.staging)
            return
        left = discard(publication.store, publication.staging)
    except Exception as error:  # the next run removes it
        log.error("could not remove staging %s: %s", publication.staging, type(error).__name__)
    else:
        if left:
            log.warning("run did not complete: removed %d staged objects; the published reports are unchanged",
                        left)
