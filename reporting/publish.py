"""Write every output of a run under one prefix of the reports store.

`render_outputs` makes all files in memory (pure, testable); `publish` writes them. The flow decides
the prefix (the final `<STUDYID>/<AS_OF>` or a staging prefix it promotes afterwards).
`run_manifest.json` is written last, so a reader that finds it knows the rest is there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import polars as pl

from contracts.enums import Severity
from contracts.records import RunOutputs
from expectations.docs import publish_data_docs
from reporting.dv import build_dv, xpt_bytes
from reporting.history import previous_run, run_trend
from reporting.html import render_report
from reporting.queries import build_site_queries, split_by_site, with_response_columns
from reporting.review_sheet import SHEET as REVIEW_SHEET
from reporting.review_sheet import drop_down_hook, review_rows
from reporting.summary import (
    current,
    eligibility_matrix,
    headline,
    not_audited_table,
    reconciliation_table,
    risk_table,
    site_table,
    version_table,
)
from reporting.tables import TABLES, canonical, csv_bytes, parquet_bytes
from reporting.workbook import workbook_bytes
from review.machine import load_machine
from storage import Store
from storage.keys import join_key

CSV = "text/csv; charset=utf-8"
PARQUET = "application/vnd.apache.parquet"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XPT = "application/x-sas-xport"
HTML = "text/html; charset=utf-8"
JSON = "application/json"
MANIFEST_FILE = "run_manifest.json"
_SITE_FILE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class OutputFile:
    key: str  # relative to the run prefix
    data: bytes
    content_type: str


def site_file_name(site: str) -> str:
    """A site id as a safe file name (site ids come from delivery paths, but never trust them)."""
    name = _SITE_FILE.sub("_", site).strip(".") or "UNKNOWN"
    return name


def published_tables(outputs: RunOutputs) -> dict[str, pl.DataFrame]:
    """The five published tables in canonical form."""
    tables = {name: canonical(getattr(outputs, name), TABLES[name])
              for name in ("subjects", "eligibility", "discrepancies", "validation")}
    tables["dv"] = build_dv(tables["discrepancies"], tables["subjects"], outputs.policy)
    return tables


def _summary_sheet(outputs: RunOutputs) -> pl.DataFrame:
    head = headline(outputs).as_dict()
    labels = [(k.replace("_", " ").upper(), str(v)) for k, v in head.items()]
    labels.append(("SOFTWARE VERSION", str(outputs.run_manifest.get("software_version", ""))))
    return pl.DataFrame({"ITEM": [k for k, _ in labels], "VALUE": [v for _, v in labels]})


def _links(outputs: RunOutputs) -> dict[str, str]:
    links = {"Workbook (report.xlsx)": "report.xlsx", "Run manifest": MANIFEST_FILE}
    if outputs.data_docs is not None and (Path(outputs.data_docs) / "index.html").is_file():
        links["Data Docs"] = "data_docs/index.html"
    links["Protocol deviations (dv.xpt)"] = "dv.xpt"
    return links


def render_outputs(outputs: RunOutputs, previous_run: date | None = None,
                   trend: pl.DataFrame | None = None) -> list[OutputFile]:
    """Every output file of the run except the Data Docs folder, in the order they are written.

    `previous_run` is the as-of date of the run the history was compared with and `trend` the
    finding counts of earlier runs (history.run_trend); both only change report.html.
    """
    tables = published_tables(outputs)
    # every later step sees contract-complete tables, whatever shape an upstream stage handed over
    outputs = replace(outputs, subjects=tables["subjects"], eligibility=tables["eligibility"],
                      discrepancies=tables["discrepancies"], validation=tables["validation"])
    files: list[OutputFile] = []
    for name, frame in tables.items():
        files.append(OutputFile(f"{name}.csv", csv_bytes(frame), CSV))
        files.append(OutputFile(f"{name}.parquet", parquet_bytes(frame), PARQUET))
    files.append(OutputFile("dv.xpt", xpt_bytes(tables["dv"], outputs.as_of), XPT))

    queries = build_site_queries(tables["discrepancies"], tables["validation"], tables["eligibility"])
    for site, part in split_by_site(queries).items():
        stem = f"site_queries/{site_file_name(site)}"
        files.append(OutputFile(f"{stem}.csv", csv_bytes(part), CSV))
        form = workbook_bytes([("Queries", with_response_columns(part))], outputs.as_of,
                              f"{outputs.study} queries for site {site}")
        files.append(OutputFile(f"{stem}.xlsx", form, XLSX))

    risk = risk_table(outputs)
    disc = tables["discrepancies"]
    now = current(disc)
    review = review_rows(disc, tables["validation"], load_machine(),
                         unreviewed_when_missing=outputs.review is None or outputs.review.verified)
    sheets = [
        ("Summary", _summary_sheet(outputs)),
        (REVIEW_SHEET, review),
        ("Sites", site_table(outputs, risk)),
        ("Protocol versions", version_table(outputs)),
        ("Subjects", tables["subjects"]),
        ("Important deviations", now.filter(pl.col("SEVERITY") == Severity.IMPORTANT)),
        ("Queries", queries),
        ("Discrepancies", disc),
        ("Validation findings", tables["validation"]),
        ("Eligibility matrix", eligibility_matrix(tables["subjects"], tables["eligibility"])),
        ("Site risk", risk),
        ("Reconciliation", reconciliation_table(outputs.run_manifest)),
        ("Not audited", not_audited_table(outputs.run_manifest)),
        ("DV", tables["dv"]),
    ]
    files.append(OutputFile("report.xlsx", workbook_bytes(
        sheets, outputs.as_of, f"Screening audit {outputs.study} {outputs.as_of}",
        hooks={REVIEW_SHEET: drop_down_hook(review, load_machine())}), XLSX))
    html = render_report(outputs, risk, _links(outputs), previous_run.isoformat() if previous_run else None,
                         trend)
    files.append(OutputFile("report.html", html.encode("utf-8"), HTML))
    manifest = json.dumps(outputs.run_manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    files.append(OutputFile(MANIFEST_FILE, (manifest + "\n").encode("utf-8"), JSON))
    return files


def publish(outputs: RunOutputs, store: Store, prefix: str) -> list[str]:
    """Write every output of the run under `prefix`; returns the keys written, in write order."""
    previous = previous_run(store, study=outputs.study, as_of=outputs.as_of)
    trend = run_trend(store, study=outputs.study, as_of=outputs.as_of)
    files = render_outputs(outputs, previous[0] if previous else None, trend)
    written: list[str] = []
    manifest = files.pop()  # written last
    for item in files:
        key = join_key(prefix, item.key)
        store.write_bytes(key, item.data, item.content_type)
        written.append(key)
    if outputs.data_docs is not None and Path(outputs.data_docs).is_dir():
        written += publish_data_docs(Path(outputs.data_docs), store, join_key(prefix, "data_docs"))
    key = join_key(prefix, manifest.key)
    store.write_bytes(key, manifest.data, manifest.content_type)
    written.append(key)
    return written
