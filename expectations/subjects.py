"""Subject-level completeness, computed once per subject and joined onto DM rows.

For each subject: the site's decision (ENROLLED / SCREEN FAILURE / IN SCREENING), the results the
protocol needs that the subject has none of (conditional needs applied: HCG for women, HBV DNA when
HBsAg or anti-HBc is positive, ...), and the protocol criteria missing from the site's IE checklist.
For each site: the needed results none of its subjects has (a test the site never collects), which
are one site-level finding instead of one per subject. All of it is polars joins over (subject x
needed item), never a loop over subjects.
"""

from __future__ import annotations

import json

import polars as pl

from contracts.enums import Category
from contracts.needs import Condition
from contracts.protocol import Rule
from contracts.rule_kinds import EVENT_DOMAINS
from contracts.units import TestKind, UnitCatalog
from core.dates import partial_date
from core.values import blank_to_null, coded_value, qualitative_result
from core.versions import version_span
from expectations.protocol_needs import Demands
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


def _dm_subjects(domains: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per DM subject (its first DM row): USUBJID, SEX (coded), RFICDTC (text)."""
    return _frame(domains, "dm", ["USUBJID", "SEX", "RFICDTC"]).select(
        blank_to_null("USUBJID").alias("USUBJID"), coded_value("SEX").alias("SEX"),
        blank_to_null("RFICDTC").alias("RFICDTC")).unique("USUBJID", keep="first", maintain_order=True)


def subject_versions(domains: dict[str, pl.DataFrame], demands: Demands) -> pl.DataFrame:
    """USUBJID -> _V_FIRST, _V_LAST: the protocol versions its consent date allows (core.versions)."""
    consent = partial_date(pl.col("RFICDTC"))
    first, last = version_span(consent.struct.field("earliest"), consent.struct.field("latest"), demands.versions)
    return _dm_subjects(domains).select("USUBJID", first.alias("_V_FIRST"), last.alias("_V_LAST"))


def _atom_key(leaf: Rule) -> str:
    return json.dumps([leaf.kind, leaf.params], sort_keys=True, default=str)


def _atoms(condition: Condition, found: dict[str, Rule]) -> None:
    if condition is None:
        return
    if condition.kind in ("all", "any"):
        for child in condition.children:
            _atoms(child, found)
    else:
        found.setdefault(_atom_key(condition), condition)


def _atom_frame(leaf: Rule, domains: dict[str, pl.DataFrame], config: SuiteConfig, catalog: UnitCatalog,
                dm: pl.DataFrame) -> pl.DataFrame:
    """USUBJID -> MATCH: whether the gate leaf holds for the subject, read plainly (any delivered row of
    the test reads one of the values; a targeted history term recorded with MHOCCUR = Y; a DM value)."""
    params = leaf.params
    if leaf.kind == "subject":
        column = "SEX" if params["variable"] == "SEX" else "RFICDTC"
        holds = (pl.col(column).is_in([str(v).upper() for v in params["values"]]) if "values" in params
                 else pl.col(column).is_not_null())
        return dm.select("USUBJID", holds.fill_null(False).alias("MATCH"))
    if leaf.kind == "coded":
        wanted = {f"{str(params['domain']).upper()}.{str(params['test']).upper()}":
                  tuple(str(v).upper() for v in params["values"])}
    else:  # a targeted history (event with require_each): any listed term recorded as occurred
        each = EVENT_DOMAINS[str(params["domain"]).upper()]["each"]
        wanted = {f"{str(params['domain']).upper()}.{str(term).upper()}": ("Y",) for term in params["match"][each]}
    return _results_in(domains, config, catalog, wanted)


def _holds(condition: Condition, columns: dict[str, str]) -> pl.Expr:
    """The condition over the atoms' columns (a subject without the atom's data: it does not hold)."""
    if condition is None:
        return pl.lit(True)
    if condition.kind == "all":
        return pl.all_horizontal(_holds(child, columns) for child in condition.children)
    if condition.kind == "any":
        return pl.any_horizontal(_holds(child, columns) for child in condition.children)
    return pl.col(columns[_atom_key(condition)]).fill_null(False)


def _item_condition(codes: tuple[str, ...], domain: str, conditions: dict[str, Condition],
                    columns: dict[str, str]) -> pl.Expr | None:
    """When one version needs an item (a group: when it needs any member); None: it reads no member."""
    read = [conditions[f"{domain}.{code}"] for code in codes if f"{domain}.{code}" in conditions]
    if not read:
        return None
    if any(condition is None for condition in read):
        return pl.lit(True)
    return pl.any_horizontal(_holds(condition, columns) for condition in read)


def _conditions(domains: dict[str, pl.DataFrame], demands: Demands, config: SuiteConfig, catalog: UnitCatalog,
                items: list[tuple[str, str, tuple[str, ...]]]) -> pl.DataFrame:
    """USUBJID x conditional item -> whether the item is needed for that subject.

    One version: its condition. Several: the item is needed when every version the subject's consent
    allows needs it (a subject's checks never ask for what its version may not read)."""
    found: dict[str, Rule] = {}
    for conditions in demands.conditions:
        for condition in conditions.values():
            _atoms(condition, found)
    dm = _dm_subjects(domains)
    frame = dm.select("USUBJID")
    columns: dict[str, str] = {}
    for number, (key, leaf) in enumerate(found.items()):
        name = f"_A{number}"
        columns[key] = name
        frame = frame.join(_atom_frame(leaf, domains, config, catalog, dm).rename({"MATCH": name}),
                           on="USUBJID", how="left")
    if demands.amended:
        frame = frame.join(subject_versions(domains, demands), on="USUBJID", how="left")
    rows = []
    for domain, item, codes in items:
        per_version = [_item_condition(codes, domain, conditions, columns) for conditions in demands.conditions]
        if not demands.amended:
            needed = per_version[0]
            if needed is None or needed.meta.eq(pl.lit(True)):
                continue
        else:
            if all(v is not None and v.meta.eq(pl.lit(True)) for v in per_version):
                continue
            may_be = [(pl.col("_V_FIRST") <= number) & (pl.col("_V_LAST") >= number)
                      for number in range(len(per_version))]
            needed = pl.all_horizontal(~may_be[number] | (condition if condition is not None else pl.lit(False))
                                       for number, condition in enumerate(per_version))
        rows.append(frame.select("USUBJID", pl.lit(domain).alias("DOMAIN"), pl.lit(item).alias("ITEM"),
                                 needed.fill_null(False).alias("CONDITION")))
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
                    config: SuiteConfig, catalog: UnitCatalog, subjects: pl.DataFrame,
                    demands: Demands | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
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
    items_of_groups = [(dom, " or ".join(group), group) for dom, groups in needs.items() for group in groups]
    conditions = (_conditions(domains, demands, config, catalog, items_of_groups) if demands is not None
                  else pl.DataFrame(schema={"USUBJID": pl.String, "DOMAIN": pl.String, "ITEM": pl.String,
                                            "CONDITION": pl.Boolean}))
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


def _required_criteria(domains: dict[str, pl.DataFrame], criteria: dict[str, str],
                       demands: Demands | None) -> pl.DataFrame | None:
    """USUBJID -> X_REQUIRED (the criteria its checklist must answer) for an amended protocol: those of
    every version its consent allows (a criterion of one version only is not required when the consent
    date cannot tell). None for a single version: every criterion."""
    if demands is None or not demands.amended:
        return None
    spans = {}
    for first in range(len(demands.versions)):
        for last in range(first, len(demands.versions)):
            common = set.intersection(*(set(demands.criteria[v]) for v in range(first, last + 1)))
            spans[(first, last)] = [c for c in criteria if c in common]
    table = pl.DataFrame({"_V_FIRST": [k[0] for k in spans], "_V_LAST": [k[1] for k in spans],
                          "X_REQUIRED": list(spans.values())},
                         schema={"_V_FIRST": pl.Int32, "_V_LAST": pl.Int32, "X_REQUIRED": pl.List(pl.String)})
    return subject_versions(domains, demands).join(table, on=["_V_FIRST", "_V_LAST"], how="left").select(
        "USUBJID", "X_REQUIRED")


def missing_criteria(domains: dict[str, pl.DataFrame], criteria: dict[str, str], config: SuiteConfig,
                     subjects: pl.DataFrame, demands: Demands | None = None) -> pl.DataFrame:
    """USUBJID -> X_MISSING_IE: protocol criteria without an IE answer, for decided subjects.

    Same reading of the two DTS delivery styles as checks.comparison.site_checklist: a subject with a "passing"
    answer (inclusion Y / exclusion N) has a full checklist and every absent criterion is missing; a
    subject with only failing answers is a not-met-only delivery (absent = met / not applying); a
    subject without any IE row is missing its checklist unless every subject of its site with IE rows
    is not-met-only. With an amended protocol, the criteria are those of the subject's version.
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
    required = _required_criteria(domains, criteria, demands)
    if required is not None:
        table = table.join(required, on="USUBJID", how="left")
        all_criteria = pl.col("X_REQUIRED").fill_null(all_criteria)
    no_rows = pl.col("FULL").is_null()
    missing = (pl.when(pl.col("FULL").fill_null(False)).then(all_criteria.list.set_difference("ANSWERED"))
               .when(no_rows & ~pl.col("SITE_NMO").fill_null(False)).then(all_criteria)
               .otherwise(pl.lit([], dtype=pl.List(pl.String))))
    order = {c: i for i, c in enumerate(criteria)}
    return table.select("USUBJID", missing.list.eval(
        pl.element().sort_by(pl.element().replace_strict(order, default=len(order)))).alias("X_MISSING_IE"))
