"""`screening-audit worker` stops a night in progress before the worker, and within its documented bound.

A stand-in for Prefect's worker (a process with one child, as a process worker has one per flow run)
shows the order: the child gets SIGTERM and ends (its cleanup runs), and only then the worker is asked
to stop. The real worker and a real night are in tests/test_deploy_trial.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from runtime.worker import WORKER_STOP_SECONDS, children, stop_worker

CHILD = """
import signal, sys, time
def cleanup(*_):
    open(sys.argv[1], "w").write("cleaned up")
    sys.exit(0)
signal.signal(signal.SIGTERM, cleanup if sys.argv[2] == "clean" else signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""

WORKER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]], stdout=subprocess.PIPE)
child.stdout.readline()
def stop(*_):
    open(sys.argv[4], "w").write("child had exited" if child.poll() is not None else "child still running")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def _worker(tmp_path: Path, child_behaviour: str) -> subprocess.Popen:
    worker = subprocess.Popen([sys.executable, "-c", WORKER, CHILD, str(tmp_path / "child"), child_behaviour,
                               str(tmp_path / "worker")], stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline() == "ready\n"
    return worker


def test_the_night_in_progress_ends_first_then_the_worker(tmp_path: Path) -> None:
    worker = _worker(tmp_path, "clean")
    [child] = children(worker.pid)
    said: list[str] = []
    began = time.monotonic()
    assert stop_worker(worker, grace=30, say=said.append) == 0
    assert time.monotonic() - began < 10  # a clean child ends at once: the grace is an upper bound, not a wait
    assert (tmp_path / "child").read_text() == "cleaned up"
    assert (tmp_path / "worker").read_text() == "child had exited"
    assert said == ["stopping: 1 flow run(s) in progress get SIGTERM and up to 30 s to end (Crashed)"]
    assert not Path(f"/proc/{child}").exists() and worker.poll() == 0


def test_a_night_that_does_not_end_in_the_grace_is_killed_and_the_worker_still_stops(tmp_path: Path) -> None:
    worker = _worker(tmp_path, "ignore")
    [child] = children(worker.pid)
    said: list[str] = []
    began = time.monotonic()
    stop_worker(worker, grace=1, say=said.append)
    took = time.monotonic() - began
    assert 1 <= took < 1 + 5 + WORKER_STOP_SECONDS  # the grace, the kill taking effect, the worker's stop
    assert said[-1] == f"flow-run process {child} did not end in 1 s: killed"
    assert (tmp_path / "worker").read_text() == "child had exited"
    assert not (tmp_path / "child").exists()


def test_the_commands_default_grace_is_the_documented_one() -> None:
    import inspect

    from flows.cli import worker
    from runtime.worker import DEFAULT_GRACE_SECONDS

    assert inspect.signature(worker).parameters["grace"].default == DEFAULT_GRACE_SECONDS


def test_a_process_that_does_not_exist_has_no_children() -> None:
    assert children(999_999_999) == []
