"""Object storage behind one small interface: an S3 prefix or a local folder, used the same way.

Ingestion reads site deliveries through it and publication writes reports through it, so the
rules that matter for a nightly audit live in one place: keys from storage are never trusted as
local paths (`safe_key`), S3 listings are paginated, reads stream, writes are encrypted at rest,
and boto3 retries transient errors with its standard mode.
"""

from storage.keys import UnsafeKeyError, join_key, safe_key
from storage.store import LocalStore, ObjectInfo, S3Store, Store, open_store

__all__ = [
    "LocalStore",
    "ObjectInfo",
    "S3Store",
    "Store",
    "UnsafeKeyError",
    "join_key",
    "open_store",
    "safe_key",
]
