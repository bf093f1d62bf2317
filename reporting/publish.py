"""Write every output of a run under one prefix of the reports store.

`render_outputs` makes all files in memory (pure, testable); `publish` writes them. The flow decides
the prefix (the final `<STUDYID>/<AS_OF>` or a staging prefix it promotes afterwards).
`run_manifest.json` is written last, so a reader that finds it knows the rest is there.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import NamedTuple

import polars as pl

from contracts.records import PartedTable, RunOutputs
from contracts.tables import FINDING_ID
from core.safety import neutralise
from expectations.docs import publish_data_docs
from publication.layout import (
    site_also_answered_key,
    site_detail_key,
    site_file_name,
)
from reporting import parted
from reporting.covered import COVERED_FINDING_IDS
from reporting.dv import build_dv, xpt_bytes
from reporting.history import RESOLVED_VALIDATION_COLUMNS, previous_run, run_trend
from reporting.html import render_report
from reporting.manifest import protocol_change
from reporting.queries import (
    build_site_queries,
    capped_detail,
    consolidate_queries,
    left_out_findings,
    query_detail,
    quoted_value_keys,
    site_query_of,
    split_by_site,
    with_earlier_answers,
    with_finding_answers,
    with_response_columns,
    with_sponsor_confirmation,
)
from reporting.review_sheet import SHEET as REVIEW_SHEET
from reporting.review_sheet import decision_drop_downs, review_row_count, review_rows
from reporting.summary import (
    eligibility_matrix,
    headline,
    important_deviations,
    not_audited_table,
    reconciliation_table,
    risk_table,
    site_table,
    version_table,
)
from reporting.tables import TABLES, canonical, write_csv_file, write_parquet_file
from reporting.workbook import MAX_SHEET_ROWS, Sheet, pointer, sheet, site_workbooks, workbook
from review.catalogue import catalogue_of
from review.machine import load_machine
from review.runs import read_manifest
from review.workbook import ALSO_ANSWERED_SHEET
from storage import Store
from storage.keys import join_key

CSV = "text/csv; charset=utf-8"
PARQUET = "application/vnd.apache.parquet"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XPT = "application/x-sas-xport"
HTML = "text/html; charset=utf-8"
JSON = "application/json"
MANIFEST_FILE = "run_manifest.json"


@dataclass(frozen=True)
class OutputFile:
    """One output: its bytes, or (a table streamed from its parts) a file of the publishing machine."""

    key: str  # relative to the run prefix
    data: bytes
    content_type: str
    path: Path | None = None

    def contents(self) -> bytes:
        return self.path.read_bytes() if self.path is not None else self.data


def published_tables(outputs: RunOutputs, *, sorted_eligibility: bool = True) -> dict[str, pl.DataFrame | PartedTable]:
    """The six published tables in canonical form (eligibility left in its parts when it came in parts
    that are in canonical order already). `sorted_eligibility=False`: an eligibility table that came whole is left
    in its rows' order, for the job that writes it to sort (publication: the sort is 0.1 s of a dirty night that
    every other job waited for)."""
    tables: dict[str, pl.DataFrame | PartedTable] = {
        name: canonical(getattr(outputs, name), TABLES[name]) for name in ("subjects", "discrepancies", "validation")}
    eligibility = outputs.eligibility
    if isinstance(eligibility, PartedTable):
        tables["eligibility"] = eligibility if parted.in_canonical_order(eligibility) else parted.gathered(eligibility)
    else:
        tables["eligibility"] = canonical(eligibility, TABLES["eligibility"]) if sorted_eligibility else eligibility
    tables["dv"] = build_dv(tables["discrepancies"], tables["subjects"], outputs.policy,
                            earlier=outputs.review.confirmed_earlier if outputs.review is not None else None)
    resolved = outputs.validation_resolved
    tables["validation_resolved"] = canonical(resolved if resolved is not None
                                              else pl.DataFrame(schema=RESOLVED_VALIDATION_COLUMNS),
                                              TABLES["validation_resolved"])
    return {name: tables[name]
            for name in ("subjects", "eligibility", "discrepancies", "validation", "validation_resolved", "dv")}


def _frames(table: pl.DataFrame | PartedTable, columns: list[str]) -> Iterable[pl.DataFrame]:
    """A table's `columns` as frames to read one after the other (its parts, or itself)."""
    return parted.part_frames(table, columns) if isinstance(table, PartedTable) else [table.select(columns)]


def _summary_sheet(outputs: RunOutputs) -> pl.DataFrame:
    head = headline(outputs).as_dict()
    labels = [(k.replace("_", " ").upper(), str(v)) for k, v in head.items()]
    labels.append(("SOFTWARE VERSION", str(outputs.run_manifest.get("software_version", ""))))
    return pl.DataFrame({"ITEM": [k for k, _ in labels], "VALUE": [v for _, v in labels]})


def _links(outputs: RunOutputs) -> dict[str, str]:
    links = {"Workbook (report.xlsx)": "report.xlsx", "Run manifest": MANIFEST_FILE}
    if outputs.data_docs is not None:  # a built site (it may be on the flow's machine, not the renderer's)
        links["Data Docs"] = "data_docs/index.html"
    links["Protocol deviations (dv.xpt)"] = "dv.xpt"
    return links


#: what the eligibility matrix reads of the eligibility table
MATRIX_COLUMNS = ["STUDYID", "SITEID", "USUBJID", "CRITERION_ID", "OUTCOME"]
#: threads rendering independent outputs at once: their work is polars, ISA-L and Arrow, which release the GIL
PUBLISH_THREADS = 4
#: the site workbook's sheets: the queries, one per problem, that a site answers; each finding they list
SITE_SHEET, DETAIL_SHEET = "Queries", "Detail"
#: where the rows of each report.xlsx sheet are when the table is too long to repeat in a sheet
SHEET_FILES = {
    "Review": "'screening-audit review list' (by site or state) and decide with 'screening-audit review add'",
    "Subjects": "subjects.csv or subjects.parquet",
    "Important deviations": "discrepancies.csv or discrepancies.parquet (SEVERITY = IMPORTANT) and dv.csv",
    "Queries": "the site_queries folder (one CSV and one workbook per site)",
    "Query detail": "site_queries/detail (every finding, one CSV per site), and the discrepancies and validation "
                    "tables",
    "Discrepancies": "discrepancies.csv or discrepancies.parquet",
    "Validation findings": "validation.csv or validation.parquet",
    "Resolved data quality": "validation_resolved.csv or validation_resolved.parquet",
    "Eligibility matrix": "eligibility.csv or eligibility.parquet",
    "DV": "dv.csv, dv.parquet or dv.xpt",
}


def _table_files(name: str, frame: pl.DataFrame | PartedTable, folder: Path) -> list[OutputFile]:
    """name.csv and name.parquet, written by polars into files of `folder` (a table in parts streamed from
    them), which the store then takes as they are (Store.move_file): the biggest outputs of a night never
    pass through Python memory, and a folder store renames them into place instead of writing them again."""
    csv, parquet = folder / f"{name}.csv", folder / f"{name}.parquet"
    if isinstance(frame, PartedTable):
        parted.write_csv(frame, csv)
        parted.write_parquet(frame, parquet)
    else:
        write_csv_file(frame, csv)
        write_parquet_file(frame, parquet)
    return [OutputFile(f"{name}.csv", b"", CSV, csv), OutputFile(f"{name}.parquet", b"", PARQUET, parquet)]


def _site_sheet_file(site: str, sheet: str) -> str:
    """Where a site workbook's sheet too long to write is (its pointer names it)."""
    if sheet == SITE_SHEET:
        return f"site_queries/{site_file_name(site)}.csv"
    if sheet == ALSO_ANSWERED_SHEET:
        return site_also_answered_key(site)
    return site_detail_key(site)


def _site_query_workbooks(safe: pl.DataFrame, findings: pl.DataFrame, left_out: pl.DataFrame, study: str,
                          as_of: date, states: pl.DataFrame | None = None) -> list[OutputFile]:
    """site_queries/<SITEID>.xlsx for every site: Queries (one per problem, with the site's earlier answer
    and the columns it answers in), Detail (one row per finding, up to DETAIL_SHEET_FINDINGS of a
    query) and Also answered (the findings left out of the list, each with the query whose answer is recorded
    for it), each sheet made in one pass over all sites. `safe`, `findings` and `left_out` are the neutralised
    queries, their findings and the left-out ones; `states`: the review's (ReviewResult.states), for the
    earlier answers."""
    files_of = {site: site_detail_key(site) for site in split_by_site(safe.select("SITEID"))}
    workbooks = site_workbooks([(SITE_SHEET, with_response_columns(with_earlier_answers(safe, states))),
                                (DETAIL_SHEET, capped_detail(findings, files_of)),
                                (ALSO_ANSWERED_SHEET, left_out)],
                               as_of, neutralised=True, title=lambda site: f"{study} queries for site {site}",
                               where=lambda site, sheet: _site_sheet_file(site, sheet))
    return [OutputFile(f"site_queries/{site_file_name(site)}.xlsx", data, XLSX) for site, data in workbooks.items()]


def _site_query_csvs(safe: pl.DataFrame, findings: pl.DataFrame, left_out: pl.DataFrame,
                     folder: Path) -> list[OutputFile]:
    """site_queries/<SITEID>.csv (one query per problem), site_queries/detail/<SITEID>.csv (every finding)
    for every site with a query, and site_queries/also_answered/<SITEID>.csv (the findings left out of its
    queries) for every site with any, written into files of `folder` (as the tables' files are). Made apart
    from the workbooks, on a thread of their own: the two are the longest jobs of a publication and need only
    the queries."""
    details, also = split_by_site(findings), split_by_site(left_out)
    files: list[OutputFile] = []
    for site, part in split_by_site(safe).items():
        name = site_file_name(site)
        queries, detail = folder / f"site-queries-{name}.csv", folder / f"site-detail-{name}.csv"
        files.append(OutputFile(f"site_queries/{name}.csv", b"", CSV, write_csv_file(part, queries, neutralised=True)))
        files.append(OutputFile(site_detail_key(site), b"", CSV,
                                write_csv_file(details[site], detail, neutralised=True)))
        if site in also:
            files.append(OutputFile(site_also_answered_key(site), b"", CSV, write_csv_file(
                also[site], folder / f"site-also-answered-{name}.csv", neutralised=True)))
    return files


#: the sheet of the previous run's data-quality findings gone tonight (one row per finding, with its FINDING_ID)
RESOLVED_QUALITY_SHEET = "Resolved data quality"
#: report.xlsx's sheets in order
REPORT_SHEETS = ["Summary", REVIEW_SHEET, "Sites", "Protocol versions", "Subjects", "Important deviations", "Queries",
                 "Query detail", "Discrepancies", "Validation findings", RESOLVED_QUALITY_SHEET, "Eligibility matrix",
                 "Site risk",
                 "Reconciliation", "Not audited", "DV"]
#: the sheets made from the site queries (the others are made while the queries are built)
LATE_SHEETS = (REVIEW_SHEET, "Queries", "Query detail")


def _report_sheets(outputs: RunOutputs, tables: dict[str, pl.DataFrame | PartedTable],
                   risk: pl.DataFrame) -> list[Sheet]:
    """report.xlsx's sheets that need no site queries, in REPORT_SHEETS order: made while the queries are built."""
    disc = tables["discrepancies"]
    frames = {
        "Summary": lambda: _summary_sheet(outputs),
        "Sites": lambda: site_table(outputs, risk),
        "Protocol versions": lambda: version_table(outputs),
        "Subjects": lambda: tables["subjects"],
        "Important deviations": lambda: important_deviations(disc),
        "Discrepancies": lambda: disc,
        "Validation findings": lambda: tables["validation"],
        RESOLVED_QUALITY_SHEET: lambda: tables["validation_resolved"],
        "Eligibility matrix": lambda: eligibility_matrix(tables["subjects"],
                                                         _frames(tables["eligibility"], MATRIX_COLUMNS)),
        "Site risk": lambda: risk,
        "Reconciliation": lambda: reconciliation_table(outputs.run_manifest),
        "Not audited": lambda: not_audited_table(outputs.run_manifest),
        "DV": lambda: tables["dv"],
    }
    return [sheet(name, frames[name](), SHEET_FILES.get(name)) for name in REPORT_SHEETS if name not in LATE_SHEETS]


def _review_sheet(outputs: RunOutputs, queries: pl.DataFrame) -> Sheet:
    """The Review sheet: every open finding to decide on, with the site query that asks about it (so it is made
    after the queries), or its pointer when it is too long to write (its rows are then not built)."""
    disc, validation = outputs.discrepancies, outputs.validation
    machine = load_machine()
    unreviewed = outputs.review is None or outputs.review.verified
    count = review_row_count(disc, validation, machine, unreviewed_when_missing=unreviewed)
    if count > MAX_SHEET_ROWS:
        return sheet(REVIEW_SHEET, pointer(REVIEW_SHEET, count, SHEET_FILES[REVIEW_SHEET]), None)
    review = review_rows(disc, validation, machine, unreviewed_when_missing=unreviewed,
                         asked=site_query_of(queries))
    return sheet(REVIEW_SHEET, review, SHEET_FILES.get(REVIEW_SHEET), decision_drop_downs(review, machine))


def _report_workbook(outputs: RunOutputs, early: Future[list[Sheet]], built: _SiteQueries) -> list[OutputFile]:
    """report.xlsx: the sheets of the site queries, then the package with those made `early`."""
    made = iter(early.result())
    late = {REVIEW_SHEET: _review_sheet(outputs, built.queries),
            "Queries": sheet("Queries", built.problems, SHEET_FILES["Queries"]),
            "Query detail": sheet("Query detail", built.findings, SHEET_FILES["Query detail"])}
    sheets = [late[name] if name in LATE_SHEETS else next(made) for name in REPORT_SHEETS]
    data = workbook(sheets, outputs.as_of, f"Screening audit {outputs.study} {outputs.as_of}")
    return [OutputFile("report.xlsx", data, XLSX)]


def _query_values(discrepancies: pl.DataFrame, eligibility: pl.DataFrame | PartedTable) -> pl.DataFrame:
    """The eligibility rows the queries quote (those of a discrepancy's subject and check), in table order (of a
    whole table, its quoted rows sorted on their own: the order they have in the sorted table)."""
    keys = quoted_value_keys(discrepancies)
    if not isinstance(eligibility, PartedTable):
        quoted = eligibility.join(keys, on=list(keys.columns), how="semi", nulls_equal=True, maintain_order="left")
        return canonical(quoted, TABLES["eligibility"])
    rows = [frame.join(keys, on=list(keys.columns), how="semi", nulls_equal=True, maintain_order="left")
            for frame in parted.part_frames(eligibility)]
    return pl.concat(rows, how="vertical_relaxed") if rows else pl.DataFrame()


class _SiteQueries(NamedTuple):
    """The site queries of a run, as the outputs made from them need them."""

    queries: pl.DataFrame  # one row per finding (reporting.queries.build_site_queries)
    problems: pl.DataFrame  # one query per problem (consolidate_queries)
    safe: pl.DataFrame  # `problems`, neutralised for CSV and XLSX
    findings: pl.DataFrame  # query_detail(queries), neutralised
    left_out: pl.DataFrame  # left_out_findings(queries), neutralised


def _covered_catalogue(queries: pl.DataFrame, frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The review catalogue of the findings left out of the site queries only (a few of 130,000)."""
    ids = queries[COVERED_FINDING_IDS].drop_nulls().str.split(" ").explode().implode()
    return catalogue_of(*(frames[name].filter(pl.col(FINDING_ID).is_in(ids)) if FINDING_ID in frames[name].columns
                          else frames[name] for name in ("discrepancies", "validation")))


def _render_jobs(outputs: RunOutputs, previous_run: date | None, trend: pl.DataFrame | None,
                 pool: ThreadPoolExecutor, sink: Callable[[list[OutputFile]], None] | None,
                 folder: Path, protocol_change: str | None = None) -> list[Future[list[OutputFile]]]:
    """Submit the rendering of every output file but the run manifest to `pool` (each job hands its files
    to `sink` as soon as they are made, so that writing overlaps the rendering of the others); returns the
    jobs, in output order."""
    tables = published_tables(outputs, sorted_eligibility=False)  # sorted by the job that writes it (below)
    # every later step sees contract-complete tables, whatever shape an upstream stage handed over (eligibility's
    # rows are read through `_frames` and `_query_values`, which do not depend on its order)
    outputs = replace(outputs, subjects=tables["subjects"], eligibility=tables["eligibility"],
                      discrepancies=tables["discrepancies"], validation=tables["validation"])
    frames: dict[str, pl.DataFrame] = {k: v for k, v in tables.items() if isinstance(v, pl.DataFrame)}
    previous = previous_run.isoformat() if previous_run else None

    def job(render: Callable[[], list[OutputFile]]) -> Future[list[OutputFile]]:
        def run() -> list[OutputFile]:
            made = render()
            if sink is not None:
                sink(made)
            return made
        return pool.submit(run)

    states = outputs.review.states if outputs.review is not None else None

    def site_queries() -> _SiteQueries:
        queries = build_site_queries(frames["discrepancies"], frames["validation"],
                                     _query_values(frames["discrepancies"], tables["eligibility"]),
                                     every_text=False,  # no output shows a finding's own text but through its query
                                     subjects=frames["subjects"])
        queries = with_sponsor_confirmation(with_finding_answers(queries, states), states)
        problems = consolidate_queries(queries)
        return _SiteQueries(queries, problems, neutralise(problems), neutralise(query_detail(queries)),
                            neutralise(left_out_findings(queries, _covered_catalogue(queries, frames))))

    # the site queries and the site files made from them are the longest chain: it is started first, and
    # everything else is rendered beside it (the jobs that need the queries wait for them on their thread)
    built = pool.submit(site_queries)
    jobs = [job(lambda name=name, frame=frame: _table_files(name, _sorted(name, frame), folder))
            for name, frame in tables.items()]
    jobs.append(job(lambda: [OutputFile("dv.xpt", xpt_bytes(frames["dv"], outputs.as_of), XPT)]))
    jobs.append(job(lambda: _site_query_csvs(built.result().safe, built.result().findings, built.result().left_out,
                                             folder)))
    risk = risk_table(outputs)
    early = pool.submit(_report_sheets, outputs, tables, risk)
    html = job(lambda: [OutputFile("report.html", render_report(
        outputs, risk, _links(outputs), previous, trend, protocol_change).encode("utf-8"), HTML)])
    jobs.append(job(lambda: _site_query_workbooks(built.result().safe, built.result().findings,
                                                  built.result().left_out, outputs.study, outputs.as_of, states)))
    jobs.append(job(lambda: _report_workbook(outputs, early, built.result())))
    jobs.append(html)  # listed last, as it always was: the order of the files does not depend on when they are made
    return jobs


def _sorted(name: str, frame: pl.DataFrame | PartedTable) -> pl.DataFrame | PartedTable:
    """A table as it is written: a whole eligibility table sorted into canonical form (published_tables left it as it
    came), every other as it is."""
    return canonical(frame, TABLES[name]) if name == "eligibility" and isinstance(frame, pl.DataFrame) else frame


def _manifest_file(outputs: RunOutputs) -> OutputFile:
    manifest = json.dumps(outputs.run_manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return OutputFile(MANIFEST_FILE, (manifest + "\n").encode("utf-8"), JSON)


def render_outputs(outputs: RunOutputs, previous_run: date | None = None,
                   trend: pl.DataFrame | None = None, protocol_change: str | None = None) -> list[OutputFile]:
    """Every output file of the run except the Data Docs folder, in the order they are written.

    `previous_run` is the as-of date of the run the history was compared with and `trend` the
    finding counts of earlier runs (history.run_trend), `protocol_change` what changed in the protocol since
    (reporting.manifest.protocol_change); these only change report.html. Each output is
    rendered once from the final tables, independent outputs on parallel threads (the bytes do not
    depend on the order they finish in).
    """
    with (tempfile.TemporaryDirectory(prefix="screening-audit-render-") as folder,
          ThreadPoolExecutor(max_workers=PUBLISH_THREADS, thread_name_prefix="publish") as pool):
        jobs = _render_jobs(outputs, previous_run, trend, pool, sink=None, folder=Path(folder),
                            protocol_change=protocol_change)
        files = [replace(item, data=item.contents(), path=None) for job in jobs for item in job.result()]
    return [*files, _manifest_file(outputs)]


def write_outputs(outputs: RunOutputs, store: Store, prefix: str) -> list[str]:
    """Render and write every output of the run under `prefix` but the Data Docs and the run manifest;
    the keys written. Each file is written by the thread that rendered it, as soon as it has.

    On a Dask cluster this runs on a worker (flows.tasks.write_outputs_task), next to nothing but the
    run's outputs: the flow's process then never holds a rendered file, and the eligibility table is
    streamed from its parts into storage by the worker."""
    previous = previous_run(store, study=outputs.study, as_of=outputs.as_of)
    trend = run_trend(store, study=outputs.study, as_of=outputs.as_of)
    change = protocol_change(read_manifest(store, outputs.study, previous[0]) if previous else None,
                             outputs.run_manifest)

    def write(files: list[OutputFile]) -> None:
        for item in files:
            if item.path is not None:
                store.move_file(join_key(prefix, item.key), item.path, content_type=item.content_type)
            else:
                store.write_bytes(join_key(prefix, item.key), item.data, item.content_type)

    with (store.scratch_folder(prefix) as folder,
          ThreadPoolExecutor(max_workers=PUBLISH_THREADS, thread_name_prefix="publish") as pool):
        jobs = _render_jobs(outputs, previous[0] if previous else None, trend, pool, sink=write, folder=folder,
                            protocol_change=change)
        return [join_key(prefix, item.key) for job in jobs for item in job.result()]


def publish(outputs: RunOutputs, store: Store, prefix: str, written: list[str] | None = None) -> list[str]:
    """Write every output of the run under `prefix`; returns the keys written (run_manifest.json last).

    `written`: the keys `write_outputs` already wrote there (a worker did); else they are written here,
    with the Data Docs upload beside them. The run manifest, the mark of a complete folder, is written
    after everything else.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="data-docs") as pool:
        docs = None
        if outputs.data_docs is not None and Path(outputs.data_docs).is_dir():
            docs = pool.submit(publish_data_docs, Path(outputs.data_docs), store, join_key(prefix, "data_docs"))
        # serialised beside the rendering (0.05 s of pure Python on a dirty night), written after it
        made = pool.submit(_manifest_file, outputs)
        keys = list(written) if written is not None else write_outputs(outputs, store, prefix)
        if docs is not None:
            keys += docs.result()
        manifest = made.result()
    key = join_key(prefix, manifest.key)
    store.write_bytes(key, manifest.data, manifest.content_type)
    keys.append(key)
    return keys
