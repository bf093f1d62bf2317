"""The generator's data files (`generator/data/*.yaml`) as strict, frozen models.

Everything that says what a realistic SZ003 site delivers (units, formats, value ranges, screen
failure reasons, planted problems) is data; the code only knows how to apply it. Unknown keys are
errors, so a typo in a data file fails loudly instead of silently changing the generated study.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from contracts import DiscrepancyClass, Severity

Format = Literal["csv", "xlsx", "parquet", "xpt"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- measures.yaml


class UnitSpec(_Strict):
    factor: float = 1.0
    transform: Literal["linear", "log10", "ifcc", "fahrenheit"] = "linear"
    decimals: int
    lod: float | None = None


class Measure(_Strict):
    domain: Literal["LB", "VS", "FA", "TR"]
    name: str = ""
    category: str = ""
    unit: str = ""
    range: tuple[float, float] | None = None
    units: dict[str, UnitSpec] = {}
    qualitative: bool = False


# ---------------------------------------------------------------- sites.yaml


class UnitProfile(_Strict):
    units: dict[str, str]
    lymphocytes: Literal["LYM", "LYMLE"]
    positive: str
    negative: str
    rna_positive: str
    rna_negative: str


class FormatProfile(_Strict):
    default: Format
    overrides: dict[str, Format] = {}
    encoding: str = "utf-8"
    separator: str = ","
    decimal: Literal[".", ","] = "."
    standardized: bool = False  # also write the SDTM standardized results (--STRESC/--STRESN/--STRESU)
    #: per_file: encoding / decimal in every file's entry; top_level: once at the top of manifest.json as
    #: every file's default, a file's entry only where it differs (DTS section 1 allows both)
    manifest: Literal["per_file", "top_level"] = "per_file"

    def format_of(self, domain: str) -> Format:
        return self.overrides.get(domain, self.default)


class Archetype(_Strict):
    units: str
    formats: str
    language: str
    ie: Literal["full", "not_met_only"]
    country: str


class SitesConfig(_Strict):
    unit_profiles: dict[str, UnitProfile]
    format_profiles: dict[str, FormatProfile]
    archetypes: list[Archetype]

    @model_validator(mode="after")
    def _refs(self) -> SitesConfig:
        for arch in self.archetypes:
            if arch.units not in self.unit_profiles or arch.formats not in self.format_profiles:
                raise ValueError(f"archetype refers to an unknown profile: {arch}")
        return self


# ---------------------------------------------------------------- vocab.yaml


class Language(_Strict):
    screen_failure: str
    anti_hbv: list[tuple[str, str]]
    anti_tumor: list[tuple[str, str]]
    steroid: list[tuple[str, str]]
    investigational: list[tuple[str, str]]
    other: list[tuple[str, str]]
    tace: list[tuple[str, str]]
    surgery: list[tuple[str, str]]
    radiotherapy: list[tuple[str, str]]
    cell_therapy: list[tuple[str, str]]
    transplant: list[tuple[str, str]]


class Vocab(_Strict):
    languages: dict[str, Language]


# ---------------------------------------------------------------- study.yaml


class Timing(_Strict):
    window_days: int
    screening_days: tuple[int, int]
    repeat_screening_days: tuple[int, int]
    in_screening_days: tuple[int, int]
    treatment_start_span: int
    decision_lead_days: tuple[int, int]


class Flag(_Strict):
    share: float
    sex: Literal["M", "F"] | None = None


class LbRow(_Strict):
    value: str | None = None
    positive: str | None = None
    when: str | None = None
    repeat: bool = False
    words: Literal["serology", "rna", "plain"] = "serology"


class FaRow(_Strict):
    measure: str | None = None
    flag: str | None = None
    if_true: str = "Y"
    if_false: str = "N"


class MhTerm(_Strict):
    flag: str
    onset_years: tuple[float, float] = (1.0, 5.0)
    end_days: tuple[int, int] = (0, 0)
    ongoing: bool = False
    partial: float = 0.0
    partial_clear_days: int = 14


class Course(_Strict):
    domain: Literal["CM", "PR"]
    when: str | None = None
    count: str | None = None
    category: str
    vocab: str
    start_days: tuple[int, int] | None = None
    end_days: tuple[int, int] | None = None
    duration: tuple[int, int] = (0, 0)
    ongoing: bool = False
    outcome: str | None = None
    partial_start: float = 0.0
    partial_end: float = 0.0
    partial_clear_days: int = 14

    @model_validator(mode="after")
    def _timing(self) -> Course:
        if self.ongoing == (self.start_days is None) or self.ongoing == (self.end_days is not None):
            raise ValueError("a course is either ongoing with start_days, or ends with end_days")
        return self


class FailureMode(_Strict):
    weight: float
    criteria: list[str]
    set: dict[str, Any]


class Standardized(_Strict):
    after: str
    columns: list[str]


class NearLimit(_Strict):
    """A protocol threshold a clean value may sit at: `clean` is the relation a clean value keeps to `limit`
    (in the protocol unit); `measure` names the written test when the latent column is named otherwise."""

    limit: float
    clean: Literal[">=", ">", "<=", "<"]
    measure: str | None = None
    when: str | None = None  # a latent boolean that must hold (HBV DNA exists only for HBV-exposed subjects)


class NearLimits(_Strict):
    share: float  # of the subjects without a planted problem or a screen-failure mode
    exact_share: float  # of those, the value exactly at an inclusive limit (a unit-conversion boundary)
    margin: tuple[float, float]  # otherwise this far from the limit, as a fraction of it (0.01-0.02)
    limits: dict[str, NearLimit]


class RepeatedVitals(_Strict):
    """Vital signs measured several times at one visit, told apart by time point and position."""

    tests: list[str]
    position: str
    time_points: list[str]  # --TPT of time point 1, 2, ...
    spread: float  # replicates differ by up to this much (in the protocol unit) from the latent value


class StudyConfig(_Strict):
    decisions: dict[str, float]
    sex: dict[str, float]
    timing: Timing
    birth_precision: dict[Literal["D", "M", "Y"], float]
    date_precision: dict[Literal["M", "Y"], float]
    flags: dict[str, Flag]
    values: dict[str, Any]
    crcl_floor: float
    lb: dict[str, LbRow]
    vs: list[str]
    repeated_vitals: RepeatedVitals
    near_limits: NearLimits
    fa: dict[str, FaRow]
    mh: dict[str, MhTerm]
    courses: dict[str, Course]
    criteria: dict[Literal["INCLUSION", "EXCLUSION"], list[str]]
    screen_failures: dict[str, FailureMode]
    columns: dict[str, list[str]]
    standardized: dict[str, Standardized]
    numeric_columns: list[str]

    def columns_for(self, domain: str, standardized: bool) -> list[str]:
        """The written columns of a domain file, with the standardized results where a site sends them."""
        columns = list(self.columns[domain])
        extra = self.standardized.get(domain)
        if standardized and extra is not None:
            at = columns.index(extra.after) + 1
            columns[at:at] = extra.columns
        return columns


# ---------------------------------------------------------------- problems.yaml


class Edit(_Strict):
    """One change to the built domain rows of the problem's subject.

    `set` values are literals, `{date: <latent date column>, days: n}`, or
    `{protocol_value: x, prefix: "<"}` (x in the protocol unit, written in the row's site unit).
    """

    domain: str
    where: dict[str, str] = {}
    set: dict[str, Any] = {}
    drop: bool = False
    duplicate: bool = False
    first: bool = False
    data_quality: str | None = None  # kind recorded for the edited rows in ground_truth.json
    variable: str | None = None


class SiteNeed(_Strict):
    ie: Literal["full", "not_met_only"] | None = None
    lymphocytes: Literal["LYM", "LYMLE"] | None = None
    units: dict[str, str] = {}


class Problem(_Strict):
    kind: str
    description: str
    level: Literal["subject", "site", "delivery"] = "subject"
    site: SiteNeed = SiteNeed()
    subject: dict[str, Any] = {}
    edits: list[Edit] = []
    drop_column: tuple[str, str] | None = None  # site level: (domain, column)
    never_collects: tuple[str, str] | None = None  # site level: (domain, test code) the site never delivers
    delivery: Literal["checksum_mismatch", "incomplete", "no_usable"] | None = None
    # [CHECK_ID, CLASS, SEVERITY] the audit must report; classes and severities from contracts
    expect: list[tuple[str, DiscrepancyClass, Severity]] = []
    expect_site_enrolled: list[tuple[str, DiscrepancyClass, Severity]] = []  # site level: per enrolled subject


class ProblemsConfig(_Strict):
    problems: list[Problem]

    def grouped_kinds(self) -> set[str]:
        """Data-quality kinds planted by duplicating rows: the audit reports each duplicated key once,
        at its first row, naming every copy (DTS section 2: one finding per duplicated key)."""
        return {edit.data_quality for problem in self.problems for edit in problem.edits
                if edit.duplicate and edit.data_quality}


# ---------------------------------------------------------------- profiles.yaml


class DuplicateRows(_Strict):
    share: float
    domains: list[str]


class NoReferenceRange(_Strict):
    share: float


class NeverCollects(_Strict):
    share: float
    tests: list[tuple[str, str]]


class DatesDmy(_Strict):
    share: float
    columns: dict[str, list[str]]


class Profile(_Strict):
    """Site habits of a generation profile (profiles.yaml); each habit takes `share` of the free sites."""

    duplicate_rows: DuplicateRows | None = None
    no_reference_range: NoReferenceRange | None = None
    never_collects: NeverCollects | None = None
    dates_dmy: DatesDmy | None = None

    def habits(self) -> list[tuple[str, float]]:
        """(habit, share) in a fixed order."""
        return [(name, getattr(self, name).share) for name in type(self).model_fields if getattr(self, name)]


class ProfilesConfig(_Strict):
    profiles: dict[str, Profile]


# ---------------------------------------------------------------- loading


def _load(name: str) -> dict[str, Any]:
    text = resources.files("generator").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


class Config(_Strict):
    measures: dict[str, Measure]
    sites: SitesConfig
    vocab: Vocab
    study: StudyConfig
    problems: ProblemsConfig
    profiles: ProfilesConfig

    @model_validator(mode="after")
    def _cross(self) -> Config:
        for name, profile in self.sites.unit_profiles.items():
            for code, unit in profile.units.items():
                if code not in self.measures or unit not in self.measures[code].units:
                    raise ValueError(f"unit profile {name}: {code} in {unit!r} is not in measures.yaml")
        for arch in self.sites.archetypes:
            if arch.language not in self.vocab.languages:
                raise ValueError(f"archetype language {arch.language!r} has no vocabulary")
        return self


@cache
def load_config() -> Config:
    """The generator's data files, validated (cached: they are read-only)."""
    return Config(
        measures=_load("measures.yaml")["measures"],
        sites=_load("sites.yaml"),
        vocab=_load("vocab.yaml"),
        study=_load("study.yaml"),
        problems=_load("problems.yaml"),
        profiles=_load("profiles.yaml"),
    )
