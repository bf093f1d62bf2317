"""The CLI's early start of Prefect's temporary API server (runtime/prefect_api.py).

The success path (a real server, a flow run through it, the process exiting cleanly) is exercised by
every CLI run in tests/test_end_to_end.py, which gives the CLI no PREFECT_API_URL. These tests pin
what those cannot see: nothing is started when an API is configured, the server is Prefect's API on
the port this process bound, and a server that dies is a clear error instead of a two-minute wait.
That the server dies with a SIGKILLed parent is in tests/test_runtime_orphans.py.
"""

from __future__ import annotations

import sys

import pytest

from runtime.prefect_api import TemporaryApi, TemporaryApiError, api_in_use, start_early_prefect_api


def test_nothing_is_started_when_prefect_has_an_api(prefect_harness: None) -> None:
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    api = start_early_prefect_api()
    assert api is None
    with api_in_use(api):
        assert PREFECT_API_URL.value() == configured


def test_the_server_gets_a_socket_bound_to_a_port_the_kernel_chose_and_is_tied_to_this_process() -> None:
    import os

    command = TemporaryApi().command(7)
    assert command == [sys.executable, "-m", "runtime.api_server", "--fd", "7", "--parent", str(os.getpid())]


def test_the_temporary_api_serves_prefects_api_on_the_port_it_reports() -> None:
    import httpx

    api = TemporaryApi()
    api.start()
    try:
        assert api.port and api.port > 0
        url = api.wait_ready(timeout=120)
        assert url == f"http://127.0.0.1:{api.port}/api"
        assert httpx.get(f"{url}/health", timeout=30).json() is True
        assert httpx.get(f"{url}/admin/version", timeout=30).status_code == 200
    finally:
        api.stop()


class _ScriptedApi(TemporaryApi):
    """A "server" that runs `script` instead of Prefect's API."""

    def __init__(self, script: str) -> None:
        super().__init__()
        self.script = script

    def command(self, fd: int) -> list[str]:
        return [sys.executable, "-c", self.script]


def test_a_server_that_dies_is_an_error_naming_its_status_not_a_long_wait() -> None:
    api = _ScriptedApi("raise SystemExit(7)")
    api.start()
    # the error names the exit status, so it came from the dead process, not from the 600 s deadline
    with pytest.raises(TemporaryApiError, match="exited with status 7"):
        api.wait_ready(timeout=600)
    api.stop()
    assert api.process is None


def test_a_server_that_never_answers_times_out_and_is_stopped() -> None:
    api = _ScriptedApi("import time; time.sleep(60)")
    api.start()
    process = api.process
    with pytest.raises(TemporaryApiError, match="did not answer within 1 s"):
        api.wait_ready(timeout=1)
    api.stop()
    assert process is not None and process.poll() is not None
