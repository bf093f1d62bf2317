"""Processes a Dask test starts as an operator would (`dask scheduler`, `dask worker`), each in its own
session, and all ended by the test's finaliser whatever happened (tests/test_cluster_real.py,
tests/test_flows_dask.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


class Processes:
    """Every process the test starts, each in its own session; all ended in the finaliser."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []
        self.logs: dict[str, Path] = {}

    def start(self, name: str, argv: list[str], log_dir: Path, **kwargs) -> subprocess.Popen:
        log = log_dir / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, **kwargs)
        self.started.append(process)
        self.logs[name] = log
        return process

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def stop(self) -> None:
        for process in reversed(self.started):
            signal_group(process, signal.SIGTERM)
        for process in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                signal_group(process, signal.SIGKILL)
                process.wait(timeout=15)


def signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # its own session: the process and whatever it started


def scheduler_address(processes: Processes, scheduler: subprocess.Popen, file: Path) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if file.is_file():
            try:
                return json.loads(file.read_text())["address"]
            except (ValueError, KeyError):
                pass  # still being written
        if scheduler.poll() is not None:
            pytest.fail(f"dask scheduler exited ({scheduler.returncode}): {processes.log('scheduler')[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"dask scheduler wrote no address: {processes.log('scheduler')[-2000:]}")


def unused_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: modules the worker-side tasks need that a bare Dask worker does not import (flows/worker_preload.py)
PRELOADED = ("great_expectations", "pyreadstat", "fastexcel", "xlsxwriter", "prefect.task_engine", "flows.partition",
             "checks.evaluation", "reporting.parted")


def _not_imported(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if name not in sys.modules]


def not_imported_on_workers(client: Any) -> list[list[str]]:
    """Which of PRELOADED each worker of `client` has not imported yet.

    The probe travels by value: were it sent by reference, the worker would import this module (and
    pytest) to find it, and importing is what is being probed."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        return list(client.run(_not_imported, PRELOADED).values())
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
