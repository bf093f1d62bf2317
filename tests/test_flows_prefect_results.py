"""What Prefect keeps on disk of a failed night, as docs/operations.md says: the exception, nothing else.

Prefect 3 writes the exception of every failed flow run to its result storage
(PREFECT_RESULTS_LOCAL_STORAGE_PATH, default $PREFECT_HOME/storage) whatever the persistence settings;
task results are not kept (the tasks use NO_CACHE and persistence is off). This test pins that, so
that the documentation fails with the behaviour if a Prefect upgrade changes it.
"""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

from flows.nightly import nightly_audit


def test_a_failed_night_leaves_only_its_exception_in_prefect_result_storage(prefect_harness: None,
                                                                          tmp_path: Path) -> None:
    storage = tmp_path / "prefect-results"
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage}):
        state = nightly_audit(landing=str(tmp_path / "no-landing"), reports=str(tmp_path / "reports"),
                              as_of="2026-11-28", return_state=True)
    assert state.is_failed()
    [kept] = list(storage.iterdir())
    error = pickle.loads(base64.b64decode(kept.read_bytes()))
    assert type(error).__name__ == "LandingError"
    assert error.args == (f"study SZ003: the landing root {tmp_path / 'no-landing'} does not exist (check the path "
                          "or bucket in the study's `landing`)",)
