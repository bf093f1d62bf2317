"""The data files one study's audit reads besides its deliveries: protocol, unit catalog, process
checks and discrepancy policy, each the study's own file or the bundled default.

Read once at the start of a run (before the study is locked), so that a malformed file stops the run
with its file and line instead of failing a task halfway, and handed to the tasks as typed records.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.comparison.process_config import ProcessCheck, load_process_checks
from contracts.policy import Policy, load_policy
from contracts.protocol import Protocol, load_protocol
from contracts.units import UnitCatalog, load_units


@dataclass(frozen=True)
class StudyFiles:
    protocol: Protocol
    catalog: UnitCatalog
    process_checks: tuple[ProcessCheck, ...]
    policy: Policy


def load_study_files(protocol: str | None = None, units: str | None = None, process_checks: str | None = None,
                     policy: str | None = None) -> StudyFiles:
    """The study's files (None: the bundled one); every error names its file and line."""
    return StudyFiles(protocol=load_protocol(protocol), catalog=load_units(units),
                      process_checks=load_process_checks(process_checks), policy=load_policy(policy))
