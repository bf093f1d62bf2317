"""Test-only kill points: the audit process sends itself SIGKILL at a named point of a real run.

Why here and not in the product: the product's code has no test hook at all. This module, loaded
only into a `screening-audit` process the chaos tests start (see sitecustomize.py beside it), wraps
a few of the product's functions as their modules are imported, and kills the process when the
chosen one is called for the n-th time (or right after a chosen storage write, copy or delete).
SIGKILL from the process itself is exactly what the out-of-memory killer does: no `finally`, no
`atexit`, no flush; only the stopping point is deterministic.

A point is `<stage>:<name>`; POINTS lists them (the tests import it from here).
"""

from __future__ import annotations

import functools
import importlib.abc
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallPoint:
    """Kill on entering the `nth` call of `module.attribute` (before it runs)."""

    module: str
    attribute: str
    nth: int = 1


@dataclass(frozen=True)
class StorePoint:
    """Kill right after the `nth` storage `operation` (write_bytes / copy / delete) whose key matches.

    `after` names a key (substring) that must have been deleted first: a point in the clean-up that
    follows a finished promotion.
    """

    operation: str
    matches: Callable[[str], bool]
    nth: int = 1
    after: str | None = None


POINTS: dict[str, CallPoint | StorePoint] = {
    "ingestion:first-site": CallPoint("ingestion", "read_site", 1),
    "ingestion:third-site": CallPoint("ingestion", "read_site", 3),
    "validation:first-domain": CallPoint("expectations", "validate_domain", 1),
    "validation:finish": CallPoint("expectations", "finish_validation", 1),
    "evaluation:evaluate": CallPoint("checks.evaluation", "evaluate", 1),
    "evaluation:compare": CallPoint("checks.comparison", "compare", 1),
    "publication:history": CallPoint("reporting", "apply_history", 1),
    "publication:render": CallPoint("reporting", "publish", 1),
    "publication:staging-write": StorePoint("write_bytes", lambda key: "/staging/" in key, 5),
    "publication:staging-sealed": StorePoint("write_bytes",
                                             lambda key: "/staging/" in key and key.endswith("/_complete.json")),
    "promotion:journal": StorePoint("write_bytes", lambda key: key.endswith("/promotion.json")),
    "promotion:copy": StorePoint("copy", lambda key: not key.startswith("_audit/"), 3),
    "promotion:marker": StorePoint("copy",
                                   lambda key: not key.startswith("_audit/") and key.endswith("/_complete.json")),
    "promotion:cleanup": StorePoint("delete", lambda key: "/staging/" in key, 2, after="/promotion.json"),
}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Counter:
    point: CallPoint | StorePoint
    calls: int = 0
    armed: bool = field(default=False)

    def hit(self) -> bool:
        self.calls += 1
        return self.calls == self.point.nth


def _wrap_call(module: Any, point: CallPoint) -> None:
    original = getattr(module, point.attribute)
    counter = _Counter(point)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if counter.hit():
            _die()
        return original(*args, **kwargs)

    setattr(module, point.attribute, wrapper)


def _wrap_store(module: Any, point: StorePoint) -> None:
    counter = _Counter(point, armed=point.after is None)
    for cls in (module.LocalStore, module.S3Store):
        for name in ("write_bytes", "copy", "delete"):
            original = getattr(cls, name)

            def wrapper(self: Any, *args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                result = _original(self, *args, **kwargs)
                key = args[1] if _name == "copy" else args[0]
                if _name == "delete" and point.after and point.after in key:
                    counter.armed = True
                elif counter.armed and _name == point.operation and point.matches(key) and counter.hit():
                    _die()
                return result

            setattr(cls, name, wrapper)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patch `module` as soon as it has been executed (every later import sees the wrapped function)."""

    def __init__(self, module: str, patch: Callable[[Any], None]) -> None:
        self.module, self.patch = module, patch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)
        spec = None
        for finder in sys.meta_path:  # whoever would have found it without us
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_then_patch(module: Any) -> None:
            execute(module)
            self.patch(module)

        spec.loader.exec_module = exec_then_patch  # type: ignore[method-assign]
        return spec


def arm(name: str) -> None:
    point = POINTS[name]
    if isinstance(point, CallPoint):
        sys.meta_path.insert(0, _PatchOnImport(point.module, lambda module: _wrap_call(module, point)))
    else:
        sys.meta_path.insert(0, _PatchOnImport("storage.store", lambda module: _wrap_store(module, point)))
