"""A synthetic, internally consistent run of any size, for tests, the benchmark and for looking at
the report without running the pipeline. Deterministic (hash-based), vectorised, no real data.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from checks.comparison.identity import discrepancy_id
from contracts import Evaluation, IngestResult, InputObject, ValidationResult
from contracts.records import DeliveryDecision, RunOutputs
from core.identity import fingerprint, stable_id
from reporting.manifest import build_run_manifest

#: (CRITERION_ID, CHECK_ID, UNIT, LIMIT, kind) — a few SZ003 components
COMPONENTS = [
    ("IN06", "IN06", "years", "18-80", "IN"),
    ("IN07", "IN07", "", "80", "IN"),
    ("IN10", "IN10.PLT", "10^9/L", "60", "IN"),
    ("IN10", "IN10.HGB", "g/dL", "9.0", "IN"),
    ("IN11", "IN11.ALT", "U/L", "200", "IN"),
    ("IN11", "IN11.CRCL", "mL/min", "40", "IN"),
    ("EX05", "EX05.HBV", "IU/mL", "200", "EX"),
    ("EX07", "EX07", "cm", "5", "EX"),
]


def _u(*columns: str, salt: int) -> pl.Expr:
    """A pseudo-random number in [0, 1) from the given columns (stable across runs and machines)."""
    return (pl.concat_str([pl.col(c).cast(pl.String) for c in columns] + [pl.lit(str(salt))]).hash(seed=7)
            % 10_000 / 10_000)


def make_outputs(n_subjects: int = 40, n_sites: int = 4, as_of: date = date(2026, 11, 28),
                 study: str = "SZ003", night: int = 0) -> RunOutputs:
    """A run with `n_subjects` over `n_sites`; `night` shifts which findings exist (for history)."""
    ids = pl.int_range(n_subjects, eager=True)
    subjects = pl.DataFrame({"I": ids}).with_columns(
        pl.lit(study).alias("STUDYID"),
        (pl.lit("1") + (pl.col("I") % n_sites + 1).cast(pl.String).str.zfill(2)).alias("SITEID"),
    ).with_columns(
        pl.concat_str([pl.col("STUDYID"), pl.col("SITEID"), (pl.col("I") + 1).cast(pl.String).str.zfill(4)],
                      separator="-").alias("USUBJID"),
    ).with_columns(
        _u("USUBJID", salt=1).alias("_D"),
    ).with_columns(
        pl.when(pl.col("_D") < 0.55).then(pl.lit("ENROLLED")).when(pl.col("_D") < 0.9)
        .then(pl.lit("SCREEN FAILURE")).otherwise(pl.lit("IN SCREENING")).alias("SITE_DECISION"),
    )
    comps = pl.DataFrame(COMPONENTS, schema=["CRITERION_ID", "CHECK_ID", "UNIT", "LIMIT", "KIND"], orient="row")
    site_bias = (pl.col("SITEID") == "102").cast(pl.Float64) * 0.08
    eligibility = subjects.join(comps, how="cross").with_columns(
        (_u("USUBJID", "CHECK_ID", salt=2 + night % 2) - site_bias).alias("_R"),
    ).with_columns(
        pl.when(pl.col("_R") < 0.04).then(pl.lit("UNVERIFIABLE"))
        .when(pl.col("_R") < 0.07).then(pl.when(pl.col("KIND") == "IN").then(pl.lit("NOT_MET"))
                                        .otherwise(pl.lit("APPLIES")))
        .otherwise(pl.when(pl.col("KIND") == "IN").then(pl.lit("MET")).otherwise(pl.lit("NOT_APPLICABLE")))
        .alias("OUTCOME"),
        (pl.col("_R") * 100).round(1).cast(pl.String).alias("VALUE"),
        pl.lit((as_of - timedelta(days=10)).isoformat()).alias("DTC"),
    ).with_columns(
        pl.when(pl.col("OUTCOME") == "UNVERIFIABLE").then(pl.lit("no result in the screening window"))
        .alias("REASON"),
        pl.concat_str([pl.lit(f"{study}/"), pl.col("SITEID"), pl.lit("/20261127T230000Z/lb.csv:"),
                       (pl.col("I") + 1).cast(pl.String)]).alias("SOURCE"),
    )
    failing = pl.col("OUTCOME").is_in(["NOT_MET", "APPLIES"])
    recomputed = eligibility.group_by("USUBJID").agg(
        pl.when(failing.any()).then(pl.lit("INELIGIBLE"))
        .when((pl.col("OUTCOME") == "UNVERIFIABLE").any()).then(pl.lit("UNVERIFIABLE"))
        .otherwise(pl.lit("ELIGIBLE")).alias("RECOMPUTED"))
    enrolled = pl.col("SITE_DECISION") == "ENROLLED"
    disc = eligibility.filter(enrolled & (failing | (pl.col("OUTCOME") == "UNVERIFIABLE"))).with_columns(
        pl.when(failing).then(pl.lit("INELIGIBLE_ENROLLED")).otherwise(pl.lit("UNVERIFIABLE")).alias("CLASS"),
        pl.when(failing).then(pl.lit("IMPORTANT")).otherwise(pl.lit("QUERY")).alias("SEVERITY"),
        pl.lit("Y").alias("SITE_ASSESSMENT"),
        pl.col("OUTCOME").alias("RECOMPUTED"),
        pl.concat_str([pl.col("CHECK_ID"), pl.lit(" value "), pl.col("VALUE"), pl.lit(" "), pl.col("UNIT"),
                       pl.lit(" against limit "), pl.col("LIMIT"), pl.lit(" on "), pl.col("DTC"),
                       pl.lit(".")]).alias("EVIDENCE"),
        pl.lit(None, pl.String).alias("STATUS"),
        pl.lit(None, pl.String).alias("FIRST_SEEN"),
        pl.lit(None, pl.Int64).alias("DAYS_OPEN"),
        pl.lit(None, pl.String).alias("_OWN_DTC"),  # a component's findings have no date or record of their own
        pl.lit(None, pl.String).alias("_OWN_SOURCE"),
    ).with_columns(
        discrepancy_id(),
        fingerprint("SITE_ASSESSMENT", "RECOMPUTED", "VALUE", "UNIT", "LIMIT", "DTC").alias("EVIDENCE_HASH"),
    ).select("STUDYID", "SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "SITE_ASSESSMENT", "RECOMPUTED",
             "EVIDENCE", "STATUS", "FIRST_SEEN", "DAYS_OPEN", pl.col("_OWN_DTC").alias("DTC"),
             pl.col("_OWN_SOURCE").alias("SOURCE"), "FINDING_ID", "EVIDENCE_HASH")
    counts = disc.group_by("USUBJID").agg(pl.len().cast(pl.Int64).alias("N_DISCREPANCIES"))
    subjects_out = (subjects.join(recomputed, on="USUBJID", how="left").join(counts, on="USUBJID", how="left")
                    .with_columns(pl.col("N_DISCREPANCIES").fill_null(0),
                                  pl.when(enrolled).then(pl.lit((as_of - timedelta(days=3)).isoformat()))
                                  .alias("TREATMENT_START"))
                    .select("STUDYID", "SITEID", "USUBJID", "SITE_DECISION", "RECOMPUTED", "TREATMENT_START",
                            "N_DISCREPANCIES"))
    validation = subjects.filter(_u("USUBJID", salt=9) < 0.08).with_columns(
        pl.lit("LB").alias("DOMAIN"),
        pl.when(_u("USUBJID", salt=10) < 0.5).then(pl.lit("LBORRESU")).otherwise(pl.lit("LBORRES")).alias("VARIABLE"),
        pl.lit("expect_column_values_to_be_in_set").alias("EXPECTATION"),
        pl.when(_u("USUBJID", salt=11) < 0.3).then(pl.lit("=HYPERLINK(\"http://x\")")).otherwise(pl.lit("mg/dl?"))
        .alias("OBSERVED"),
        pl.lit("value not in the accepted set").alias("MESSAGE"),
        pl.concat_str([pl.lit(f"{study}/"), pl.col("SITEID"), pl.lit("/20261127T230000Z/lb.csv:"),
                       (pl.col("I") * 3 + 2).cast(pl.String)]).alias("SOURCE"),
    ).with_columns(
        stable_id("V", "STUDYID", "SITEID", "USUBJID", "DOMAIN", "VARIABLE", "EXPECTATION").alias("FINDING_ID"),
        fingerprint("OBSERVED").alias("EVIDENCE_HASH"),
    ).select("STUDYID", "SITEID", "USUBJID", "DOMAIN", "VARIABLE", "EXPECTATION", "OBSERVED", "MESSAGE", "SOURCE",
             "FINDING_ID", "EVIDENCE_HASH")

    sites = sorted(subjects["SITEID"].unique().to_list())
    per_site = subjects.group_by("SITEID").agg(pl.len().alias("N")).sort("SITEID")
    inputs = [InputObject(key=f"{study}/{s}/20261127T230000Z/{d}.csv", site=s, domain=d, sha256="0" * 64,
                          rows_read=int(n) * k, etag=f"etag-{s}-{d}")
              for s, n in per_site.iter_rows() for d, k in (("dm", 1), ("lb", 8))]
    rows = {d: sum(i.rows_read for i in inputs if i.domain == d) for d in ("dm", "lb")}
    ingest = IngestResult(study=study, domains={}, inputs=inputs,
                          deliveries=[DeliveryDecision(s, "20261127T230000Z", "USED") for s in sites]
                          + [DeliveryDecision("199", "20261126T230000Z", "REJECTED",
                                              "lb.csv sha256 does not match the manifest")],
                          findings=pl.DataFrame(), sites_audited=sites,
                          sites_not_audited={"199": "newest delivery rejected and no earlier complete delivery"})
    validation_result = ValidationResult(rows_validated=rows)
    evaluation = Evaluation(subjects=subjects_out, eligibility=eligibility, discrepancies=disc, protocol_id="SZ003",
                            protocol_version="v1.0", rows_evaluated=rows)
    manifest = build_run_manifest(study=study, as_of=as_of, ingest=ingest, validation=validation_result,
                                  evaluation=evaluation, software_version="0.1.0")
    return RunOutputs(study=study, as_of=as_of, protocol_id="SZ003", protocol_version="v1.0",
                      subjects=subjects_out, eligibility=eligibility.select(
                          "STUDYID", "SITEID", "USUBJID", "CRITERION_ID", "CHECK_ID", "OUTCOME", "VALUE", "UNIT",
                          "LIMIT", "DTC", "REASON", "SOURCE"),
                      discrepancies=disc, validation=validation, run_manifest=manifest)
