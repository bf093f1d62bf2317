"""A Dask worker runs night after night: what tasks left in reference cycles is freed before the heavy tasks
(audit-partition, render-outputs) reach their peak, and after them (flows.tasks.release_garbage)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from datetime import date

import pytest

import core.packing
import flows.partition
import flows.tasks
import reporting
from flows.tasks import audit_partition_task, write_outputs_task


class _Frame:
    """Stands for a frame a finished task left in a cycle."""

    def __init__(self) -> None:
        self.me = self


class _Reached(Exception):
    pass


@pytest.fixture
def left_in_a_cycle() -> Iterator[weakref.ref]:
    """A weak reference to an object only a reference cycle keeps; automatic collection off meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        left = _Frame()
        ref = weakref.ref(left)
        del left
        assert ref() is not None  # only a collection frees it: the tests below can fail
        yield ref
    finally:
        if was_enabled:
            gc.enable()


def _stage(ref: weakref.ref, seen: list[bool]) -> Callable[..., None]:
    def stage(*args, **kwargs) -> None:
        seen.append(ref() is None)
        raise _Reached
    return stage


def _leaving_a_cycle(refs: list[weakref.ref], returns: object) -> Callable[..., object]:
    """A stage that leaves a reference cycle behind, as a finished partition's frames may."""
    def stage(*args, **kwargs) -> object:
        left = _Frame()
        refs.append(weakref.ref(left))
        return returns
    return stage


def test_a_partition_is_audited_after_the_garbage_of_earlier_tasks_is_freed(left_in_a_cycle, monkeypatch) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(flows.partition, "audit_partition", _stage(left_in_a_cycle, seen))
    with pytest.raises(_Reached):
        audit_partition_task.fn("SZ003", [], None, date(2026, 11, 28))
    assert seen == [True]


def test_outputs_are_rendered_after_the_garbage_of_earlier_tasks_is_freed(left_in_a_cycle, monkeypatch,
                                                                          tmp_path) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(core.packing, "unpack", _stage(left_in_a_cycle, seen))
    monkeypatch.setattr(reporting, "write_outputs", _stage(left_in_a_cycle, seen))
    with pytest.raises(_Reached):
        write_outputs_task.fn(None, str(tmp_path), None, "_audit/SZ003/staging/x")
    assert seen == [True]


class _Result:
    """What a partition returns; the task reads it right after the garbage release."""

    def __init__(self, refs: list[weakref.ref], seen: list[bool]) -> None:
        self.refs, self.seen = refs, seen

    @property
    def eligibility_part(self) -> None:
        self.seen.append(self.refs[0]() is None)
        raise _Reached


def test_what_a_partition_leaves_in_cycles_is_freed_when_it_ends(left_in_a_cycle, monkeypatch) -> None:
    refs: list[weakref.ref] = []
    seen: list[bool] = []
    monkeypatch.setattr(flows.partition, "audit_partition", _leaving_a_cycle(refs, _Result(refs, seen)))
    with pytest.raises(_Reached):
        audit_partition_task.fn("SZ003", [], None, date(2026, 11, 28))
    assert seen == [True]


def test_what_the_rendering_leaves_in_cycles_is_freed_when_it_ends(left_in_a_cycle, monkeypatch, tmp_path) -> None:
    refs: list[weakref.ref] = []
    seen: list[bool] = []
    monkeypatch.setattr(core.packing, "unpack", lambda outputs: outputs)
    monkeypatch.setattr(reporting, "write_outputs", _leaving_a_cycle(refs, []))

    def logger() -> None:
        seen.append(refs[0]() is None)
        raise _Reached

    monkeypatch.setattr(flows.tasks, "get_run_logger", logger)
    with pytest.raises(_Reached):
        write_outputs_task.fn(None, str(tmp_path), None, "_audit/SZ003/staging/x")
    assert seen == [True]
