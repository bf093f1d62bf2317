"""The identity of a validation finding across nights (FINDING_ID) and the fingerprint of its facts.

A finding is the same finding on another night when it is about the same record and the same
expectation: its study, site, domain, variable, the check (`LB.unit_known.LBORRESU`, the stable name of
the expectation) and the row's *natural key* (contracts/domains.yaml `key`: `USUBJID, LBTESTCD, LBDTC`
for LB), never its row number or its file, which change with every delivery. A domain without a key
(CM, PR) is keyed on the record's other DTS variables (all but the finding's own). A check that
reports several things about one row (one missing IE answer per criterion) adds the item; rows that
still cannot be told apart (a record delivered twice) are numbered in delivery order, the first
keeping the id it would have alone.

EVIDENCE_HASH: the finding's OBSERVED value and the row's delivered DTS values, except the private
ones (a birth date never enters a published digest): a site that changes anything in the record makes
a closed finding about it reviewable again.
"""

from __future__ import annotations

import polars as pl

from contracts.domains import domain_spec
from contracts.tables import EVIDENCE_HASH, FINDING_ID
from core.identity import fingerprint, repeat_number, stable_id
from core.source import SOURCE_KEY, SOURCE_ROW
from core.values import blank_to_null
from expectations.model import Check

#: the prefix of a validation finding's FINDING_ID (discrepancies' start with "D-")
PREFIX = "V"
_KEY = "X_NATURAL_KEY"
_SEPARATOR, _MISSING = "\x1f", "\x00"


def _natural_key(check: Check, columns: list[str], variable: pl.Expr) -> pl.Expr:
    spec = domain_spec(check.domain)
    if check.site_level:  # about the site, not a record: the site, variable, check and item say which
        return pl.lit("", pl.String)
    if spec.key:  # the key with the qualifiers delivered (VSTPTNUM tells a visit's repeated vitals apart)
        parts = [blank_to_null(c) if c in columns else pl.lit(None, pl.String) for c in spec.natural_key(columns)]
    else:  # no natural key: the record's other variables (its own, being the problem, may change)
        parts = [pl.when(variable == name).then(pl.lit(None, pl.String)).otherwise(blank_to_null(name))
                 for name in spec.variables if name in columns]
    return pl.concat_str([p.fill_null(_MISSING) for p in parts], separator=_SEPARATOR)


def identity_columns(rows: pl.DataFrame, check: Check, study: str, site: pl.Expr, variable: pl.Expr,
                     observed: pl.Expr) -> pl.DataFrame:
    """`rows` (failing prepared rows of one check) with FINDING_ID and EVIDENCE_HASH added."""
    item = pl.col("X_ITEM").cast(pl.String) if check.explode else pl.lit(None, pl.String)
    domain = check.finding_domain or check.domain
    keyed = rows.with_columns(_natural_key(check, rows.columns, variable).alias(_KEY))
    parts = [site, variable, pl.col(_KEY), item]
    delivered = [c for c in domain_spec(check.domain).variables if c in rows.columns and c not in check.private]
    return keyed.with_columns(
        stable_id(PREFIX, pl.lit(study), site, pl.lit(domain), variable, pl.lit(check.id), pl.col(_KEY), item,
                  repeat_number(*parts, order_by=[SOURCE_KEY, SOURCE_ROW])).alias(FINDING_ID),
        fingerprint(observed, *delivered).alias(EVIDENCE_HASH),
    ).drop(_KEY)
