"""The chaos test itself, run by tests/test_chaos_local.py and tests/test_chaos_s3.py against their store.

For each kill point (tests/chaos/chaos_points.py, at least ten across ingestion, validation,
evaluation, publication and promotion) the installed `screening-audit run` is started on the same
reports location and SIGKILLs itself at that point; then the checks of tests/support/chaos.py, and an
immediate rerun that must exit 0 with tables byte-identical to an undisturbed run of the same night.
The points run in order on one reports location, so from the second point on the killed run replaces
a night that is already published (a rerun's promotion), which is where "never a mix" matters most.

How many points: each costs two CLI runs (30 to 80 s on a busy 2-CPU machine), and `make test` (CI) has
to stay well under 20 minutes. So by default each store runs a subset that still kills at least once in
every stage and twelve times in all (`chosen`); `SCREENING_AUDIT_CHAOS_POINTS=all` (`make chaos`) runs
every point on the local folder and the nine of the S3 file.
"""

from __future__ import annotations

import os

from tests.chaos.chaos_points import POINTS
from tests.support.chaos import (
    STUDY,
    Audit,
    assert_killed,
    assert_no_partial_night,
    assert_nothing_left,
    assert_rerun_recovers,
)

#: What the published night looks like right after a kill at each point:
#: "untouched" (exactly as before the killed run), "unpublished" (a promotion in flight: no marker),
#: "new" (the killed run's complete set, its clean-up was all that was left).
AFTER_KILL = {point: "untouched" for point in POINTS} | {
    "promotion:copy": "unpublished", "promotion:marker": "new", "promotion:cleanup": "new",
}
#: What the rerun's manifest lists under "recovery" besides the lease it took over.
RECOVERED = {point: "nothing" for point in POINTS} | {
    "publication:staging-write": "staging", "publication:staging-sealed": "staging",
    "promotion:journal": "promotion", "promotion:copy": "promotion", "promotion:marker": "promotion",
    "promotion:cleanup": "staging",
}


#: the environment variable that selects the full set of kill points
ALL_POINTS = "SCREENING_AUDIT_CHAOS_POINTS"


def chosen(default: list[str], full: list[str]) -> list[str]:
    """The kill points a chaos file runs: `full` with SCREENING_AUDIT_CHAOS_POINTS=all, else `default`."""
    assert set(default) <= set(full) <= set(POINTS)
    return list(full) if os.environ.get(ALL_POINTS) == "all" else list(default)


def _folder(store, prefix: str) -> dict[str, bytes]:
    return {obj.key: store.read_bytes(obj.key) for obj in store.list(prefix)}


def kill_then_rerun(store, audit: Audit, reference: dict[str, bytes], point: str) -> dict:
    """The whole chaos case for one point; returns the rerun's recovery section."""
    prefix = f"{STUDY}/{audit.as_of}"
    before = _folder(store, prefix)

    killed, tag = audit.run(kill_at=point)
    assert_killed(killed, point)
    assert_nothing_left(tag)
    states = assert_no_partial_night(store, reference)
    expected = AFTER_KILL[point]
    if expected == "untouched":
        assert _folder(store, prefix) == before, f"a kill at {point} changed the published night"
    elif expected == "unpublished":
        assert states.get(audit.as_of) == "not published"
    else:
        assert states.get(audit.as_of) == "complete"

    rerun, rerun_tag = audit.run()
    recovery = assert_rerun_recovers(store, rerun, audit.as_of, reference)
    assert_nothing_left(rerun_tag)
    assert "has ended" in (recovery["lease_taken_over"] or ""), recovery
    what = RECOVERED[point]
    assert (recovery["promotion_completed"] or "").startswith(f"{prefix} from run ") == (what == "promotion"), recovery
    assert len(recovery["staging_removed"]) == (1 if what == "staging" else 0), recovery
    return recovery
