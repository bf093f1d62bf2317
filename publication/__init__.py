"""One audit at a time per study, and all-or-nothing publication of a night's reports, over the storage
interface only (no S3 error codes, no store types). See docs/operations.md.

- `publication.lease`: the study's lease (conditional writes, heartbeat, takeover of a dead or expired
  holder); `publication.conditional`: the start-up check that the endpoint honours conditional writes;
  `publication.unlock`: the operator's release.
- `publication.marker`: the completion marker, `is_complete` (a staging folder) and `is_published` (a night);
  `publication.nights`: the published nights of a study (`published_nights`), which every reader of earlier nights
  lists.
- `publication.promotion`: journaled promotion of a sealed staging prefix, and the recovery a run performs
  after a crashed one; `publication.staging`: a nightly run's publication from start to end.
"""

from publication.conditional import check_conditional_writes
from publication.layout import AUDIT_FOLDER, MARKER, final_prefix, journal_key, lease_key, staging_prefix
from publication.lease import (
    DEFAULT_LEASE_EXPIRY,
    AuditLockedError,
    Lease,
    LeaseLostError,
    LeaseRecord,
    acquire_lease,
    read_lease,
)
from publication.marker import Marker, StagingWriter, check_complete, is_complete, is_published, read_marker
from publication.nights import night_folders, published_nights
from publication.promotion import PublicationError, discard, promote, recover, sweep_staging
from publication.staging import NightlyPublication, nightly_publication
from publication.unlock import UnlockRefused, UnlockResult, unlock

__all__ = [
    "AUDIT_FOLDER",
    "DEFAULT_LEASE_EXPIRY",
    "MARKER",
    "AuditLockedError",
    "Lease",
    "LeaseLostError",
    "LeaseRecord",
    "Marker",
    "NightlyPublication",
    "PublicationError",
    "StagingWriter",
    "UnlockRefused",
    "UnlockResult",
    "acquire_lease",
    "check_complete",
    "check_conditional_writes",
    "discard",
    "final_prefix",
    "is_complete",
    "is_published",
    "journal_key",
    "lease_key",
    "night_folders",
    "nightly_publication",
    "promote",
    "published_nights",
    "read_lease",
    "read_marker",
    "recover",
    "staging_prefix",
    "sweep_staging",
    "unlock",
]
