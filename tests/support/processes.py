"""Which processes are left: descendants of a process, or every process carrying a tag in its environment.

Why the environment: a process whose parent was killed is re-parented (to init or a subreaper), so
after a SIGKILL nothing links it to the run any more, except the environment it inherited. A test
starts the run with `SCREENING_AUDIT_TEST_TAG=<unique>`; every process the run starts (Prefect's
API server, Dask workers, multiprocessing helpers) inherits it. A zombie (ended, not yet reaped by
whoever adopted it) counts as gone.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

TAG = "SCREENING_AUDIT_TEST_TAG"
_PROC = Path("/proc")


def new_tag() -> str:
    return uuid.uuid4().hex


def _state(pid: int) -> str | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()[0]


def is_running(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def tagged(tag: str) -> list[int]:
    """Pids of running processes whose environment holds TAG=<tag>."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and is_running(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def still_running(pids: list[int], deadline_seconds: float = 60.0) -> list[int]:
    """Those of `pids` still running once they had `deadline_seconds` to end.

    A process on its way out may already show no environment (its memory released) while /proc still
    lists it as running: `tagged` no longer sees it, so a test that knows the pid waits for it here.
    """
    deadline = time.monotonic() + deadline_seconds
    while True:
        left = [pid for pid in pids if is_running(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def command_line(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def left_after(tag: str, deadline_seconds: float = 60.0) -> dict[int, str]:
    """The tagged processes still running once they had `deadline_seconds` to end (pid -> command line).

    Ending is asynchronous (a parent-death signal is delivered, a worker notices its pipe closed), so
    this waits up to the deadline; it asserts nothing about how long that took.
    """
    deadline = time.monotonic() + deadline_seconds
    while True:
        left = tagged(tag)
        if not left or time.monotonic() > deadline:
            return {pid: command_line(pid) for pid in left}
        time.sleep(0.2)
