"""The site outbox: each site's query files of a published night, in a place only that site can read.

    <outbox>/<STUDYID>/<SITEID>/<AS_OF>/<STUDYID>_<SITEID>_queries_<AS_OF>.csv | .xlsx
    <outbox>/<STUDYID>/<SITEID>/<AS_OF>/<STUDYID>_<SITEID>_query_detail_<AS_OF>.csv
    <outbox>/<STUDYID>/<SITEID>/<AS_OF>/<STUDYID>_<SITEID>_also_answered_<AS_OF>.csv   (when it has any)

The files are the run's own `site_queries/<SITEID>.*`, `site_queries/detail/<SITEID>.csv` and
`site_queries/also_answered/<SITEID>.csv` (one site's subjects each, by construction),
copied from the published reports after promotion, so a site never receives a night that was not
published. The outbox is an S3 prefix or a folder named in the study's configuration; the per-site
IAM policy (deploy/iam-site-policy.json) lets a site's principal list and read its own prefix only.
"""

from __future__ import annotations

from datetime import date

from publication.layout import site_file_name
from storage import Store, join_key

#: content types of the files a site receives
_TYPES = {"csv": "text/csv; charset=utf-8",
          "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


#: the sub-folders of site_queries a site receives, and what their files are called in the outbox
_FOLDER_KINDS = {"detail": "query_detail", "also_answered": "also_answered"}


def outbox_key(study: str, site: str, as_of: date, extension: str, kind: str = "queries") -> str:
    """Where one site's query file of one night goes in the outbox (`kind`: queries, query_detail for the CSV
    of every finding its queries list, or also_answered for the findings left out of them)."""
    name = site_file_name(site)
    night = as_of.isoformat()
    return join_key(study, name, night, f"{study}_{name}_{kind}_{night}.{extension}")


def deliver_site_queries(reports: Store, published: str, outbox: Store, *, study: str, as_of: date) -> list[str]:
    """Copy every site's query files of the night published under `published` into the outbox.

    Returns the outbox keys written, sorted. A site without queries tonight gets no folder (its
    previous nights stay as they were)."""
    written = []
    folder = join_key(published, "site_queries")
    for obj in reports.list(folder):
        path = obj.key[len(folder):].strip("/").split("/")
        kind = {1: "queries", 2: _FOLDER_KINDS.get(path[0])}.get(len(path))
        stem, _, extension = path[-1].rpartition(".")
        if kind is None or extension not in _TYPES or not stem:
            continue
        key = outbox_key(study, stem, as_of, extension, kind)
        outbox.write_bytes(key, reports.read_bytes(obj.key), _TYPES[extension])
        written.append(key)
    return sorted(written)
