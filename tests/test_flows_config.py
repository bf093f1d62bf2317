"""The study configuration file: strict schema, env references for endpoints only, study time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from flows.config import (
    ConfigError,
    StudyConfig,
    env_references,
    expand_env,
    load_config,
    load_config_dir,
    parse_config,
    site_coverage,
    study_files,
)
from tests.support.protocols import BUNDLED, write_protocol

MINIMAL = """
study: SZ003
landing: s3://sz003-landing
reports: s3://sponsor-reports
"""


def test_minimal_config_gets_documented_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config == StudyConfig(study="SZ003", landing="s3://sz003-landing", reports="s3://sponsor-reports")
    assert (config.timezone, config.schedule, config.lease_expiry_minutes) == ("UTC", "0 2 * * *", 5.0)
    assert config.expected_sites == ()
    assert config.protocol is None and config.endpoint_url is None


def test_config_is_frozen() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(Exception, match="frozen"):
        config.study = "OTHER"  # type: ignore[misc]


def test_unknown_key_is_an_error_naming_file_and_key() -> None:
    with pytest.raises(ConfigError, match=r"study.yaml \(study SZ003\): expected_site: Extra inputs are not permitted"):
        parse_config(MINIMAL + "expected_site: ['101']\n", source="study.yaml")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("timezone: Mars/Olympus\n", "unknown time zone 'Mars/Olympus'"),
        ("schedule: 'every night'\n", "not a valid cron expression"),
        ("lease_expiry_minutes: 0\n", "greater than 0"),
        ("report_link_hours: 200\n", "less than or equal to 168"),
        ("expected_sites: ['101', '101']\n", "101 more than once"),
        ("expected_sites: ['../x']\n", "plain site ids"),
        ("endpoint_url: ftp://minio:9000\n", "http\\(s\\) URL"),
        ("aws_secret_access_key: abc\n", "Extra inputs are not permitted"),
    ],
)
def test_bad_values_are_rejected(extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(MINIMAL + extra)


def test_missing_required_keys_are_listed() -> None:
    with pytest.raises(ConfigError, match=r"landing: Field required; reports: Field required"):
        parse_config("study: SZ003\n")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text"])
def test_non_mapping_is_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config(text)


def test_integer_site_ids_become_text_and_are_sorted() -> None:
    config = parse_config(MINIMAL + "expected_sites: [102, '007', 101]\n")
    assert config.expected_sites == ("007", "101", "102")


def test_env_references_in_uris_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://minio.internal:9000")
    monkeypatch.setenv("LANDING_BUCKET", "landing-prod")
    config = parse_config(
        "study: SZ003\nlanding: s3://${LANDING_BUCKET}/sz003\nreports: /srv/reports\n"
        "endpoint_url: ${S3_ENDPOINT_URL}\n"
    )
    assert config.landing == "s3://landing-prod/sz003"
    assert config.endpoint_url == "http://minio.internal:9000"


def test_unset_env_reference_is_an_error_not_an_empty_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE is not set"):
        parse_config(MINIMAL + "endpoint_url: ${NOT_SET_ANYWHERE}\n")


def test_unset_env_reference_is_one_line_naming_file_study_key_and_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)
    path = tmp_path / "sz003.yaml"
    path.write_text(MINIMAL + "endpoint_url: ${S3_ENDPOINT_URL}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message == (f"{path} (study SZ003): endpoint_url: environment variable S3_ENDPOINT_URL is not set "
                       "(referenced as ${S3_ENDPOINT_URL}); set it in the environment where the audit runs "
                       "(the worker's, for a deployment)")


def test_read_for_deployment_env_references_stay_unresolved(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deploying shell needs none of the worker's variables, and freezes none of their values."""
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://deploying-shell:1")
    monkeypatch.delenv("LANDING_BUCKET", raising=False)
    config = parse_config("study: SZ003\nlanding: s3://${LANDING_BUCKET}/sz003\nreports: /srv/reports\n"
                          "endpoint_url: ${S3_ENDPOINT_URL}\n", resolve_env=False)
    assert (config.landing, config.endpoint_url) == ("s3://${LANDING_BUCKET}/sz003", "${S3_ENDPOINT_URL}")
    assert env_references(config) == ["LANDING_BUCKET", "S3_ENDPOINT_URL"]
    assert env_references(parse_config(MINIMAL)) == []


def test_read_for_deployment_credential_references_are_still_refused() -> None:
    with pytest.raises(ConfigError, match="looks like a credential"):
        parse_config(MINIMAL + "endpoint_url: http://x/${AWS_SECRET_ACCESS_KEY}\n", resolve_env=False)


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "DB_PASSWORD"])
def test_credential_env_references_are_refused(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "sensitive")
    with pytest.raises(ValueError, match="looks like a credential"):
        expand_env(f"http://x/${{{name}}}")


@pytest.mark.parametrize(
    "endpoint",
    ["http://admin:minio123@minio:9000", "https://s3.example.com/?X-Amz-Signature=abc", "http://h/?access_key=a"],
)
def test_credentials_inside_uris_are_refused(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="must not"):
        parse_config(MINIMAL + f"endpoint_url: '{endpoint}'\n")


def test_relative_protocol_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "studies"
    folder.mkdir()
    write_protocol(folder / "protocols", "SZ003").rename(folder / "protocols" / "sz003-v2.yaml")
    (folder / "sz003.yaml").write_text(MINIMAL + "protocol: protocols/sz003-v2.yaml\n")
    config = load_config(folder / "sz003.yaml")
    assert config.protocol == str(folder / "protocols" / "sz003-v2.yaml")


def test_absolute_and_s3_protocol_paths_are_kept() -> None:
    assert parse_config(MINIMAL + f"protocol: {BUNDLED}\n").protocol == str(BUNDLED)
    assert parse_config(MINIMAL + "protocol: s3://b/p.yaml\n").protocol == "s3://b/p.yaml"  # checked by the run


def test_missing_protocol_file_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(study SZ003\): protocol: .*nope\.yaml: cannot read"):
        parse_config(MINIMAL + f"protocol: {tmp_path / 'nope.yaml'}\n")


def test_a_study_without_its_own_protocol_is_refused_naming_both() -> None:
    """`protocol: null` is the bundled SZ003 protocol: never a silent default for another study."""
    text = MINIMAL.replace("SZ003", "SZ004")
    for extra in ("", "protocol: null\n"):
        with pytest.raises(ConfigError) as raised:
            parse_config(text + extra, source="sz004.yaml")
        message = str(raised.value)
        assert "\n" not in message
        assert message.startswith("sz004.yaml (study SZ004): protocol: study SZ004 names no protocol file")
        assert "the bundled protocol is SZ003's (TIVERS 1.0)" in message


def test_a_study_naming_another_studys_protocol_is_refused_naming_both(tmp_path: Path) -> None:
    sz003 = write_protocol(tmp_path / "protocols", "SZ003")
    with pytest.raises(ConfigError) as raised:
        parse_config(MINIMAL.replace("SZ003", "SZ004") + f"protocol: {sz003}\n", source="sz004.yaml")
    assert str(raised.value) == (f"sz004.yaml (study SZ004): protocol: study SZ004 names the protocol of SZ003 "
                                 f"({sz003}, TIVERS 1.0): a study is audited against its own protocol only")


def test_a_study_with_its_own_protocol_file_loads(tmp_path: Path) -> None:
    sz004 = write_protocol(tmp_path / "protocols", "SZ004")
    config = parse_config(MINIMAL.replace("SZ003", "SZ004") + f"protocol: {sz004}\n")
    assert (config.study, config.protocol) == ("SZ004", str(sz004))


@pytest.mark.parametrize(
    ("moment", "timezone", "expected"),
    [
        # 02:00 in Shanghai is 18:00 UTC the day before: the audit date is Shanghai's date
        (datetime(2026, 11, 27, 18, 0, tzinfo=UTC), "Asia/Shanghai", date(2026, 11, 28)),
        (datetime(2026, 11, 28, 1, 0, tzinfo=UTC), "Europe/Berlin", date(2026, 11, 28)),
        (datetime(2026, 11, 28, 3, 0, tzinfo=UTC), "America/New_York", date(2026, 11, 27)),
        (datetime(2026, 11, 28, 23, 59, tzinfo=UTC), "UTC", date(2026, 11, 28)),
    ],
)
def test_as_of_is_the_date_in_the_study_time_zone(moment: datetime, timezone: str, expected: date) -> None:
    config = parse_config(MINIMAL + f"timezone: {timezone}\n")
    assert config.as_of_at(moment) == expected


def test_as_of_needs_an_aware_moment() -> None:
    with pytest.raises(ValueError, match="time-zone aware"):
        parse_config(MINIMAL).as_of_at(datetime(2026, 11, 28, 2, 0))


def test_flow_parameters_are_the_nightly_audit_keywords() -> None:
    params = parse_config(MINIMAL).flow_parameters(date(2026, 11, 28))
    assert params == {"landing": "s3://sz003-landing", "reports": "s3://sponsor-reports", "study": "SZ003",
                      "protocol": None, "units": None, "process_checks": None, "policy": None,
                      "as_of": "2026-11-28", "endpoint_url": None, "timezone": "UTC",
                      "expected_sites": None, "lease_expiry_minutes": 5.0, "report_link_hours": 24.0, "outbox": None,
                      "digest": None}


def test_the_studys_data_files_are_relative_to_its_configuration(tmp_path: Path) -> None:
    text = MINIMAL + "units: data/units.yaml\nprocess_checks: /abs/pc.yaml\npolicy: ../policy.yaml\n"
    config = parse_config(text, base=tmp_path / "studies")
    assert (config.units, config.process_checks, config.policy) == (
        str(tmp_path / "studies" / "data" / "units.yaml"), "/abs/pc.yaml", str(tmp_path / "policy.yaml"))
    params = config.flow_parameters()
    assert (params["units"], params["process_checks"], params["policy"]) == (config.units, config.process_checks,
                                                                             config.policy)


def test_config_dir_loads_all_and_sorts_by_study(tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "b.yaml").write_text(MINIMAL)
    ab001 = write_protocol(tmp_path / "protocols", "AB001")
    (studies / "a.yml").write_text(MINIMAL.replace("SZ003", "AB001") + f"protocol: {ab001}\n")
    (studies / "notes.txt").write_text("not a config")
    assert [c.study for c in load_config_dir(studies)] == ["AB001", "SZ003"]
    assert [path.name for path, _ in study_files(studies)] == ["a.yml", "b.yaml"]


def test_config_dir_refuses_two_files_for_one_study(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text(MINIMAL)
    with pytest.raises(ConfigError, match=r"SZ003 is already configured in .*a\.yaml"):
        load_config_dir(tmp_path)


def test_empty_config_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no study configuration files"):
        load_config_dir(tmp_path)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_site_coverage_reports_missing_and_unexpected_sites() -> None:
    missing, unexpected = site_coverage(["101", "102", "103"], ["101", "104"])
    assert missing == {"102": "expected site has no delivery folder in the landing area",
                       "103": "expected site has no delivery folder in the landing area"}
    assert unexpected == ["104"]


def test_site_coverage_without_expected_sites_checks_nothing() -> None:
    assert site_coverage([], ["101"]) == ({}, [])


def test_scheduled_audit_date_uses_the_runs_scheduled_start(prefect_harness: None) -> None:
    """A run scheduled for 02:00 Shanghai on the 28th (18:00 UTC on the 27th) audits the 28th."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    from flows.config import scheduled_audit_date

    @flow
    def probe(timezone: str) -> str:
        return scheduled_audit_date(timezone).isoformat()

    scheduled = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(probe, parameters={"timezone": "Asia/Shanghai"},
                                     state=Scheduled(scheduled_time=scheduled))
    from prefect.flow_engine import run_flow

    assert run_flow(probe, flow_run=run, parameters={"timezone": "Asia/Shanghai"}) == "2026-11-28"


def test_scheduled_audit_date_outside_a_run_is_today_in_the_zone() -> None:
    from zoneinfo import ZoneInfo

    from flows.config import scheduled_audit_date

    # no wall-clock race: the date is read between two readings of the clock, so it is one of theirs even
    # when Kiritimati's midnight falls in between
    before = datetime.now(UTC).astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    got = scheduled_audit_date("Pacific/Kiritimati")
    after = datetime.now(UTC).astimezone(ZoneInfo("Pacific/Kiritimati")).date()
    assert got in (before, after)


def test_delivery_cutoff_is_the_end_of_the_as_of_date_in_the_study_time_zone() -> None:
    from datetime import UTC, date, datetime

    from flows.config import delivery_cutoff

    assert delivery_cutoff(date(2026, 11, 28), "UTC") == datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
    # Shanghai is UTC+8: its 29 November starts at 16:00 UTC on the 28th
    assert delivery_cutoff(date(2026, 11, 28), "Asia/Shanghai") == datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
    # New York on the day summer time ends (1 November 2026): the next midnight is EST, UTC-5
    assert delivery_cutoff(date(2026, 11, 1), "America/New_York") == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def test_a_study_file_that_is_not_utf8_is_one_broken_study_not_a_traceback(tmp_path: Path) -> None:
    """helper-46: a `notes.yaml` saved as latin-1 raised UnicodeDecodeError, and run-all audited no study."""
    (tmp_path / "sz003.yaml").write_text(MINIMAL)
    (tmp_path / "notes.yaml").write_bytes("# Müller\n".encode("latin-1"))
    broken: list[tuple[Path, str]] = []
    assert [c.study for c in load_config_dir(tmp_path, broken)] == ["SZ003"]
    assert [(path.name, "not UTF-8 text" in message) for path, message in broken] == [("notes.yaml", True)]
