"""Eligibility checks with polars: the re-evaluation of the protocol (`checks.evaluation`) and the
comparison with the site's own checklist and decision (`checks.comparison`). See docs/architecture.md."""
