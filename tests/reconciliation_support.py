"""The reconciliation check shared by the end-to-end tests: rows received = rows accounted for."""

from __future__ import annotations


def assert_reconciliation_balances(manifest: dict) -> list[dict]:
    """Every domain's row of run_manifest.json balances; the rows, for further checks."""
    reconciliation = manifest["reconciliation"]
    rows = reconciliation if isinstance(reconciliation, list) else list(reconciliation.values())
    assert len(rows) >= 11
    for row in rows:
        assert row["RECEIVED"] == row["VALIDATED"] == row["EVALUATED"] + row["REJECTED"], row
        assert row["BALANCED"] is True
    return rows
