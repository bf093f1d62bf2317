"""`generate()`: a whole synthetic multi-site study written to a Store, delivery by delivery.

Sites are processed in chunks of about `CHUNK_SUBJECTS` subjects: the chunk's latent population
and domain rows are built vectorised, then split by site and written file by file (manifest last),
so memory stays bounded however large the study and S3 uploads start while the study is still
being generated. The random stream of a chunk depends only on (seed, chunk number), so the same
arguments always give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import polars as pl

from generator.config import Config, FormatProfile, load_config
from generator.domains import DOMAIN_ORDER, HIDDEN, build_domains, finalize
from generator.population import SiteInfo, draw_population
from generator.problems import Plan, apply_edits, expected_rows, forced_for_chunk, plan_problems
from generator.writers import CONTENT_TYPES, Encoded, encode, manifest_bytes
from storage import Store, join_key

CHUNK_SUBJECTS = 20_000
GROUND_TRUTH = "ground_truth.json"
#: the deliveries written per site, relative to the as-of date (nights at 23:00 UTC)
CURRENT_DAYS, INCOMPLETE_DAYS, HISTORY_DAYS = 1, 2, 8


@dataclass(frozen=True)
class GenerationSummary:
    """What `generate` wrote: counts, every object key, and the ground truth (as in ground_truth.json)."""

    study: str
    sites: int
    subjects: int
    files: int
    rows: dict[str, int]
    keys: tuple[str, ...]
    ground_truth: dict[str, Any] = field(repr=False)


def delivery_name(as_of: date, days_before: int) -> str:
    """`YYYYMMDDTHHMMSSZ` of the night delivery `days_before` days before the as-of date."""
    return (as_of - timedelta(days=days_before)).strftime("%Y%m%d") + "T230000Z"


def _stamp(as_of: date, days_before: int) -> datetime:
    return datetime.combine(as_of - timedelta(days=days_before), time(23, 0), tzinfo=UTC)


def plan_sites(cfg: Config, n_sites: int, n_subjects: int, rng: np.random.Generator) -> list[SiteInfo]:
    """Site ids 101, 102, ...; uneven recruitment (a few big sites, many small ones)."""
    if n_sites < 1 or n_subjects < n_sites:
        raise ValueError("need at least one site and one subject per site")
    floor = min(10, n_subjects // n_sites)
    weights = rng.lognormal(0.0, 0.5, n_sites)
    counts = floor + rng.multinomial(n_subjects - floor * n_sites, weights / weights.sum())
    archetypes = cfg.sites.archetypes
    return [SiteInfo(i, str(101 + i), int(counts[i]), archetypes[i % len(archetypes)]) for i in range(n_sites)]


def _format_profile(cfg: Config, site: SiteInfo, formats: str) -> FormatProfile:
    if formats == "mixed":
        return cfg.sites.format_profiles[site.archetype.formats]
    if formats == "csv":
        return cfg.sites.format_profiles["csv_utf8"]
    if formats in cfg.sites.format_profiles:
        return cfg.sites.format_profiles[formats]
    raise ValueError(f"formats must be 'mixed', 'csv' or a format profile of sites.yaml, not {formats!r}")


def snapshot(frames: dict[str, pl.DataFrame], cutoff: date) -> dict[str, pl.DataFrame]:
    """The site's data as an earlier cumulative delivery held it: subjects consented by `cutoff`,
    rows dated by then, dosing and end dates after it not yet known."""
    dm = frames["dm"].filter(pl.col("_D") <= cutoff)
    subjects = dm.select("USUBJID")
    later = pl.lit(cutoff.isoformat())
    out = {}
    for name, frame in frames.items():
        frame = frame.join(subjects, on="USUBJID", how="semi", maintain_order="left")
        frame = frame.filter(pl.col("_D").is_null() | (pl.col("_D") <= cutoff))
        for column in ("RFXSTDTC", "CMENDTC", "PRENDTC"):
            if column in frame.columns:
                frame = frame.with_columns(
                    pl.when(pl.col(column) > later).then(None).otherwise(pl.col(column)).alias(column)
                )
        if name == "cm":
            frame = frame.with_columns(
                pl.when(pl.col("CMENDTC").is_null() & pl.col("CMSTDTC").is_not_null()).then(pl.lit("ONGOING"))
                .otherwise(pl.col("CMENRF")).alias("CMENRF")
            )
        out[name] = frame
    return out


class _Writer:
    """Writes deliveries of one study and remembers keys, counts and data-quality rows."""

    def __init__(self, out: Store, cfg: Config, study: str, as_of: date) -> None:
        self.out, self.cfg, self.study, self.as_of = out, cfg, study, as_of
        self.keys: list[str] = []
        self.files = 0
        self.rows = dict.fromkeys(DOMAIN_ORDER, 0)
        self.data_quality: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self.out.write_bytes(key, data, content_type=content_type)
        self.keys.append(key)

    def delivery(self, site: SiteInfo, frames: dict[str, pl.DataFrame], profile: FormatProfile, days_before: int,
                 *, current: bool, role: str = "", manifest: bool = True) -> str:
        name = delivery_name(self.as_of, days_before)
        stamp = _stamp(self.as_of, days_before)
        prefix = join_key(self.study, site.siteid, name)
        entries: list[dict[str, object]] = []
        for domain in DOMAIN_ORDER:
            frame = frames[domain]
            if current and role == "missing_column":
                frame = frame.drop("VSORRESU", strict=False) if domain == "vs" else frame
            visible = frame.drop(*HIDDEN)
            fmt = profile.format_of(domain)
            encoded = encode(visible, domain, fmt, profile, self.cfg.study.numeric_columns, stamp)
            entry = encoded.manifest_entry()
            key = join_key(prefix, encoded.name)
            if current and role == "no_usable" and domain == "tr":
                entries.append(entry)  # listed in the manifest, never uploaded
                continue
            if not current and role == "no_usable" and domain == "lb":
                entry["rows"] = encoded.rows + 1
            data = encoded.data
            if current and role == "checksum_mismatch" and domain == "lb":
                data = self._tampered(visible, domain, fmt, profile, stamp)
            self._put(key, data, CONTENT_TYPES[fmt])
            self.files += 1
            entries.append(entry)
            if current:
                self.rows[domain] += encoded.rows
                self._record_quality(frame, site, key, domain)
        if manifest:
            self._put(join_key(prefix, "manifest.json"),
                      manifest_bytes(self.study, site.siteid, name, entries), CONTENT_TYPES["json"])
        return name

    def _tampered(self, visible: pl.DataFrame, domain: str, fmt: str, profile: FormatProfile,
                  stamp: datetime) -> bytes:
        """The file re-exported after the manifest was written: one result corrected, same row count."""
        changed = visible.with_columns(
            pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("999")).otherwise(pl.col("LBORRES")).alias("LBORRES")
        )
        encoded: Encoded = encode(changed, domain, fmt, profile, self.cfg.study.numeric_columns, stamp)
        return encoded.data

    def _record_quality(self, frame: pl.DataFrame, site: SiteInfo, key: str, domain: str) -> None:
        marked = frame.with_row_index("_ROW", offset=1).filter(pl.col("_DQ").is_not_null())
        for row in marked.select("_ROW", "USUBJID", "_DQ", "_DQVAR", "_PROBLEM").iter_rows(named=True):
            self.data_quality.append({
                "problem": row["_PROBLEM"], "kind": row["_DQ"], "site": site.siteid, "usubjid": row["USUBJID"],
                "file": key, "domain": domain.upper(), "variable": row["_DQVAR"], "row": row["_ROW"],
                "source": f"{key}:{row['_ROW']}",
            })


def generate(
    out: Store,
    *,
    study: str = "SZ003",
    sites: int = 8,
    subjects: int = 400,
    seed: int = 0,
    as_of: date,
    formats: str = "mixed",
    plant_problems: bool = True,
    history: bool = True,
) -> GenerationSummary:
    """Write a synthetic multi-site screening study under `<study>/` of `out` (see docs/generator.md)."""
    cfg = load_config()
    site_list = plan_sites(cfg, sites, subjects, np.random.default_rng([seed, 0]))
    plan: Plan = plan_problems(cfg, site_list, np.random.default_rng([seed, 1]),
                               enabled=plant_problems, history=history)
    writer = _Writer(out, cfg, study, as_of)
    expected: list[dict[str, Any]] = []
    decisions: dict[str, int] = {}
    site_truth: list[dict[str, Any]] = []

    for chunk_no, (first, last) in enumerate(_chunks(site_list)):
        chunk_sites = site_list[first:last]
        rng = np.random.default_rng([seed, 2, chunk_no])
        latent = draw_population(cfg, chunk_sites, rng, study=study, as_of=as_of,
                                 forced=forced_for_chunk(plan, first, last))
        frames = build_domains(latent, cfg, rng)
        chunk_planted = [p for p in plan.subject if first <= p.site_index < last]
        apply_edits(frames, latent, [_shift(p, first) for p in chunk_planted], chunk_sites, study, cfg)
        frames = {name: finalize(frame, name, cfg) for name, frame in frames.items()}
        by_site = {name: frame.partition_by("_SITE", as_dict=True, maintain_order=True)
                   for name, frame in frames.items()}
        for p in chunk_planted:
            site = site_list[p.site_index]
            expected.extend(expected_rows(p.problem, p.pid, site.siteid, p.usubjid(study, site_list)))
        for site in chunk_sites:
            site_frames = {name: parts.get((site.siteid,), frames[name].clear())
                           for name, parts in by_site.items()}
            role, pid = plan.site_roles.get(site.index, ("", ""))
            truth = _write_site(writer, cfg, site, site_frames, _format_profile(cfg, site, formats),
                                role=role, history=history, as_of=as_of)
            if role == "missing_column":
                problem = plan.site_problems[pid]
                vs_key = join_key(study, site.siteid, truth["deliveries"][-1],
                                  f"vs.{_format_profile(cfg, site, formats).format_of('vs')}")
                writer.data_quality.append({
                    "problem": pid, "kind": "missing_required_column", "site": site.siteid, "usubjid": None,
                    "file": vs_key, "domain": "VS", "variable": "VSORRESU", "row": None, "source": vs_key,
                })
                enrolled = latent.filter((pl.col("SITEID") == site.siteid) & (pl.col("DECISION") == "ENROLLED"))
                for usubjid in enrolled["USUBJID"].to_list():
                    expected.extend(
                        {"problem": pid, "kind": problem.kind, "site": site.siteid, "usubjid": usubjid,
                         "check_id": c, "class": k, "severity": s}
                        for c, k, s in problem.expect_site_enrolled
                    )
            site_truth.append({**truth, "problem": pid or None})
            writer.deliveries.extend(_delivery_truth(plan, site, role, pid, truth))
        counted = latent.group_by("DECISION").len()
        for decision, count in counted.iter_rows():
            decisions[decision] = decisions.get(decision, 0) + int(count)

    ground_truth = _ground_truth(study, seed, as_of, formats, plan, site_list, site_truth, expected, writer,
                                 decisions, subjects)
    key = join_key(study, GROUND_TRUTH)
    writer._put(key, (json.dumps(ground_truth, indent=1, ensure_ascii=False) + "\n").encode("utf-8"),
                CONTENT_TYPES["json"])
    return GenerationSummary(study, len(site_list), subjects, writer.files, dict(writer.rows),
                             tuple(writer.keys), ground_truth)


def _chunks(site_list: list[SiteInfo]) -> list[tuple[int, int]]:
    bounds, start, size = [], 0, 0
    for i, site in enumerate(site_list):
        size += site.n_subjects
        if size >= CHUNK_SUBJECTS:
            bounds.append((start, i + 1))
            start, size = i + 1, 0
    if start < len(site_list):
        bounds.append((start, len(site_list)))
    return bounds


def _shift(p: Any, first: int) -> Any:
    from generator.problems import Planted

    return Planted(p.pid, p.problem, p.site_index - first, p.number)


def _write_site(writer: _Writer, cfg: Config, site: SiteInfo, frames: dict[str, pl.DataFrame],
                profile: FormatProfile, *, role: str, history: bool, as_of: date) -> dict[str, Any]:
    written: list[str] = []
    if history or role == "no_usable":
        old = snapshot(frames, as_of - timedelta(days=HISTORY_DAYS))
        written.append(writer.delivery(site, old, profile, HISTORY_DAYS, current=False, role=role))
    if role == "incomplete":
        partial = snapshot(frames, as_of - timedelta(days=INCOMPLETE_DAYS))
        partial = {k: v for k, v in partial.items() if k in ("dm", "ds", "lb")}
        partial = {**{k: v.clear() for k, v in frames.items()}, **partial}
        written.append(writer.delivery(site, partial, profile, INCOMPLETE_DAYS, current=False, manifest=False))
    current = writer.delivery(site, frames, profile, CURRENT_DAYS, current=True, role=role)
    written.append(current)
    if role == "no_usable":
        audited = None
    elif role == "checksum_mismatch":
        audited = delivery_name(as_of, HISTORY_DAYS)
    else:
        audited = current
    return {
        "site": site.siteid, "subjects": site.n_subjects, "units": site.archetype.units,
        "formats": {d: profile.format_of(d) for d in DOMAIN_ORDER},
        "encoding": profile.encoding, "separator": profile.separator, "decimal": profile.decimal,
        "language": site.archetype.language, "ie": site.archetype.ie, "country": site.archetype.country,
        "deliveries": sorted(set(written)), "audited_delivery": audited, "role": role or None,
        "incomplete_delivery": delivery_name(as_of, INCOMPLETE_DAYS) if role == "incomplete" else None,
    }


def _delivery_truth(plan: Plan, site: SiteInfo, role: str, pid: str, truth: dict[str, Any]) -> list[dict[str, Any]]:
    if role not in ("checksum_mismatch", "incomplete", "no_usable"):
        return []
    kind = plan.site_problems[pid].kind
    deliveries = truth["deliveries"]
    if role == "checksum_mismatch":
        return [{"problem": pid, "kind": kind, "site": site.siteid, "delivery": deliveries[-1],
                 "expected_status": "REJECTED", "file": "lb", "audited_instead": truth["audited_delivery"]}]
    if role == "incomplete":
        return [{"problem": pid, "kind": kind, "site": site.siteid, "delivery": truth["incomplete_delivery"],
                 "expected_status": "INCOMPLETE"}]
    return [{"problem": pid, "kind": kind, "site": site.siteid, "delivery": d, "expected_status": "REJECTED",
             "reason": "listed file missing" if d == deliveries[-1] else "row count mismatch"}
            for d in deliveries]


def _ground_truth(study: str, seed: int, as_of: date, formats: str, plan: Plan, site_list: list[SiteInfo],
                  site_truth: list[dict[str, Any]], expected: list[dict[str, Any]], writer: _Writer,
                  decisions: dict[str, int], subjects: int) -> dict[str, Any]:
    problems = []
    for p in plan.subject:
        site = site_list[p.site_index]
        problems.append({"problem": p.pid, "kind": p.problem.kind, "level": "subject", "site": site.siteid,
                         "usubjid": p.usubjid(study, site_list), "description": p.problem.description})
    for index, (_role, pid) in sorted(plan.site_roles.items()):
        problem = plan.site_problems[pid]
        problems.append({"problem": pid, "kind": problem.kind, "level": problem.level,
                         "site": site_list[index].siteid, "usubjid": None, "description": problem.description})
    problems.sort(key=lambda item: item["problem"])
    return {
        "study": study, "seed": seed, "as_of": as_of.isoformat(), "formats": formats,
        "subjects": {"screened": subjects, **{k: decisions.get(k, 0) for k in sorted(decisions)}},
        "sites": site_truth,
        "problems": problems,
        "expected_discrepancies": expected,
        "data_quality": writer.data_quality,
        "deliveries": writer.deliveries,
        "not_planted": plan.skipped,
    }
