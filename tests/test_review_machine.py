"""The review state machine is data (review/states.yaml): the bundled one says what the issue asks, and a
wrong file is refused with its name and the line."""

from __future__ import annotations

import pytest

from review.machine import MachineError, load_machine, parse_machine

STATES = ["UNREVIEWED", "ACKNOWLEDGED", "QUERIED", "ANSWERED", "CONFIRMED", "NOT_A_DEVIATION", "CLOSED", "REOPENED"]
ACTIONS = ["ACKNOWLEDGE", "QUERY_SENT", "SITE_RESPONSE", "CONFIRM_DEVIATION", "NOT_A_DEVIATION", "CLOSE", "REOPEN",
           "COMMENT"]


def test_the_bundled_machine_has_the_states_and_actions_of_the_review() -> None:
    machine = load_machine()
    assert list(machine.states) == STATES and list(machine.actions) == ACTIONS
    assert machine.initial == "UNREVIEWED"
    assert machine.settled == ("NOT_A_DEVIATION", "CLOSED")


def test_not_a_deviation_reopen_and_comment_need_a_text() -> None:
    required = {name for name, action in load_machine().actions.items() if action.text_required}
    assert required == {"NOT_A_DEVIATION", "REOPEN", "COMMENT", "SITE_RESPONSE"}


def test_confirm_deviation_applies_only_to_important_findings() -> None:
    machine = load_machine()
    assert machine.actions["CONFIRM_DEVIATION"].severities == ("IMPORTANT",)
    assert all(a.severities is None for name, a in machine.actions.items() if name != "CONFIRM_DEVIATION")


def test_the_actions_offered_on_a_finding_depend_on_its_severity() -> None:
    machine = load_machine()
    assert "CONFIRM_DEVIATION" in machine.allowed_on("UNREVIEWED", "IMPORTANT")
    assert "CONFIRM_DEVIATION" not in machine.allowed_on("UNREVIEWED", "QUERY")
    assert "CONFIRM_DEVIATION" not in machine.allowed_on("UNREVIEWED", None)  # unknown: it would be refused
    assert machine.allowed_on("UNREVIEWED", "QUERY") == [a for a in machine.allowed("UNREVIEWED")
                                                         if a != "CONFIRM_DEVIATION"]


def test_a_closed_finding_accepts_only_reopen_and_comment() -> None:
    machine = load_machine()
    assert machine.allowed("CLOSED") == ["REOPEN", "COMMENT"]
    assert machine.transitions[("CLOSED", "COMMENT")] == "CLOSED"
    assert machine.transitions[("CLOSED", "REOPEN")] == "REOPENED"


def test_every_settled_state_can_be_reopened_by_the_nightly_run() -> None:
    machine = load_machine()
    assert all((state, machine.reopen_action) in machine.transitions for state in machine.settled)


def test_a_comment_never_changes_the_state() -> None:
    machine = load_machine()
    assert all(machine.transitions[(state, "COMMENT")] == state for state in machine.states)


def _text(**replace: str) -> str:
    from importlib import resources

    text = resources.files("review").joinpath("states.yaml").read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new, 1)
    return text


@pytest.mark.parametrize(("old", "new", "message"), [
    ("initial: UNREVIEWED", "initial: UNREVIEWED\ncolour: blue", "states.yaml:11: colour: unknown key"),
    ("text: optional, severities", "txt: optional, severities",
     "states.yaml:26: actions.CONFIRM_DEVIATION.txt: unknown key"),
    ("{REOPEN: REOPENED, COMMENT: CLOSED}", "{REOPEN: REOPENED, COMMENT: SHUT}",
     "states.yaml:53: transitions.CLOSED.COMMENT: unknown state 'SHUT'"),
    ("{REOPEN: REOPENED, COMMENT: CLOSED}", "{REOPEN: REOPENED, ARCHIVE: CLOSED}",
     "states.yaml:53: transitions.CLOSED.ARCHIVE: unknown action 'ARCHIVE'"),
    ("settled: [NOT_A_DEVIATION, CLOSED]", "settled: [NOT_A_DEVIATION, DONE]",
     "states.yaml:60: settled[1]: unknown state 'DONE'"),
    ("text: required}", "text: maybe}", "states.yaml:25: actions.SITE_RESPONSE.text: Input should be "),
    ("automatic:\n", "automatic_:\n", "automatic_: unknown key"),
])
def test_a_wrong_machine_file_is_refused_naming_the_file_the_line_and_the_key(old: str, new: str, message: str) -> None:
    with pytest.raises(MachineError) as caught:
        parse_machine(_text(**{old: new}), "states.yaml")
    assert message in str(caught.value), str(caught.value)


def test_a_file_that_is_not_yaml_is_refused_with_its_line() -> None:
    with pytest.raises(MachineError, match=r"^states.yaml:3"):
        parse_machine("initial: UNREVIEWED\nstates: [unclosed\n", "states.yaml")


def test_a_file_of_the_operator_is_read_from_its_path(tmp_path) -> None:
    path = tmp_path / "states.yaml"
    path.write_text(_text(**{"by: screening-audit": "by: nightly-audit"}), encoding="utf-8")
    assert load_machine(str(path)).system_actor == "nightly-audit"
    with pytest.raises(MachineError, match="cannot read"):
        load_machine(str(tmp_path / "missing.yaml"))
