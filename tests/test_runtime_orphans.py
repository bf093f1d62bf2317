"""No orphans: the processes a run starts beside itself die with it, even when it is killed with SIGKILL.

Each test starts a real parent process that starts the real children (Prefect's temporary API server
as the CLI starts it; a local Dask cluster as `--runner dask` starts it), waits until they work, then
SIGKILLs the parent: no `finally`, no `atexit` runs. Every process carrying the test's tag in its
environment must then end (tests/support/processes.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.support.processes import TAG, is_running, left_after, new_tag, still_running

API_PARENT = """
import json, sys, time
from runtime.prefect_api import TemporaryApi
api = TemporaryApi()
api.start()
api.wait_ready(300)
print(json.dumps({"server": api.process.pid, "port": api.port}), flush=True)
time.sleep(600)
"""

DASK_PARENT = """
import json, os, time
from distributed import Client
from flows.runners import local_cluster
cluster = local_cluster(n_workers=2, threads_per_worker=1)
client = Client(cluster)
workers = sorted(client.run(os.getpid).values())
print(json.dumps({"workers": workers}), flush=True)
time.sleep(600)
"""


def _start(script: str, tag: str, tmp_path) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, TAG: tag, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    line = parent.stdout.readline()
    assert line, f"the parent exited with {parent.wait()} before its children were ready"
    return parent, json.loads(line)


def _kill(parent: subprocess.Popen) -> None:
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_prefects_temporary_api_server_dies_with_a_killed_cli(tmp_path) -> None:
    tag = new_tag()
    parent, started = _start(API_PARENT, tag, tmp_path)
    assert is_running(started["server"]) and started["port"] > 0
    _kill(parent)
    assert left_after(tag) == {}
    assert still_running([started["server"]]) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_local_dask_workers_die_with_a_killed_cli(tmp_path) -> None:
    tag = new_tag()
    parent, started = _start(DASK_PARENT, tag, tmp_path)
    assert len(started["workers"]) == 2 and all(is_running(pid) for pid in started["workers"])
    _kill(parent)
    assert left_after(tag) == {}
