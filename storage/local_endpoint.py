"""A local S3-compatible endpoint (moto in server mode on loopback) for the demo and tests.

It is a real HTTP server speaking the S3 protocol, so everything that talks to it goes through
boto3 exactly as it would against AWS or MinIO. moto is a demo and development dependency (the
`demo` extra), never needed by a nightly audit against a real endpoint; it is imported here only.

One difference from moto as it comes: moto checks a conditional write's precondition
(`If-None-Match: *`, `If-Match: <etag>`) and then writes, with other requests free to run in
between, so two racing conditional writes can both succeed. S3 and MinIO decide them atomically,
and the audit's lock relies on that. `LocalS3Server` serialises every write request, which makes
its conditional writes atomic as well.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

#: moto accepts any credentials; these are only ever sent to the loopback endpoint.
_DEMO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "demo-access-key",
    "AWS_SECRET_ACCESS_KEY": "demo-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def local_s3_server(ip_address: str = "127.0.0.1", port: int = 0):
    """A moto S3 server (not started) whose write requests run one at a time (see the module docstring)."""
    import threading

    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
    from werkzeug.serving import make_server

    writes = threading.Lock()

    def serialised_writes(app):
        def middleware(environ, start_response):
            if environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
                with writes:
                    return list(app(environ, start_response))  # the whole request, body included
            return app(environ, start_response)
        return middleware

    class LocalS3Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = serialised_writes(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return LocalS3Server(ip_address=ip_address, port=port, verbose=False)


@contextmanager
def local_s3_endpoint(buckets: tuple[str, ...] = ()) -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 (a free port), create `buckets`, yield its URL.

    Demo credentials are put in this process's environment for the lifetime of the endpoint and
    restored afterwards, so that no real credential can ever be sent to it.
    """
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per S3 request in the operator's console
    saved = {name: os.environ.get(name) for name in _DEMO_CREDENTIALS}
    os.environ.update(_DEMO_CREDENTIALS)
    server = local_s3_server()
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=url)
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
