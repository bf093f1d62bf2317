"""What a check is: the expectation, its meaning and wording, and the columns it needs.

Plain data (no Great Expectations import), so that the suites can be listed and reviewed cheaply.
The builders (expectations.build_*) create these from the sources of truth; expectations.checks
registers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from contracts.domains import DomainSpec
from contracts.units import UnitCatalog
from core.values import blank_to_null, coded_value
from expectations.protocol_needs import Demands
from expectations.spec import Action, CheckKind, SuiteConfig

IGNORE_MISSING = "either_value_is_missing"


@dataclass(frozen=True)
class Check:
    """One expectation of a suite and how its failures read."""

    domain: str  # upper-case domain code
    kind: CheckKind
    variable: str  # the delivered variable a finding names
    expectation: str  # Great Expectations type, e.g. expect_column_values_to_not_be_null
    kwargs: dict  # GE kwargs; column names are those of the GE frame
    meaning: str
    action: Action
    message: str  # template: {COLUMN} of the prepared frame (constants already filled in)
    observed: str  # template, same rules
    private: tuple[str, ...] = ()  # columns never quoted (shown as WITHHELD)
    excludes: tuple[str, ...] = ()  # variables whose value evaluation must not use (action exclude)
    reject_when: str | None = None  # boolean prepared column narrowing which failing rows are rejected
    #: boolean prepared column: the failing rows whose `excludes` are excluded (a reject check that keeps some of
    #: its failing rows as records whose value is not used: a duplicated measurement with conflicting values)
    exclude_when: str | None = None
    explode: str | None = None  # list column: one finding per item (as X_ITEM)
    explode_with: tuple[tuple[str, str], ...] = ()  # parallel list columns exploded with it, as (column, alias)
    site_level: bool = False  # the finding is about the site (USUBJID empty), not about the row's subject
    source_column: str | None = None  # prepared column giving SOURCE when not the row's own (a file key)
    finding_domain: str | None = None  # DOMAIN of the findings when not `domain` (subject-level needs)
    finding_variable: str | None = None  # VARIABLE of the findings when not `variable`
    variable_column: str | None = None  # prepared column naming VARIABLE per row (checks over many variables)
    #: prepared columns whose values make one group: its failing rows are one finding naming every row
    #: (`{X_ROWS_TEXT}` in the message), e.g. the rows of one duplicated key
    one_per: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.domain}.{self.kind.value}.{self.variable}"

    def describe(self) -> dict:
        """The reviewable form (list_expectations, saved with the run)."""
        return {"id": self.id, "domain": self.domain, "kind": self.kind.value, "variable": self.variable,
                "expectation": self.expectation, "kwargs": self.kwargs, "meaning": self.meaning,
                "action": self.action.value}


@dataclass
class Piece:
    """A check and the columns it needs.

    `derived` are row-wise expressions (a row's value depends on that row only), so `prepare` may
    compute them once per distinct input; `windowed` look at other rows (counts over a key) and are
    computed on the whole frame after them; `after` are row-wise again, reading windowed columns.
    A column whose name ends in `_TEXT` only feeds messages: it is computed for failing rows only.
    """

    check: Check
    derived: dict[str, pl.Expr] = field(default_factory=dict)
    windowed: dict[str, pl.Expr] = field(default_factory=dict)
    after: dict[str, pl.Expr] = field(default_factory=dict)
    ge: dict[str, pl.Expr] = field(default_factory=dict)  # GE-frame columns (from the prepared frame)


@dataclass(frozen=True)
class Context:
    """Everything a builder may read; no data."""

    spec: DomainSpec
    config: SuiteConfig
    catalog: UnitCatalog
    study: str
    protocol_id: str
    criteria: dict[str, str]  # criterion id -> INCLUSION / EXCLUSION
    needs: dict[str, tuple[tuple[str, ...], ...]]  # upper domain -> groups of test codes (any one enough)
    needed_by: dict[str, tuple[str, ...]]  # "LB.HBVDNA" -> components that read it (for messages)
    columns: frozenset[str]  # columns present in the delivered frame
    demands: Demands | None = None  # per protocol version: criteria, needed results and their conditions

    @property
    def domain(self) -> str:
        return self.spec.code


def fill(template: str, constants: dict[str, str]) -> str:
    """Fill the lower-case placeholders of a template; upper-case ones stay for per-row filling."""
    out = template
    for name, value in constants.items():
        out = out.replace("{" + name + "}", value)
    return out


def make_check(ctx: Context, kind: CheckKind, variable: str, expectation: str, kwargs: dict, **extra) -> Check:
    text = ctx.config.checks[kind]
    constants = {"variable": variable, "domain": ctx.domain, "study": ctx.study, "protocol": ctx.protocol_id,
                 "allowed": ", ".join(ctx.spec.allowed.get(variable, ())),
                 "decisions": " / ".join(ctx.config.needed_decisions), **extra.pop("constants", {})}
    action = Action(extra.pop("action", text.action))
    return Check(domain=ctx.domain, kind=kind, variable=variable, expectation=expectation, kwargs=kwargs,
                 meaning=fill(text.meaning, constants), action=action, message=fill(text.message, constants),
                 observed=fill(text.observed, constants), private=ctx.config.private, **extra)


#: what a private variable's value is replaced with wherever it would be shown or handed to GE
WITHHELD = "(withheld)"


def value_of(variable: str, ctx: Context) -> pl.Expr:
    """The GE-frame form of a delivered variable: stripped, blank as null, coded values upper-cased.

    A private variable (a birth date) reaches GE only as "present" or null.
    """
    if variable in ctx.config.private:
        return pl.when(blank_to_null(variable).is_not_null()).then(pl.lit("present"))
    if variable in ctx.spec.allowed:
        return coded_value(variable)
    return blank_to_null(variable)


def in_set(column: str, values: list) -> tuple[str, dict]:
    return "expect_column_values_to_be_in_set", {"column": column, "value_set": values}


def true_set(column: str) -> tuple[str, dict]:
    """A prepared boolean must be True where it is not null (null = the check does not apply)."""
    return in_set(column, [True])


def not_done(ctx: Context) -> pl.Expr:
    """True on rows whose status says the test was not done (their result may be blank)."""
    roles = ctx.config.results.get(ctx.domain)
    if roles is None or roles.status is None:
        return pl.lit(False)
    return coded_value(roles.status).is_in(list(ctx.config.not_done)).fill_null(False)
