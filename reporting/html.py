"""report.html: one self-contained page a data manager reads in five minutes.

Jinja2 with autoescape on; CSS, the SVG charts and a few lines of table-filter JavaScript are inline,
so the page opens from a disk, an e-mail attachment or an S3 download with the network off. Listings
show the top rows (NEW first, then the longest open); the full listings are in report.xlsx.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from contracts.enums import FindingStatus, Severity
from contracts.records import RunOutputs
from reporting import charts
from reporting.history import finding_counts
from reporting.review_summary import (
    backlog_by_site,
    backlog_by_state_and_age,
    listed_apart,
    reopened_tonight,
    review_backlog,
    reviewed_findings,
)
from reporting.risk import funnel_limits, load_indicators
from reporting.summary import (
    Headline,
    criterion_counts,
    criterion_sort_key,
    current,
    evaluated_tonight,
    headline,
    important_deviations,
    not_audited_table,
    reconciliation_table,
    site_criterion_counts,
    site_table,
    version_table,
)
from review.imports import rows_and_findings

TOP_ROWS = 200
#: free-text columns that wrap in the listings (identifiers and dates never wrap)
WRAP_COLUMNS = ("EVIDENCE", "REASON", "MESSAGE", "QUERY_TEXT", "EXAMPLE", "RISK_INDICATORS", "SITE_ASSESSMENT",
                "RECOMPUTED", "TEXT", "LAST_TEXT")
HEATMAP_SITES = 60
BAR_SITES = 25
TREND_RUNS = 30

_STATUS_RANK = pl.col("STATUS").replace_strict({"NEW": 0, "OPEN": 1, "RESOLVED": 2}, default=3)


def _env() -> Environment:
    return Environment(loader=PackageLoader("reporting", "templates"),
                       autoescape=select_autoescape(["html", "j2"], default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _rows(frame: pl.DataFrame, limit: int = TOP_ROWS) -> dict[str, Any]:
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    return {"columns": frame.columns, "numeric": numeric, "rows": frame.head(limit).rows(), "total": frame.height,
            "shown": min(frame.height, limit)}


def _listing(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    # CARRIED only when a finding was carried from an earlier night (reporting.history): an empty column otherwise
    if "CARRIED" in frame.columns and frame["CARRIED"].null_count() == frame.height:
        columns = [c for c in columns if c != "CARRIED"]
    if frame.height == 0:
        return frame.select([c for c in columns if c in frame.columns])
    ordered = frame.with_columns(_STATUS_RANK.alias("_R")).sort(
        ["_R", "DAYS_OPEN", "SITEID", "USUBJID", "CHECK_ID"], descending=[False, True, False, False, False],
        nulls_last=True)
    return ordered.select([c for c in columns if c in frame.columns])


#: subjects named in one row of the resolved data-quality listing (the rest are counted)
RESOLVED_SUBJECTS_SHOWN = 5


def resolved_quality(resolved: pl.DataFrame | None) -> pl.DataFrame:
    """The data-quality findings resolved tonight, one row per site and check (as a site's query list groups
    them): how many, which subjects (the first few, then a count), an example message and the earliest first
    date. Thousands of rows one fix removed are one row here, like the query that asked for it."""
    columns = {"SITEID": pl.String, "CHECK": pl.String, "FINDINGS": pl.UInt32, "SUBJECTS": pl.String,
               "FIRST_SEEN": pl.String, "EXAMPLE": pl.String}
    if resolved is None or resolved.height == 0:
        return pl.DataFrame(schema=columns)
    subjects = pl.col("USUBJID").drop_nulls().unique(maintain_order=True)
    more = subjects.len().cast(pl.Int64) - RESOLVED_SUBJECTS_SHOWN  # unsigned, it wrapped to 4294967292 (helper-34)
    return (resolved.group_by("SITEID", "CHECK")
            .agg(pl.len().alias("FINDINGS"),
                 (subjects.head(RESOLVED_SUBJECTS_SHOWN).str.join(", ")
                  + pl.when(more > 0).then(pl.format(" and {} more", more)).otherwise(pl.lit(""))).alias("SUBJECTS"),
                 pl.col("FIRST_SEEN").min().alias("FIRST_SEEN"),
                 pl.col("MESSAGE").drop_nulls().first().alias("EXAMPLE"))
            .sort(["SITEID", "CHECK"], nulls_last=True)
            .select(list(columns)))


def _heatmap(outputs: RunOutputs, sites: pl.DataFrame) -> dict[str, Any]:
    counts = site_criterion_counts(outputs)
    ranked = (sites.sort(["IMPORTANT", "QUERIES", "SITEID"], descending=[True, True, False])
              ["SITEID"].to_list())
    shown = sorted(ranked[:HEATMAP_SITES])
    criteria = sorted(counts["CRITERION"].drop_nulls().unique().to_list(), key=criterion_sort_key)
    cells = {(s, c): int(n) for s, c, n in counts.select("SITEID", "CRITERION", "N").iter_rows() if s in shown}
    svg = charts.heatmap(shown, criteria, cells, "Open findings per site and criterion") if criteria else None
    return {"svg": svg, "sites_shown": len(shown), "sites_total": len(ranked)}


def _site_bars(sites: pl.DataFrame) -> Any:
    top = sites.sort(["SCREENED", "SITEID"], descending=[True, False]).head(BAR_SITES)
    bars = [charts.Bar(str(r["SITEID"]), (float(r["SCREENED"]), float(r["ENROLLED"])),
                       f"{r['ENROLLED']}/{r['SCREENED']} enrolled · {r['IMPORTANT']} imp. · {r['QUERIES']} q.")
            for r in top.iter_rows(named=True)]
    if not bars:
        return None
    return charts.hbars(bars, [charts.PALETTE["screened"], charts.PALETTE["enrolled"]], ["screened", "enrolled"],
                        "Subjects screened and enrolled per site", overlay=True)


def _criterion_bars(outputs: RunOutputs) -> Any:
    per = criterion_counts(outputs).head(25)
    bars = [charts.Bar(str(r["CRITERION"]), (float(r["IMPORTANT"]), float(r["QUERY"])), str(r["N"]))
            for r in per.iter_rows(named=True)]
    if not bars:
        return None
    return charts.hbars(bars, [charts.PALETTE["important"], charts.PALETTE["query"]], ["important", "query"],
                        "Open findings per criterion", plot=260)


def _funnels(risk: pl.DataFrame) -> list[dict[str, Any]]:
    indicators, limits = load_indicators()
    panels = []
    for ind in indicators:
        part = risk.filter(pl.col("INDICATOR") == ind.id)
        if part.height == 0:
            continue
        p0 = float(part["STUDY_RATE"][0] or 0.0) / ind.scale
        n_max = max(float(part["DENOMINATOR"].max() or 0.0), 1.0)
        samples = []
        for z in (limits.amber, limits.red):
            for k in range(1, 41):
                n = n_max * k / 40
                low, high = funnel_limits(p0, n, z, ind.model)
                samples.append((n, low * ind.scale, high * ind.scale, 2.0 if z == limits.amber else 3.0))
        points = [charts.FunnelPoint(str(r["SITEID"]), float(r["DENOMINATOR"]), float(r["RATE"]), int(r["FLAG"]))
                  for r in part.filter(pl.col("DENOMINATOR") > 0).iter_rows(named=True)]
        flagged = part.filter(pl.col("FLAG") != 0).sort(pl.col("Z").abs(), descending=True)
        panels.append({
            "label": ind.label, "unit": ind.unit, "study_rate": p0 * ind.scale,
            "svg": charts.funnel(points, p0 * ind.scale, samples, ind.label, "denominator (per site)", "rate"),
            "flagged": flagged.select("SITEID", "NUMERATOR", "DENOMINATOR", "RATE", "Z", "FLAG", "NOTE")
            .rows(named=True),
            "noted": flagged["NOTE"].drop_nulls().len() > 0,
        })
    return panels


def _trend(outputs: RunOutputs, trend: pl.DataFrame | None) -> Any:
    tonight = finding_counts(outputs.discrepancies, outputs.as_of.isoformat())
    runs = pl.concat([trend, tonight], how="vertical_relaxed") if trend is not None and trend.height else tonight
    runs = runs.tail(TREND_RUNS)
    if runs.height < 2:
        return None
    return charts.columns(
        [d[5:] for d in runs["AS_OF"].to_list()],
        [(float(i), float(q)) for i, q in runs.select("IMPORTANT", "QUERY").iter_rows()],
        [charts.PALETTE["important"], charts.PALETTE["query"]], ["important", "query"],
        "Open findings per run", notes=[f"+{n}" for n in runs["NEW"].to_list()],
    )


def key_points(outputs: RunOutputs, head: Headline, risk: pl.DataFrame) -> list[str]:
    """The few sentences a data manager should read first; each from the data, none when all is well."""
    points: list[str] = []
    disc = outputs.discrepancies
    new_important = important_deviations(disc).filter(pl.col("STATUS") == FindingStatus.NEW)
    if new_important.height:
        subjects = new_important["USUBJID"].drop_nulls().unique().sort().to_list()
        shown = ", ".join(subjects[:5]) + (f" and {len(subjects) - 5} more" if len(subjects) > 5 else "")
        points.append(f"{new_important.height} new important deviation(s) tonight, for {shown}.")
    manifest = outputs.run_manifest
    for item in manifest.get("sites_not_audited") or []:
        points.append(f"Site {item['site']} was not audited: {item['reason']}.")
    rejected = [d for d in manifest.get("deliveries") or [] if d["status"] == "REJECTED"]
    if rejected:
        sites = sorted({d["site"] for d in rejected})
        points.append(f"{len(rejected)} deliver{'y was' if len(rejected) == 1 else 'ies were'} rejected "
                      f"(site {', '.join(sites)}); see below for the reasons.")
    unbalanced = [r["DOMAIN"] for r in manifest.get("reconciliation") or [] if not r["BALANCED"]]
    if unbalanced:
        points.append(f"Rows do not reconcile for {', '.join(unbalanced)}: rows went missing between stages; "
                      "examine the run before relying on it.")
    red = risk.filter(pl.col("FLAG").abs() >= 2).sort(pl.col("Z").abs(), descending=True)
    for row in red.head(5).iter_rows(named=True):
        side = "above" if row["FLAG"] > 0 else "below"
        older = f"; {row['NOTE']}" if row["NOTE"] else ""
        points.append(f"Site {row['SITEID']}: {row['LABEL'].lower()} {row['RATE']:.3g} is far {side} the study's "
                      f"{row['STUDY_RATE']:.3g} (z = {row['Z']:.1f}){older}.")
    review = outputs.review
    if review is not None and not review.verified:
        problems = review.ledger.get("problems") or []
        points.append(f"The review ledger fails verification ({problems[0] if problems else 'see the manifest'}"
                      f"{f'; {len(problems) - 1} more problem(s)' if len(problems) > 1 else ''}): review states "
                      "are not shown tonight and nothing was written to it.")
    if review is not None and review.reopened.height:
        points.append(f"{review.reopened.height} finding(s) reopened since the last run; see Review.")
    live = current(disc).filter(pl.col("DAYS_OPEN").is_not_null()).sort("DAYS_OPEN", descending=True)
    if live.height and (live["DAYS_OPEN"][0] or 0) >= 14:
        old = live.filter(pl.col("DAYS_OPEN") >= 14).height
        points.append(f"{old} finding(s) open for 14 days or more (longest {live['DAYS_OPEN'][0]} days).")
    return points


def _review_context(outputs: RunOutputs) -> dict[str, Any]:
    """The first screen's review part: the ledger's status, the backlog, tonight's reopenings, the
    findings judged not a deviation and the workbooks applied (reporting.review_summary)."""
    reviewed = reviewed_findings(outputs)  # once for the backlog and the findings listed apart
    backlog = review_backlog(outputs, reviewed)
    ledger = (outputs.review.ledger if outputs.review is not None else {}) or {}
    receipts = outputs.review.receipts if outputs.review is not None else []
    return {
        "ran": outputs.review is not None,
        "status": ledger.get("status", ""),
        "entries": ledger.get("entries", 0),
        "problems": ledger.get("problems") or [],
        "read_only": bool(ledger.get("read_only")),
        "open": int(backlog["N"].sum()) if backlog.height else 0,
        "by_state": _rows(backlog_by_state_and_age(backlog), 50),
        "by_site": _rows(backlog_by_site(backlog), 25),
        "reopened": _rows(reopened_tonight(outputs)),
        "apart": _rows(listed_apart(outputs, reviewed)),
        "workbooks": [receipt_line(r) for r in receipts],
    }


def receipt_line(receipt: dict) -> str:
    """One returned workbook as the report lists it: rows and findings counted apart, as the command's receipt
    line does (review.imports.Receipt.line): a site's answer to a consolidated query is recorded for each of its
    findings, so "9 row(s) applied" for 4 answered rows was wrong."""
    def counted(entries: list[dict]) -> str:
        rows, findings = rows_and_findings(entries)
        return f"{rows} row(s)" + ("" if rows == findings else f" ({findings} findings)")

    return (f"{receipt.get('workbook')}: {receipt.get('status', '').replace('_', ' ').lower()}, "
            f"{counted(receipt.get('applied') or [])} applied, {counted(receipt.get('refused') or [])} refused"
            + (f" ({receipt.get('reason')})" if receipt.get("reason") else ""))


def build_context(outputs: RunOutputs, risk: pl.DataFrame, links: dict[str, str],
                  previous_run: str | None = None, trend: pl.DataFrame | None = None,
                  protocol_change: str | None = None) -> dict[str, Any]:
    """Everything report.html.j2 shows, as plain values (`previous_run`: as-of date compared with;
    `trend`: finding counts of earlier runs, from history.run_trend; `protocol_change`: what changed in the
    protocol since, reporting.manifest.protocol_change)."""
    head: Headline = headline(outputs)
    sites = site_table(outputs, risk)
    disc = outputs.discrepancies
    now = current(disc)
    important = _listing(important_deviations(disc),
                         ["STATUS", "DAYS_OPEN", "FIRST_SEEN", "SITEID", "USUBJID", "CHECK_ID", "CLASS", "EVIDENCE",
                          "CARRIED"])
    queries = _listing(now.filter(pl.col("SEVERITY") == Severity.QUERY),
                       ["STATUS", "DAYS_OPEN", "FIRST_SEEN", "SITEID", "USUBJID", "CHECK_ID", "CLASS",
                        "SITE_ASSESSMENT", "RECOMPUTED", "EVIDENCE", "CARRIED"])
    resolved = _listing(disc.filter(pl.col("STATUS") == FindingStatus.RESOLVED),
                        ["SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "FIRST_SEEN", "RESOLVED_ON",
                         "DAYS_OPEN"])
    new = _listing(disc.filter(pl.col("STATUS") == FindingStatus.NEW),
                   ["SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "EVIDENCE"])
    oldest = now.sort(["DAYS_OPEN", "SITEID", "USUBJID"], descending=[True, False, False], nulls_last=True)
    data_quality = (outputs.validation.group_by("SITEID", "DOMAIN", "VARIABLE", "EXPECTATION")
                    .agg(pl.len().alias("ROWS"), pl.col("MESSAGE").drop_nulls().first().alias("EXAMPLE"))
                    .sort(["ROWS", "SITEID", "DOMAIN", "VARIABLE"], descending=[True, False, False, False],
                          nulls_last=True))
    status_by_site = sites.select("SITEID", "NEW", "RESOLVED", "IMPORTANT", "QUERIES")
    carried = now.height - evaluated_tonight(now).height
    manifest = outputs.run_manifest
    return {
        "review": _review_context(outputs),
        "head": head,
        "key_points": key_points(outputs, head, risk),
        "manifest": manifest,
        "generated_at": manifest.get("generated_at"),
        "software_version": manifest.get("software_version", ""),
        "links": links,
        "sites": _rows(sites, 500),
        "versions": _rows(version_table(outputs), 100),
        "site_bars": _site_bars(sites),
        "heatmap": _heatmap(outputs, sites),
        "criterion_bars": _criterion_bars(outputs),
        "funnels": _funnels(risk),
        "important": _rows(important),
        "queries": _rows(queries),
        "new": _rows(new),
        "resolved": _rows(resolved),
        "resolved_quality": _rows(resolved_quality(outputs.validation_resolved), 100),
        "oldest": _rows(oldest.select([c for c in ["DAYS_OPEN", "FIRST_SEEN", "SITEID", "USUBJID", "CHECK_ID",
                                                   "CLASS", "SEVERITY"] if c in oldest.columns]), 20),
        "status_by_site": _rows(status_by_site, 500),
        "carried": carried,
        "not_audited": _rows(not_audited_table(manifest), 500),
        "data_quality": _rows(data_quality, 50),
        "reconciliation": _rows(reconciliation_table(manifest), 100),
        "top_rows": TOP_ROWS,
        "wrap_columns": WRAP_COLUMNS,
        "bar_sites": BAR_SITES,
        "previous_run": previous_run,
        "protocol_change": protocol_change,
        "trend": _trend(outputs, trend),
        "trend_runs": TREND_RUNS,
    }


def render_report(outputs: RunOutputs, risk: pl.DataFrame, links: dict[str, str],
                  previous_run: str | None = None, trend: pl.DataFrame | None = None,
                  protocol_change: str | None = None) -> str:
    """The report as HTML text."""
    context = build_context(outputs, risk, links, previous_run, trend, protocol_change)
    return _env().get_template("report.html.j2").render(**context)


#: the look of report.html, for the other pages of a run (reporting.whatif)
template_environment = _env
table_rows = _rows
