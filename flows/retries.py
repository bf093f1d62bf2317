"""Which task failures are worth a retry: storage and network trouble, not bad data or bugs.

Why a condition and not plain `retries=3`: a task that fails because a table lacks a column fails the
same way three more times, and the night ends 42 s later with the same error buried under retries. A
connection reset, an S3 `SlowDown` or a 503 from MinIO usually passes. boto3 already retries each
request (standard mode); these retries cover what is left, such as an endpoint that is down for a
minute. A task's own timeout is not retried: the task had its full time.
"""

from __future__ import annotations

import errno
from typing import Any

#: S3 error codes that mean "try again later" (AWS and S3-compatible stores).
TRANSIENT_S3_CODES = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
    "Throttling", "ThrottlingException", "OperationAborted", "500", "502", "503", "504",
})
#: OS errors of a flaky network or file server, not of a missing file or a permission.
TRANSIENT_ERRNOS = frozenset({
    errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EHOSTUNREACH,
    errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE, errno.EAGAIN, errno.EIO,
})
#: Delays between attempts: quick first, then long enough for an endpoint restart.
IO_RETRY_DELAYS = [2, 10, 30]


def is_transient(error: BaseException | None) -> bool:
    """True for failures another attempt may not meet: network, throttling, server-side 5xx."""
    if error is None:
        return False
    from prefect.task_engine import TaskRunTimeoutError

    if isinstance(error, TaskRunTimeoutError):
        return False
    try:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            IncompleteReadError,
            ResponseStreamingError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import ReadTimeoutError as BotoReadTimeoutError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        pass
    else:
        if isinstance(error, EndpointConnectionError | BotoConnectionError | BotoReadTimeoutError
                      | ConnectionClosedError | ResponseStreamingError | IncompleteReadError):
            return True
        if isinstance(error, ClientError):
            response: Any = getattr(error, "response", {}) or {}
            code = str(response.get("Error", {}).get("Code", ""))
            status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            return code in TRANSIENT_S3_CODES or status in TRANSIENT_S3_CODES
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if isinstance(error, OSError):
        return error.errno in TRANSIENT_ERRNOS
    return False


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry a failed task only when its error is transient."""
    error = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if error is None:
        try:
            result = state.result(raise_on_failure=False)
        except Exception as raised:  # the state could not give its exception back: use what it raised
            result = raised
        error = result if isinstance(result, BaseException) else None
    return is_transient(error)


#: Keyword arguments for `@task` on tasks that do storage I/O.
IO_RETRIES: dict[str, Any] = {
    "retries": len(IO_RETRY_DELAYS),
    "retry_delay_seconds": IO_RETRY_DELAYS,
    "retry_condition_fn": retry_if_transient,
}
