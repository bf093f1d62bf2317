"""The review state machine, read from review/states.yaml: states, actions and the allowed transitions.

The table of state x action -> state is data, checked before anything is written: a refused action
writes nothing. The code names no state: what is "settled" (left out of site queries, reopened when
the evidence changes), "pending" (no decision yet) or a confirmed deviation is said by the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import polars as pl

from review.datafile import DataFileError, YamlDocument

_TOP = {"initial", "states", "actions", "transitions", "settled", "pending", "deviation", "automatic"}
_TEXT = ("required", "optional")


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


def _names(doc: YamlDocument, value: object, path: tuple[str, ...], known: dict, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise doc.error(path, f"{'.'.join(path)} must be a list of {what}s")
    for i, name in enumerate(value):
        if name not in known:
            raise doc.error((*path, str(i)), f"unknown {what} {name!r} in {'.'.join(path)}")
    return tuple(value)


def _one(doc: YamlDocument, value: object, path: tuple[str, ...], known: dict, what: str) -> str:
    if not isinstance(value, str) or value not in known:
        raise doc.error(path, f"{'.'.join(path)} must name a {what}, not {value!r}")
    return value


def _actions(doc: YamlDocument, raw: object, states: dict[str, str]) -> dict[str, Action]:
    actions: dict[str, Action] = {}
    for name, body in doc.mapping(raw, ("actions",), raw if isinstance(raw, dict) else ()).items():
        path = ("actions", str(name))
        body = doc.mapping(body, path, {"meaning", "text", "severities"}, {"meaning", "text"})
        if body["text"] not in _TEXT:
            raise doc.error((*path, "text"), f"{'.'.join(path)}.text must be one of {', '.join(_TEXT)}")
        severities = body.get("severities")
        if severities is not None and (not isinstance(severities, list)
                                       or not all(isinstance(s, str) for s in severities)):
            raise doc.error((*path, "severities"), f"{'.'.join(path)}.severities must be a list of severities")
        actions[str(name)] = Action(str(name), str(body["meaning"]), body["text"] == "required",
                                    tuple(severities) if severities is not None else None)
    if not actions:
        raise doc.error(("actions",), "actions lists no action")
    return actions


def _transitions(doc: YamlDocument, raw: object, states: dict[str, str],
                 actions: dict[str, Action]) -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for state, row in doc.mapping(raw, ("transitions",), states).items():
        path = ("transitions", str(state))
        for action, target in doc.mapping(row, path, actions).items():
            table[(str(state), str(action))] = _one(doc, target, (*path, str(action)), states, "state")
    return table


def parse_machine(text: str, name: str = "states.yaml") -> StateMachine:
    """A StateMachine from the text of a states file; DataFileError naming file and line when it is wrong."""
    doc = YamlDocument(text, name)
    top = doc.mapping(doc.data, (), _TOP, _TOP)
    states: dict[str, str] = {}
    for state, body in doc.mapping(top["states"], ("states",), top["states"] if isinstance(top["states"], dict)
                                   else ()).items():
        states[str(state)] = str(doc.mapping(body, ("states", str(state)), {"meaning"}, {"meaning"})["meaning"])
    actions = _actions(doc, top["actions"], states)
    deviation = doc.mapping(top["deviation"], ("deviation",), {"confirmed_by", "withdrawn_by"},
                            {"confirmed_by", "withdrawn_by"})
    automatic = doc.mapping(top["automatic"], ("automatic",), {"by", "reopen", "site_response"},
                            {"by", "reopen", "site_response"})
    if not isinstance(automatic["by"], str) or not automatic["by"].strip():
        raise doc.error(("automatic", "by"), "automatic.by must name who the nightly run's entries are by")
    return StateMachine(
        initial=_one(doc, top["initial"], ("initial",), states, "state"),
        states=states,
        actions=actions,
        transitions=_transitions(doc, top["transitions"], states, actions),
        settled=_names(doc, top["settled"], ("settled",), states, "state"),
        pending=_names(doc, top["pending"], ("pending",), states, "state"),
        confirmed_by=_one(doc, deviation["confirmed_by"], ("deviation", "confirmed_by"), actions, "action"),
        withdrawn_by=_names(doc, deviation["withdrawn_by"], ("deviation", "withdrawn_by"), actions, "action"),
        system_actor=automatic["by"].strip(),
        reopen_action=_one(doc, automatic["reopen"], ("automatic", "reopen"), actions, "action"),
        site_response_action=_one(doc, automatic["site_response"], ("automatic", "site_response"), actions, "action"),
    )


@cache
def load_machine(path: str | None = None) -> StateMachine:
    """The state machine of `path`, or the bundled review/states.yaml."""
    if path is None:
        return parse_machine(resources.files("review").joinpath("states.yaml").read_text(encoding="utf-8"),
                             "review/states.yaml")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise DataFileError(f"{path}: cannot read the review state machine ({error.strerror})") from None
    return parse_machine(text, str(file))
