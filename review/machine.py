"""The review state machine, read from review/states.yaml: states, actions and the allowed transitions.

The table of state x action -> state is data, checked before anything is written: a refused action
writes nothing. The code names no state: what is "settled" (left out of site queries, reopened when
the evidence changes), "pending" (no decision yet) or a confirmed deviation is said by the file. The
file is read by the audit's one typed loader (contracts.datafile): unknown keys, states or actions are
errors naming the file, the line and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from contracts.datafile import DataFileError, FileModel, LocatedError, load_data_file, parse_yaml


class MachineError(DataFileError):
    """The review state machine's file is malformed: every problem with its file, line and key."""


class StateFile(FileModel):
    meaning: str


class ActionFile(FileModel):
    meaning: str
    text: Literal["required", "optional"]
    severities: tuple[str, ...] | None = None  # None: any severity


class DeviationFile(FileModel):
    confirmed_by: str
    withdrawn_by: tuple[str, ...]


class AutomaticFile(FileModel):
    by: str = Field(min_length=1)
    reopen: str
    site_response: str


class MachineFile(FileModel):
    initial: str
    states: dict[str, StateFile] = Field(min_length=1)
    actions: dict[str, ActionFile] = Field(min_length=1)
    transitions: dict[str, dict[str, str]]
    settled: tuple[str, ...]
    pending: tuple[str, ...]
    deviation: DeviationFile
    automatic: AutomaticFile


def _references(machine: MachineFile) -> None:
    """Every state and action the file names is one it declares."""
    states, actions = machine.states, machine.actions

    def known(value: str, where: tuple[str | int, ...], names: dict, what: str) -> None:
        if value not in names:
            raise LocatedError(where, f"unknown {what} {value!r} (declared: {', '.join(names)})")

    known(machine.initial, ("initial",), states, "state")
    for state, row in machine.transitions.items():
        known(state, ("transitions", state), states, "state")
        for action, target in row.items():
            known(action, ("transitions", state, action), actions, "action")
            known(target, ("transitions", state, action), states, "state")
    for key in ("settled", "pending"):
        for i, state in enumerate(getattr(machine, key)):
            known(state, (key, i), states, "state")
    known(machine.deviation.confirmed_by, ("deviation", "confirmed_by"), actions, "action")
    for i, action in enumerate(machine.deviation.withdrawn_by):
        known(action, ("deviation", "withdrawn_by", i), actions, "action")
    known(machine.automatic.reopen, ("automatic", "reopen"), actions, "action")
    known(machine.automatic.site_response, ("automatic", "site_response"), actions, "action")


@dataclass(frozen=True)
class Action:
    name: str
    meaning: str
    text_required: bool
    severities: tuple[str, ...] | None  # None: any severity


@dataclass(frozen=True)
class StateMachine:
    """States, actions and transitions of the review, with the few roles the code needs to know."""

    initial: str
    states: dict[str, str]  # name -> meaning
    actions: dict[str, Action]
    transitions: dict[tuple[str, str], str]  # (state, action) -> state after
    settled: tuple[str, ...]
    pending: tuple[str, ...]
    confirmed_by: str
    withdrawn_by: tuple[str, ...]
    system_actor: str
    reopen_action: str
    site_response_action: str

    def allowed(self, state: str) -> list[str]:
        """The actions allowed on a finding in `state`, in the file's order of actions."""
        return [a for a in self.actions if (state, a) in self.transitions]

    def applies(self, action: str, severity: str | None) -> bool:
        """Whether `action` may act on a finding of `severity` (None: unknown, so only an action for any)."""
        severities = self.actions[action].severities
        return severities is None or severity in severities

    def allowed_on(self, state: str, severity: str | None) -> list[str]:
        """The actions allowed on a finding of `severity` in `state`: what a refusal lists, so that it never
        offers an action the finding's severity would refuse (CONFIRM_DEVIATION on a query)."""
        return [a for a in self.allowed(state) if self.applies(a, severity)]

    def transition_table(self) -> pl.DataFrame:
        """FROM_STATE, ACTION, TO_STATE: one row per allowed transition (for joins)."""
        rows = [(s, a, t) for (s, a), t in self.transitions.items()]
        return pl.DataFrame(rows, schema={"FROM_STATE": pl.String, "ACTION": pl.String, "TO_STATE": pl.String},
                            orient="row")

    def action_table(self) -> pl.DataFrame:
        """ACTION, TEXT_REQUIRED, SEVERITIES (null: any): one row per action."""
        return pl.DataFrame(
            {"ACTION": list(self.actions),
             "TEXT_REQUIRED": [a.text_required for a in self.actions.values()],
             "SEVERITIES": [list(a.severities) if a.severities is not None else None for a in self.actions.values()]},
            schema={"ACTION": pl.String, "TEXT_REQUIRED": pl.Boolean, "SEVERITIES": pl.List(pl.String)})


def parse_machine(text: str, source: str = "states.yaml") -> StateMachine:
    """A StateMachine from the text of a states file; MachineError naming file, line and key when it is wrong."""
    raw = parse_yaml(MachineFile, text, source, check=_references, error=MachineError)
    return StateMachine(
        initial=raw.initial,
        states={name: state.meaning for name, state in raw.states.items()},
        actions={name: Action(name, action.meaning, action.text == "required", action.severities)
                 for name, action in raw.actions.items()},
        transitions={(state, action): target for state, row in raw.transitions.items()
                     for action, target in row.items()},
        settled=raw.settled,
        pending=raw.pending,
        confirmed_by=raw.deviation.confirmed_by,
        withdrawn_by=raw.deviation.withdrawn_by,
        system_actor=raw.automatic.by.strip(),
        reopen_action=raw.automatic.reopen,
        site_response_action=raw.automatic.site_response,
    )


def load_machine(path: str | Path | None = None) -> StateMachine:
    """The state machine of `path`, or the bundled review/states.yaml (read once)."""
    return load_data_file(parse_machine, "review", "states.yaml", path, MachineError)
