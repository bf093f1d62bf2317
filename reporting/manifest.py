"""`run_manifest.json`: what the run read, what it skipped, and where every row went.

The reconciliation per domain is the audit's own audit: RECEIVED (rows read from the audited
deliveries' files) = VALIDATED (rows run through the suites + rows rejected at ingestion, which got
their finding there) = EVALUATED + REJECTED (at ingestion + by validation). A domain that does not
balance is flagged (BALANCED = false) and shown in red in the report: rows went missing somewhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from contracts import DOMAINS, Evaluation, IngestResult, ValidationResult
from contracts.protocol import Protocol
from contracts.records import RunRecovery
from core.source import SOURCE_COLUMNS

MANIFEST_VERSION = 1
RECONCILIATION_COLUMNS = ["DOMAIN", "RECEIVED", "REJECTED_INGEST", "VALIDATED", "REJECTED_VALIDATION",
                          "EVALUATED", "REJECTED", "BALANCED"]


def _domain(code: str | None) -> str | None:
    return code.lower() if code else None


def _domain_order(codes: set[str]) -> list[str]:
    known = [code for code in DOMAINS if code in codes]
    return known + sorted(codes - set(known))


def reconciliation(ingest: IngestResult, validation: ValidationResult,
                   evaluation: Evaluation) -> list[dict[str, Any]]:
    """One row per domain: RECEIVED = VALIDATED = EVALUATED + REJECTED, and whether it balances."""
    received: dict[str, int] = {}
    rejected_ingest: dict[str, int] = {}
    for item in ingest.inputs:
        code = _domain(item.domain)
        if code is None:
            continue
        received[code] = received.get(code, 0) + item.rows_read
        rejected_ingest[code] = rejected_ingest.get(code, 0) + item.rows_rejected
    rejected = validation.rejected
    rejected_validation: dict[str, int] = {}
    if rejected.height:
        counts = (rejected.filter(pl.col("DOMAIN").is_not_null())
                  .group_by(pl.col("DOMAIN").str.to_lowercase())
                  .agg(pl.struct(SOURCE_COLUMNS).n_unique().alias("N")))
        rejected_validation = dict(zip(counts["DOMAIN"].to_list(), counts["N"].to_list(), strict=True))
    validated = {_domain(k) or k: v for k, v in validation.rows_validated.items()}
    evaluated = {_domain(k) or k: v for k, v in evaluation.rows_evaluated.items()}
    codes = set(received) | set(validated) | set(evaluated) | set(rejected_validation)
    rows = []
    for code in _domain_order(codes):
        row = {
            "DOMAIN": code.upper(),
            "RECEIVED": received.get(code, 0),
            "REJECTED_INGEST": rejected_ingest.get(code, 0),
            "VALIDATED": validated.get(code, 0) + rejected_ingest.get(code, 0),
            "REJECTED_VALIDATION": rejected_validation.get(code, 0),
            "EVALUATED": evaluated.get(code, 0),
        }
        row["REJECTED"] = row["REJECTED_INGEST"] + row["REJECTED_VALIDATION"]
        row["BALANCED"] = row["RECEIVED"] == row["VALIDATED"] == row["EVALUATED"] + row["REJECTED"]
        rows.append(row)
    return rows


def rejected_per_file(validation: ValidationResult) -> dict[str, int]:
    """Rows validation rejected whole, per delivered object key (a row rejected by two checks counts once)."""
    rejected = validation.rejected
    if rejected.height == 0:
        return {}
    counts = (rejected.filter(pl.col("SOURCE_KEY").is_not_null()).unique(list(SOURCE_COLUMNS))
              .group_by("SOURCE_KEY").len())
    return dict(zip(counts["SOURCE_KEY"].to_list(), counts["len"].to_list(), strict=True))


def protocol_section(protocol_id: str, version: str, protocol: Protocol | None) -> dict[str, Any]:
    """The manifest's `protocol`: its id and version(s), and with the Protocol each version's effective date, file
    name and content digest (Protocol.content_digest)."""
    section: dict[str, Any] = {"id": protocol_id, "version": version}
    if protocol is not None:
        section["versions"] = [{"tivers": edition.tivers, "effective": edition.version.effective.isoformat(),
                                "file": edition.path.replace("\\", "/").rsplit("/", 1)[-1] or None,
                                "digest": edition.content_digest()} for edition in protocol.editions()]
    return section


def protocol_change(previous: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """What changed in the protocol since the previous run's manifest (`previous`), as one sentence; None when nothing
    did or either manifest cannot tell. A user trial saw a night with 152 new findings that came from an amendment
    taking effect, and neither the report nor the digest said the protocol had changed."""
    before = (previous or {}).get("protocol") if isinstance(previous, dict) else None
    now = current.get("protocol") or {}
    if not isinstance(before, dict) or not before.get("version"):
        return None
    if before.get("version") != now.get("version"):
        return (f"The protocol changed since the previous run: version(s) {before.get('version')} then, "
                f"{now.get('version')} tonight. Findings new tonight may come from the change.")
    old = {v.get("tivers"): v.get("digest") for v in before.get("versions") or [] if isinstance(v, dict)}
    edited = [v["tivers"] for v in now.get("versions") or []
              if old.get(v["tivers"]) is not None and old.get(v["tivers"]) != v["digest"]]
    if edited:
        # the digest is of what the loader made of the file: a new software version may read the same file otherwise
        then, now = (previous or {}).get("software_version"), current.get("software_version")
        why = (f"a version file edited in place, or the same file read by this software version {now} where the "
               f"previous run had {then}" if then != now else "a version file edited in place")
        return (f"The protocol changed since the previous run: the criteria of version(s) {', '.join(edited)} "
                f"differ from the previous run's ({why}). Findings new tonight may come from the change.")
    return None


def build_run_manifest(*, study: str, as_of: date, ingest: IngestResult, validation: ValidationResult,
                       evaluation: Evaluation, software_version: str,
                       recovery: RunRecovery | None = None, protocol: Protocol | None = None) -> dict[str, Any]:
    """The run manifest as a JSON-ready dict (`generated_at` is its only time-dependent field).

    `recovery`: what the run cleaned up after earlier, crashed runs of the study (the lease it took over,
    a promotion it finished, staging it removed; docs/operations.md); empty lists and nulls when nothing.
    """
    by_validation = rejected_per_file(validation)
    inputs = [
        {
            "key": item.key,
            "site": item.site,
            "domain": item.domain.upper() if item.domain else None,
            "version_id": item.version_id,
            "etag": item.etag,
            "sha256": item.sha256,
            "rows_read": item.rows_read,
            "rows_rejected": item.rows_rejected,
            "rejected_reasons": dict(sorted(item.rejected_reasons.items())),
            # rows_read = rows_rejected + rows_rejected_validation + the file's rows evaluation read
            "rows_rejected_validation": by_validation.get(item.key, 0),
        }
        for item in sorted(ingest.inputs, key=lambda i: i.key)
    ]
    deliveries = [
        {"site": d.site, "delivery": d.delivery, "status": d.status, "reason": d.reason}
        for d in sorted(ingest.deliveries, key=lambda d: (d.site, d.delivery))
    ]
    rows = reconciliation(ingest, validation, evaluation)
    return {
        "manifest_version": MANIFEST_VERSION,
        "study": study,
        "as_of": as_of.isoformat(),
        "protocol": protocol_section(evaluation.protocol_id, evaluation.protocol_version, protocol),
        "software_version": software_version,
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "sites_audited": sorted(ingest.sites_audited),
        "sites_not_audited": [{"site": s, "reason": r} for s, r in sorted(ingest.sites_not_audited.items())],
        "inputs": inputs,
        "deliveries": deliveries,
        "deliveries_not_used": [d for d in deliveries if d["status"] != "USED"],
        "findings": {"ingest": ingest.findings.height, "validation": validation.findings.height},
        "reconciliation": rows,
        "balanced": all(r["BALANCED"] for r in rows),
        "totals": {
            "rows_received": sum(r["RECEIVED"] for r in rows),
            "rows_validated": sum(r["VALIDATED"] for r in rows),
            "rows_evaluated": sum(r["EVALUATED"] for r in rows),
            "rows_rejected": sum(r["REJECTED"] for r in rows),
            "subjects": evaluation.subjects.height,
            "discrepancies": evaluation.discrepancies.height,
        },
        "recovery": (recovery or RunRecovery()).as_manifest(),
    }
