"""The demo: a local S3-compatible endpoint, a generated multi-site study, one real audit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

LANDING_BUCKET = "sz003-landing"
REPORTS_BUCKET = "sponsor-reports"


def run_demo(out: Path, *, sites: int, subjects: int, seed: int, console: Console):
    """Run the whole product once against moto's S3 server; mirror the reports into `out`.

    Returns the flow's summary, the local path of report.html, and how the run scored against
    the generator's ground truth (every planted problem found, nothing else).
    """
    # Start the slow things first, each as soon as it can: Prefect's API server (a subprocess), then
    # the Great Expectations import (a thread); the rest of the imports and the study overlap them.
    from runtime.prefect_api import api_in_use, start_early_prefect_api

    api = start_early_prefect_api()
    from expectations.warmup import start_background_import

    start_background_import()

    import json

    import polars as pl

    from flows.nightly import nightly_audit
    from generator import generate
    from generator.scoring import score
    from storage import LocalStore, open_store
    from storage.local_endpoint import local_s3_endpoint

    as_of = datetime.now(UTC).date()
    with local_s3_endpoint(buckets=(LANDING_BUCKET, REPORTS_BUCKET)) as endpoint:
        console.print(f"local S3 endpoint (moto server) at {endpoint}")
        landing = f"s3://{LANDING_BUCKET}"
        reports = f"s3://{REPORTS_BUCKET}"
        with console.status(f"generating {sites} sites, {subjects} subjects..."):
            generate(open_store(landing, endpoint), study="SZ003", sites=sites, subjects=subjects, seed=seed,
                     as_of=as_of)
        with console.status("running the nightly audit flow..."), api_in_use(api):
            summary = nightly_audit(landing=landing, reports=reports, study="SZ003",
                                    as_of=as_of.isoformat(), endpoint_url=endpoint)
        local = LocalStore(out.resolve())
        remote = open_store(reports, endpoint)
        prefix = f"SZ003/{as_of.isoformat()}"
        for obj in remote.list(prefix):
            local.write_bytes(obj.key, remote.read_bytes(obj.key))
        truth = json.loads(open_store(landing, endpoint).read_bytes("SZ003/ground_truth.json"))
    run_dir = local.root / prefix
    result = score(truth, pl.read_parquet(run_dir / "discrepancies.parquet"),
                   pl.read_parquet(run_dir / "validation.parquet"))
    return summary, run_dir / "report.html", result
