"""Configuration files in S3 load like local ones: protocol (with its sibling versions), unit catalog, study
configuration; errors name the URI. Against a real moto S3 server over HTTP."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from checks.comparison.process_config import load_process_checks
from contracts.policy import load_policy
from contracts.protocol import ProtocolError, load_protocol
from contracts.units import load_units
from flows.config import ConfigError, load_config
from flows.config_files import load_protocol_at, load_units_at
from flows.study_files import load_study_files
from storage import ObjectNotFound, S3Store

BUNDLED = resources.files("contracts").joinpath("protocols", "sz003.yaml").read_text(encoding="utf-8")
UNITS = resources.files("contracts").joinpath("units.yaml").read_text(encoding="utf-8")
OLDER = BUNDLED.replace('version: {tivers: "1.0", effective: 2024-01-01}',
                        'version: {tivers: "0.9", effective: 2023-06-01}')


@pytest.fixture
def bucket(s3_endpoint: str, s3_bucket: str) -> tuple[S3Store, str]:
    store = S3Store(f"s3://{s3_bucket}", endpoint_url=s3_endpoint)
    store.write_bytes("config/protocols/sz003.yaml", BUNDLED.encode())
    store.write_bytes("config/protocols/sz003-v0.9.yaml", OLDER.encode())
    store.write_bytes("config/protocols/other.yaml", b"id: OTHER\n")  # another protocol: not a version
    store.write_bytes("config/units.yaml", UNITS.encode())
    return store, f"s3://{s3_bucket}/config"


def test_a_protocol_in_s3_loads_like_the_same_file_on_disk(bucket, s3_endpoint: str, tmp_path: Path) -> None:
    _, root = bucket
    remote = load_protocol_at(f"{root}/protocols/sz003.yaml", s3_endpoint)
    (tmp_path / "sz003.yaml").write_text(BUNDLED)
    (tmp_path / "sz003-v0.9.yaml").write_text(OLDER)
    local = load_protocol(tmp_path / "sz003.yaml")
    assert remote.criteria == local.criteria and remote.parameters == local.parameters
    assert [v.tivers for v in remote.versions] == [v.tivers for v in local.versions] == ["0.9", "1.0"]
    assert remote.path == f"{root}/protocols/sz003.yaml"


def test_a_protocol_folder_in_s3_loads_every_version(bucket, s3_endpoint: str) -> None:
    _, root = bucket
    protocol = load_protocol_at(f"{root}/protocols/", s3_endpoint)  # a folder: the latest version, holding the others
    assert protocol.tivers == "1.0" and [v.tivers for v in protocol.versions] == ["0.9", "1.0"]


def test_the_other_data_files_in_s3_load_like_the_bundled_ones(bucket, s3_endpoint: str) -> None:
    store, root = bucket
    assert load_units_at(f"{root}/units.yaml", s3_endpoint) == load_units()
    store.write_bytes("config/process_checks.yaml", resources.files("checks.comparison")
                      .joinpath("process_checks.yaml").read_bytes())
    store.write_bytes("config/policy.yaml", resources.files("contracts").joinpath("policy.yaml").read_bytes())
    files = load_study_files(f"{root}/protocols/sz003.yaml", f"{root}/units.yaml", f"{root}/process_checks.yaml",
                             f"{root}/policy.yaml", endpoint_url=s3_endpoint)
    assert files.catalog == load_units() and files.process_checks == load_process_checks()
    assert files.policy == load_policy() and files.protocol.id == "SZ003"


def test_errors_name_the_uri(bucket, s3_endpoint: str) -> None:
    store, root = bucket
    with pytest.raises(ObjectNotFound, match=f"{root}/protocols/missing.yaml"):
        load_protocol_at(f"{root}/protocols/missing.yaml", s3_endpoint)
    store.write_bytes("config/broken/sz003.yaml", BUNDLED.replace("criteria:", "criterias:").encode())
    with pytest.raises(ProtocolError, match=rf"{root}/broken/sz003.yaml:\d+: criterias: unknown key"):
        load_protocol_at(f"{root}/broken/sz003.yaml", s3_endpoint)
    store.write_bytes("config/bad.yaml", b"id: [unclosed\n")
    with pytest.raises(ValueError, match=rf"{root}/bad.yaml:\d+: not valid YAML"):
        load_protocol_at(f"{root}/bad.yaml", s3_endpoint)


def test_a_study_configuration_in_s3_with_a_relative_protocol(bucket, s3_endpoint: str) -> None:
    store, root = bucket
    store.write_bytes("config/sz003.yaml", b"study: SZ003\nlanding: s3://l/x\nreports: s3://r/y\n"
                                            b"protocol: protocols/sz003.yaml\n")
    config = load_config(f"{root}/sz003.yaml", s3_endpoint)
    assert config.protocol == f"{root}/protocols/sz003.yaml"  # beside the configuration, in the same bucket
    with pytest.raises(ConfigError, match=f"{root}/nothing.yaml: cannot read"):
        load_config(f"{root}/nothing.yaml", s3_endpoint)


def test_the_cli_lists_the_expectations_of_a_protocol_in_s3(bucket, s3_endpoint: str) -> None:
    _, root = bucket
    cli = str(Path(sys.executable).with_name("screening-audit"))
    result = subprocess.run([cli, "expectations", "--protocol", f"{root}/protocols/sz003.yaml", "--json",
                             "--endpoint-url", s3_endpoint], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"DM.needed_results.MISSING_LB"' in result.stdout
    missing = subprocess.run([cli, "expectations", "--protocol", f"{root}/protocols/none.yaml",
                              "--endpoint-url", s3_endpoint], capture_output=True, text=True, timeout=300,
                             check=False)
    assert missing.returncode == 2 and f"{root}/protocols/none.yaml" in " ".join(missing.stderr.split())


def test_the_cli_checks_a_protocol_in_s3_naming_its_uri(bucket, s3_endpoint: str) -> None:
    """A user trial: `check-protocol s3://…` read the URI as a local path ("s3:/bucket/...: cannot read"), so the
    protocol a night reads from S3 could not be checked before the night ran it."""
    store, root = bucket
    cli = str(Path(sys.executable).with_name("screening-audit"))

    def check(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([cli, "check-protocol", *args, "--endpoint-url", s3_endpoint], capture_output=True,
                              text=True, timeout=300, check=False)

    clean = check(f"{root}/protocols/sz003.yaml", "--units", f"{root}/units.yaml")
    assert (clean.returncode, clean.stdout) == (0, ""), clean.stderr[-2000:]
    assert "0 error(s), 0 warning(s)" in clean.stderr
    store.write_bytes("config/protocols/sz003.yaml", BUNDLED.replace("test: PLAT,", "test: PLATX,").encode())
    broken = check(f"{root}/protocols/sz003.yaml")
    assert broken.returncode == 1
    assert f"{root}/protocols/sz003.yaml:" in broken.stdout and "PLATX" in broken.stdout, broken.stdout
    missing = check(f"{root}/protocols/none.yaml")
    assert missing.returncode == 2 and f"{root}/protocols/none.yaml" in " ".join(missing.stderr.split())
    # a finding that names a second file (two versions taking effect on one date) names it by its URI too (a review
    # saw the deleted temporary copy's path)
    store.write_bytes("config/protocols/sz003.yaml", BUNDLED.encode())
    store.write_bytes("config/protocols/sz003-v0.9.yaml", OLDER.replace("effective: 2023-06-01",
                                                                        "effective: 2024-01-01").encode())
    overlap = check(f"{root}/protocols/sz003.yaml")
    assert overlap.returncode == 1 and f"{root}/protocols/sz003" in overlap.stdout, overlap.stdout
    assert "screening-audit-protocol-" not in overlap.stdout + overlap.stderr
