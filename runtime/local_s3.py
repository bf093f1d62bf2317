"""`screening-audit local-s3`: a local S3-compatible endpoint in the foreground, for a trial of the deployment.

deploy/README.md's trial runs the real deployment (server, work pool, worker) against S3 without an
AWS account: this serves moto's S3 (storage.local_endpoint, with atomic conditional writes so that
the audit's lease behaves as on S3) on loopback until Ctrl-C or SIGTERM, and creates the buckets the
trial's study files name. Loopback only, in memory only, and any access key is accepted: it must
never hold real data or be given real credentials.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
from collections.abc import Callable

#: What this process signs its own bucket-creation requests with (moto checks nothing).
TRIAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "trial", "AWS_SECRET_ACCESS_KEY": "trial", "AWS_DEFAULT_REGION": "us-east-1"}


class PortInUse(OSError):
    """The port is taken: moto's server would wait for ever for a socket it cannot bind."""


class InvalidBucketName(ValueError):
    """A bucket S3 would refuse to create: said before the server starts, not as botocore's traceback."""


#: S3's rules for a general-purpose bucket's name: 3 to 63 lowercase letters, digits, dots and hyphens, beginning and
#: ending with a letter or a digit, no two dots in a row, not shaped like an IP address
_BUCKET_NAME = re.compile(r"^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_bucket_names(buckets: tuple[str, ...]) -> None:
    """InvalidBucketName naming every bucket S3's naming rules refuse (the trial's study files name these buckets,
    and an S3 account would refuse them too)."""
    bad = [name for name in buckets if not _BUCKET_NAME.match(name)]
    if bad:
        raise InvalidBucketName(
            f"not a valid S3 bucket name: {', '.join(repr(name) for name in bad)} (3 to 63 lowercase letters, digits, "
            "dots and hyphens, beginning and ending with a letter or a digit)")


def serve_local_s3(port: int, buckets: tuple[str, ...], say: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM; create `buckets` first. Returns once the server has stopped."""
    import boto3

    from storage.local_endpoint import local_s3_server

    check_bucket_names(buckets)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(f"port {port} of 127.0.0.1 is in use: stop what uses it, or choose another with "
                            "--port (and use that port in S3_ENDPOINT_URL)") from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    os.environ.update(TRIAL_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    server = local_s3_server(port=port)
    server.start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        url = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=url)
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        say(f"local S3 endpoint (moto, in memory, trial only) at {url}; buckets: {', '.join(buckets) or 'none'}")
        stop.wait()
    finally:
        server.stop()
        say("local S3 endpoint stopped")
