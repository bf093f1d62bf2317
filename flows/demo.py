"""The demo: a local S3-compatible endpoint, a generated multi-site study, one real audit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

LANDING_BUCKET = "sz003-landing"
REPORTS_BUCKET = "sponsor-reports"
OUTBOX_BUCKET = "site-outbox"
#: who gets the demo's morning digest (delivered to a local SMTP server, saved as .eml files)
DIGEST = {"email_to": ["data-management@sponsor.example"], "smtp": "env:SCREENING_AUDIT_SMTP", "webhook": None,
          "webhook_style": "teams", "nothing_new": "send", "link_expiry_days": 7}


def run_demo(out: Path, *, sites: int, subjects: int, seed: int, console: Console):
    """Run the whole product once against moto's S3 server; mirror the reports into `out`.

    Returns the flow's summary, the local path of report.html, how the run scored against the
    generator's ground truth (every planted problem found, nothing else), and the .eml files of the
    morning digest the run mailed to a local SMTP server.
    """
    # Start the slow thing first: Prefect's API server (a subprocess); the imports, Great Expectations'
    # included (in this thread: expectations/warmup.py), and the study's generation overlap it.
    from runtime.prefect_api import api_in_use, start_early_prefect_api

    api = start_early_prefect_api()

    import json

    from runtime.heap import imports_without_collection

    with imports_without_collection():  # and frozen after (runtime/heap.py)
        import polars as pl

        from expectations.warmup import import_great_expectations
        from flows.nightly import nightly_audit
        from generator import generate
        from generator.scoring import score
        from notify.local_sink import LocalSmtpSink
        from storage import LocalStore, open_store
        from storage.local_endpoint import local_s3_endpoint

        import_great_expectations()

    as_of = datetime.now(UTC).date()
    with local_s3_endpoint(buckets=(LANDING_BUCKET, REPORTS_BUCKET, OUTBOX_BUCKET)) as endpoint, \
            LocalSmtpSink() as smtp, _smtp_environment(smtp.port):
        console.print(f"local S3 endpoint (moto server) at {endpoint}")
        landing = f"s3://{LANDING_BUCKET}"
        reports = f"s3://{REPORTS_BUCKET}"
        with console.status(f"generating {sites} sites, {subjects} subjects..."):
            generate(open_store(landing, endpoint), study="SZ003", sites=sites, subjects=subjects, seed=seed,
                     as_of=as_of)
        with console.status("running the nightly audit flow..."), api_in_use(api):
            summary = nightly_audit(landing=landing, reports=reports, study="SZ003", as_of=as_of.isoformat(),
                                    endpoint_url=endpoint, outbox=f"s3://{OUTBOX_BUCKET}", digest=DIGEST)
        local = LocalStore(out.resolve())
        remote = open_store(reports, endpoint)
        prefix = f"SZ003/{as_of.isoformat()}"
        for obj in remote.list(prefix):
            local.write_bytes(obj.key, remote.read_bytes(obj.key))
        outbox = open_store(f"s3://{OUTBOX_BUCKET}", endpoint)
        for obj in outbox.list("SZ003"):
            local.write_bytes(f"outbox/{obj.key}", outbox.read_bytes(obj.key))
        mails = []
        for number, (_, message) in enumerate(smtp.messages, start=1):
            mails.append(local.root / f"digest-{as_of.isoformat()}-{number}.eml")
            mails[-1].write_bytes(message.as_bytes())
        truth = json.loads(open_store(landing, endpoint).read_bytes("SZ003/ground_truth.json"))
    run_dir = local.root / prefix
    result = score(truth, pl.read_parquet(run_dir / "discrepancies.parquet"),
                   pl.read_parquet(run_dir / "validation.parquet"))
    return summary, run_dir / "report.html", result, mails


@contextmanager
def _smtp_environment(port: int) -> Iterator[None]:
    """The SMTP settings the digest reads (env:SCREENING_AUDIT_SMTP), pointing at the local server."""
    values = {"SCREENING_AUDIT_SMTP_HOST": "127.0.0.1", "SCREENING_AUDIT_SMTP_PORT": str(port),
              "SCREENING_AUDIT_SMTP_STARTTLS": "false", "SCREENING_AUDIT_SMTP_FROM": "screening-audit@demo.example"}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
