"""report.html in a real headless Chromium with the network off: it renders, with its numbers.

Chromium comes from Debian's packages (`/usr/bin/chromium`); CI installs it. The proxy points at a
closed port, so any attempt to fetch something from the network would fail to load.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from reporting import apply_history, publish
from storage import LocalStore
from tests.support.published import seal
from tests.support.sample_outputs import make_outputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]

OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--proxy-server=127.0.0.1:9",
           "--proxy-bypass-list=<-loopback>"]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, *OFFLINE, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    store = LocalStore(root)
    nights = [date(2026, 11, 27), date(2026, 11, 28)]
    for night_no, night in enumerate(nights):
        outputs = make_outputs(n_subjects=120, n_sites=5, as_of=night, night=night_no)
        outputs = replace(outputs, discrepancies=apply_history(outputs.discrepancies, store, study="SZ003",
                                                               as_of=night))
        publish(outputs, store, f"SZ003/{night.isoformat()}")
        seal(store, f"SZ003/{night.isoformat()}")  # a published night: the next one's history reads it
    return root / "SZ003" / "2026-11-28" / "report.html", outputs


def test_report_needs_no_network_reference(report):
    html = report[0].read_text()
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "<svg" in html and "default-src 'none'" in html


def test_screenshot_offline(report, tmp_path):
    path, _ = report
    shot = tmp_path / "report.png"
    result = chromium(tmp_path, "--window-size=1400,2400", f"--screenshot={shot}", path.as_uri())
    assert shot.is_file(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 2400)
    assert len(data) > 50_000  # a blank page is a few kilobytes; this one has charts and tables


def test_dom_shows_headline_numbers(report, tmp_path):
    path, outputs = report
    result = chromium(tmp_path, "--dump-dom", path.as_uri())
    dom = result.stdout
    assert "</html>" in dom, result.stderr[-2000:]

    def card(element_id: str) -> str:
        match = re.search(rf'id="{element_id}">([^<]*)<', dom)
        assert match, element_id
        return match.group(1)

    subjects, disc = outputs.subjects, outputs.discrepancies
    live = disc.filter(pl.col("STATUS") != "RESOLVED")
    assert card("n-sites") == "5"
    assert card("n-screened") == "120"
    assert card("n-enrolled") == str(subjects.filter(pl.col("SITE_DECISION") == "ENROLLED").height)
    assert card("n-important") == str(live.filter(pl.col("SEVERITY") == "IMPORTANT").height)
    assert card("n-queries") == str(live.filter(pl.col("SEVERITY") == "QUERY").height)
    assert card("n-new") == str(disc.filter(pl.col("STATUS") == "NEW").height)
    assert card("n-resolved") == str(disc.filter(pl.col("STATUS") == "RESOLVED").height)
    assert int(card("n-resolved")) > 0 and int(card("n-new")) > 0
    assert card("n-not-audited") == "1"
    assert re.search(r'id="previous-run">Compared with the run of 2026-11-27', dom)
    # the SVG charts are in the rendered DOM
    assert dom.count("<svg") >= 4
