"""Data Docs: built locally from the GE documents of a run, then uploaded to any `storage.Store`.

GE 1.x cannot write a Data Docs site to S3 through our Store (and its own S3 site backend would
bypass our encryption and key rules), so the site is built in a throw-away file context under a
folder of the caller's own machine from the suites and results that `validate_domain` returned as
data (it may have run on a worker sharing no disk with the caller), and `publish_data_docs` uploads
the folder with the right content types.
"""

from __future__ import annotations

import copy
import mimetypes
import shutil
from pathlib import Path

from storage import Store, join_key

#: content types of the files a Data Docs site contains (mimetypes misses some on minimal systems)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".map": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".otf": "font/otf",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def build_data_docs(parts: list, workdir: Path) -> Path | None:
    """Build the site under workdir/data_docs from the parts' GE suites and results (JSON data); its folder.

    `workdir` is a folder of the calling process's machine: the site is built there, never on a worker.
    """
    saved = [p for p in parts if p.gx_suite is not None and p.gx_result is not None]
    if not saved:
        return None
    from expectations.gx_run import _LOCK, _gx

    gx = _gx()
    from great_expectations.core.expectation_validation_result import expectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    project, site = workdir / "gx_project", (workdir / "data_docs").resolve()
    shutil.rmtree(project, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    project.mkdir(parents=True)
    with _LOCK:
        context = gx.get_context(mode="file", project_root_dir=str(project))
        context.update_data_docs_site("local_site", {
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        for part in saved:
            # copies: GE's loaders consume what they are given, and the parts may be read again
            suite_doc, result_doc = copy.deepcopy(part.gx_suite), copy.deepcopy(part.gx_result)
            context.suites.add(gx.ExpectationSuite(**suite_doc))
            result = expectationSuiteValidationResultSchema.load(result_doc)
            meta = result_doc.get("meta") or {}
            run_time = meta.get("validation_time") or meta.get("batch_markers", {}).get("ge_load_time")
            run_id = RunIdentifier(run_name=part.study, run_time=run_time)
            result.meta["run_id"] = run_id
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_doc["name"]),
                run_id=run_id, batch_identifier=part.domain)
            context.validation_results_store.set(key, result)
        context.build_data_docs(site_names=["local_site"])
    return site


def publish_data_docs(local_dir: Path, store: Store, prefix: str) -> list[str]:
    """Upload every file of a built Data Docs folder under `prefix`; the keys written, sorted."""
    local_dir = Path(local_dir)
    keys = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        key = join_key(prefix, path.relative_to(local_dir).as_posix())
        store.write_file(key, path, content_type=content_type(path))
        keys.append(key)
    return keys
