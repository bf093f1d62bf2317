"""Configuration files named by a local path or an `s3://` URI: protocol, unit catalog, study configuration.

A sponsor keeps a study's protocol and settings beside its data, often in the same bucket. The
parsers in contracts/ take text and may not import storage (they sit below it), so this module reads
the bytes through storage, with the run's endpoint and boto3's credential chain like every other
object, and hands the text to the same parsers a local file goes through. A file in S3 therefore
loads exactly like a local one, and every error names the URI as the operator wrote it.

Local paths keep their own loaders (`contracts.protocol.load_protocol`, `contracts.units.load_units`):
nothing changes for them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from contracts.protocol import Protocol, ProtocolError, load_protocol, parse_protocol
from contracts.units import UnitCatalog, UnitCatalogError, load_units, parse_units
from storage import open_store

S3_SCHEME = "s3://"
YAML_SUFFIXES = (".yaml", ".yml")


def is_remote(location: str | None) -> bool:
    """True for an `s3://bucket/key` location (read through storage), False for a local path."""
    return bool(location) and str(location).startswith(S3_SCHEME)


def split_location(location: str) -> tuple[str, str]:
    """(`s3://bucket/folder`, `name.yaml`) of an S3 object URI; the object must name a file."""
    bucket_and_key = location[len(S3_SCHEME):]
    if "/" not in bucket_and_key.strip("/") or location.endswith("/"):
        raise ValueError(f"{location}: an s3:// configuration file needs a bucket and an object key")
    parent, _, name = location.rstrip("/").rpartition("/")
    return parent, name


def read_text(location: str, endpoint_url: str | None = None) -> str:
    """The UTF-8 text of a configuration file in S3 (storage errors name the URI and the endpoint)."""
    parent, name = split_location(location)
    data = open_store(parent, endpoint_url).read_bytes(name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{location}: not UTF-8 text (byte {error.start})") from None


def _yaml(text: str, location: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{location}: not valid YAML: {error}") from None


def load_protocol_at(location: str | None, endpoint_url: str | None = None) -> Protocol:
    """The protocol file at a path or S3 URI (None: the bundled SZ003), with its sibling versions.

    From S3 the siblings are the other `*.yaml` objects beside it that carry the same protocol id,
    as files beside a local protocol are (`Protocol.versions`).
    """
    if not is_remote(location):
        return load_protocol(location)
    assert location is not None
    protocol = parse_protocol(_yaml(read_text(location, endpoint_url), location), location)
    parent, name = split_location(location)
    store = open_store(parent, endpoint_url)
    versions = {protocol.version.tivers: protocol.version}
    for info in sorted(store.list(""), key=lambda i: i.key):
        if "/" in info.key or info.key == name or not info.key.endswith(YAML_SUFFIXES):
            continue
        sibling = f"{parent}/{info.key}"
        raw = _yaml(read_text(sibling, endpoint_url), sibling)
        if isinstance(raw, dict) and str(raw.get("id")) == protocol.id and "version" in raw:
            try:
                version = parse_protocol(raw, sibling).version
            except ProtocolError as error:
                raise ProtocolError(f"another version of protocol {protocol.id}: {error}") from None
            versions.setdefault(version.tivers, version)
    ordered = tuple(sorted(versions.values(), key=lambda v: v.effective))
    return replace(protocol, versions=ordered, path=location)


def load_units_at(location: str | None, endpoint_url: str | None = None) -> UnitCatalog:
    """The unit catalog at a path or S3 URI (None: the bundled contracts/units.yaml)."""
    if not is_remote(location):
        return load_units(location)
    assert location is not None
    try:
        return parse_units(_yaml(read_text(location, endpoint_url), location))
    except UnitCatalogError as error:
        raise UnitCatalogError(f"{location}: {error}") from None
