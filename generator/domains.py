"""SDTM domain rows from the latent table: one vectorised builder per domain, all sites at once.

Each builder returns a frame with the domain's written columns (all text) plus hidden columns
(prefixed `_`) that writing drops: `_SITE` to split by site, `_D` / `_ORD` to sort, `_UNITS`
for re-rendering planted values, and `_DQ` / `_DQVAR` / `_PROBLEM` to find planted rows again.
Loops run over tests, terms and courses (a few dozen), never over subjects or rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from generator.config import Config
from generator.render import format_number, iso_date, render_measures

DOMAIN_ORDER = ("dm", "ds", "ie", "lb", "vs", "mh", "cm", "pr", "tu", "tr", "fa")
HIDDEN = {"_SITE": pl.String, "_SITEPOS": pl.Int64, "_SUBJ": pl.Int64, "_UNITS": pl.String, "_D": pl.Date,
          "_ORD": pl.Int64, "_DQ": pl.String, "_DQVAR": pl.String, "_PROBLEM": pl.String}
_KEYS = ("STUDYID", "USUBJID", "_SITE", "_SITEPOS", "_SUBJ", "_UNITS")


def _base(latent: pl.DataFrame) -> list[pl.Expr]:
    return [pl.col("STUDYID"), pl.col("USUBJID"), pl.col("SITEID").alias("_SITE"),
            pl.col("SITE_POS").cast(pl.Int64).alias("_SITEPOS"), pl.col("SUBJ_INDEX").cast(pl.Int64).alias("_SUBJ"),
            pl.col("UNITS").alias("_UNITS")]


def _days_back(column: str, days: np.ndarray) -> pl.Expr:
    return (pl.col(column) - pl.duration(days=pl.Series(days))).cast(pl.Date)


def _precision(rng: np.random.Generator, cfg: Config, n: int, share: float) -> pl.Series:
    keys = list(cfg.study.date_precision)
    p = np.array([cfg.study.date_precision[k] for k in keys])
    partial = rng.random(n) < share
    which = np.array(keys)[rng.choice(len(keys), n, p=p / p.sum())]
    return pl.Series(np.where(partial, which, "D"))


def _clear(day: pl.Expr, precision: pl.Expr, clear_days: int) -> pl.Expr:
    """Keep a partial precision only when the whole interval (month or year) ends at least
    `clear_days` before treatment start, so that no protocol threshold can fall inside it."""
    end = (
        pl.when(precision == "Y").then(day.dt.truncate("1y").dt.offset_by("1y").dt.offset_by("-1d"))
        .when(precision == "M").then(day.dt.month_end())
        .otherwise(day)
    )
    safe = end <= (pl.col("TSTART") - pl.duration(days=clear_days)).cast(pl.Date)
    return pl.when(safe | (precision == "D")).then(precision).otherwise(pl.lit("D"))


def build_dm(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    return latent.select(
        *_base(latent),
        pl.lit("DM").alias("DOMAIN"),
        pl.col("SUBJID"),
        iso_date("CONSENT").alias("RFICDTC"),
        iso_date("RFXST").alias("RFXSTDTC"),
        pl.col("SITEID"),
        iso_date("BRTH", pl.col("BRTH_PREC")).alias("BRTHDTC"),
        (pl.col("AGE_EXACT") + pl.col("AGE_DELTA")).cast(pl.Int64).cast(pl.String).alias("AGE"),
        pl.lit("YEARS").alias("AGEU"),
        pl.when(pl.col("FEMALE")).then(pl.lit("F")).otherwise(pl.lit("M")).alias("SEX"),
        pl.col("COUNTRY"),
        pl.col("CONSENT").alias("_D"),
        pl.lit(0, dtype=pl.Int64).alias("_ORD"),
    )


def build_ds(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    templates = pl.DataFrame({
        "LANG": list(cfg.vocab.languages),
        "_TPL": [lang.screen_failure for lang in cfg.vocab.languages.values()],
    })
    consent = latent.select(
        *_base(latent),
        pl.lit("INFORMED CONSENT OBTAINED").alias("DSTERM"),
        pl.lit("INFORMED CONSENT OBTAINED").alias("DSDECOD"),
        pl.lit("PROTOCOL MILESTONE").alias("DSCAT"),
        iso_date("CONSENT").alias("DSSTDTC"),
        pl.col("CONSENT").alias("_D"),
        pl.lit(0, dtype=pl.Int64).alias("_ORD"),
    )
    decided = latent.filter(pl.col("DECISION") != "IN SCREENING").join(
        templates, on="LANG", how="left", maintain_order="left"
    )
    failure = pl.col("DECISION") == "SCREEN FAILURE"
    decision = decided.select(
        *_base(decided),
        pl.when(failure)
        .then(pl.col("_TPL").str.replace("{criterion}", pl.col("FAIL").list.first().fill_null(""), literal=True))
        .otherwise(pl.col("DECISION"))
        .alias("DSTERM"),
        pl.col("DECISION").alias("DSDECOD"),
        pl.when(failure).then(pl.lit("DISPOSITION EVENT")).otherwise(pl.lit("PROTOCOL MILESTONE")).alias("DSCAT"),
        iso_date("DECISION_DATE").alias("DSSTDTC"),
        pl.col("DECISION_DATE").alias("_D"),
        pl.lit(1, dtype=pl.Int64).alias("_ORD"),
    )
    return pl.concat([consent, decision])


def build_ie(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    crit = [(c, cat) for cat, ids in cfg.study.criteria.items() for c in ids]
    criteria = pl.DataFrame({
        "IETESTCD": [c for c, _ in crit], "IECAT": [cat for _, cat in crit],
        "_ORD": pl.Series(range(len(crit)), dtype=pl.Int64),
    })
    decided = latent.filter(pl.col("DECISION") != "IN SCREENING").select(
        *_base(latent), pl.col("FAIL"), pl.col("IE_STYLE"), pl.col("DECISION_DATE")
    )
    rows = decided.join(criteria, how="cross")
    failing = pl.col("FAIL").list.contains(pl.col("IETESTCD"))
    inclusion = pl.col("IECAT") == "INCLUSION"
    rows = rows.filter(failing | (pl.col("IE_STYLE") == "full"))
    return rows.select(
        *_KEYS,
        pl.lit("IE").alias("DOMAIN"),
        "IETESTCD", "IECAT",
        pl.when(failing == inclusion).then(pl.lit("N")).otherwise(pl.lit("Y")).alias("IEORRES"),
        iso_date("DECISION_DATE").alias("IEDTC"),
        pl.col("DECISION_DATE").alias("_D"),
        "_ORD",
    )


def _measure_frame(cfg: Config) -> pl.DataFrame:
    return pl.DataFrame({
        "MEASURE": list(cfg.measures),
        "_NAME": [m.name for m in cfg.measures.values()],
        "_CAT": [m.category for m in cfg.measures.values()],
    })


def _words(cfg: Config) -> pl.DataFrame:
    profiles = cfg.sites.unit_profiles
    return pl.DataFrame({
        "_UNITS": list(profiles),
        "_POS_serology": [p.positive for p in profiles.values()],
        "_NEG_serology": [p.negative for p in profiles.values()],
        "_POS_rna": [p.rna_positive for p in profiles.values()],
        "_NEG_rna": [p.rna_negative for p in profiles.values()],
        "_POS_plain": ["POSITIVE"] * len(profiles),
        "_NEG_plain": ["NEGATIVE"] * len(profiles),
    })


def build_lb(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    numeric, coded = [], []
    for order, (code, row) in enumerate(cfg.study.lb.items()):
        sel = latent if row.when is None else latent.filter(pl.col(row.when))
        keep = [*_base(sel), pl.col("UNITS"), pl.lit(code).alias("MEASURE"),
                pl.lit(order, dtype=pl.Int64).alias("_ORD")]
        if row.value is not None:
            numeric.append(sel.select(*keep, pl.col(row.value).alias("VALUE"), pl.col("LBDT").alias("_D")))
            if row.repeat:
                old = sel.filter(pl.col("REPEAT"))
                numeric.append(old.select(*keep, pl.col(f"{row.value}_OLD").alias("VALUE"),
                                          pl.col("LBDT_OLD").alias("_D")))
        else:
            pos, neg = f"_POS_{row.words}", f"_NEG_{row.words}"
            coded.append(
                sel.select(*keep, pl.col(row.positive).alias("_POSITIVE"), pl.col("LBDT").alias("_D"))
                .join(_words(cfg), on="_UNITS", how="left", maintain_order="left")
                .select(*_KEYS, "UNITS", "MEASURE", "_ORD", "_D",
                        pl.when(pl.col("_POSITIVE")).then(pl.col(pos)).otherwise(pl.col(neg)).alias("ORRES"))
            )
    rendered = render_measures(pl.concat(numeric), cfg)
    coded_frame = pl.concat(coded).with_columns(
        pl.lit(None, dtype=pl.String).alias(c) for c in ("ORRESU", "NRLO", "NRHI")
    )
    rendered = rendered.with_columns(_standardized(cfg)).drop("VALUE")
    coded_frame = coded_frame.with_columns(
        pl.col("ORRES").alias("STRESC"), pl.lit(None, dtype=pl.String).alias("STRESN"),
        pl.lit(None, dtype=pl.String).alias("STRESU"),
    )
    rows = pl.concat([rendered, coded_frame.select(rendered.columns)])
    rows = rows.join(_measure_frame(cfg), on="MEASURE", how="left", maintain_order="left")
    return rows.select(
        *_KEYS,
        pl.lit("LB").alias("DOMAIN"),
        pl.col("MEASURE").alias("LBTESTCD"),
        pl.col("_NAME").alias("LBTEST"),
        pl.col("_CAT").alias("LBCAT"),
        pl.col("ORRES").alias("LBORRES"),
        pl.col("ORRESU").alias("LBORRESU"),
        pl.col("NRLO").alias("LBORNRLO"),
        pl.col("NRHI").alias("LBORNRHI"),
        pl.col("STRESC").alias("LBSTRESC"),
        pl.col("STRESN").alias("LBSTRESN"),
        pl.col("STRESU").alias("LBSTRESU"),
        pl.lit(None, dtype=pl.String).alias("LBSTAT"),
        iso_date("_D").alias("LBDTC"),
        "_D", "_ORD",
    )


def _standardized(cfg: Config) -> list[pl.Expr]:
    """SDTM standardized result in the protocol unit, rounded as that unit prints; left empty for a
    censored result (as many SDTM mappings do)."""
    decimals = pl.col("MEASURE").replace_strict(
        {code: m.units[m.unit].decimals for code, m in cfg.measures.items() if m.unit in m.units},
        default=None, return_dtype=pl.Int64)
    units = pl.col("MEASURE").replace_strict(
        {code: m.unit for code, m in cfg.measures.items()}, default=None, return_dtype=pl.String)
    censored = pl.col("ORRES").str.starts_with("<")
    text = pl.when(censored).then(None).otherwise(format_number(pl.col("VALUE"), decimals))
    return [text.alias("STRESC"), text.alias("STRESN"), units.alias("STRESU")]


def build_vs(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    """One row per vital sign, three for those measured at several time points (repeated_vitals)."""
    repeated = cfg.study.repeated_vitals
    parts = []
    for order, code in enumerate(cfg.study.vs):
        points = range(1, len(repeated.time_points) + 1) if code in repeated.tests else [None]
        for point in points:
            value = pl.col(code)
            if point is not None:  # replicates a few units apart, as successive readings are
                value = value + pl.Series(rng.uniform(-repeated.spread, repeated.spread, latent.height))
            parts.append(latent.select(
                *_base(latent), pl.col("UNITS"), pl.lit(code).alias("MEASURE"), value.alias("VALUE"),
                pl.col("VSDT").alias("_D"), pl.lit(order * 10 + (point or 0), dtype=pl.Int64).alias("_ORD"),
                pl.lit(repeated.position if point else None, dtype=pl.String).alias("VSPOS"),
                pl.lit(repeated.time_points[point - 1] if point else None, dtype=pl.String).alias("VSTPT"),
                pl.lit(str(point) if point else None, dtype=pl.String).alias("VSTPTNUM"),
            ))
    rows = render_measures(pl.concat(parts), cfg)
    return rows.select(
        *_KEYS, pl.lit("VS").alias("DOMAIN"),
        pl.col("MEASURE").alias("VSTESTCD"), "VSPOS", pl.col("ORRES").alias("VSORRES"),
        pl.col("ORRESU").alias("VSORRESU"), iso_date("_D").alias("VSDTC"), "VSTPT", "VSTPTNUM", "_D", "_ORD",
    )


def build_fa(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    measured, flagged = [], []
    for order, (code, row) in enumerate(cfg.study.fa.items()):
        keep = [*_base(latent), pl.col("UNITS"), pl.lit(code).alias("MEASURE"),
                pl.col("FADT").alias("_D"), pl.lit(order, dtype=pl.Int64).alias("_ORD")]
        if row.measure is not None:
            measured.append(latent.select(*keep, pl.col(row.measure).alias("VALUE")))
        else:
            flagged.append(latent.select(
                *keep,
                pl.when(pl.col(row.flag)).then(pl.lit(row.if_true)).otherwise(pl.lit(row.if_false)).alias("ORRES"),
                pl.lit(None, dtype=pl.String).alias("ORRESU"),
            ))
    rendered = render_measures(pl.concat(measured), cfg).drop("VALUE", "NRLO", "NRHI").with_columns(
        pl.when(pl.col("ORRESU") == "").then(None).otherwise(pl.col("ORRESU")).alias("ORRESU")
    )
    rows = pl.concat([rendered, pl.concat(flagged).select(rendered.columns)])
    return rows.select(
        *_KEYS, pl.lit("FA").alias("DOMAIN"),
        pl.col("MEASURE").alias("FATESTCD"), pl.col("ORRES").alias("FAORRES"), pl.col("ORRESU").alias("FAORRESU"),
        iso_date("_D").alias("FADTC"), "_D", "_ORD",
    )


#: target and non-target lesions: (link id, present when, TUORRES, TULOC expr, measure expr, value column)
def _lesions() -> list[tuple[str, str, str, pl.Expr, pl.Expr | None, pl.Expr | None]]:
    nodal = pl.col("NODAL")
    return [
        ("T01", "ALWAYS", "TARGET",
         pl.when(nodal).then(pl.lit("LYMPH NODE")).otherwise(pl.lit("LIVER")),
         pl.when(nodal).then(pl.lit("LPERP")).otherwise(pl.lit("LDIAM")),
         pl.when(nodal).then(pl.col("NODE")).otherwise(pl.col("LESION"))),
        ("T02", "SECOND_TARGET", "TARGET", pl.lit("LIVER"), pl.lit("LDIAM"), pl.col("LESION2")),
        ("NT01", "NON_TARGET", "NON-TARGET", pl.lit("LUNG"), None, None),
    ]


def build_tu(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    parts = []
    for order, (link, when, result, loc, _, _) in enumerate(_lesions()):
        parts.append(latent.filter(pl.col(when)).select(
            *_base(latent), pl.lit("TU").alias("DOMAIN"), pl.lit(link).alias("TULNKID"),
            pl.lit("TUMIDENT").alias("TUTESTCD"), pl.lit(result).alias("TUORRES"), loc.alias("TULOC"),
            iso_date("IMGDT").alias("TUDTC"), pl.col("IMGDT").alias("_D"), pl.lit(order, dtype=pl.Int64).alias("_ORD"),
        ))
    return pl.concat(parts)


def build_tr(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    parts = []
    for order, (link, when, _, _, measure, value) in enumerate(_lesions()):
        if measure is None or value is None:
            continue
        parts.append(latent.filter(pl.col(when)).select(
            *_base(latent), pl.col("UNITS"), measure.alias("MEASURE"), value.alias("VALUE"),
            pl.lit(link).alias("TRLNKID"), pl.col("IMGDT").alias("_D"), pl.lit(order, dtype=pl.Int64).alias("_ORD"),
        ))
    rows = render_measures(pl.concat(parts), cfg)
    return rows.select(
        *_KEYS, pl.lit("TR").alias("DOMAIN"), "TRLNKID",
        pl.col("MEASURE").alias("TRTESTCD"), pl.col("ORRES").alias("TRORRES"), pl.col("ORRESU").alias("TRORRESU"),
        iso_date("_D").alias("TRDTC"), "_D", "_ORD",
    )


def build_mh(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    parts = []
    n = latent.height
    for order, (term, spec) in enumerate(cfg.study.mh.items()):
        years = rng.uniform(spec.onset_years[0], spec.onset_years[1], n)
        onset_back = np.floor(years * 365.25).astype(np.int64)
        end_after = rng.integers(spec.end_days[0], spec.end_days[1] + 1, n)
        precision = _precision(rng, cfg, n, spec.partial)
        occurred = pl.col(spec.flag)
        frame = latent.select(
            *_base(latent), pl.col("TSTART"), occurred.alias("_Y"),
            _days_back("TSTART", onset_back).alias("_ON"),
            pl.lit(order, dtype=pl.Int64).alias("_ORD"),
        ).with_columns(
            (pl.col("_ON") + pl.duration(days=pl.Series(end_after))).cast(pl.Date).alias("_END"),
            precision.alias("_P"),
        ).with_columns(_clear(pl.col("_ON"), pl.col("_P"), spec.partial_clear_days).alias("_P"))
        parts.append(frame.select(
            *_KEYS, pl.lit("MH").alias("DOMAIN"),
            pl.lit(term).alias("MHTERM"),
            pl.when(pl.col("_Y")).then(pl.lit("Y")).otherwise(pl.lit("N")).alias("MHOCCUR"),
            pl.when(pl.col("_Y")).then(iso_date("_ON", pl.col("_P"))).alias("MHSTDTC"),
            pl.when(pl.col("_Y") & (not spec.ongoing)).then(iso_date("_END")).alias("MHENDTC"),
            pl.when(pl.col("_Y") & spec.ongoing).then(pl.lit("ONGOING")).alias("MHENRF"),
            pl.lit(None, dtype=pl.Date).alias("_D"), "_ORD",
        ))
    return pl.concat(parts)


def _vocab(cfg: Config) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows, sizes = [], []
    for lang, words in cfg.vocab.languages.items():
        for name, entries in words.model_dump().items():
            if name == "screen_failure":
                continue
            sizes.append({"LANG": lang, "_VOCAB": name, "_N": len(entries)})
            rows.extend({"LANG": lang, "_VOCAB": name, "_IDX": i, "_TRT": trt, "_DECOD": decod}
                        for i, (trt, decod) in enumerate(entries))
    return pl.DataFrame(rows), pl.DataFrame(sizes)


def _courses(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator, domain: str) -> pl.DataFrame:
    words, sizes = _vocab(cfg)
    parts = []
    for order, (_, course) in enumerate(cfg.study.courses.items()):
        if course.domain != domain:
            continue
        if course.count is not None:
            sel = latent.filter(pl.col(course.count) > 0).with_columns(
                pl.int_ranges(0, pl.col(course.count).cast(pl.Int64)).alias("_K")
            ).explode("_K")
        else:
            sel = latent.filter(pl.col(course.when or "ALWAYS")).with_columns(pl.lit(0, dtype=pl.Int64).alias("_K"))
        n = sel.height
        if n == 0:
            continue
        if course.ongoing:
            assert course.start_days is not None
            start = _days_back("TSTART", rng.integers(course.start_days[0], course.start_days[1] + 1, n))
            end = pl.lit(None, dtype=pl.Date)
        else:
            assert course.end_days is not None
            back = rng.integers(course.end_days[0], course.end_days[1] + 1, n)
            length = rng.integers(course.duration[0], course.duration[1] + 1, n)
            start = _days_back("TSTART", back + length)
            end = _days_back("TSTART", back)
        u = rng.random(n)
        p_start = _precision(rng, cfg, n, course.partial_start)
        p_end = _precision(rng, cfg, n, course.partial_end)
        frame = sel.select(
            *_base(sel), pl.col("LANG"), pl.col("TSTART"), start.alias("_ST"), end.alias("_EN"),
            pl.lit(course.vocab).alias("_VOCAB"), pl.Series("_U", u),
            (pl.lit(order * 10, dtype=pl.Int64) + pl.col("_K")).alias("_ORD"),
        ).with_columns(p_start.alias("_PS"), p_end.alias("_PE")).with_columns(
            _clear(pl.col("_ST"), pl.col("_PS"), course.partial_clear_days).alias("_PS"),
            _clear(pl.col("_EN"), pl.col("_PE"), course.partial_clear_days).alias("_PE"),
        )
        frame = frame.join(sizes, on=["LANG", "_VOCAB"], how="left", maintain_order="left").with_columns(
            (pl.col("_U") * pl.col("_N")).floor().cast(pl.Int64).alias("_IDX")
        ).join(words, on=["LANG", "_VOCAB", "_IDX"], how="left", maintain_order="left")
        frame = frame.with_columns(
            iso_date("_ST", pl.col("_PS")).alias("_STDTC"),
            iso_date("_EN", pl.col("_PE")).alias("_ENDTC"),
            pl.lit("ONGOING" if course.ongoing else None, dtype=pl.String).alias("_ENRF"),
            pl.lit(course.category).alias("_CAT"),
            pl.lit(course.outcome, dtype=pl.String).alias("_OUT"),
            pl.col("_ST").alias("_D"),
        )
        parts.append(frame)
    return pl.concat(parts)


def build_cm(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    rows = _courses(latent, cfg, rng, "CM")
    return rows.select(
        *_KEYS, pl.lit("CM").alias("DOMAIN"),
        pl.col("_TRT").alias("CMTRT"), pl.col("_DECOD").alias("CMDECOD"), pl.col("_CAT").alias("CMCAT"),
        pl.col("_STDTC").alias("CMSTDTC"), pl.col("_ENDTC").alias("CMENDTC"), pl.col("_ENRF").alias("CMENRF"),
        "_D", "_ORD",
    )


def build_pr(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> pl.DataFrame:
    rows = _courses(latent, cfg, rng, "PR")
    return rows.select(
        *_KEYS, pl.lit("PR").alias("DOMAIN"),
        pl.col("_TRT").alias("PRTRT"), pl.col("_CAT").alias("PRCAT"),
        pl.col("_STDTC").alias("PRSTDTC"), pl.col("_ENDTC").alias("PRENDTC"), pl.col("_OUT").alias("PROUTC"),
        "_D", "_ORD",
    )


BUILDERS: dict[str, Callable[[pl.DataFrame, Config, np.random.Generator], pl.DataFrame]] = {
    "dm": build_dm, "ds": build_ds, "ie": build_ie, "lb": build_lb, "vs": build_vs, "mh": build_mh,
    "cm": build_cm, "pr": build_pr, "tu": build_tu, "tr": build_tr, "fa": build_fa,
}


def build_domains(latent: pl.DataFrame, cfg: Config, rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    """Every domain's rows for the chunk, with the hidden marker columns added (empty)."""
    frames = {}
    for name in DOMAIN_ORDER:
        frame = BUILDERS[name](latent, cfg, rng).with_columns(pl.lit(name.upper()).alias("DOMAIN"))
        frame = frame.with_columns(
            pl.lit(None, dtype=dtype).alias(col) for col, dtype in HIDDEN.items() if col not in frame.columns
        )
        frames[name] = frame
    return frames


def finalize(frame: pl.DataFrame, domain: str, cfg: Config) -> pl.DataFrame:
    """Rows sorted by site, subject, date and order (so each site's rows are one contiguous slice),
    --SEQ numbered, in the written column order followed by the hidden columns."""
    frame = frame.sort(["_SUBJ", "_D", "_ORD"], nulls_last=False, maintain_order=True)
    seq = f"{domain.upper()}SEQ"
    if seq in cfg.study.columns[domain]:
        frame = frame.with_columns(
            (pl.int_range(pl.len()).over("_SUBJ") + 1).cast(pl.String).alias(seq)
        )
    return frame.select(*cfg.study.columns_for(domain, standardized=True), *HIDDEN)
