"""The operations options of the CLI: `run --config`, `--runner`, a held lock, and `run-all`."""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from prefect import flow
from typer.testing import CliRunner

import flows.nightly
from flows.cli import app
from flows.nightly import NothingToAuditError
from publication import acquire_lease
from tests.support.protocols import write_protocol

CALLS: list[dict] = []


@dataclass(frozen=True)
class _Summary:
    study: str
    as_of: str = "2026-11-28"
    protocol: str = "SZ003 v1"
    sites_audited: int = 2
    sites_not_audited: dict = field(default_factory=dict)
    subjects: int = 10
    enrolled: int = 4
    important: int = 1
    queries: int = 2
    new: int = 3
    report: str = "/r/report.html"
    outputs: str = "/r"
    published: list = field(default_factory=list)
    report_link: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@flow(name="fake_nightly_audit")
def _fake_nightly(landing: str, reports: str, study: str = "SZ003", protocol: str | None = None,
                  as_of: str | None = None, endpoint_url: str | None = None, timezone: str = "UTC",
                  expected_sites: list[str] | None = None, lease_expiry_minutes: float = 5.0,
                  units: str | None = None, process_checks: str | None = None, policy: str | None = None,
                  report_link_hours: float = 24.0,
                  outbox: str | None = None, digest: dict | None = None) -> _Summary:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    CALLS.append({"landing": landing, "reports": reports, "study": study, "protocol": protocol, "as_of": as_of,
                  "endpoint_url": endpoint_url, "timezone": timezone, "expected_sites": expected_sites,
                  "lease_expiry_minutes": lease_expiry_minutes, "units": units, "process_checks": process_checks,
                  "policy": policy, "report_link_hours": report_link_hours,
                  "runner": type(context.task_runner).__name__ if context else None})
    if study == "AB001":
        raise NothingToAuditError("nothing to audit for AB001: no site folders found")
    if study == "LK001" or Path(reports, "_audit", study, "lease.json").exists():
        from publication import AuditLockedError

        raise AuditLockedError(f"another audit of {study} is running: run r1 on host h", None)
    return _Summary(study)


@pytest.fixture
def fake_flow(monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> list[dict]:
    monkeypatch.setattr(flows.nightly, "nightly_audit", _fake_nightly)
    CALLS.clear()
    return CALLS


def _config(folder: Path, study: str = "SZ003", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{study.lower()}.yaml"
    protocol = "" if study == "SZ003" else f"protocol: {write_protocol(folder.parent / 'protocols', study)}\n"
    path.write_text(f"study: {study}\nlanding: {folder / 'landing'}\nreports: {folder / 'reports'}\n"
                    f"timezone: Asia/Shanghai\nexpected_sites: ['101', '102']\nlease_expiry_minutes: 6\n"
                    f"{protocol}{extra}")
    return path


runner = CliRunner()


def test_run_with_a_config_file_passes_every_setting_to_the_flow(fake_flow: list[dict], tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = runner.invoke(app, ["run", "--config", str(config), "--as-of", "2026-11-28"])
    assert result.exit_code == 0, result.output
    assert fake_flow == [{"landing": str(tmp_path / "landing"), "reports": str(tmp_path / "reports"), "study": "SZ003",
                          "protocol": None, "as_of": "2026-11-28", "endpoint_url": None,
                          "timezone": "Asia/Shanghai", "expected_sites": ["101", "102"], "lease_expiry_minutes": 6.0,
                          "units": None, "process_checks": None, "policy": None, "report_link_hours": 24.0,
                          "runner": "ThreadPoolTaskRunner"}]


def test_run_config_and_explicit_locations_do_not_mix(fake_flow: list[dict], tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--config", str(_config(tmp_path)), "--landing", "/elsewhere"])
    assert result.exit_code == 2
    assert "either --config or --landing/--reports" in result.output
    assert fake_flow == []


def test_run_without_config_needs_landing_and_reports(fake_flow: list[dict]) -> None:
    result = runner.invoke(app, ["run", "--landing", "/x"])
    assert result.exit_code == 2
    assert "--reports" in result.output
    assert fake_flow == []


@pytest.mark.parametrize("command", [["run", "--landing", "/x", "--reports", "/y"], ["run-all", "--config-dir", "/x"],
                                     ["generate", "--out", "/x"], ["whatif", "--landing", "/x", "--protocol", "/p"]])
@pytest.mark.parametrize("as_of", ["2026-13-05", "05/12/2026", "2026-02-30", "20261205", "2026-W49-6"])
def test_a_date_that_is_not_one_is_a_usage_error_not_a_traceback(fake_flow: list[dict], command: list[str],
                                                                 as_of: str) -> None:
    result = runner.invoke(app, [*command, "--as-of", as_of])
    assert result.exit_code == 2
    assert f"'{as_of}' is not a date (YYYY-MM-DD)" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert fake_flow == []


def test_bad_config_file_is_reported_not_run(fake_flow: list[dict], tmp_path: Path) -> None:
    config = _config(tmp_path, extra="expected_site: ['103']\n")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "expected_site: Extra inputs are not permitted" in result.output
    assert fake_flow == []


def test_second_run_exits_3_with_the_lock_message(fake_flow: list[dict], tmp_path: Path) -> None:
    from storage import LocalStore

    config = _config(tmp_path)
    acquire_lease(LocalStore(tmp_path / "reports"), "SZ003", run_id="r1")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 3
    assert "another audit of SZ003 is running" in result.output


def test_runner_dask_selects_the_dask_task_runner(fake_flow: list[dict], tmp_path: Path) -> None:
    # a port that accepts connections, for the command's pre-flight (flows.cluster_checks); the fake flow
    # submits no task, so no Dask connection is made: the runner type is what counts
    with socket.create_server(("127.0.0.1", 0)) as listening:
        result = runner.invoke(app, ["run", "--config", str(_config(tmp_path)), "--runner", "dask",
                                     "--dask-address", f"tcp://127.0.0.1:{listening.getsockname()[1]}"])
    assert result.exit_code == 0, result.output
    assert fake_flow[0]["runner"] == "DaskTaskRunner"


def test_dask_address_without_dask_runner_is_refused(fake_flow: list[dict], tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--config", str(_config(tmp_path)), "--dask-address", "tcp://h:8786"])
    assert result.exit_code == 2
    assert "--dask-address needs --runner dask" in result.output
    assert fake_flow == []


def test_run_all_prints_every_study_and_exits_1_when_one_failed(fake_flow: list[dict], tmp_path: Path) -> None:
    for study in ("SZ003", "AB001", "LK001"):
        _config(tmp_path / "studies", study)
    result = runner.invoke(app, ["run-all", "--config-dir", str(tmp_path / "studies"), "--as-of", "2026-11-28"])
    assert result.exit_code == 1, result.output
    assert sorted(call["study"] for call in fake_flow) == ["AB001", "LK001", "SZ003"]
    for expected in ("SZ003", "COMPLETED", "AB001", "NOTHING_TO_AUDIT", "LK001", "LOCKED"):
        assert expected in result.output


def test_run_all_audits_the_other_studies_when_one_study_file_is_broken(fake_flow: list[dict],
                                                                       tmp_path: Path) -> None:
    _config(tmp_path / "studies", "SZ003")
    (tmp_path / "studies" / "notes.yaml").write_text("study: [unclosed\n")
    result = runner.invoke(app, ["run-all", "--config-dir", str(tmp_path / "studies"), "--as-of", "2026-11-28"])
    assert result.exit_code == 1, result.output
    assert [call["study"] for call in fake_flow] == ["SZ003"]
    assert "notes.yaml" in result.output and "this study is not audited; the others are" in result.output
    assert "COMPLETED" in result.output and "FAILED" in result.output and "Traceback" not in result.output


def test_run_all_exits_0_when_every_study_completed(fake_flow: list[dict], tmp_path: Path) -> None:
    _config(tmp_path / "studies", "SZ003")
    result = runner.invoke(app, ["run-all", "--config-dir", str(tmp_path / "studies")])
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.output


@pytest.mark.parametrize("folder", ["missing", "bad"])
def test_run_all_with_a_wrong_config_folder_is_one_line_before_prefect_starts(
    fake_flow: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str,
) -> None:
    import runtime.prefect_api

    started: list[bool] = []
    monkeypatch.setattr(runtime.prefect_api, "start_early_prefect_api", lambda: started.append(True))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sz003.yaml").write_text("study: SZ003\nlanding: [not, a, place]\n")
    result = runner.invoke(app, ["run-all", "--config-dir", str(tmp_path / folder)])
    assert result.exit_code == 2
    assert "error in the study configuration:" in result.output and "Traceback" not in result.output
    assert started == [] and fake_flow == []


@pytest.mark.parametrize("command", ["run", "expectations"])
def test_the_help_names_the_bundled_protocol_file_a_study_starts_from(command):
    from contracts.protocol import bundled_protocol_path

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    named = "contracts/protocols/sz003.yaml"
    assert named in " ".join(result.output.split())
    assert bundled_protocol_path().as_posix().endswith(named) and bundled_protocol_path().is_file()
