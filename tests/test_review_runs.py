"""The runs the review sees are published nights only: a folder a crashed run left without its completion
marker (or half-replaced, not matching it) is not the latest run, not a later run and not the previous one.
So a killed re-run of a later night neither makes tonight's run read-only nor moves "since the last run"."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from review.runs import later_run_exists, latest_run, previous_manifest
from storage import LocalStore, Store
from tests.support.published import seal

STUDY = "SZ003"


def _night(store: Store, as_of: str, entries: int, *, sealed: bool) -> None:
    store.write_bytes(f"{STUDY}/{as_of}/run_manifest.json", json.dumps({"review": {"entries": entries}}).encode())
    store.write_bytes(f"{STUDY}/{as_of}/report.html", b"<html></html>")
    if sealed:
        seal(store, f"{STUDY}/{as_of}")


@pytest.fixture
def store(tmp_path) -> LocalStore:
    store = LocalStore(tmp_path)
    _night(store, "2026-11-27", 2, sealed=True)
    _night(store, "2026-11-28", 5, sealed=True)
    _night(store, "2026-11-29", 9, sealed=False)  # killed before its marker: never published
    _night(store, "2026-11-30", 11, sealed=True)
    # half-replaced: a listed file at another size than its marker's (a file added after publication, which the
    # marker does not list, would not unpublish it: tests/test_publication_promotion.py)
    store.write_bytes(f"{STUDY}/2026-11-30/report.html", b"<html>")
    store.write_bytes(f"{STUDY}/_review/ledger/000001.json", b"{}")  # the ledger is not a night
    return store


def test_the_latest_run_is_the_latest_published_night(store: LocalStore) -> None:
    assert latest_run(store, STUDY) == date(2026, 11, 28)


def test_a_half_written_later_night_does_not_make_tonight_a_rerun(store: LocalStore) -> None:
    assert not later_run_exists(store, STUDY, date(2026, 11, 28))
    assert later_run_exists(store, STUDY, date(2026, 11, 27))


def test_since_the_last_run_counts_from_the_last_published_nights_manifest(store: LocalStore) -> None:
    assert previous_manifest(store, STUDY, date(2026, 12, 1)) == {"review": {"entries": 5}}
    assert previous_manifest(store, STUDY, date(2026, 11, 28)) == {"review": {"entries": 2}}
    assert previous_manifest(store, STUDY, date(2026, 11, 27)) is None


def test_the_night_befores_confirmed_dv_records_stand_while_their_confirmation_does(tmp_path) -> None:
    import polars as pl

    from review.fold import STATES
    from review.night import standing_confirmations

    store = LocalStore(tmp_path)
    dv = pl.DataFrame({"FINDING_ID": ["D-1", "D-2", "D-3", "D-4"], "DVREFID": ["PC02", "EX07", "PC01", "IN10"],
                       "DVREVIEW": ["CONFIRMED", "CONFIRMED, NOT IN TONIGHT'S DATA", "NOT YET REVIEWED",
                                    "NOT YET REVIEWED"]})
    buffer = io.BytesIO()
    dv.write_parquet(buffer)
    _night(store, "2026-11-28", 3, sealed=True)
    store.write_bytes(f"{STUDY}/2026-11-28/dv.parquet", buffer.getvalue())
    seal(store, f"{STUDY}/2026-11-28")
    states = pl.DataFrame({"FINDING_ID": ["D-1", "D-2", "D-3", "D-4"], "DV_CONFIRMED": [True, False, False, True]},
                          schema={k: STATES[k] for k in ("FINDING_ID", "DV_CONFIRMED")})
    # D-2's confirmation was withdrawn since (NOT_A_DEVIATION), D-3 was never confirmed, D-4 was confirmed since that
    # night published it NOT YET REVIEWED (helper-46: it left dv the night its data changed)
    assert standing_confirmations(store, STUDY, date(2026, 11, 29), states)["FINDING_ID"].to_list() == ["D-1", "D-4"]
    assert standing_confirmations(store, STUDY, date(2026, 11, 28), states) is None  # no night before


def test_a_night_whose_ledger_fails_verification_carries_the_confirmations_as_published(tmp_path) -> None:
    import polars as pl

    from review.night import published_confirmations

    store = LocalStore(tmp_path)
    dv = pl.DataFrame({"FINDING_ID": ["D-1", "D-2", "D-3", None], "DVREFID": ["PC02", "EX07", "PC01", "IN10"],
                       "DVREVIEW": ["CONFIRMED", "CONFIRMED, NOT IN TONIGHT'S DATA", "NOT YET REVIEWED", "CONFIRMED"]})
    buffer = io.BytesIO()
    dv.write_parquet(buffer)
    _night(store, "2026-11-28", 3, sealed=True)
    store.write_bytes(f"{STUDY}/2026-11-28/dv.parquet", buffer.getvalue())
    seal(store, f"{STUDY}/2026-11-28")
    assert published_confirmations(store, STUDY, date(2026, 11, 29))["FINDING_ID"].to_list() == ["D-1", "D-2"]
    assert published_confirmations(store, STUDY, date(2026, 11, 28)) is None  # no night before
