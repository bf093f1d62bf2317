"""One site: find its delivery folders, pick the newest complete one that passes, read it.

Deliveries are examined newest first. A folder without manifest.json is still uploading and is
skipped (reported once it is older than 24 hours). The first complete delivery that is not
rejected is USED; every older complete one is SUPERSEDED without being read. When a newer one was
rejected, the USED one says so and a finding tells the site its latest data were not audited.

`read_site` does all of a site's storage I/O and file parsing (the part worth retrying when
storage misbehaves); `batch.finish_sites` then checks the rows of many sites at once.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from contracts import DeliveryDecision, InputObject
from ingestion.codes import DELIVERY_REJECTED_REASON, Code, DeliveryStatus
from ingestion.delivery import read_delivery
from ingestion.delivery_ids import parse_delivery_id
from ingestion.findings import Finding, about_delivery, about_file
from ingestion.manifest import MANIFEST_NAME
from ingestion.options import DEFAULT_OPTIONS, IngestOptions
from ingestion.shape import PlainFile, Prepared
from storage import ObjectInfo, Store, UnsafeKeyError, safe_key


@dataclass
class SiteRead:
    """One site after its storage I/O: everything but the row checks of its files (`files`)."""

    site: str
    delivery: str | None  # the delivery USED, None when the site is not audited
    files: list[Prepared | PlainFile] = field(default_factory=list)
    inputs: list[InputObject] = field(default_factory=list)
    deliveries: list[DeliveryDecision] = field(default_factory=list)
    #: in report order; a file stands for its row-level findings
    findings: list[Finding | Prepared | PlainFile] = field(default_factory=list)


#: a past night's statuses of a folder it did not use: its re-run does not use the folder either (read_site `seen`)
_NOT_USED_BY_THE_NIGHT = frozenset({DeliveryStatus.REJECTED.value, DeliveryStatus.INCOMPLETE.value})


def not_audited(study: str, site: str, reason: str, read: SiteRead | None = None) -> SiteRead:
    """`read` (or an empty read of `site`) closed with the finding that the site is not audited."""
    read = read or SiteRead(site=site, delivery=None)
    read.findings.append(Finding(study, site, Code.SITE_NOT_AUDITED, f"Site {site} is not audited: {reason}.",
                                 observed=reason))
    read.delivery, read.files = None, []
    return read


def _group(objects: list[ObjectInfo], prefix: str) -> tuple[dict[str, list[ObjectInfo]], list[ObjectInfo]]:
    """Objects by delivery folder, and the objects lying directly in the site folder."""
    folders: dict[str, list[ObjectInfo]] = defaultdict(list)
    loose: list[ObjectInfo] = []
    for obj in objects:
        rest = obj.key[len(prefix):]
        folder, slash, _ = rest.partition("/")
        if slash:
            folders[folder].append(obj)
        else:
            loose.append(obj)
    return dict(folders), loose


def _aware(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_site(store: Store, study: str, site: str, *, now: datetime | None = None,
              cutoff: datetime | None = None, seen: Mapping[str, str] | None = None,
              options: IngestOptions = DEFAULT_OPTIONS) -> SiteRead:
    """Everything ingestion reads from one site of `study` (see the module docstring).

    `now` (default: the current time; a naive datetime is taken as UTC) only decides when a
    delivery without manifest.json has been uploading for too long to be silent about it.
    `cutoff` (the end of the audit's as-of date; None: no limit) excludes deliveries stamped at or
    after it (status AFTER_AS_OF), so that re-running a past night audits what that night saw; the
    age of an unfinished upload is then measured at the cut-off, so that the rerun also says the same.
    `seen` (a re-run of a past night: the delivery folders its run manifest lists, each with the night's status,
    ingestion.window) excludes every other folder the same way, however it is stamped; and a folder the night
    rejected or saw unfinished is not used even when it reads well now (an upload that finished later).
    """
    now = _aware(now or datetime.now(UTC))
    cutoff = _aware(cutoff) if cutoff is not None else None
    if cutoff is not None:  # a past night re-run measures an upload's age as that night would have
        now = min(now, cutoff)
    prefix = f"{study}/{site}/"
    result = SiteRead(site=site, delivery=None)
    findings, inputs, deliveries = result.findings, result.inputs, result.deliveries
    try:
        # S3Store checks every listed key; a local folder's names are checked here the same way
        objects = [o for o in store.list(prefix) if safe_key(o.key)]
    except UnsafeKeyError as error:
        findings.append(Finding(
            study, site, Code.SITE_UNLISTABLE,
            f"Site {site}: the site folder holds an object whose name is not a plain relative key "
            f"({error.__class__.__name__}); it cannot be listed safely"))
        return not_audited(study, site, "its folder cannot be listed safely", result)

    folders, loose = _group(objects, prefix)
    notes: list[Finding] = [
        Finding(study, site, Code.OBJECT_IGNORED,
                about_file(site, o.key, "it is not inside a delivery folder, so it is not read"), source=o.key)
        for o in loose
    ]
    dated: list[tuple[datetime, str]] = []
    for name in sorted(folders):
        stamp = parse_delivery_id(name)
        if stamp is None:
            reason = "folder name is not a delivery id (YYYYMMDDTHHMMSSZ)"
            deliveries.append(DeliveryDecision(site, name, DeliveryStatus.REJECTED, reason))
            notes.append(Finding(study, site, Code.DELIVERY_BAD_NAME,
                                 f"Site {site}: folder {prefix}{name}/ is ignored: its {reason}",
                                 source=f"{prefix}{name}/", observed=name[:40]))
        elif cutoff is not None and stamp >= cutoff:
            deliveries.append(DeliveryDecision(
                site, name, DeliveryStatus.AFTER_AS_OF,
                f"made after the audit's as-of date (cut-off {cutoff.strftime('%Y-%m-%dT%H:%M:%SZ')})"))
        elif seen is not None and name not in seen:
            deliveries.append(DeliveryDecision(
                site, name, DeliveryStatus.AFTER_AS_OF,
                "not in the published night's run manifest: it arrived after that night ran, and a re-run of a "
                "past night audits what the night saw"))
        else:
            dated.append((stamp, name))

    used: str | None = None
    rejected: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        for stamp, name in sorted(dated, reverse=True):
            objs = folders[name]
            complete = any(o.key == f"{prefix}{name}/{MANIFEST_NAME}" for o in objs)
            if not complete:
                age = now - stamp
                deliveries.append(DeliveryDecision(site, name, DeliveryStatus.INCOMPLETE,
                                                   "no manifest.json (upload not finished)"))
                if age > options.incomplete_after:
                    hours = int(age.total_seconds() // 3600)
                    # older than the delivery audited (folders are seen newest first): an abandoned upload,
                    # which a site must not be asked to complete
                    code, what = ((Code.DELIVERY_INCOMPLETE, ", so this delivery is skipped") if used is None else
                                  (Code.DELIVERY_ABANDONED, f"; the newer complete delivery {used} is audited, so "
                                                            "nothing of this folder is used or missing"))
                    notes.append(Finding(study, site, code, about_delivery(
                        site, name, f"no manifest.json after {hours} hours: the upload never finished{what}"),
                        source=f"{prefix}{name}/"))
                continue
            if used is not None:
                deliveries.append(DeliveryDecision(site, name, DeliveryStatus.SUPERSEDED,
                                                   f"a newer complete delivery ({used}) is used"))
                continue
            read = read_delivery(store, study, site, name, objs, Path(tmp), options)
            if read.accepted and seen is not None and seen.get(name) in _NOT_USED_BY_THE_NIGHT:
                why = (f"the published night did not use it ({seen[name]}) and its files have changed since; a "
                       "re-run of a past night audits what the night audited")
                inputs.extend(replace(i, rows_rejected=i.rows_read, rejected_reasons={DELIVERY_REJECTED_REASON:
                                                                                      i.rows_read})
                              for i in read.inputs)
                deliveries.append(DeliveryDecision(site, name, DeliveryStatus.REJECTED, why))
                rejected.append((name, why))
                continue
            inputs.extend(read.inputs)
            findings.extend(read.findings)
            if not read.accepted:
                deliveries.append(DeliveryDecision(site, name, DeliveryStatus.REJECTED, read.reason))
                rejected.append((name, read.reason))
                continue
            used, result.files = name, read.files
            reason = ""
            if rejected:
                newer = ", ".join(n for n, _ in rejected)
                reason = f"fallback: newer delivery {newer} rejected"
                findings.append(Finding(study, site, Code.DELIVERY_FALLBACK, about_delivery(
                    site, name, f"used instead of the newer delivery {newer}, which was rejected; "
                                f"the site's latest data are not audited until it is corrected"),
                    source=f"{prefix}{name}/", observed=newer))
            deliveries.append(DeliveryDecision(site, name, DeliveryStatus.USED, reason))

    findings[:0] = notes
    if used is None:
        if rejected:
            # each delivery with its reason: the site's one query names what to correct (its rejections are on the
            # site's Also answered sheet under it, reporting/data/queries.yaml covered_by)
            why = f"every complete delivery was rejected ({'; '.join(f'{n}: {r}' for n, r in rejected)})"
        elif dated:
            why = "no complete delivery (no manifest.json in any delivery folder)"
        elif any(d.status == DeliveryStatus.AFTER_AS_OF for d in deliveries):
            why = "no delivery made by the audit's as-of date"
        else:
            why = "no delivery folder"
        return not_audited(study, site, why, result)
    result.delivery = used
    return result
