"""Is the Dask cluster there: the scheduler answers, and it has a worker to give the night's tasks to.

Without these checks a night sent to a cluster fails late or not at all: an unreachable scheduler is
only found when the flow's client connects (distributed's 30 s connect timeout, after the study's lease
is taken), and a scheduler with no worker accepts every task and holds it forever, so the night hangs
with nothing in the log. So the command line checks that the scheduler's port answers before it starts
the flow (`check_scheduler_answers`), and the flow, before it takes the study's lease, connects and waits
a bounded time for a worker (`connected_workers`), then fails the night with one line saying what to
start (docs/operations.md "Scale-out with Dask", deploy/README.md "Several machines").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from flows.runners import TCP_SCHEMES, WORKER_PRELOAD, parsed_dask_address

#: how long a night waits for the Dask scheduler to have at least one worker before it fails (seconds):
#: long enough for workers started with the scheduler (or restarted with it) to register
DEFAULT_WORKER_WAIT_SECONDS = 60.0
#: the environment variable that overrides it, in seconds (the flow's environment: the shell of
#: `screening-audit run`, the Prefect worker's `worker.env` for a deployment)
WORKER_WAIT_ENV = "SCREENING_AUDIT_DASK_WORKER_WAIT"
#: the command line's pre-flight: how long the scheduler's port has to answer (seconds)
SCHEDULER_CONNECT_TIMEOUT = 5.0
WHERE_TO_READ = 'deploy/README.md "Several machines"'


class DaskClusterError(RuntimeError):
    """The Dask cluster a night was sent to cannot run it; the message says what the operator should do."""


def worker_wait_seconds(environ: Mapping[str, str] | None = None) -> float:
    """The wait for a first worker: `SCREENING_AUDIT_DASK_WORKER_WAIT` seconds, else the default.

    A value that is not a positive number is refused, naming the variable (0 would mean "forever" to
    distributed's `wait_for_workers`, the very hang this wait exists to end).
    """
    env = os.environ if environ is None else environ
    text = env.get(WORKER_WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_WORKER_WAIT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{WORKER_WAIT_ENV}={text!r} is not a number of seconds greater than 0")
    return seconds


def scheduler_host_port(address: str) -> tuple[str, int] | None:
    """The host and TCP port of a scheduler address (None for a scheme that is not over TCP: inproc, ucx)."""
    parsed = parsed_dask_address(address)
    if parsed.scheme not in TCP_SCHEMES or not parsed.hostname or parsed.port is None:
        return None
    return parsed.hostname, parsed.port


def unreachable_message(address: str, error: BaseException) -> str:
    return (f"the Dask scheduler at {address} does not answer ({type(error).__name__}: {error}): check that "
            f"`dask scheduler` is running there, that the host and port are right, and that no firewall blocks "
            f"the port from this machine ({WHERE_TO_READ})")


def check_scheduler_answers(address: str, timeout: float = SCHEDULER_CONNECT_TIMEOUT) -> None:
    """DaskClusterError unless the scheduler's TCP port accepts a connection within `timeout` seconds.

    A plain TCP connect, not a Dask client: it costs milliseconds when the scheduler is there, and
    fails in at most `timeout` when it is not (distributed's own connect waits 30 s and retries).
    """
    host_port = scheduler_host_port(address)
    if host_port is None:
        return
    try:
        with socket.create_connection(host_port, timeout=timeout):
            pass
    except OSError as error:
        raise DaskClusterError(unreachable_message(address, error)) from None


def no_workers_message(address: str, waited: float) -> str:
    return (f"the Dask scheduler at {address} has no worker (waited {waited:g} s; nothing was audited): start "
            f"at least one with `dask worker {address} --preload {WORKER_PRELOAD}` on each worker machine, from the "
            f"same screening-audit installation ({WHERE_TO_READ}), or wait longer for slow workers with "
            f"{WORKER_WAIT_ENV}=<seconds>")


def wait_for_workers(client: Any, address: str, timeout: float) -> int:
    """The scheduler's worker count once it has one (distributed's `wait_for_workers`), else DaskClusterError."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise DaskClusterError(no_workers_message(address, timeout)) from None
    return max(1, len(client.scheduler_info().get("workers", {})))


def connected_workers(runner: Any, logger: Any, environ: Mapping[str, str] | None = None) -> int:
    """The workers of a `DaskTaskRunner`'s cluster, connecting its client and waiting for a first worker.

    A local cluster (no address) has its workers once it is made; a remote scheduler may have none yet
    (they are starting, or nobody started them): the night waits `worker_wait_seconds()` for one, logging
    that it waits, then fails. A scheduler that cannot be reached fails with the same advice as the
    command line's pre-flight, for a deployed night that had none.
    """
    address = runner.address
    try:
        client = runner.client
    except OSError as error:  # distributed: "Timed out trying to connect to tcp://... after 30 s"
        if address is None:
            raise
        raise DaskClusterError(unreachable_message(address, error)) from None
    address = address or client.scheduler.address
    workers = len(client.scheduler_info().get("workers", {}))
    if workers:
        return workers
    timeout = worker_wait_seconds(environ)
    logger.info("waiting up to %g s for a worker to join the Dask scheduler at %s (%s)", timeout, address,
                WORKER_WAIT_ENV)
    return wait_for_workers(client, address, timeout)


def local_folders(**locations: tuple[str, str]) -> list[tuple[str, str, str]]:
    """(name, uri, what workers do with it) of each location that is a folder of this machine, not s3://."""
    return [(name, uri, use) for name, (uri, use) in locations.items() if not uri.startswith("s3://")]
