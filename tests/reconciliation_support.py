"""The reconciliation checks shared by the end-to-end tests: rows received = rows accounted for, and every
delivered subject and every evaluated subject x component comes out again."""

from __future__ import annotations

import json
from collections import Counter

import polars as pl

from contracts.protocol import load_protocol
from storage import Store


def assert_reconciliation_balances(manifest: dict) -> list[dict]:
    """Every domain's row of run_manifest.json balances; the rows, for further checks."""
    reconciliation = manifest["reconciliation"]
    rows = reconciliation if isinstance(reconciliation, list) else list(reconciliation.values())
    assert len(rows) >= 11
    for row in rows:
        assert row["RECEIVED"] == row["VALIDATED"] == row["EVALUATED"] + row["REJECTED"], row
        assert row["BALANCED"] is True
    return rows


def delivered_subjects(truth: dict, landing: Store) -> dict[str, int]:
    """Subjects per site in the delivery the audit must use, by the generator's own counts.

    A site whose newest delivery is audited delivered the subjects the generator drew for it, less the
    subjects whose DM row it planted as missing (`orphan_subject`: their lab rows came without them). A
    site audited on an older delivery (its newest was rejected) delivered the DM rows the generator
    listed in that delivery's manifest. A site without a usable delivery delivered none that count.
    """
    study = truth["study"]
    orphans = Counter(p["site"] for p in truth["problems"] if p["kind"] == "orphan_subject")
    expected = {}
    for site in truth["sites"]:
        delivery = site["audited_delivery"]
        if delivery is None:
            continue
        if delivery == site["deliveries"][-1]:
            expected[site["site"]] = site["subjects"] - orphans[site["site"]]
        else:
            manifest = json.loads(landing.read_bytes(f"{study}/{site['site']}/{delivery}/manifest.json"))
            expected[site["site"]] = sum(f["rows"] for f in manifest["files"] if f["name"].split(".")[0] == "dm")
    return expected


def assert_rows_out(truth: dict, landing: Store, subjects: pl.DataFrame, eligibility: pl.DataFrame,
                    manifest: dict) -> None:
    """Rows out: every delivered subject is in `subjects` (once), and every subject x component of the
    protocol is in `eligibility` (once), against the generator's counts."""
    got = dict(subjects.group_by("SITEID").len().iter_rows())
    assert got == delivered_subjects(truth, landing)
    assert subjects["USUBJID"].n_unique() == subjects.height
    components = {component.id for _criterion, component in load_protocol(None).components()}
    assert eligibility.height == subjects.height * len(components)
    pairs = eligibility.select("USUBJID", "CHECK_ID").unique()
    assert pairs.height == eligibility.height  # one row per subject x component
    assert set(pairs["CHECK_ID"].unique().to_list()) == components
    assert set(eligibility["USUBJID"].unique().to_list()) == set(subjects["USUBJID"].to_list())
    assert manifest["totals"]["subjects"] == subjects.height
