"""Tunable limits of ingestion, in one frozen place (the defaults are the DTS's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class IngestOptions:
    #: a field longer than this is not a value (a broken export, a pasted document): its row is rejected
    max_field_chars: int = 1000
    #: a delivery without manifest.json older than this is reported (DTS section 1: 24 hours)
    incomplete_after: timedelta = timedelta(hours=24)


DEFAULT_OPTIONS = IngestOptions()
