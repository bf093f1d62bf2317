"""Where the audit keeps its own state under the reports root, apart from the published reports.

    <STUDYID>/<AS_OF>/...                                 a night's published reports
    <STUDYID>/<AS_OF>/_complete.json                      its completion marker, written last
    <STUDYID>/<AS_OF>/site_queries/detail/<SITE>.csv      every finding a site's queries list (QUERY_ID)
    <STUDYID>/<AS_OF>/site_queries/also_answered/<SITE>.csv  those left out, under the query that asks instead
    _audit/<STUDYID>/conditional-writes-probe             the start-up check of conditional writes
    _audit/<STUDYID>/lease.json                           who is auditing the study right now
    _audit/<STUDYID>/promotion.json                       a promotion in progress (its journal)
    _audit/<STUDYID>/staging/<AS_OF>/<RUN_ID>/...         where a run writes before promotion
    _audit/<STUDYID>/unlocks/<UTC time>.json              one record per operator `unlock`

Readers of earlier nights look only at `<STUDYID>/<YYYY-MM-DD>/` folders with a valid marker
(`publication.marker.is_published`), so nothing under `_audit/` is ever mistaken for a report.
"""

from __future__ import annotations

import re
from datetime import date

from storage import join_key

#: Everything the audit keeps for itself under the reports root, apart from the reports.
AUDIT_FOLDER = "_audit"
#: The completion marker of a published folder (and of a run's staging): the objects and their sha256.
MARKER = "_complete.json"


#: a run's per-site query files: reporting writes them, the review reads from them which query asks about a finding
DETAIL_FOLDER = "site_queries/detail"
ALSO_ANSWERED_FOLDER = "site_queries/also_answered"
_SITE_FILE = re.compile(r"[^A-Za-z0-9_.-]")


def site_file_name(site: str) -> str:
    """A site id as a safe file name (site ids come from delivery paths, but never trust them)."""
    return _SITE_FILE.sub("_", site).strip(".") or "UNKNOWN"


def site_detail_key(site: str) -> str:
    """The CSV with every finding of a site's queries (the Detail sheet lists a query's first ones)."""
    return f"{DETAIL_FOLDER}/{site_file_name(site)}.csv"


def site_also_answered_key(site: str) -> str:
    """The CSV of the findings left out of a site's queries, each under the query that asks about it (the site
    workbook's Also answered sheet): a site that works from the CSVs, or whose sheet is too long to write, has them."""
    return f"{ALSO_ANSWERED_FOLDER}/{site_file_name(site)}.csv"


def _day(as_of: date | str) -> str:
    return as_of.isoformat() if isinstance(as_of, date) else as_of


def final_prefix(study: str, as_of: date | str) -> str:
    """Where a night's reports are published: `<STUDYID>/<AS_OF>`."""
    return join_key(study, _day(as_of))


def study_state(study: str) -> str:
    return join_key(AUDIT_FOLDER, study)


def lease_key(study: str) -> str:
    return join_key(AUDIT_FOLDER, study, "lease.json")


def journal_key(study: str) -> str:
    return join_key(AUDIT_FOLDER, study, "promotion.json")


def staging_root(study: str) -> str:
    return join_key(AUDIT_FOLDER, study, "staging")


def staging_prefix(study: str, as_of: date | str, run_id: str) -> str:
    """Where one run writes its outputs before promotion; unique per run."""
    return join_key(staging_root(study), _day(as_of), run_id)


def unlock_record_key(study: str, stamp: str) -> str:
    return join_key(AUDIT_FOLDER, study, "unlocks", f"{stamp}.json")


def probe_key(study: str) -> str:
    """Per study, so that a run needs no permission outside its own study's `_audit/<STUDYID>/`."""
    return join_key(AUDIT_FOLDER, study, "conditional-writes-probe")


def where(uri: str, key: str) -> str:
    """The full URI of a key, for messages."""
    return f"{uri.rstrip('/')}/{key}"
