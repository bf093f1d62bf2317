"""Which task failures are worth a retry: storage and network trouble, not bad data or bugs.

Why a condition and not plain `retries=3`: a task that fails because a table lacks a column fails the
same way three more times, and the night ends 42 s later with the same error buried under retries. A
connection reset, an S3 `SlowDown` or a 503 from MinIO usually passes. boto3 already retries each
request (standard mode); these retries cover what is left, such as an endpoint that is down for a
minute. A task's own timeout is not retried: the task had its full time.

Ingestion reads many sites in one task, so its retries are per site, inside the task (`retrying`,
same test, same delays): one flaky site waits and tries again on its own, without redoing the
other sites of its batch, and a site whose storage still fails after every retry becomes "not
audited" (`unreadable_site`) while the others are audited.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from storage import is_credentials_error, is_storage_error, short_reason
from storage import is_transient as storage_is_transient

if TYPE_CHECKING:
    from contracts import SiteIngest

T = TypeVar("T")

#: Delays between attempts: quick first, then long enough for an endpoint restart.
IO_RETRY_DELAYS = [2, 10, 30]


def is_transient(error: BaseException | None) -> bool:
    """True for failures another attempt may not meet (storage.is_transient); never a task's own timeout."""
    from prefect.task_engine import TaskRunTimeoutError

    if isinstance(error, TaskRunTimeoutError):
        return False
    return storage_is_transient(error)


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


def retrying(call: Callable[[], T], *, delays: Sequence[float] | None = None,
             sleep: Callable[[float], None] = time.sleep,
             on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """`call()`, called again after each of `delays` while it fails with a transient error.

    `delays` defaults to IO_RETRY_DELAYS, read at each call (tests shorten them by patching the
    module). A permanent error, or a transient one after the last delay, is raised as it is.
    """
    waits = list(IO_RETRY_DELAYS if delays is None else delays)
    for wait in [*waits, None]:
        try:
            return call()
        except Exception as error:
            if wait is None or not is_transient(error):
                raise
            if on_retry is not None:
                on_retry(error, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def unreadable_site(study: str, site: str, error: BaseException) -> SiteIngest:
    """The SiteIngest of a site whose objects could not be read: no data, one finding saying why.

    The reason names the error class and S3 error code only, never a message that could quote keys
    or record contents; "after every retry" only when the error was one that is retried.
    """
    from ingestion import finish_sites, not_audited

    retried = " after every retry" if is_transient(error) else ""
    reason = f"its storage could not be read{retried} ({short_reason(error)})"
    return finish_sites(study, [not_audited(study, site, reason)])[0]


class CredentialsError(RuntimeError):
    """The process reading a site has no usable storage credentials: the night fails, no site is blamed."""


def _where_this_runs() -> str:
    import os
    import socket

    return f"{socket.gethostname()} (pid {os.getpid()})"


def site_or_unreadable(read: Callable[[], T], study: str, site: str, *, delays: Sequence[float] | None = None,
                       sleep: Callable[[float], None] = time.sleep,
                       on_retry: Callable[[BaseException, float], None] | None = None) -> T | SiteIngest:
    """`read()` with retries (`retrying`); a site whose storage still fails is `unreadable_site`.

    One unreadable site folder (throttling or a network fault that outlasts boto3's retries and
    these, or access denied on its prefix) must not stop the audit of the other sites. Missing or
    rejected credentials are not the site's: every site would fail the same way, and a night of
    "not audited" sites would replace the last good one, so they fail the night (`CredentialsError`,
    naming the study, the site and the host and process that had no credentials: on a Dask cluster,
    the worker to fix). Any other error is a bug and is raised.
    """
    try:
        return retrying(read, delays=delays, sleep=sleep, on_retry=on_retry)
    except Exception as error:
        if is_credentials_error(error):
            raise CredentialsError(f"study {study}, site {site}, read on {_where_this_runs()}: {error}; "
                                   "set the storage credentials where the audit's tasks run (on a Dask "
                                   "cluster, every worker's environment)") from error
        if not is_storage_error(error):
            raise
        return unreadable_site(study, site, error)
