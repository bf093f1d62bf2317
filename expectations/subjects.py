"""Subject-level completeness, computed once per subject and joined onto DM rows.

For each subject: the site's decision (ENROLLED / SCREEN FAILURE / IN SCREENING), the results the
protocol needs that the subject has none of (conditional needs applied: HCG for women, HBV DNA when
HBsAg or anti-HBc is positive, ...), and the protocol criteria missing from the site's IE checklist.
For each site: the needed results none of its subjects has (a test the site never collects), which
are one site-level finding instead of one per subject. All of it is polars joins over (subject x
needed item), never a loop over subjects.
"""

from __future__ import annotations

import polars as pl

from contracts.enums import Category
from contracts.units import TestKind, UnitCatalog
from core.values import blank_to_null, coded_value, qualitative_result
from expectations.spec import ResultRoles, SuiteConfig

ENROLLED, SCREEN_FAILURE, IN_SCREENING = "ENROLLED", "SCREEN FAILURE", "IN SCREENING"


def _frame(domains: dict[str, pl.DataFrame], code: str, columns: list[str]) -> pl.DataFrame:
    frame = domains.get(code.lower())
    if frame is None:
        frame = pl.DataFrame(schema={c: pl.String for c in columns})
    missing = [c for c in columns if c not in frame.columns]
    return frame.with_columns(pl.lit(None, pl.String).alias(c) for c in missing)


def decisions(domains: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """USUBJID -> X_DECISION from DS (ENROLLED wins over SCREEN FAILURE) and DM.RFXSTDTC (dosed = enrolled)."""
    dm = _frame(domains, "dm", ["USUBJID", "RFXSTDTC"]).select(
        blank_to_null("USUBJID").alias("USUBJID"), blank_to_null("RFXSTDTC").is_not_null().alias("DOSED"))
    ds = _frame(domains, "ds", ["USUBJID", "DSDECOD"]).select(
        blank_to_null("USUBJID").alias("USUBJID"), coded_value("DSDECOD").alias("D"))
    flags = ds.group_by("USUBJID").agg((pl.col("D") == ENROLLED).any().alias("ENR"),
                                       (pl.col("D") == SCREEN_FAILURE).any().alias("SF"))
    subjects = dm.group_by("USUBJID").agg(pl.col("DOSED").any()).join(flags, on="USUBJID", how="left")
    decision = (pl.when(pl.col("ENR").fill_null(False) | pl.col("DOSED")).then(pl.lit(ENROLLED))
                .when(pl.col("SF").fill_null(False)).then(pl.lit(SCREEN_FAILURE))
                .otherwise(pl.lit(IN_SCREENING)))
    return subjects.filter(pl.col("USUBJID").is_not_null()).select("USUBJID", decision.alias("X_DECISION"))


def _present(domains: dict[str, pl.DataFrame], domain: str, test_var: str, result_var: str | None,
             status_var: str | None, not_done: tuple[str, ...]) -> pl.DataFrame:
    """(USUBJID, TEST) pairs with a usable row: a non-blank result that is not NOT DONE."""
    columns = ["USUBJID", test_var, *([result_var] if result_var else []), *([status_var] if status_var else [])]
    frame = _frame(domains, domain, columns)
    keep = pl.lit(True)
    if result_var:
        keep = keep & blank_to_null(result_var).is_not_null()
    if status_var:
        keep = keep & ~coded_value(status_var).is_in(list(not_done)).fill_null(False)
    return (frame.filter(keep).select(blank_to_null("USUBJID").alias("USUBJID"), coded_value(test_var).alias("TEST"))
            .unique())


def roles_of(config: SuiteConfig, domain: str) -> ResultRoles:
    """The test / result variables of a domain (suites.yaml `results` or `needed_results.test_variables`)."""
    return config.results.get(domain) or config.test_variables[domain]


def _conditions(domains: dict[str, pl.DataFrame], config: SuiteConfig, catalog: UnitCatalog) -> pl.DataFrame:
    """USUBJID x conditional item -> whether the item is needed for that subject."""
    dm = _frame(domains, "dm", ["USUBJID", "SEX"]).select(
        blank_to_null("USUBJID").alias("USUBJID"), coded_value("SEX").alias("SEX")).unique("USUBJID")
    rows = []
    for item, cond in config.conditional_needs.items():
        domain, code = item.split(".", 1)
        needed = pl.lit(True)
        if cond.sex:
            needed = needed & pl.col("SEX").is_in(list(cond.sex)).fill_null(False)
        frame = dm.with_columns(pl.lit(domain).alias("DOMAIN"), pl.lit(code).alias("ITEM"))
        if cond.result_any:
            frame = frame.join(_results_in(domains, config, catalog, cond.result_any), on="USUBJID", how="left")
            needed = needed & pl.col("MATCH").fill_null(False)
        rows.append(frame.select("USUBJID", "DOMAIN", "ITEM", needed.alias("CONDITION")))
    if not rows:
        return pl.DataFrame(schema={"USUBJID": pl.String, "DOMAIN": pl.String, "ITEM": pl.String,
                                    "CONDITION": pl.Boolean})
    return pl.concat(rows)


def _results_in(domains: dict[str, pl.DataFrame], config: SuiteConfig, catalog: UnitCatalog,
                wanted: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """USUBJID -> MATCH: any result of the listed tests reads one of its listed values."""
    frames = []
    for test, values in wanted.items():
        domain, code = test.split(".", 1)
        roles = roles_of(config, domain)
        entry = catalog.test(domain, code)
        qualitative = entry is not None and entry.kind is TestKind.QUALITATIVE
        value = qualitative_result(roles.result, catalog) if qualitative else coded_value(roles.result)
        frame = _frame(domains, domain.lower(), ["USUBJID", roles.test, roles.result])
        frames.append(frame.filter(coded_value(roles.test) == code).select(
            blank_to_null("USUBJID").alias("USUBJID"), value.is_in(list(values)).alias("MATCH")))
    return pl.concat(frames).group_by("USUBJID").agg(pl.col("MATCH").fill_null(False).any())


#: a needed item no subject of a site has is one site-level finding when at least this many subjects need it
#: (one subject's gap stays that subject's finding, with its USUBJID)
SITE_GAP_MIN_SUBJECTS = 2


def _subject_sites(domains: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """USUBJID -> SITE: the delivery site of the subject's DM row."""
    return _frame(domains, "dm", ["USUBJID", "DELIVERY_SITEID"]).select(
        blank_to_null("USUBJID").alias("USUBJID"), pl.col("DELIVERY_SITEID").alias("SITE")
    ).filter(pl.col("USUBJID").is_not_null()).unique("USUBJID", keep="first", maintain_order=True)


def missing_results(domains: dict[str, pl.DataFrame], needs: dict[str, tuple[tuple[str, ...], ...]],
                    config: SuiteConfig, catalog: UnitCatalog,
                    subjects: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Needed results nobody delivered: (per subject, per site).

    Per subject: USUBJID -> X_MISSING_<DOMAIN> (needed items with no usable row), for in-scope subjects.
    Per site: SITE -> X_SITE_MISSING_<DOMAIN> and X_SITE_COUNT_<DOMAIN> (parallel lists): items that no
    subject of the site has a usable row of, needed by at least SITE_GAP_MIN_SUBJECTS in-scope subjects
    (a test the site never collects), with how many subjects need them. Such an item is left out of
    the subjects' lists: one repeated gap is one finding, not one per subject.
    """
    scope = subjects.filter(pl.col("X_DECISION").is_in(list(config.needed_decisions))).select("USUBJID")
    items = pl.DataFrame(
        [{"DOMAIN": dom, "ITEM": " or ".join(group), "TEST": code}
         for dom, groups in needs.items() for group in groups for code in group],
        schema={"DOMAIN": pl.String, "ITEM": pl.String, "TEST": pl.String})
    present_frames = []
    for dom in needs:
        roles = roles_of(config, dom)
        present = _present(domains, dom.lower(), roles.test, roles.result, roles.status, config.not_done)
        present_frames.append(present.with_columns(pl.lit(dom).alias("DOMAIN"), pl.lit(True).alias("HAS")))
    present = (pl.concat(present_frames) if present_frames
               else pl.DataFrame(schema={"USUBJID": pl.String, "TEST": pl.String, "DOMAIN": pl.String,
                                         "HAS": pl.Boolean}))
    sites = _subject_sites(domains)
    site_has = (present.join(sites, on="USUBJID", how="inner").join(items, on=["DOMAIN", "TEST"], how="inner")
                .select("SITE", "DOMAIN", "ITEM").unique().with_columns(pl.lit(True).alias("SITE_HAS")))
    conditions = _conditions(domains, config, catalog)
    table = (scope.join(items, how="cross")
             .join(present, on=["USUBJID", "DOMAIN", "TEST"], how="left")
             .group_by("USUBJID", "DOMAIN", "ITEM").agg(pl.col("HAS").fill_null(False).any())
             .join(conditions, on=["USUBJID", "DOMAIN", "ITEM"], how="left")
             .filter(~pl.col("HAS") & pl.col("CONDITION").fill_null(True))
             .join(sites, on="USUBJID", how="left")
             .join(site_has, on=["SITE", "DOMAIN", "ITEM"], how="left")
             .with_columns((pl.col("SITE").is_not_null() & pl.col("SITE_HAS").is_null()
                            & (pl.len().over("SITE", "DOMAIN", "ITEM") >= SITE_GAP_MIN_SUBJECTS)).alias("SITE_GAP"))
             .sort("USUBJID", "DOMAIN", "ITEM"))
    per_subject = scope
    gaps = table.filter(pl.col("SITE_GAP")).group_by("SITE", "DOMAIN", "ITEM").len().sort("SITE", "DOMAIN", "ITEM")
    per_site = gaps.select("SITE").unique().sort("SITE")
    for dom in sorted(needs):
        lists = (table.filter((pl.col("DOMAIN") == dom) & ~pl.col("SITE_GAP")).group_by("USUBJID", maintain_order=True)
                 .agg(pl.col("ITEM").alias(f"X_MISSING_{dom}")))
        per_subject = per_subject.join(lists, on="USUBJID", how="left")
        site_lists = (gaps.filter(pl.col("DOMAIN") == dom).group_by("SITE", maintain_order=True)
                      .agg(pl.col("ITEM").alias(f"X_SITE_MISSING_{dom}"),
                           pl.col("len").cast(pl.String).alias(f"X_SITE_COUNT_{dom}")))
        per_site = per_site.join(site_lists, on="SITE", how="left")
    return per_subject, per_site


def missing_criteria(domains: dict[str, pl.DataFrame], criteria: dict[str, str], config: SuiteConfig,
                     subjects: pl.DataFrame) -> pl.DataFrame:
    """USUBJID -> X_MISSING_IE: protocol criteria without an IE answer, for decided subjects.

    Same reading of the two DTS delivery styles as checks.comparison.site_checklist: a subject with a "passing"
    answer (inclusion Y / exclusion N) has a full checklist and every absent criterion is missing; a
    subject with only failing answers is a not-met-only delivery (absent = met / not applying); a
    subject without any IE row is missing its checklist unless every subject of its site with IE rows
    is not-met-only.
    """
    scope = subjects.filter(pl.col("X_DECISION").is_in(list(config.ie_decisions)))
    ie = _frame(domains, "ie", ["USUBJID", "IETESTCD", "IECAT", "IEORRES", "DELIVERY_SITEID"]).select(
        blank_to_null("USUBJID").alias("USUBJID"), coded_value("IETESTCD").alias("CRITERION"),
        coded_value("IECAT").alias("IECAT"), coded_value("IEORRES").alias("ANSWER"),
        pl.col("DELIVERY_SITEID"))
    category = pl.col("CRITERION").replace_strict(criteria, default=None, return_dtype=pl.String)
    passing = (((category.fill_null(pl.col("IECAT")) == Category.INCLUSION) & (pl.col("ANSWER") == "Y"))
               | ((category.fill_null(pl.col("IECAT")) == Category.EXCLUSION) & (pl.col("ANSWER") == "N")))
    per_subject = ie.group_by("USUBJID").agg(passing.any().alias("FULL"), pl.col("DELIVERY_SITEID").first(),
                                             pl.col("CRITERION").unique().alias("ANSWERED"))
    site_all_nmo = per_subject.group_by("DELIVERY_SITEID").agg((~pl.col("FULL")).all().alias("SITE_NMO"))
    dm_site = _frame(domains, "dm", ["USUBJID", "DELIVERY_SITEID"]).select(
        blank_to_null("USUBJID").alias("USUBJID"), "DELIVERY_SITEID").unique("USUBJID")
    table = (scope.join(dm_site, on="USUBJID", how="left")
             .join(per_subject.drop("DELIVERY_SITEID"), on="USUBJID", how="left")
             .join(site_all_nmo, on="DELIVERY_SITEID", how="left"))
    all_criteria = pl.lit(pl.Series(list(criteria), dtype=pl.String).implode())
    no_rows = pl.col("FULL").is_null()
    missing = (pl.when(pl.col("FULL").fill_null(False)).then(all_criteria.list.set_difference("ANSWERED"))
               .when(no_rows & ~pl.col("SITE_NMO").fill_null(False)).then(all_criteria)
               .otherwise(pl.lit([], dtype=pl.List(pl.String))))
    order = {c: i for i, c in enumerate(criteria)}
    return table.select("USUBJID", missing.list.eval(
        pl.element().sort_by(pl.element().replace_strict(order, default=len(order)))).alias("X_MISSING_IE"))
