"""Regenerate the bad-input corpus beside this file. Run: python make_corpus.py (the XPT files carry
the time they were written in their header records; everything else is byte-identical)

Each file is a damaged or borderline domain file a site could send; `cases.yaml` says what it is
delivered as, what the manifest declares, and which finding the audit must give for it.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import polars as pl

HERE = Path(__file__).parent
LB_HEADER = "STUDYID,USUBJID,LBTESTCD,LBORRES,LBORRESU,LBDTC"
LB_ROWS = ["SZ003,SZ003-102-001,HGB,9.5,g/dL,2026-01-05",
           "SZ003,SZ003-102-002,PLAT,150,10^9/L,2026-01",
           "SZ003,SZ003-102-003,ALT,<0.5,U/L,2026"]


def lb(rows: list[str] | None = None, header: str = LB_HEADER) -> str:
    return "\n".join([header, *(LB_ROWS if rows is None else rows)]) + "\n"


def frame() -> pl.DataFrame:
    return pl.read_csv(io.StringIO(lb()), infer_schema=False)


def main() -> None:
    files: dict[str, bytes] = {}
    files["empty.csv"] = b""
    files["blank_lines.csv"] = b"\r\n\r\n   \n"
    rng = random.Random(2026)
    files["binary.csv"] = bytes(rng.randrange(256) for _ in range(2048))
    files["nul_bytes.csv"] = lb().replace("HGB", "H\x00GB").encode()
    files["unclosed_quote.csv"] = (lb() + 'SZ003,SZ003-102-004,WBC,"4.5,10^9/L,2026-01-05\n').encode()
    files["latin1_declared_utf8.csv"] = lb([*LB_ROWS[:2], "SZ003,SZ003-102-003,ALT,<0.5,µkat/L,2026"]).encode(
        "latin-1")
    files["utf8_declared_cp1252.csv"] = lb([*LB_ROWS[:2], "SZ003,SZ003-102-003,ALT,<0.5,µkat/L,2026"]).encode()
    files["utf16_declared_utf8.csv"] = lb().encode("utf-16")
    files["utf8_declared_utf16.csv"] = lb().encode("utf-8")
    files["missing_column.csv"] = lb([r.rsplit(",", 2)[0] + "," + r.rsplit(",", 1)[1] for r in LB_ROWS],
                                     header="STUDYID,USUBJID,LBTESTCD,LBORRES,LBDTC").encode()
    files["duplicate_column.csv"] = lb([r + ",x" for r in LB_ROWS], header=LB_HEADER + ",lborres").encode()
    files["unnamed_column.csv"] = lb([r + ",x" for r in LB_ROWS], header=LB_HEADER + ",").encode()
    files["trailing_separator.csv"] = lb([r + "," for r in LB_ROWS], header=LB_HEADER + ",").encode()
    files["reserved_column.csv"] = lb([r + ",x" for r in LB_ROWS], header=LB_HEADER + ",SOURCE").encode()
    huge = "SZ003,SZ003-102-002,PLAT," + "9" * 5000 + ",10^9/L,2026-01"
    files["huge_field.csv"] = lb([LB_ROWS[0], huge, LB_ROWS[2]]).encode()
    files["ragged_rows.csv"] = lb([LB_ROWS[0], "SZ003,SZ003-102-002,LIVER, RIGHT LOBE,150,10^9/L,2026-01",
                                   LB_ROWS[2], "SZ003,SZ003-102-004,WBC"]).encode()
    files["other_study.csv"] = lb([LB_ROWS[0], LB_ROWS[1].replace("SZ003,", "SZ004,", 1), LB_ROWS[2]]).encode()
    files["unknown_domain.csv"] = lb().encode()
    files["unknown_format.txt"] = lb().encode()
    files["csv_named_xlsx.xlsx"] = lb().encode()
    buffer = io.BytesIO()
    frame().write_excel(buffer)
    files["truncated.xlsx"] = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    buffer = io.BytesIO()
    frame().write_parquet(buffer)
    files["truncated.parquet"] = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    xpt_frame = pl.DataFrame({"STUDYID": ["SZ003"] * 50, "USUBJID": [f"SZ003-102-{i:03d}" for i in range(50)],
                              "VSTESTCD": ["PULSE"] * 50, "VSORRES": [float(60 + i) for i in range(50)],
                              "VSORRESU": ["beats/min"] * 50, "VSDTC": ["2026-01-05"] * 50})
    from tests.support.delivery_writer import encode_xpt

    xpt = encode_xpt(xpt_frame)
    files["truncated.xpt"] = xpt[: len(xpt) // 2 + 37]  # cut inside a record
    # cut on an 80-byte record boundary: only the manifest's row count can tell (pyreadstat reads
    # the rows that remain without complaint)
    files["truncated_tail.xpt"] = xpt[:-160]
    files["not_xpt.xpt"] = b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!" + bytes(100)
    for name, data in files.items():
        (HERE / name).write_bytes(data)

    manifests = {
        "not_json.json": b'{"study": "SZ003", "site": "102", "files": [',
        "not_an_object.json": b'["dm.csv"]',
        "latin1_bytes.json": '{"study": "SZ003 é"}'.encode("latin-1"),
        "lacks_files.json": b'{"study": "SZ003", "site": "102", "delivery": "20261127T230000Z"}',
        "other_study.json": b'{"study": "SZ099", "site": "102", "delivery": "20261127T230000Z", "files": []}',
        "unknown_key.json": (b'{"study": "SZ003", "site": "102", "delivery": "20261127T230000Z", '
                             b'"files": [], "exported_by": "EDC"}'),
        "bad_sha.json": (b'{"study": "SZ003", "site": "102", "delivery": "20261127T230000Z", '
                         b'"files": [{"name": "dm.csv", "sha256": "abc", "rows": 3}]}'),
        "negative_rows.json": (b'{"study": "SZ003", "site": "102", "delivery": "20261127T230000Z", "files": '
                               b'[{"name": "dm.csv", "sha256": "' + b"0" * 64 + b'", "rows": -1}]}'),
        "lists_missing_file.json": (b'{"study": "SZ003", "site": "102", "delivery": "20261127T230000Z", "files": '
                                    b'[{"name": "lb.csv", "sha256": "' + b"0" * 64 + b'", "rows": 3}]}'),
        "duplicate_entry.json": (b'{"study": "SZ003", "site": "102", "delivery": "20261127T230000Z", "files": ['
                                 b'{"name": "dm.csv", "sha256": "' + b"0" * 64 + b'", "rows": 3},'
                                 b'{"name": "dm.csv", "sha256": "' + b"0" * 64 + b'", "rows": 3}]}'),
    }
    for name, data in manifests.items():
        (HERE / "manifests" / name).write_bytes(data)


if __name__ == "__main__":
    main()
