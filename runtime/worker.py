"""`screening-audit worker`: Prefect's process worker, stopped so that a night in progress ends cleanly.

Measured with Prefect 3.9 (tests/test_deploy_trial.py, and by hand): a `prefect worker start` that
receives SIGTERM while a night runs kills the flow-run process it started within a second, without
giving it the chance to clean up, so the night's run stays *Running* for ever, its deployment's
concurrency slot stays taken (the next nights wait behind it) and the study's audit lock stays until
it is `lock_max_age_hours` old. A flow-run process that receives SIGTERM itself, by contrast, ends
cleanly in a few seconds: Prefect marks it *Crashed*, and the audit's `finally` releases its lock and
deletes its staging prefix.

So this command runs the worker as its child and, on SIGTERM or SIGINT:

1. sends SIGTERM to each flow-run process of the worker and waits for them to end (`grace`);
2. then sends SIGTERM to the worker, and SIGKILL `WORKER_STOP_SECONDS` later if it is still there.
   The worker usually stops in one or two seconds, but after its flow run has ended on its own it
   was also seen to hang in its shutdown (killed at 15 s in the trial test; issue 19 saw more than
   30 s). By then it holds nothing: no run, no lock.

It returns within `grace + WORKER_STOP_SECONDS` (+ a second of polling), the bound the systemd unit's
`TimeoutStopSec` covers (deploy/systemd/screening-audit-worker.service, with `KillMode=mixed` so that
systemd's SIGTERM reaches this process only). The worker runs in its own session, so a Ctrl-C in a
terminal reaches this process only, too. It also turns Prefect's telemetry off for the worker and the
flow runs it starts, unless the environment says otherwise.

Finding the worker's flow-run processes reads `/proc` (Linux, where the service runs); elsewhere the
worker is stopped directly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

#: How long flow runs in progress get to end cleanly (mark Crashed, release the lock) before the worker stops.
DEFAULT_GRACE_SECONDS = 60
#: How long the worker itself gets after its SIGTERM (one or two seconds when it does not hang).
WORKER_STOP_SECONDS = 10
#: No telemetry from a clinical-data host: the server's analytics and the client's SDK events.
TELEMETRY_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def children(pid: int) -> list[int]:
    """The direct child processes of `pid` (Linux /proc); [] where /proc cannot tell."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return sorted(set(found))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running any more
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    left = [pid for pid in pids if _alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [pid for pid in left if _alive(pid)]
    return left


def stop_worker(worker: subprocess.Popen, grace: float, say: Callable[[str], None]) -> int:
    """End the worker's flow runs cleanly (SIGTERM, up to `grace` s), then the worker; its exit status."""
    runs = children(worker.pid)
    if runs:
        say(f"stopping: {len(runs)} flow run(s) in progress get SIGTERM and up to {grace:.0f} s to end (Crashed)")
        for pid in runs:
            _signal(pid, signal.SIGTERM)
        stuck = _wait_gone(runs, grace)
        for pid in stuck:
            say(f"flow-run process {pid} did not end in {grace:.0f} s: killed")
            _signal(pid, signal.SIGKILL)
        _wait_gone(stuck, 5)  # SIGKILL takes effect asynchronously: let the worker find them gone
    worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=WORKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        say(f"the worker did not stop in {WORKER_STOP_SECONDS} s: killed")
        worker.kill()
        return worker.wait()


def run_worker(prefect_args: list[str], grace: float, say: Callable[[str], None]) -> int:
    """Run `prefect worker start <prefect_args>` until it exits or this process is asked to stop."""
    env = {**TELEMETRY_OFF, **os.environ}
    worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", *prefect_args], env=env,
                              start_new_session=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set():
        if worker.poll() is not None:
            return worker.returncode
        stop.wait(0.5)
    began = time.monotonic()
    code = stop_worker(worker, grace, say)
    say(f"worker stopped in {time.monotonic() - began:.1f} s")
    return 0 if code in (0, -signal.SIGTERM) else code
