"""Digests that could not be delivered, kept under the reports root until a later run delivers them.

    _audit/<STUDYID>/digest/pending/<AS_OF>.json     one per missed night: the rendered digest and the
                                                     channels (email, webhook) it still owes

A failed send never fails the audit (the reports are published; only the message is late). The next
run of the study tries the missed nights first, oldest first, on the channels that missed them only
(an email already sent is not sent twice), and forgets each night once every channel has it.

A night's run also keeps its digest as owed right before it promotes (with its run id), and its send clears it: a
run killed in between leaves it for the next run. A missed one is only sent while its night is still a published
night (publication.is_published): a night whose re-run was interrupted half-way through its promotion waits, kept,
until the night is complete again; an owed digest whose night another run published since (a re-run of a past
night, which sends no digest) is dropped, not sent: it was made from outputs that are no longer the night's.
The records live under `_audit/<STUDYID>/`, beside the lease and apart from the nights' folders, so no promotion
copies or removes them and the sweep of dead runs' staging (`_audit/<STUDYID>/staging/`) never touches them.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from contracts.records import Digest
from publication import final_prefix, is_published, read_marker
from storage import ObjectNotFound, Store, join_key

PENDING_FOLDER = "_audit/{study}/digest/pending"


class PendingDigests:
    """The missed digests of one study in one reports store."""

    def __init__(self, store: Store, study: str) -> None:
        self.store = store
        self.study = study
        self.folder = PENDING_FOLDER.format(study=study)

    def _key(self, as_of: str) -> str:
        return join_key(self.folder, f"{as_of}.json")

    def keep(self, digest: Digest, channels: list[str], run_id: str | None = None) -> None:
        """Remember that `digest` still owes `channels` (replacing an earlier record of the same night); `run_id`: the
        run that made it before promoting its night, which must be the run that published the night to send it."""
        record = {"digest": asdict(digest), "channels": sorted(channels), **({"run_id": run_id} if run_id else {})}
        self.store.write_bytes(self._key(digest.as_of), json.dumps(record, ensure_ascii=False, sort_keys=True)
                               .encode("utf-8"), "application/json")

    def missed(self, before: str) -> list[tuple[Digest, list[str]]]:
        """The kept digests of published nights before `before` (YYYY-MM-DD) and the channels each owes,
        oldest first. A night that is not complete now is left out (and stays kept)."""
        found = []
        for obj in self.store.list(self.folder):
            name = obj.key.rsplit("/", 1)[-1]
            night = name.removesuffix(".json")
            if not name.endswith(".json") or night >= before:
                continue
            if not is_published(self.store, final_prefix(self.study, night)):
                continue  # not (or no longer) a published night: kept until it is
            try:
                record = json.loads(self.store.read_bytes(obj.key))
            except ObjectNotFound:
                continue  # delivered by a concurrent run in between
            marker = read_marker(self.store, final_prefix(self.study, night)) if record.get("run_id") else None
            if marker is not None and marker.run_id != record["run_id"]:
                self.delivered(night)  # another run published the night since: this digest is not that night's
                continue
            found.append((Digest(**record["digest"]), list(record["channels"])))
        return sorted(found, key=lambda item: item[0].as_of)

    def delivered(self, as_of: str) -> None:
        """Forget the kept digest of `as_of`: every channel has it."""
        self.store.delete(self._key(as_of))
