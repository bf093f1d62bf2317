"""Validation of object keys before they are used to build a local path or a child key.

A key comes from a listing of storage that sites write to; it is untrusted. A key is accepted
only when it is a relative, forward-slash path whose parts are neither empty, `.` nor `..` and
contain no control characters or backslashes.
"""

from __future__ import annotations

import re

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class UnsafeKeyError(ValueError):
    """An object key that could escape its root or is not a plain relative key."""


def safe_key(key: str) -> str:
    """Return `key` unchanged when it is a safe relative key, otherwise raise `UnsafeKeyError`."""
    if not key or key.startswith("/") or _BAD_CHARS.search(key):
        raise UnsafeKeyError(f"unsafe object key: {key!r}")
    parts = key.split("/")
    # a trailing slash (a "folder" marker) is tolerated; inner empty parts are not
    if parts[-1] == "":
        parts = parts[:-1]
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise UnsafeKeyError(f"unsafe object key: {key!r}")
    if ":" in parts[0]:
        raise UnsafeKeyError(f"unsafe object key: {key!r}")
    return key


def join_key(*parts: str) -> str:
    """Join key parts with `/`, dropping empty parts, and check the result is safe."""
    key = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    return safe_key(key)
