"""`generate()`: a whole synthetic multi-site study written to a Store, delivery by delivery.

Sites are processed in chunks of about `CHUNK_SUBJECTS` subjects: the chunk's latent population
and domain rows are built vectorised, then each domain is encoded for every site of the chunk at
once (one CSV serialisation per convention, split at the sites' row offsets) and written file by
file, manifest last. Memory stays bounded however large the study is, and S3 uploads start while
the study is still being generated. The random stream of a chunk depends only on (seed, chunk
number), so the same arguments always give the same bytes.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import polars as pl

from generator.config import Config, FormatProfile, load_config
from generator.domains import DOMAIN_ORDER, build_domains, finalize
from generator.habits import apply_habits, plan_habits
from generator.population import SiteInfo, draw_population
from generator.problems import Plan, Planted, apply_edits, expected_rows, forced_for_chunk, plan_problems
from generator.writers import CONTENT_TYPES, Encoded, encode, encode_csv_sites, manifest_bytes, manifest_defaults
from storage import Store, join_key

CHUNK_SUBJECTS = 10_000
UPLOAD_THREADS = 8  # concurrent object writes (S3 round trips overlap; local writes too)
MAX_IN_FLIGHT = 64  # bounded, so that memory does not grow with the study
GROUND_TRUTH = "ground_truth.json"
#: the deliveries written per site, in days before the as-of date (nights at 23:00 UTC)
CURRENT_DAYS, INCOMPLETE_DAYS, HISTORY_DAYS = 1, 2, 8
INCOMPLETE_DOMAINS = ("dm", "ds", "lb")  # what had been uploaded when the upload stalled


@dataclass(frozen=True)
class GenerationSummary:
    """What `generate` wrote: counts, every object key, and the ground truth (as in ground_truth.json).

    `rows` counts the data rows per domain in the newest delivery of every site.
    """

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


def plan_sites(cfg: Config, n_sites: int, n_subjects: int, rng: np.random.Generator) -> list[SiteInfo]:
    """Site ids 101, 102, ...; uneven recruitment (a few big sites, many small ones)."""
    if n_sites < 1 or n_subjects < n_sites:
        raise ValueError("need at least one site and one subject per site")
    floor = min(10, n_subjects // n_sites)
    weights = rng.lognormal(0.0, 0.5, n_sites)
    counts = floor + rng.multinomial(n_subjects - floor * n_sites, weights / weights.sum())
    archetypes = cfg.sites.archetypes
    return [SiteInfo(i, str(101 + i), int(counts[i]), archetypes[i % len(archetypes)]) for i in range(n_sites)]


def format_profile(cfg: Config, site: SiteInfo, formats: str) -> FormatProfile:
    """The site's file conventions: its archetype's ("mixed"), plain UTF-8 CSV ("csv"), or a named profile."""
    if formats == "mixed":
        return cfg.sites.format_profiles[site.archetype.formats]
    if formats == "csv":
        return cfg.sites.format_profiles["csv_utf8"]
    if formats in cfg.sites.format_profiles:
        return cfg.sites.format_profiles[formats]
    raise ValueError(f"formats must be 'mixed', 'csv' or a format profile of sites.yaml, not {formats!r}")


def snapshot(frames: dict[str, pl.DataFrame], cutoff: date) -> dict[str, pl.DataFrame]:
    """The data as an earlier cumulative delivery held it: subjects consented by `cutoff`, rows dated
    by then, and dosing and end dates after it not yet known."""
    consented = frames["dm"].filter(pl.col("_D") <= cutoff)["_SUBJ"].unique()
    later = pl.lit(cutoff.isoformat())
    out = {}
    for name, frame in frames.items():
        frame = frame.filter(pl.col("_SUBJ").is_in(consented) & (pl.col("_D").is_null() | (pl.col("_D") <= cutoff)))
        frame = frame.with_columns(
            pl.when(pl.col(c) > later).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("RFXSTDTC", "CMENDTC", "PRENDTC") if c in frame.columns
        )
        if name == "cm":
            frame = frame.with_columns(
                pl.when(pl.col("CMENDTC").is_null() & pl.col("CMSTDTC").is_not_null()).then(pl.lit("ONGOING"))
                .otherwise(pl.col("CMENRF")).alias("CMENRF")
            )
        out[name] = frame
    return out


@dataclass(frozen=True)
class _Version:
    """One delivery night of the chunk's sites: which frames, which sites, and whether it is complete."""

    days_before: int
    frames: dict[str, pl.DataFrame]
    sites: tuple[int, ...]  # site positions in the chunk
    current: bool
    manifest: bool = True


class _Writer:
    """Writes the deliveries of one study and remembers keys, counts and planted data-quality rows."""

    def __init__(self, out: Store, cfg: Config, study: str, as_of: date, formats: str,
                 pool: ThreadPoolExecutor) -> None:
        self.out, self.cfg, self.study, self.as_of, self.formats = out, cfg, study, as_of, formats
        self.keys: list[str] = []
        self.files = 0
        self.rows = dict.fromkeys(DOMAIN_ORDER, 0)
        self.data_quality: list[dict[str, Any]] = []
        self.pool = pool
        self.pending: deque[Future[None]] = deque()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Upload in the background (a bounded number at a time); `flush` waits for all of them."""
        while len(self.pending) >= MAX_IN_FLIGHT:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self.out.write_bytes, key, data, content_type))
        self.keys.append(key)

    def flush(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def write_version(self, version: _Version, sites: list[SiteInfo], roles: dict[int, str]) -> None:
        name = delivery_name(self.as_of, version.days_before)
        stamp = datetime.combine(self.as_of - timedelta(days=version.days_before), time(23, 0), tzinfo=UTC)
        profiles = [format_profile(self.cfg, s, self.formats) for s in sites]
        entries: dict[int, list[dict[str, object]]] = {pos: [] for pos in version.sites}
        for domain in DOMAIN_ORDER:
            if domain not in version.frames:
                continue
            frame = version.frames[domain]
            if len(version.sites) < len(sites):
                frame = frame.filter(pl.col("_SITEPOS").is_in(list(version.sites)))
            counts = np.bincount(frame["_SITEPOS"].to_numpy(), minlength=len(sites)).astype(np.int64)
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
            visible = frame.select(self.cfg.study.columns_for(domain, standardized=True))
            encoded = self._encode_all(visible, domain, version.sites, counts, offsets, profiles, stamp)
            for pos in version.sites:
                site, profile, item = sites[pos], profiles[pos], encoded[pos]
                role = roles.get(pos, "") if version.current else ""
                if role == "missing_column" and domain == "vs":
                    item = self._slice_encoded(visible.drop("VSORRESU"), domain, offsets[pos], counts[pos],
                                               profile, stamp)
                entry = item.manifest_entry()
                key = join_key(self.study, site.siteid, name, item.name)
                entries[pos].append(entry)
                if role == "no_usable" and domain == "tr":
                    continue  # listed in the manifest, never uploaded
                if not version.current and roles.get(pos) == "no_usable" and domain == "lb":
                    entry["rows"] = item.rows + 1
                data = item.data
                if role == "checksum_mismatch" and domain == "lb":
                    tampered = visible.slice(offsets[pos], counts[pos]).with_columns(
                        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("999")).otherwise(pl.col("LBORRES"))
                        .alias("LBORRES"))
                    data = self._slice_encoded(tampered, domain, 0, counts[pos], profile, stamp).data
                self.put(key, data, CONTENT_TYPES[item.name.rsplit(".", 1)[1]])
                self.files += 1
                if version.current:
                    self.rows[domain] += item.rows
            if version.current:
                self._record_quality(frame, sites, offsets, name, profiles, domain)
        self.flush()  # every data file of the delivery is stored before its manifest is written
        if version.manifest:
            for pos in version.sites:
                site = sites[pos]
                self.put(join_key(self.study, site.siteid, name, "manifest.json"),
                         manifest_bytes(self.study, site.siteid, name, entries[pos],
                                        manifest_defaults(profiles[pos])), CONTENT_TYPES["json"])
            self.flush()

    def _columns(self, visible: pl.DataFrame, domain: str, profile: FormatProfile) -> list[str]:
        """The site's columns of this domain (standardized results only where the site sends them)."""
        return [c for c in self.cfg.study.columns_for(domain, profile.standardized) if c in visible.columns]

    def _slice_encoded(self, visible: pl.DataFrame, domain: str, offset: int, count: int,
                       profile: FormatProfile, stamp: datetime) -> Encoded:
        fmt = profile.format_of(domain)
        rows = visible.select(self._columns(visible, domain, profile)).slice(int(offset), int(count))
        return encode(rows, domain, fmt, profile, self.cfg.study.numeric_columns, stamp)

    def _encode_all(self, visible: pl.DataFrame, domain: str, positions: tuple[int, ...], counts: np.ndarray,
                    offsets: np.ndarray, profiles: list[FormatProfile], stamp: datetime) -> dict[int, Encoded]:
        """Every site's file of one domain; CSV sites sharing a convention are serialised together."""
        out: dict[int, Encoded] = {}
        csv_groups: dict[tuple[str, str, str, bool], list[int]] = {}
        for pos in positions:
            profile = profiles[pos]
            if profile.format_of(domain) == "csv":
                key = (profile.separator, profile.decimal, profile.encoding, profile.standardized)
                csv_groups.setdefault(key, []).append(pos)
            else:
                out[pos] = self._slice_encoded(visible, domain, offsets[pos], counts[pos], profile, stamp)
        for group in csv_groups.values():
            rows = visible if len(group) == len(positions) else visible.filter(
                pl.Series(np.repeat(np.isin(np.arange(len(counts)), group), counts))
            )
            rows = rows.select(self._columns(visible, domain, profiles[group[0]]))
            out.update(encode_csv_sites(rows, domain, group, counts, profiles[group[0]],
                                        self.cfg.study.numeric_columns))
        return out

    def _record_quality(self, frame: pl.DataFrame, sites: list[SiteInfo], offsets: np.ndarray, name: str,
                        profiles: list[FormatProfile], domain: str) -> None:
        marked = frame.with_row_index("_ROW").filter(pl.col("_DQ").is_not_null())
        grouped = self.cfg.problems.grouped_kinds()
        for row in marked.select("_ROW", "_SITEPOS", "USUBJID", "_DQ", "_DQVAR", "_PROBLEM").iter_rows(named=True):
            pos = row["_SITEPOS"]
            number = int(row["_ROW"] - offsets[pos] + 1)
            key = join_key(self.study, sites[pos].siteid, name, f"{domain}.{profiles[pos].format_of(domain)}")
            last = self.data_quality[-1] if self.data_quality else None
            if (row["_DQ"] in grouped and last is not None and last["problem"] == row["_PROBLEM"]
                    and last["file"] == key):
                last["rows"].append(number)  # the copies of a duplicated key: one finding, at its first row
                continue
            self.data_quality.append({
                "problem": row["_PROBLEM"], "kind": row["_DQ"], "site": sites[pos].siteid,
                "usubjid": row["USUBJID"], "file": key, "domain": domain.upper(), "variable": row["_DQVAR"],
                "row": number, "source": f"{key}:{number}", **({"rows": [number]} if row["_DQ"] in grouped else {}),
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
    profile: str = "standard",
) -> GenerationSummary:
    """Write a synthetic multi-site screening study under `<study>/` of `out` (see docs/generator.md).

    Every site gets its newest delivery the night before `as_of` (and, with `history`, an older
    complete one a week earlier); `<study>/ground_truth.json` says what the audit must find.
    `profile` (profiles.yaml): `standard`, or `dirty` for sites with real-world habits at scale.
    """
    cfg = load_config()
    if profile not in cfg.profiles.profiles:
        raise ValueError(f"profile must be one of {sorted(cfg.profiles.profiles)}, not {profile!r}")
    site_list = plan_sites(cfg, sites, subjects, np.random.default_rng([seed, 0]))
    for site in site_list:
        format_profile(cfg, site, formats)  # fail before writing anything
    plan: Plan = plan_problems(cfg, site_list, np.random.default_rng([seed, 1]),
                               enabled=plant_problems, history=history)
    roles = {index: role for index, (role, _) in plan.site_roles.items()}
    taken = set(roles) | {p.site_index for p in plan.subject}
    habits = plan_habits(cfg.profiles.profiles[profile], len(site_list), taken, np.random.default_rng([seed, 3]))
    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="generator-upload") as pool:
        return _generate(out, cfg, site_list, plan, roles, pool, study=study, seed=seed, as_of=as_of,
                         formats=formats, history=history, subjects=subjects, profile=profile, habits=habits)


def _generate(out: Store, cfg: Config, site_list: list[SiteInfo], plan: Plan, roles: dict[int, str],
              pool: ThreadPoolExecutor, *, study: str, seed: int, as_of: date, formats: str, history: bool,
              subjects: int, profile: str, habits: dict[int, str]) -> GenerationSummary:
    writer = _Writer(out, cfg, study, as_of, formats, pool)
    audited_subjects: dict[str, int] = {}
    expected: list[dict[str, Any]] = []
    decisions: dict[str, int] = {}
    features: dict[str, dict[str, Any]] = {}

    for chunk_no, (first, last) in enumerate(_chunks(site_list)):
        chunk_sites = site_list[first:last]
        rng = np.random.default_rng([seed, 2, chunk_no])
        latent = draw_population(cfg, chunk_sites, rng, study=study, as_of=as_of,
                                 forced=forced_for_chunk(plan, first, last))
        frames = build_domains(latent, cfg, rng)
        chunk_planted = [p for p in plan.subject if first <= p.site_index < last]
        apply_edits(frames, latent,
                    [Planted(p.pid, p.problem, p.site_index - first, p.number) for p in chunk_planted],
                    chunk_sites, study, cfg)
        frames = {name: finalize(frame, name, cfg) for name, frame in frames.items()}
        chunk_roles = {i - first: role for i, role in roles.items() if first <= i < last}
        frames = _drop_never_collected(frames, plan, chunk_roles, first, cfg)
        chunk_habits = {i - first: habit for i, habit in habits.items() if first <= i < last}
        if chunk_habits:
            frames = apply_habits(frames, chunk_habits, cfg.profiles.profiles[profile])
        everyone = tuple(range(len(chunk_sites)))
        versions = []
        old_sites = everyone if history else tuple(p for p, r in chunk_roles.items() if r == "no_usable")
        if old_sites:
            versions.append(_Version(HISTORY_DAYS, snapshot(frames, as_of - timedelta(days=HISTORY_DAYS)),
                                     old_sites, current=False))
        stalled = tuple(p for p, r in chunk_roles.items() if r == "incomplete")
        if stalled:
            partial = snapshot({d: frames[d] for d in INCOMPLETE_DOMAINS}, as_of - timedelta(days=INCOMPLETE_DAYS))
            versions.append(_Version(INCOMPLETE_DAYS, partial, stalled, current=False, manifest=False))
        versions.append(_Version(CURRENT_DAYS, frames, everyone, current=True))
        for version in versions:
            writer.write_version(version, chunk_sites, chunk_roles)
        audited_subjects.update(_audited_subjects(versions, chunk_sites, chunk_roles))

        for p in chunk_planted:
            site = site_list[p.site_index]
            expected.extend(expected_rows(p.problem, p.pid, site.siteid, p.usubjid(study, site_list)))
        for pos, role in chunk_roles.items():
            if role in ("missing_column", "never_collects"):
                expected.extend(_site_expectations(plan, first + pos, site_list, latent, writer, study, as_of,
                                                   formats, cfg, frames["dm"].filter(pl.col("_SITEPOS") == pos)))
        for decision, count in latent.group_by("DECISION").len().iter_rows():
            decisions[decision] = decisions.get(decision, 0) + int(count)
        _count_features(features, latent, frames, cfg)

    truth = _ground_truth(study, seed, as_of, formats, plan, site_list, roles, expected, writer, decisions,
                          subjects, history, cfg, audited_subjects)
    truth["features"] = features
    truth["profile"] = profile
    truth["habits"] = [{"habit": name, "sites": sorted(site_list[i].siteid for i, h in habits.items() if h == name)}
                       for name, _ in cfg.profiles.profiles[profile].habits()]
    writer.put(join_key(study, GROUND_TRUTH),
               (json.dumps(truth, indent=1, ensure_ascii=False) + "\n").encode("utf-8"), CONTENT_TYPES["json"])
    writer.flush()
    return GenerationSummary(study, len(site_list), subjects, writer.files, dict(writer.rows),
                             tuple(writer.keys), truth)


FEATURE_EXAMPLES = 5


def _count_features(features: dict[str, dict[str, Any]], latent: pl.DataFrame, frames: dict[str, pl.DataFrame],
                    cfg: Config) -> None:
    """Counts (and a few example subjects) of the realism features, for tests and reviewers."""
    partial = pl.col("_V").str.len_chars().is_in([4, 7])
    modes = list(cfg.study.screen_failures)
    found = {
        "repeated_draws": latent.filter(pl.col("REPEAT"))["USUBJID"],
        "partial_birth_dates": latent.filter(pl.col("BRTH_PREC") != "D")["USUBJID"],
        "censored_results": frames["lb"].filter(pl.col("LBORRES").str.starts_with("<"))["USUBJID"],
        "partial_mh_onsets": frames["mh"].rename({"MHSTDTC": "_V"}).filter(partial)["USUBJID"],
        "partial_cm_dates": frames["cm"].filter(pl.col("CMSTDTC").str.len_chars().is_in([4, 7])
                                                | pl.col("CMENDTC").str.len_chars().is_in([4, 7]))["USUBJID"],
        "partial_pr_dates": frames["pr"].filter(pl.col("PRSTDTC").str.len_chars().is_in([4, 7])
                                                | pl.col("PRENDTC").str.len_chars().is_in([4, 7]))["USUBJID"],
        **{f"screen_failure.{modes[m]}": latent.filter(pl.col("FAILMODE") == m)["USUBJID"]
           for m in range(len(modes))},
        "repeated_vitals": frames["vs"].filter(pl.col("VSTPTNUM").is_not_null())["USUBJID"],
        "near_limits": latent.filter(pl.col("NEAR_LIMIT") != "")["USUBJID"],
        **{f"near_limit.{name}": latent.filter(pl.col("NEAR_LIMIT") == name)["USUBJID"]
           for name in cfg.study.near_limits.limits},
    }
    for name, subjects in found.items():
        unique = subjects.unique(maintain_order=True)
        entry = features.setdefault(name, {"subjects": 0, "examples": []})
        entry["subjects"] += unique.len()
        room = FEATURE_EXAMPLES - len(entry["examples"])
        entry["examples"].extend(unique.head(max(room, 0)).to_list())


def _audited_subjects(versions: list[_Version], sites: list[SiteInfo], roles: dict[int, str]) -> dict[str, int]:
    """Site id -> subjects (distinct USUBJID with a DM row) in the delivery the audit must read: the
    newest, the one-week-older for a site whose newest is rejected, none for a site with no usable one."""
    current = next(v for v in versions if v.current)
    older = next((v for v in versions if not v.current and v.manifest), None)
    counts = {}
    for pos, site in enumerate(sites):
        role = roles.get(pos)
        version = None if role == "no_usable" else older if role == "checksum_mismatch" else current
        dm = version.frames["dm"] if version is not None else None
        counts[site.siteid] = 0 if dm is None else dm.filter(pl.col("_SITEPOS") == pos)["USUBJID"].n_unique()
    return counts


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


def _drop_never_collected(frames: dict[str, pl.DataFrame], plan: Plan, chunk_roles: dict[int, str], first: int,
                          cfg: Config) -> dict[str, pl.DataFrame]:
    """The rows of a test a site never collects removed from every delivery of that site."""
    for pos, role in chunk_roles.items():
        if role != "never_collects":
            continue
        problem = plan.site_problems[plan.site_roles[first + pos][1]]
        assert problem.never_collects is not None
        domain, test = problem.never_collects
        testcd = f"{domain.upper()}TESTCD"
        frames[domain] = frames[domain].filter((pl.col("_SITEPOS") != pos) | (pl.col(testcd) != test))
    return frames


#: a needed test no subject of a site has is one site-level finding when at least this many enrolled
#: subjects need it (docs/validation.md); one subject's gap is that subject's finding
SITE_GAP_MIN_SUBJECTS = 2


def _site_expectations(plan: Plan, index: int, site_list: list[SiteInfo], latent: pl.DataFrame, writer: _Writer,
                       study: str, as_of: date, formats: str, cfg: Config, dm: pl.DataFrame) -> list[dict[str, Any]]:
    """A site-level problem: its finding (the rejected file, or the test the site never collects), and the
    expectation for every enrolled subject. `dm` holds the site's DM rows in file order."""
    pid = plan.site_roles[index][1]
    problem = plan.site_problems[pid]
    site = site_list[index]
    enrolled = latent.filter((pl.col("SITEID") == site.siteid) & (pl.col("DECISION") == "ENROLLED"))
    profile = format_profile(cfg, site, formats)
    delivery = delivery_name(as_of, CURRENT_DAYS)
    if problem.drop_column is not None:
        domain, column = problem.drop_column
        key = join_key(study, site.siteid, delivery, f"{domain}.{profile.format_of(domain)}")
        writer.data_quality.append({
            "problem": pid, "kind": problem.kind, "site": site.siteid, "usubjid": None, "file": key,
            "domain": domain.upper(), "variable": column, "row": None, "source": key,
        })
    else:
        assert problem.never_collects is not None
        domain, test = problem.never_collects
        key = join_key(study, site.siteid, delivery, f"{domain}.{profile.format_of(domain)}")
        base = {"problem": pid, "kind": problem.kind, "site": site.siteid, "file": key, "domain": domain.upper(),
                "variable": f"{domain.upper()}TESTCD", "item": test}
        if enrolled.height >= SITE_GAP_MIN_SUBJECTS:  # one finding for the site, naming its file of the domain
            writer.data_quality.append({**base, "usubjid": None, "row": None, "source": key,
                                        "subjects": enrolled.height})
        else:  # a single enrolled subject: that subject's own finding, on its DM row
            dm_key = join_key(study, site.siteid, delivery, f"dm.{profile.format_of('dm')}")
            rows = dm.with_row_index("_ROW", offset=1)  # the site's DM rows, in file order
            for usubjid in enrolled["USUBJID"].to_list():
                number = int(rows.filter(pl.col("USUBJID") == usubjid)["_ROW"][0])
                writer.data_quality.append({**base, "usubjid": usubjid, "file": dm_key, "row": number,
                                            "source": f"{dm_key}:{number}"})
    return [
        {"problem": pid, "kind": problem.kind, "site": site.siteid, "usubjid": usubjid,
         "check_id": check, "class": klass, "severity": severity}
        for usubjid in enrolled["USUBJID"].to_list()
        for check, klass, severity in problem.expect_site_enrolled
    ]


def _ground_truth(study: str, seed: int, as_of: date, formats: str, plan: Plan, site_list: list[SiteInfo],
                  roles: dict[int, str], expected: list[dict[str, Any]], writer: _Writer,
                  decisions: dict[str, int], subjects: int, history: bool, cfg: Config,
                  audited_subjects: dict[str, int]) -> dict[str, Any]:
    current = delivery_name(as_of, CURRENT_DAYS)
    older = delivery_name(as_of, HISTORY_DAYS)
    stalled = delivery_name(as_of, INCOMPLETE_DAYS)
    sites, deliveries = [], []
    for site in site_list:
        role = roles.get(site.index)
        profile = format_profile(cfg, site, formats)
        written = ([older] if history or role == "no_usable" else []) + \
                  ([stalled] if role == "incomplete" else []) + [current]
        audited = {"no_usable": None, "checksum_mismatch": older}.get(role or "", current)
        sites.append({
            "site": site.siteid, "subjects": site.n_subjects, "units": site.archetype.units,
            "formats": {d: profile.format_of(d) for d in DOMAIN_ORDER}, "encoding": profile.encoding,
            "separator": profile.separator, "decimal": profile.decimal, "language": site.archetype.language,
            "ie": site.archetype.ie, "country": site.archetype.country, "deliveries": written,
            "audited_delivery": audited, "role": role, "audited_subjects": audited_subjects.get(site.siteid, 0),
        })
        if role in ("checksum_mismatch", "incomplete", "no_usable"):
            pid = plan.site_roles[site.index][1]
            base = {"problem": pid, "kind": plan.site_problems[pid].kind, "site": site.siteid}
            if role == "checksum_mismatch":
                deliveries.append({**base, "delivery": current, "expected_status": "REJECTED",
                                   "reason": "sha256 mismatch", "file": "lb", "audited_instead": older})
            elif role == "incomplete":
                deliveries.append({**base, "delivery": stalled, "expected_status": "INCOMPLETE",
                                   "reason": "no manifest.json, older than 24 hours"})
            else:
                deliveries.append({**base, "delivery": current, "expected_status": "REJECTED",
                                   "reason": "listed file missing", "file": "tr"})
                deliveries.append({**base, "delivery": older, "expected_status": "REJECTED",
                                   "reason": "row count mismatch", "file": "lb"})
    problems = [
        {"problem": p.pid, "kind": p.problem.kind, "level": "subject", "site": site_list[p.site_index].siteid,
         "usubjid": p.usubjid(study, site_list), "description": p.problem.description}
        for p in plan.subject
    ] + [
        {"problem": pid, "kind": plan.site_problems[pid].kind, "level": plan.site_problems[pid].level,
         "site": site_list[index].siteid, "usubjid": None, "description": plan.site_problems[pid].description}
        for index, (_, pid) in sorted(plan.site_roles.items())
    ]
    problems.sort(key=lambda item: item["problem"])
    return {
        "study": study, "seed": seed, "as_of": as_of.isoformat(), "formats": formats,
        "subjects": {"screened": subjects, **{k: decisions.get(k, 0) for k in sorted(decisions)},
                     "audited": sum(audited_subjects.values())},
        "sites": sites,
        "problems": problems,
        "expected_discrepancies": expected,
        "data_quality": writer.data_quality,
        "deliveries": deliveries,
        "not_planted": plan.skipped,
    }
