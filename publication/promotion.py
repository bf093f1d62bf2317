"""Promotion of a sealed staging prefix into the published folder, with a journal so that a crash half
way is finished by the next run, and the recovery that run performs before it audits anything.

Why a journal: S3 cannot rename a folder, so promotion copies object by object, and a rerun replaces a
night that was already published. The published folder's marker is removed first and written last,
so no reader ever takes a half-copied folder for a night (`publication.marker`). But a crash in the
middle would leave that night with neither its previous outputs nor the new ones. So promotion first
writes `_audit/<STUDY>/promotion.json` naming the sealed staging it promotes: from that moment the new
set is committed (it is complete in staging and recorded), exactly like a database's redo log. The
next run of the study, holding the lease, finds the journal and finishes the copy before it reads
anything, so the night ends up with the new complete set; before the journal is written, the
published folder has not been touched and keeps the previous complete set.

    promote:  seal checked -> journal -> marker removed -> copies -> leftovers removed -> marker -> journal
              removed -> staging removed
    recover:  journal found -> promote again from its staging (idempotent) -> every other staging removed
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from contracts.records import RunRecovery, StagingRemoved
from publication.layout import MARKER, journal_key, staging_root, where
from publication.marker import check_complete, is_complete, is_published, read_marker
from storage import ObjectNotFound, Store, join_key
from storage.store import PARALLEL_REQUESTS as STORE_PARALLEL_REQUESTS

_log = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter
Guard = Callable[[], None]
#: copies (and deletes) in flight at once during promotion: a night of 1,000 sites is ~2,000 objects,
#: and one S3 copy at a time would make promotion a minute of round trips; as many as one store's client
#: keeps connections for (storage.store.PARALLEL_REQUESTS)
PARALLEL_REQUESTS = STORE_PARALLEL_REQUESTS


class PublicationError(RuntimeError):
    """Staged outputs that cannot be promoted (nothing staged, or staging incomplete)."""


def _never(_: object = None) -> None:
    return None


def discard(store: Store, prefix: str) -> int:
    """Delete everything under `prefix` (a failed or finished run's staging), a scratch folder that a run
    killed while rendering left there included; returns the count of objects."""
    keys = [obj.key for obj in store.list(prefix)]
    for key in keys:
        store.delete(key)
    store.remove_scratch(prefix)
    return len(keys)


def _existing(store: Store, final: str) -> list[str]:
    start = final.rstrip("/") + "/"
    return [obj.key[len(start):] for obj in store.list(final) if obj.key.startswith(start)]


def promote(store: Store, staging: str, final: str, *, study: str, guard: Guard = _never,
            confirm: Guard | None = None, logger: Logger | None = None) -> list[str]:
    """Publish a sealed staging prefix as `final`, marker last, through the study's journal.

    `guard` is called before every change to the published folder and raises when this run may no
    longer publish (its lease was lost); `confirm` (default: `guard`), a stricter check that asks the store, right
    before the marker that publishes the night is written. Repeatable after a failure at any point. Returns the
    published keys, sorted.
    """
    log = logger or _log
    marker = read_marker(store, staging)
    if marker is None:
        done = read_marker(store, final)
        if done is not None and staging.rstrip("/").endswith("/" + done.run_id):  # a retry after success
            discard(store, staging)
            return sorted(join_key(final, key) for key in [*done.objects, MARKER])
        raise PublicationError(f"nothing sealed under {where(store.uri, staging)}; nothing published")
    problems = check_complete(store, staging)
    if problems:
        raise PublicationError(f"staging {where(store.uri, staging)} is incomplete ({'; '.join(problems[:3])}); "
                               "nothing published")
    guard()
    journal = journal_key(study)
    store.write_bytes(journal, json.dumps({"run_id": marker.run_id, "as_of": marker.as_of, "staging": staging,
                                           "final": final}, indent=1).encode(), "application/json")
    _install(store, staging, final, sorted(marker.objects), guard, confirm or guard)
    store.delete(journal)
    discard(store, staging)
    log.info("published %d objects at %s (run %s)", len(marker.objects) + 1, where(store.uri, final), marker.run_id)
    return sorted(join_key(final, key) for key in [*marker.objects, MARKER])


def _each(action: Callable[[str], None], names: list[str], guard: Guard) -> None:
    """`action` for every name, a few at a time (an S3 copy is one request that waits on the server),
    the guard checked before each; on the first error the ones not started are cancelled and it is raised."""
    def one(name: str) -> None:
        guard()
        action(name)

    with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS, thread_name_prefix="promote") as pool:
        futures = [pool.submit(one, name) for name in names]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _install(store: Store, staging: str, final: str, names: list[str], guard: Guard, confirm: Guard) -> None:
    """The journaled part: the published folder stops being complete, gets the new set, then its marker (after
    `confirm`)."""
    existing = _existing(store, final)
    if MARKER in existing:
        guard()
        store.delete(join_key(final, MARKER))  # from here on readers see the night as not published
    _each(lambda name: store.copy(join_key(staging, name), join_key(final, name)), names, guard)
    leftovers = sorted(set(existing) - set(names) - {MARKER})  # an earlier run's outputs this run lacks
    _each(lambda name: store.delete(join_key(final, name)), leftovers, guard)
    confirm()  # before touching what is not ours to list: a run whose lease was taken stops here
    store.remove_scratch(final)  # what a promotion killed before this one left half-copied, hidden
    store.copy(join_key(staging, MARKER), join_key(final, MARKER))  # last: the night is published


def journaled_staging(store: Store, study: str) -> str | None:
    """The staging prefix a promotion in progress (or interrupted) is publishing from, if any."""
    try:
        return str(json.loads(store.read_bytes(journal_key(study)))["staging"])
    except ObjectNotFound:
        return None
    except (ValueError, KeyError, TypeError):
        return None


def _finish_interrupted(store: Store, study: str, guard: Guard, log: Logger) -> tuple[str | None, str | None]:
    """Complete (or, if its staging is gone, abandon) a promotion a killed run left; (completed, abandoned)."""
    journal = journal_key(study)
    try:
        entry = json.loads(store.read_bytes(journal))
        staging, final, run_id = str(entry["staging"]), str(entry["final"]), str(entry["run_id"])
    except ObjectNotFound:
        return None, None
    except (ValueError, KeyError, TypeError):
        log.error("the promotion journal %s is unreadable; removed", where(store.uri, journal))
        store.delete(journal)
        return None, f"an unreadable promotion journal ({journal})"
    described = f"{final} from run {run_id}"
    if is_complete(store, staging):
        guard()
        marker = read_marker(store, staging)
        assert marker is not None
        _install(store, staging, final, sorted(marker.objects), guard, guard)
        store.delete(journal)
        discard(store, staging)
        log.warning("completed the promotion of %s that an earlier run did not finish", where(store.uri, final))
        return described, None
    if is_published(store, final):
        store.delete(journal)  # it had finished copying; only the journal (and some staging) was left
        discard(store, staging)
        return described, None
    log.error("the promotion of %s by run %s was interrupted and its staging is incomplete: that night stays "
              "unpublished until a run of that night publishes it", where(store.uri, final), run_id)
    store.delete(journal)
    return None, described


def sweep_staging(store: Store, study: str, *, keep: str | None = None, logger: Logger | None = None
                  ) -> list[StagingRemoved]:
    """Delete every staging prefix of the study except `keep`: runs that died before promoting.

    Only the lease holder calls this, so no live run's staging can be removed: a live run of the same
    study would hold the lease.
    """
    log = logger or _log
    root = staging_root(study)
    runs: dict[str, int] = {}
    for obj in store.list(root):
        parts = obj.key[len(root) + 1:].split("/")
        if len(parts) >= 3:
            run = join_key(root, parts[0], parts[1])
            runs[run] = runs.get(run, 0) + 1
    for night in store.list_dirs(root):  # a run killed before it staged an object: only its scratch folder
        for run_id in store.list_dirs(join_key(root, night)):
            runs.setdefault(join_key(root, night, run_id), 0)
    removed = []
    for run in sorted(runs):
        if keep is not None and run == keep.rstrip("/"):
            continue
        sealed = read_marker(store, run) is not None
        count = discard(store, run)
        as_of, run_id = run[len(root) + 1:].split("/")
        log.warning("removed the staging of run %s (as of %s, %d objects, %s) left by a run that did not finish",
                    run_id, as_of, count, "sealed" if sealed else "incomplete")
        removed.append(StagingRemoved(prefix=run, run_id=run_id, as_of=as_of, objects=count, sealed=sealed))
    return removed


def recover(store: Store, study: str, *, guard: Guard = _never, lease_taken_over: str | None = None,
            logger: Logger | None = None) -> RunRecovery:
    """What the lease holder does first: finish an interrupted promotion, remove dead runs' staging."""
    log = logger or _log
    completed, abandoned = _finish_interrupted(store, study, guard, log)
    removed = sweep_staging(store, study, logger=log)
    return RunRecovery(lease_taken_over=lease_taken_over, promotion_completed=completed,
                       promotion_abandoned=abandoned, staging_removed=tuple(removed))
