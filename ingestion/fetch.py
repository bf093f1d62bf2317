"""Stream one object from the store to a local temporary file while hashing it.

Objects are read in chunks (never whole buckets, never whole objects in one request body in
memory), and the SHA-256 the manifest promises is computed on the very bytes that are parsed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from storage import Store

CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    key: str
    path: Path
    sha256: str
    size: int


def fetch(store: Store, key: str, folder: Path, name: str) -> Fetched:
    """Copy `key` to `folder/name` in chunks; return where it is, its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    path = folder / name
    with store.open(key) as source, path.open("wb") as target:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            target.write(chunk)
            size += len(chunk)
    return Fetched(key=key, path=path, sha256=digest.hexdigest(), size=size)
