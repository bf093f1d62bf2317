"""The DTS domain specifications (section 2), read from `domains.yaml`.

One source of truth for the required / expected / optional variables of each domain: ingestion
rejects a file that lacks a required column, and the Great Expectations completeness suites are
built from the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

import yaml


class Requirement(StrEnum):
    REQUIRED = "R"
    EXPECTED = "E"
    OPTIONAL = "O"


@dataclass(frozen=True)
class DomainSpec:
    code: str  # upper-case SDTM domain code, e.g. "LB"
    title: str
    variables: dict[str, Requirement]
    allowed: dict[str, tuple[str, ...]]  # controlled values per variable, where the DTS fixes them
    dates: tuple[str, ...]  # ISO 8601 date variables
    key: tuple[str, ...]  # variables that identify one record of a subject

    def required(self) -> list[str]:
        return [v for v, r in self.variables.items() if r is Requirement.REQUIRED]

    def expected(self) -> list[str]:
        return [v for v, r in self.variables.items() if r is Requirement.EXPECTED]


_ALLOWED_KEYS = {"title", "variables", "allowed", "dates", "key"}


@cache
def _load() -> dict[str, DomainSpec]:
    text = resources.files("contracts").joinpath("domains.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    specs: dict[str, DomainSpec] = {}
    for code, body in raw["domains"].items():
        unknown = set(body) - _ALLOWED_KEYS
        if unknown:
            raise ValueError(f"domains.yaml: unknown keys {sorted(unknown)} in {code}")
        specs[code.lower()] = DomainSpec(
            code=code.upper(),
            title=body["title"],
            variables={name: Requirement(req) for name, req in body["variables"].items()},
            allowed={name: tuple(values) for name, values in (body.get("allowed") or {}).items()},
            dates=tuple(body.get("dates") or ()),
            key=tuple(body.get("key") or ()),
        )
    return specs


#: lower-case domain code -> spec, in DTS order
DOMAINS: dict[str, DomainSpec] = _load()


def domain_spec(code: str) -> DomainSpec:
    return DOMAINS[code.lower()]
