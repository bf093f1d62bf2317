"""SDTM DV (protocol deviations) from the important discrepancies, and its SAS v5 transport file.

One DV record per important finding still present tonight (NEW or OPEN; a RESOLVED one is no
longer a deviation the data show) that the sponsor's review confirmed (DVREVIEW = CONFIRMED) or has not
decided on yet (NOT YET REVIEWED); one judged not a deviation, or closed without a confirmation, is
left out (docs/review.md). The coded terms are the discrepancy policy's (contracts/policy.yaml,
or the study's own policy file: `deviations` and each class's `dv` rules). DVREFID carries
the audit's CHECK_ID so a DV record leads back to the finding and the eligibility rows behind it.
DVTERM is the evidence sentence, prefixed with the CHECK_ID unless it already starts with it.
DVSTDTC is the finding's own date when the comparison gives one (a `DTC` column), else the
subject's treatment start (the day the deviation took effect), else blank: never a guessed date.
"""

from __future__ import annotations

import re
import tempfile
from datetime import date
from pathlib import Path

import polars as pl

from contracts import is_open
from contracts.enums import DiscrepancyClass, Severity
from contracts.policy import Policy, load_policy
from contracts.tables import FINDING_ID
from reporting.datafiles import check_keys, load
from reporting.tables import DV, TABLES, canonical
from review.fold import DV_CONFIRMED_MARK, DV_NOT_IN_DATA_MARK

#: the DV variables written to dv.xpt (SAS v5 names have at most 8 characters; FINDING_ID is in the CSV
#: and Parquet files)
XPT_COLUMNS = [name for name in DV if name != FINDING_ID]
_ASCII = {"≥": ">=", "≤": "<=", "×": "x", "µ": "u", "μ": "u", "–": "-", "—": "-", "’": "'", "‘": "'",
          "“": '"', "”": '"', "…": "...", "°": " deg", "²": "2", "³": "3"}


def _coded(field: str, policy: Policy) -> pl.Expr:
    """DVDECOD / DVCAT / DVSCAT: the first rule of the finding's class whose CHECK_ID pattern matches."""
    chain = None
    for name, check, terms in policy.dv_rules():
        cond = pl.col("CLASS") == name
        if check is not None:
            cond = cond & pl.col("CHECK_ID").str.contains(check)
        value = pl.lit(getattr(terms, field))
        chain = pl.when(cond).then(value) if chain is None else chain.when(cond).then(value)
    default = pl.lit(getattr(policy.deviations.default, field))
    expr = default if chain is None else chain.otherwise(default)
    return expr.fill_null(default).alias(field.upper())


def _column(frame: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String) if name in frame.columns else pl.lit(None, pl.String)


def _in_dv(discrepancies: pl.DataFrame) -> pl.Expr:
    """The review's say (DV_REVIEW: CONFIRMED or NOT YET REVIEWED, null when a reviewer settled it otherwise);
    a table without review states (REVIEW_STATE null: no review stage ran) keeps every important finding."""
    if "DV_REVIEW" not in discrepancies.columns:
        return pl.lit(True)
    return pl.col("DV_REVIEW").is_not_null() | pl.col("REVIEW_STATE").is_null()


def _criterion() -> pl.Expr:
    """The criterion of an enrolment's component (IN10 of IN10.PLT), as an IE_MISMATCH's CHECK_ID names it."""
    return pl.col("CHECK_ID").str.split(".").list.first().alias("_CRITERION")


def judged_with_their_enrolment(discrepancies: pl.DataFrame) -> pl.Series:
    """Per row of `discrepancies`: an open IE_MISMATCH, not itself confirmed, whose subject's ineligible enrolment on
    a component of the same criterion the review judged settled (NOT_A_DEVIATION, CLOSED) and which dv does not
    list. The checklist answer that hid an enrolment is the same deviation (one_per_enrolment): the reviewer's
    decision on the enrolment is taken for it, in dv and in the site's queries (a user trial: judging the enrolment
    not a deviation brought its IE_MISMATCH into dv as NOT YET REVIEWED and into the site's list as a new query).
    A confirmed IE_MISMATCH stands on its own. Carried enrolments count (as in dv)."""
    none = pl.repeat(False, discrepancies.height, dtype=pl.Boolean, eager=True).alias("JUDGED")
    if "REVIEW_STATE" not in discrepancies.columns or discrepancies.height == 0:
        return none
    keys = ["STUDYID", "USUBJID", "_CRITERION"]
    rows = discrepancies.with_row_index("_ROW").filter(is_open() if "STATUS" in discrepancies.columns else pl.lit(True))
    settled = (rows.filter((pl.col("CLASS") == DiscrepancyClass.INELIGIBLE_ENROLLED) & ~_in_dv(discrepancies)
                           & pl.col("REVIEW_STATE").is_not_null())
               .select("STUDYID", "USUBJID", _criterion()))
    confirmed = (pl.col("DV_REVIEW") == DV_CONFIRMED_MARK).fill_null(False) if "DV_REVIEW" in rows.columns \
        else pl.lit(False)
    judged = (rows.filter((pl.col("CLASS") == DiscrepancyClass.IE_MISMATCH) & ~confirmed)
              .with_columns(pl.col("CHECK_ID").alias("_CRITERION"))
              .join(settled, on=keys, how="semi", nulls_equal=True))["_ROW"]
    return none.scatter(judged, True) if judged.len() else none


def one_per_enrolment(important: pl.DataFrame) -> pl.DataFrame:
    """`important` without an IE_MISMATCH whose subject has an INELIGIBLE_ENROLLED on a component of the same
    criterion among them: the checklist answer that hid an ineligible enrolment is the same deviation as the
    enrolment, whose record (its evidence quotes the answer: "the site recorded IN10 as met (IN10=Y)") stands for
    both. Two DV records for one enrolment counted it twice for a statistician, and confirming the one left the
    other "not yet reviewed" (two user trials). The IE_MISMATCH stays in `discrepancies` and in the review."""
    keys = ["STUDYID", "USUBJID", "_CRITERION"]
    rows = important.with_row_index("_ROW")
    enrolled = rows.filter(pl.col("CLASS") == DiscrepancyClass.INELIGIBLE_ENROLLED).with_columns(_criterion())
    hidden = (rows.filter(pl.col("CLASS") == DiscrepancyClass.IE_MISMATCH)
              .with_columns(pl.col("CHECK_ID").alias("_CRITERION"))
              .join(enrolled.select(keys), on=keys, how="semi", nulls_equal=True))
    kept = rows.filter(~pl.col("_ROW").is_in(hidden["_ROW"].implode()))
    if hidden.height == 0 or "DV_REVIEW" not in important.columns:
        return kept.drop("_ROW")
    # a confirmation of the left-out IE_MISMATCH confirms the record that stands for it (helper-30: confirming the
    # mismatch left the enrolment's only record "not yet reviewed")
    confirmed = (hidden.filter(pl.col("DV_REVIEW") == DV_CONFIRMED_MARK).select(keys).unique()
                 .join(enrolled.select("_ROW", *keys), on=keys, how="inner", nulls_equal=True)["_ROW"])
    return kept.with_columns(pl.when(pl.col("_ROW").is_in(confirmed.implode())).then(pl.lit(DV_CONFIRMED_MARK))
                             .otherwise(pl.col("DV_REVIEW")).alias("DV_REVIEW")).drop("_ROW")


def is_deviation(discrepancies: pl.DataFrame) -> pl.Series:
    """Per row of `discrepancies`: an important finding present tonight that is a deviation of its own, not an
    IE_MISMATCH whose ineligible enrolment stands for it (one_per_enrolment). What the report, the workbook and
    the digest count as important deviations, as `dv` lists them (before the review's say): the headline said
    8 important deviations where DV had 6 records, one per ineligible enrolment the checklist hid."""
    live = is_open() if "STATUS" in discrepancies.columns else pl.lit(True)
    important = discrepancies.with_row_index("_AT").filter((pl.col("SEVERITY") == Severity.IMPORTANT) & live)
    kept = one_per_enrolment(important)["_AT"]
    return pl.int_range(discrepancies.height, dtype=pl.UInt32, eager=True).is_in(kept.implode()).alias("DEVIATION")


def confirmed_not_in_data(discrepancies: pl.DataFrame, earlier: pl.DataFrame | None) -> pl.DataFrame:
    """The DV records of `earlier` (the night before's, whose confirmation still stands:
    review.night.standing_confirmations) whose finding is not present tonight, marked DV_NOT_IN_DATA_MARK.

    A confirmed deviation stays on the record when the site changes the data afterwards (a user trial: a consent
    date moved earlier took a confirmed, closed PC02 out of dv without a word). A reviewer who agrees that it was
    no deviation withdraws the confirmation (NOT_A_DEVIATION), and the next night leaves it out."""
    if earlier is None or earlier.height == 0:
        return pl.DataFrame(schema=DV)
    present = (discrepancies.filter(is_open() if "STATUS" in discrepancies.columns else pl.lit(True))[FINDING_ID]
               if FINDING_ID in discrepancies.columns else pl.Series(FINDING_ID, [], pl.String))
    return (canonical(earlier, TABLES["dv"]).filter(~pl.col(FINDING_ID).is_in(present.drop_nulls().implode()))
            .with_columns(pl.lit(DV_NOT_IN_DATA_MARK).alias("DVREVIEW")))


def left_the_data_tonight(discrepancies: pl.DataFrame, earlier: pl.DataFrame | None) -> int:
    """How many of confirmed_not_in_data's records the night before still found in its data: news for the digest (a
    night whose only change is a confirmed deviation leaving the data is no "nothing new", helper-46)."""
    kept = confirmed_not_in_data(discrepancies, earlier)
    if kept.height == 0 or earlier is None:
        return 0
    return earlier.filter(pl.col(FINDING_ID).is_in(kept[FINDING_ID].implode())
                          & (pl.col("DVREVIEW") != DV_NOT_IN_DATA_MARK).fill_null(True)).height


def build_dv(discrepancies: pl.DataFrame, subjects: pl.DataFrame, policy: Policy | None = None,
             earlier: pl.DataFrame | None = None) -> pl.DataFrame:
    """The DV table (columns of `tables.DV`), one row per current important discrepancy that the sponsor's
    review confirmed or has not yet decided on (DVREVIEW says which), and one per confirmed deviation of
    `earlier` that tonight's data no longer show (confirmed_not_in_data); DV terms from `policy` (None: the
    bundled contracts/policy.yaml)."""
    policy = policy or load_policy()
    term_max = policy.deviations.term_max
    # an ineligible enrolment judged not a deviation takes the checklist answer that hid it along
    judged = judged_with_their_enrolment(discrepancies)
    important = one_per_enrolment(
        discrepancies.filter((pl.col("SEVERITY") == Severity.IMPORTANT) & is_open() & _in_dv(discrepancies)
                             & ~judged))
    starts = subjects.select("STUDYID", "USUBJID", pl.col("TREATMENT_START").alias("_START")).unique(
        ["STUDYID", "USUBJID"], keep="first", maintain_order=True)
    own_date = pl.col("DTC") if "DTC" in important.columns else pl.lit(None, pl.String)
    evidence = pl.col("EVIDENCE").fill_null("")
    check = pl.col("CHECK_ID").fill_null("")
    term = (
        pl.when(pl.col("EVIDENCE").is_null())
        .then(pl.concat_str([check, pl.lit(" "), pl.col("CLASS").fill_null("")]))
        .when(evidence.str.starts_with(check))
        .then(evidence)  # the sentence already names the check: do not say it twice
        .otherwise(pl.concat_str([check, pl.lit(": "), evidence]))
    )
    dv = (
        important.join(starts, on=["STUDYID", "USUBJID"], how="left", nulls_equal=True)
        .with_columns(
            pl.lit("DV").alias("DOMAIN"),
            pl.col("CHECK_ID").alias("DVREFID"),
            term.str.slice(0, term_max).alias("DVTERM"),
            _coded("dvdecod", policy),
            _coded("dvcat", policy),
            _coded("dvscat", policy),
            own_date.cast(pl.String).fill_null(pl.col("_START")).alias("DVSTDTC"),
            _column(important, "DV_REVIEW").alias("DVREVIEW"),
            _column(important, FINDING_ID).alias(FINDING_ID),
        )
        .select(*[c for c in DV if c != "DVSEQ"], "CLASS")
    )
    kept = confirmed_not_in_data(discrepancies, earlier).drop("DVSEQ").with_columns(
        pl.lit(None, pl.String).alias("CLASS"))
    dv = (
        pl.concat([dv, kept], how="vertical_relaxed")
        .sort(["STUDYID", "USUBJID", "DVREFID", "CLASS"], nulls_last=True, maintain_order=True)
        .with_columns((pl.int_range(pl.len()).over(["STUDYID", "USUBJID"]) + 1).cast(pl.Int64).alias("DVSEQ"))
        .select(list(DV))
    )
    return canonical(dv, TABLES["dv"])


def _ascii(column: str) -> pl.Expr:
    value = pl.col(column).fill_null("").str.replace_many(list(_ASCII), list(_ASCII.values()))
    return value.str.replace_all(r"[^\x20-\x7E]", "?").str.slice(0, 200).alias(column)


_XPT_STAMP = re.compile(rb"\d{2}[A-Z]{3}\d{2}:\d{2}:\d{2}:\d{2}")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_OBS_HEADER = b"HEADER RECORD*******OBS     HEADER RECORD"


def xpt_bytes(dv: pl.DataFrame, as_of: date) -> bytes:
    """`dv` as a SAS v5 transport file (names <= 8, labels <= 40, text <= 200 ASCII characters).

    The header's creation / modification stamps are set to the as-of date (midnight), so the file
    depends only on its inputs.
    """
    labels_file = load("xpt_labels.yaml")
    check_keys("xpt_labels.yaml", labels_file, {"dataset_label", "labels"}, {"dataset_label", "labels"})
    labels = labels_file["labels"]
    dv = dv.select(XPT_COLUMNS)
    text = [c for c, t in dv.schema.items() if t == pl.String]
    frame = dv.with_columns([_ascii(c) for c in text]).with_columns(pl.col("DVSEQ").cast(pl.Float64))
    with tempfile.TemporaryDirectory(prefix="dv-xpt-") as tmp:
        path = Path(tmp) / "dv.xpt"
        import pyreadstat

        pyreadstat.write_xport(frame.to_pandas(), str(path), file_label=labels_file["dataset_label"],
                               column_labels={c: labels.get(c) for c in frame.columns}, table_name="DV",
                               file_format_version=5)
        data = path.read_bytes()
    month = _MONTHS[as_of.month - 1]
    stamp = f"{as_of.day:02d}{month}{as_of.year % 100:02d}:00:00:00".encode("ascii")
    head, sep, rest = data.partition(_OBS_HEADER)
    return _XPT_STAMP.sub(stamp, head) + sep + rest
