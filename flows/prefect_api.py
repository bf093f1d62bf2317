"""Start Prefect's temporary API server early, while the demo does other work.

With no `PREFECT_API_URL`, Prefect starts a temporary API server the first time a flow needs it,
which takes several seconds. The demo starts it on a side thread while it brings up the S3
endpoint and generates the study, and joins the thread before the flow runs.
"""

from __future__ import annotations

import threading


def start_temporary_api() -> threading.Thread | None:
    """Start the temporary API server on a thread; None when a real server is configured."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    thread = threading.Thread(target=SubprocessASGIServer().start, name="prefect-temporary-api", daemon=True)
    thread.start()
    return thread
