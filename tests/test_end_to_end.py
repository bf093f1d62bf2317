"""The product as a user runs it: generated deliveries on a moto S3 server, the CLI, the tables.

The study's configuration file and protocol are objects in the same S3 endpoint, as a sponsor keeps them.

These are the acceptance tests of the walking skeleton and of the demo's promise: every planted
problem is found with its class and severity, nothing is reported for clean subjects, every planted
bad row is named in the findings, and the reconciliation balances.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import date
from email import message_from_bytes, policy
from importlib import resources
from pathlib import Path

import boto3
import polars as pl
import pytest
from reconciliation_support import assert_reconciliation_balances, assert_rows_out

from generator import generate
from generator.scoring import score
from storage import S3Store

AS_OF = "2026-11-28"
CLI = str(Path(sys.executable).with_name("screening-audit"))


def _cli(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-home")),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        AWS_ENDPOINT_URL=s3_endpoint,
        COLUMNS="120",
    )
    return env


@pytest.fixture(scope="module")
def audited(s3_endpoint: str, cli_env: dict[str, str]) -> dict:
    """One study generated on the S3 server and audited once through the CLI."""
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="e2e-landing")
    client.create_bucket(Bucket="e2e-reports")
    landing = S3Store("s3://e2e-landing/incoming", endpoint_url=s3_endpoint)
    generate(landing, study="SZ003", sites=8, subjects=240, seed=11, as_of=date.fromisoformat(AS_OF))
    # the study's configuration and protocol live in the bucket too, and load through the same endpoint
    config = S3Store("s3://e2e-landing/config", endpoint_url=s3_endpoint)
    config.write_bytes("protocols/sz003.yaml", resources.files("contracts").joinpath("protocols", "sz003.yaml")
                       .read_bytes())
    config.write_bytes("sz003.yaml", b"study: SZ003\nlanding: s3://e2e-landing/incoming\n"
                                     b"reports: s3://e2e-reports/audit\nprotocol: protocols/sz003.yaml\n")
    result = _cli("run", "--config", "s3://e2e-landing/config/sz003.yaml", "--as-of", AS_OF, env=cli_env)
    reports = S3Store("s3://e2e-reports/audit", endpoint_url=s3_endpoint)
    return {
        "result": result,
        "reports": reports,
        "landing": landing,
        "prefix": f"SZ003/{AS_OF}",
        "truth": json.loads(landing.read_bytes("SZ003/ground_truth.json")),
    }


def _table(audited: dict, name: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(audited["reports"].read_bytes(f"{audited['prefix']}/{name}.parquet")))


def test_cli_run_completes_and_prints_the_report_location(audited: dict) -> None:
    result = audited["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"s3://e2e-reports/audit/SZ003/{AS_OF}/report.html"


def test_cli_run_prints_a_link_that_opens_the_report(audited: dict, s3_endpoint: str) -> None:
    import httpx

    [link] = [line.removeprefix("open the report: ") for line in audited["result"].stderr.splitlines()
              if line.startswith("open the report: ")]
    assert link.startswith(f"{s3_endpoint}/e2e-reports/audit/SZ003/{AS_OF}/report.html?X-Amz-Algorithm=")
    assert "X-Amz-Expires=86400" in link  # report_link_hours: 24 by default
    response = httpx.get(link, timeout=30)  # no credentials: the signature is the permission
    assert response.status_code == 200
    assert response.content == audited["reports"].read_bytes(f"{audited['prefix']}/report.html")


def test_every_output_of_audit_outputs_md_is_published(audited: dict) -> None:
    keys = {obj.key.removeprefix(audited["prefix"] + "/") for obj in audited["reports"].list(audited["prefix"])}
    for table in ("subjects", "eligibility", "discrepancies", "validation", "dv"):
        assert {f"{table}.csv", f"{table}.parquet"} <= keys
    assert {"dv.xpt", "report.html", "report.xlsx", "run_manifest.json", "data_docs/index.html"} <= keys
    assert any(key.startswith("site_queries/") and key.endswith(".csv") for key in keys)


def test_planted_problems_are_found_and_nothing_else(audited: dict) -> None:
    result = score(audited["truth"], _table(audited, "discrepancies"), _table(audited, "validation"))
    assert result.missed == []
    assert result.unexpected == []
    assert result.found == result.expected > 10


def test_subject_and_eligibility_rows_match_the_ground_truth(audited: dict) -> None:
    from contracts.protocol import load_protocol

    truth = audited["truth"]
    subjects = _table(audited, "subjects")
    per_site = dict(subjects.group_by("SITEID").len().iter_rows())
    expected = {s["site"]: s["audited_subjects"] for s in truth["sites"] if s["audited_subjects"]}
    assert per_site == expected
    assert subjects.height == truth["subjects"]["audited"] > 0
    components = len(load_protocol().components())
    assert _table(audited, "eligibility").height == truth["subjects"]["audited"] * components


def test_no_finding_for_subjects_generated_clean(audited: dict) -> None:
    truth = audited["truth"]
    # subjects touched by a planted problem, including knock-on effects the ground truth lists
    # (a rejected VS file leaves every enrolled subject of that site without a weight)
    planted = {row["usubjid"] for part in ("problems", "expected_discrepancies", "data_quality")
               for row in truth[part] if row.get("usubjid")}
    findings = _table(audited, "validation").filter(
        pl.col("USUBJID").is_not_null() & ~pl.col("USUBJID").is_in(sorted(planted))
    )
    assert findings.select("DOMAIN", "VARIABLE", "EXPECTATION", "MESSAGE").unique().to_dicts() == []


def test_planted_bad_rows_are_named_in_the_findings(audited: dict) -> None:
    truth = audited["truth"]
    findings = _table(audited, "validation")
    named = set(findings.get_column("SOURCE").drop_nulls().to_list())
    missing = [row for row in truth["data_quality"] if row.get("source") and row["source"] not in named]
    assert missing == []


def test_deliveries_rejected_and_incomplete_are_in_the_manifest(audited: dict) -> None:
    manifest = json.loads(audited["reports"].read_bytes(f"{audited['prefix']}/run_manifest.json"))
    text = json.dumps(manifest)
    for planted in audited["truth"]["deliveries"]:
        assert planted["delivery"] in text
        assert planted["expected_status"] in text


def test_reconciliation_balances_for_every_domain(audited: dict) -> None:
    assert_reconciliation_balances(json.loads(audited["reports"].read_bytes(f"{audited['prefix']}/run_manifest.json")))


def test_every_delivered_subject_and_every_subject_component_comes_out(audited: dict) -> None:
    manifest = json.loads(audited["reports"].read_bytes(f"{audited['prefix']}/run_manifest.json"))
    assert_rows_out(audited["truth"], audited["landing"], _table(audited, "subjects"), _table(audited, "eligibility"),
                    manifest)


def test_outputs_identify_subjects_only_by_usubjid_and_siteid(audited: dict) -> None:
    for name in ("subjects", "eligibility", "discrepancies", "validation", "validation_resolved", "dv"):
        columns = set(_table(audited, name).columns)
        assert not columns & {"BRTHDTC", "SUBJID", "INITIALS", "NAME"}, name


def test_nothing_to_audit_exits_non_zero_with_one_line_reason(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "landing" / "SZ003").mkdir(parents=True)
    result = _cli("run", "--landing", str(tmp_path / "landing"), "--reports", str(tmp_path / "reports"),
                  "--as-of", AS_OF, env=cli_env)
    assert result.returncode == 2
    assert "nothing audited" in result.stderr
    assert not (tmp_path / "reports" / "SZ003" / AS_OF).exists()


def test_demo_runs_a_real_audit_and_prints_where_the_report_is(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "AWS_ENDPOINT_URL"}  # the demo starts its own endpoint
    result = _cli("demo", "--out", str(tmp_path / "demo"), "--sites", "8", "--subjects", "120", "--seed", "3",
                  env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = Path(result.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert report.is_file() and report.is_relative_to(tmp_path / "demo")
    assert "<html" in report.read_text(encoding="utf-8")[:500].lower()
    assert (report.parent / "discrepancies.parquet").is_file()
    score_line = " ".join(result.stderr.split())
    found, planted = re.search(r"planted discrepancies found: (\d+)/(\d+), unexpected: 0;", score_line).groups()
    assert found == planted and int(planted) > 5
    # the sponsor-bucket link is said to be on the demo's own endpoint, which is gone when the demo ends
    assert re.search(r"published to the demo's local S3 endpoint \(stopped now; the same files are below\): "
                     r"s3://\S+/report\.html", score_line)
    # the morning digest went to the demo's SMTP server and was saved; every site has its outbox folder
    mail = Path(re.search(r"saved as (\S+\.eml)", score_line).group(1))
    message = message_from_bytes(mail.read_bytes(), policy=policy.default)
    assert message["To"] == "data-management@sponsor.example" and "[SZ003] Screening audit" in message["Subject"]
    assert {"text/plain", "text/html"} <= {part.get_content_type() for part in message.walk()}
    outbox = tmp_path / "demo" / "outbox" / "SZ003"
    assert sorted(p.name for p in outbox.iterdir()) == [f"{site}" for site in range(101, 109)]
