"""run_all_audits: every configured study audited, failures isolated and reported, one shared cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect import flow

import flows.nightly
from flows.multi import (
    RunAllSummary,
    StudiesFailedError,
    StudyOutcome,
    StudyStatus,
    outcome_of,
    run_all_audits,
    shared_cluster,
)
from flows.nightly import NothingToAuditError
from flows.runners import RunnerChoice, RunnerKind
from publication import AuditLockedError
from tests.support.protocols import write_protocol


@dataclass(frozen=True)
class _Summary:
    study: str

    def as_dict(self) -> dict:
        return {"study": self.study}


def test_outcome_of_a_completed_audit_keeps_its_summary() -> None:
    assert outcome_of("SZ003", lambda: _Summary("SZ003")) == StudyOutcome(
        "SZ003", StudyStatus.COMPLETED, "", {"study": "SZ003"})


@pytest.mark.parametrize(
    ("error", "status", "message", "failed"),
    [
        (AuditLockedError("another audit of SZ003 is running", None), StudyStatus.LOCKED,
         "another audit of SZ003 is running", False),
        (NothingToAuditError("nothing to audit for SZ003"), StudyStatus.NOTHING_TO_AUDIT,
         "nothing to audit for SZ003", True),
        (ConnectionError("endpoint unreachable"), StudyStatus.FAILED, "ConnectionError: endpoint unreachable", True),
    ],
)
def test_outcome_of_a_failed_audit(error: Exception, status: StudyStatus, message: str, failed: bool) -> None:
    def audit() -> None:
        raise error

    outcome = outcome_of("SZ003", audit)
    assert (outcome.status, outcome.message, outcome.summary, outcome.failed) == (status, message, None, failed)


def _write_configs(folder: Path, studies: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for study in studies:
        protocol = "" if study == "SZ003" else f"protocol: {write_protocol(folder.parent / 'protocols', study)}\n"
        (folder / f"{study.lower()}.yaml").write_text(
            f"study: {study}\nlanding: {folder / 'landing'}\nreports: {folder / 'reports'}\n{protocol}")
    return folder


@flow(name="fake_nightly_audit")
def _fake_nightly(landing: str, reports: str, study: str = "SZ003", protocol: str | None = None,
                  as_of: str | None = None, endpoint_url: str | None = None, timezone: str = "UTC",
                  expected_sites: list[str] | None = None, lease_expiry_minutes: float = 5.0,
                  units: str | None = None, process_checks: str | None = None, policy: str | None = None,
                  report_link_hours: float = 24.0,
                  outbox: str | None = None, digest: dict | None = None) -> _Summary:
    if study == "AB001":
        raise NothingToAuditError(f"nothing to audit for {study} in {landing}: no site folders found")
    if study == "CD002":
        raise AuditLockedError(f"another audit of {study} is running: run x on host y", None)
    assert as_of == "2026-11-28"
    return _Summary(study)


def test_run_all_audits_every_study_and_fails_at_the_end_naming_the_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None,
) -> None:
    monkeypatch.setattr(flows.nightly, "nightly_audit", _fake_nightly)
    config_dir = _write_configs(tmp_path / "studies", ["SZ003", "AB001", "CD002"])
    with pytest.raises(StudiesFailedError) as caught:
        run_all_audits(config_dir=str(config_dir), as_of="2026-11-28")
    outcomes = {o.study: o.status for o in caught.value.summary.outcomes}
    assert outcomes == {"AB001": StudyStatus.NOTHING_TO_AUDIT, "CD002": StudyStatus.LOCKED,
                        "SZ003": StudyStatus.COMPLETED}
    assert str(caught.value).startswith("1 of 3 studies not audited: AB001 (NOTHING_TO_AUDIT: nothing to audit")


def test_run_all_succeeds_when_every_study_completed_or_is_being_audited_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None,
) -> None:
    monkeypatch.setattr(flows.nightly, "nightly_audit", _fake_nightly)
    config_dir = _write_configs(tmp_path / "studies", ["SZ003", "CD002"])
    summary = run_all_audits(config_dir=str(config_dir), as_of="2026-11-28")
    assert isinstance(summary, RunAllSummary)
    assert [(o.study, o.status, o.summary) for o in summary.outcomes] == [
        ("CD002", StudyStatus.LOCKED, None), ("SZ003", StudyStatus.COMPLETED, {"study": "SZ003"})]


def test_run_all_refuses_a_bad_config_dir_before_auditing_anything(tmp_path: Path, prefect_harness: None) -> None:
    from flows.config import ConfigError

    (tmp_path / "bad.yaml").write_text("study: SZ003\nlanding: /x\nreports: /y\ntypo: 1\n")
    with pytest.raises(ConfigError, match="typo: Extra inputs are not permitted"):
        run_all_audits(config_dir=str(tmp_path))


def test_a_study_file_that_cannot_be_loaded_fails_its_study_not_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None,
) -> None:
    """helper-44: one study file naming a protocol that is not there stopped run-all before any study ran."""
    monkeypatch.setattr(flows.nightly, "nightly_audit", _fake_nightly)
    config_dir = _write_configs(tmp_path / "studies", ["SZ003"])
    (config_dir / "sz004.yaml").write_text(f"study: SZ004\nlanding: {tmp_path}\nreports: {tmp_path}\n"
                                           f"protocol: {tmp_path / 'no-such-protocol.yaml'}\n")
    with pytest.raises(StudiesFailedError) as caught:
        run_all_audits(config_dir=str(config_dir), as_of="2026-11-28")
    outcomes = {o.study: (o.status, o.message) for o in caught.value.summary.outcomes}
    assert outcomes["SZ003"][0] is StudyStatus.COMPLETED
    status, message = outcomes["sz004.yaml"]
    assert status is StudyStatus.FAILED and "no-such-protocol.yaml" in message and "SZ004" in message


def test_shared_cluster_passes_threads_and_addresses_through() -> None:
    thread = RunnerChoice()
    with shared_cluster(thread) as choice:
        assert choice is thread
    remote = RunnerChoice(RunnerKind.DASK, dask_address="tcp://10.0.0.5:8786")
    with shared_cluster(remote) as choice:
        assert choice is remote


def test_shared_cluster_starts_one_local_cluster_for_all_studies_and_closes_it() -> None:
    from distributed import Client

    with shared_cluster(RunnerChoice(RunnerKind.DASK, dask_workers=2)) as choice:
        assert choice.kind is RunnerKind.DASK and choice.dask_address
        with Client(choice.dask_address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
    # the scheduler is gone: nothing listens on its port any more
    import socket
    from urllib.parse import urlparse

    address = urlparse(choice.dask_address)
    with pytest.raises(OSError), socket.create_connection((address.hostname, address.port), timeout=2):
        pass
