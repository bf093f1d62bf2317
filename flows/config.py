"""The study configuration file: everything one nightly audit of one study needs, in one YAML file.

A file looks like `deploy/studies/sz003.yaml`:

    study: SZ003
    landing: s3://sz003-landing
    reports: s3://sponsor-reports
    endpoint_url: ${S3_ENDPOINT_URL}      # optional; MinIO or another S3-compatible endpoint
    protocol: null                        # null = the bundled SZ003 protocol (study SZ003 only); else a
                                          # version file or a folder (a path or an s3:// URI)
    units: null                           # the study's unit catalog; null = the bundled one
    process_checks: null                  # the study's process checks; null = the bundled ones
    policy: null                          # the study's discrepancy policy (severities, DV terms)
    expected_sites: ["101", "102"]
    timezone: Europe/Berlin
    schedule: "0 2 * * *"                 # cron, in `timezone`
    lease_expiry_minutes: 5               # a lease not renewed for this long belongs to a dead run
    report_link_hours: 24                 # lifetime of the presigned report link (S3), at most 168

Why a frozen model with unknown keys forbidden: a misspelt key (`expected_site`) must stop the run
rather than silently audit with a default. Why `${NAME}` only in the URIs and never credentials:
credentials come from boto3's own chain (environment, profile, instance role) or Prefect blocks, so
a configuration file can be committed and reviewed without leaking a secret.

Why the protocol is checked at load: a study audited against another study's criteria is a wrong
clinical result that looks like a success, so a study whose id is not its protocol's id is refused
before anything runs (a protocol on S3 is checked when the run loads it). `${NAME}` references are
resolved where the audit runs: the deployment (flows/deployments.py) reads the file without resolving
them, and the worker resolves them from its own environment when the night starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

#: `${NAME}` references to environment variables, allowed in `landing`, `reports` and `endpoint_url`.
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Environment variable names that hold secrets: a configuration file must never pull them into a URI.
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|ACCESS_KEY|SESSION|PRIVATE", re.IGNORECASE)
#: Query parameters that would carry a credential or a presigned signature inside a URI.
_SECRET_QUERY = re.compile(r"key|secret|token|signature|credential|password", re.IGNORECASE)

CONFIG_SUFFIXES = (".yaml", ".yml")
#: pydantic validation context of a file read where `${NAME}` must stay unresolved (the deploying shell)
_KEEP_ENV = {"resolve_env": False}
#: the fields whose `${NAME}` references are expanded
ENV_FIELDS = ("landing", "reports", "endpoint_url", "outbox")


class ConfigError(ValueError):
    """A study configuration file that cannot be used; the message names the file and the problem."""


def expand_env(value: str, environ: dict[str, str] | None = None) -> str:
    """Replace every `${NAME}` in `value` with the environment variable's value.

    An unset variable is an error (never a silent empty string), and a name that looks like a
    credential is refused: URIs may point at endpoints, never carry secrets.
    """
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if _SECRET_NAME.search(name):
            raise ValueError(f"${{{name}}} looks like a credential; credentials come from boto3's chain, "
                             "never from the configuration file")
        if name not in env:
            raise ValueError(f"environment variable {name} is not set (referenced as ${{{name}}}); set it in the "
                             "environment where the audit runs (the worker's, for a deployment)")
        return env[name]

    return _ENV_REF.sub(replace, value)


def check_env_references(value: str) -> str:
    """Check `${NAME}` references without resolving them: names only, never one that looks like a secret."""
    expand_env(value, {name: "" for name in _ENV_REF.findall(value)})
    return value


def env_references(config: StudyConfig) -> list[str]:
    """The environment variables a configuration read with its references unresolved still needs."""
    return sorted({name for field in ENV_FIELDS for name in _ENV_REF.findall(getattr(config, field) or "")})


def check_no_credentials(uri: str) -> str:
    """Refuse a URI that embeds a credential (user:password@ or a key/signature query parameter)."""
    parsed = urlparse(uri)
    if parsed.scheme and (parsed.username or parsed.password):
        raise ValueError("a URI must not contain user or password; use boto3's credential chain")
    if any(_SECRET_QUERY.search(name) for name in parse_qs(parsed.query)):
        raise ValueError("a URI must not carry credentials or signatures in its query string")
    return uri


#: `env:NAME` (an environment variable of the worker) or `secret:NAME` (a Prefect Secret block)
_SECRET_REF = re.compile(r"^(env|secret):[A-Za-z0-9_.-]+$")


class DigestConfig(BaseModel):
    """Who gets the morning digest, and how (docs/operations.md, "The morning digest").

    Server settings and webhook URLs are secrets: the file names where they come from (`env:NAME` or
    `secret:NAME`), never their values, so a configuration file can be committed and reviewed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    email_to: tuple[str, ...] = ()
    smtp: str = "env:SCREENING_AUDIT_SMTP"  # env:PREFIX (PREFIX_HOST, _PORT, ...) or secret:BLOCK (JSON)
    webhook: str | None = None  # env:NAME or secret:NAME holding the incoming-webhook URL
    webhook_style: str = Field(default="teams", pattern=r"^(teams|slack|json)$")
    nothing_new: str = Field(default="send", pattern=r"^(send|skip)$")
    link_expiry_days: float = Field(default=7, gt=0, le=7)  # S3 presigned links last at most 7 days

    @field_validator("email_to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", a)]
        if bad:
            raise ValueError(f"not e-mail addresses: {', '.join(bad)}")
        return value

    @field_validator("smtp", "webhook")
    @classmethod
    def _secret_reference(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_REF.fullmatch(value):
            raise ValueError("name where the secret comes from, `env:NAME` or `secret:NAME` (a Prefect Secret "
                             "block); a URL or a password never goes into the configuration")
        return value

    @model_validator(mode="after")
    def _some_channel(self) -> DigestConfig:
        if not self.email_to and self.webhook is None:
            raise ValueError("a digest needs email_to, a webhook, or both")
        return self


class StudyConfig(BaseModel):
    """What a nightly audit of one study needs. Immutable once loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    study: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    landing: str = Field(min_length=1)
    reports: str = Field(min_length=1)
    endpoint_url: str | None = None
    protocol: str | None = None
    #: the study's own unit catalog, process checks and discrepancy policy (YAML; null: the bundled ones)
    units: str | None = None
    process_checks: str | None = None
    policy: str | None = None
    expected_sites: tuple[str, ...] = ()
    timezone: str = "UTC"
    schedule: str = "0 2 * * *"
    lease_expiry_minutes: float = Field(default=5.0, gt=0)
    #: hours a presigned link to the report (Prefect artifact, CLI) stays valid; S3 allows at most 7 days
    report_link_hours: float = Field(default=24.0, gt=0, le=168)
    outbox: str | None = None  # each site's query files, per site and night (reporting/outbox.py)
    digest: DigestConfig | None = None

    @field_validator(*ENV_FIELDS, mode="before")
    @classmethod
    def _expand(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        if (info.context or {}).get("resolve_env", True):
            return check_no_credentials(expand_env(value))
        return check_no_credentials(check_env_references(value))

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if _ENV_REF.search(value):  # read unresolved (deploying): the worker checks the value it resolves
            return value
        if urlparse(value).scheme not in ("http", "https"):
            raise ValueError(f"endpoint_url must be an http(s) URL, got {value!r}")
        return value

    @field_validator("expected_sites", mode="before")
    @classmethod
    def _sites_as_text(cls, value: Any) -> Any:
        # YAML reads `101` as an int; site ids are identifiers, so only text is accepted as-is and a
        # bare integer is converted without losing anything (leading zeros must be quoted).
        if isinstance(value, list | tuple):
            return tuple(str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
        return value

    @field_validator("expected_sites")
    @classmethod
    def _sites_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({site for site in value if value.count(site) > 1})
        if duplicates:
            raise ValueError(f"expected_sites lists {', '.join(duplicates)} more than once")
        if any(not re.fullmatch(r"[A-Za-z0-9_-]+", site) for site in value):
            raise ValueError("expected_sites must be plain site ids (letters, digits, '-', '_')")
        return tuple(sorted(value))

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _valid_schedule(self) -> StudyConfig:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=self.schedule, timezone=self.timezone)
        except ValidationError as error:
            raise ValueError(f"schedule {self.schedule!r} is not a valid cron expression") from error
        return self

    def as_of_at(self, moment: datetime) -> date:
        """The audit date of a run starting at `moment`: the calendar date in the study's time zone."""
        return audit_date(self.timezone, moment)

    def flow_parameters(self, as_of: date | None = None) -> dict[str, Any]:
        """The keyword arguments of `nightly_audit` for this study (as_of None = the flow decides)."""
        return {
            "landing": self.landing,
            "reports": self.reports,
            "study": self.study,
            "protocol": self.protocol,
            "units": self.units,
            "process_checks": self.process_checks,
            "policy": self.policy,
            "as_of": as_of.isoformat() if as_of else None,
            "endpoint_url": self.endpoint_url,
            "timezone": self.timezone,
            "expected_sites": list(self.expected_sites) or None,
            "lease_expiry_minutes": self.lease_expiry_minutes,
            "report_link_hours": self.report_link_hours,
            "outbox": self.outbox,
            "digest": self.digest.model_dump(mode="json") if self.digest else None,
        }


def audit_date(timezone: str, moment: datetime) -> date:
    """The audit date of a run that starts (or was scheduled) at `moment`: its date in `timezone`.

    A night scheduled at 02:00 in Shanghai starts at 18:00 UTC the day before; its audit date is the
    Shanghai date, the one the study's data managers call "tonight".
    """
    if moment.tzinfo is None:
        raise ValueError("moment must be time-zone aware")
    return moment.astimezone(ZoneInfo(timezone)).date()


def delivery_cutoff(as_of: date, timezone: str) -> datetime:
    """The first moment after the audit's as-of date in the study's time zone, in UTC.

    Deliveries stamped at or after it belong to a later night: a re-run of this night ignores them,
    so it audits (and publishes) what the night itself saw.
    """
    return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def _resolve_protocol(protocol: str | None, base: Path | str) -> str | None:
    """A relative protocol path is relative to the configuration file, as a reader would expect
    (beside it in the same bucket when the configuration file itself is in S3)."""
    if protocol is None or protocol.startswith("s3://") or Path(protocol).expanduser().is_absolute():
        return protocol
    if isinstance(base, str):  # an s3:// folder
        from storage import safe_key

        return f"{base.rstrip('/')}/{safe_key(protocol)}"
    return str((base / protocol).resolve())


def _problem(item: Any) -> str:
    where = ".".join(str(part) for part in item["loc"]) or "(file)"
    return f"{where}: {str(item['msg']).removeprefix('Value error, ')}"


def parse_config(text: str, *, source: str = "<string>", base: Path | str | None = None,
                 resolve_env: bool = True) -> StudyConfig:
    """Validate the YAML text of a study configuration; errors name `source`, the study and every bad field.

    `resolve_env=False` keeps `${NAME}` references as written (checked, not resolved): for the deploying
    shell, which must not need the worker's variables and must never freeze their values.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a study configuration must be a mapping of keys to values")
    where = f"{source} (study {data['study']})" if isinstance(data.get("study"), str) else source
    for key in ("protocol", "units", "process_checks", "policy"):  # data files beside the configuration
        if isinstance(data.get(key), str):
            data[key] = _resolve_protocol(data[key], base or Path.cwd())
    try:
        config = StudyConfig.model_validate(data, context=None if resolve_env else _KEEP_ENV)
    except ValidationError as error:
        raise ConfigError(f"{where}: {'; '.join(_problem(item) for item in error.errors())}") from None
    check_protocol(config, where)
    return config


def check_protocol(config: StudyConfig, where: str) -> None:
    """Refuse a study whose protocol is another study's (or the bundled one, for a study that is not its own).

    A protocol in object storage is checked by the run that loads it (nightly_audit).
    """
    from contracts.protocol import ProtocolError, load_study_protocol

    if config.protocol is not None and config.protocol.startswith("s3://"):
        return
    try:
        load_study_protocol(config.study, config.protocol)
    except ProtocolError as error:  # a file that cannot be read or parsed names itself (and its line)
        raise ConfigError(f"{where}: protocol: {error}") from None


def load_config(path: str | Path, endpoint_url: str | None = None, *, resolve_env: bool = True) -> StudyConfig:
    """Read one study configuration file: a local path, or an s3:// URI read through `endpoint_url`."""
    from flows.config_files import is_remote, read_text, split_location

    if is_remote(str(path)):
        location = str(path)
        try:
            text = read_text(location, endpoint_url)
        except Exception as error:  # storage's own errors name the URI and what failed
            raise ConfigError(f"{location}: cannot read: {error}") from None
        return parse_config(text, source=location, base=split_location(location)[0], resolve_env=resolve_env)
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:  # a file saved as latin-1: one study's error, not every study's traceback
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start} cannot be read as UTF-8); save it as UTF-8"
                          ) from None
    return parse_config(text, source=str(path), base=path.resolve().parent, resolve_env=resolve_env)


def study_files(directory: str | Path, *, resolve_env: bool = True,
                broken: list[tuple[Path, str]] | None = None) -> list[tuple[Path, StudyConfig]]:
    """Every study configuration file in `directory` (`*.yaml`, `*.yml`) with its study, sorted by study id.

    Two files for the same study are an error: which of them the nightly run should use is not
    something to guess. `broken`: a list that takes (file, error) of each file that cannot be loaded instead of
    raising on the first (run-all audits the other studies: one study's typo cost every study its night, a user
    trial); never the folder's own errors.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a folder")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in CONFIG_SUFFIXES)
    if not files:
        raise ConfigError(f"{directory}: no study configuration files (*.yaml)")
    configs: dict[str, tuple[Path, StudyConfig]] = {}
    for path in files:
        try:
            config = load_config(path, resolve_env=resolve_env)
        except ConfigError as error:
            if broken is None:
                raise
            broken.append((path.resolve(), str(error)))
            continue
        if config.study in configs:
            raise ConfigError(f"{path}: study {config.study} is already configured in {configs[config.study][0]}")
        configs[config.study] = (path.resolve(), config)
    return [configs[study] for study in sorted(configs)]


def load_config_dir(directory: str | Path, broken: list[tuple[Path, str]] | None = None) -> list[StudyConfig]:
    """Every study configuration in `directory`, sorted by study id (see `study_files`, and its `broken`)."""
    return [config for _, config in study_files(directory, broken=broken)]


def site_coverage(expected: Iterable[str], found: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Compare the sites found in the landing area with the expected ones.

    Returns (missing, unexpected): `missing` maps each expected site without a folder to the reason
    the report shows; `unexpected` lists sites found but not expected (they are audited anyway, so
    nothing delivered is ignored, and the run logs a warning).
    """
    expected_set, found_set = set(expected), set(found)
    if not expected_set:
        return {}, []
    missing = {site: "expected site has no delivery folder in the landing area"
               for site in sorted(expected_set - found_set)}
    return missing, sorted(found_set - expected_set)


def scheduled_audit_date(timezone: str) -> date:
    """The audit date of the current Prefect flow run: its scheduled start, in the study's time zone.

    A run that starts late (worker down, queue full) still audits the night it was scheduled for;
    outside a flow run this is today in `timezone`.
    """
    from prefect.runtime import flow_run

    moment = flow_run.scheduled_start_time
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return audit_date(timezone, moment)
