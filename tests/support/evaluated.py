"""Comparison tests build an EligibilityResult by hand; these fill in what evaluate() would add for the
same delivered DM (subject_dm) and the derived values those hand-made rows quote."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl

from checks.evaluation.exclusions import drop_rejected, normalise
from checks.evaluation.reference import subject_dm, subject_reference
from contracts.protocol import Protocol
from contracts.records import EligibilityResult
from core import values

#: component -> the derived value its hand-made rows quote in VALUE
DERIVED_COMPONENTS = {"IN11.CRCL": "CRCL_CG"}


def as_evaluated(result: EligibilityResult, domains: dict[str, pl.DataFrame], protocol: Protocol, as_of: date,
                 *, exclusions: pl.DataFrame | None = None, rejected: pl.DataFrame | None = None) -> EligibilityResult:
    """`result` with `subject_dm` read from `domains["dm"]` by the evaluation's own code, and `derived` from
    the VALUE and DTC of its rows for DERIVED_COMPONENTS."""
    clean = {name.lower(): drop_rejected(frame, normalise(rejected)) for name, frame in domains.items()}
    dm = subject_dm(subject_reference(clean, protocol, as_of, normalise(exclusions))).sort("USUBJID")
    number = values.parse_number("VALUE").struct.field("number")
    derived = result.eligibility.filter(pl.col("CHECK_ID").is_in(list(DERIVED_COMPONENTS))).select(
        "USUBJID", pl.col("CHECK_ID").replace_strict(DERIVED_COMPONENTS).alias("NAME"), number.alias("LO"),
        number.alias("HI"), "DTC")
    return replace(result, subject_dm=dm, derived=derived)
