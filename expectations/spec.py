"""expectations/suites.yaml as typed, validated configuration.

The suites themselves are generated from contracts/domains.yaml, contracts/units.yaml and the protocol;
this file only holds what those sources do not say (which variable is a result, which check a failure
triggers, the readable messages). When a result is needed only under a condition is the protocol's to
say (contracts.needs reads it from the rule trees), so it is not here. The file's shape is a pydantic
model (`SuitesFile`, docs/schemas/suites.schema.json); unknown keys are errors naming the line, so a
typo cannot silently disable a check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from contracts.datafile import (
    DataFileError,
    FileModel,
    load_data_file,
    parse_mapping,
    parse_yaml,
)


class SuiteConfigError(DataFileError):
    """expectations/suites.yaml is malformed (unknown key, unknown check kind, bad template...)."""


class Action(StrEnum):
    """What a failing row leads to, besides its finding."""

    FINDING = "finding"  # reported only
    EXCLUDE = "exclude"  # reported, and the value of VARIABLE is not used for eligibility
    REJECT = "reject"  # reported, and the whole row is dropped


class CheckKind(StrEnum):
    """The generic checks; each has one builder in expectations.checks."""

    REQUIRED = "required"
    IDENTIFYING = "identifying"
    REQUIRED_UNLESS_NOT_DONE = "required_unless_not_done"
    ALLOWED = "allowed"
    STUDY = "study"
    SITE = "site"
    SUBJECT_SITE = "subject_site"
    IN_DM = "in_dm"
    ISO_DATE = "iso_date"
    UNIQUE_KEY = "unique_key"
    NUMERIC_RESULT = "numeric_result"
    CODED_RESULT = "coded_result"
    UNIT_KNOWN = "unit_known"
    PLAUSIBLE_LOW = "plausible_low"
    PLAUSIBLE_HIGH = "plausible_high"
    RANGE_NUMERIC = "range_numeric"
    RANGE_ORDER = "range_order"
    RANGE_UNIT = "range_unit"
    IE_CRITERION = "ie_criterion"
    IE_CATEGORY = "ie_category"
    NEEDED_RESULTS = "needed_results"
    NEEDED_RESULTS_SITE = "needed_results_site"
    IE_CHECKLIST = "ie_checklist"
    FORMULA_TEXT = "formula_text"


class ResultRoles(FileModel):
    """Which variables of a findings domain hold the test code, result, unit, range and status."""

    test: str
    result: str
    unit: str
    low: str | None = None
    high: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class CheckText:
    meaning: str
    action: Action
    message: str
    observed: str


@dataclass(frozen=True)
class SuiteConfig:
    results: dict[str, ResultRoles]  # upper-case domain -> roles
    not_done: tuple[str, ...]
    required_exceptions: dict[str, dict[str, str]]  # domain -> variable -> "not_done" | "unit"
    identifying: tuple[str, ...]
    private: tuple[str, ...]  # values never quoted nor handed to GE
    needed_decisions: tuple[str, ...]
    test_variables: dict[str, ResultRoles]  # domain -> test / result variables, for needs outside `results`
    alternatives: tuple[tuple[str, ...], ...]  # ("TR.LDIAM", "TR.LPERP"): any one is enough
    ie_decisions: tuple[str, ...]
    reference_limits: dict[tuple[str, str], tuple[float, float]]
    checks: dict[CheckKind, CheckText]


# ------------------------------------------------------------------------------------- the file's model


class TestVariablesModel(FileModel):
    __test__ = False  # not a pytest test class despite the name

    test: str
    result: str


class NeededResultsModel(FileModel):
    decisions: list[str] = Field(default_factory=list, description="whose subjects need every result")
    test_variables: dict[str, TestVariablesModel] = Field(default_factory=dict)
    alternatives: list[list[str]] = Field(default_factory=list, description="any one of a group is enough")


class DecisionsModel(FileModel):
    decisions: list[str] = Field(default_factory=list)


class CheckTextModel(FileModel):
    meaning: str
    action: Action
    message: str
    observed: str


def _limits(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] >= value[1]:
        raise ValueError("must be [low, high] with low < high")
    return value


class SuitesFile(FileModel):
    """expectations/suites.yaml as its maintainer writes it (docs/validation.md)."""

    results: dict[str, ResultRoles] = Field(default_factory=dict)
    not_done: list[str] = Field(default_factory=list)
    required_exceptions: dict[str, dict[str, Literal["not_done", "unit"]]] = Field(default_factory=dict)
    identifying: list[str] = Field(default_factory=list)
    private: list[str] = Field(default_factory=list)
    needed_results: NeededResultsModel = NeededResultsModel()
    ie_checklist: DecisionsModel = DecisionsModel()
    reference_limits: dict[str, dict[str, Annotated[tuple[float, float], AfterValidator(_limits)]]] = Field(
        default_factory=dict)
    checks: dict[CheckKind, CheckTextModel]

    @model_validator(mode="after")
    def _every_check_has_text(self) -> SuitesFile:
        missing = sorted(k.value for k in CheckKind if k not in self.checks)
        if missing:
            raise ValueError(f"checks: no text for {missing}")
        return self


def _config(model: SuitesFile) -> SuiteConfig:
    needed = model.needed_results
    return SuiteConfig(
        results={dom.upper(): roles for dom, roles in model.results.items()},
        not_done=tuple(model.not_done),
        required_exceptions={dom.upper(): dict(variables) for dom, variables in model.required_exceptions.items()},
        identifying=tuple(model.identifying),
        private=tuple(model.private),
        needed_decisions=tuple(needed.decisions),
        test_variables={dom.upper(): ResultRoles(unit="", test=v.test, result=v.result)
                        for dom, v in needed.test_variables.items()},
        alternatives=tuple(tuple(t.upper() for t in group) for group in needed.alternatives),
        ie_decisions=tuple(model.ie_checklist.decisions),
        reference_limits={(dom.upper(), test.upper()): pair for dom, tests in model.reference_limits.items()
                          for test, pair in tests.items()},
        checks={kind: CheckText(meaning=t.meaning, action=t.action, message=t.message, observed=t.observed)
                for kind, t in model.checks.items()},
    )


def parse_suites(raw: object, source: str = "suites.yaml") -> SuiteConfig:
    """Build the configuration from an already parsed document; raise SuiteConfigError on anything unknown."""
    return _config(parse_mapping(SuitesFile, raw, source, error=SuiteConfigError))


def parse_suites_text(text: str, source: str) -> SuiteConfig:
    """The configuration from the file's YAML text; errors name `source` and the line."""
    return _config(parse_yaml(SuitesFile, text, source, error=SuiteConfigError))


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> list[str]:
    """The {NAME} placeholders of a message template, in order."""
    return _PLACEHOLDER.findall(template)


def load_suites(path: str | Path | None = None) -> SuiteConfig:
    """The bundled expectations/suites.yaml, or another file of the same shape."""
    return load_data_file(parse_suites_text, "expectations", "suites.yaml", path, SuiteConfigError)
