"""The CLI's early start of Prefect's temporary API server (runtime/prefect_api.py).

The success path (a real server, a flow run through it, the process exiting cleanly) is exercised by
every CLI run in tests/test_end_to_end.py, which gives the CLI no PREFECT_API_URL. These tests pin
what those cannot see: nothing is started when an API is configured, the command is Prefect's own,
and a server that dies is a clear error instead of a two-minute wait.
"""

from __future__ import annotations

import sys
import time

import pytest

from runtime.prefect_api import TemporaryApi, TemporaryApiError, api_in_use, start_early_prefect_api


def test_nothing_is_started_when_prefect_has_an_api(prefect_harness: None) -> None:
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    api = start_early_prefect_api()
    assert api is None
    with api_in_use(api):
        assert PREFECT_API_URL.value() == configured


def test_the_command_is_prefects_own_uvicorn_app_without_ui() -> None:
    command = TemporaryApi().command(8123)
    assert command[:3] == [sys.executable, "-m", "uvicorn"]
    assert command[command.index("--factory") + 1] == "prefect.server.api.server:create_app"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "8123"


class _ScriptedApi(TemporaryApi):
    """A "server" that runs `script` instead of Prefect's API."""

    def __init__(self, script: str) -> None:
        super().__init__()
        self.script = script

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-c", self.script]


def test_a_server_that_dies_is_an_error_naming_its_status_not_a_long_wait() -> None:
    api = _ScriptedApi("raise SystemExit(7)")
    api.start()
    started = time.monotonic()
    with pytest.raises(TemporaryApiError, match="exited with status 7"):
        api.wait_ready(timeout=60)
    assert time.monotonic() - started < 30
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
