"""The public entry points: validate one domain, finish a run, list the suites.

`validate_domain` is called once per domain (possibly in parallel); it prepares one polars frame
over all sites, runs one GE suite over it and maps the failures to rows; GE's suite and result come
back in the `DomainValidation` as JSON data, not files, since the call may run on a worker that shares
no disk with its caller. `finish_validation` gathers the domains; the caller builds the Data Docs from
the parts in a folder of its own (`expectations.docs.build_data_docs`, or `workdir` here).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from contracts.domains import DOMAINS
from contracts.protocol import Protocol
from contracts.records import DomainValidation, ValidationResult
from contracts.tables import EXCLUSIONS, FINDINGS, check_table, empty_table
from contracts.units import UnitCatalog, load_units
from expectations.checks import Context, build
from expectations.mapping import VALIDATION_FINDINGS, map_failures
from expectations.prepare import ge_frame, prepare, text_columns
from expectations.protocol_needs import criteria_of, demands_of, needed_by, needs_of, protocol_id
from expectations.spec import SuiteConfig, load_suites


def domain_context(domain: str, *, study: str, protocol: Protocol | None = None,
                   columns: frozenset[str] = frozenset(), config: SuiteConfig | None = None,
                   catalog: UnitCatalog | None = None) -> Context:
    """What the builders of one domain read: its DTS spec, suites.yaml, the unit catalog, the protocol."""
    if domain.lower() not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; known: {sorted(DOMAINS)}")
    config = config or load_suites()
    return Context(spec=DOMAINS[domain.lower()], config=config, catalog=catalog or load_units(), study=study,
                   protocol_id=protocol_id(protocol), criteria=criteria_of(protocol),
                   needs=needs_of(protocol, config), needed_by=needed_by(protocol), columns=columns,
                   demands=demands_of(protocol))


def suite_name(domain: str) -> str:
    return f"screening_{domain.lower()}"


def validate_domain(domain: str, domains: dict[str, pl.DataFrame], *, study: str, protocol: Protocol | None = None,
                    catalog: UnitCatalog | None = None, unread: pl.DataFrame | None = None) -> DomainValidation:
    """Run the domain's suite once over all sites' rows; map failures to findings / exclusions / rejected.

    `catalog` is the study's unit catalog (None: the bundled one); `unread` the files ingestion rejected as a whole
    (ingestion.unread.unread_in): what they hold is not reported missing."""
    frame = domains.get(domain.lower())
    ctx = domain_context(domain, study=study, protocol=protocol, catalog=catalog,
                         columns=frozenset(frame.columns) if frame is not None else frozenset())
    pieces = build(ctx)
    checks = [piece.check for piece in pieces]
    described = [check.describe() for check in checks]
    out = DomainValidation(domain=domain.lower(), study=study, expectations=described)
    if frame is None or frame.height == 0:
        return out
    from expectations.gx_run import run_suite

    prepared = prepare(domains, ctx, pieces, unread)
    run = run_suite(suite_name(domain), checks, ge_frame(prepared, pieces))
    findings, exclusions, rejected = map_failures(prepared, checks, run.failures, study, text_columns(pieces))
    out.findings, out.exclusions, out.rejected = findings, exclusions, rejected
    out.rows, out.gx_result, out.gx_suite = frame.height, run.result, run.suite
    return out


def validate_domains(domains: dict[str, pl.DataFrame], *, study: str, protocol: Protocol | None = None,
                     catalog: UnitCatalog | None = None, threads: int = 4,
                     unread: pl.DataFrame | None = None) -> list[DomainValidation]:
    """`validate_domain` for every domain of `domains`, a few at a time (GE runs one suite at a time per
    process, the polars preparation around it runs beside it)."""
    from concurrent.futures import ThreadPoolExecutor

    names = sorted(domains)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(names)))) as pool:
        return list(pool.map(lambda d: validate_domain(d, domains, study=study, protocol=protocol, catalog=catalog,
                                                       unread=unread), names))


def finish_validation(parts: list[DomainValidation], *, workdir: Path | None = None) -> ValidationResult:
    """All domains together; with `workdir` (a folder of the caller's machine), also the Data Docs built
    under workdir/data_docs from the parts' GE documents."""
    from expectations.docs import build_data_docs

    parts = sorted(parts, key=lambda p: list(DOMAINS).index(p.domain) if p.domain in DOMAINS else 99)
    findings = _concat([p.findings for p in parts], VALIDATION_FINDINGS)
    result = ValidationResult(
        findings=check_table(findings, FINDINGS, "validation"),
        exclusions=check_table(_concat([p.exclusions for p in parts], EXCLUSIONS), EXCLUSIONS, "exclusions"),
        rejected=check_table(_concat([p.rejected for p in parts], EXCLUSIONS), EXCLUSIONS, "rejected"),
        expectations=[item for p in parts for item in p.expectations],
        rows_validated={p.domain: p.rows for p in parts},
    )
    if workdir is not None:
        result.data_docs = build_data_docs(parts, Path(workdir))
    return result


def list_expectations(protocol: Protocol | None = None, *, study: str = "<STUDYID>") -> list[dict]:
    """Every expectation a run checks, per domain, in suite order: the reviewable suites."""
    items: list[dict] = []
    for domain in DOMAINS:
        ctx = domain_context(domain, study=study, protocol=protocol)
        items.extend(piece.check.describe() for piece in build(ctx))
    return items


def _concat(frames: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    """The parts' tables stacked, with exactly the given columns in order (empty when none)."""
    frames = [f.select(*schema) for f in frames if f.height]
    return pl.concat(frames, how="vertical") if frames else empty_table(schema)
