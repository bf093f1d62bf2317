"""Time the publication of a synthetic run at scale: `python -m benchmarks.bench_publication [subjects] [sites]`.

Prints the seconds each output family takes and the size of report.html, so a change that makes the
report slow or unreadable at 10,000 subjects shows up in numbers (not in a timed test). Then the
product's own path: the same outputs written into a staging prefix through `StagingWriter` (sha256 of
every object), sealed, and promoted through the journal, with the cost of crash safety as a ratio to
the plain write of the same files (`publish`), and the cost of `is_complete` (what every reader of an
earlier night pays).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from datetime import date

from publication import StagingWriter, check_complete, is_complete, promote, staging_prefix
from reporting.history import apply_history
from reporting.publish import publish, render_outputs
from storage import LocalStore
from tests.support.published import seal
from tests.support.sample_outputs import make_outputs


def crash_safe_path(store, outputs, plain: float, as_of: date) -> None:
    """Staged (sha256 of every object) + sealed, promoted through the journal, checked: seconds and ratios."""
    staging = staging_prefix("SZ003", as_of, "bench-run")
    final = f"SZ003/{as_of.isoformat()}"
    t = time.perf_counter()
    writer = StagingWriter(store, staging)
    publish(replace(outputs, as_of=as_of), writer, staging)
    writer.seal(study="SZ003", as_of=as_of.isoformat(), run_id="bench-run")
    staged = time.perf_counter() - t
    t = time.perf_counter()
    promote(store, staging, final, study="SZ003")
    promoted = time.perf_counter() - t
    print(f"  staged + sealed ({len(writer.written)} objects, sha256 of each): {staged:.2f} s "
          f"({staged / plain:.2f} x the plain publish)")
    print(f"  promote (journal, copies, marker last): {promoted:.2f} s ({promoted / plain:.2f} x the plain publish)")
    t = time.perf_counter()
    assert is_complete(store, final)
    print(f"  is_complete (marker + listing): {time.perf_counter() - t:.3f} s")
    t = time.perf_counter()
    assert check_complete(store, final, deep=True) == []
    print(f"  check_complete deep (every sha256): {time.perf_counter() - t:.2f} s")


def on_s3(outputs) -> None:
    """The same on S3 (a moto server on loopback): plain publish, then the crash-safe path."""
    from storage import S3Store
    from storage.local_endpoint import local_s3_endpoint

    with local_s3_endpoint(("bench-reports",)) as url:
        store = S3Store("s3://bench-reports/audit", endpoint_url=url)
        t = time.perf_counter()
        publish(outputs, store, "SZ003/2026-11-28")
        plain = time.perf_counter() - t
        print(f"S3 (moto): publish (render + write): {plain:.2f} s")
        crash_safe_path(store, outputs, plain, date(2026, 11, 29))


def main(n_subjects: int = 10_000, n_sites: int = 40) -> None:
    started = time.perf_counter()
    outputs = make_outputs(n_subjects=n_subjects, n_sites=n_sites, as_of=date(2026, 11, 28))
    print(f"sample run: {n_subjects} subjects, {outputs.eligibility.height} eligibility rows, "
          f"{outputs.discrepancies.height} discrepancies ({time.perf_counter() - started:.2f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(tmp)
        t = time.perf_counter()
        first = make_outputs(n_subjects=n_subjects, n_sites=n_sites, as_of=date(2026, 11, 27), night=1)
        publish(replace(first, discrepancies=apply_history(first.discrepancies, store, study="SZ003",
                                                           as_of=date(2026, 11, 27))), store, "SZ003/2026-11-27")
        seal(store, "SZ003/2026-11-27")  # a published night, so that night 2's history reads it
        print(f"night 1 published: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        history = apply_history(outputs.discrepancies, store, study="SZ003", as_of=date(2026, 11, 28))
        print(f"apply_history: {time.perf_counter() - t:.2f} s")
        outputs = replace(outputs, discrepancies=history)
        t = time.perf_counter()
        files = render_outputs(outputs)
        print(f"render_outputs: {time.perf_counter() - t:.2f} s")
        for item in files:
            if "/" not in item.key:
                print(f"  {item.key:24s} {len(item.data) / 1e6:8.2f} MB")
        print(f"  site_queries: {sum(1 for f in files if f.key.startswith('site_queries/'))} files")
        t = time.perf_counter()
        publish(outputs, store, "SZ003/2026-11-28")
        plain = time.perf_counter() - t
        print(f"publish (render + write): {plain:.2f} s")

        print("local folder:")
        crash_safe_path(store, outputs, plain, date(2026, 11, 29))
    on_s3(outputs)

if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
