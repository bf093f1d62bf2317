"""A local S3-compatible endpoint (moto in server mode on loopback) for the demo and tests.

It is a real HTTP server speaking the S3 protocol, so everything that talks to it goes through
boto3 exactly as it would against AWS or MinIO.
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


@contextmanager
def local_s3_endpoint(buckets: tuple[str, ...] = ()) -> Iterator[str]:
    """Start moto's S3 server on 127.0.0.1 (a free port), create `buckets`, yield its URL.

    Demo credentials are put in this process's environment for the lifetime of the endpoint and
    restored afterwards, so that no real credential can ever be sent to it.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per S3 request in the operator's console
    saved = {name: os.environ.get(name) for name in _DEMO_CREDENTIALS}
    os.environ.update(_DEMO_CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
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
