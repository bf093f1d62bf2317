"""`RunOutputs`: everything one audit run publishes, handed from the flow to `publish`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl


@dataclass(frozen=True)
class RunOutputs:
    """The tables and records of one run of one study as of one date.

    `discrepancies` is the comparison's table after `apply_history` (STATUS, FIRST_SEEN, DAYS_OPEN
    filled, RESOLVED rows appended). `validation` is the findings table (contracts.FINDINGS): the flow
    should pass ingestion's findings together with Great Expectations' so a site sees every data
    problem in one place. `run_manifest` is what `build_run_manifest` returned.
    """

    study: str
    as_of: date
    protocol_id: str
    protocol_version: str
    subjects: pl.DataFrame
    eligibility: pl.DataFrame
    discrepancies: pl.DataFrame
    validation: pl.DataFrame
    run_manifest: dict[str, Any]
    data_docs: Path | None = None
    expectations: list[dict[str, Any]] = field(default_factory=list)
