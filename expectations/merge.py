"""One domain's validation from the parts that partitions of the study ran (scale-out).

Each partition validates its own sites' rows (flows/partition.py); the findings, exclusions and
rejected rows are per row, so the study's are the parts' stacked. What is per run is merged here:
the suites as run (the same for every part, since every partition has the study's columns), the rows
validated (summed) and Great Expectations' result document, so that the Data Docs still show one
validation per domain: the counts summed and their percentages recomputed, the unexpected-row samples
concatenated and cut to the sample size, success only when every part succeeded.
"""

from __future__ import annotations

import copy

from contracts.records import DomainValidation
from core.stack import stack_frames
from expectations.gx_run import SAMPLE_ROWS

_COUNTS = ("element_count", "unexpected_count", "missing_count")
_SAMPLES = ("partial_unexpected_index_list", "unexpected_index_list")


def merge_parts(parts: list[DomainValidation]) -> list[DomainValidation]:
    """One DomainValidation per domain (in first-seen order) from the parts of every partition."""
    by_domain: dict[str, list[DomainValidation]] = {}
    for part in parts:
        by_domain.setdefault(part.domain, []).append(part)
    return [_merge_domain(group) for group in by_domain.values()]


def _merge_domain(parts: list[DomainValidation]) -> DomainValidation:
    if len(parts) == 1:
        return parts[0]
    ran = [p for p in parts if p.gx_result is not None]
    first = (ran or parts)[0]
    return DomainValidation(
        domain=first.domain, study=first.study,
        findings=stack_frames([p.findings for p in parts]),
        exclusions=stack_frames([p.exclusions for p in parts]),
        rejected=stack_frames([p.rejected for p in parts]),
        expectations=first.expectations, rows=sum(p.rows for p in parts),
        gx_result=merge_gx_results([p.gx_result for p in ran]) if ran else None, gx_suite=first.gx_suite)


def merge_gx_results(documents: list[dict]) -> dict:
    """GE validation result documents of one suite over disjoint rows, as one document over all of them."""
    merged = copy.deepcopy(documents[0])
    for other in documents[1:]:
        if len(other["results"]) != len(merged["results"]):
            raise ValueError(f"suite {merged.get('suite_name')}: parts ran different expectations")
        for into, item in zip(merged["results"], other["results"], strict=True):
            into["success"] = bool(into["success"]) and bool(item["success"])
            result, more = into.setdefault("result", {}), item.get("result") or {}
            for key in _COUNTS:
                if key in result or key in more:
                    result[key] = int(result.get(key) or 0) + int(more.get(key) or 0)
            for key in _SAMPLES:
                if key in result or key in more:
                    result[key] = _joined_sample(result.get(key) or [], more.get(key) or [])
    for item in merged["results"]:
        _percentages(item.get("result") or {})
    statistics = merged.setdefault("statistics", {})
    evaluated = len(merged["results"])
    successful = sum(bool(item["success"]) for item in merged["results"])
    statistics.update(evaluated_expectations=evaluated, successful_expectations=successful,
                      unsuccessful_expectations=evaluated - successful,
                      success_percent=100.0 * successful / evaluated if evaluated else None)
    merged["success"] = successful == evaluated
    return merged


def _joined_sample(left: list[dict], right: list[dict]) -> list[dict]:
    """The unexpected rows' SOURCE samples of two parts as one, cut to the sample size."""
    sources = [s for entry in (*left, *right) for s in entry.get("SOURCE", [])]
    return [{"SOURCE": sources[:SAMPLE_ROWS]}] if sources else []


def _percentages(result: dict) -> None:
    if "element_count" not in result:
        return
    elements, missing = result["element_count"], result.get("missing_count") or 0
    unexpected = result.get("unexpected_count") or 0
    present = elements - missing
    if "missing_percent" in result:
        result["missing_percent"] = 100.0 * missing / elements if elements else None
    for key, base in (("unexpected_percent", present), ("unexpected_percent_nonmissing", present),
                      ("unexpected_percent_total", elements)):
        if key in result:
            result[key] = 100.0 * unexpected / base if base else None
