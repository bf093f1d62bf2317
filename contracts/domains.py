"""The DTS domain specifications (section 2), read from `domains.yaml`.

One source of truth for the required / expected / optional variables of each domain: ingestion
rejects a file that lacks a required column, and the Great Expectations completeness suites are
built from the same data.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    #: SDTM qualifiers (time point, position, replicate...) that join the key when a delivery has the column
    key_if_delivered: tuple[str, ...] = ()

    def required(self) -> list[str]:
        return [v for v, r in self.variables.items() if r is Requirement.REQUIRED]

    def expected(self) -> list[str]:
        return [v for v, r in self.variables.items() if r is Requirement.EXPECTED]

    def natural_key(self, columns: Iterable[str]) -> list[str]:
        """The key of a delivery whose frame has `columns`: `key`, then the qualifiers it delivered."""
        present = set(columns)
        return [*self.key, *(v for v in self.key_if_delivered if v in present)]


_ALLOWED_KEYS = {"title", "variables", "allowed", "dates", "key", "key_if_delivered"}


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
            key_if_delivered=tuple(body.get("key_if_delivered") or ()),
        )
    return specs


#: lower-case domain code -> spec, in DTS order
DOMAINS: dict[str, DomainSpec] = _load()


def domain_spec(code: str) -> DomainSpec:
    return DOMAINS[code.lower()]
