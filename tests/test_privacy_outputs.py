"""Privacy and security of one real run: nothing identifying leaves the landing area.

One study is generated, and its sites' demographics are given what real sites sometimes send
along: initials and names in extra columns, and birth dates, some in a non-ISO form that the
audit must report as a finding without quoting it. The CLI then audits it into an S3 bucket.
Every published object (tables, parquet, the workbook's XML, HTML, XPT, Data Docs, manifest),
the command's own output and the Prefect database holding the run's logs are scanned for those
values and for the secret access key the process ran with. Every object must also be encrypted
at rest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import boto3
import polars as pl
import pytest

from generator import generate
from storage import LocalStore

AS_OF = "2026-11-28"
CLI = str(Path(sys.executable).with_name("screening-audit"))
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYPRIVACYTESTKEY"
#: non-ISO birth dates planted in DM (the audit must flag them without repeating them)
ODD_BIRTH_DATES = ["17/03/1958", "March 4 1961"]


def _newest_delivery(site: Path) -> Path:
    return sorted(d for d in site.iterdir() if (d / "manifest.json").is_file())[-1]


def _plant_identifiers(landing: Path) -> dict[str, list[str]]:
    """Add initials and names to each site's newest DM, and odd birth dates; fix the manifests."""
    planted: dict[str, list[str]] = {"initials": [], "names": [], "birth dates": []}
    for number, site in enumerate(sorted((landing / "SZ003").iterdir())):
        if not site.is_dir():
            continue
        delivery = _newest_delivery(site)
        dm_path = delivery / "dm.csv"
        dm = pl.read_csv(dm_path, infer_schema=False)
        n = dm.height
        initials = [f"Q{chr(65 + number)}{chr(65 + i % 26)}X{i:03d}" for i in range(n)]
        names = [f"Zebulon Quarrington-{number}{i:03d}" for i in range(n)]
        birth = dm["BRTHDTC"].to_list()
        if number < len(ODD_BIRTH_DATES):
            birth[0] = ODD_BIRTH_DATES[number]
        dm = dm.with_columns(pl.Series("BRTHDTC", birth), pl.Series("SUBJINIT", initials),
                             pl.Series("INVNAM_SUBJECT", names))
        data = dm.write_csv().encode()
        dm_path.write_bytes(data)
        manifest = json.loads((delivery / "manifest.json").read_text(encoding="utf-8"))
        for entry in manifest["files"]:
            if entry["name"] == "dm.csv":
                entry["sha256"] = hashlib.sha256(data).hexdigest()
        (delivery / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        planted["initials"] += initials
        planted["names"] += names
        planted["birth dates"] += [b for b in birth if b and len(b) >= 10]
    return planted


def _other_domain_text(landing: Path) -> str:
    """Everything delivered outside DM, so a birth date that is also, say, a lab date is not searched."""
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in (landing / "SZ003").rglob("*.csv")
                     if p.name != "dm.csv")


def _searchable(key: str, data: bytes) -> str:
    if key.endswith(".parquet"):
        frame = pl.read_parquet(io.BytesIO(data))
        return frame.write_csv() + " ".join(frame.columns)
    if key.endswith(".xlsx"):
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            return "\n".join(book.read(name).decode("utf-8", "replace") for name in book.namelist())
    return data.decode("utf-8", "replace") + data.decode("latin-1")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> dict:
    root = tmp_path_factory.mktemp("privacy")
    landing = root / "landing"
    generate(LocalStore(landing), study="SZ003", sites=3, subjects=40, seed=21, as_of=date.fromisoformat(AS_OF),
             formats="csv")
    planted = _plant_identifiers(landing)
    other = _other_domain_text(landing)
    planted["birth dates"] = [b for b in planted["birth dates"] if b not in other]

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="privacy-reports")
    env = dict(os.environ)
    env.update(PREFECT_HOME=str(root / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               AWS_ENDPOINT_URL=s3_endpoint, AWS_ACCESS_KEY_ID="AKIAPRIVACYTEST", AWS_SECRET_ACCESS_KEY=SECRET,
               PREFECT_LOGGING_LEVEL="DEBUG", COLUMNS="120")
    result = subprocess.run([CLI, "run", "--landing", str(landing), "--reports", "s3://privacy-reports/audit",
                             "--as-of", AS_OF], env=env, capture_output=True, text=True, timeout=900, check=False)
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="privacy-reports"):
        for obj in page.get("Contents", []):
            objects[obj["Key"]] = obj
    return {"result": result, "client": client, "objects": objects, "planted": planted,
            "prefect_home": root / "prefect-home"}


def test_the_run_published_its_reports(run: dict) -> None:
    assert run["result"].returncode == 0, run["result"].stderr[-3000:]
    keys = set(run["objects"])
    assert {f"audit/SZ003/{AS_OF}/{name}" for name in ("subjects.csv", "validation.parquet", "report.html",
                                                        "report.xlsx", "dv.xpt", "run_manifest.json")} <= keys
    assert len(run["planted"]["birth dates"]) >= 30  # enough real values to make the scan mean something


def test_planted_birth_dates_were_noticed_by_the_audit(run: dict) -> None:
    """The scan below is only meaningful if the odd values reached the audit: they give findings."""
    body = run["client"].get_object(Bucket="privacy-reports", Key=f"audit/SZ003/{AS_OF}/validation.parquet")
    findings = pl.read_parquet(io.BytesIO(body["Body"].read()))
    flagged = findings.filter((pl.col("VARIABLE") == "BRTHDTC") & pl.col("USUBJID").is_not_null())
    assert flagged.height >= len(ODD_BIRTH_DATES)


@pytest.mark.parametrize("kind", ["birth dates", "initials", "names"])
def test_no_identifier_in_any_published_object(run: dict, kind: str) -> None:
    leaks: dict[str, list[str]] = {}
    for key in run["objects"]:
        text = _searchable(key, run["client"].get_object(Bucket="privacy-reports", Key=key)["Body"].read())
        found = [value for value in run["planted"][kind] if value in text]
        if found:
            leaks[key.removeprefix(f"audit/SZ003/{AS_OF}/")] = found[:3] + ([f"... {len(found)} in all"]
                                                                            if len(found) > 3 else [])
    assert leaks == {}


def test_no_identifier_or_secret_in_the_command_output_or_the_prefect_logs(run: dict) -> None:
    logs = run["result"].stdout + run["result"].stderr
    database = b"".join(p.read_bytes() for p in run["prefect_home"].rglob("*.db*") if p.is_file())
    assert database  # the run's logs are in Prefect's database: it must have been written
    text = logs + database.decode("utf-8", "replace")
    values = [v for kind in ("birth dates", "initials", "names") for v in run["planted"][kind]]
    assert [v for v in values if v in text] == []
    assert SECRET not in text
    assert SECRET not in json.dumps([str(o) for o in run["objects"]])


def test_every_published_object_is_encrypted_at_rest(run: dict) -> None:
    encryption = {key: run["client"].head_object(Bucket="privacy-reports", Key=key).get("ServerSideEncryption")
                  for key in run["objects"]}
    assert encryption and set(encryption.values()) == {"AES256"}, {k: v for k, v in encryption.items()
                                                                     if v != "AES256"}


def test_no_output_table_has_an_identifying_column(run: dict) -> None:
    for key in run["objects"]:
        if key.endswith(".parquet"):
            body = run["client"].get_object(Bucket="privacy-reports", Key=key)["Body"].read()
            columns = set(pl.read_parquet_schema(io.BytesIO(body)))
            assert not columns & {"BRTHDTC", "SUBJINIT", "INVNAM_SUBJECT", "SUBJID"}, key
