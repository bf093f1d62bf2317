"""Rebuild the CSV excerpts from the Dataset-JSON (ndjson) excerpts beside this file.

Values are written as they appear in the JSON: strings as they are, numbers in JSON's own text
(`84`, `0.03`), null and "" as an empty field. Run: python make_csv.py
"""

import csv
import json
from pathlib import Path

here = Path(__file__).parent
for source in sorted(here.glob("*.ndjson")):
    lines = source.read_text(encoding="utf-8").splitlines()
    columns = json.loads(lines[0])["columns"]
    with (here / f"{source.stem}.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for line in lines[1:]:
            writer.writerow("" if v is None else str(v) for v in json.loads(line))
