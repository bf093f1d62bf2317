"""The latent screening population: one row per subject with the truth the domain files express.

Everything is drawn with numpy for a whole chunk of sites at once (no loop over subjects). The
latent table holds values in protocol units and real dates; `domains.py` turns it into SDTM rows in
each site's units and conventions. Screen failures and planted problems are latent overrides, so a
platelet count of 52 is simply the subject's platelet count and every file that mentions it agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from generator.boundaries import place_near_limits
from generator.config import Archetype, Config

DECISIONS = ("ENROLLED", "SCREEN FAILURE", "IN SCREENING")
_EPOCH = date(1970, 1, 1)
#: latent date columns (day numbers while drawing, pl.Date in the returned table)
DATE_COLUMNS = ("BRTH", "CONSENT", "TSTART", "DECISION_DATE", "RFXST", "LBDT", "LBDT_OLD", "VSDT", "FADT", "IMGDT")


@dataclass(frozen=True)
class SiteInfo:
    """One site of the generated study and the conventions it follows."""

    index: int  # 0-based position in the study
    siteid: str
    n_subjects: int
    archetype: Archetype
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Forced:
    """Latent values forced on one subject (a planted problem)."""

    site_pos: int  # position of the site in the chunk
    number: int  # subject number within the site (1-based)
    values: dict[str, Any] = field(default_factory=dict)


def _draw(spec: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(spec, dict):
        (kind, arg), = spec.items()
        if kind == "uniform":
            return rng.uniform(arg[0], arg[1], n)
        if kind == "uniform_int":
            return rng.integers(arg[0], arg[1] + 1, n).astype(np.float64)
        if kind == "choice":
            return rng.choice(np.asarray(arg, dtype=np.float64), n)
        raise ValueError(f"unknown value spec {kind!r}")
    if isinstance(spec, bool):
        return np.full(n, spec)
    return np.full(n, float(spec))


def _put(cols: dict[str, np.ndarray], key: str, values: np.ndarray, mask: np.ndarray) -> None:
    if key not in cols:
        raise KeyError(f"unknown latent column {key!r}")
    target = cols[key]
    cols[key] = np.where(mask, values.astype(target.dtype), target)


def _days(d: date) -> int:
    return (d - _EPOCH).days


def _uniform_days(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return low + np.floor(rng.random(low.shape[0]) * (high - low + 1)).astype(np.int64)


def _completed_years(birth: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Completed years between two day-number arrays (a birthday on 29 Feb counts on 1 Mar)."""
    b = birth.astype("datetime64[D]")
    a = at.astype("datetime64[D]")
    by, ay = b.astype("datetime64[Y]"), a.astype("datetime64[Y]")
    years = (ay - by).astype(np.int64)
    bm = (b.astype("datetime64[M]") - by).astype(np.int64)
    am = (a.astype("datetime64[M]") - ay).astype(np.int64)
    bd = (b - b.astype("datetime64[M]")).astype(np.int64)
    ad = (a - a.astype("datetime64[M]")).astype(np.int64)
    before = (am < bm) | ((am == bm) & (ad < bd))
    return years - before.astype(np.int64)


def cockcroft_gault(age: np.ndarray, weight: np.ndarray, female: np.ndarray, creat: np.ndarray) -> np.ndarray:
    """Creatinine clearance (mL/min) as IN11.CRCL defines it."""
    return (140.0 - age) * weight * np.where(female, 0.85, 1.0) / (72.0 * creat)


def draw_population(
    cfg: Config,
    sites: list[SiteInfo],
    rng: np.random.Generator,
    *,
    study: str,
    as_of: date,
    forced: list[Forced],
) -> pl.DataFrame:
    """The latent table of every subject of `sites` (one chunk of the study)."""
    sc = cfg.study
    counts = np.array([s.n_subjects for s in sites], dtype=np.int64)
    n = int(counts.sum())
    site_pos = np.repeat(np.arange(len(sites)), counts)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    number = np.arange(n) - np.repeat(offsets, counts) + 1

    cols: dict[str, np.ndarray] = {}
    dec_p = np.array([sc.decisions[d] for d in DECISIONS])
    cols["DECISION"] = rng.choice(3, n, p=dec_p / dec_p.sum()).astype(np.int64)
    cols["FEMALE"] = rng.random(n) < sc.sex["F"] / (sc.sex["F"] + sc.sex["M"])
    for name, flag in sc.flags.items():
        values = rng.random(n) < flag.share
        if flag.sex is not None:
            values &= cols["FEMALE"] == (flag.sex == "F")
        cols[name] = values
    for name, spec in sc.values.items():
        cols[name] = _draw(spec, n, rng)
    prec_keys = list(sc.birth_precision)
    prec_p = np.array([sc.birth_precision[k] for k in prec_keys])
    cols["BRTH_PREC"] = rng.choice(len(prec_keys), n, p=prec_p / prec_p.sum()).astype(np.int64)

    # screen failure modes: the data fail exactly the criteria the site records
    modes = list(sc.screen_failures.items())
    weights = np.array([m.weight for _, m in modes])
    cols["FAILMODE"] = np.where(
        cols["DECISION"] == 1, rng.choice(len(modes), n, p=weights / weights.sum()), -1
    ).astype(np.int64)
    forced_idx = np.array([offsets[f.site_pos] + f.number - 1 for f in forced], dtype=np.int64)
    cols["FAILMODE"][forced_idx] = -1
    overrides: list[tuple[str, np.ndarray, np.ndarray]] = []
    for m, (_, mode) in enumerate(modes):
        mask = cols["FAILMODE"] == m
        for key, spec in mode.set.items():
            overrides.append((key, _draw(spec, n, rng), mask))
    fail_lists: list[list[str] | None] = [None] * len(forced)
    for k, f in enumerate(forced):
        mask = np.zeros(n, dtype=bool)
        mask[forced_idx[k]] = True
        for key, value in f.values.items():
            if key == "FAIL":
                fail_lists[k] = list(value)
            elif key == "DECISION":
                cols["DECISION"][forced_idx[k]] = DECISIONS.index(value)
            elif key == "BRTH_PREC":
                cols["BRTH_PREC"][forced_idx[k]] = prec_keys.index(value)
            else:
                overrides.append((key, _draw(value, n, rng), mask))
    _apply(cols, overrides, skip_missing=True)

    # dates (day numbers)
    t = sc.timing
    as_of_d = _days(as_of)
    decided = cols["DECISION"] != 2
    cols["REPEAT"] &= decided
    screen_days = np.where(
        cols["REPEAT"],
        rng.integers(t.repeat_screening_days[0], t.repeat_screening_days[1] + 1, n),
        rng.integers(t.screening_days[0], t.screening_days[1] + 1, n),
    )
    screen_days = np.where(cols["SCREEN_DAYS"] > 0, cols["SCREEN_DAYS"].astype(np.int64), screen_days)
    tstart = np.where(decided, as_of_d - rng.integers(1, t.treatment_start_span + 1, n), as_of_d)
    consent = np.where(
        decided, tstart - screen_days,
        as_of_d - rng.integers(t.in_screening_days[0], t.in_screening_days[1] + 1, n),
    )
    low = np.maximum(consent + 1, tstart - (t.window_days - 2))
    high = np.where(decided, tstart - 3, as_of_d - 1)
    cols["CONSENT"], cols["TSTART"] = consent, tstart
    for name in ("LBDT", "VSDT", "FADT", "IMGDT"):
        cols[name] = _uniform_days(rng, low, high)
    old_high = np.maximum(consent + 1, tstart - t.window_days - 2)
    cols["LBDT_OLD"] = _uniform_days(rng, consent + 1, old_high)
    lead = rng.integers(t.decision_lead_days[0], t.decision_lead_days[1] + 1, n)
    enrolled = cols["DECISION"] == 0
    cols["DECISION_DATE"] = np.where(enrolled, tstart - lead, tstart)
    cols["RFXST"] = tstart
    birth = consent - np.floor(cols["AGE"] * 365.25).astype(np.int64) - rng.integers(0, 365, n)
    cols["BRTH"] = birth
    cols["AGE_EXACT"] = _completed_years(birth, consent).astype(np.float64)

    # derived truth
    profiles = cfg.sites.unit_profiles
    lym_abs_site = np.array([profiles[s.archetype.units].lymphocytes == "LYM" for s in sites])
    cols["LYM_ABS"] = lym_abs_site[site_pos]
    cols["LYM_PCT"] = ~cols["LYM_ABS"]
    cols["ALWAYS"] = np.ones(n, dtype=bool)
    cols["HBV_POS"] = cols["HBSAG_POS"] | cols["HBCAB_POS"]
    cols["HCVRNA_POS"] = np.zeros(n, dtype=bool)
    cols["LRTXINEL"] = cols["BCLC_B"] | cols["LRTX_C"]
    # cap creatinine so that Cockcroft-Gault stays above the floor even one year older (partial birth dates)
    cols["CREAT"] = np.minimum(
        cols["CREAT"], cockcroft_gault(cols["AGE_EXACT"] + 1, cols["WEIGHT"], cols["FEMALE"], np.full(n, sc.crcl_floor))
    )
    _apply(cols, overrides, skip_missing=False)
    cols["HBV_POS"] = cols["HBSAG_POS"] | cols["HBCAB_POS"]
    cols["NOT_NODAL"] = ~cols["NODAL"]
    # clean values at the edge of a threshold (never a planted subject's or a screen failure's)
    free = cols["FAILMODE"] == -1
    free[forced_idx] = False
    units = np.array([s.archetype.units for s in sites])[site_pos]
    near = place_near_limits(cols, units, free, rng, cfg)
    cols["LYM"] = cols["WBC"] * cols["LYMFRAC"]
    cols["LYMLE"] = cols["LYMFRAC"] * 100.0
    cols["LYM_OLD"] = cols["WBC_OLD"] * cols["LYMFRAC_OLD"]
    cols["LYMLE_OLD"] = cols["LYMFRAC_OLD"] * 100.0
    cols["CREATCLR"] = (
        cockcroft_gault(cols["AGE_EXACT"], cols["WEIGHT"], cols["FEMALE"], cols["CREAT"]) * cols["CRCL_JITTER"]
    )

    # the criteria the site records as failing: the failure mode's, or a planted problem's own list
    lists = [list(m.criteria) for _, m in modes] + [[]] + [lst for lst in fail_lists if lst is not None]
    which = np.where(cols["FAILMODE"] >= 0, cols["FAILMODE"], len(modes))
    extra = len(modes) + 1
    for k, lst in enumerate(fail_lists):
        if lst is not None:
            which[forced_idx[k]] = extra
            extra += 1
    fail_series = pl.Series("FAIL", lists, dtype=pl.List(pl.String)).gather(which)

    siteids = np.array([s.siteid for s in sites])
    meta = {
        "SITEID": siteids[site_pos],
        "LANG": np.array([s.archetype.language for s in sites])[site_pos],
        "UNITS": np.array([s.archetype.units for s in sites])[site_pos],
        "IE_STYLE": np.array([s.archetype.ie for s in sites])[site_pos],
        "COUNTRY": np.array([s.archetype.country for s in sites])[site_pos],
    }
    frame = pl.DataFrame({**meta, "SITE_POS": site_pos, "SUBJ_INDEX": np.arange(n), "NUMBER": number, **cols,
                          "NEAR_LIMIT": pl.Series(near.tolist(), dtype=pl.String)})
    frame = frame.with_columns(
        pl.lit(study).alias("STUDYID"),
        pl.format("{}-{}-{}", pl.lit(study), pl.col("SITEID"), pl.col("NUMBER").cast(pl.String).str.zfill(4))
        .alias("USUBJID"),
        pl.col("NUMBER").cast(pl.String).str.zfill(4).alias("SUBJID"),
        pl.Series("DECISION", np.array(DECISIONS)[cols["DECISION"]]),
        pl.Series("BRTH_PREC", np.array(prec_keys)[cols["BRTH_PREC"]]),
        fail_series,
        *[(pl.lit(_EPOCH) + pl.duration(days=pl.col(c))).cast(pl.Date).alias(c) for c in DATE_COLUMNS],
    )
    return frame.with_columns(
        pl.when(pl.col("DECISION") == "ENROLLED").then(pl.col("RFXST")).alias("RFXST"),
        pl.when(pl.col("DECISION") != "IN SCREENING").then(pl.col("DECISION_DATE")).alias("DECISION_DATE"),
        pl.when(pl.col("REPEAT")).then(pl.col("LBDT_OLD")).alias("LBDT_OLD"),
    )


def _apply(cols: dict[str, np.ndarray], overrides: list[tuple[str, np.ndarray, np.ndarray]], *,
           skip_missing: bool) -> None:
    for key, values, mask in overrides:
        if key not in cols and skip_missing:
            continue
        _put(cols, key, values, mask)
