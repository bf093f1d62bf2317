"""Many sites at once (`ingest_sites`): exactly what each site gives alone, row checks done per batch."""

from __future__ import annotations

import io

import polars as pl
import xlsxwriter
from test_ingestion_support import D2, D3, NOW, STUDY, assert_balanced, codes, deliver, sample

from core.source import source_text
from ingestion import Code, finish_sites, ingest_site, ingest_sites, not_audited, read_site
from storage import LocalStore
from tests.support.delivery_writer import DeliveryFile, encode, write_delivery

LONG = "x" * 1001


def _csv_with_extra_record(frame: pl.DataFrame, record: str) -> bytes:
    return encode(frame, "csv") + record.encode() + b"\n"


def _xlsx_with_error_cell(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet("LB")
    sheet.write_row(0, 0, frame.columns)
    for r, row in enumerate(frame.rows(), start=1):
        sheet.write_row(r, 0, row)
    sheet.write_formula(2, frame.columns.index("LBORRES"), "=NA()", None, "#N/A")
    book.close()
    return buffer.getvalue()


def _landing(tmp_path) -> LocalStore:
    """Five sites that exercise every row-level path, each different from the next."""
    store = LocalStore(tmp_path / "landing")
    deliver(store, "101", D3, {d: sample(d, site="101") for d in ("dm", "lb", "vs")})

    # 102: a foreign study, a too-long field, a ragged record, an extra column, columns in another order
    lb = sample("lb", site="102", n=4).with_columns(
        pl.Series("STUDYID", ["SZ003", "SZ999", "SZ003", "SZ003"]),
        pl.Series("LBORRES", ["1", "2", LONG, "4"]),
        pl.lit("note").alias("LBEXTRA"),
    )
    lb = lb.select(list(reversed(lb.columns)))
    ragged = ",".join(["a"] * (lb.width + 1))
    dm = sample("dm", site="102")
    write_delivery(store, STUDY, "102", D3, [
        DeliveryFile("dm.csv", encode(dm, "csv"), dm.height),
        DeliveryFile("lb.csv", _csv_with_extra_record(lb, ragged), lb.height + 1),
    ])

    # 103: newest delivery rejected (row count), the previous one used
    deliver(store, "103", D2, {"dm": sample("dm", site="103"), "lb": sample("lb", site="103")})
    bad = sample("lb", site="103")
    write_delivery(store, STUDY, "103", D3, [DeliveryFile("lb.csv", encode(bad, "csv"), bad.height + 1)])

    # 104: nothing usable (a delivery still uploading)
    deliver(store, "104", D3, {"dm": sample("dm", site="104")}, manifest=False)

    # 105: a workbook with an Excel error cell, and a DM of another study in one row
    lb = sample("lb", site="105")
    dm = sample("dm", site="105").with_columns(pl.Series("STUDYID", ["SZ003", "SZ003", "OTHER"]))
    write_delivery(store, STUDY, "105", D3, [
        DeliveryFile("dm.csv", encode(dm, "csv"), dm.height),
        DeliveryFile("lb.xlsx", _xlsx_with_error_cell(lb), lb.height),
    ])
    return store


SITES = ["101", "102", "103", "104", "105"]


def test_a_batch_gives_every_site_exactly_what_it_gets_alone(tmp_path) -> None:
    store = _landing(tmp_path)
    together = ingest_sites(store, STUDY, SITES, now=NOW)
    alone = [ingest_site(store, STUDY, site, now=NOW) for site in SITES]

    assert [s.site for s in together] == SITES
    for batch, single in zip(together, alone, strict=True):
        assert batch.delivery == single.delivery and batch.deliveries == single.deliveries
        assert batch.inputs == single.inputs
        assert batch.findings.equals(single.findings), batch.site
        assert sorted(batch.frames) == sorted(single.frames)
        for domain, frame in single.frames.items():
            assert batch.frames[domain].equals(frame), (batch.site, domain)
        assert_balanced(batch)
    assert [s.audited for s in together] == [True, True, True, False, True]


def test_row_findings_of_a_batch_are_golden(tmp_path) -> None:
    store = _landing(tmp_path)
    by_site = {s.site: s for s in ingest_sites(store, STUDY, SITES, now=NOW)}

    site = by_site["102"]
    key = f"{STUDY}/102/{D3}/lb.csv"
    assert site.findings.select("EXPECTATION", "SOURCE", "VARIABLE", "OBSERVED").rows() == [
        (Code.ROW_OTHER_STUDY, f"{key}:2", "STUDYID", "SZ999"),
        (Code.ROW_FIELD_TOO_LONG, f"{key}:3", "LBORRES", "1001 characters"),
        (Code.ROW_RAGGED, f"{key}:5", None, f"{lb_width(site) + 1} fields"),
    ]
    # the row named as the site finds it, as RECORD names it in the query detail
    assert site.findings["MESSAGE"][0] == (f"Site 102, file {key}, record 2 after the header: STUDYID is not SZ003; "
                                           f"the row belongs to another study and is not used.")
    assert site.findings["MESSAGE"][2].startswith(f"Site 102, file {key}, record 5 after the header: it starts on "
                                                  "line 6 of the file and has ")
    lb = next(i for i in site.inputs if i.key == key)
    assert (lb.rows_read, lb.rows_rejected) == (5, 3)
    assert lb.rejected_reasons == {"field_count": 1, "field_too_long": 1, "other_study": 1}
    assert site.frames["lb"].select(source_text()).to_series().to_list() == [f"{key}:1", f"{key}:4"]
    assert site.frames["lb"].columns[0] == "LBEXTRA"  # the file's own column order, extra column kept
    assert "LBEXTRA" not in by_site["101"].frames["lb"].columns  # not another site's column

    fallback = by_site["103"]
    assert codes(fallback.findings) == [Code.ROW_COUNT, Code.DELIVERY_FALLBACK]
    assert fallback.frames["lb"]["DELIVERY_SITEID"].unique().to_list() == ["103"]

    assert codes(by_site["104"].findings) == [Code.SITE_NOT_AUDITED] and by_site["104"].frames == {}

    site = by_site["105"]
    assert site.findings.select("EXPECTATION", "SOURCE", "USUBJID").rows() == [
        (Code.ROW_OTHER_STUDY, f"{STUDY}/105/{D3}/dm.csv:3", "SZ003-105-003"),
        (Code.VALUE_EXCEL_ERROR, f"{STUDY}/105/{D3}/lb.xlsx:2", "SZ003-105-002"),
    ]
    assert site.frames["lb"]["LBORRES"][1] is None and site.frames["dm"].height == 2


def lb_width(site) -> int:
    return len([c for c in site.frames["lb"].columns
                if c not in ("SOURCE_KEY", "SOURCE_ROW", "DELIVERY_SITEID", "DECIMAL")])


def test_too_long_field_is_named_in_each_files_own_column_order(tmp_path) -> None:
    store = LocalStore(tmp_path / "landing")
    base = sample("lb", n=2).with_columns(pl.lit(LONG).alias("LBORRES"), pl.lit(LONG).alias("LBORRESU"))
    orders = {"101": base.columns, "102": [c for c in base.columns if c != "LBORRESU"] + ["LBORRESU"]}
    orders["102"].insert(0, orders["102"].pop())  # LBORRESU first in site 102's file
    for site, columns in orders.items():
        deliver(store, site, D3, {"lb": base.select(columns)})
    found = {s.site: s.findings["VARIABLE"].to_list() for s in ingest_sites(store, STUDY, list(orders), now=NOW)}
    assert found == {"101": ["LBORRES", "LBORRES"], "102": ["LBORRESU", "LBORRESU"]}


def test_finish_sites_passes_finished_sites_through_in_order(tmp_path) -> None:
    store = _landing(tmp_path)
    reads = [read_site(store, STUDY, "101", now=NOW), not_audited(STUDY, "102", "its storage failed"),
             read_site(store, STUDY, "103", now=NOW)]
    finished = finish_sites(STUDY, reads)
    assert [s.site for s in finished] == ["101", "102", "103"]
    assert finished[1].findings["MESSAGE"].to_list() == ["Site 102 is not audited: its storage failed."]
    again = finish_sites(STUDY, [finished[1], reads[2]])
    assert again[0] is finished[1] and again[1].frames["lb"].equals(finished[2].frames["lb"])


def test_plain_csv_files_parsed_together_match_the_exact_reader(tmp_path) -> None:
    from ingestion.csv_reader import PlainCsv, _slow, parse_plain, read_csv_or_plain

    texts = {
        "clean.csv": "STUDYID,USUBJID,LBORRES\nSZ003,A,1\nSZ003,B, 2 \n",
        "crlf.csv": "STUDYID,USUBJID,LBORRES\r\nSZ003,C,\r\nSZ003,D,4",
        "ragged.csv": "STUDYID,USUBJID,LBORRES\nSZ003,E,5\nSZ003,LIVER, RIGHT LOBE,6\nSZ003,F\nSZ003,G,7\n",
        "header-only.csv": "STUDYID,USUBJID,LBORRES\n",
        "semicolon.csv": "STUDYID;USUBJID;LBORRES\nSZ003;H;8,5\n",
    }
    plain = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        read = read_csv_or_plain(tmp_path / name, "utf-8")
        assert isinstance(read, PlainCsv), name
        plain.append(read)
    assert [p.records for p in plain] == [2, 2, 4, 0, 1]  # known before parsing: one record per line
    for read, table in zip(plain, parse_plain(plain), strict=True):
        exact = _slow(read.text, read.header, read.separator)
        assert table.header == exact.header and table.ragged == exact.ragged
        assert table.frame.equals(exact.frame), read.text
    ragged = parse_plain(plain)[2]
    assert [(r.row, r.line, r.fields) for r in ragged.ragged] == [(2, 3, 4), (3, 4, 2)]


def test_quoted_or_blank_line_csv_is_not_plain(tmp_path) -> None:
    from ingestion.csv_reader import PlainCsv, read_csv_or_plain

    for text in ('STUDYID,X\nSZ003,"a,b"\n', "STUDYID,X\nSZ003,a\n\nSZ003,b\n", "STUDYID,X\rSZ003,a\r"):
        (tmp_path / "lb.csv").write_text(text, encoding="utf-8", newline="")
        assert not isinstance(read_csv_or_plain(tmp_path / "lb.csv", "utf-8"), PlainCsv), text
