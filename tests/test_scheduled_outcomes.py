"""The flow a deployment runs (flows.scheduled, what `screening-audit worker` executes) ends as
`screening-audit run` exits, and holds the same lease: *Cancelled* having done nothing while another run
holds the study's lease (exit 3), *Completed* with a published night and the lease released (exit 0), a
dead run's lease on this host taken over at once and recorded, and *Failed* when there is nothing to
audit (exit 2)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from generator import generate
from publication import acquire_lease, is_complete, read_lease
from publication.liveness import ProcessIdentity, this_process
from storage import LocalStore

AS_OF = "2026-11-28"


def _ended_process() -> ProcessIdentity:
    """A process of this host that has ended: what a SIGKILLed night leaves in its lease."""
    from publication.liveness import _start

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    identity = ProcessIdentity(socket.gethostname(), child.pid, this_process().scope, _start(child.pid))
    child.communicate(b"")
    return identity


@pytest.fixture
def study(tmp_path: Path) -> dict:
    landing, reports = tmp_path / "landing", tmp_path / "reports"
    generate(LocalStore(landing), study="SZ003", sites=2, subjects=10, seed=5, as_of=date.fromisoformat(AS_OF),
             formats="csv", plant_problems=False)
    config = tmp_path / "sz003.yaml"
    config.write_text(f"study: SZ003\nlanding: {landing}\nreports: {reports}\nlease_expiry_minutes: 5\n")
    return {"config": str(config), "reports": LocalStore(reports), "root": reports}


def _night(study: dict):
    from flows.scheduled import nightly_audit_from_config

    return nightly_audit_from_config(config=study["config"], as_of=AS_OF, return_state=True)


def test_a_held_lease_cancels_the_scheduled_night_which_does_nothing(prefect_harness: None, study: dict) -> None:
    reports = study["reports"]
    acquire_lease(reports, "SZ003", run_id="cli-run")  # a command-line run of the study, alive (this process)
    state = _night(study)
    assert state.is_cancelled(), state
    assert state.message.startswith("not run: another audit of SZ003 is running: run cli-run")
    assert read_lease(reports, "SZ003")[0].run_id == "cli-run"  # left to its holder
    assert not (study["root"] / "SZ003").exists()


def test_a_dead_runs_lease_is_taken_over_at_once_and_the_night_completes(prefect_harness: None,
                                                                        study: dict) -> None:
    reports = study["reports"]
    acquire_lease(reports, "SZ003", run_id="killed-run", me=_ended_process())
    state = _night(study)
    assert state.is_completed(), state
    assert is_complete(reports, f"SZ003/{AS_OF}")
    lease = read_lease(reports, "SZ003")[0]
    assert lease.state == "released" and lease.run_id != "killed-run"
    recovery = json.loads(reports.read_bytes(f"SZ003/{AS_OF}/run_manifest.json"))["recovery"]
    assert "killed-run" in recovery["lease_taken_over"] and "ended" in recovery["lease_taken_over"]


def test_nothing_to_audit_fails_the_scheduled_night(prefect_harness: None, tmp_path: Path) -> None:
    from flows.scheduled import nightly_audit_from_config

    (tmp_path / "landing" / "SZ003").mkdir(parents=True)
    config = tmp_path / "sz003.yaml"
    config.write_text(f"study: SZ003\nlanding: {tmp_path / 'landing'}\nreports: {tmp_path / 'reports'}\n")
    state = nightly_audit_from_config(config=str(config), as_of=AS_OF, return_state=True)
    assert state.is_failed() and "nothing to audit for SZ003" in state.message
    assert read_lease(LocalStore(tmp_path / "reports"), "SZ003")[0].state == "released"
