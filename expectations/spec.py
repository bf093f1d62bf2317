"""expectations/suites.yaml as typed, validated configuration.

The suites themselves are generated from contracts/domains.yaml, contracts/units.yaml and the protocol;
this file only holds what those sources do not say (which variable is a result, which check a failure
triggers, the readable messages). Unknown keys are errors, so a typo cannot silently disable a check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path

import yaml


class SuiteConfigError(ValueError):
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


@dataclass(frozen=True)
class ResultRoles:
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
class Condition:
    """When a conditionally needed result is needed (see `conditional_needs` in suites.yaml)."""

    sex: tuple[str, ...] = ()
    result_any: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "LB.HBSAG" -> ("POSITIVE",)
    with_tests: tuple[str, ...] = ()  # "LB.CREAT"


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
    conditional_needs: dict[str, Condition]  # "LB.HCG" -> condition
    reference_limits: dict[tuple[str, str], tuple[float, float]]
    checks: dict[CheckKind, CheckText]


_TOP = {"results", "not_done", "required_exceptions", "identifying", "private", "needed_results", "ie_checklist",
        "conditional_needs", "reference_limits", "checks"}
_ROLE_KEYS = {"test", "result", "unit", "low", "high", "status"}
_CHECK_KEYS = {"meaning", "action", "message", "observed"}
_CONDITION_KEYS = {"sex", "result_any", "with"}
_EXCEPTIONS = {"not_done", "unit"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _strict(where: str, raw: object, allowed: set[str]) -> dict:
    if not isinstance(raw, dict):
        raise SuiteConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - allowed
    if unknown:
        raise SuiteConfigError(f"{where}: unknown keys {sorted(unknown)}")
    return raw


def _decisions(where: str, raw: object, extra: set[str] | None = None) -> tuple[str, ...]:
    body = _strict(where, raw, {"decisions", *(extra or set())})
    return tuple(str(d) for d in body.get("decisions") or ())


def _checks(raw: object) -> dict[CheckKind, CheckText]:
    body = _strict("checks", raw, {k.value for k in CheckKind})
    missing = {k.value for k in CheckKind} - set(body)
    if missing:
        raise SuiteConfigError(f"checks: no text for {sorted(missing)}")
    out: dict[CheckKind, CheckText] = {}
    for kind, text in body.items():
        entry = _strict(f"checks.{kind}", text, _CHECK_KEYS)
        if set(entry) != _CHECK_KEYS:
            raise SuiteConfigError(f"checks.{kind}: needs {sorted(_CHECK_KEYS)}")
        if entry["action"] not in {a.value for a in Action}:
            raise SuiteConfigError(f"checks.{kind}.action: {entry['action']!r} not in {[a.value for a in Action]}")
        out[CheckKind(kind)] = CheckText(meaning=str(entry["meaning"]), action=Action(entry["action"]),
                                         message=str(entry["message"]), observed=str(entry["observed"]))
    return out


def parse_suites(raw: object) -> SuiteConfig:
    """Build the configuration from the parsed YAML; raise SuiteConfigError on anything unknown."""
    body = _strict("suites.yaml", raw, _TOP)
    results = {dom.upper(): ResultRoles(**_strict(f"results.{dom}", roles, _ROLE_KEYS))
               for dom, roles in (body.get("results") or {}).items()}
    exceptions: dict[str, dict[str, str]] = {}
    for dom, variables in (body.get("required_exceptions") or {}).items():
        for variable, why in _strict(f"required_exceptions.{dom}", variables, set(variables)).items():
            if why not in _EXCEPTIONS:
                raise SuiteConfigError(f"required_exceptions.{dom}.{variable}: {why!r} not in {_EXCEPTIONS}")
        exceptions[dom.upper()] = {str(v): str(w) for v, w in variables.items()}
    conditions: dict[str, Condition] = {}
    for test, cond in (body.get("conditional_needs") or {}).items():
        entry = _strict(f"conditional_needs.{test}", cond, _CONDITION_KEYS)
        if "." not in test:
            raise SuiteConfigError(f"conditional_needs: {test!r} must be DOMAIN.TESTCD")
        result_any = {str(t).upper(): tuple(str(v) for v in values)
                      for t, values in (entry.get("result_any") or {}).items()}
        if any("." not in t for t in result_any):
            raise SuiteConfigError(f"conditional_needs.{test}.result_any: keys must be DOMAIN.TESTCD")
        conditions[test.upper()] = Condition(
            sex=tuple(entry.get("sex") or ()), result_any=result_any, with_tests=tuple(entry.get("with") or ()))
    needed = body.get("needed_results") or {}
    limits: dict[tuple[str, str], tuple[float, float]] = {}
    for dom, tests in (body.get("reference_limits") or {}).items():
        for test, pair in tests.items():
            if len(pair) != 2 or float(pair[0]) >= float(pair[1]):
                raise SuiteConfigError(f"reference_limits.{dom}.{test}: must be [low, high] with low < high")
            limits[(dom.upper(), test.upper())] = (float(pair[0]), float(pair[1]))
    return SuiteConfig(
        results=results,
        not_done=tuple(body.get("not_done") or ()),
        required_exceptions=exceptions,
        identifying=tuple(body.get("identifying") or ()),
        private=tuple(body.get("private") or ()),
        needed_decisions=_decisions("needed_results", needed, {"test_variables", "alternatives"}),
        test_variables={str(d).upper(): ResultRoles(unit="", **_strict(f"needed_results.test_variables.{d}", v,
                                                                       {"test", "result"}))
                        for d, v in (needed.get("test_variables") or {}).items()},
        alternatives=tuple(tuple(str(t).upper() for t in group) for group in needed.get("alternatives") or ()),
        ie_decisions=_decisions("ie_checklist", body.get("ie_checklist") or {}),
        conditional_needs=conditions,
        reference_limits=limits,
        checks=_checks(body.get("checks")),
    )


def placeholders(template: str) -> list[str]:
    """The {NAME} placeholders of a message template, in order."""
    return _PLACEHOLDER.findall(template)


@cache
def _bundled() -> SuiteConfig:
    text = resources.files("expectations").joinpath("suites.yaml").read_text(encoding="utf-8")
    return parse_suites(yaml.safe_load(text))


def load_suites(path: str | Path | None = None) -> SuiteConfig:
    """The bundled expectations/suites.yaml, or another file of the same shape."""
    if path is None:
        return _bundled()
    return parse_suites(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
