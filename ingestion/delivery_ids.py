"""Delivery folder names: `YYYYMMDDTHHMMSSZ` (UTC), which sort in time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DELIVERY_ID = re.compile(r"^\d{8}T\d{6}Z$")


def parse_delivery_id(name: str) -> datetime | None:
    """The UTC time a delivery id stands for, or None when `name` is not a valid delivery id."""
    if not _DELIVERY_ID.match(name):
        return None
    try:
        return datetime.strptime(name, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:  # e.g. 20261332T250000Z has the shape but is no date
        return None
