"""Data files named by a local path or an `s3://` URI: protocol, unit catalog, process checks, policy, study
configuration.

A sponsor keeps a study's protocol and settings beside its data, often in the same bucket. The parsers
in contracts/ (and checks/) take text and may not import storage (they sit below it), so this module
reads the bytes through storage, with the run's endpoint and boto3's credential chain like every other
object, and hands the text to the same parsers a local file goes through. A file in S3 therefore loads
exactly like a local one, and every error names the URI as the operator wrote it (with its line).

Local paths keep their own loaders (`contracts.protocol.load_protocol`, `contracts.units.load_units`...):
nothing changes for them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from checks.comparison.process_config import ProcessCheck, load_process_checks, parse_process_checks_text
from contracts.policy import Policy, load_policy, parse_policy_text
from contracts.protocol import Protocol, protocol_from_texts
from contracts.protocol import load_protocol as load_local_protocol
from contracts.units import UnitCatalog, load_units, parse_units_text
from storage import open_store

S3_SCHEME = "s3://"
YAML_SUFFIXES = (".yaml", ".yml")
T = TypeVar("T")


def is_remote(location: str | None) -> bool:
    """True for an `s3://bucket/key` location (read through storage), False for a local path."""
    return bool(location) and str(location).startswith(S3_SCHEME)


def split_location(location: str) -> tuple[str, str]:
    """(`s3://bucket/folder`, `name.yaml`) of an S3 object URI; the object must name a file."""
    bucket_and_key = location[len(S3_SCHEME):]
    if "/" not in bucket_and_key.strip("/") or location.endswith("/"):
        raise ValueError(f"{location}: an s3:// data file needs a bucket and an object key")
    parent, _, name = location.rstrip("/").rpartition("/")
    return parent, name


def read_text(location: str, endpoint_url: str | None = None) -> str:
    """The UTF-8 text of a file in S3 (storage errors name the URI and the endpoint)."""
    parent, name = split_location(location)
    data = open_store(parent, endpoint_url).read_bytes(name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{location}: not UTF-8 text (byte {error.start})") from None


def _yaml_beside(folder: str, endpoint_url: str | None, leave_out: str = "") -> list[tuple[str, str]]:
    """(URI, text) of the `*.yaml` objects directly in an S3 folder (not in its sub-folders), by name."""
    store = open_store(folder, endpoint_url)
    names = sorted(info.key for info in store.list("") if "/" not in info.key and info.key.endswith(YAML_SUFFIXES))
    return [(f"{folder}/{name}", read_text(f"{folder}/{name}", endpoint_url)) for name in names if name != leave_out]


def load_protocol_at(location: str | None, endpoint_url: str | None = None) -> Protocol:
    """The protocol at a path or S3 URI (None: the bundled SZ003), with all its versions.

    As on disk: a version file (the other `*.yaml` objects beside it with the same `id` are its other
    versions) or a folder (`s3://bucket/protocols/`, every version file in it).
    """
    if not is_remote(location):
        return load_local_protocol(location)
    assert location is not None
    if location.endswith("/"):
        folder = location.rstrip("/")
        return protocol_from_texts(None, _yaml_beside(folder, endpoint_url), where=location)
    parent, name = split_location(location)
    return protocol_from_texts((location, read_text(location, endpoint_url)),
                               _yaml_beside(parent, endpoint_url, leave_out=name), where=location)


def _plain_name(name: str) -> bool:
    """Whether an object's name can be a file name of a local copy: no folder, not hidden, not `.` or `..`."""
    return bool(name) and name == Path(name).name and not name.startswith(".")


@contextmanager
def local_protocol(location: str, endpoint_url: str | None = None) -> Iterator[tuple[Path, str, str]]:
    """(local path, local folder, what to call that folder) of a protocol to read as files: itself for a path; for
    an S3 version file or folder, a temporary copy of it and the `*.yaml` objects beside it (its other versions,
    as `load_protocol_at` reads them), named as the bucket names them, the folder called by its URI.

    Why: the protocol linter reads files with their lines (`check-protocol`), and a night's protocol in S3 could
    not be checked before the night ran it (a user trial). An object's name is used only when it is a plain file
    name (no folder, no `..`): object keys are never trusted as paths."""
    if not is_remote(location):
        path = Path(location)
        yield path, path if path.is_dir() else path.parent, str(path if path.is_dir() else path.parent)
        return
    folder = location.rstrip("/") if location.endswith("/") else split_location(location)[0]
    with tempfile.TemporaryDirectory(prefix="screening-audit-protocol-") as tmp:
        copy = Path(tmp)
        for uri, text in _yaml_beside(folder, endpoint_url):
            name = uri.rpartition("/")[2]
            if _plain_name(name):
                (copy / name).write_text(text, encoding="utf-8")
        if not location.endswith("/"):
            name = split_location(location)[1]
            if not _plain_name(name):
                raise ValueError(f"{location}: not a plain file name")
            if not (copy / name).is_file():  # not a *.yaml object beside itself: read it (or say it is not there)
                (copy / name).write_text(read_text(location, endpoint_url), encoding="utf-8")
            yield copy / name, copy, folder
        else:
            yield copy, copy, folder


def _load_at(location: str | None, endpoint_url: str | None, local: Callable[[str | None], T],
             parse: Callable[[str, str], T]) -> T:
    if not is_remote(location):
        return local(location)
    assert location is not None
    return parse(read_text(location, endpoint_url), location)


def load_units_at(location: str | None, endpoint_url: str | None = None) -> UnitCatalog:
    """The unit catalog at a path or S3 URI (None: the bundled contracts/units.yaml)."""
    return _load_at(location, endpoint_url, load_units, parse_units_text)


def load_process_checks_at(location: str | None, endpoint_url: str | None = None) -> tuple[ProcessCheck, ...]:
    """The process checks at a path or S3 URI (None: the bundled ones)."""
    return _load_at(location, endpoint_url, load_process_checks, parse_process_checks_text)


def load_policy_at(location: str | None, endpoint_url: str | None = None) -> Policy:
    """The discrepancy policy at a path or S3 URI (None: the bundled contracts/policy.yaml)."""
    return _load_at(location, endpoint_url, load_policy, parse_policy_text)
