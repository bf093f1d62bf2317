"""Task-runner selection: threads by default, a local Dask cluster, or an existing one by address."""

from __future__ import annotations

import os

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.cluster_checks import DEFAULT_WORKER_WAIT_SECONDS, WORKER_WAIT_ENV, worker_wait_seconds
from flows.runners import RunnerChoice, RunnerKind, check_dask_address, local_cluster


def test_default_is_threads_in_the_flow_process() -> None:
    runner = RunnerChoice().task_runner()
    assert isinstance(runner, ThreadPoolTaskRunner)
    assert RunnerChoice().describe() == "threads in the flow's process"


def test_dask_default_is_a_local_cluster_of_two_single_threaded_workers() -> None:
    runner = RunnerChoice(RunnerKind.DASK).task_runner()
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address is None
    assert runner.cluster_class is local_cluster
    assert runner.cluster_kwargs == {"n_workers": 2, "threads_per_worker": 1}


def test_dask_address_connects_to_an_existing_cluster() -> None:
    choice = RunnerChoice(RunnerKind.DASK, dask_address="tcp://10.0.0.5:8786")
    runner = choice.task_runner()
    assert runner.address == "tcp://10.0.0.5:8786"
    assert runner.cluster_class is None and runner.cluster_kwargs == {}
    assert choice.describe() == "the Dask cluster at tcp://10.0.0.5:8786"


def test_each_call_gives_a_fresh_runner() -> None:
    choice = RunnerChoice(RunnerKind.DASK)
    assert choice.task_runner() is not choice.task_runner()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": RunnerKind.THREAD, "dask_address": "tcp://h:8786"}, "needs --runner dask"),
        ({"kind": RunnerKind.DASK, "dask_address": "http://h:8786"}, "not a Dask scheduler address"),
        ({"kind": RunnerKind.DASK, "dask_workers": 0}, "at least one worker"),
        ({"kind": RunnerKind.THREAD, "max_threads": 0}, "at least 1"),
        # Dask refuses a TCP address without a port only when it connects: refused here, before the night
        ({"kind": RunnerKind.DASK, "dask_address": "tcp://sched.internal"}, "no port"),
        ({"kind": RunnerKind.DASK, "dask_address": "sched.internal:87x6"}, "bad port"),
    ],
)
def test_invalid_choices_are_refused_before_anything_runs(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunnerChoice(**kwargs)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "10.0.0.5:8786", "tls://sched.internal:8786",
                                     "localhost:8786", "tcp://[::1]:8786", "inproc://10.0.0.5/1234/1"])
def test_scheduler_addresses_accepted(address: str) -> None:
    assert check_dask_address(address) == address


def test_runner_kind_parses_command_line_words() -> None:
    assert RunnerKind("dask") is RunnerKind.DASK
    with pytest.raises(ValueError):
        RunnerKind("ray")


@task
def _where_am_i(x: int) -> tuple[int, int, str | None, str]:
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    assert context is not None
    return x * x, os.getpid(), os.environ.get("PREFECT_API_URL"), str(context.task_run.flow_run_id)


@flow
def _tiny_flow() -> tuple[str, list[tuple[int, int, str | None, str]]]:
    from prefect.runtime import flow_run

    futures = [_where_am_i.submit(i) for i in range(4)]
    return str(flow_run.id), [f.result() for f in futures]


def test_local_dask_cluster_runs_tasks_in_worker_processes_on_the_flows_api(prefect_harness: None) -> None:
    """Worker processes must report task runs to the same API as the flow (not a server of their own)."""
    from prefect.settings import PREFECT_API_URL

    runner = RunnerChoice(RunnerKind.DASK, dask_workers=2).task_runner()
    flow_run_id, results = _tiny_flow.with_options(task_runner=runner)()
    assert [r[0] for r in results] == [0, 1, 4, 9]
    assert all(pid != os.getpid() for _, pid, _, _ in results)
    assert {url for _, _, url, _ in results} == {PREFECT_API_URL.value()}
    assert {run for _, _, _, run in results} == {flow_run_id}


@pytest.mark.parametrize(("value", "seconds"), [(None, DEFAULT_WORKER_WAIT_SECONDS), ("", DEFAULT_WORKER_WAIT_SECONDS),
                                                ("2.5", 2.5), (" 90 ", 90.0)])
def test_the_wait_for_a_first_dask_worker_is_a_setting(value: str | None, seconds: float) -> None:
    assert worker_wait_seconds({} if value is None else {WORKER_WAIT_ENV: value}) == seconds


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf", "nan"])
def test_a_wait_that_would_never_end_or_is_no_number_is_refused(value: str) -> None:
    # 0 is "no timeout" to distributed's wait_for_workers: the hang the setting exists to end
    with pytest.raises(ValueError, match=f"{WORKER_WAIT_ENV}=.* is not a number of seconds greater than 0"):
        worker_wait_seconds({WORKER_WAIT_ENV: value})


def test_a_local_cluster_leaves_port_8787_alone() -> None:
    """Another Dask cluster (or a second study's run) on the machine holds 8787: the night's log stays clean."""
    import contextlib
    import socket
    import warnings

    import httpx

    with contextlib.ExitStack() as stack:
        taken = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # already taken by something else: as good for this test
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        cluster = stack.enter_context(local_cluster(n_workers=1, threads_per_worker=1))
        status = httpx.get(cluster.dashboard_link, timeout=10).status_code  # the dashboard's page: still none
        assert status == 404
    assert [str(w.message) for w in caught if "8787" in str(w.message)] == []



@task
def _size_of(payload: bytes) -> int:
    return len(payload)


def test_only_the_shipped_outputs_submission_is_spared_dasks_large_graph_warning(prefect_harness: None) -> None:
    """render-outputs sends the night's packed outputs (tens of MB) to one worker by design: Dask's `Sending
    large graph` advice does not apply there (flows.runners.shipping_outputs); any other submission warns."""
    import warnings

    from flows.runners import shipping_outputs

    payload = bytes(12_000_000)  # over Dask's 10 MB threshold

    @flow(task_runner=RunnerChoice(RunnerKind.DASK, dask_workers=1).task_runner())
    def ship() -> tuple[list[str], list[str]]:
        with warnings.catch_warnings(record=True) as shipped:
            warnings.simplefilter("always")
            with shipping_outputs():
                spared = _size_of.submit(payload)
        with warnings.catch_warnings(record=True) as other:
            warnings.simplefilter("always")
            plain = _size_of.submit(payload)
        assert spared.result() == plain.result() == len(payload)
        return [str(w.message) for w in shipped], [str(w.message) for w in other]

    shipped, other = ship()
    assert [m for m in shipped if "large graph" in m] == []
    assert [m for m in other if "large graph" in m] != []  # Dask does warn, in the submitting thread
