"""What-if outputs: whatif.html (one offline page) and whatif.xlsx (every table) from a WhatIfResult.

Written next to the nightly outputs, under `<reports root>/<STUDYID>/whatif/<AS_OF>/<draft version>/`
(never inside a night's `<STUDYID>/<AS_OF>/` folder, which a re-run of that night replaces whole; the
history reader ignores folders not named as a date). The tables are sorted and text cells neutralised
like the night's, so the same data and draft give the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from contracts.enums import WhatIfChange
from contracts.records import WhatIfResult
from reporting.html import WRAP_COLUMNS, table_rows, template_environment
from reporting.publish import CSV, HTML, XLSX, OutputFile, site_file_name
from reporting.tables import csv_bytes
from reporting.workbook import workbook_bytes
from storage import Store
from storage.keys import join_key

TOP_ROWS = 500


@dataclass(frozen=True)
class WhatIfFiles:
    prefix: str  # relative to the reports root
    files: list[OutputFile]


def whatif_prefix(result: WhatIfResult, draft_version: str) -> str:
    """`<STUDYID>/whatif/<AS_OF>/<draft version>` (the version made safe as a folder name)."""
    return f"{site_file_name(result.study)}/whatif/{result.as_of.isoformat()}/{site_file_name(draft_version)}"


def _counts(result: WhatIfResult) -> dict[str, int]:
    per = dict(result.changes.group_by("CHANGE").len().iter_rows()) if result.changes.height else {}
    return {change.value: int(per.get(change.value, 0)) for change in WhatIfChange}


def _change(result: WhatIfResult, change: WhatIfChange) -> pl.DataFrame:
    return result.changes.filter(pl.col("CHANGE") == change.value).drop("STUDYID", "CHANGE")


def render_whatif(result: WhatIfResult, generated_at: str | None = None) -> list[OutputFile]:
    """whatif.html, whatif.xlsx and changes.csv (the subjects whose outcome changes)."""
    counts = _counts(result)
    html = template_environment().get_template("whatif.html.j2").render(
        result=result, as_of=result.as_of.isoformat(), counts=counts, generated_at=generated_at,
        unverifiable_subjects=result.unverifiable["USUBJID"].n_unique(),
        by_site=table_rows(result.by_site, TOP_ROWS),
        eligible=table_rows(_change(result, WhatIfChange.WOULD_BE_ELIGIBLE), TOP_ROWS),
        ineligible=table_rows(_change(result, WhatIfChange.WOULD_BE_INELIGIBLE), TOP_ROWS),
        unverifiable=table_rows(result.unverifiable.drop("STUDYID"), TOP_ROWS),
        all_changes=table_rows(result.changes.drop("STUDYID"), TOP_ROWS), wrap_columns=(*WRAP_COLUMNS, "CRITERIA"),
    )
    summary = pl.DataFrame({
        "ITEM": [*["WARNING"] * len(result.warnings), "STUDY", "AS OF", "PROTOCOL IN FORCE", "DRAFT",
                 "SUBJECTS SCREENED", *[c.replace("_", " ") for c in counts], "SUBJECTS WITH NEW UNVERIFIABLE RESULTS"],
        "VALUE": [*result.warnings, result.study, result.as_of.isoformat(), result.baseline, result.draft,
                  str(result.subjects), *[str(n) for n in counts.values()],
                  str(result.unverifiable["USUBJID"].n_unique())],
    })
    sheets = [("Summary", summary), ("By criterion and site", result.by_site), ("Changes", result.changes),
              ("Criteria", result.criteria), ("New unverifiable", result.unverifiable)]
    title = f"What-if {result.draft} for {result.study} as of {result.as_of.isoformat()}"
    return [
        OutputFile("whatif.html", html.encode("utf-8"), HTML),
        OutputFile("whatif.xlsx", workbook_bytes(sheets, result.as_of, title), XLSX),
        OutputFile("changes.csv", csv_bytes(result.changes), CSV),
    ]


def publish_whatif(result: WhatIfResult, store: Store, draft_version: str) -> WhatIfFiles:
    """Write the what-if files under `whatif_prefix`; returns where and what."""
    prefix = whatif_prefix(result, draft_version)
    files = render_whatif(result, datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    for item in files:
        store.write_bytes(join_key(prefix, item.key), item.data, item.content_type)
    return WhatIfFiles(prefix=prefix, files=files)
