"""Storage under injected S3 faults: throttling, hung reads and dropped connections are retried.

These run `S3Store` (the audit's only S3 access path) through the fault proxy in front of moto, so
boto3's own retry mode and timeouts are what is being tested, not a mock of them.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from faults import Action, FaultProxy, Rule

from storage import S3Store, StorageUnavailable

#: boto3's read timeout where the proxy injects timeouts, and how long it then holds the connection; elsewhere
#: the timeouts are generous, so that a slow answer on a busy machine is never mistaken for a fault
INJECTED_READ_TIMEOUT, HELD = 2.0, 6.0


@pytest.fixture
def proxy(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    action = getattr(request.node, "callspec", None) and request.node.callspec.params.get("action")
    timeouts_tested = action is Action.TIMEOUT
    monkeypatch.setenv("SCREENING_AUDIT_S3_READ_TIMEOUT", str(INJECTED_READ_TIMEOUT if timeouts_tested else 60))
    monkeypatch.setenv("SCREENING_AUDIT_S3_CONNECT_TIMEOUT", "10")
    monkeypatch.setenv("SCREENING_AUDIT_S3_ATTEMPTS", "2")  # retries after the first try (botocore max_attempts)
    with FaultProxy(s3_endpoint) as running:
        yield running


@pytest.fixture
def store(proxy: FaultProxy, s3_bucket: str) -> S3Store:
    s3 = S3Store(f"s3://{s3_bucket}/root", endpoint_url=proxy.url)
    s3.write_bytes("a/1.csv", b"x,y\n1,2\n")
    s3.write_bytes("a/2.csv", b"x,y\n3,4\n")
    proxy.clear()
    return s3


@pytest.mark.parametrize("action", [Action.SLOWDOWN, Action.TIMEOUT, Action.DROP])
@pytest.mark.parametrize("operation", ["list", "get", "put"])
def test_transient_fault_is_retried_and_the_call_succeeds(proxy: FaultProxy, store: S3Store, action: Action,
                                                          operation: str) -> None:
    proxy.add(Rule(action, operation=operation, count=1, delay=HELD))
    if operation == "list":
        assert [o.key for o in store.list("a")] == ["a/1.csv", "a/2.csv"]
    elif operation == "get":
        assert store.read_bytes("a/2.csv") == b"x,y\n3,4\n"
    else:
        store.write_bytes("a/3.csv", b"new")
        proxy.rules.clear()
        assert store.read_bytes("a/3.csv") == b"new"
    failed = proxy.seen(operation, outcome=action.value)
    assert len(failed) == 1  # the injected failure was hit, then the retry went through
    assert len(proxy.seen(operation, outcome="forwarded")) >= 1


def test_persistent_slowdown_gives_up_after_the_configured_attempts(proxy: FaultProxy, store: S3Store) -> None:
    proxy.add(Rule(Action.SLOWDOWN, operation="get", key=r"a/1\.csv$", count=None))
    with pytest.raises(StorageUnavailable) as raised:
        store.read_bytes("a/1.csv")
    assert raised.value.code == "SlowDown" and raised.value.transient
    assert isinstance(raised.value.__cause__, ClientError)  # the botocore error stays attached
    assert len(proxy.seen("get", outcome="slowdown")) == 3  # the first try and SCREENING_AUDIT_S3_ATTEMPTS retries
    assert store.read_bytes("a/2.csv") == b"x,y\n3,4\n"  # other keys are untouched


@pytest.mark.parametrize(("action", "error"), [(Action.TIMEOUT, ReadTimeoutError),
                                               (Action.DROP, ConnectionClosedError)])
def test_persistent_network_fault_raises_a_transient_storage_error(proxy: FaultProxy, store: S3Store,
                                                                   action: Action, error: type[Exception]) -> None:
    proxy.add(Rule(action, operation="get", count=None, delay=HELD))
    with pytest.raises(StorageUnavailable) as raised:
        store.read_bytes("a/1.csv")
    assert isinstance(raised.value.__cause__, error)
    assert "s3://" in str(raised.value) and "a/1.csv" in str(raised.value)  # names the object
    assert len(proxy.seen("get", outcome=action.value)) == 3


def test_every_write_asks_for_encryption_at_rest(proxy: FaultProxy, store: S3Store,
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    store.write_bytes("out/a.csv", b"1")
    path = tmp_path / "b.bin"
    path.write_bytes(b"2")
    store.write_file("out/b.bin", path)
    store.copy("out/a.csv", "out/c.csv")
    assert store.create_exclusive("out/lock", b"x")
    monkeypatch.setenv("SCREENING_AUDIT_KMS_KEY_ID", "arn:aws:kms:us-east-1:123456789012:key/test")
    store.write_bytes("out/d.csv", b"3")
    writes = [r for r in proxy.seen() if r.operation in ("put", "copy")]
    assert len(writes) == 5
    sse = [w.headers.get("x-amz-server-side-encryption") for w in writes]
    assert sse == ["AES256"] * 4 + ["aws:kms"]
    assert writes[-1].headers["x-amz-server-side-encryption-aws-kms-key-id"].endswith("key/test")
