"""What a nightly run does with the review ledger, between the comparison and the publication.

1. Read and verify the ledger. If it fails verification the run says so (the run manifest, the
   report, the log name the entries) and uses none of it: no state is guessed from a broken chain,
   nothing is written to it, and the outputs show the findings without review states.
2. Apply the workbooks waiting in `_review/inbox/` (review.inbox), with a receipt each.
3. Reopen every settled finding (closed, not a deviation) that is present tonight and whose evidence
   differs from the evidence its decision was taken on: one REOPEN entry each, by the system actor,
   saying which decision and what the evidence is now.
4. Save a checkpoint of the verified ledger, so that the next read only reads what is new.

A re-run of a past night (a later night is already published) writes nothing to the ledger: it shows
the states as the ledger has them now, but would otherwise reopen findings on the old night's evidence.
A finding the data no longer show is RESOLVED by the history as before; its thread stays in the ledger
and its state is shown on its RESOLVED row.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from itertools import islice

import polars as pl

from contracts import is_open
from contracts.records import ReviewResult
from contracts.tables import EVIDENCE_HASH, FINDING_ID
from publication import published_nights
from review.append import append_actions
from review.catalogue import catalogue_of, with_resolved
from review.entries import MAX_TEXT
from review.fold import DV_CONFIRMED_MARK, DV_NOT_IN_DATA_MARK, DV_UNKNOWN_MARK, current_states
from review.imports import receipt_stamp, receipts_since, stamp_of
from review.inbox import process_inbox
from review.ledger import LedgerView, read_ledger, write_checkpoint
from review.machine import StateMachine, load_machine
from review.proposals import proposals
from review.runs import later_run_exists, night_manifest, previous_manifest, read_table
from storage import Store

_log = logging.getLogger(__name__)
REOPENED: dict[str, type[pl.DataType] | pl.DataType] = {
    FINDING_ID: pl.String, "SEQ": pl.Int64, "BY": pl.String, "AT": pl.String, "TEXT": pl.String}


def _present(discrepancies: pl.DataFrame, validation: pl.DataFrame) -> pl.DataFrame:
    """The catalogue of the findings the data show tonight (RESOLVED rows left out)."""
    live = discrepancies.filter(is_open()) if "STATUS" in discrepancies.columns else discrepancies
    return catalogue_of(live, validation)


def reopen_proposals(present: pl.DataFrame, states: pl.DataFrame, machine: StateMachine, as_of: date) -> pl.DataFrame:
    """One REOPEN per settled finding present tonight whose evidence differs from its decision's."""
    changed = (present.join(states, on=FINDING_ID, how="inner")
               .filter(pl.col("REVIEW_STATE").is_in(list(machine.settled)) & pl.col("DECISION_HASH").is_not_null()
                       & pl.col(EVIDENCE_HASH).is_not_null() & (pl.col("DECISION_HASH") != pl.col(EVIDENCE_HASH))))
    text = pl.format("Reopened automatically by the run of {}: the evidence changed since {} by {} on {}. Now: {}",
                     pl.lit(as_of.isoformat()), pl.col("DECISION"), pl.col("DECIDED_BY"), pl.col("DECIDED_AT"),
                     pl.col("EVIDENCE").fill_null("(no evidence sentence)")).str.slice(0, MAX_TEXT)
    return proposals(changed.sort(FINDING_ID).select(
        FINDING_ID, pl.lit(machine.reopen_action).alias("ACTION"), pl.lit(machine.system_actor).alias("BY"),
        text.alias("TEXT"), EVIDENCE_HASH, pl.lit(f"nightly run {as_of.isoformat()}").alias("VIA")))


def standing_confirmations(store: Store, study: str, as_of: date, states: pl.DataFrame) -> pl.DataFrame | None:
    """The DV records of the latest published night before `as_of` whose deviation's confirmation stands in `states`
    (current_states: confirmed, then or since, and not withdrawn by NOT_A_DEVIATION or REOPEN); None
    before the first night, or when that night has no dv table.

    A confirmed deviation is on the record: when the site later changes the data (a consent date moved earlier),
    the audit no longer finds it, but it stays in dv until a reviewer withdraws it (reporting.dv). A user trial saw
    a confirmed and closed deviation leave DV without a word, as docs/review.md said it would not. Each night
    carries the night before's, so a record stays for as many nights as its confirmation stands."""
    earlier = _previous_dv(store, study, as_of)
    if earlier is None:
        return None
    # whatever that night's mark: a deviation confirmed since (NOT YET REVIEWED last night, confirmed this morning,
    # the data changed by tonight) stands as well (helper-46)
    standing = states.filter(pl.col("DV_CONFIRMED")).select(FINDING_ID)
    return earlier.join(standing, on=FINDING_ID, how="semi", maintain_order="left")


#: how many published nights back a night whose ledger fails verification looks for what a deviation's mark was
#: before the ledger broke (a night of a broken ledger marks every important finding REVIEW UNKNOWN)
UNKNOWN_NIGHTS = 31


def published_confirmations(store: Store, study: str, as_of: date) -> pl.DataFrame | None:
    """The DV records the published nights before `as_of` marked confirmed (CONFIRMED, or confirmed and not in their
    data): what a night whose ledger fails verification carries instead of standing_confirmations. Without a verified
    ledger nobody can say whether a confirmation was withdrawn since, and a deviation reported as confirmed does not
    leave the SDTM deliverable over a broken ledger (it did, and since each night carries the night before's, no later
    night carried it again). A record the night before marked REVIEW UNKNOWN (its ledger was broken too) is taken
    as the last night with a mark for it published it: a ledger broken for several nights keeps what was confirmed
    before it broke (helper-48), and nothing else."""
    carried: list[pl.DataFrame] = []
    unknown: pl.Series | None = None  # the findings whose mark is still to be found (None: every finding)
    for night in islice(published_nights(store, study, before=as_of), UNKNOWN_NIGHTS):
        earlier = _dv_of(store, study, night)
        if earlier is None:
            break
        if unknown is not None:
            earlier = earlier.filter(pl.col(FINDING_ID).is_in(unknown.implode()))
        carried.append(earlier.filter(pl.col("DVREVIEW").is_in([DV_CONFIRMED_MARK, DV_NOT_IN_DATA_MARK])))
        unknown = earlier.filter(pl.col("DVREVIEW") == DV_UNKNOWN_MARK)[FINDING_ID]
        if unknown.len() == 0:
            break
    if not carried:
        return None
    return pl.concat(carried, how="diagonal_relaxed").unique(FINDING_ID, keep="first", maintain_order=True)


def _previous_dv(store: Store, study: str, as_of: date) -> pl.DataFrame | None:
    """The dv table of the latest published night before `as_of` (_dv_of)."""
    night = next(published_nights(store, study, before=as_of), None)
    return _dv_of(store, study, night) if night is not None else None


def _dv_of(store: Store, study: str, night: date) -> pl.DataFrame | None:
    """A published night's dv table, its records with a FINDING_ID; None when it has no dv table with FINDING_ID and
    DVREVIEW."""
    earlier = read_table(store, study, night, "dv")
    if earlier is None or FINDING_ID not in earlier.columns or "DVREVIEW" not in earlier.columns:
        return None
    return earlier.filter(pl.col(FINDING_ID).is_not_null())


def _reopened_since(view: LedgerView, machine: StateMachine, since: int) -> pl.DataFrame:
    return (view.entries.filter((pl.col("ACTION") == machine.reopen_action) & (pl.col("SEQ") > since))
            .select(list(REOPENED)).sort("SEQ"))


def _moment(text: object) -> datetime | None:
    """A manifest's ISO 8601 time, or None when it has none (an older manifest, or none at all)."""
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _ledger_info(view: LedgerView, status: str, read_only: bool) -> dict:
    return {"status": status, "entries": view.head_seq, "head": view.head_hash, "problems": view.problems,
            "notes": view.notes, "read_only": read_only}


def answerable(discrepancies: pl.DataFrame, validation: pl.DataFrame, resolved: pl.DataFrame | None) -> pl.DataFrame:
    """The catalogue a returned workbook is applied against: tonight's findings (RESOLVED discrepancies included)
    and the data-quality findings gone tonight (`resolved`, reporting.history.validation_history), as RESOLVED.

    A site corrects a value and answers its query in the same cycle: the answer to the data-quality finding its
    correction resolved was refused as "unknown finding" and lost, while the discrepancy's was kept (a user trial)."""
    return with_resolved(catalogue_of(discrepancies, validation), resolved)


def review_night(discrepancies: pl.DataFrame, validation: pl.DataFrame, store: Store, *, study: str, as_of: date,
                 machine: StateMachine | None = None, now: datetime | None = None,
                 resolved: pl.DataFrame | None = None) -> ReviewResult:
    """Tonight's review: the ledger verified, the inbox applied, changed evidence reopened (module doc).
    `resolved`: the data-quality findings gone tonight, which a returned workbook may still answer (answerable)."""
    machine = machine or load_machine()
    view = read_ledger(store, study, machine.initial)
    if view.problems:
        _log.error("the review ledger of %s fails verification (%d problem(s)): %s; review states are not shown "
                   "and nothing is written to it", study, len(view.problems), "; ".join(view.problems[:3]))
        return ReviewResult(states=current_states(view.entries.head(0), machine),
                            reopened=pl.DataFrame(schema=REOPENED), ledger=_ledger_info(view, "INVALID", True),
                            confirmed_earlier=published_confirmations(store, study, as_of))
    start = view.head_seq
    read_only = later_run_exists(store, study, as_of)
    if not read_only:
        where = f"tonight's run ({as_of.isoformat()})"
        if process_inbox(store, study, answerable(discrepancies, validation, resolved), where, machine, at=now):
            view = read_ledger(store, study, machine.initial).require_intact()
        present = _present(discrepancies, validation)
        proposed = reopen_proposals(present, current_states(view.entries, machine), machine, as_of)
        if proposed.height:
            outcome = append_actions(store, study, proposed, present, machine, where, at=now, view=view)
            for finding, why in outcome.refused.select(FINDING_ID, "REFUSED").iter_rows():
                _log.warning("could not reopen %s automatically: %s", finding, why)
            view = read_ledger(store, study, machine.initial).require_intact()
        write_checkpoint(store, view)
    # "since the last run": the entries the previous night's manifest counted (none before the first night
    # with a review), so that a re-run of the same night reports the same reopenings
    earlier = previous_manifest(store, study, as_of) or {}
    previous = earlier.get("review") or {}
    since = previous.get(SINCE_ENTRIES, previous.get("entries"))
    since = since if isinstance(since, int) and 0 <= since <= start else 0
    # the workbooks applied since the previous night, by the same rule: a re-run of the night reports them too
    # (a re-run of a past night applies none and reports none). Tonight's marker is taken before they are
    # listed: a receipt saved after it is stamped in its second or later, so the next night lists it unless
    # tonight did (SINCE_RECEIPTS names those of the marker's second)
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    after = _moment(previous.get(SINCE_AT)) or _moment(earlier.get("generated_at"))
    reported = previous.get(SINCE_RECEIPTS) if isinstance(previous.get(SINCE_RECEIPTS), list) else None
    receipts = [] if read_only else receipts_since(store, study, after, reported, until=moment)
    ledger = _ledger_info(view, "VERIFIED" if view.head_seq else "EMPTY", read_only)
    ledger.update(_night_markers(store, study, as_of, view, read_only, moment, previous, receipts))
    states = current_states(view.entries, machine)
    return ReviewResult(states=states,
                        reopened=_reopened_since(view, machine, since),
                        receipts=receipts,
                        ledger=ledger,
                        confirmed_earlier=standing_confirmations(store, study, as_of, states))


#: where the review stood when a night was done with it (its manifest's `review` section): the next night
#: reports the reopenings and workbooks after it. A re-run of a past night keeps the night's own markers (the
#: ledger has moved on since): with its own, the next night's re-run lost the workbooks and reopenings between
#: the two nights (a user trial)
SINCE_ENTRIES, SINCE_AT, SINCE_RECEIPTS = "since_entries", "since_at", "since_receipts"


def _receipts_named(section: dict) -> dict:
    """SINCE_RECEIPTS of a manifest's review section when it has them (helper-35: writing [] for a night marked
    before nights named them switched the next night to the new rule, and it listed that night's receipts again)."""
    named = section.get(SINCE_RECEIPTS)
    return {SINCE_RECEIPTS: named} if isinstance(named, list) else {}


def _night_markers(store: Store, study: str, as_of: date, view: LedgerView, read_only: bool,
                   moment: datetime, previous: dict, receipts: list[dict]) -> dict:
    """The night's SINCE_ENTRIES, SINCE_AT and SINCE_RECEIPTS (`previous`: the review section of the night
    before's manifest; `receipts`: those tonight reports, listed after `moment`)."""
    if read_only:
        published = (night_manifest(store, study, as_of) or {})
        own = published.get("review") or {}
        entries = own.get(SINCE_ENTRIES, own.get("entries"))
        at = own.get(SINCE_AT, published.get("generated_at"))
        if isinstance(entries, int) and isinstance(at, str):
            # a night marked before nights named their second's receipts keeps counting that second as before
            return {SINCE_ENTRIES: entries, SINCE_AT: at, **_receipts_named(own)}
        # a past night never published before (a backfill): the night before's, so that the next night still
        # reports what came after that one (helper-30)
        if isinstance(previous.get(SINCE_ENTRIES), int) and isinstance(previous.get(SINCE_AT), str):
            return {SINCE_ENTRIES: previous[SINCE_ENTRIES], SINCE_AT: previous[SINCE_AT], **_receipts_named(previous)}
    # after tonight's inbox, before its receipts were listed: the next night lists those saved after, and of the
    # marker's own second those tonight did not list
    stamp = stamp_of(moment)
    same_second = sorted(str(r.get("key")) for r in receipts if r.get("key") and receipt_stamp(str(r["key"])) == stamp)
    return {SINCE_ENTRIES: view.head_seq, SINCE_AT: moment.isoformat(), SINCE_RECEIPTS: same_second}
