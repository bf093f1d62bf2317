"""The discrepancy policy: each class's severity and its SDTM DV terms, as data (contracts/policy.yaml).

Which difference between the site and the data is an important protocol deviation and which is a
query is the sponsor's policy, not the software's: the comparison reads the severities here
(checks.comparison.compare) and reporting the DV terms (reporting.dv). A study names its own file in its
configuration (`policy:`); the shipped file follows the SZ003 criteria specification. Unknown keys,
classes or severities are errors naming the file and the line (docs/schemas/policy.schema.json).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from contracts.datafile import (
    DataFileError,
    FileModel,
    LocatedError,
    load_data_file,
    parse_mapping,
    parse_yaml,
)
from contracts.enums import DiscrepancyClass, Severity

#: the conditions a class's severity may depend on (`severity_when`)
HIDES_INELIGIBLE_ENROLMENT = "hides_ineligible_enrolment"


class PolicyError(DataFileError):
    """The policy file is malformed: every problem with its file, line and key."""


class DvTerms(FileModel):
    dvdecod: str = Field(description="Protocol Deviation Coded Term")
    dvcat: str = Field(description="Category for Protocol Deviation")
    dvscat: str = Field("", description="Subcategory for Protocol Deviation")


class DvRule(DvTerms):
    check: str | None = Field(None, description="regular expression on CHECK_ID; absent: every finding")

    @field_validator("check")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from None
        return value


class ClassPolicy(FileModel):
    title: str = ""
    severity: Severity | None = Field(None, description="IMPORTANT or QUERY (PROCESS: per check)")
    severity_when: dict[Literal["hides_ineligible_enrolment"], Severity] = Field(
        default_factory=dict, description="IE_MISMATCH: the severity when the checklist hides an ineligible "
                                          "enrolment")
    dv: list[DvRule] = Field(default_factory=list, description="DV terms, first matching rule wins")


class Deviations(FileModel):
    default: DvTerms
    term_max: int = Field(200, ge=1, le=200, description="DVTERM length (SAS v5: at most 200)")


class Policy(FileModel):
    """The whole policy file."""

    classes: dict[DiscrepancyClass, ClassPolicy]
    deviations: Deviations

    def severity(self, name: DiscrepancyClass, condition: str | None = None) -> str:
        """The severity of a class (under `condition`, when the policy grades that case apart)."""
        entry = self.classes[name]
        chosen = entry.severity_when.get(condition, entry.severity) if condition else entry.severity  # type: ignore[arg-type]
        if chosen is None:
            raise ValueError(f"{name.value} has no severity of its own")
        return chosen.value

    def dv_rules(self) -> list[tuple[str, str | None, DvTerms]]:
        """(class, CHECK_ID pattern, terms) in the order they are tried."""
        return [(name.value, rule.check, rule) for name, entry in self.classes.items() for rule in entry.dv]


def _complete(policy: Policy) -> None:
    """Every class graded once: a severity for each (PROCESS: per check), severity_when for IE_MISMATCH."""
    missing = sorted(c.value for c in DiscrepancyClass if c not in policy.classes)
    if missing:
        raise LocatedError(("classes",), f"no entry for {missing}")
    for name, entry in policy.classes.items():
        if name is DiscrepancyClass.PROCESS:
            if entry.severity is not None:
                raise LocatedError(("classes", name.value, "severity"),
                                   "PROCESS findings take the severity of their process check (process_checks.yaml)")
        elif entry.severity is None:
            raise LocatedError(("classes", name.value), "missing key 'severity'")
        if entry.severity_when and name is not DiscrepancyClass.IE_MISMATCH:
            raise LocatedError(("classes", name.value, "severity_when"), "severity_when is for IE_MISMATCH only")


def parse_policy(raw: object, source: str = "policy") -> Policy:
    return parse_mapping(Policy, raw, source, check=_complete, error=PolicyError)


def parse_policy_text(text: str, source: str) -> Policy:
    return parse_yaml(Policy, text, source, check=_complete, error=PolicyError)


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy of `path` (a study's own file), or the bundled contracts/policy.yaml."""
    return load_data_file(parse_policy_text, "contracts", "policy.yaml", path, PolicyError)
