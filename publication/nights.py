"""The published nights of a study: the `<STUDYID>/<YYYY-MM-DD>/` folders with a valid completion marker.

Every reader of earlier nights (the history of findings, the review ledger's "since the last run", the
digest, the review commands) lists nights through `published_nights`, so that a folder a crashed run
left half-written, or whose promotion the next run has not finished yet, is never taken for a night.
Folders that are not named like a date (`_review/`, `whatif/`) are not nights either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from publication.layout import final_prefix
from publication.marker import is_published
from storage import Store

_NIGHT = re.compile(r"\d{4}-\d{2}-\d{2}")


def night_folders(store: Store, study: str, *, before: date | None = None) -> list[date]:
    """As-of dates of the study's folders named like a date (strictly before `before`), newest first,
    whether or not they are complete."""
    nights = []
    for name in store.list_dirs(study):
        if not _NIGHT.fullmatch(name):
            continue
        try:
            night = date.fromisoformat(name)
        except ValueError:
            continue
        if before is None or night < before:
            nights.append(night)
    return sorted(nights, reverse=True)


def published_nights(store: Store, study: str, *, before: date | None = None) -> Iterator[date]:
    """The study's published nights (strictly before `before`), newest first.

    Lazy: each folder's marker is read (one read and one listing, `is_published`) only when the caller
    gets that far, so a reader that wants the latest night pays for one or two folders, not for a
    year of them.
    """
    for night in night_folders(store, study, before=before):
        if is_published(store, final_prefix(study, night)):
            yield night
