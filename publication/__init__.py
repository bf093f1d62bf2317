"""One audit at a time per study, and all-or-nothing publication of a night's reports, over the storage
interface only (no S3 error codes, no store types): the lock (`publication.lock`) and the staging
prefix each run writes into before it is promoted (`publication.staging`). See docs/operations.md."""

from publication.lock import (
    AUDIT_FOLDER,
    DEFAULT_LOCK_MAX_AGE,
    AuditLockedError,
    LockInfo,
    acquire_lock,
    audit_lock,
    lock_key,
    release_lock,
)
from publication.staging import (
    COMMIT_MARKER,
    NightlyPublication,
    PublicationError,
    discard,
    final_prefix,
    locked_publication,
    promote,
    staging_prefix,
    sweep_staging,
)

__all__ = [
    "AUDIT_FOLDER",
    "COMMIT_MARKER",
    "DEFAULT_LOCK_MAX_AGE",
    "AuditLockedError",
    "LockInfo",
    "NightlyPublication",
    "PublicationError",
    "acquire_lock",
    "audit_lock",
    "discard",
    "final_prefix",
    "lock_key",
    "locked_publication",
    "promote",
    "release_lock",
    "staging_prefix",
    "sweep_staging",
]
