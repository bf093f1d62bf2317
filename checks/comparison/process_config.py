"""The process-check file (checks/comparison/process_checks.yaml, or a study's own) as typed data.

Which process checks run, their titles, severities and parameters are policy a sponsor may change per
study without a release; what each check computes is code (checks.comparison.process, one function per
id). The file's shape is a pydantic model (`ProcessChecksFile`, docs/schemas/process-checks.schema.json):
each check id has exactly the parameters its function reads, and an unknown id or key is an error naming
the file and the line. Facts of the protocol are never parameters here: PC06's limit is the protocol's
(contracts.needs.derived_limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from contracts.datafile import (
    DataFileError,
    FileModel,
    load_data_file,
    parse_mapping,
    parse_yaml,
)
from contracts.enums import ReasonCode, Severity


class ProcessConfigError(DataFileError):
    """process_checks.yaml is malformed (unknown check id or key, bad severity...)."""


@dataclass(frozen=True)
class ProcessCheck:
    id: str
    title: str
    severity: str
    params: dict[str, Any] = field(default_factory=dict)


class NoParams(FileModel):
    """A check without parameters."""


class RecordSpec(FileModel):
    test: str = Field(description="the test-code column")
    date: str = Field(description="the date column")
    status: str | None = Field(None, description="a status column whose NOT DONE rows are not procedures")


class PC01Params(FileModel):
    records: dict[str, RecordSpec] = Field(min_length=1, description="lower-case domain -> its columns")


class PC03Params(FileModel):
    reason_code: ReasonCode = Field(description="the eligibility reason that marks a stale result")


class PC06Params(FileModel):
    component: str = Field(description="the component whose derived value and limit the site's number is "
                                       "compared with (its limit is the protocol's)")
    lb_test: str = Field(description="the site-reported test (converted with the unit catalog)")
    relative_tolerance: float = Field(ge=0, description="|site - recomputed| > tolerance x recomputed")


class _Check(FileModel):
    title: str = ""
    severity: Severity


class PlainCheck(_Check):
    params: NoParams = NoParams()


class PC01Check(_Check):
    params: PC01Params


class PC03Check(_Check):
    params: PC03Params


class PC06Check(_Check):
    params: PC06Params


class CheckSet(FileModel):
    """The checks that run: a check left out does not run."""

    PC01: PC01Check | None = Field(None, description="screening procedure dated before informed consent")
    PC02: PlainCheck | None = Field(None, description="dosed before consent, or enrolled without a consent date")
    PC03: PC03Check | None = Field(None, description="enrolled on a stale result")
    PC04: PlainCheck | None = Field(None, description="IE checklist missing or incomplete")
    PC05: PlainCheck | None = Field(None, description="DM.AGE disagrees with the dates")
    PC06: PC06Check | None = Field(None, description="site creatinine clearance contradicts the recomputed one")


class ProcessChecksFile(FileModel):
    checks: CheckSet


def _checks(model: ProcessChecksFile) -> tuple[ProcessCheck, ...]:
    found = []
    for ident, entry in model.checks:
        if entry is not None:
            found.append(ProcessCheck(ident, entry.title, entry.severity.value,
                                      entry.params.model_dump(mode="json", exclude_none=True)))
    return tuple(sorted(found, key=lambda check: check.id))


def parse_process_checks(raw: object, source: str = "process checks") -> tuple[ProcessCheck, ...]:
    """The checks of an already parsed document; ProcessConfigError on an unknown id, key or value."""
    return _checks(parse_mapping(ProcessChecksFile, raw, source, error=ProcessConfigError))


def parse_process_checks_text(text: str, source: str) -> tuple[ProcessCheck, ...]:
    """The checks of a file's YAML text; errors name `source` and the line."""
    return _checks(parse_yaml(ProcessChecksFile, text, source, error=ProcessConfigError))


def load_process_checks(path: str | Path | None = None) -> tuple[ProcessCheck, ...]:
    """The process checks of `path` (a study's own file), or the bundled checks/comparison/process_checks.yaml."""
    return load_data_file(parse_process_checks_text, "checks.comparison", "process_checks.yaml", path,
                          ProcessConfigError)
