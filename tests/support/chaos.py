"""The chaos test's moves and checks: start the installed CLI, kill it at a point, look at what it left.

Shared by tests/test_chaos_local.py and tests/test_chaos_s3.py (one reports location each), so that
both run the same kills and the same checks:

- **killed**: the run ended by SIGKILL at its point (not earlier, not by finishing);
- **no process left**: nothing carrying the run's environment tag is still running (its Prefect API
  server, Dask workers);
- **no partial night**: every dated folder of the study either has no completion marker (not a
  published night) or matches it object for object, sha256 included; a complete folder's tables are
  the undisturbed run's bytes;
- **the rerun**: started at once, exits 0, publishes tables byte-identical to the undisturbed run, leaves
  no staging and no journal, and lists what it recovered in its run manifest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from publication import MARKER, check_complete, journal_key, read_marker
from storage import Store
from tests.support.processes import TAG, left_after, new_tag

CLI = str(Path(sys.executable).with_name("screening-audit"))
HOOK = str(Path(__file__).parents[1] / "chaos")
KILL_AT = "SCREENING_AUDIT_CHAOS_KILL_AT"
STUDY = "SZ003"
TABLES = ("subjects", "eligibility", "discrepancies", "validation", "validation_resolved", "dv")


@dataclass
class Audit:
    """One CLI run: its arguments and environment without a kill point."""

    landing: str
    reports: str
    as_of: str
    env: dict[str, str]
    runner: str = "thread"

    def run(self, *, kill_at: str | None = None, timeout: int = 900) -> tuple[subprocess.CompletedProcess, str]:
        """Run the CLI (killing it at `kill_at`); the result and the run's process tag."""
        tag = new_tag()
        env = {**self.env, TAG: tag}
        if kill_at:
            env[KILL_AT] = kill_at
            env["PYTHONPATH"] = os.pathsep.join(p for p in (HOOK, env.get("PYTHONPATH")) if p)
        args = [CLI, "run", "--landing", self.landing, "--reports", self.reports, "--as-of", self.as_of,
                "--runner", self.runner]
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        return result, tag


def cli_env(prefect_home: Path, *, s3_endpoint: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", KILL_AT, TAG)}
    env.update(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false", COLUMNS="160",
               SCREENING_AUDIT_S3_CONNECT_TIMEOUT="30", SCREENING_AUDIT_S3_READ_TIMEOUT="120")
    if s3_endpoint:
        env["AWS_ENDPOINT_URL"] = s3_endpoint
    return env


def tables(store: Store, prefix: str) -> dict[str, bytes]:
    """Every published table (both formats) and site query file of a night, by name."""
    names = [f"{name}.{ext}" for name in TABLES for ext in ("csv", "parquet")]
    names += sorted(obj.key[len(prefix) + 1:] for obj in store.list(f"{prefix}/site_queries"))
    return {name: store.read_bytes(f"{prefix}/{name}") for name in names}


def nights(store: Store) -> list[str]:
    return [name for name in store.list_dirs(STUDY) if name[:2] == "20"]


def assert_no_partial_night(store: Store, reference: dict[str, bytes]) -> dict[str, str]:
    """Every dated folder is unpublished (no marker) or complete with the reference tables; their states."""
    states = {}
    for night in nights(store):
        prefix = f"{STUDY}/{night}"
        if read_marker(store, prefix) is None:
            states[night] = "not published"
            continue
        assert check_complete(store, prefix, deep=True) == [], f"{prefix} has a marker but is not complete"
        assert tables(store, prefix) == reference, f"{prefix} is complete but its tables differ"
        states[night] = "complete"
    return states


def assert_killed(result: subprocess.CompletedProcess, point: str) -> None:
    assert result.returncode == -9, (f"the run was not killed at {point} (exit {result.returncode}): "
                                     f"{result.stderr[-3000:]}")


def assert_nothing_left(tag: str) -> None:
    assert left_after(tag) == {}, "processes of the killed run are still running"


def assert_rerun_recovers(store: Store, result: subprocess.CompletedProcess, as_of: str,
                          reference: dict[str, bytes]) -> dict:
    """The rerun exited 0 and published the reference tables; its manifest's `recovery` section."""
    assert result.returncode == 0, result.stderr[-3000:]
    prefix = f"{STUDY}/{as_of}"
    assert check_complete(store, prefix, deep=True) == []
    assert tables(store, prefix) == reference
    assert [obj.key for obj in store.list(f"_audit/{STUDY}/staging")] == []
    assert store.head(journal_key(STUDY)) is None
    assert store.head(f"{prefix}/{MARKER}") is not None
    return json.loads(store.read_bytes(f"{prefix}/run_manifest.json"))["recovery"]
