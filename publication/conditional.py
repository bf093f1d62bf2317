"""The start-up check that the reports endpoint honours conditional writes.

Why: the lease (publication.lease) gives mutual exclusion only if the endpoint refuses a create on an
existing object (`If-None-Match: *`) and a replace on a changed one (`If-Match`). AWS S3 does (since
August 2024), and so do recent MinIO releases; an older or partial S3 implementation may accept the
header and ignore it, and then two audits of one study could both run and both publish. So before
taking the lease, each run writes a probe object once and tries both conditions on it; if either is
ignored, the run stops with an error instead of running silently without mutual exclusion.
"""

from __future__ import annotations

import json
import os
import socket

from publication.layout import probe_key, where
from storage import ConditionalWritesUnsupported, Store

#: an ETag no object has: a replace conditioned on it must fail
_NO_SUCH_ETAG = "0" * 32


def check_conditional_writes(store: Store, study: str) -> None:
    """Raise `ConditionalWritesUnsupported` unless the store refuses both conditional writes it must refuse."""
    key = probe_key(study)
    probe = json.dumps({"purpose": "checks that conditional writes are honoured; safe to leave",
                        "host": socket.gethostname(), "pid": os.getpid()}).encode()
    uri = where(store.uri, key)
    try:
        store.create_if_absent(key, probe)  # first run ever creates it; later runs find it
        created_again = store.create_if_absent(key, probe) is not None
        replaced = store.replace_if_match(key, probe, _NO_SUCH_ETAG) is not None
    except ConditionalWritesUnsupported as error:
        raise ConditionalWritesUnsupported(
            f"the reports endpoint does not support conditional writes ({error}); the audit needs them so "
            "that two runs of one study never run at once. Use an endpoint that supports If-None-Match and "
            "If-Match on PUT (AWS S3, a recent MinIO).", where=uri, operation="probe") from error
    ignored = [name for name, broken in (("If-None-Match", created_again), ("If-Match", replaced)) if broken]
    if ignored:
        raise ConditionalWritesUnsupported(
            f"the reports endpoint ignores conditional writes ({' and '.join(ignored)}): writing {uri} "
            "succeeded where it had to fail. Without them two audits of one study could run at once, so this "
            "run stops. Use an endpoint that honours If-None-Match and If-Match on PUT (AWS S3, a recent MinIO).",
            where=uri, operation="probe")
