"""Object storage behind one small interface: an S3 prefix or a local folder, used the same way.

Ingestion reads site deliveries through it and publication writes reports through it, so the
rules that matter for a nightly audit live in one place: keys from storage are never trusted as
local paths (`safe_key`), S3 listings are paginated, reads stream, writes are encrypted at rest,
and boto3 retries transient errors with its standard mode.
"""

from storage.errors import (
    AccessDenied,
    BucketNotFound,
    ConditionalWritesUnsupported,
    NoCredentials,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    StorageUnavailable,
    is_credentials_error,
    is_storage_error,
    is_transient,
    short_reason,
)
from storage.keys import UnsafeKeyError, join_key, safe_key
from storage.store import LocalStore, ObjectInfo, S3Store, Store, open_store

__all__ = [
    "AccessDenied",
    "BucketNotFound",
    "ConditionalWritesUnsupported",
    "LocalStore",
    "NoCredentials",
    "ObjectInfo",
    "ObjectNotFound",
    "PreconditionFailed",
    "S3Store",
    "StorageError",
    "StorageUnavailable",
    "Store",
    "UnsafeKeyError",
    "is_credentials_error",
    "is_storage_error",
    "is_transient",
    "join_key",
    "open_store",
    "safe_key",
    "short_reason",
]
