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


def _dv_night(store: LocalStore, as_of: str, marks: dict[str, str]) -> None:
    import polars as pl

    buffer = io.BytesIO()
    pl.DataFrame({"FINDING_ID": list(marks), "DVREFID": ["PC02"] * len(marks), "DVREVIEW": list(marks.values())},
                 schema={"FINDING_ID": pl.String, "DVREFID": pl.String, "DVREVIEW": pl.String}).write_parquet(buffer)
    _night(store, as_of, 3, sealed=False)
    store.write_bytes(f"{STUDY}/{as_of}/dv.parquet", buffer.getvalue())
    seal(store, f"{STUDY}/{as_of}")


def test_a_night_whose_ledger_fails_verification_carries_the_confirmations_as_published(tmp_path) -> None:
    from review.night import published_confirmations

    store = LocalStore(tmp_path)
    _dv_night(store, "2026-11-28", {"D-1": "CONFIRMED", "D-2": "CONFIRMED, NOT IN TONIGHT'S DATA",
                                    "D-3": "NOT YET REVIEWED"})
    assert published_confirmations(store, STUDY, date(2026, 11, 29))["FINDING_ID"].to_list() == ["D-1", "D-2"]
    assert published_confirmations(store, STUDY, date(2026, 11, 28)) is None  # no night before


def test_a_ledger_broken_for_several_nights_keeps_what_was_confirmed_before_it_broke(tmp_path) -> None:
    """helper-48: the first broken night marks every important finding REVIEW UNKNOWN; the second, whose data no
    longer show a deviation confirmed before the ledger broke, dropped it from dv. Its mark is the last night's that
    had one; a finding never confirmed is not carried, nor one whose earlier nights are unknown too."""
    from review.night import published_confirmations

    store = LocalStore(tmp_path)
    _dv_night(store, "2026-11-26", {"D-1": "CONFIRMED", "D-5": "NOT YET REVIEWED"})
    _dv_night(store, "2026-11-27", {"D-1": "REVIEW UNKNOWN", "D-5": "REVIEW UNKNOWN", "D-6": "REVIEW UNKNOWN"})
    _dv_night(store, "2026-11-28", {"D-1": "REVIEW UNKNOWN", "D-2": "CONFIRMED, NOT IN TONIGHT'S DATA",
                                    "D-5": "REVIEW UNKNOWN", "D-6": "REVIEW UNKNOWN"})
    carried = published_confirmations(store, STUDY, date(2026, 11, 29))
    assert carried["FINDING_ID"].to_list() == ["D-2", "D-1"]
    assert carried["DVREVIEW"].to_list() == ["CONFIRMED, NOT IN TONIGHT'S DATA", "CONFIRMED"]
