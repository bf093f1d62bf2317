"""The shared core every stage reads delivered text with: polars expression builders for numbers,
units, coded results and partial dates (`core.values`, `core.dates`), and formula neutralisation
for spreadsheet outputs (`core.safety`). Below it only `contracts`; it imports no stage."""
