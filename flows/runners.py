"""Which task runner executes the audit's tasks: threads in the flow's process, or a Dask cluster.

The flow is the same either way; only where the per-site and per-domain tasks run changes. With
Dask, task parameters and results travel between processes (cloudpickle), which the stage records
(polars frames, frozen dataclasses) support; the tables the run publishes are byte-identical.

Why a cluster factory of our own instead of `DaskTaskRunner`'s default `LocalCluster`: worker
processes inherit the environment of the flow's process, and when the flow talks to Prefect's
temporary (ephemeral) server, `PREFECT_API_URL` is not in that environment; every worker would then
start a temporary server of its own and its task runs would be lost to the real run. The factory
passes the flow's API URL to the workers so their task runs land on the run they belong to.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import ParseResult, urlparse

DEFAULT_DASK_WORKERS = 2
#: the module every Dask worker preloads (`dask worker --preload flows.worker_preload`, deploy/README.md)
WORKER_PRELOAD = "flows.worker_preload"
DEFAULT_THREADS_PER_WORKER = 1


class RunnerKind(StrEnum):
    THREAD = "thread"
    DASK = "dask"


@dataclass(frozen=True)
class RunnerChoice:
    """What the command line asked for; `task_runner()` turns it into a Prefect task runner."""

    kind: RunnerKind = RunnerKind.THREAD
    dask_address: str | None = None
    dask_workers: int = DEFAULT_DASK_WORKERS
    threads_per_worker: int = DEFAULT_THREADS_PER_WORKER
    max_threads: int | None = None

    def __post_init__(self) -> None:
        if self.dask_address is not None and self.kind is not RunnerKind.DASK:
            raise ValueError("--dask-address needs --runner dask")
        if self.dask_address is not None:
            check_dask_address(self.dask_address)
        if self.dask_workers < 1 or self.threads_per_worker < 1:
            raise ValueError("a Dask cluster needs at least one worker with at least one thread")
        if self.max_threads is not None and self.max_threads < 1:
            raise ValueError("max_threads must be at least 1")

    def describe(self) -> str:
        if self.kind is RunnerKind.THREAD:
            return "threads in the flow's process"
        if self.dask_address:
            return f"the Dask cluster at {self.dask_address}"
        return f"a local Dask cluster of {self.dask_workers} worker processes"

    def task_runner(self) -> Any:
        """A fresh Prefect task runner for one flow run (task runners are not shared between runs)."""
        if self.kind is RunnerKind.THREAD:
            from prefect.task_runners import ThreadPoolTaskRunner

            return ThreadPoolTaskRunner(max_workers=self.max_threads)
        from prefect_dask import DaskTaskRunner

        if self.dask_address:
            return DaskTaskRunner(address=self.dask_address)
        return DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs={
            "n_workers": self.dask_workers,
            "threads_per_worker": self.threads_per_worker,
        })


@contextmanager
def shipping_outputs() -> Iterator[None]:
    """Around the submission of render-outputs: no `UserWarning: Sending large graph of size 23.87 MiB ...
    Consider loading the data with Dask directly` in the night's log.

    Its parameter is the night's outputs, packed (core.packing: about 24 MB at 40,000 subjects, 59 MB at
    100,000), made by the flow and sent once to one worker by design, so Dask's advice (load the data on
    the workers, or scatter it for reuse) does not apply. Only this submission: any other large graph
    still warns. Dask warns in the submitting thread, while the task is submitted.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Sending large graph of size", category=UserWarning)
        yield


#: the schemes of a scheduler address that are a host and a TCP port (tls and websockets run over TCP)
TCP_SCHEMES = ("tcp", "tls", "ws", "wss")


def parsed_dask_address(address: str) -> ParseResult:
    """A scheduler address as a URL: `host:port` without a scheme is TCP (distributed's default scheme)."""
    return urlparse(address if "://" in address else f"tcp://{address}")


def check_dask_address(address: str) -> str:
    """A scheduler address such as `tcp://10.0.0.5:8786`; refused early rather than at the first task.

    What Dask accepts is accepted: `host:port` without a scheme is TCP (distributed's default scheme).
    Whether the scheduler answers is the command line's pre-flight (flows.cluster_checks).
    """
    parsed = parsed_dask_address(address)
    if parsed.scheme not in (*TCP_SCHEMES, "inproc", "ucx") or not parsed.hostname:
        raise ValueError(f"not a Dask scheduler address: {address!r} (expected e.g. tcp://host:8786)")
    try:
        port = parsed.port
    except ValueError:  # not a number, or out of range
        raise ValueError(f"not a Dask scheduler address: {address!r}: bad port (expected e.g. tcp://host:8786)") \
            from None
    if port is None and parsed.scheme in TCP_SCHEMES:  # Dask itself refuses it when connecting
        raise ValueError(f"not a Dask scheduler address: {address!r}: no port (expected e.g. tcp://host:8786)")
    return address


def current_api_url() -> str | None:
    """The Prefect API the current flow run talks to (the ephemeral server's URL included)."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL

    context = FlowRunContext.get()
    client = getattr(context, "client", None) if context else None
    url = getattr(client, "api_url", None)
    return str(url).rstrip("/") if url else PREFECT_API_URL.value()


def local_cluster(**kwargs: Any) -> Any:
    """A `distributed.LocalCluster` whose worker processes report to the flow's Prefect API.

    Called by `DaskTaskRunner` when the flow submits its first task, inside the flow run, so the
    API URL is known by then. No dashboard: nightly runs are unattended and port 8787 may be taken;
    and so no statistical profiling on the workers, whose samples only the dashboard shows (about
    1.5 CPU-seconds of the workers' 64 on the n40k benchmark).
    """
    import dask
    from distributed import LocalCluster

    env = dict(kwargs.pop("env", None) or {})
    url = current_api_url()
    if url:
        env.setdefault("PREFECT_API_URL", url)
    kwargs.setdefault("processes", True)
    kwargs.setdefault("dashboard_address", None)
    # without a dashboard the scheduler still serves its health routes, by default on 8787: on a port of its
    # own, so that another cluster on the machine (or a second study's run) gives no "Port 8787 is already in
    # use. Perhaps you already have a cluster running?" in the night's log
    kwargs["scheduler_kwargs"] = {"dashboard_address": "127.0.0.1:0", **(kwargs.get("scheduler_kwargs") or {})}
    # each worker imports what its tasks need as it starts, in its main thread (flows/worker_preload.py)
    kwargs.setdefault("preload", [WORKER_PRELOAD])
    # the workers' statistical profiler (a stack sample every 10 ms) only feeds the dashboard, which is off
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return LocalCluster(env=env, **kwargs)


def fetch_from_workers(futures: list[Any], name: str) -> list[Any]:
    """`getattr(result, name)` of each Dask-run task's result, computed on the worker that holds it.

    Only the attribute crosses the network, and no Prefect task run is made for it: a task run costs
    the API a few calls and the worker its engine (docs/benchmarks.md "Scale-out"), where reading a
    field of a result the worker already has costs nothing. The futures are prefect-dask's; a failed
    task raises its error here, as `future.result()` would.
    """
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    client = context.task_runner.client if context is not None else None
    if client is None:
        raise RuntimeError("fetch_from_workers needs a flow run on a Dask task runner")
    remote = [client.submit(_field_of_state, future.wrapped_future, name, pure=False) for future in futures]
    return client.gather(remote)


def _field_of_state(state: Any, name: str) -> Any:
    """On the worker: the field of a task's result (prefect-dask's futures hold the task's final State)."""
    return getattr(state.result(), name)
