"""The review ledger: append-only, chained, safe against concurrent writers, and every tampering named.

On a local folder and on a moto S3 server (conditional writes over HTTP).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import polars as pl
import pytest

from core.identity import fingerprint
from review.append import append_actions
from review.catalogue import CATALOGUE
from review.entries import HASHED, chained
from review.fold import current_states
from review.ledger import (
    LedgerIntegrityError,
    object_body,
    object_key,
    read_ledger,
    review_key,
    write_checkpoint,
)
from review.machine import load_machine
from review.proposals import proposals
from storage import LocalStore, S3Store, Store

STUDY = "SZ003"
MACHINE = load_machine()


def catalogue(*rows: tuple[str, str, str]) -> pl.DataFrame:
    """FINDING_ID, SITEID, SEVERITY (EVIDENCE_HASH h-<id>)."""
    frame = pl.DataFrame([{"FINDING_ID": f, "SITEID": s, "SEVERITY": v, "EVIDENCE_HASH": f"h-{f}"} for f, s, v in rows],
                         schema={"FINDING_ID": pl.String, "SITEID": pl.String, "SEVERITY": pl.String,
                                 "EVIDENCE_HASH": pl.String})
    return frame.select([pl.col(c) if c in frame.columns else pl.lit(None, t).alias(c) for c, t in CATALOGUE.items()])


FINDINGS = catalogue(("D-1", "101", "IMPORTANT"), ("D-2", "102", "QUERY"), ("V-3", "101", "QUERY"))


def add(store: Store, finding: str, action: str, by: str = "alice", text: str | None = None):
    return append_actions(store, STUDY, proposals([{"FINDING_ID": finding, "ACTION": action, "BY": by, "TEXT": text,
                                                    "VIA": "test"}]), FINDINGS, MACHINE, "the test run")


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "reports")
    return S3Store(f"s3://{request.getfixturevalue('s3_bucket')}/reports",
                   endpoint_url=request.getfixturevalue("s3_endpoint"))


def _problems(store: Store) -> list[str]:
    return read_ledger(store, STUDY, MACHINE.initial).problems


def _rewrite(store: Store, key: str, change) -> None:
    body = json.loads(store.read_bytes(key))
    change(body)
    store.write_bytes(key, json.dumps(body, sort_keys=True).encode("utf-8"))


def test_the_hash_of_an_entry_made_in_python_is_the_one_polars_verifies() -> None:
    rows = [{"FINDING_ID": "D-1", "ACTION": "COMMENT", "BY": "é", "TEXT": None, "STUDYID": STUDY}, {"BY": "x"}]
    entries = chained(rows, 7, "abc")
    frame = pl.DataFrame(entries, schema={name: (pl.Int64 if name == "SEQ" else pl.String) for name in entries[0]})
    assert frame.select(fingerprint(*HASHED)).to_series().to_list() == [e["ENTRY_HASH"] for e in entries]
    assert entries[1]["PREV_HASH"] == entries[0]["ENTRY_HASH"] and entries[0]["PREV_HASH"] == "abc"
    assert [e["SEQ"] for e in entries] == [7, 8]


def test_actions_are_entries_chained_by_hash_and_folded_into_states(store: Store) -> None:
    assert add(store, "D-1", "ACKNOWLEDGE").key == object_key(STUDY, 1)
    add(store, "D-1", "CONFIRM_DEVIATION", by="bob")
    add(store, "D-2", "NOT_A_DEVIATION", text="the site's unit is right")
    view = read_ledger(store, STUDY, MACHINE.initial)
    assert view.problems == [] and view.head_seq == 3
    assert view.entries["PREV_HASH"].to_list()[1:] == view.entries["ENTRY_HASH"].to_list()[:-1]
    states = {r["FINDING_ID"]: r for r in current_states(view.entries, MACHINE).iter_rows(named=True)}
    assert (states["D-1"]["REVIEW_STATE"], states["D-1"]["REVIEWED_BY"], states["D-1"]["DV_CONFIRMED"]) == (
        "CONFIRMED", "bob", True)
    assert states["D-2"]["REVIEW_STATE"] == "NOT_A_DEVIATION"
    assert states["D-2"]["LAST_TEXT"] == "the site's unit is right"
    assert states["D-2"]["DECISION_HASH"] == "h-D-2"  # the evidence the decision was taken on
    entry = view.entries.row(0, named=True)
    assert (entry["FROM_STATE"], entry["TO_STATE"], entry["STUDYID"]) == ("UNREVIEWED", "ACKNOWLEDGED", STUDY)
    assert entry["AT"].endswith("Z") and entry["EVIDENCE_HASH"] == "h-D-1"


def test_the_fold_keeps_the_sites_last_answer_whatever_comes_after_it(store: Store) -> None:
    add(store, "D-1", "SITE_RESPONSE", by="site 101", text="first answer")
    add(store, "D-1", "SITE_RESPONSE", by="site 101 (Dr Lee)", text="re-checked: the value is right")
    add(store, "D-1", "COMMENT", by="alice", text="asked the CRA to verify")
    add(store, "D-2", "ACKNOWLEDGE")
    states = {r["FINDING_ID"]: r for r in current_states(read_ledger(store, STUDY, MACHINE.initial).entries,
                                                          MACHINE).iter_rows(named=True)}
    assert (states["D-1"]["SITE_ANSWER"], states["D-1"]["SITE_ANSWERED_BY"]) == (
        "re-checked: the value is right", "site 101 (Dr Lee)")
    assert states["D-1"]["LAST_TEXT"] == "asked the CRA to verify" and states["D-1"]["SITE_ANSWERED_AT"].endswith("Z")
    assert states["D-2"]["SITE_ANSWER"] is None
    # reopened (its evidence changed): an answer about the earlier evidence is no answer to this one
    add(store, "D-1", "CLOSE")
    add(store, "D-1", "REOPEN", text="the value changed")
    states = {r["FINDING_ID"]: r for r in current_states(read_ledger(store, STUDY, MACHINE.initial).entries,
                                                          MACHINE).iter_rows(named=True)}
    assert states["D-1"]["SITE_ANSWER"] is None


def test_a_refused_action_writes_nothing(store: Store) -> None:
    add(store, "D-2", "CLOSE")
    before = [info.key for info in store.list(review_key(STUDY))]
    outcome = add(store, "D-2", "ACKNOWLEDGE")
    assert outcome.key is None
    assert outcome.refused["REFUSED"].to_list() == [
        "ACKNOWLEDGE is not allowed on D-2 in state CLOSED (allowed: REOPEN, COMMENT)"]
    assert [info.key for info in store.list(review_key(STUDY))] == before


def test_an_action_that_repeats_the_last_entry_of_its_finding_is_not_recorded_twice(store: Store) -> None:
    """A returned workbook saved again (its sha256 changes, its rows do not) must not record its comments and
    re-sent queries a second time; a new comment, or the same one after another entry, is recorded."""
    assert add(store, "D-2", "QUERY_SENT", text="asked the site").key is not None
    again = add(store, "D-2", "QUERY_SENT", text="asked the site")
    assert again.key is None and again.refused["REFUSED"].to_list() == [
        "the same QUERY_SENT by alice as the last entry of D-2 (entry 1): not recorded twice (give a text if it is "
        "a new one)"]
    assert add(store, "D-2", "COMMENT", text="reminder sent").key is not None
    assert add(store, "D-2", "QUERY_SENT", text="asked the site").key is not None  # no longer the last entry
    assert add(store, "D-2", "COMMENT", by="bob", text="reminder sent").key is not None  # another person
    assert read_ledger(store, STUDY, MACHINE.initial).head_seq == 4


class Competitor:
    """A store whose first conditional create loses: another writer appends just before it."""

    def __init__(self, inner: Store, competing) -> None:
        self.inner, self.competing, self.raced = inner, competing, False

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        if not self.raced:
            self.raced = True
            self.competing(self.inner)
        return self.inner.create_exclusive(key, data)


def test_a_writer_that_loses_the_race_re_reads_and_takes_the_next_number(store: Store) -> None:
    racing = Competitor(store, lambda inner: add(inner, "D-1", "ACKNOWLEDGE", by="bob"))
    outcome = add(racing, "D-1", "COMMENT", by="alice", text="seen")
    assert racing.raced and outcome.key == object_key(STUDY, 2)
    entries = read_ledger(store, STUDY, MACHINE.initial).require_intact().entries
    assert entries.select("SEQ", "BY", "ACTION", "FROM_STATE", "TO_STATE").rows() == [
        (1, "bob", "ACKNOWLEDGE", "UNREVIEWED", "ACKNOWLEDGED"),
        (2, "alice", "COMMENT", "ACKNOWLEDGED", "ACKNOWLEDGED")]  # checked again against bob's state


def test_an_action_the_winners_entry_made_invalid_is_refused_on_the_retry(store: Store) -> None:
    racing = Competitor(store, lambda inner: add(inner, "D-2", "CLOSE", by="bob"))
    outcome = add(racing, "D-2", "ACKNOWLEDGE", by="alice")
    assert outcome.key is None and "in state CLOSED" in outcome.refused["REFUSED"][0]
    assert read_ledger(store, STUDY, MACHINE.initial).head_seq == 1


def test_many_writers_at_the_same_moment_lose_nothing(store: Store) -> None:
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def comment(i: int) -> None:
        try:
            barrier.wait()
            add(store, "V-3", "COMMENT", by=f"reviewer {i}", text=f"note {i}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=comment, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    view = read_ledger(store, STUDY, MACHINE.initial)
    assert view.problems == [] and view.entries["SEQ"].to_list() == [1, 2, 3, 4, 5, 6]
    assert sorted(view.entries["BY"].to_list()) == [f"reviewer {i}" for i in range(6)]


@pytest.fixture
def three(store: Store) -> Store:
    add(store, "D-1", "ACKNOWLEDGE")
    add(store, "D-2", "QUERY_SENT", by="bob")
    add(store, "D-1", "CONFIRM_DEVIATION", by="carol")
    return store


@pytest.mark.parametrize("checkpointed", [False, True])
def test_a_changed_entry_is_named(three: Store, checkpointed: bool) -> None:
    if checkpointed:
        assert write_checkpoint(three, read_ledger(three, STUDY, MACHINE.initial)) is not None

    def forge(body: dict) -> None:
        body["entries"][0]["BY"] = "mallory"

    _rewrite(three, object_key(STUDY, 2), forge)
    problems = _problems(three)
    assert any(p.startswith(f"entry 2 in {object_key(STUDY, 2)} was changed") for p in problems), problems
    with pytest.raises(LedgerIntegrityError, match="entry 2"):
        add(three, "V-3", "ACKNOWLEDGE")
    assert read_ledger(three, STUDY, MACHINE.initial).head_seq == 3  # nothing appended to a broken ledger


def test_an_entry_rewritten_with_a_fresh_hash_breaks_the_next_link(three: Store) -> None:
    def forge(body: dict) -> None:
        entry = body["entries"][0]
        entry["TEXT"] = "nothing to see"
        entry["ENTRY_HASH"] = chained([entry], entry["SEQ"], entry["PREV_HASH"])[0]["ENTRY_HASH"]

    _rewrite(three, object_key(STUDY, 2), forge)
    assert any("entry 3" in p and "does not follow entry 2" in p for p in _problems(three))


def test_a_removed_entry_is_named(three: Store) -> None:
    three.delete(object_key(STUDY, 2))
    assert any("entries 2 to 2 are missing" in p for p in _problems(three))


def test_a_removed_last_entry_is_named_once_a_checkpoint_has_seen_it(three: Store) -> None:
    write_checkpoint(three, read_ledger(three, STUDY, MACHINE.initial))
    three.delete(object_key(STUDY, 3))
    assert any(f"ledger object {object_key(STUDY, 3)} (entries 3 to 3) was removed" in p for p in _problems(three))


def test_an_inserted_entry_is_named(three: Store) -> None:
    view = read_ledger(three, STUDY, MACHINE.initial)
    forged = chained([{**view.entries.row(2, named=True), "BY": "mallory", "FROM_STATE": "UNREVIEWED"}], 4,
                     "0" * 32)
    three.create_exclusive(object_key(STUDY, 4), object_body(STUDY, forged))
    assert any("entry 4" in p and "does not follow entry 3" in p for p in _problems(three))


def test_swapped_entries_are_named(three: Store) -> None:
    one, two = three.read_bytes(object_key(STUDY, 1)), three.read_bytes(object_key(STUDY, 2))
    three.write_bytes(object_key(STUDY, 1), two)
    three.write_bytes(object_key(STUDY, 2), one)
    problems = _problems(three)
    assert any("is named for entry 1 but starts with entry 2" in p for p in problems), problems


def test_an_entry_of_another_study_and_a_stray_object_are_named(three: Store) -> None:
    _rewrite(three, object_key(STUDY, 1), lambda body: body.update(study="SZ004"))
    three.write_bytes(review_key(STUDY, "ledger", "notes.txt"), b"hello")
    problems = _problems(three)
    assert f"ledger object {object_key(STUDY, 1)} belongs to study 'SZ004', not {STUDY}" in problems
    assert f"{review_key(STUDY, 'ledger', 'notes.txt')} is not a ledger object (unexpected name or folder)" in problems


def test_an_entry_that_skips_a_state_is_named(three: Store) -> None:
    def forge(body: dict) -> None:  # carol's CONFIRM now claims to start from QUERIED, hash recomputed
        entry = body["entries"][0]
        entry["FROM_STATE"] = "QUERIED"
        entry["ENTRY_HASH"] = chained([entry], entry["SEQ"], entry["PREV_HASH"])[0]["ENTRY_HASH"]

    _rewrite(three, object_key(STUDY, 3), forge)
    assert any("moves D-1 from QUERIED, but its previous entry left it ACKNOWLEDGED" in p for p in _problems(three))


def test_the_checkpoint_spares_rereading_and_a_damaged_one_is_ignored(three: Store) -> None:
    key = write_checkpoint(three, read_ledger(three, STUDY, MACHINE.initial))
    again = read_ledger(three, STUDY, MACHINE.initial)
    assert again.problems == [] and again.from_checkpoint == 3 and again.checkpoint == key
    add(three, "V-3", "ACKNOWLEDGE")
    newer = read_ledger(three, STUDY, MACHINE.initial)
    assert newer.from_checkpoint == 3 and newer.head_seq == 4  # only the new object was read
    three.write_bytes(key, three.read_bytes(key)[:-10] + b"0123456789")
    damaged = read_ledger(three, STUDY, MACHINE.initial)
    assert damaged.problems == [] and damaged.from_checkpoint == 0 and damaged.head_seq == 4
    assert damaged.notes == [f"checkpoint {key} does not match its digest: ignored, every ledger object read again"]
    newest = write_checkpoint(three, damaged)
    assert [info.key for info in three.list(review_key(STUDY, "checkpoint"))] == [newest]
