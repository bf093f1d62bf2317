"""What each rule kind of a protocol file accepts and which delivered data it reads: the declarations.

A protocol file names a kind per leaf of a rule tree (docs/criteria.md). Each kind is a pydantic model
here: its keys, their types and what they must hold. Together they are a discriminated union on `kind`
(`RuleLeaf`), so that the protocol loader, the JSON Schema an editor checks a protocol with
(docs/schemas/protocol.schema.json) and the error messages all come from one declaration. How a kind is
*evaluated* is the evaluation's business (checks.evaluation.rules.RULE_BUILDERS, one builder per kind
declared here), so validation, the protocol loader and the evaluation agree without importing each
other. Like pandera's split between a check's declaration and its polars backend.

Numbers may be written as a reference to a protocol parameter (`limit: $hbv_dna_limit_iu_ml`): it is
resolved while the file is validated, from the `parameters` given in the validation context, so the
evaluation only ever sees numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from contracts.datafile import FileModel

#: comparison operators of numeric kinds
OPS = (">=", ">", "<=", "<")
Op = Literal[">=", ">", "<=", "<"]
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

# ------------------------------------------------------------------------------------- value types

PARAMETER_REFERENCE = r"^\$[A-Za-z_][A-Za-z0-9_]*$"


def _parameter(value: Any, info: ValidationInfo) -> Any:
    """`$name` -> the protocol parameter's value (noted as used); a bool is never a number."""
    if isinstance(value, bool):
        raise ValueError("a number is required, not true/false")
    if isinstance(value, str) and value.startswith("$"):
        context = info.context if isinstance(info.context, dict) else {}
        parameters = context.get("parameters") or {}
        name = value[1:]
        if name not in parameters:
            known = ", ".join(f"${p}" for p in sorted(parameters)) or "none"
            raise ValueError(f"unknown parameter ${name} (parameters: {known})")
        context.setdefault("used", set()).add(name)
        return parameters[name]
    return value


def _as_code(value: Any) -> Any:
    """A coded value as text: `0` (a BCLC stage YAML reads as a number) is the code "0"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _reference_schema(number: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [number, {"type": "string", "pattern": PARAMETER_REFERENCE}]}


#: a number, or `$name` of a protocol parameter
Number = Annotated[int | float, BeforeValidator(_parameter), WithJsonSchema(_reference_schema({"type": "number"}))]
#: a whole number, or `$name` of a protocol parameter
Whole = Annotated[int, BeforeValidator(_parameter), WithJsonSchema(_reference_schema({"type": "integer"}))]
Code = Annotated[str, BeforeValidator(_as_code)]
Codes = Annotated[list[Code], Field(min_length=1)]
TestCode = Annotated[str, Field(min_length=1, pattern=r"^\S+$")]
FindingsDomain = Annotated[Literal["LB", "VS", "FA", "TR"], BeforeValidator(_upper)]
EventDomain = Annotated[Literal["MH", "CM", "PR"], BeforeValidator(_upper)]
DerivedName = Annotated[Literal["AGE_AT_CONSENT", "CRCL_CG", "LYM_ABS"], BeforeValidator(_upper)]
Label = Annotated[str | None, Field(description="how the leaf is named in combined evidence")]


def _comparison(model: Any) -> Any:
    """A numeric comparison is either `op` + `limit` or `range: [low, high]` (inclusive)."""
    if model.range is not None:
        if model.op is not None or model.limit is not None:
            raise ValueError("give either range or op + limit, not both")
        if not model.range[0] <= model.range[1]:
            raise ValueError("range must be [low, high] with low <= high")
    elif model.op is None or model.limit is None:
        raise ValueError("give op + limit, or range: [low, high]")
    return model


class Leaf(FileModel):
    """What every rule kind shares."""

    def params(self) -> dict[str, Any]:
        """The leaf's keys as the evaluation reads them: defaults filled in, absent keys left out."""
        return self.model_dump(exclude_none=True, exclude={"kind"})


class ThresholdRule(Leaf):
    """The in-window value of a finding test, in its protocol unit, compared with a limit."""

    kind: Literal["threshold"]
    domain: FindingsDomain
    test: TestCode
    op: Op | None = None
    limit: Number | None = None
    range: tuple[Number, Number] | None = Field(None, description="inclusive [low, high] instead of op + limit")
    label: Label = None

    _check = model_validator(mode="after")(_comparison)


class DerivedRule(Leaf):
    """A derived value (AGE_AT_CONSENT, CRCL_CG, LYM_ABS) compared with a limit."""

    kind: Literal["derived"]
    value: DerivedName
    op: Op | None = None
    limit: Number | None = None
    range: tuple[Number, Number] | None = None
    label: Label = None

    _check = model_validator(mode="after")(_comparison)


class UlnMultipleRule(Leaf):
    """value `op` multiple x the upper limit of normal (LBORNRHI) of the same row."""

    kind: Literal["uln_multiple"]
    domain: FindingsDomain = "LB"
    test: TestCode
    op: Op
    multiple: Number
    label: Label = None


class UlnDifferenceRule(Leaf):
    """value - the upper limit of normal `op` difference (PT prolongation)."""

    kind: Literal["uln_difference"]
    domain: FindingsDomain = "LB"
    test: TestCode
    op: Op
    difference: Number
    label: Label = None


class CodedRule(Leaf):
    """A coded result (FA Y/N, a stage, LB qualitative results through the unit catalog) in a set."""

    kind: Literal["coded"]
    domain: FindingsDomain
    test: TestCode
    values: Codes
    valid: list[Code] = Field(default_factory=list, description="the codes a result may take; others are "
                                                                "INVALID_CODE")
    label: Label = None

    @model_validator(mode="after")
    def _values_are_valid(self) -> CodedRule:
        if self.valid and not {v.upper() for v in self.values} <= {v.upper() for v in self.valid}:
            raise ValueError("values must be a subset of valid")
        return self


class Offset(FileModel):
    """How far before treatment start a timing constraint's anchor lies: days or calendar years."""

    days_before: Whole | None = None
    years_before: Whole | None = None

    @model_validator(mode="after")
    def _one(self) -> Offset:
        if (self.days_before is None) == (self.years_before is None):
            raise ValueError("the anchor is {days_before: N} or {years_before: N}")
        return self


class Timing(FileModel):
    """A constraint on a record's start or end date, relative to treatment start."""

    date: Literal["start", "end", "start_or_end"]
    on_or_after: Offset | None = None
    on_or_before: Offset | None = None
    or_ongoing: bool = False

    @model_validator(mode="after")
    def _one_side(self) -> Timing:
        if (self.on_or_after is None) == (self.on_or_before is None):
            raise ValueError("give exactly one of on_or_after / on_or_before")
        return self


class EventRule(Leaf):
    """A history, medication or procedure record (MH / CM / PR) matching values, within a time window."""

    kind: Literal["event"]
    domain: EventDomain
    match: Annotated[dict[str, Codes], Field(min_length=1, description="variable -> the values a record matches")]
    timing: list[Timing] | None = None
    min_duration_days: Annotated[Whole, Field(ge=1)] | None = None
    require_each: bool = Field(False, description="targeted history: every listed term needs a record")
    label: Label = None

    @model_validator(mode="after")
    def _each(self) -> EventRule:
        each = EVENT_DOMAINS[self.domain].get("each")
        if self.require_each and each not in self.match:
            raise ValueError(f"require_each needs match on {each}" if each else
                             f"require_each is for MH only, not {self.domain}")
        return self


class LesionRule(Leaf):
    """At least one measurable target lesion (RECIST 1.1), from TU joined to TR."""

    kind: Literal["lesion"]
    target: str = "TARGET"
    nodal_location: str = "LYMPH NODE"
    min_mm: Number = 10
    nodal_min_mm: Number = 15
    label: Label = None


class SubjectRule(Leaf):
    """A demographic fact of the subject (DM): SEX in a set, or a valid consent date."""

    kind: Literal["subject"]
    variable: Literal["SEX", "RFICDTC"]
    values: Codes | None = None
    present: Literal[True] | None = None
    unknown: list[Code] = Field(default_factory=list, description="values that cannot decide (SEX U)")
    label: Label = None

    @model_validator(mode="after")
    def _values_or_present(self) -> SubjectRule:
        if (self.values is None) == (self.present is None):
            raise ValueError("give either values or present: true")
        return self


#: kind -> its model. Adding a kind: a model here and a builder in checks.evaluation.rules.RULE_BUILDERS.
RULE_KINDS: dict[str, type[Leaf]] = {
    "threshold": ThresholdRule,
    "derived": DerivedRule,
    "uln_multiple": UlnMultipleRule,
    "uln_difference": UlnDifferenceRule,
    "coded": CodedRule,
    "event": EventRule,
    "lesion": LesionRule,
    "subject": SubjectRule,
}

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


Inputs = Callable[[dict[str, Any]], dict[str, set[str]]]

#: kind -> the domain test codes (MH: terms) a leaf of that kind reads, for completeness checks
INPUTS: dict[str, Inputs] = {
    "threshold": _test_inputs,
    "derived": _derived_inputs,
    "uln_multiple": _test_inputs,
    "uln_difference": _test_inputs,
    "coded": _test_inputs,
    "event": _event_inputs,
    "lesion": lambda params: {"tr": {"LDIAM", "LPERP"}, "tu": {"TUMIDENT"}},
    "subject": lambda params: {},
}


def leaf_inputs(kind: str, params: dict[str, Any]) -> dict[str, set[str]]:
    """Lower-case domain -> test codes (MH: terms) one leaf reads."""
    return INPUTS[kind](params)
