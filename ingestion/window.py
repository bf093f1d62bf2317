"""Which deliveries belong to the night being audited: its cut-off, and for a re-run of a past night the
delivery folders that night saw.

A nightly run audits each site's newest complete delivery stamped before the end of its as-of date
(`at`). Re-running a past night must audit what that night audited, but a folder can be stamped before the
cut-off and still arrive after the night ran (a slow upload, a folder named after its export's time): the
stamp alone let such a re-run audit a newer delivery, replace the night's site queries and change the history
of every later night (a user trial). So a re-run of a night whose run manifest is published, with a later
night published after it, considers only the sites and delivery folders that manifest lists (`seen`, each
folder with the night's status): a folder it does not list is "after the as-of date" for the re-run, and one
the night rejected or saw unfinished is not used even when it reads well now (an upload that finished after
the night ran), each with a reason that says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class NightCutoff:
    """`at`: deliveries stamped at or after it are a later night's. `seen`: for a re-run of a past night, each
    site the night knew with the delivery folders its run manifest lists and the night's status of each (None:
    any folder before `at`)."""

    at: datetime
    seen: Mapping[str, Mapping[str, str]] | None = None

    def sites(self, listed: list[str]) -> list[str]:
        """The listed site folders to audit: all of them, or for a re-run those the night knew."""
        return listed if self.seen is None else [site for site in listed if site in self.seen]

    def folders(self, site: str) -> Mapping[str, str] | None:
        """The delivery folders of `site` the night saw, with its status of each (None: no restriction)."""
        return None if self.seen is None else self.seen.get(site, {})
