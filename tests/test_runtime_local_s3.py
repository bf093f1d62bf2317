"""`screening-audit local-s3`, the trial's S3 endpoint: buckets made before it says it is ready, a clean stop,
and one line (not a hang) when its port is taken."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import boto3

CLI = str(Path(sys.executable).with_name("screening-audit"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serves_the_buckets_it_was_asked_for_and_stops_on_sigterm() -> None:
    port = _free_port()
    server = subprocess.Popen([CLI, "local-s3", "--port", str(port), "--bucket", "sz003-landing", "--bucket",
                               "sz003-reports"], stderr=subprocess.PIPE, text=True)
    try:
        ready = server.stderr.readline()
        assert ready == (f"local S3 endpoint (moto, in memory, trial only) at http://127.0.0.1:{port}; buckets: "
                         "sz003-landing, sz003-reports\n")
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="any",
                              aws_secret_access_key="any", region_name="us-east-1")
        assert sorted(b["Name"] for b in client.list_buckets()["Buckets"]) == ["sz003-landing", "sz003-reports"]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_port_in_use_is_one_line_not_a_hang() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([CLI, "local-s3", "--port", str(port)], capture_output=True, text=True, timeout=60,
                                check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} of 127.0.0.1 is in use: stop what uses it, or choose another with --port (and use "
        "that port in S3_ENDPOINT_URL)"]


def test_an_invalid_bucket_name_is_one_line_before_anything_starts() -> None:
    """A trial's typo (an upper-case or underscored bucket) was botocore's traceback after the server had started
    (a user trial); it is now one line naming every bad name, exit 2, and no server."""
    port = _free_port()
    result = subprocess.run([CLI, "local-s3", "--port", str(port), "--bucket", "sz003-landing", "--bucket",
                             "SZ003_Reports", "--bucket", "ab"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: not a valid S3 bucket name: 'SZ003_Reports', 'ab' (3 to 63 lowercase letters, digits, dots and "
        "hyphens, beginning and ending with a letter or a digit)"]
    assert "Traceback" not in result.stdout + result.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nothing was started on the port


def test_s3_bucket_naming_rules() -> None:
    from runtime.local_s3 import _BUCKET_NAME

    good = ["sz003-landing", "a.b-c", "abc", "x" * 63, "1-2-3"]
    bad = ["ab", "x" * 64, "Abc", "a_b", "-abc", "abc-", "a..b", "192.168.1.1", ".abc", "abc.", ""]
    assert [name for name in good if not _BUCKET_NAME.match(name)] == []
    assert [name for name in bad if _BUCKET_NAME.match(name)] == []
