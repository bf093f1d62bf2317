"""Site habits of a generation profile (profiles.yaml): real-world mess at scale, on top of planted problems.

The `dirty` profile gives a share of the sites one habit each (rows exported twice, no reference
ranges, tests never collected, dates written DD/MM/YYYY), so that a study of 10,000 subjects yields
the hundred thousand findings a real multi-site study can produce, and the audit's publication is
measured against them (`benchmarks/run.py --cases dirty`). Habits go only to sites without a planted
problem, so the planted problems' ground truth stays exact; the ground truth lists each habit's sites.
Every change is a polars expression over the chunk's rows of those sites, never a loop over rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from generator.config import Profile

HIDDEN_ORDER = ["_SUBJ", "_D", "_ORD"]


def plan_habits(profile: Profile, n_sites: int, taken: set[int], rng: np.random.Generator) -> dict[int, str]:
    """Site index -> habit, for `share` of the sites not in `taken` per habit (at most one habit a site)."""
    free = [i for i in range(n_sites) if i not in taken]
    order = list(rng.permutation(free)) if free else []
    habits: dict[int, str] = {}
    start = 0
    for name, share in profile.habits():
        count = round(share * len(free))
        for index in order[start:start + count]:
            habits[int(index)] = name
        start += count
    return habits


def apply_habits(frames: dict[str, pl.DataFrame], habits: dict[int, str], profile: Profile) -> dict[str, pl.DataFrame]:
    """The chunk's domain frames with each habit applied to its sites' rows (`habits`: chunk position ->
    habit). Rows stay sorted by subject, date and order, so each site's rows remain one slice."""
    def sites(name: str) -> pl.Expr:
        return pl.col("_SITEPOS").is_in([pos for pos, habit in habits.items() if habit == name])

    out = dict(frames)
    if profile.duplicate_rows and any(h == "duplicate_rows" for h in habits.values()):
        for domain in profile.duplicate_rows.domains:
            frame = out[domain]
            out[domain] = pl.concat([frame, frame.filter(sites("duplicate_rows"))]).sort(
                HIDDEN_ORDER, nulls_last=False, maintain_order=True)
    if profile.no_reference_range:
        out["lb"] = out["lb"].with_columns(
            pl.when(sites("no_reference_range")).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("LBORNRLO", "LBORNRHI"))
    if profile.never_collects:
        for domain, test in profile.never_collects.tests:
            out[domain] = out[domain].filter(~(sites("never_collects") & (pl.col(f"{domain.upper()}TESTCD") == test)))
    if profile.dates_dmy:
        for domain, columns in profile.dates_dmy.columns.items():
            out[domain] = out[domain].with_columns(
                pl.when(sites("dates_dmy") & (pl.col(c).str.len_chars() == 10))
                .then(pl.concat_str([pl.col(c).str.slice(8, 2), pl.col(c).str.slice(5, 2), pl.col(c).str.slice(0, 4)],
                                    separator="/"))
                .otherwise(pl.col(c)).alias(c)
                for c in columns)
    return out
