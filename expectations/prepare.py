"""One prepared polars frame per domain: delivered text plus every derived column the suite needs.

Reference data is joined here (the subject's DM row and site, the subject-level completeness lists
for DM), then the builders' derived columns are added in dependency layers, and finally the narrow
frame Great Expectations sees is selected from it (only the columns the expectations read, indexed
by SOURCE so that every failure names its row).
"""

from __future__ import annotations

import polars as pl

from contracts.domains import DomainSpec
from core.source import SOURCE_COLUMNS, SOURCE_SCHEMA, source_text
from core.values import blank_to_null
from expectations.model import Piece
from expectations.subjects import decisions, missing_criteria, missing_results

#: the rendered `<key>:<row>` of each row: Great Expectations' row index, so that a failure, in Data
#: Docs and in the validation table, names its row as a site monitor reads it
SOURCE = "SOURCE"
#: prefix of the prepared columns that become the GE frame's columns (without the prefix)
GE_PREFIX = "G_"
#: suffix of derived columns that only feed messages (computed for failing rows only)
TEXT_SUFFIX = "_TEXT"


def delivered(domains: dict[str, pl.DataFrame], spec: DomainSpec) -> pl.DataFrame:
    """The domain's DTS variables (absent ones as null text), SITEID and the key qualifiers when delivered
    (`--TPTNUM`, `--POS`...: they tell repeated measurements apart), and SOURCE & co.

    Other extra columns are not validated (the DTS keeps and ignores them), and leaving them out
    means a site column can never collide with a derived column's name.
    """
    frame = domains.get(spec.code.lower())
    if frame is None:
        frame = pl.DataFrame(schema={**SOURCE_SCHEMA, "DELIVERY_SITEID": pl.String, "DECIMAL": pl.String})
    qualifiers = [v for v in spec.key_if_delivered if v in frame.columns]  # part of the key where delivered
    wanted = list(dict.fromkeys([*spec.variables, *(["SITEID"] if "SITEID" in frame.columns else []), *qualifiers,
                                 "DELIVERY_SITEID", "DECIMAL"]))
    return frame.select(*(pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, pl.String).alias(c)
                          for c in wanted),
                        source_text().alias(SOURCE), *SOURCE_COLUMNS)


def _with_subject(frame: pl.DataFrame, domains: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Join the subject's DM site (X_DM_SITEID) and whether the subject is in DM at all (X_IN_DM)."""
    dm = domains.get("dm")
    if dm is None or "USUBJID" not in dm.columns:
        subjects = pl.DataFrame(schema={"X_USUBJID": pl.String, "X_DM_SITEID": pl.String, "X_IN_DM": pl.Boolean})
    else:
        site = blank_to_null("SITEID") if "SITEID" in dm.columns else pl.lit(None, pl.String)
        subjects = (dm.select(blank_to_null("USUBJID").alias("X_USUBJID"), site.alias("X_DM_SITEID"))
                    .filter(pl.col("X_USUBJID").is_not_null())
                    .group_by("X_USUBJID", maintain_order=True).agg(pl.col("X_DM_SITEID").first())
                    .with_columns(pl.lit(True).alias("X_IN_DM")))
    joined = frame.join(subjects, on="X_USUBJID", how="left", maintain_order="left")
    return joined.with_columns(
        pl.when(pl.col("X_USUBJID").is_not_null()).then(pl.col("X_IN_DM").fill_null(False)).alias("X_IN_DM"))


def _with_needs(frame: pl.DataFrame, domains: dict[str, pl.DataFrame], ctx) -> pl.DataFrame:
    """DM only: the subject's decision and its missing results / IE answers (lists, empty when complete),
    and on the first DM row of each site the results none of the site's subjects has (site-level gaps)."""
    subjects = decisions(domains)
    needs, site_gaps = (missing_results(domains, ctx.needs, ctx.config, ctx.catalog, subjects, ctx.demands)
                        if ctx.needs else (None, None))
    ie = missing_criteria(domains, ctx.criteria, ctx.config, subjects, ctx.demands) if ctx.criteria else None
    table = subjects
    for extra in (needs, ie):
        if extra is not None:
            table = table.join(extra, on="USUBJID", how="left")
    lists = [c for c in table.columns if c.startswith("X_MISSING_")]
    table = table.with_columns(pl.col(c).fill_null([]) for c in lists).rename({"USUBJID": "X_USUBJID"})
    joined = frame.join(table, on="X_USUBJID", how="left", maintain_order="left")
    # a subject's completeness is reported once, on its first DM row (a duplicated DM key is its own finding)
    first = pl.int_range(pl.len()).over("X_USUBJID") == 0
    joined = joined.with_columns(pl.when(first).then(pl.col(c)).otherwise(pl.lit([], pl.List(pl.String))).alias(c)
                                 for c in lists)
    return _with_site_gaps(joined, domains, ctx, site_gaps)


def _with_site_gaps(frame: pl.DataFrame, domains: dict[str, pl.DataFrame], ctx,
                    gaps: pl.DataFrame | None) -> pl.DataFrame:
    """X_SITE_MISSING_<DOM> / X_SITE_COUNT_<DOM> on the first DM row of each site (empty elsewhere), and
    X_SITE_SOURCE_<DOM>: the site's file of that domain (its DM file when it delivered none), which a
    site-level finding names instead of a subject's row."""
    if gaps is None:
        return frame
    joined = frame.join(gaps.rename({"SITE": "DELIVERY_SITEID"}), on="DELIVERY_SITEID", how="left",
                        maintain_order="left")
    first = pl.int_range(pl.len()).over("DELIVERY_SITEID") == 0
    columns = [c for c in gaps.columns if c.startswith(("X_SITE_MISSING_", "X_SITE_COUNT_"))]
    joined = joined.with_columns(pl.when(first).then(pl.col(c).fill_null([])).otherwise(pl.lit([], pl.List(pl.String)))
                                 .alias(c) for c in columns)
    for domain in ctx.needs:
        files = domains.get(domain.lower())
        name = f"X_SITE_SOURCE_{domain}"
        if files is None or "SOURCE_KEY" not in files.columns:
            joined = joined.with_columns(pl.col("SOURCE_KEY").alias(name))
            continue
        keys = (files.select(pl.col("DELIVERY_SITEID"), pl.col("SOURCE_KEY").alias(name))
                .unique("DELIVERY_SITEID", keep="first", maintain_order=True))
        joined = (joined.join(keys, on="DELIVERY_SITEID", how="left", maintain_order="left")
                  .with_columns(pl.col(name).fill_null(pl.col("SOURCE_KEY"))))
    return joined


def _layers(derived: dict[str, pl.Expr], available: set[str]) -> list[dict[str, pl.Expr]]:
    """Split derived columns into layers so that each layer only reads columns of earlier ones."""
    pending, layers = dict(derived), []
    available = set(available)
    while pending:
        layer = {name: expr for name, expr in pending.items()
                 if set(expr.meta.root_names()) <= available}
        if not layer:
            raise ValueError(f"derived columns read unknown columns: {sorted(pending)}")
        layers.append(layer)
        available |= set(layer)
        for name in layer:
            del pending[name]
    return layers


#: compute a row-wise group once per distinct input when there are at least this many rows per value
_UNIQUE_RATIO = 4


def _add_rowwise(frame: pl.DataFrame, columns: dict[str, pl.Expr]) -> pl.DataFrame:
    """Add row-wise columns; a group reading few distinct input combinations is computed on those only.

    Parsing a unit, a test code or a date is the same work for every row with the same text, and a
    trial has a few hundred distinct units but hundreds of thousands of rows: the distinct inputs are
    evaluated and joined back (the catalog and parsers become joined reference tables).
    """
    for layer in _layers(columns, set(frame.columns)):
        groups: dict[tuple[str, ...], dict[str, pl.Expr]] = {}
        for name, expr in layer.items():
            groups.setdefault(tuple(sorted(set(expr.meta.root_names()))), {})[name] = expr
        direct: dict[str, pl.Expr] = {}
        for roots, exprs in groups.items():
            distinct = frame.select(roots).unique() if roots else None
            if distinct is not None and distinct.height * _UNIQUE_RATIO <= frame.height:
                table = distinct.with_columns(expr.alias(name) for name, expr in exprs.items())
                frame = frame.join(table, on=list(roots), how="left", nulls_equal=True, maintain_order="left")
            else:
                direct.update(exprs)
        if direct:
            frame = frame.lazy().with_columns(expr.alias(name) for name, expr in direct.items()).collect()
    return frame


def _unknown_where_unread(frame: pl.DataFrame, unread: pl.DataFrame | None) -> pl.DataFrame:
    """The joined reference columns that report an absence made unknown where the site's file of that domain was
    rejected as a whole (`unread`: SITEID, DOMAIN, ingestion.unread): a subject missing from a DM nobody read is not
    "not in DM" (X_IN_DM null: no finding), a result or IE answer missing from an LB or IE file nobody read is not
    missing (X_MISSING_<DOMAIN> and the site's X_SITE_MISSING_ / X_SITE_COUNT_ lists empty). The file's own finding
    asks the site for it; before, site 102 was also asked about "records not in DM" in every other domain."""
    if unread is None or unread.height == 0:
        return frame
    sites = {domain: unread.filter(pl.col("DOMAIN") == domain)["SITEID"].unique().to_list()
             for domain in unread["DOMAIN"].unique().to_list()}

    def unread_here(domain: str) -> pl.Expr:
        return pl.col("DELIVERY_SITEID").is_in(sites.get(domain, []))

    changes = [pl.when(unread_here("DM")).then(pl.lit(None, pl.Boolean)).otherwise(pl.col("X_IN_DM")).alias("X_IN_DM")
               ] if "X_IN_DM" in frame.columns and "DM" in sites else []
    for column in frame.columns:
        domain = next((column.removeprefix(prefix) for prefix in ("X_MISSING_", "X_SITE_MISSING_", "X_SITE_COUNT_")
                       if column.startswith(prefix)), None)
        if domain in sites:
            changes.append(pl.when(unread_here(domain)).then(pl.lit([], frame.schema[column]))
                           .otherwise(pl.col(column)).alias(column))
    return frame.with_columns(changes) if changes else frame


def prepare(domains: dict[str, pl.DataFrame], ctx, pieces: list[Piece], unread: pl.DataFrame | None = None
            ) -> pl.DataFrame:
    """The prepared frame of ctx.spec's domain: delivered columns + joins + derived columns. `unread`: the files
    ingestion rejected as a whole (ingestion.unread.unread_in), whose absence reports nothing."""
    frame = delivered(domains, ctx.spec)
    content = [c for c in frame.columns if c not in (SOURCE, *SOURCE_COLUMNS)]
    frame = frame.with_columns(
        pl.struct(content).hash().alias("X_ROW_HASH"),
        blank_to_null("USUBJID").alias("X_USUBJID"),
    )
    frame = _with_needs(frame, domains, ctx) if ctx.spec.code == "DM" else _with_subject(frame, domains)
    frame = _unknown_where_unread(frame, unread)
    derived: dict[str, pl.Expr] = {}
    windowed: dict[str, pl.Expr] = {}
    after: dict[str, pl.Expr] = {}
    for piece in pieces:
        derived.update({k: v for k, v in piece.derived.items() if not k.endswith(TEXT_SUFFIX)})
        windowed.update(piece.windowed)
        after.update({k: v for k, v in piece.after.items() if not k.endswith(TEXT_SUFFIX)})
    frame = _add_rowwise(frame, derived)
    if windowed:
        frame = frame.with_columns(expr.alias(name) for name, expr in windowed.items())
    frame = _add_rowwise(frame, after)
    # the GE columns are row-wise too: computed here, so that they also benefit from distinct inputs
    return _add_rowwise(frame, {GE_PREFIX + name: expr for name, expr in _ge_columns(pieces).items()})


def text_columns(pieces: list[Piece]) -> dict[str, pl.Expr]:
    """The message-only columns (`*_TEXT`), computed by the mapping for failing rows only."""
    texts: dict[str, pl.Expr] = {}
    for piece in pieces:
        texts.update({k: v for k, v in {**piece.derived, **piece.after}.items() if k.endswith(TEXT_SUFFIX)})
    return texts


def with_texts(rows: pl.DataFrame, texts: dict[str, pl.Expr]) -> pl.DataFrame:
    """Add the message-only columns to a few prepared rows."""
    return _add_rowwise(rows, texts)


def _ge_columns(pieces: list[Piece]) -> dict[str, pl.Expr]:
    columns: dict[str, pl.Expr] = {}
    for piece in pieces:
        columns.update(piece.ge)
    return columns


def ge_frame(prepared: pl.DataFrame, pieces: list[Piece]) -> pl.DataFrame:
    """The narrow frame the suite runs on: SOURCE plus every column an expectation reads."""
    return prepared.select(pl.col("SOURCE"), *(pl.col(GE_PREFIX + name).alias(name) for name in _ge_columns(pieces)))
