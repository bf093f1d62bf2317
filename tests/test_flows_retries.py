"""Retries only for transient failures: storage and network, never bad data or a bug."""

from __future__ import annotations

import errno

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from prefect import flow, task
from prefect.states import Failed
from prefect.task_engine import TaskRunTimeoutError

from flows.retries import IO_RETRIES, is_transient, retry_if_transient


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://minio:9000"),
        ReadTimeoutError(endpoint_url="http://minio:9000"),
        _client_error("SlowDown", 503),
        _client_error("InternalError", 500),
        _client_error("Whatever", 503),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        TimeoutError("read timed out"),
        OSError(errno.EIO, "i/o error on the file server"),
    ],
)
def test_transient_errors_are_retried(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        _client_error("AccessDenied", 403),
        _client_error("NoSuchBucket", 404),
        _client_error("NoSuchKey", 404),
        FileNotFoundError(errno.ENOENT, "missing"),
        PermissionError(errno.EACCES, "denied"),
        KeyError("REASON_ONLY"),
        ValueError("bad date"),
        TaskRunTimeoutError("Task run exceeded timeout of 1800 second(s)"),
        None,
    ],
)
def test_permanent_errors_are_not_retried(error: BaseException | None) -> None:
    assert not is_transient(error)


def test_retry_condition_reads_the_exception_from_the_failed_state() -> None:
    assert retry_if_transient(None, None, Failed(data=ConnectionResetError(errno.ECONNRESET, "reset")))
    assert not retry_if_transient(None, None, Failed(data=ValueError("bad")))


def test_tasks_retry_transient_failures_and_stop_at_once_on_bad_data(prefect_harness: None) -> None:
    attempts = {"flaky": 0, "broken": 0}

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def flaky() -> str:
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise ConnectionResetError(errno.ECONNRESET, "connection reset by peer")
        return "read"

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def broken() -> str:
        attempts["broken"] += 1
        raise KeyError("REASON_ONLY")

    @flow
    def night() -> tuple[str, str]:
        state = broken(return_state=True)
        return flaky(), type(state.result(raise_on_failure=False)).__name__

    assert night() == ("read", "KeyError")
    assert attempts == {"flaky": 3, "broken": 1}
