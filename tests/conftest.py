"""Shared fixtures: a real moto S3 server over HTTP on loopback (not in-process mocking)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest

from storage.local_endpoint import local_s3_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server on a free loopback port, for the whole test session."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = local_s3_server()  # moto, with atomic conditional writes as S3's
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the moto server; returns its name."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    name = "t-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:50]
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-").strip("-")
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path):
    """A fresh, empty store, once as a local folder and once as an S3 prefix on the moto server (a test
    module that defines its own `store` fixture uses that one instead)."""
    import uuid

    from storage import LocalStore, open_store

    if request.param == "local":
        return LocalStore(tmp_path / "reports")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    # a unique prefix: the bucket fixture truncates long parametrised test names into one bucket name
    return open_store(f"s3://{bucket}/{uuid.uuid4().hex}/reports", endpoint)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's test harness (a temporary API with its own database), once per session."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
