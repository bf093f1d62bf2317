"""The study's site folders in the landing area, and the landing roots that cannot be right.

Sites deliver to `<landing>/<STUDYID>/<SITEID>/<delivery>/` (DTS section 1). A study without site
folders is normal before its first delivery, and the night reports "nothing to audit". But two
configuration mistakes look exactly like that and must not: a landing root that does not exist (a
typo in the path, an unmounted share), and a landing root one level too deep (`…/landing/SZ003`, whose
folders are the sites themselves). Both are refused with one line naming the study and the path, so
that the operator fixes the configuration instead of chasing sites that did deliver.
"""

from __future__ import annotations

from storage import Store


class LandingError(ValueError):
    """The configured landing root cannot be the study's landing area; the message says which and why."""


def list_sites(store: Store, study: str) -> list[str]:
    """Site folders directly under `<study>/` (objects lying there, e.g. ground_truth.json, are not sites).

    Raises `LandingError` when there are none because the root is missing or is the study's own folder.
    """
    sites = store.list_dirs(study)
    if not sites:
        check_landing_root(store, study)
    return sites


def check_landing_root(store: Store, study: str) -> None:
    """Refuse a landing root that does not exist, or that is the study's folder rather than the one above it.

    Called only when the study has no site folders, so a normal night pays nothing for it. The second
    check needs evidence: the root is named like the study *and* holds folders (an empty root of that
    name is only empty).
    """
    if not store.exists():
        raise LandingError(f"study {study}: the landing root {store.uri} does not exist "
                           "(check the path or bucket in the study's `landing`)")
    root = store.uri.rstrip("/")
    parent, _, name = root.rpartition("/")
    if name == study and not parent.endswith(":/"):
        found = store.list_dirs("")
        if found:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise LandingError(
                f"study {study}: the landing root {store.uri} looks like the study's own folder (it holds "
                f"{shown}, and no {study}/): sites deliver to <landing>/{study}/<site>/, so set `landing` "
                f"to {parent}")
