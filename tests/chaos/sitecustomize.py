"""Test-only: arm a chaos kill point in `screening-audit` processes started by tests/test_chaos_*.py.

Python imports `sitecustomize` at start-up from the first folder of `sys.path` that has one; the chaos
tests put this folder first on PYTHONPATH of the CLI they start, and nowhere else. Nothing happens
unless SCREENING_AUDIT_CHAOS_KILL_AT names a point and the process is the `screening-audit` command
itself (not Prefect's API server or a Dask worker it starts). See chaos_points.py.
"""

import os
import sys

if os.environ.get("SCREENING_AUDIT_CHAOS_KILL_AT") and os.path.basename(sys.argv[0] if sys.argv else "") == \
        "screening-audit":
    import chaos_points

    chaos_points.arm(os.environ["SCREENING_AUDIT_CHAOS_KILL_AT"])
