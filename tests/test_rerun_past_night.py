"""Re-running a past night audits what that night audited, through the nightly flow on a local folder.

A user trial: a site's next delivery was stamped within the first night's as-of date but uploaded after that
night ran; re-running the first night (after the second was published) audited it, replaced the night's
site queries and changed the history of the later night. The re-run now considers only the sites and delivery
folders the night's published run manifest lists (ingestion.window).
"""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from generator import generate
from storage import LocalStore

STUDY = "SZ003"
NIGHTS = [date(2026, 11, 28), date(2026, 11, 29)]
TABLES = ("subjects", "eligibility", "discrepancies", "validation")
LATE = "20261128T120000Z"  # stamped within the first night's as-of date (UTC), delivered after it ran


def _night(landing: Path, reports: Path, as_of: date) -> None:
    from flows.nightly import nightly_audit

    nightly_audit(landing=str(landing), reports=str(reports), study=STUDY, as_of=as_of.isoformat(),
                  outbox=str(reports.parent / "outbox"))


def _tables(reports: LocalStore, as_of: date) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(io.BytesIO(reports.read_bytes(f"{STUDY}/{as_of.isoformat()}/{name}.parquet")))
            for name in TABLES}


def _manifest(reports: LocalStore, as_of: date) -> dict:
    return json.loads(reports.read_bytes(f"{STUDY}/{as_of.isoformat()}/run_manifest.json"))


@pytest.fixture(scope="module")
def nights(tmp_path_factory, prefect_harness) -> dict:
    root = tmp_path_factory.mktemp("rerun")
    landing, reports = root / "landing", root / "reports"
    generate(LocalStore(landing), study=STUDY, sites=2, subjects=30, seed=4, as_of=NIGHTS[0], formats="csv")
    _night(landing, reports, NIGHTS[0])
    store = LocalStore(reports)
    first, manifest = _tables(store, NIGHTS[0]), _manifest(store, NIGHTS[0])
    # a site's next delivery, the same files in a folder stamped within the first night's date: every SOURCE
    # names its folder, so the tables say which delivery a night audited
    used = next(d for d in manifest["deliveries"] if d["status"] == "USED")
    site, folder = used["site"], landing / STUDY / used["site"] / used["delivery"]
    late = landing / STUDY / site / LATE
    late.mkdir()
    for path in folder.iterdir():
        (late / path.name).write_bytes(path.read_bytes())
    manifest_json = json.loads((late / "manifest.json").read_text())
    manifest_json["delivery"] = LATE
    (late / "manifest.json").write_text(json.dumps(manifest_json))
    _night(landing, reports, NIGHTS[1])
    second = _tables(store, NIGHTS[1])
    outbox = LocalStore(root / "outbox")
    sent = sorted(o.key for o in outbox.list(STUDY) if f"/{NIGHTS[0].isoformat()}/" in o.key)
    outbox.write_bytes(sent[0], b"what the site received that night")
    _night(landing, reports, NIGHTS[0])  # the re-run of the past night
    return {"first": first, "second": second, "rerun": _tables(store, NIGHTS[0]), "site": site,
            "rerun_manifest": _manifest(store, NIGHTS[0]), "used": used["delivery"], "outbox": outbox,
            "sent": sent}


def test_the_second_night_audits_the_late_delivery(nights: dict) -> None:
    sources = nights["second"]["eligibility"].filter(pl.col("SITEID") == nights["site"])["SOURCE"].drop_nulls()
    assert sources.len() > 0 and sources.str.contains(f"/{LATE}/", literal=True).all()


def test_a_rerun_of_the_past_night_publishes_the_tables_the_night_published(nights: dict) -> None:
    for name in TABLES:
        assert nights["rerun"][name].equals(nights["first"][name]), name


def test_the_rerun_says_why_the_late_delivery_is_not_audited(nights: dict) -> None:
    decisions = {d["delivery"]: d for d in nights["rerun_manifest"]["deliveries"] if d["site"] == nights["site"]}
    assert decisions[nights["used"]]["status"] == "USED"
    assert decisions[LATE]["status"] == "AFTER_AS_OF"
    assert decisions[LATE]["reason"].startswith("not in the published night's run manifest")


def test_a_rerun_of_a_past_night_sends_the_sites_nothing_again(nights: dict) -> None:
    # a user trial: the re-run replaced the night's files in the site outbox, whose queries then quoted answers
    # given after that night
    outbox, sent = nights["outbox"], nights["sent"]
    assert sent and sorted(o.key for o in outbox.list(STUDY) if f"/{NIGHTS[0].isoformat()}/" in o.key) == sent
    assert outbox.read_bytes(sent[0]) == b"what the site received that night"


def test_a_second_rerun_still_leaves_the_late_delivery_out(tmp_path: Path) -> None:
    # the re-run's own manifest lists the late folder as AFTER_AS_OF: a later re-run must not take it as seen
    from review.runs import seen_by_past_night
    from tests.support.published import seal

    store = LocalStore(tmp_path)
    night = f"{STUDY}/{NIGHTS[0].isoformat()}"
    manifest = {"sites_audited": ["101"], "sites_not_audited": [{"site": "102", "reason": "no delivery folder"}],
                "deliveries": [{"site": "101", "delivery": "20261127T230000Z", "status": "USED"},
                               {"site": "101", "delivery": LATE, "status": "AFTER_AS_OF"}]}
    store.write_bytes(f"{night}/run_manifest.json", json.dumps(manifest).encode())
    seal(store, night)
    assert seen_by_past_night(store, STUDY, NIGHTS[0]) is None  # the latest night: the cut-off alone decides
    store.write_bytes(f"{STUDY}/{NIGHTS[1].isoformat()}/run_manifest.json", b"{}")
    seal(store, f"{STUDY}/{NIGHTS[1].isoformat()}")
    assert seen_by_past_night(store, STUDY, NIGHTS[0]) == {"101": {"20261127T230000Z": "USED"}, "102": {}}


@pytest.mark.parametrize("manifest", [
    {"sites_audited": [101], "deliveries": [{"site": "101", "delivery": "D", "status": "USED"}]},
    {"sites_audited": "101", "deliveries": [{"site": "101", "delivery": "D", "status": "USED"}]},
    {"sites_not_audited": ["102"], "deliveries": [{"site": "101", "delivery": "D", "status": "USED"}]},
    {"deliveries": [{"site": "101", "delivery": 20261127, "status": "USED"}]},
    {"deliveries": []},
    ["not", "a", "manifest"],
])
def test_a_manifest_of_a_shape_it_does_not_expect_leaves_the_cut_off_alone_to_decide(tmp_path: Path, manifest) -> None:
    # helper-28: a number among the sites raised, a string was read as its characters, a site dropped silently
    from review.runs import seen_by_past_night
    from tests.support.published import seal

    store = LocalStore(tmp_path)
    for night, body in ((NIGHTS[0], manifest), (NIGHTS[1], {})):
        store.write_bytes(f"{STUDY}/{night.isoformat()}/run_manifest.json", json.dumps(body).encode())
        seal(store, f"{STUDY}/{night.isoformat()}")
    assert seen_by_past_night(store, STUDY, NIGHTS[0]) is None
