"""One S3 client keeps a connection for every thread that uses it at once.

boto3's default pool (10 connections) was smaller than promotion's 16 parallel copies: urllib3 logged
`Connection pool is full, discarding connection` in every S3 run (`make demo`) and opened a new
connection for the next request. Checked on the moto server over HTTP, with the threads the product runs.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from storage import open_store
from storage.store import PARALLEL_REQUESTS, POOL_CONNECTIONS, UPLOAD_PARTS


def test_the_client_pool_holds_every_thread_that_shares_a_store(s3_endpoint: str, s3_bucket: str) -> None:
    from generator.generate import UPLOAD_THREADS
    from publication.promotion import PARALLEL_REQUESTS as PROMOTION_REQUESTS
    from reporting.publish import PUBLISH_THREADS

    store = open_store(f"s3://{s3_bucket}/x", s3_endpoint)
    assert store.client.meta.config.max_pool_connections == POOL_CONNECTIONS  # type: ignore[attr-defined]
    # the callers' threads on one store, and beside them a lease's heartbeat and the Data Docs writer
    for threads in (PROMOTION_REQUESTS, PUBLISH_THREADS * UPLOAD_PARTS, UPLOAD_THREADS):
        assert threads <= PARALLEL_REQUESTS < PARALLEL_REQUESTS + 2 <= POOL_CONNECTIONS


def test_parallel_copies_on_one_store_discard_no_connection(s3_endpoint: str, s3_bucket: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(f"s3://{s3_bucket}/{uuid.uuid4().hex}", s3_endpoint)
    names = [f"staging/{i:03d}.csv" for i in range(4 * PARALLEL_REQUESTS)]
    for name in names:
        store.write_bytes(name, b"a,b\n1,2\n")
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        for _ in range(3):  # as promotion does: PARALLEL_REQUESTS copies in flight on one client
            with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
                list(pool.map(lambda name: store.copy(name, name.replace("staging/", "final/")), names))
    assert not [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert sum(1 for o in store.list("final/")) == len(names)
