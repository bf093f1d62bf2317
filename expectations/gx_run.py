"""Running one suite over one prepared frame with Great Expectations 1.x (the only GE import site).

Each call uses its own ephemeral context, so domains can be validated in parallel threads or Dask
workers; GE keeps some process-wide state (the current project), so the GE part of a call holds a
lock while the polars preparation around it runs concurrently. The batch is validated directly
(a v1 `Validator` over the batch definition), which skips GE's results store: the result is written
by us, once, with the unexpected-row lists cut to a sample so that Data Docs stay small.

The suite and its result come back as JSON documents (plain dicts), never as files: a suite may run
on a Dask worker that shares no disk with the flow, which builds the Data Docs from the documents
(expectations/docs.py). With the sample cut, a document is a few kB per expectation.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass

import polars as pl

from expectations.model import Check

_LOCK = threading.Lock()
#: rows of each failing expectation kept in the returned result (and shown in Data Docs)
SAMPLE_ROWS = 20


@dataclass(frozen=True)
class SuiteRun:
    """What one suite run produced: failing rows per check id and GE's documents, as JSON data."""

    failures: dict[str, list[str]]  # check id -> SOURCE of every failing row
    unexpected_counts: dict[str, int]
    result: dict  # the GE validation result (JSON document, unexpected rows cut to SAMPLE_ROWS)
    suite: dict  # the GE expectation suite (JSON document)
    success: bool


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its import logs at INFO too
    import great_expectations as gx

    quiet_gx_loggers()
    return gx


def quiet_gx_loggers() -> None:
    """Great Expectations logs warnings and errors only: its INFO lines say nothing to an operator.

    Setting the `great_expectations` logger to WARNING is not enough: GE's
    `great_expectations.data_context.types.base` sets its own logger to INFO when it is imported, so
    every ephemeral context logged `Created temporary directory ... for ephemeral docs site` (11 lines a
    night, one per suite). Any GE logger given a level below WARNING is returned to inheriting it; one
    given a stricter level keeps it. Cheap (GE's few hundred loggers), so it runs after every import
    of GE, which may bring new modules and their loggers.
    """
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name.startswith("great_expectations.") and isinstance(logger, logging.Logger)
                and logging.NOTSET < logger.level < logging.WARNING):
            logger.setLevel(logging.NOTSET)


def gx_suite(name: str, checks: list[Check]):
    """The GE ExpectationSuite of the checks (meaning in `description`, check id in `meta`)."""
    gx = _gx()
    from great_expectations.expectations.registry import get_expectation_impl

    suite = gx.ExpectationSuite(name=name, meta={"generated_by": "screening-audit expectations"})
    for check in checks:
        impl = get_expectation_impl(check.expectation)
        suite.add_expectation(impl(**check.kwargs, description=check.meaning,
                                   meta={"check_id": check.id, "action": check.action.value,
                                         "variable": check.variable}))
    return suite


def to_pandas(frame: pl.DataFrame):
    """The GE batch: text as categoricals sharing one dtype, nullable booleans, SOURCE as the index.

    GE's pandas engine filters the whole frame for every metric; with Arrow-backed text each filter
    copies every string, with categoricals it copies integer codes (3-4x faster on a lab domain).
    All text columns share one category set so that column-pair equality (SITEID vs the delivery
    site) compares like with like.
    """
    import numpy as np
    import pandas as pd

    strings = [c for c, d in frame.schema.items() if d == pl.String and c != "SOURCE"]
    values = (pl.concat([frame.select(pl.col(c).alias("v")) for c in strings]).unique().drop_nulls().sort("v")
              if strings else pl.DataFrame({"v": []}, schema={"v": pl.String}))
    categories = values["v"].to_list()
    dtype, enum = pd.CategoricalDtype(categories=categories), pl.Enum(categories)
    columns = {}
    for name, kind in frame.schema.items():
        if name == "SOURCE":
            continue
        column = frame[name]
        if kind == pl.String:
            codes = column.cast(enum).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
            columns[name] = pd.Categorical.from_codes(codes, dtype=dtype)
        elif kind == pl.Boolean:
            columns[name] = pd.arrays.BooleanArray(column.fill_null(False).to_numpy(), column.is_null().to_numpy())
        else:
            columns[name] = column.cast(pl.Float64).to_numpy()
    sources = pd.Index(frame["SOURCE"].to_list(), dtype=object)
    index = pd.CategoricalIndex(pd.Categorical.from_codes(np.arange(frame.height), categories=sources),
                                name="SOURCE")
    return pd.DataFrame(columns, index=index)


def run_suite(name: str, checks: list[Check], frame: pl.DataFrame) -> SuiteRun:
    """Validate `frame` (SOURCE + the suite's columns) with the suite of `checks`; suite and result as data."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.validator.v1_validator import Validator

    if frame["SOURCE"].n_unique() != frame.height:
        raise ValueError("SOURCE must identify each row of a domain (ingestion contract)")
    data = to_pandas(frame)
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["SOURCE"],
                     "exclude_unexpected_values": True, "partial_unexpected_count": SAMPLE_ROWS}
    with _LOCK:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        suite = context.suites.add(gx_suite(name, checks))
        batch_definition = (context.data_sources.add_pandas(name).add_dataframe_asset(name)
                            .add_batch_definition_whole_dataframe("all"))
        # the validator loads (and fingerprints) the batch once; Batch.validate would load it twice
        validator = Validator(batch_definition=batch_definition, batch_parameters={"dataframe": data},
                              result_format=result_format)
        result = validator.validate_expectation_suite(suite)
        suite_json = suite.to_json_dict()
    failures: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for item in result.results:
        config = item.expectation_config
        if config is None or not config.meta:
            raise RuntimeError("a validation result without its expectation's check id")
        check_id = config.meta["check_id"]
        if item.exception_info and item.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {check_id} raised: {item.exception_info.get('exception_message')}")
        indices = item.result.get("unexpected_index_list") or []
        sources = [s for entry in indices for s in entry.get("SOURCE", [])]
        failures[check_id] = sources
        counts[check_id] = int(item.result.get("unexpected_count") or 0)
        _keep_samples(item.result, sources)
    return SuiteRun(failures=failures, unexpected_counts=counts, result=_json_document(result.to_json_dict()),
                    suite=_json_document(suite_json), success=bool(result.success))


def _keep_samples(result: dict, sources: list[str]) -> None:
    """Cut what a result says of its failing rows to SAMPLE_ROWS of them, in place: the failing rows are
    `failures`; the document is what Data Docs render, which is counts and a sample.

    Why: besides the full index list, Great Expectations returns, for a compound-key check, a "partial"
    index list of every failing row and a pandas query naming each of them. On the dirty benchmark that
    made FA's result document 7.4 MB; turning those into JSON, pickling and then deep-copying and
    serialising them again for the Data Docs was most of the Data Docs' second. The pages are the same.
    """
    sample = [{"SOURCE": sources[:SAMPLE_ROWS]}] if sources else []
    result["unexpected_index_list"] = sample
    if "partial_unexpected_index_list" in result:
        result["partial_unexpected_index_list"] = sample
    result.pop("unexpected_index_query", None)


def _json_document(document: dict) -> dict:
    """`document` as plain JSON data (what writing it to a file and reading it back gave): picklable and
    small, with GE's dates, decimals and identifiers as the strings Data Docs read."""
    return json.loads(json.dumps(document, default=str))
