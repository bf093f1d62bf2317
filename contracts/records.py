"""Records the stages return: what ingestion read and decided, and the stage results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from contracts.policy import Policy
from contracts.tables import DERIVED_VALUES, EXCLUSIONS, FINDINGS, SUBJECT_DM, empty_table


@dataclass(frozen=True)
class InputObject:
    """One object read from the landing area, for `run_manifest.json`."""

    key: str
    site: str
    domain: str | None
    sha256: str
    rows_read: int
    rows_rejected: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    etag: str | None = None
    version_id: str | None = None


@dataclass(frozen=True)
class DeliveryDecision:
    """What ingestion did with one delivery folder of one site.

    status: USED (the delivery audited), SUPERSEDED (an older complete delivery, not needed),
    INCOMPLETE (no manifest.json yet), REJECTED (manifest problem, checksum / row-count / missing file),
    AFTER_AS_OF (stamped after the end of the audit's as-of date in the study's time zone: not considered),
    FALLBACK is not a status: the USED delivery of a site whose newer one was REJECTED says so in
    `reason`.
    """

    site: str
    delivery: str
    status: str
    reason: str = ""


@dataclass
class SiteIngest:
    """Everything ingestion got from one site (the unit of per-site ingestion tasks).

    `frames` maps a lower-case domain code to a frame whose columns are all `pl.String` (values stay
    text; the typed stages convert), as delivered (extra columns kept), plus three columns added:
    `SOURCE` ("<object key>:<data row number, 1-based>"), `DELIVERY_SITEID` (the site of the delivery
    path) and `DECIMAL` ("." or "," as the manifest says for that file).
    """

    site: str
    delivery: str | None
    frames: dict[str, pl.DataFrame]
    inputs: list[InputObject]
    deliveries: list[DeliveryDecision]
    findings: pl.DataFrame = field(default_factory=lambda: empty_table(FINDINGS))

    @property
    def audited(self) -> bool:
        return self.delivery is not None


@dataclass
class IngestResult:
    """All sites of one study together: one frame per domain across sites (diagonal concat)."""

    study: str
    domains: dict[str, pl.DataFrame]
    inputs: list[InputObject]
    deliveries: list[DeliveryDecision]
    findings: pl.DataFrame
    sites_audited: list[str]
    sites_not_audited: dict[str, str]  # site -> reason


@dataclass
class DomainValidation:
    """One domain's share of a validation run (picklable: frames and JSON data only, no paths, so that it
    comes back whole from a worker that shares no disk with the flow)."""

    domain: str  # lower-case
    study: str
    findings: pl.DataFrame = field(default_factory=lambda: empty_table(FINDINGS))
    exclusions: pl.DataFrame = field(default_factory=lambda: empty_table(EXCLUSIONS))
    rejected: pl.DataFrame = field(default_factory=lambda: empty_table(EXCLUSIONS))
    expectations: list[dict] = field(default_factory=list)
    rows: int = 0
    gx_result: dict | None = None  # GE validation result (JSON document), None when the domain had no rows
    gx_suite: dict | None = None  # GE expectation suite (JSON document), the Data Docs' other half


@dataclass
class ValidationResult:
    """Great Expectations results mapped to rows, plus the values evaluation must not use."""

    findings: pl.DataFrame = field(default_factory=lambda: empty_table(FINDINGS))
    exclusions: pl.DataFrame = field(default_factory=lambda: empty_table(EXCLUSIONS))
    # whole rows validation found unusable (orphan subject, duplicate key, wrong study...): evaluation
    # drops them and they count as rejected in the reconciliation; VARIABLE names the cause column
    rejected: pl.DataFrame = field(default_factory=lambda: empty_table(EXCLUSIONS))
    expectations: list[dict] = field(default_factory=list)  # the suites as run, for review
    data_docs: Path | None = None  # local folder with the built Data Docs site
    rows_validated: dict[str, int] = field(default_factory=dict)  # per domain: rows run through the suites


@dataclass
class Evaluation:
    """The recomputed eligibility, the comparison with the site, and the protocol version used."""

    subjects: pl.DataFrame
    eligibility: pl.DataFrame
    discrepancies: pl.DataFrame
    protocol_id: str
    protocol_version: str
    rows_evaluated: dict[str, int] = field(default_factory=dict)  # per domain


@dataclass(frozen=True)
class EligibilityResult:
    """What evaluate() returns.

    eligibility: contracts.ELIGIBILITY + REASON_CODE (contracts.enums.ReasonCode) + DELIVERED (the result
    as delivered, where VALUE is it converted: checks.evaluation.delivered), one row per subject x
    component; reference: one row per DM subject (STUDYID, SITEID, USUBJID, SITE_DECISION,
    CONSENT_DTC, TREATMENT_START, TIVERS); criteria: one row per subject x criterion
    (CATEGORY, OUTCOME); rows_evaluated: rows per domain handed to evaluation after rejections.

    What the comparison reads so that it never re-reads or recomputes what the evaluation did:
    subject_dm: DM as the evaluation read it, one row per subject, excluded values blanked (USUBJID,
    RFICDTC, RFXSTDTC, AGE as text; CONSENT_LO/HI, BIRTH_LO/HI, DOSE_LO/HI as dates, partial dates as
    their bounds; SOURCE, the DM record, which the checks of its dates and age name;
    checks.evaluation.reference.SUBJECT_DM_COLUMNS); derived: the derived values the
    protocol compares, as numbers (USUBJID, NAME such as CRCL_CG, LO, HI in the value's unit, DTC of
    the result it rests on).
    """

    eligibility: pl.DataFrame
    reference: pl.DataFrame
    criteria: pl.DataFrame
    rows_evaluated: dict[str, int] = field(default_factory=dict)
    protocol_id: str = ""
    protocol_version: str = ""
    subject_dm: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SUBJECT_DM))
    derived: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DERIVED_VALUES))


@dataclass(frozen=True)
class Comparison:
    """What compare() hands to reporting.

    subjects: contracts.SUBJECTS; discrepancies: contracts.DISCREPANCIES (STATUS / FIRST_SEEN /
    DAYS_OPEN null, FINDING_ID / EVIDENCE_HASH set); checklist: the site's answer per subject x
    criterion (checks.comparison.site_checklist), kept for the reconciliation view.
    """

    subjects: pl.DataFrame
    discrepancies: pl.DataFrame
    checklist: pl.DataFrame


@dataclass(frozen=True)
class PackedSites:
    """A batch of ingested sites as a Dask worker keeps it until its partition is audited (scale-out).

    sites: each SiteIngest without its rows; frames: each site's rows per domain, Arrow IPC compressed
    with zstd (several times smaller than the frames: a worker holds every batch it ingested while the
    flow plans the partitions, ingestion.partition); index: the batch's BatchIndex, computed before
    packing, so that the flow can fetch it from the worker without the rows or a task of its own.
    """

    sites: list[SiteIngest]
    frames: list[dict[str, bytes]]
    index: BatchIndex | None = None  # made while the rows were at hand, for the flow to fetch alone


@dataclass(frozen=True)
class BatchIndex:
    """What the flow learns of one ingested batch of sites without receiving its rows (scale-out).

    sites: the batch's sites, in order; not_audited: those without a usable delivery, and why;
    subjects: its distinct DM subjects; subject_ids: every USUBJID
    its rows name, in any domain (one column, distinct), so that the flow can keep all rows of a
    subject in one partition; schemas: per lower-case domain, the columns the batch's combined frame
    has (ingestion.combine), in order, so that every partition's frames have the study's columns.
    """

    sites: list[str]
    not_audited: dict[str, str]
    subjects: int
    subject_ids: pl.DataFrame
    schemas: dict[str, dict[str, pl.DataType]]


@dataclass(frozen=True)
class PartedTable:
    """A published table too large to bring to one process, as the partitions made it (scale-out).

    parts: each partition's rows in the table's canonical form (reporting.tables.canonical), encoded as
    Parquet, in partition order. Partitions hold consecutive sites, so the parts one after the other are
    usually the whole table in canonical order already; reporting.parted checks that before it streams
    them into the published files, and sorts them in memory when they are not.
    """

    name: str
    parts: list[bytes]


@dataclass(frozen=True)
class PartitionResult:
    """One partition's audit up to the comparison, as it comes back from a worker: small results only.

    sites: each site's SiteIngest without its rows (inputs, deliveries, findings); validation: one
    DomainValidation per domain (GE's suite and result as data); eligibility and comparison: the
    partition's subjects'. The flow stacks the partitions (flows.partition) into the study's records.
    eligibility_part: when the partition is one of several, its eligibility rows come back only here, as
    a part of the published table (PartedTable), and `eligibility` and `comparison` carry no frame with
    a row per subject x component or criterion: what the flow needs of them is in the part.
    """

    sites: list[SiteIngest]
    validation: list[DomainValidation]
    eligibility: EligibilityResult
    comparison: Comparison
    eligibility_part: bytes | None = None


@dataclass(frozen=True)
class ReviewResult:
    """Where the sponsor's review stands tonight (review.night.review_night), for the outputs.

    states: one row per finding the ledger holds (review.fold.STATES: REVIEW_STATE, REVIEWED_BY,
    REVIEWED_AT, LAST_TEXT, the last decision and its evidence, whether a confirmed deviation stands);
    reopened: the REOPEN entries added since the previous run (FINDING_ID, SEQ, BY, AT, TEXT);
    receipts: what became of the workbooks applied tonight (review.imports.Receipt as dicts);
    ledger: its status for the run manifest and the report: `status` VERIFIED, EMPTY or INVALID,
    `entries`, `head` (the last entry's hash), `problems` (why it is INVALID: the entries named),
    `notes`, `read_only` (a re-run of a past night writes nothing to the ledger);
    confirmed_earlier: the previous night's DV records whose confirmation still stands
    (review.night.standing_confirmations), which dv keeps when tonight's data no longer show them.
    """

    states: pl.DataFrame
    reopened: pl.DataFrame
    receipts: list[dict[str, Any]] = field(default_factory=list)
    ledger: dict[str, Any] = field(default_factory=dict)
    confirmed_earlier: pl.DataFrame | None = None

    @property
    def verified(self) -> bool:
        return self.ledger.get("status") != "INVALID"


@dataclass(frozen=True)
class WhatIfResult:
    """What a draft amendment would change (checks.comparison.whatif), for reporting.whatif.

    changes: one row per subject whose recomputed eligibility changes (STUDYID, SITEID, USUBJID,
    SITE_DECISION, TIVERS of the version in force, RECOMPUTED_NOW, RECOMPUTED_DRAFT, CHANGE
    (contracts.enums.WhatIfChange), CRITERIA: the criteria behind it, `IN10: NOT_MET -> MET`);
    criteria: one row per such subject x criterion whose outcome changes (CRITERION_ID, OUTCOME_NOW,
    OUTCOME_DRAFT, CHANGE); unverifiable: one row per subject x component the draft cannot decide that
    was decided now or did not exist (CHECK_ID, REASON_CODE, REASON: data the amendment needs);
    by_site: per criterion x site, the number of subjects of each change (CRITERION_ID, SITEID, and one
    count column per WhatIfChange, N_UNVERIFIABLE for the newly undecidable subjects).
    """

    study: str
    as_of: date
    baseline: str  # "SZ003 1.0, 2.0": the protocol in force
    draft: str  # "SZ003 3.0 (draft)"
    subjects: int
    changes: pl.DataFrame
    criteria: pl.DataFrame
    unverifiable: pl.DataFrame
    by_site: pl.DataFrame
    #: what a reader must know before the counts (a draft carrying a version already in force)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOutputs:
    """The tables and records of one run of one study as of one date.

    `discrepancies` is the comparison's table after `apply_history` (STATUS, FIRST_SEEN, DAYS_OPEN
    filled, RESOLVED rows appended) and, with `review`, the review columns (REVIEW_STATE...).
    `validation` is the findings table (contracts.FINDINGS): the flow
    should pass ingestion's findings together with Great Expectations' so a site sees every data
    problem in one place. `run_manifest` is what `build_run_manifest` returned.
    """

    study: str
    as_of: date
    protocol_id: str
    protocol_version: str
    subjects: pl.DataFrame
    eligibility: pl.DataFrame | PartedTable  # PartedTable: as the partitions of a cluster run made it
    discrepancies: pl.DataFrame
    validation: pl.DataFrame
    run_manifest: dict[str, Any]
    data_docs: Path | None = None
    expectations: list[dict[str, Any]] = field(default_factory=list)
    review: ReviewResult | None = None  # None: a run assembled without the review stage (tests, tools)
    #: the discrepancy policy the run graded with (its DV terms make dv.csv/xpt); None: the bundled one
    policy: Policy | None = None
    #: the earlier data-quality findings gone tonight at the sites looked at again (reporting.history.
    #: validation_history); None: a run assembled without the history stage (tests, tools)
    validation_resolved: pl.DataFrame | None = None


@dataclass(frozen=True)
class StagingRemoved:
    """One killed or failed run's staging prefix that a later run removed."""

    prefix: str
    run_id: str
    as_of: str
    objects: int
    sealed: bool  # the run had finished writing it (its staging marker was there)


@dataclass(frozen=True)
class RunRecovery:
    """What a run cleaned up after earlier runs of its study before auditing (publication.recovery).

    `lease_taken_over` says why an earlier holder's lease could be taken (it ended, or expired);
    `promotion_completed` names the night whose interrupted promotion this run finished; `staging_removed`
    lists the staging prefixes of runs that died before promoting. Listed in `run_manifest.json`.
    """

    lease_taken_over: str | None = None
    promotion_completed: str | None = None
    promotion_abandoned: str | None = None
    staging_removed: tuple[StagingRemoved, ...] = ()

    def is_empty(self) -> bool:
        return not (self.lease_taken_over or self.promotion_completed or self.promotion_abandoned
                    or self.staging_removed)

    def as_manifest(self) -> dict[str, Any]:
        return {
            "lease_taken_over": self.lease_taken_over,
            "promotion_completed": self.promotion_completed,
            "promotion_abandoned": self.promotion_abandoned,
            "staging_removed": [asdict(item) for item in self.staging_removed],
        }


@dataclass(frozen=True)
class AuditSummary:
    """The headline of one run, returned by the flow and printed by the CLI."""

    study: str
    as_of: str
    protocol: str
    sites_audited: int
    sites_not_audited: dict[str, str]
    subjects: int
    enrolled: int
    important: int
    queries: int
    new: int
    report: str
    outputs: str
    published: list[str] = field(default_factory=list)
    #: a URL that opens the report: presigned HTTPS for S3 (for a limited time), file:// for a folder
    report_link: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Digest:
    """A night's morning message for the sponsor, rendered for every channel (reporting.digest).

    `facts` is the message as data (headline numbers, new important deviations, reopened findings,
    sites not audited, the review backlog, links), which a chat webhook posts as JSON; `text` and `html`
    are the email's two parts. `nothing_new` is true when the night brought nothing a data manager must
    look at; the study's configuration decides whether such a night still sends its one line.
    Subjects are named by USUBJID only.
    """

    study: str
    as_of: str
    subject: str
    text: str
    html: str
    facts: dict[str, Any]
    nothing_new: bool
