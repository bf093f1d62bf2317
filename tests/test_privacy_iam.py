"""deploy/iam-policy.json is least privilege: read the landing area, write the reports, nothing else.

The policy is checked statically here (no wildcards, writes only under the reports prefix, a deny
for unencrypted writes); tests/test_faults_flow.py checks that it allows every request a real
run makes, using the requests the fault proxy recorded.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

POLICY = json.loads((Path(__file__).parents[1] / "deploy" / "iam-policy.json").read_text(encoding="utf-8"))
READ = {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}
WRITE = {"s3:PutObject", "s3:DeleteObject"}


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allowed(action: str, resource: str, prefix: str | None = None, sse: str | None = None,
            policy: dict | None = None) -> bool:
    """A small evaluator of this policy's shape (deploy/iam-policy.json unless `policy`): explicit deny
    wins, then any matching allow."""
    def matches(statement: dict) -> bool:
        if action not in _as_list(statement["Action"]):
            return False
        if not any(fnmatchcase(resource, pattern) for pattern in _as_list(statement["Resource"])):
            return False
        condition = statement.get("Condition", {})
        if "StringLike" in condition and "s3:prefix" in condition["StringLike"]:
            return prefix is not None and any(fnmatchcase(prefix, p)
                                              for p in _as_list(condition["StringLike"]["s3:prefix"]))
        if "Null" in condition:
            return (sse is None) == (condition["Null"]["s3:x-amz-server-side-encryption"] == "true")
        return True

    statements = (policy or POLICY)["Statement"]
    if any(s["Effect"] == "Deny" and matches(s) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in statements)


def test_no_wildcard_action_or_bucket_wide_resource() -> None:
    for statement in POLICY["Statement"]:
        for action in _as_list(statement["Action"]):
            assert "*" not in action, statement["Sid"]
        if statement["Effect"] == "Allow":
            for resource in _as_list(statement["Resource"]):
                assert not resource.endswith(":::*") and resource != "*", statement["Sid"]


def test_landing_area_is_read_only() -> None:
    assert allowed("s3:GetObject", "arn:aws:s3:::sz003-landing/SZ003/101/20261127T230000Z/lb.csv")
    assert allowed("s3:ListBucket", "arn:aws:s3:::sz003-landing", prefix="SZ003/101/")
    for action in WRITE:
        assert not allowed(action, "arn:aws:s3:::sz003-landing/SZ003/101/20261127T230000Z/lb.csv", sse="AES256")
    assert not allowed("s3:ListBucket", "arn:aws:s3:::sz003-landing", prefix="OTHERSTUDY/")
    assert not allowed("s3:GetObject", "arn:aws:s3:::sz003-landing/OTHERSTUDY/1/x.csv")


def test_reports_are_writable_only_encrypted_and_only_under_the_study() -> None:
    key = "arn:aws:s3:::sz003-reports/SZ003/2026-11-28/report.html"
    assert allowed("s3:PutObject", key, sse="AES256")
    assert allowed("s3:PutObject", key, sse="aws:kms")
    assert not allowed("s3:PutObject", key, sse=None)
    assert allowed("s3:PutObject", "arn:aws:s3:::sz003-reports/_audit/SZ003/lock.json", sse="AES256")
    assert allowed("s3:DeleteObject", "arn:aws:s3:::sz003-reports/_audit/SZ003/staging/2026-11-28/r1/a.csv")
    assert allowed("s3:GetObject", key)  # history: the previous nights' discrepancies
    assert not allowed("s3:PutObject", "arn:aws:s3:::sz003-reports/OTHER/x", sse="AES256")
    assert not allowed("s3:PutObject", "arn:aws:s3:::another-bucket/SZ003/x", sse="AES256")


def test_only_the_actions_the_audit_needs() -> None:
    actions = {a for s in POLICY["Statement"] if s["Effect"] == "Allow" for a in _as_list(s["Action"])}
    assert actions == READ | WRITE | {"kms:GenerateDataKey", "kms:Decrypt"}
