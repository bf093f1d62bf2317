"""Checks the protocol decides: known criteria, their categories, needed results, the IE checklist."""

from __future__ import annotations

import polars as pl

from core.values import coded_value
from expectations.model import IGNORE_MISSING, Context, Piece, in_set, make_check, value_of
from expectations.spec import CheckKind


def build_ie(ctx: Context) -> list[Piece]:
    if ctx.domain != "IE" or not ctx.criteria:
        return []
    known = make_check(ctx, CheckKind.IE_CRITERION, "IETESTCD", *in_set("IETESTCD", sorted(ctx.criteria)))
    expected = coded_value("IETESTCD").replace_strict(ctx.criteria, default=None, return_dtype=pl.String)
    category = make_check(ctx, CheckKind.IE_CATEGORY, "IECAT", "expect_column_pair_values_to_be_equal",
                          {"column_A": "IECAT", "column_B": "IECAT_PROTOCOL", "ignore_row_if": IGNORE_MISSING})
    return [Piece(known, ge={"IETESTCD": value_of("IETESTCD", ctx)}),
            Piece(category, derived={"X_IECAT_EXPECTED": expected},
                  ge={"IECAT": value_of("IECAT", ctx), "IECAT_PROTOCOL": pl.col("X_IECAT_EXPECTED")})]


def build_needs(ctx: Context) -> list[Piece]:
    """DM rows: the subject has every result the protocol needs and the full IE checklist.

    The per-subject lists (`X_MISSING_<DOMAIN>`, a list of missing tests) are joined onto DM by
    expectations.subjects; here they become one "must be null" expectation per domain. A test no
    subject of a site has (the site never collects it) is in the site's list instead
    (`X_SITE_MISSING_<DOMAIN>`, on the site's first DM row): one finding for the site.
    """
    if ctx.domain != "DM":
        return []
    pieces = []
    texts = {"X_NEEDED_BY_TEXT": pl.col("X_ITEM").replace_strict(_needed_by(ctx), default="the criteria needing it",
                                                                 return_dtype=pl.String)}
    for domain, groups in sorted(ctx.needs.items()):
        column = f"MISSING_{domain}"
        tests = ", ".join(" or ".join(group) for group in groups)
        check = make_check(ctx, CheckKind.NEEDED_RESULTS, column, "expect_column_values_to_be_null",
                           {"column": column}, explode=f"X_{column}", finding_domain=domain,
                           finding_variable=_test_variable(ctx, domain),
                           constants={"domain": domain, "tests": tests})
        pieces.append(Piece(check, after=texts, ge={column: _joined_list(f"X_{column}")}))
        # the same items when no subject of a site has them: one finding for the site (on its first DM row)
        site = f"SITE_MISSING_{domain}"
        check = make_check(ctx, CheckKind.NEEDED_RESULTS_SITE, site, "expect_column_values_to_be_null",
                           {"column": site}, explode=f"X_{site}", explode_with=((f"X_SITE_COUNT_{domain}",
                                                                                 "X_ITEM_COUNT"),),
                           finding_domain=domain, finding_variable=_test_variable(ctx, domain), site_level=True,
                           source_column=f"X_SITE_SOURCE_{domain}",
                           constants={"domain": domain, "tests": tests})
        pieces.append(Piece(check, after=texts, ge={site: _joined_list(f"X_{site}")}))
    if ctx.criteria:
        check = make_check(ctx, CheckKind.IE_CHECKLIST, "MISSING_IE", "expect_column_values_to_be_null",
                           {"column": "MISSING_IE"}, explode="X_MISSING_IE", finding_domain="IE",
                           finding_variable="IETESTCD",
                           constants={"decisions": " / ".join(ctx.config.ie_decisions)})
        pieces.append(Piece(check, ge={"MISSING_IE": _joined_list("X_MISSING_IE")}))
    return pieces


def _needed_by(ctx: Context) -> dict[str, str]:
    """Needed item ("HBVDNA", "LYM or LYMLE") -> the components that read it, as text for messages."""
    users: dict[str, set[str]] = {}
    for domain, groups in ctx.needs.items():
        for group in groups:
            ids = {c for code in group for c in ctx.needed_by.get(f"{domain}.{code}", ())}
            users.setdefault(" or ".join(group), set()).update(ids)
    return {item: ", ".join(sorted(ids)) for item, ids in users.items() if ids}


def _test_variable(ctx: Context, domain: str) -> str:
    roles = ctx.config.results.get(domain)
    return (roles or ctx.config.test_variables[domain]).test


def _joined_list(column: str) -> pl.Expr:
    items = pl.col(column)
    return pl.when(items.list.len() > 0).then(items.list.join(", "))
