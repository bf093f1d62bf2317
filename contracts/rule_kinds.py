"""What each rule kind of a protocol file accepts and which delivered data it reads: the declarations.

A protocol file names a kind per leaf of a rule tree (docs/criteria.md). This module says, for every
kind, which keys a leaf may have and what they must hold (`validate`), and which domain test codes the
leaf reads (`inputs`, for completeness checks). How a kind is *evaluated* is the evaluation's business
(checks.evaluation.rules.RULE_BUILDERS, one builder per kind declared here), so validation, the
protocol loader and the evaluation all agree on one declaration, and none of them imports another.
Like pandera's split between a check's declaration and its polars backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: comparison operators of numeric kinds
OPS = (">=", ">", "<=", "<")
#: the findings domains a `threshold` / `coded` / `uln_*` leaf may read
FINDINGS_DOMAINS = ("LB", "VS", "FA", "TR")

#: per event domain: the columns the `event` kind reads. `each` is the variable whose listed values
#: each need a record when require_each is set; `occur` a Y/N occurrence flag.
EVENT_DOMAINS: dict[str, dict[str, str]] = {
    "MH": {"name": "MHTERM", "start": "MHSTDTC", "end": "MHENDTC", "ongoing": "MHENRF", "occur": "MHOCCUR",
           "each": "MHTERM"},
    "CM": {"name": "CMDECOD", "alt_name": "CMTRT", "start": "CMSTDTC", "end": "CMENDTC", "ongoing": "CMENRF"},
    "PR": {"name": "PRTRT", "start": "PRSTDTC", "end": "PRENDTC"},
}
_TIMING_KEYS = {"date", "on_or_after", "on_or_before", "or_ongoing"}
_OFFSET_KEYS = {"days_before", "years_before"}

#: the `lesion` kind's keys and their defaults
LESION_DEFAULTS: dict[str, Any] = {"target": "TARGET", "nodal_location": "LYMPH NODE", "min_mm": 10,
                                   "nodal_min_mm": 15}

#: the DM variables a `subject` leaf may read -> (value column of the reference table, exclusion column,
#: is a date). The birth date is not among them: it never leaves the landing area, and is reachable
#: only through the AGE_AT_CONSENT derived value.
SUBJECT_VARIABLES: dict[str, tuple[str, str, bool]] = {
    "SEX": ("SEX", "_X_SEX", False),
    "RFICDTC": ("CONSENT_DTC", "_X_RFICDTC", True),
}


@dataclass(frozen=True)
class DerivedValue:
    """A value computed from several delivered ones (checks.evaluation.derived has the formulas)."""

    inputs: dict[str, frozenset[str]]  # lower-case domain -> test codes read
    depends: tuple[str, ...] = ()  # derived values it reads (listed before it in DERIVED_VALUES)


#: name -> declaration. Order matters: a value may read derived values listed before it.
DERIVED_VALUES: dict[str, DerivedValue] = {
    "AGE_AT_CONSENT": DerivedValue({}),
    "CRCL_CG": DerivedValue({"lb": frozenset({"CREAT"}), "vs": frozenset({"WEIGHT"})}, ("AGE_AT_CONSENT",)),
    "LYM_ABS": DerivedValue({"lb": frozenset({"LYM", "LYMLE", "WBC"})}),
}


# ------------------------------------------------------------------------------------------ key checks


def check_keys(params: dict[str, Any], required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any]:
    """Raise ValueError on a missing or unknown key (unknown keys in a protocol are errors)."""
    required, allowed = set(required), set(required) | set(optional) | {"label"}
    missing = required - set(params)
    unknown = set(params) - allowed
    if missing or unknown:
        raise ValueError(f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    return params


def check_comparison(params: dict[str, Any]) -> None:
    """A numeric comparison is either `op` + `limit` or `range: [low, high]` (inclusive)."""
    if "range" in params:
        if "op" in params or "limit" in params:
            raise ValueError("give either range or op + limit")
        low, high = params["range"]
        if not float(low) <= float(high):
            raise ValueError("range must be [low, high]")
        return
    if params.get("op") not in OPS or not isinstance(params.get("limit"), int | float):
        raise ValueError(f"op must be one of {OPS} and limit a number")


def _finding_test(params: dict[str, Any], *, domain_default: str | None = None) -> None:
    domain = str(params.get("domain", domain_default or "")).upper()
    if domain not in FINDINGS_DOMAINS:
        raise ValueError(f"domain must be one of {sorted(FINDINGS_DOMAINS)}")
    if not isinstance(params.get("test"), str):
        raise ValueError("test must be a test code")


# ------------------------------------------------------------------------------------ per-kind checks


def _validate_threshold(params: dict[str, Any]) -> dict[str, Any]:
    check_keys(params, ["domain", "test"], ["op", "limit", "range"])
    _finding_test(params)
    check_comparison(params)
    return params


def _validate_derived(params: dict[str, Any]) -> dict[str, Any]:
    check_keys(params, ["value"], ["op", "limit", "range"])
    if str(params["value"]).upper() not in DERIVED_VALUES:
        raise ValueError(f"unknown derived value {params['value']!r} (known: {sorted(DERIVED_VALUES)})")
    check_comparison(params)
    return params


def _validate_uln(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def validate(params: dict[str, Any]) -> dict[str, Any]:
        check_keys(params, ["test", "op", key], ["domain"])
        _finding_test(params, domain_default="LB")
        check_comparison({"op": params["op"], "limit": params[key]})
        return params
    return validate


def _validate_coded(params: dict[str, Any]) -> dict[str, Any]:
    check_keys(params, ["domain", "test", "values"], ["valid"])
    _finding_test(params)
    if not isinstance(params["values"], list) or not params["values"]:
        raise ValueError("values must be a non-empty list")
    valid = params.get("valid", [])
    if valid and not {str(v).upper() for v in params["values"]} <= {str(v).upper() for v in valid}:
        raise ValueError("values must be a subset of valid")
    return params


def _validate_event(params: dict[str, Any]) -> dict[str, Any]:
    check_keys(params, ["domain", "match"], ["timing", "min_duration_days", "require_each"])
    domain = str(params["domain"]).upper()
    if domain not in EVENT_DOMAINS:
        raise ValueError(f"domain must be one of {sorted(EVENT_DOMAINS)}")
    match = params["match"]
    if not isinstance(match, dict) or not match or not all(isinstance(v, list) and v for v in match.values()):
        raise ValueError("match must map variables to non-empty lists of values")
    if params.get("require_each") and EVENT_DOMAINS[domain].get("each") not in match:
        raise ValueError(f"require_each needs match on {EVENT_DOMAINS[domain].get('each')}")
    for constraint in params.get("timing") or []:
        if not isinstance(constraint, dict) or set(constraint) - _TIMING_KEYS:
            raise ValueError(f"timing: unknown keys in {constraint!r}")
        if constraint.get("date") not in ("start", "end", "start_or_end"):
            raise ValueError("timing: date must be start, end or start_or_end")
        sides = [k for k in ("on_or_after", "on_or_before") if k in constraint]
        if len(sides) != 1:
            raise ValueError("timing: give exactly one of on_or_after / on_or_before")
        offset = constraint[sides[0]]
        if not isinstance(offset, dict) or len(offset) != 1 or set(offset) - _OFFSET_KEYS:
            raise ValueError("timing: the anchor is {days_before: N} or {years_before: N}")
        if not isinstance(next(iter(offset.values())), int):
            raise ValueError("timing: the anchor offset must be a whole number")
    duration = params.get("min_duration_days")
    if duration is not None and (not isinstance(duration, int) or duration < 1):
        raise ValueError("min_duration_days must be a positive whole number")
    return params


def _validate_lesion(params: dict[str, Any]) -> dict[str, Any]:
    check_keys(params, [], list(LESION_DEFAULTS))
    for key in ("min_mm", "nodal_min_mm"):
        if key in params and not isinstance(params[key], int | float):
            raise ValueError(f"{key} must be a number")
    return {**LESION_DEFAULTS, **params}


def _validate_subject(params: dict[str, Any]) -> dict[str, Any]:
    check_keys(params, ["variable"], ["values", "present", "unknown"])
    if params["variable"] not in SUBJECT_VARIABLES:
        raise ValueError(f"variable must be one of {sorted(SUBJECT_VARIABLES)}")
    if ("values" in params) == ("present" in params):
        raise ValueError("give either values or present: true")
    if "present" in params and params["present"] is not True:
        raise ValueError("present must be true")
    return params


# --------------------------------------------------------------------------------------------- inputs


def _test_inputs(params: dict[str, Any]) -> dict[str, set[str]]:
    return {str(params.get("domain", "LB")).lower(): {str(params["test"]).upper()}}


def _derived_inputs(params: dict[str, Any]) -> dict[str, set[str]]:
    name = str(params["value"]).upper()
    inputs: dict[str, set[str]] = {}
    for each in (name, *DERIVED_VALUES[name].depends):
        for domain, tests in DERIVED_VALUES[each].inputs.items():
            inputs.setdefault(domain, set()).update(tests)
    return inputs


def _event_inputs(params: dict[str, Any]) -> dict[str, set[str]]:
    domain = str(params["domain"]).upper()
    each = EVENT_DOMAINS[domain].get("each")
    if each and params.get("require_each"):
        return {domain.lower(): {str(v).upper() for v in params["match"][each]}}
    return {}


Validator = Callable[[dict[str, Any]], dict[str, Any]]
Inputs = Callable[[dict[str, Any]], dict[str, set[str]]]


@dataclass(frozen=True)
class KindDeclaration:
    """A rule kind: how a leaf's keys are checked (returning them, defaults filled in) and what it reads."""

    validate: Validator
    inputs: Inputs


RULE_KINDS: dict[str, KindDeclaration] = {
    "threshold": KindDeclaration(_validate_threshold, _test_inputs),
    "derived": KindDeclaration(_validate_derived, _derived_inputs),
    "uln_multiple": KindDeclaration(_validate_uln("multiple"), _test_inputs),
    "uln_difference": KindDeclaration(_validate_uln("difference"), _test_inputs),
    "coded": KindDeclaration(_validate_coded, _test_inputs),
    "event": KindDeclaration(_validate_event, _event_inputs),
    "lesion": KindDeclaration(_validate_lesion, lambda params: {"tr": {"LDIAM", "LPERP"}, "tu": {"TUMIDENT"}}),
    "subject": KindDeclaration(_validate_subject, lambda params: {}),
}


def leaf_inputs(kind: str, params: dict[str, Any]) -> dict[str, set[str]]:
    """Lower-case domain -> test codes (MH: terms) one leaf reads."""
    return RULE_KINDS[kind].inputs(params)
