"""Planting the problems of problems.yaml: who gets which, the row edits, and what the audit must say.

Planning happens once for the whole study (a loop over the couple of dozen problems, not over
subjects): delivery-level problems take the last sites, the missing-column problem the smallest
remaining sites (a missing column, a test never collected), and subject problems are spread over the
other sites, one subject each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from generator.config import Config, Edit, Problem
from generator.population import Forced, SiteInfo
from generator.render import render_measures

DELIVERY_ROLES = ("no_usable", "checksum_mismatch", "incomplete")


@dataclass(frozen=True)
class Planted:
    """One subject-level problem placed on one subject."""

    pid: str  # P01, P02, ...
    problem: Problem
    site_index: int
    number: int

    def usubjid(self, study: str, sites: list[SiteInfo]) -> str:
        return f"{study}-{sites[self.site_index].siteid}-{self.number:04d}"


@dataclass(frozen=True)
class Plan:
    """Where every problem goes; `skipped` lists the kinds the study was too small to hold."""

    subject: list[Planted]
    site_roles: dict[int, tuple[str, str]]  # site index -> (role, problem id)
    site_problems: dict[str, Problem]  # problem id -> problem (site and delivery level)
    skipped: list[str]


def _fits(site: SiteInfo, problem: Problem, cfg: Config) -> bool:
    need = problem.site
    profile = cfg.sites.unit_profiles[site.archetype.units]
    if need.ie is not None and site.archetype.ie != need.ie:
        return False
    if need.lymphocytes is not None and profile.lymphocytes != need.lymphocytes:
        return False
    return all(profile.units.get(code) == unit for code, unit in need.units.items())


def plan_problems(cfg: Config, sites: list[SiteInfo], rng: np.random.Generator, *, enabled: bool,
                  history: bool) -> Plan:
    """Decide the site and subject of every planted problem (deterministic for the rng)."""
    if not enabled:
        return Plan([], {}, {}, [])
    problems = cfg.problems.problems
    roles: dict[int, tuple[str, str]] = {}
    site_problems: dict[str, Problem] = {}
    skipped: list[str] = []
    free = list(range(len(sites)))
    for k, problem in enumerate(problems):
        pid = f"P{k + 1:02d}"
        if problem.level == "delivery":
            if len(free) < 3:
                skipped.append(problem.kind)
                continue
            role = problem.delivery or ""
            if role == "checksum_mismatch" and not history:
                skipped.append(problem.kind)  # without history there is nothing to fall back to
                continue
            index = free.pop()  # the last free site
            roles[index] = (role, pid)
            site_problems[pid] = problem
    for k, problem in enumerate(problems):
        pid = f"P{k + 1:02d}"
        if problem.level == "site":
            if len(free) < 3:
                skipped.append(problem.kind)
                continue
            index = min(free, key=lambda i: (sites[i].n_subjects, i))
            free.remove(index)
            roles[index] = ("never_collects" if problem.never_collects else "missing_column", pid)
            site_problems[pid] = problem
    # subject problems: any site still audited normally (the incomplete-delivery site included)
    free = [i for i in range(len(sites)) if roles.get(i, ("incomplete",))[0] == "incomplete"]
    used: dict[int, list[int]] = {}
    order = {i: list(rng.permutation(sites[i].n_subjects) + 1) for i in free}
    planted: list[Planted] = []
    for k, problem in enumerate(problems):
        pid = f"P{k + 1:02d}"
        if problem.level != "subject":
            continue
        candidates = [i for i in free if _fits(sites[i], problem, cfg) and order[i]]
        if not candidates:
            skipped.append(problem.kind)
            continue
        index = min(candidates, key=lambda i: (len(used.get(i, [])), i))
        number = int(order[index].pop(0))
        used.setdefault(index, []).append(number)
        planted.append(Planted(pid, problem, index, number))
    return Plan(planted, roles, site_problems, skipped)


def forced_for_chunk(plan: Plan, first: int, last: int) -> list[Forced]:
    """The latent overrides of the planted subjects whose site is in [first, last)."""
    return [
        Forced(p.site_index - first, p.number, dict(p.problem.subject))
        for p in plan.subject if first <= p.site_index < last
    ]


def _value(spec: Any, edit: Edit, subject: dict[str, Any], cfg: Config) -> pl.Expr:
    if spec is None or spec == "":
        return pl.lit(None, dtype=pl.String)
    if isinstance(spec, dict) and "date" in spec:
        day = subject[spec["date"]] + timedelta(days=int(spec.get("days", 0)))
        return pl.lit(day.isoformat())
    if isinstance(spec, dict) and "protocol_value" in spec:
        measure = edit.where.get("LBTESTCD") or edit.where.get("VSTESTCD") or edit.where.get("FATESTCD")
        one = pl.DataFrame({"UNITS": [subject["UNITS"]], "MEASURE": [measure],
                            "VALUE": [float(spec["protocol_value"])]})
        text = render_measures(one, cfg)["ORRES"][0]
        return pl.lit(f"{spec.get('prefix', '')}{text}")
    return pl.lit(str(spec))


def apply_edits(frames: dict[str, pl.DataFrame], latent: pl.DataFrame, planted: list[Planted],
                sites: list[SiteInfo], study: str, cfg: Config) -> None:
    """Change the built rows of each planted subject in place (`frames` is updated)."""
    for p in planted:
        usubjid = p.usubjid(study, sites)
        subject = latent.filter(pl.col("USUBJID") == usubjid).row(0, named=True)
        for edit in p.problem.edits:
            frame = frames[edit.domain]
            mask = pl.col("USUBJID") == usubjid
            for column, value in edit.where.items():
                mask = mask & (pl.col(column) == value)
            if edit.first:
                mask = mask & (mask.cast(pl.Int64).cum_sum() == 1)
            if edit.drop:
                frames[edit.domain] = frame.filter(~mask)
                continue
            if edit.duplicate:
                frame = pl.concat([frame, frame.filter(mask)])
            frame = frame.with_columns(
                pl.when(mask).then(_value(v, edit, subject, cfg)).otherwise(pl.col(c)).alias(c)
                for c, v in edit.set.items()
            ).with_columns(pl.when(mask).then(pl.lit(p.pid)).otherwise(pl.col("_PROBLEM")).alias("_PROBLEM"))
            if edit.data_quality:
                frame = frame.with_columns(
                    pl.when(mask).then(pl.lit(edit.data_quality)).otherwise(pl.col("_DQ")).alias("_DQ"),
                    pl.when(mask).then(pl.lit(edit.variable)).otherwise(pl.col("_DQVAR")).alias("_DQVAR"),
                )
            frames[edit.domain] = frame


def expected_rows(problem: Problem, pid: str, site: str, usubjid: str) -> list[dict[str, str]]:
    return [
        {"problem": pid, "kind": problem.kind, "site": site, "usubjid": usubjid,
         "check_id": check, "class": klass, "severity": severity}
        for check, klass, severity in problem.expect
    ]
