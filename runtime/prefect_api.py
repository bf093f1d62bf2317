"""Prefect's temporary API server, started at the very beginning of a command-line run.

With no `PREFECT_API_URL`, Prefect starts a temporary API server (a uvicorn subprocess serving
`prefect.server.api.server:create_app`) the first time a flow needs it, and waits for it. Measured
on the 2-CPU benchmark machine (docs/benchmarks.md), left to Prefect this costs a cold demo-size run
about 11 s before the server is even launched (the CLI first imports the flow, Great Expectations
and, only to launch the subprocess, Prefect's whole server stack: 4 s of CPU in the CLI's own
process), then about 8 s waiting for it.

`TemporaryApi` launches the same server (Prefect's API app under uvicorn, with the environment of
`prefect.server.api.server.SubprocessASGIServer`) as soon as Prefect's settings are loaded, so the
server starts on the other CPU while this process imports the rest. `serving()` waits for its health
check and points this process's Prefect client at it with `temporary_settings`, exactly as if the
operator had set `PREFECT_API_URL`. With `PREFECT_API_URL` configured (a long-running server, the
deployment in deploy/) or ephemeral mode disabled, nothing is started and Prefect's own behaviour
applies.

Two differences from Prefect's own launcher, both for a run that is killed or a busy machine:
- **Port.** This process binds a loopback socket to port 0 (the kernel picks a free port) and hands
  the bound socket to the server (`runtime.api_server`), so the port is known at once and no other
  process can take it between choosing and listening (Prefect picks a random port and retries).
- **Lifetime.** The server dies with this process however it ends, SIGKILL included
  (`runtime.tether`); `stop()` at exit is only the orderly path.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

logger = logging.getLogger("prefect.screening_audit.api")

#: What SubprocessASGIServer adds to the server's environment: no UI, the ephemeral server's settings.
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


class TemporaryApiError(RuntimeError):
    """The temporary API server did not come up (its exit status says why)."""


class TemporaryApi:
    """One uvicorn subprocess serving Prefect's API on loopback, for one command-line run."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._ready = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        """Bind a free loopback port, launch the server on it and return at once; `wait_ready` waits for it."""
        from prefect.settings import get_current_settings

        env = {**os.environ, **SERVER_ENV,
               **get_current_settings().to_environment_variables(exclude_unset=True)}
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            logger.info("starting Prefect's temporary API server on http://127.0.0.1:%d", self.port)
            # the child gets its own copy of the socket; ours is closed when this block ends
            self.process = subprocess.Popen(self.command(sock.fileno()), env=env, pass_fds=(sock.fileno(),))

    def command(self, fd: int) -> list[str]:
        """The server's command line: Prefect's API app under uvicorn, on the socket `fd`, tied to this process."""
        return [sys.executable, "-m", "runtime.api_server", "--fd", str(fd), "--parent", str(os.getpid())]

    def wait_ready(self, timeout: float) -> str:
        """Block until the server answers its health check; its API URL."""
        import httpx

        if self._ready:
            return self.api_url
        deadline = time.monotonic() + timeout
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                status = self.process.poll()
                if status is not None:
                    raise TemporaryApiError(f"Prefect's temporary API server exited with status {status}")
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        self._ready = True
                        return self.api_url
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise TemporaryApiError(f"Prefect's temporary API server did not answer within {timeout:.0f} s")

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """Wait for the server, then point Prefect at it for the duration of the block."""
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
            PREFECT_UI_URL,
            temporary_settings,
        )

        url = self.wait_ready(float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
        # no UI URL: the temporary server serves no UI and is gone when the run ends, so Prefect's
        # "View at http://127.0.0.1:<port>/runs/..." line would lead nowhere (Prefect omits it too)
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_UI_URL: ""}):
            yield url

    def stop(self) -> None:
        """Terminate the server (what Prefect does at exit with its own temporary server)."""
        if self.process is None:
            return
        logger.info("stopping Prefect's temporary API server on http://127.0.0.1:%d", self.port)
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        self._ready = False


def needs_temporary_api() -> bool:
    """True when a flow run in this process would make Prefect start a temporary server."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


def start_early_prefect_api() -> TemporaryApi | None:
    """Start the temporary API now (when one is needed); it stops when the process exits.

    Returns the server, or None when Prefect is configured with a real API (nothing to start).
    Use `api_in_use(api)` around the flow call.
    """
    if not needs_temporary_api():
        return None
    api = TemporaryApi()
    api.start()
    # Stopped at interpreter exit, as Prefect stops its own temporary server: Prefect drains its
    # log and event workers to the API while the process shuts down, after the flow has returned.
    atexit.register(api.stop)
    return api


def api_in_use(api: TemporaryApi | None) -> contextlib.AbstractContextManager[object]:
    """The block in which flows talk to `api` (a no-op when Prefect has a configured API)."""
    return api.serving() if api is not None else contextlib.nullcontext()
