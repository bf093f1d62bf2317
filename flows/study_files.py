"""The data files one study's audit reads besides its deliveries: protocol, unit catalog, process
checks and discrepancy policy, each the study's own file or the bundled default.

Read once at the start of a run (before the study is locked), so that a malformed file stops the run
with its file and line instead of failing a task halfway, and handed to the tasks as typed records.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.comparison.process_config import ProcessCheck
from contracts.policy import Policy
from contracts.protocol import Protocol
from contracts.units import UnitCatalog
from flows.config_files import load_policy_at, load_process_checks_at, load_protocol_at, load_units_at


@dataclass(frozen=True)
class StudyFiles:
    protocol: Protocol
    catalog: UnitCatalog
    process_checks: tuple[ProcessCheck, ...]
    policy: Policy


def load_study_files(protocol: str | None = None, units: str | None = None, process_checks: str | None = None,
                     policy: str | None = None, *, endpoint_url: str | None = None) -> StudyFiles:
    """The study's files (None: the bundled one), each a local path or an s3:// URI read through
    `endpoint_url` (flows.config_files); every error names its file (or URI) and line."""
    return StudyFiles(protocol=load_protocol_at(protocol, endpoint_url), catalog=load_units_at(units, endpoint_url),
                      process_checks=load_process_checks_at(process_checks, endpoint_url),
                      policy=load_policy_at(policy, endpoint_url))
