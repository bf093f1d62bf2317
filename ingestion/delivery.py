"""Read one complete delivery (its manifest and every file it lists) and decide if it can be used.

Delivery-level problems (the manifest is unreadable or names another study, site or delivery; a
listed file is missing; a checksum or row count does not match) reject the whole delivery: the
site said what it sent and this is not it. File-level problems reject that file only.

Everything here is storage I/O and per-file parsing; the rows of the files read are checked later,
with the files of other sites (`shape.shape_files`), so a delivery that is read is complete except
for its files' row-level findings and rejected-row counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from contracts import InputObject
from ingestion.codes import DELIVERY_REJECTED_REASON, Code
from ingestion.csv_reader import PlainCsv
from ingestion.errors import FileRejected, IngestProblem, ManifestProblem
from ingestion.fetch import fetch
from ingestion.findings import Finding, about_delivery, about_file
from ingestion.manifest import MANIFEST_NAME, Manifest, ManifestFile, parse_manifest
from ingestion.options import IngestOptions
from ingestion.readers import domain_of, read_file
from ingestion.shape import PlainFile, Prepared, prepare, prepare_later
from storage import ObjectInfo, Store


@dataclass
class DeliveryRead:
    accepted: bool
    reason: str = ""  # why it was rejected, one sentence
    files: list[Prepared | PlainFile] = field(default_factory=list)  # of an accepted delivery, rows still to check
    inputs: list[InputObject] = field(default_factory=list)
    #: in report order; a file stands for its row-level findings, known once its rows are checked
    findings: list[Finding | Prepared | PlainFile] = field(default_factory=list)


@dataclass(frozen=True)
class _Context:
    store: Store
    study: str
    site: str
    delivery: str
    workdir: Path
    options: IngestOptions

    @property
    def prefix(self) -> str:
        return f"{self.study}/{self.site}/{self.delivery}/"

    def finding(self, problem: IngestProblem, key: str, domain: str | None = None) -> Finding:
        return Finding(self.study, self.site, problem.code, about_file(self.site, key, problem.detail),
                       source=key, domain=domain.upper() if domain else None,
                       variable=problem.variable, observed=problem.observed)


def _input(ctx: _Context, key: str, sha256: str, domain: str | None, rows: int = 0, rejected: int = 0,
           reasons: dict[str, int] | None = None) -> InputObject:
    head = ctx.store.head(key)
    return InputObject(key=key, site=ctx.site, domain=domain, sha256=sha256, rows_read=rows,
                       rows_rejected=rejected, rejected_reasons=dict(reasons or {}),
                       etag=head.etag if head else None, version_id=head.version_id if head else None)


def _manifest(ctx: _Context, read: DeliveryRead) -> Manifest:
    key = ctx.prefix + MANIFEST_NAME
    fetched = fetch(ctx.store, key, ctx.workdir, f"{ctx.delivery}-{MANIFEST_NAME}")
    read.inputs.append(_input(ctx, key, fetched.sha256, None))
    return parse_manifest(fetched.path.read_bytes(), study=ctx.study, site=ctx.site, delivery=ctx.delivery)


@dataclass
class _FileOutcome:
    entry: ManifestFile
    key: str
    domain: str | None
    sha256: str
    prepared: Prepared | PlainFile | None = None
    rejected: FileRejected | None = None
    records: int | None = None  # records parsed, when the file could be parsed


def _read_entry(ctx: _Context, entry: ManifestFile, duplicate_domains: set[str]) -> _FileOutcome:
    key = ctx.prefix + entry.name
    fetched = fetch(ctx.store, key, ctx.workdir, f"{ctx.delivery}-{entry.name}")
    outcome = _FileOutcome(entry=entry, key=key, domain=_known_domain(entry.name), sha256=fetched.sha256)
    try:
        if fetched.sha256 != entry.sha256:
            return outcome  # the delivery is rejected: parsing would only add noise
        outcome.domain, _ = domain_of(entry.name)
        if outcome.domain in duplicate_domains:
            raise FileRejected(Code.FILE_DUPLICATE_DOMAIN,
                               f"the delivery has more than one {outcome.domain.upper()} file; none of "
                               f"them is used rather than guessing which is right")
        raw = read_file(fetched.path, entry, plain_csv=True)
        outcome.records = raw.records
        later = prepare_later if isinstance(raw, PlainCsv) else prepare
        outcome.prepared = later(raw, domain=outcome.domain, key=key, site=ctx.site, decimal=entry.decimal)
    except FileRejected as problem:
        outcome.rejected = problem
    finally:
        fetched.path.unlink(missing_ok=True)
    return outcome


def _known_domain(name: str) -> str | None:
    try:
        return domain_of(name)[0]
    except FileRejected:
        return None


def _duplicate_domains(manifest: Manifest) -> set[str]:
    seen: dict[str, int] = defaultdict(int)
    for entry in manifest.files:
        domain = _known_domain(entry.name)
        if domain is not None:
            seen[domain] += 1
    return {domain for domain, n in seen.items() if n > 1}


def _delivery_problems(ctx: _Context, outcomes: list[_FileOutcome]) -> list[tuple[Finding, str]]:
    """A finding per file whose bytes or row count disagree with manifest.json, each with its reason in a few
    words (`lb.csv has 438 data rows but manifest.json says 439`), which the delivery's rejection quotes."""
    problems: list[tuple[Finding, str]] = []
    for o in outcomes:
        domain = o.domain.upper() if o.domain else None
        if o.sha256 != o.entry.sha256:
            code, variable, observed = Code.CHECKSUM, "sha256", o.sha256
            what = f"its SHA-256 is {o.sha256} but manifest.json says {o.entry.sha256}"
            reason = f"the SHA-256 of {o.entry.name} is {o.sha256} but manifest.json says {o.entry.sha256}"
        elif o.records is not None and o.records != o.entry.rows:
            code, variable, observed = Code.ROW_COUNT, "rows", str(o.records)
            what = f"it has {o.records} data rows but manifest.json says {o.entry.rows}"
            reason = f"{o.entry.name} has {o.records} data rows but manifest.json says {o.entry.rows}"
        else:
            continue
        finding = Finding(ctx.study, ctx.site, code,
                          about_file(ctx.site, o.key, f"{what}; delivery {ctx.delivery} is rejected"),
                          source=o.key, domain=domain, variable=variable, observed=observed)
        problems.append((finding, reason))
    return problems


def _accepted_input(ctx: _Context, o: _FileOutcome) -> InputObject:
    if o.prepared is not None:  # rows rejected are counted once its rows are checked
        return _input(ctx, o.key, o.sha256, o.domain, o.prepared.records)
    assert o.rejected is not None
    # rows of a file that could not be used: the parsed count, or the manifest's when unparseable
    rows = o.records if o.records is not None else o.entry.rows
    return _input(ctx, o.key, o.sha256, o.domain, rows, rows, {o.rejected.code.reason: rows})


def read_delivery(store: Store, study: str, site: str, delivery: str, objects: list[ObjectInfo],
                  workdir: Path, options: IngestOptions) -> DeliveryRead:
    """Read and check one delivery whose folder holds `objects` (manifest.json among them)."""
    ctx = _Context(store, study, site, delivery, workdir, options)
    read = DeliveryRead(accepted=False)
    try:
        manifest = _manifest(ctx, read)
    except ManifestProblem as problem:
        key = ctx.prefix + MANIFEST_NAME
        read.reason = f"{problem.detail}"
        read.findings.append(Finding(
            study, site, problem.code,
            about_delivery(site, delivery, f"{problem.detail}; the delivery is rejected"),
            source=key, variable=problem.variable, observed=problem.observed))
        return read

    present = {o.key[len(ctx.prefix):] for o in objects}
    missing = [f.name for f in manifest.files if f.name not in present]
    if missing:
        read.reason = f"manifest.json lists {', '.join(missing)}, not in the delivery folder"
        read.findings.append(Finding(
            study, site, Code.MISSING_FILE,
            about_delivery(site, delivery, f"{read.reason}; the delivery is rejected"),
            source=ctx.prefix + MANIFEST_NAME, variable="files", observed=",".join(missing)))
        return read

    duplicates = _duplicate_domains(manifest)
    outcomes = [_read_entry(ctx, entry, duplicates) for entry in sorted(manifest.files, key=lambda f: f.name)]
    problems = _delivery_problems(ctx, outcomes)
    if problems:
        read.reason = "; ".join(reason for _, reason in problems)
        read.findings.extend(finding for finding, _ in problems)
        for o in outcomes:
            rows = o.records if o.records is not None else o.entry.rows
            read.inputs.append(_input(ctx, o.key, o.sha256, o.domain, rows, rows,
                                      {DELIVERY_REJECTED_REASON: rows}))
        return read

    read.accepted = True
    listed = {f.name for f in manifest.files} | {MANIFEST_NAME}
    ignored = [Finding(study, site, Code.OBJECT_IGNORED,
                       about_file(site, o.key, "it is not listed in manifest.json, so it is not read"),
                       source=o.key)
               for o in objects if o.key[len(ctx.prefix):] not in listed]
    file_findings: list[Finding] = []
    for o in outcomes:
        read.inputs.append(_accepted_input(ctx, o))
        if o.rejected is not None:
            file_findings.append(ctx.finding(o.rejected, o.key, o.domain))
        elif o.prepared is not None:
            read.files.append(o.prepared)
    # a top-level setting's note is about manifest.json itself, which the message already names as the file
    notes = [Finding(study, site, Code.ENCODING_IGNORED, about_file(site, ctx.prefix + (note.name or MANIFEST_NAME),
                                                               f"{'manifest.json' if note.name else 'the manifest'} "
                                                               f"{note.detail}"),
                     source=ctx.prefix + MANIFEST_NAME, domain=_domain_code(note.name), variable=note.variable,
                     observed=note.observed)
             for note in manifest.notes]
    read.findings = [*notes, *ignored, *file_findings, *read.files]
    return read


def _domain_code(name: str | None) -> str | None:
    domain = _known_domain(name) if name else None
    return domain.upper() if domain else None
