"""Seal a folder written by a test as a published night: its completion marker over what is in it.

Readers of earlier nights (reporting.history, the review ledger) skip folders without a valid marker
(publication.is_complete), so a test that writes a night's files directly seals the folder after.
"""

from __future__ import annotations

import hashlib

from publication.layout import MARKER
from publication.marker import marker_bytes
from storage import Store, join_key


def seal(store: Store, prefix: str, *, run_id: str = "test-run") -> None:
    """Write `prefix`'s marker listing every object now under it with its sha256 and size."""
    start = prefix.rstrip("/") + "/"
    objects = {}
    for obj in store.list(prefix):
        name = obj.key[len(start):]
        if name != MARKER:
            data = store.read_bytes(obj.key)
            objects[name] = (hashlib.sha256(data).hexdigest(), len(data))
    study, as_of = prefix.strip("/").split("/")[-2:]
    store.write_bytes(join_key(prefix, MARKER), marker_bytes(study=study, as_of=as_of, run_id=run_id,
                                                             objects=objects))
