"""Site queries: one query per problem a site must act on, with a neutral query text.

A site monitor sends these to a site; the text quotes the values, units, limits and dates behind the
finding and asks for one specific action. The wording is data (`data/queries.yaml`), filled in with
one polars expression per template: no loop over rows. A finding about a delivery, a file or the site's
folder (ingestion's codes) is not about a value: it has its own wording (`delivery`), which says what is
wrong with which delivery and asks for a new one, instead of asking the site to check a "value".

Two levels. `build_site_queries` gives one row per finding (its FINDING_ID, the Detail sheet of a
site's workbook and the report's query detail). `consolidate_queries` makes the list a site monitor
works: the findings of a site with the same check and the same cause (discrepancies: class and reason
code, e.g. every enrolled subject without an FEV1PP result; data quality: the check, e.g. an unknown
unit) are one query that lists its subjects and findings, so a site's list grows with checks x causes,
not with subjects. A site's answer to a consolidated query is recorded for each finding it lists. A
finding that another finding already asks the site about (`covered_by`, reporting.covered: a missing IE
answer of a subject with PC04, the checklist answer behind an ineligible enrolment) is not asked a second
time: it is listed on the site workbook's Also answered sheet under the query that asks about it
(`left_out_findings`), so that the site's answer to that query is recorded for it too.
"""

from __future__ import annotations

import re

import polars as pl

from contracts import is_open
from contracts.enums import ReasonCode, Severity
from contracts.tables import FINDING_ID
from core.identity import stable_id
from core.safety import neutralise_expr
from core.source import rows_words
from ingestion.codes import is_note
from reporting.check_keys import matching, names_a_code
from reporting.covered import COVERED_FINDING_IDS, COVERED_SUBJECTS, check_rules, without_covered
from reporting.datafiles import DataFileError, check_keys, load
from reporting.dv import judged_with_their_enrolment
from reporting.summary import evaluated_tonight
from reporting.tables import sort_like, sorted_if_apart
from review.catalogue import validation_status
from review.machine import load_machine

#: one row per finding; QUERY_ID is the query (one per problem) that lists it
QUERY_COLUMNS = ["QUERY_ID", "FINDING_ID", "STUDYID", "SITEID", "USUBJID", "TIVERS", "ORIGIN", "CHECK_ID",
                 "CLASS", "SEVERITY", "STATUS", "FIRST_SEEN", "DAYS_OPEN", "DOMAIN", "VARIABLE", "VALUE", "UNIT",
                 "LIMIT", "DELIVERED", "DTC", "SOURCE", "CAUSE", "DETAIL", "QUERY_TEXT", "EVIDENCE_HASH",
                 COVERED_FINDING_IDS, COVERED_SUBJECTS]
#: the columns a finding's row is built with; TIVERS is joined from the subjects last (_with_version)
_BUILT = [c for c in QUERY_COLUMNS if c != "TIVERS"]
#: one problem: the findings of a site with the same check and cause (see the module's docstring)
PROBLEM = ["STUDYID", "SITEID", "ORIGIN", "CHECK_ID", "CLASS", "SEVERITY", "DOMAIN", "VARIABLE", "CAUSE"]
CONSOLIDATED_COLUMNS = ["QUERY_ID", "STUDYID", "SITEID", "ORIGIN", "CHECK_ID", "CLASS", "SEVERITY", "STATUS",
                        "DOMAIN", "VARIABLE", "CAUSE", "N_SUBJECTS", "N_FINDINGS", "SUBJECTS", "FIRST_SEEN",
                        "DAYS_OPEN", "QUERY_TEXT", "DETAIL", "FINDING_IDS"]
#: a query lists at most this many findings (an Excel cell holds 32,767 characters; a FINDING_ID is 18):
#: a larger problem is split into numbered parts with the same text
MAX_FINDINGS_PER_QUERY = 1_000
#: DETAIL quotes this many findings' own details; the rest are in the Detail sheet and the tables
MAX_DETAIL_LINES = 20
#: the Detail sheet of a site's workbook lists this many findings of each query; the next row says how
#: many more the query has and which file lists every one (the site's query detail CSV)
DETAIL_SHEET_FINDINGS = 100
#: where DETAIL says the findings it does not quote are
_MORE_FINDINGS = (f"findings: the Detail sheet lists them (up to {DETAIL_SHEET_FINDINGS:,} a query), "
                  "the site's query detail CSV every one")
_FIELD = re.compile(r"\{([A-Z_]+)\}")
_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.S)
MISSING = "not recorded"


def _data() -> dict:
    data = load("queries.yaml")
    check_keys("queries.yaml", data, {"checks", "classes", "default", "grouped", "delivery", "data_checks",
                                      "unverifiable_causes", "covered_by", "values_of_component",
                                      "problem_in_recomputed"},
               {"classes", "default", "grouped", "delivery"})
    check_rules(data.get("covered_by") or [])
    for key, example in (("values_of_component", "PC06"), ("problem_in_recomputed", "PC04")):
        checks = data.get(key) or []
        if not isinstance(checks, list) or not all(isinstance(check, str) and check for check in checks):
            raise DataFileError(f"queries.yaml: {key} must be a list of check ids, e.g. [{example}]")
    for key in data.get("unverifiable_causes") or {}:
        if key not in ReasonCode.__members__.values():
            raise DataFileError(f"queries.yaml: unverifiable_causes: {key!r} is no reason code (contracts.enums)")
    check_keys("queries.yaml: delivery", data["delivery"], {"codes", "grouped"}, {"codes", "grouped"})
    for key in data["delivery"]["codes"]:
        if not names_a_code(key):
            raise DataFileError(f"queries.yaml: delivery: codes: {key!r} is no ingestion code nor a prefix of one")
    return data


def _templates() -> tuple[dict[str, str], dict[str, str], str]:
    data = _data()
    return dict(data.get("checks") or {}), data["classes"], data["default"]


def _most_specific_first(templates: dict[str, str]) -> dict[str, str]:
    """Key -> template, keys with more parts (and fewer `*`) first: the first that matches a finding wins."""
    return {key: templates[key] for key in sorted(templates, key=lambda k: (-k.count("."), k.count("*"), k))}


def _delivery_codes() -> dict[str, str]:
    """Code or code prefix -> the text of a finding about a delivery or a file, the most specific first."""
    return _most_specific_first(_data()["delivery"]["codes"])


def _data_checks() -> dict[str, str]:
    """Check id pattern -> the text of a data-quality finding that asks for something else than checking a
    value, the most specific first."""
    return _most_specific_first(_data().get("data_checks") or {})


def _choose(choices: list[tuple[pl.Expr, str]], default: str) -> pl.Expr:
    """The first template whose condition holds, rendered; `default` otherwise."""
    chain = None
    for cond, template in choices:
        chain = (pl.when(cond) if chain is None else chain.when(cond)).then(render_template(template))
    text = render_template(default) if chain is None else chain.otherwise(render_template(default))
    return _normalised_space(text)


#: a run of white space that is not one plain space: what `_normalised_space` rewrites (the same result as
#: replacing every run of `\s+`, without rewriting each of the thousands of single spaces of a text)
_UNEVEN_SPACE = r"\s{2,}|[^\S ]"


def _normalised_space(text: pl.Expr) -> pl.Expr:
    """Every run of white space as one space (a value's line breaks, a part left out), none at the ends."""
    return text.str.replace_all(_UNEVEN_SPACE, " ").str.strip_chars()


def _text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String)


def _literal_and_fields(part: str) -> list[pl.Expr]:
    pieces: list[pl.Expr] = []
    pos = 0
    for match in _FIELD.finditer(part):
        if match.start() > pos:
            pieces.append(pl.lit(part[pos:match.start()]))
        pieces.append(_text(match.group(1)).fill_null(MISSING))
        pos = match.end()
    if pos < len(part):
        pieces.append(pl.lit(part[pos:]))
    return pieces


def render_template(template: str) -> pl.Expr:
    """A String expression that fills `template` for every row (see data/queries.yaml)."""
    parts: list[pl.Expr] = []
    pos = 0
    for match in _OPTIONAL.finditer(template):
        parts.extend(_literal_and_fields(template[pos:match.start()]))
        inner = match.group(1)
        fields = _FIELD.findall(inner)
        present = pl.all_horizontal([_text(f).is_not_null() & (_text(f) != "") for f in fields]) \
            if fields else pl.lit(True)
        parts.append(pl.when(present).then(pl.concat_str(_literal_and_fields(inner))).otherwise(pl.lit("")))
        pos = match.end()
    parts.extend(_literal_and_fields(template[pos:]))
    return pl.concat_str(parts)


def _with_unit(value: str, unit: str) -> pl.Expr:
    return pl.when(pl.col(unit).is_null() | (pl.col(unit) == "")).then(pl.col(value)).otherwise(
        pl.concat_str([pl.col(value), pl.lit(" "), pl.col(unit)]))


#: the records a query text or DETAIL line names of a finding's SOURCE (the query detail's RECORD names them all)
MAX_RECORDS_QUOTED = 5


def _row_reference(limit: int | None = MAX_RECORDS_QUOTED) -> pl.Expr:
    """SOURCE as a site finds it, each of several records (`; `): `…/lb.csv record 462 after the header` for
    `…/lb.csv:462`, `…/lb.xlsx row 462 below the header` for `…/lb.xlsx:462` (core.source.rows_words). A site monitor
    read the bare `lb.csv:462` as the file's line 462 and looked at the record above."""
    part = pl.element()
    row, path = _row_of(part), _file_of(part)
    one = pl.when(row.is_null()).then(part).otherwise(pl.format("{} {}", path, rows_words(path, row)))
    records = pl.col("SOURCE").str.split("; ")
    if limit is None:  # RECORD: every one
        return records.list.eval(one).list.join("; ")
    named = records.list.head(limit).list.eval(one).list.join("; ")
    # PC01 names every record dated before consent (51 at one site): a text quotes the first few, RECORD has all
    more = records.list.len().cast(pl.Int64) - limit
    return pl.when(more > 0).then(pl.format("{}; and {} more {} (RECORD in the query detail lists them)", named, more,
                                            _records_noun(more))).otherwise(named)


def _records_noun(count: pl.Expr) -> pl.Expr:
    return pl.when(count == 1).then(pl.lit("record")).otherwise(pl.lit("records"))


def _with_row_ref(frame: pl.DataFrame, limit: int = MAX_RECORDS_QUOTED) -> pl.DataFrame:
    """`frame` with ROW_REF, the records a query text names of each finding's SOURCE (`_row_reference`); of a SOURCE
    of several records, the first `limit` as RECORD words them (`_records_by_file`: each file once, with its path,
    its rows in order), then how many more. A text that named every record with its path, in date order
    ("vs.csv record 54 ...; vs.csv record 55 ...; vs.csv record 50 ..."), read as a list of unrelated places
    beside the RECORD column's "records 49, 50, ... 60" (helper-34)."""
    refs = frame.select(_row_reference(limit).alias("ROW_REF")).to_series()
    many = frame.select(pl.col("SOURCE").str.contains("; ", literal=True).fill_null(False).arg_true()).to_series()
    if many.len() == 0:
        return frame.with_columns(refs)
    records = frame.select(pl.col("SOURCE").gather(many).str.split("; ").alias("_RECORDS"))
    shown = records.select(pl.col("_RECORDS").list.head(limit).list.join("; ").alias("SOURCE"))
    more = records.select(pl.col("_RECORDS").list.len().cast(pl.Int64) - limit).to_series()
    grouped = pl.DataFrame({"_TEXT": _records_by_file(shown, with_path=True), "_MORE": more}).select(
        pl.when(pl.col("_MORE") > 0)
        .then(pl.format("{}; and {} more {} (RECORD in the query detail lists them)", "_TEXT", "_MORE",
                        _records_noun(pl.col("_MORE"))))
        .otherwise(pl.col("_TEXT"))).to_series()
    return frame.with_columns(refs.scatter(many, grouped))


def _row_number(source: pl.Expr) -> pl.Expr:
    """The row number a SOURCE `<key>:<row>` ends with; null for a file-level one. (`^(.*):(\\d+)$` gave the same
    in one pattern, at six times the cost: its `.*` is matched again at every colon.)"""
    return source.str.extract(r":(\d+)$", 1).cast(pl.Int64)


def _row_of(source: pl.Expr) -> pl.Expr:
    """`_row_number` as text, as a query names it (`007` -> `7`)."""
    return _row_number(source).cast(pl.String)


def _file_of(source: pl.Expr) -> pl.Expr:
    return source.str.replace(r":\d+$", "")


def _record_words(frame: pl.DataFrame) -> pl.Series:
    """RECORD of the query detail: where in the file SOURCE names a site finds each finding's record, as the query
    texts say it (`record 462 after the header` for `…/lb.csv:462`, `row 462 below the header` in a workbook, and,
    for several records, the rows with their files); null for a finding about a file or no record.

    A site monitor works the Detail sheet record by record, and read its bare `lb.csv:462` as the file's line 462.
    Computed for the one-record SOURCEs by plain column expressions, and with the per-record list only for the few
    of several records (a mean of replicates, a clearance's inputs): a list per row for 130,000 findings was a
    tenth of a second."""
    source = pl.col("SOURCE")
    several = source.str.contains("; ", literal=True).fill_null(False)
    row = _row_of(source)
    words = frame.select(pl.when(several).then(pl.lit(None, pl.String)).when(row.is_not_null())
                         .then(rows_words(source, row)).alias("RECORD")).to_series()
    many = frame.select(several.arg_true()).to_series()
    if many.len():
        words = words.scatter(many, _records_by_file(frame.select(source.gather(many))))
    return words


def _records_by_file(sources: pl.DataFrame, *, with_path: bool = False) -> pl.Series:
    """RECORD of SOURCEs of several records, each file once with its rows in order: `records 8, 9 after the
    header` for one file, `…/vs.csv records 1094, 1098 after the header; …/lb.csv record 3 after the header` for
    several (PC01 lists every record dated before consent: one path per record, in date order, read as a list
    of 50 unrelated places); a part without a row (a file-level source) as it is. `with_path`: one file is named
    too (a query text has no SOURCE column beside it)."""
    parts = (sources.with_row_index("_I").with_columns(pl.col("SOURCE").str.split("; ").alias("_PART"))
             .explode("_PART")
             .with_columns(_file_of(pl.col("_PART")).alias("_FILE"), _row_number(pl.col("_PART")).alias("_ROW")))
    # a part without a row (a whole file) is a group of its own: with the file's rows it was quoted as it is,
    # bare `lb.csv:3` included (helper-35)
    groups = (parts.group_by("_I", "_FILE", pl.col("_ROW").is_null().alias("_WHOLE"), maintain_order=True)
              .agg(pl.col("_ROW").sort().cast(pl.String).str.join(", ").alias("_ROWS"),
                   pl.col("_ROW").null_count().alias("_BARE"), pl.len().alias("_N"),
                   pl.col("_PART").str.join("; ").alias("_AS_IS"))
              .with_columns(pl.len().over("_I").alias("_FILES")))
    rows = rows_words(pl.col("_FILE"), pl.col("_ROWS"), several=pl.col("_N") > 1)
    text = (pl.when(pl.col("_BARE") > 0).then(pl.col("_AS_IS"))
            .when((pl.col("_FILES") == 1) & (not with_path)).then(rows)
            .otherwise(pl.format("{} {}", pl.col("_FILE"), rows)))
    return (groups.with_columns(text.alias("RECORD")).group_by("_I", maintain_order=True)
            .agg(pl.col("RECORD").str.join("; ")).sort("_I")["RECORD"])


def _evidence_in_text() -> pl.Expr:
    """EVIDENCE as a query text quotes it: an UNVERIFIABLE component's without its opening "<CHECK_ID> could not
    be verified: ", which every such text has already said ("IN11.ALB cannot be verified: the test is recorded as
    not done. IN11.ALB could not be verified: ALB not done ...", a site-monitor trial). Only for the rows whose
    text is rendered; DETAIL keeps the whole sentence."""
    opening = pl.format("{} could not be verified: ", pl.col("CHECK_ID"))
    rest = pl.col("EVIDENCE").str.strip_prefix(opening)
    sentence = pl.concat_str([rest.str.slice(0, 1).str.to_uppercase(), rest.str.slice(1)])  # a sentence of its own
    return (pl.when((pl.col("ORIGIN") == "DISCREPANCY") & (pl.col("CLASS") == "UNVERIFIABLE")
                    & pl.col("EVIDENCE").str.starts_with(opening).fill_null(False))
            .then(sentence).otherwise(pl.col("EVIDENCE")).alias("EVIDENCE"))


def _no_full_stop(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars_end(" .").alias(column)


def _unsettled(frame: pl.DataFrame) -> pl.Expr:
    """Not settled by the sponsor's review (closed, not a deviation: review/states.yaml `settled`): a site
    is not asked again about a finding the sponsor has decided on."""
    if "REVIEW_STATE" not in frame.columns:
        return pl.lit(True)
    return ~pl.col("REVIEW_STATE").is_in(list(load_machine().settled)).fill_null(False)


#: the eligibility row a discrepancy quotes: the one of its own CHECK_ID
VALUE_KEYS = ["STUDYID", "SITEID", "USUBJID", "CHECK_ID"]


def _value_check() -> pl.Expr:
    """The component whose eligibility row a discrepancy's query quotes: its CHECK_ID, or for a process check
    listed in queries.yaml `values_of_component` the component its RECOMPUTED names (`IN11.CRCL=90.3 mL/min`:
    PC06 then quotes the clearance's value, limit, date and the records it was computed from)."""
    checks = list(_data().get("values_of_component") or [])
    named = pl.col("RECOMPUTED").str.extract(r"^([A-Z][A-Z0-9]*\.[A-Z0-9_]+)=", 1)
    return pl.when(pl.col("CHECK_ID").is_in(checks)).then(named).otherwise(pl.col("CHECK_ID"))


def quoted_value_keys(discrepancies: pl.DataFrame) -> pl.DataFrame:
    """VALUE_KEYS of the eligibility rows the queries of `discrepancies` quote (publication reads only those of
    a night's 500,000 rows)."""
    return discrepancies.select(*VALUE_KEYS[:-1], _value_check().alias("CHECK_ID")).unique()


def _discrepancy_rows(discrepancies: pl.DataFrame, eligibility: pl.DataFrame) -> pl.DataFrame:
    # a finding carried from an earlier night (its site not audited tonight, its subject not evaluated) is not asked
    # again: tonight's audit has no values to quote for it, and what kept it out is the site's query tonight
    # nor is one the review decided on, or the checklist answer of an ineligible enrolment it judged (dv: the same
    # deviation)
    judged = judged_with_their_enrolment(discrepancies)
    current = evaluated_tonight(discrepancies.filter(~judged)).filter(is_open() & _unsettled(discrepancies))
    keys = VALUE_KEYS
    code = pl.col("REASON_CODE") if "REASON_CODE" in eligibility.columns else pl.lit(None, pl.String)
    delivered = pl.col("DELIVERED") if "DELIVERED" in eligibility.columns else pl.lit(None, pl.String)
    # only the eligibility rows of the open discrepancies (a few thousand of a night's 500,000), the first per key
    wanted = eligibility.join(quoted_value_keys(current), on=keys, how="semi", nulls_equal=True,
                              maintain_order="left")
    values = wanted.select(*keys, "VALUE", "UNIT", delivered.alias("DELIVERED"), "LIMIT", "DTC", "REASON",
                           code.alias("CAUSE"),
                           pl.col("SOURCE").alias("_ELIG_SOURCE")).unique(keys, keep="first", maintain_order=True)
    own = [c for c in ("VALUE", "UNIT", "DELIVERED", "LIMIT", "DTC", "REASON", "SOURCE", "CAUSE")
           if c in current.columns]
    # a process check's own date and records (PC01: each record dated before consent) come before the quoted row's
    mine = [(pl.col(c) if c in current.columns else pl.lit(None, pl.String)).cast(pl.String).alias(f"_OWN_{c}")
            for c in ("DTC", "SOURCE")]
    values = values.rename({"CHECK_ID": "_VALUE_CHECK"})
    rows = (current.with_columns(mine).drop(own).with_columns(_value_check().alias("_VALUE_CHECK"))
            .join(values, on=[*keys[:-1], "_VALUE_CHECK"], how="left", nulls_equal=True)
            # a process check quoting a component's row keeps its own cause (none, or its RECOMPUTED where that says
            # what the problem is, without the site's own answers it quotes: `problem_in_recomputed`): the cause is
            # part of its query
            .with_columns(pl.when(pl.col("CHECK_ID").is_in(list(_data().get("problem_in_recomputed") or [])))
                          .then(pl.col("RECOMPUTED").str.replace_all(r"=[^,;]*", ""))
                          .when(pl.col("_VALUE_CHECK") == pl.col("CHECK_ID")).then(pl.col("CAUSE")).alias("CAUSE"))
            .drop("_VALUE_CHECK"))
    return rows.with_columns(
        pl.coalesce("_OWN_SOURCE", "_ELIG_SOURCE").alias("SOURCE"),
        pl.coalesce("_OWN_DTC", "DTC").alias("DTC"),
        pl.lit("DISCREPANCY").alias("ORIGIN"),
        pl.lit(None, pl.String).alias("DOMAIN"),
        pl.lit(None, pl.String).alias("VARIABLE"),
        pl.lit(None, pl.String).alias("OBSERVED"),
        pl.lit(None, pl.String).alias("MESSAGE"),
        pl.col("EVIDENCE").alias("DETAIL"),
    ).drop("_ELIG_SOURCE", "_OWN_SOURCE", "_OWN_DTC")


def _validation_rows(validation: pl.DataFrame) -> pl.DataFrame:
    """Data-quality findings as site-query rows. CHECK_ID is the finding's check (`LB.unit_known.LBORRESU`),
    as in the sponsor's review (review.catalogue), else its ingestion code: a site monitor read the Great
    Expectations type (`expect_column_values_to_be_in_set`, the same for a unit, a date and a missing subject)
    as the check's name. A note (a manifest setting that was ignored) asks nothing of the site: it stays in
    `validation` only."""
    check = pl.col("CHECK").cast(pl.String) if "CHECK" in validation.columns else pl.lit(None, pl.String)
    days = pl.col("DAYS_OPEN").cast(pl.Int64) if "DAYS_OPEN" in validation.columns else pl.lit(None, pl.Int64)
    return validation.filter(~is_note(validation) & _unsettled(validation)).with_columns(
        pl.lit("VALIDATION").alias("ORIGIN"),
        pl.coalesce(check, pl.col("EXPECTATION")).alias("CHECK_ID"),
        pl.lit("VALIDATION").alias("CLASS"),
        pl.lit(Severity.QUERY).alias("SEVERITY"),
        validation_status(days).alias("STATUS"),
        *(pl.col(c).cast(t) if c in validation.columns else pl.lit(None, t).alias(c)
          for c, t in (("FIRST_SEEN", pl.String), ("DAYS_OPEN", pl.Int64))),
        pl.col("OBSERVED").alias("VALUE"),
        *(pl.lit(None, pl.String).alias(c) for c in ("UNIT", "LIMIT", "DTC", "REASON", "EVIDENCE",
                                                      "SITE_ASSESSMENT", "RECOMPUTED")),
        pl.col("MESSAGE").alias("DETAIL"),
        (pl.col("CHECK") if "CHECK" in validation.columns else pl.col("EXPECTATION")).cast(pl.String).alias("CAUSE"),
    )


#: the order findings are listed in: by site, subject and check, then by the record they name (its file and
#: row, as a number) and the value quoted, so that one subject's findings of one check read in a natural
#: order: its records as the file has them (rows 77, 78, 79, ...), its missing IE answers EX01, EX02, ...
#: (one DM row), not in the order of their FINDING_IDs, which are digests
LISTING_KEY = ["STUDYID", "SITEID", "USUBJID", "ORIGIN", "CHECK_ID", "_RECORD_FILE", "_RECORD_ROW", "VALUE"]
_RECORD = ["_RECORD_FILE", "_RECORD_ROW"]


def _record() -> list[pl.Expr]:
    """The file and data row (a number) of the first record a finding's SOURCE names, for LISTING_KEY."""
    first = pl.col("SOURCE").str.split("; ").list.first()
    return [_file_of(first).alias("_RECORD_FILE"), _row_number(first).alias("_RECORD_ROW")]


def build_site_queries(discrepancies: pl.DataFrame, validation: pl.DataFrame,
                       eligibility: pl.DataFrame, *, every_text: bool = True,
                       subjects: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every open discrepancy and every data-quality finding, with QUERY_TEXT, sorted by site; one row per
    finding (its FINDING_ID), leaving out those the sponsor's review settled (closed, not a deviation) and
    the findings another finding already asks the site about (reporting.covered).

    `eligibility` needs only the rows the discrepancies quote (publication passes those). `subjects` (the
    subjects table, one row per subject with the TIVERS it was judged by) says which protocol versions the night
    judged by (`_with_version`); without it, the eligibility rows do.

    `every_text=False` (publication, which shows no finding's own text but through its query): QUERY_TEXT
    only where `consolidate_queries` quotes it (a query's first finding, and its first MAX_DETAIL_LINES
    without DETAIL), null elsewhere; the rows, their order and the queries are the same. Rendering the text
    of all 130,000 findings of the dirty benchmark to quote 500 of them was a tenth of publication.
    """
    by_check, by_class, default = _templates()
    rows = pl.concat([_discrepancy_rows(discrepancies, eligibility), _validation_rows(validation)],
                     how="diagonal_relaxed")
    rows = without_covered(rows, _data().get("covered_by") or [])
    rows = rows.with_columns([pl.lit(None, pl.String).alias(c) for c in ("FINDING_ID", "EVIDENCE_HASH", "DELIVERED")
                              if c not in rows.columns])
    choices = [((pl.col("ORIGIN") == "DISCREPANCY") & (pl.col("CHECK_ID") == check), template)
               for check, template in by_check.items()]
    choices += [(matching("CHECK_ID", key), template) for key, template in _delivery_codes().items()]
    choices += [(matching("CAUSE", key), template) for key, template in _data_checks().items()]
    unverifiable = (pl.col("ORIGIN") == "DISCREPANCY") & (pl.col("CLASS") == "UNVERIFIABLE")
    choices += [(unverifiable & (pl.col("CAUSE") == cause), template)
                for cause, template in (_data().get("unverifiable_causes") or {}).items()]
    choices += [(pl.col("CLASS") == klass, template) for klass, template in by_class.items()]
    key = LISTING_KEY
    rows = rows.with_columns(pl.lit(None, pl.String).alias("QUERY_ID"), *_record())
    # the listing order starts with the key and the finding's identity: when they tell every finding apart
    # (always, for findings with identities) the text cannot change the order, so it can come afterwards
    sort_key = [*key, "QUERY_ID", FINDING_ID]
    order = None if every_text else sorted_if_apart(rows.select(sort_key).with_row_index("_ROW"), sort_key)
    if order is None:
        rows = _with_row_ref(_with_text_columns(rows)).with_columns(_evidence_in_text())
        rows = rows.with_columns(_choose(choices, default).alias("QUERY_TEXT"))
        return _with_version(with_query_ids(sort_like(rows.select(*_BUILT, *_RECORD), key))
                             .select(_BUILT), _judged_by(subjects, eligibility))
    # the listed columns of every finding are copied once, in order; the columns the texts read, only for the
    # findings whose text is quoted (each copy of all 130,000 findings' 45 columns was 90 MB)
    position = order["_ROW"]
    listed = with_query_ids(rows.select(c for c in _BUILT if c != "QUERY_TEXT")[position])
    rank = pl.int_range(pl.len()).over("QUERY_ID")
    at = listed.select(((rank == 0) | ((rank < MAX_DETAIL_LINES) & pl.col("DETAIL").is_null())).arg_true()).to_series()
    # the row references of the quoted findings only (a list per SOURCE: a tenth of a second for all of them)
    texts = (_with_row_ref(_with_text_columns(rows[position.gather(at)]).with_columns(listed["QUERY_ID"].gather(at)))
             .with_columns(_evidence_in_text())
             .select(_choose(choices, default).alias("QUERY_TEXT")).to_series())
    text = pl.repeat(None, listed.height, dtype=pl.String, eager=True).alias("QUERY_TEXT").scatter(at, texts)
    return _with_version(listed.with_columns(text).select(_BUILT), _judged_by(subjects, eligibility))


def _with_text_columns(rows: pl.DataFrame) -> pl.DataFrame:
    """The columns only the query texts read (the templates' VALUE_TEXT, LIMIT_TEXT, REASON_ONLY, and EVIDENCE and
    MESSAGE without their full stop), for the rows whose text is rendered: made for all 130,000 findings of the
    dirty benchmark to quote 500, they were a sixth of the site queries' time and 100 MB of new strings."""
    return rows.with_columns(
        _with_unit("VALUE", "UNIT").alias("VALUE_TEXT"),
        _with_unit("LIMIT", "UNIT").alias("LIMIT_TEXT"),
        # the reason, unless the evidence sentence already gives it (say it once)
        pl.when(pl.col("EVIDENCE").is_null()
                | ~pl.col("EVIDENCE").str.contains(pl.col("REASON"), literal=True).fill_null(False))
        .then(pl.col("REASON")).alias("REASON_ONLY"),
        _no_full_stop("EVIDENCE"),
        _no_full_stop("MESSAGE"),
    )


def _judged_by(subjects: pl.DataFrame | None, eligibility: pl.DataFrame) -> pl.DataFrame:
    """USUBJID and TIVERS of every subject the night judged: the subjects table's when it has them, else the
    eligibility rows' (which, in publication, are only the quoted ones: on a cluster run whose discrepancies were all
    of one version, the amendment's note went missing, a review found)."""
    source = subjects if subjects is not None and "TIVERS" in subjects.columns else eligibility
    if "TIVERS" not in source.columns:
        return pl.DataFrame(schema={"USUBJID": pl.String, "TIVERS": pl.String})
    return source.select("USUBJID", "TIVERS")


def _with_version(queries: pl.DataFrame, judged: pl.DataFrame) -> pl.DataFrame:
    """`queries` with TIVERS, the protocol version each finding's subject was judged by (`judged`: USUBJID, TIVERS;
    null for a finding about no subject), and a discrepancy's QUERY_TEXT naming it when the night judged subjects by
    more than one (an amendment): a site whose checklist still says PLT >= 60 could not tell why it was asked about
    96 against 100, nor a reviewer without joining the subjects table (a user trial); the query detail and the
    Detail sheets carry the column (helper-45: only the text named it)."""
    judged = judged.select("USUBJID", pl.col("TIVERS").cast(pl.String)).drop_nulls().unique(
        "USUBJID", keep="first", maintain_order=True)
    noted = queries.join(judged, on="USUBJID", how="left", maintain_order="left").select(QUERY_COLUMNS)
    versions = judged.select(pl.col("TIVERS").unique())
    if queries.height == 0 or (versions.height < 2
                               and not versions["TIVERS"].str.contains(" or ", literal=True).any()):
        return noted
    note = pl.format("{} Judged by protocol version {}.", pl.col("QUERY_TEXT"), pl.col("TIVERS"))
    judged_here = ((pl.col("ORIGIN") == "DISCREPANCY") & pl.col("QUERY_TEXT").is_not_null()
                   & pl.col("TIVERS").is_not_null())
    return noted.with_columns(pl.when(judged_here).then(note).otherwise(pl.col("QUERY_TEXT")).alias("QUERY_TEXT"))


def with_query_ids(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` (one per finding, in listing order) with QUERY_ID, the query that lists each: `Q-` and a
    digest of the problem (PROBLEM), the same night after night whichever subjects it lists; a problem
    of more than MAX_FINDINGS_PER_QUERY findings is listed in parts, the second on numbered.

    An important finding is a problem of its subject: each subject's deviation is reported, answered and
    decided on its own. Listed with another subject's, a new ineligible enrolment was hidden in an OPEN query
    beside that subject's earlier answer, and the next answer was recorded on both deviations (a user trial).
    The other queries keep their ids (the subject is no part of them)."""
    subject = pl.when(pl.col("SEVERITY") == Severity.IMPORTANT).then(pl.col("USUBJID"))
    keys = [*PROBLEM, "_SUBJECT", "_PART"]
    keyed = rows.select(*PROBLEM, subject.alias("_SUBJECT"))
    part = pl.int_range(pl.len()).over(keys[:-1]) // MAX_FINDINGS_PER_QUERY
    keyed = keyed.with_columns(pl.when(part > 0).then(part + 1).cast(pl.String).alias("_PART"))
    # digested once per query (a few hundred), not per finding (130,000 on the dirty benchmark: 0.05 s)
    ids = keyed.unique().with_columns(
        pl.when(pl.col("_SUBJECT").is_null()).then(stable_id("Q", *PROBLEM, "_PART"))
        .otherwise(stable_id("Q", *PROBLEM, "_SUBJECT", "_PART")).alias("QUERY_ID"))
    return rows.with_columns(keyed.join(ids, on=keys, how="left", nulls_equal=True, maintain_order="left")["QUERY_ID"])


def _listed(values: pl.Expr, limit: int, separator: str, more: str) -> pl.Expr:
    """The group's first `limit` `values` joined, and how many more there are."""
    head = values.head(limit).str.join(separator)
    rest = values.len().cast(pl.Int64) - limit
    return pl.when(rest > 0).then(pl.format("{}\n... and {} more " + more, head, rest)).otherwise(head)


def consolidate_queries(queries: pl.DataFrame) -> pl.DataFrame:
    """One row per problem (site, check, cause) of the per-finding `queries` (build_site_queries), in
    the order of their first finding: its subjects, findings, first seen, longest open, a text that
    says what is asked of each, and DETAIL quoting each finding's own detail (the first
    MAX_DETAIL_LINES; the per-finding rows hold all of them). A problem of one finding keeps its text."""
    data = _data()
    grouped = data["grouped"]
    # a quoted finding's line names its subject and record (`SZ003-103-0005 (…/lb.csv record 77 after the
    # header): …`): 19 lines that only repeated "subject SZ003-103-0005 is not in DM" told a site nothing about
    # which rows; made for the quoted findings only (a row reference is a list operation per SOURCE)
    who = pl.col("USUBJID").fill_null(pl.col("SITEID").fill_null("site"))
    where = pl.when(pl.col("ROW_REF").is_not_null()).then(pl.format(" ({})", pl.col("ROW_REF"))).otherwise(pl.lit(""))
    line = pl.concat_str([who, where, pl.lit(": "), pl.col("DETAIL").fill_null(pl.col("QUERY_TEXT"))])
    rows = queries.with_row_index("_I")
    quoted = _with_row_ref(rows.filter(pl.int_range(pl.len()).over("QUERY_ID") < MAX_DETAIL_LINES)).select(
        "_I", line.alias("_LINE"))
    rows = rows.join(quoted, on="_I", how="left", maintain_order="left")
    problems = rows.group_by("QUERY_ID", *PROBLEM, maintain_order=True).agg(
        pl.len().alias("N_FINDINGS"),
        pl.col("USUBJID").drop_nulls().n_unique().alias("N_SUBJECTS"),
        _listed(pl.col("USUBJID").drop_nulls().unique(maintain_order=True), MAX_FINDINGS_PER_QUERY, ", ",
                "(see the query detail CSV)").alias("SUBJECTS"),
        # a site-level query ("EX06.LUNG cannot be verified for its 15 ENROLLED subjects ... for these subjects")
        # names the subjects of the findings it covers (its Also answered rows): it has none of its own
        pl.col(COVERED_SUBJECTS).str.split(" ").explode().drop_nulls().unique().sort().alias("_COVERED"),
        pl.col("FIRST_SEEN").min(), pl.col("DAYS_OPEN").max(),
        # NEW only when every finding has a status and each is NEW (polars' `all` skips nulls, so a query of
        # data-quality findings, which have no status, would otherwise be NEW night after night)
        pl.when(pl.col("STATUS").is_not_null().all() & (pl.col("STATUS") == "NEW").all()).then(pl.lit("NEW"))
        .when(pl.col("STATUS").is_not_null().any()).then(pl.lit("OPEN")).alias("STATUS"),
        pl.col("QUERY_TEXT").first().alias("EXAMPLE"),
        pl.col("DETAIL").first().alias("_DETAIL_ONE"),
        _listed(pl.col("_LINE"), MAX_DETAIL_LINES, "\n", _MORE_FINDINGS).alias("_DETAIL_MANY"),
        pl.col(FINDING_ID).drop_nulls().str.join(" ").alias("FINDING_IDS"),
    )
    single = pl.col("N_FINDINGS") == 1
    about_delivery = pl.any_horizontal([matching("CHECK_ID", key) for key in data["delivery"]["codes"]])
    choices = [(about_delivery, data["delivery"]["grouped"])]
    choices += [(pl.col("CLASS") == klass, template) for klass, template in grouped.items() if klass != "default"]
    site_level = pl.col("N_SUBJECTS") == 0
    problems = problems.with_columns(
        pl.when(~site_level).then(pl.col("SUBJECTS"))
        .when(pl.col("_COVERED").list.len() > MAX_FINDINGS_PER_QUERY)
        .then(pl.format("{}\n... and {} more (see the Also answered sheet)",
                        pl.col("_COVERED").list.head(MAX_FINDINGS_PER_QUERY).list.join(", "),
                        pl.col("_COVERED").list.len() - MAX_FINDINGS_PER_QUERY))
        .when(pl.col("_COVERED").list.len() > 0).then(pl.col("_COVERED").list.join(", ")).alias("SUBJECTS"),
        pl.when(site_level).then(pl.col("_COVERED").list.len().cast(pl.UInt32)).otherwise(pl.col("N_SUBJECTS"))
        .alias("N_SUBJECTS"),
        pl.when(single).then(pl.col("EXAMPLE")).otherwise(_choose(choices, grouped["default"])).alias("QUERY_TEXT"),
        pl.when(single).then(pl.col("_DETAIL_ONE")).otherwise(pl.col("_DETAIL_MANY")).alias("DETAIL"),
    )
    # per site: important first, then by check and cause
    return problems.sort("SITEID", "SEVERITY", "ORIGIN", "CHECK_ID", "CAUSE", nulls_last=True,
                         maintain_order=True).select(CONSOLIDATED_COLUMNS)


#: a finding left out of the site's queries (reporting.covered) and the query that asks about it instead
ALSO_ANSWERED_COLUMNS = ["QUERY_ID", "STUDYID", "SITEID", "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", "DETAIL",
                         "WHY_HERE", FINDING_ID, "COVERED_BY"]


def _left_out_pairs(queries: pl.DataFrame) -> pl.DataFrame:
    """QUERY_ID, STUDYID, SITEID, COVERED_BY (a listed finding) and FINDING_ID, one row per finding it covers."""
    return (queries.filter(pl.col(COVERED_FINDING_IDS).is_not_null())
            .select("QUERY_ID", "STUDYID", "SITEID", pl.col(FINDING_ID).alias("COVERED_BY"),
                    pl.col(COVERED_FINDING_IDS).str.split(" ").alias(FINDING_ID))
            .explode(FINDING_ID))


def left_out_findings(queries: pl.DataFrame, catalogue: pl.DataFrame) -> pl.DataFrame:
    """The findings left out of the site's queries because a listed one covers them (`queries`'
    COVERED_FINDING_IDS), one row each: the query that lists the covering finding (QUERY_ID), the finding
    (from `catalogue`, review.catalogue: its subject, check, class, severity and evidence as DETAIL) and the
    covering finding (COVERED_BY); in the order of their queries, then by subject and check.

    A site's workbook lists them on its `Also answered` sheet, so that its answer to that query is recorded for
    them too (review.imports): the important IE_MISMATCH behind an INELIGIBLE_ENROLLED the site answered is
    then not left unanswered in the sponsor's review. DETAIL tells a site's 16 missing IE answers of one subject
    apart (EX01, EX02, ...), and why a clearance is unverifiable."""
    covered = _left_out_pairs(queries).with_row_index("_I")
    about = catalogue.select(FINDING_ID, "USUBJID", "CHECK_ID", "CLASS", "SEVERITY", pl.col("EVIDENCE").alias("DETAIL"))
    # the sheet says what it is for on every row: a site monitor found it unreadable without the docs
    why = pl.format("not on the Queries sheet: query {} asks the same, and the site's answer to it is recorded "
                    "for this finding too", pl.col("QUERY_ID"))
    return (covered.join(about, on=FINDING_ID, how="left", maintain_order="left")
            .sort(pl.col("_I").min().over("QUERY_ID"), "USUBJID", "CHECK_ID", "DETAIL", FINDING_ID,
                  nulls_last=False, maintain_order=True)
            .with_columns(why.alias("WHY_HERE")).select(ALSO_ANSWERED_COLUMNS))


def site_query_of(queries: pl.DataFrame) -> pl.DataFrame:
    """FINDING_ID -> SITE_QUERY (the query that asks the site about it) and COVERED_BY (the finding that query
    lists in its place, when it was left out of the site's list): for the sponsor's Review sheet, which lists
    every open finding, so that a reviewer sees where each was asked and which answer is its."""
    listed = queries.select(FINDING_ID, pl.col("QUERY_ID").alias("SITE_QUERY"),
                            pl.lit(None, pl.String).alias("COVERED_BY"))
    covered = _left_out_pairs(queries).select(FINDING_ID, pl.col("QUERY_ID").alias("SITE_QUERY"), "COVERED_BY")
    return pl.concat([listed, covered], how="vertical").filter(pl.col(FINDING_ID).is_not_null())


#: the site's last answer: to a query's findings beside the columns it answers in (`with_earlier_answers`), to
#: each finding in the detail (`with_finding_answers`)
EARLIER_ANSWER = "EARLIER_ANSWER"
#: the Detail sheet of a site's workbook: what a monitor needs to work each finding of a query
DETAIL_COLUMNS = ["QUERY_ID", FINDING_ID, "SITEID", "USUBJID", "TIVERS", "CHECK_ID", "CLASS", "SEVERITY",
                  "STATUS", "FIRST_SEEN", "DAYS_OPEN", "DOMAIN", "VARIABLE", "VALUE", "UNIT", "LIMIT", "DELIVERED",
                  "DTC", "SOURCE", "RECORD", "DETAIL", EARLIER_ANSWER]


def query_detail(queries: pl.DataFrame) -> pl.DataFrame:
    """The per-finding rows as the Detail sheet shows them: the query that lists each (QUERY_ID) and
    its facts, without the per-finding query text (the query's own text says what is asked); EARLIER_ANSWER
    empty unless `with_finding_answers` gave it."""
    if EARLIER_ANSWER not in queries.columns:
        queries = queries.with_columns(pl.lit(None, pl.String).alias(EARLIER_ANSWER))
    return queries.with_columns(_record_words(queries)).select(DETAIL_COLUMNS)


#: the query columns a Detail sheet's note row keeps (the problem's own; the finding's are left empty)
_QUERY_LEVEL = ["QUERY_ID", "SITEID", "CHECK_ID", "CLASS", "SEVERITY", "DOMAIN", "VARIABLE"]


def capped_detail(detail: pl.DataFrame, files: dict[str, str], limit: int = DETAIL_SHEET_FINDINGS) -> pl.DataFrame:
    """`detail` (query_detail rows, in listing order) with at most `limit` findings of each query; the
    place of a longer query's next finding holds a note naming the file with every finding
    (`files`: SITEID, null as UNKNOWN -> that file).

    Why: the Detail sheets were most of the cost of a night's publication (130,000 findings of 100
    sites turned into 140 MB of sheet XML, docs/benchmarks.md), while a site works a long query from
    its first findings and the CSV, which every spreadsheet opens and every program reads.
    """
    rank = pl.int_range(pl.len()).over("QUERY_ID")
    total = pl.len().over("QUERY_ID")
    rows = detail.with_columns(rank.alias("_RANK"), total.alias("_TOTAL")).filter(pl.col("_RANK") <= limit)
    file = pl.col("SITEID").fill_null("UNKNOWN").replace_strict(files, default="the query detail CSV")
    note = pl.format("... and {} more findings of this query: {} lists all {} of them",
                     pl.col("_TOTAL") - limit, file, pl.col("_TOTAL"))
    note_row = pl.col("_RANK") == limit
    return rows.with_columns(
        *(pl.when(~note_row).then(pl.col(c)).alias(c) for c in detail.columns if c not in [*_QUERY_LEVEL, "DETAIL"]),
        pl.when(note_row).then(note).otherwise(pl.col("DETAIL")).alias("DETAIL"),
    ).select(detail.columns)


def split_by_site(queries: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """SITEID -> that site's queries (rows without a site go under `UNKNOWN`), each in the order it has in
    `queries`.

    The lists are sorted by site, so each site's rows are usually one run of rows: they are then slices
    of `queries` (no copy; partitioning copied the 130,000 findings of the dirty benchmark again)."""
    site = pl.col("SITEID").fill_null("UNKNOWN")
    runs = queries.select(site.rle().struct.unnest()) if queries.height else None
    if runs is not None and runs["value"].n_unique() == runs.height:
        starts = runs["len"].cum_sum() - runs["len"]
        return dict(sorted((str(value), queries.slice(start, length))
                           for value, start, length in zip(runs["value"], starts, runs["len"], strict=True)))
    keyed = queries.with_columns(site.alias("_SITE"))
    return {str(key[0]): part.drop("_SITE") for key, part in
            sorted(keyed.partition_by("_SITE", as_dict=True, maintain_order=True).items())}


#: the columns a site fills in its query workbook and sends back (review.imports reads them)
RESPONSE_COLUMNS = ("SITE_RESPONSE", "RESPONDED_BY")


def _site_answers(states: pl.DataFrame | None) -> pl.DataFrame | None:
    """FINDING_ID, SITE_ANSWER, SITE_ANSWERED_BY, SITE_ANSWERED_AT and _SITE (the answering site, from BY) of
    the findings the site has answered since they were last reopened (review.fold); None when there are none."""
    if states is None or "SITE_ANSWER" not in states.columns:
        return None
    answers = states.filter(pl.col("SITE_ANSWER").is_not_null()).select(
        FINDING_ID, "SITE_ANSWER", "SITE_ANSWERED_BY", "SITE_ANSWERED_AT",
        # review.imports records a site's answer BY `site <SITEID> (<person>)`
        pl.col("SITE_ANSWERED_BY").str.extract(r"^site (\S+)(?: |$)").alias("_SITE"))
    return answers if answers.height else None


def _answer_text() -> pl.Expr:
    """`"<answer>" (<by>, <date>)` of a site answer."""
    return pl.format('"{}" ({}, {})', pl.col("SITE_ANSWER"), pl.col("SITE_ANSWERED_BY").fill_null("the site"),
                     pl.col("SITE_ANSWERED_AT").str.slice(0, 10))


def _from_this_site() -> pl.Expr:
    """An answer not recorded as another site's than the row's (a subject who moved between sites)."""
    return pl.col("_SITE").is_null() | pl.col("_SITE").eq_missing(pl.col("SITEID"))


def with_finding_answers(queries: pl.DataFrame, states: pl.DataFrame | None) -> pl.DataFrame:
    """`queries` (one row per finding) with EARLIER_ANSWER: that finding's own last site answer since it was
    last reopened, `"<answer>" (<by>, <date>)`, not another site's; null when there is none. The Detail
    sheet, the query detail CSV and the report's Query detail show it, so a site sees which of a query's
    subjects it has answered. Looked up by FINDING_ID (no join copying the rows); neutralised."""
    answers = _site_answers(states)
    if answers is None or queries.height == 0:
        return queries.with_columns(pl.lit(None, pl.String).alias(EARLIER_ANSWER))
    ids = answers[FINDING_ID]

    def lookup(values: pl.Series) -> pl.Expr:
        return pl.col(FINDING_ID).replace_strict(ids, values, default=None, return_dtype=pl.String)

    texts, sites = answers.select(_answer_text()).to_series(), answers["_SITE"]
    shown = pl.when(lookup(sites).is_null() | lookup(sites).eq_missing(pl.col("SITEID"))).then(lookup(texts))
    return queries.with_columns(shown.alias(EARLIER_ANSWER)).with_columns(neutralise_expr(EARLIER_ANSWER))


def with_sponsor_confirmation(queries: pl.DataFrame, states: pl.DataFrame | None) -> pl.DataFrame:
    """`queries` (one row per finding) whose finding the sponsor's review confirmed as a deviation, its QUERY_TEXT
    ending with that decision: the site is no longer asked to choose between a correction and a report as if
    nobody had decided (a user trial: the confirmed PC02 still asked to "correct the wrong date, or report the
    informed-consent deviation")."""
    if states is None or "DV_CONFIRMED" not in states.columns or queries.height == 0:
        return queries
    confirmed = states.filter(pl.col("DV_CONFIRMED").fill_null(False)).select(
        FINDING_ID, pl.col("DECIDED_AT").str.slice(0, 10).alias("_CONFIRMED_ON"))
    if confirmed.height == 0:
        return queries
    said = pl.format("{} The sponsor's review confirmed this as a protocol deviation on {}: please report it as the "
                     "protocol requires, if it is not reported yet.", pl.col("QUERY_TEXT"), pl.col("_CONFIRMED_ON"))
    return (queries.join(confirmed, on=FINDING_ID, how="left", maintain_order="left")
            .with_columns(pl.when(pl.col("_CONFIRMED_ON").is_not_null() & pl.col("QUERY_TEXT").is_not_null())
                          .then(said).otherwise(pl.col("QUERY_TEXT")).alias("QUERY_TEXT"))
            .drop("_CONFIRMED_ON"))


def with_earlier_answers(queries: pl.DataFrame, states: pl.DataFrame | None) -> pl.DataFrame:
    """`queries` (one per problem) with EARLIER_ANSWER: the site's last answer recorded for a finding the
    query lists since it was last reopened (review.fold: SITE_ANSWER, who and when), `"<answer>" (<by>,
    <date>)`, and, when not every finding has it, how many have an answer and whether they differ; null
    when the site has not answered. A query sent again after an answer (the finding is still there) then
    shows the site what it said, instead of an empty row it would answer from scratch. An answer recorded
    as another site's (a subject who moved) is not shown. The text is the site's own and is neutralised."""
    answers = _site_answers(states)
    if answers is None or queries.height == 0:
        return queries.with_columns(pl.lit(None, pl.String).alias(EARLIER_ANSWER))
    listed = (queries.select("QUERY_ID", "SITEID", pl.col("FINDING_IDS").str.split(" ").alias(FINDING_ID))
              .explode(FINDING_ID))
    last = (listed.join(answers, on=FINDING_ID, how="inner").filter(_from_this_site())
            .sort("QUERY_ID", "SITE_ANSWERED_AT", FINDING_ID)
            .group_by("QUERY_ID", maintain_order=True)
            .agg(pl.len().alias("_ANSWERED"), pl.col("SITE_ANSWER").n_unique().alias("_DISTINCT"),
                 pl.col("SITE_ANSWER").last(), pl.col("SITE_ANSWERED_BY").last(), pl.col("SITE_ANSWERED_AT").last()))
    partial = (pl.col("_ANSWERED") < pl.col("N_FINDINGS")) | (pl.col("_DISTINCT") > 1)
    differ = pl.when(pl.col("_DISTINCT") > 1).then(pl.lit(", which differ")).otherwise(pl.lit(""))
    answer = pl.when(partial).then(pl.format("{}; the latest of the answers to {} of its {} findings{}",
                                             _answer_text(), pl.col("_ANSWERED"), pl.col("N_FINDINGS"), differ)
                                   ).otherwise(_answer_text())
    return (queries.join(last, on="QUERY_ID", how="left", maintain_order="left")
            .with_columns(answer.alias(EARLIER_ANSWER))
            .select(*queries.columns, neutralise_expr(EARLIER_ANSWER)))


#: the columns a site monitor works with, first in a site's query workbook (the rest follow in the CSV's
#: order): the query, what is asked, the earlier answer and the two cells to fill, side by side
WORKBOOK_FIRST = ["QUERY_ID", "SEVERITY", "STATUS", "CHECK_ID", "N_SUBJECTS", "SUBJECTS", "QUERY_TEXT", EARLIER_ANSWER,
                  *RESPONSE_COLUMNS]


def with_response_columns(queries: pl.DataFrame) -> pl.DataFrame:
    """A site's queries with empty SITE_RESPONSE and RESPONDED_BY columns, for its query workbook: each
    answered row becomes a site response in the review ledger when the workbook comes back. The workbook's
    columns start with WORKBOOK_FIRST: a monitor found QUERY_TEXT in the 17th column and SITE_RESPONSE in the
    21st, after four wide wrapped ones; the returned workbook is read by column name, never by position."""
    answered = queries.with_columns(*(pl.lit(None, pl.String).alias(c) for c in RESPONSE_COLUMNS))
    first = [c for c in WORKBOOK_FIRST if c in answered.columns]
    return answered.select(*first, *(c for c in answered.columns if c not in first))
