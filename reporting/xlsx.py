"""A columnar .xlsx writer: every cell's XML built by polars expressions over whole columns.

Why not xlsxwriter: it writes cell by cell in Python. Profiled on the dirty benchmark run (100 sites,
10,000 subjects, 140,000 validation findings, 148,000 site-query rows), publication took 109 s of a
179 s run, 95 % of it in xlsxwriter (7.8 million `_write` calls, its XML writer and zip packager;
docs/benchmarks.md). Here a sheet's XML is one polars `concat_str` per column and one `str.join`, so
the Python work per sheet is constant; the files keep what the reports promise: one table per sheet
with a frozen header row, filter buttons and banded rows ("Table Style Light 9"), fitted column
widths with long text wrapped, numbers as numbers, and text as inline strings, so no cell can ever be
a formula.

The bytes depend only on the frames, the title and the date: zip entries carry a fixed timestamp and
order, and deflate (ISA-L, reporting.ziparchive) is deterministic for a given level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape

import polars as pl

from reporting.ziparchive import zip_bytes

MAX_WIDTH = 60
MIN_WIDTH = 6
_EPOCH = date(1899, 12, 30)  # Excel's day 0 (the 1900 date system, with its 1900-02-29)
#: characters XML 1.0 cannot carry, and the carriage return (an XML reader turns it into a line feed);
#: Excel reads them back from the `_xHHHH_` form
_CONTROL = r"[\x00-\x08\x0B-\x1F]"
#: cell styles of styles.xml: default, wrapped text, a number with four decimals, a date
STYLE_WRAP, STYLE_FLOAT, STYLE_DATE = 1, 2, 3

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _text(expr: pl.Expr) -> pl.Expr:
    """A String expression escaped for an XML text node (control characters as Excel's `_xHHHH_`)."""
    escaped = expr.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True) \
        .str.replace_all(">", "&gt;", literal=True)
    # a literal `_x0041_` would be read back as "A": protect it the way Excel writes it
    escaped = escaped.str.replace_all(r"_(x[0-9A-Fa-f]{4}_)", "_x005F_$1")
    for code in [*range(0x00, 0x09), *range(0x0B, 0x20)]:
        escaped = escaped.str.replace_all(chr(code), f"_x{code:04X}_", literal=True)
    return escaped


@dataclass(frozen=True)
class _TextNeeds:
    """What the values of a text column need in XML; most columns need nothing, and are copied as they are."""

    markup: bool  # holds & < or >
    control: bool  # holds a character XML cannot carry, or an `_xHHHH_` look-alike
    edge_space: bool  # starts or ends with white space (kept with xml:space="preserve")


def _text_needs(frame: pl.DataFrame, columns: list[str]) -> dict[str, _TextNeeds]:
    """One scan of every text column (a few literal tests each), so that escaping is done only where needed."""
    if not columns or frame.height == 0:
        return {c: _TextNeeds(False, False, False) for c in columns}
    def tests(c: str) -> list[pl.Expr]:
        column = pl.col(c)
        # white space at either end: stripping it shortens the text (cheaper than testing both ends with a regex)
        edge = column.str.len_bytes() != column.str.strip_chars().str.len_bytes()
        return [column.str.contains("[&<>" + _CONTROL[1:]).any(),  # one scan for everything that needs escaping
                column.str.contains("_x", literal=True).any(),
                edge.any()]

    flags = frame.select(expr.alias(f"{i}_{k}") for i, c in enumerate(columns) for k, expr in enumerate(tests(c)))
    row = flags.row(0)
    escaped = [c for i, c in enumerate(columns) if row[3 * i]]
    # only columns with something to escape are scanned again, to tell control characters from markup
    control = frame.select(pl.col(c).str.contains(_CONTROL).any() for c in escaped).row(0) if escaped else ()
    has_control = dict(zip(escaped, control, strict=True))
    return {c: _TextNeeds(bool(row[3 * i]), bool(has_control.get(c)) or bool(row[3 * i + 1]), bool(row[3 * i + 2]))
            for i, c in enumerate(columns)}


def _pieces(name: str, dtype: pl.DataType, letter: str, row: pl.Expr, wrap: bool,
            needs: _TextNeeds | None) -> list[pl.Expr]:
    """The `<c>` element of one column as concatenation pieces (null where the value is missing)."""
    column = pl.col(name)
    if dtype == pl.String:
        assert needs is not None
        value = column
        if needs.control:
            value = _text(column)
        elif needs.markup:
            value = column.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True) \
                .str.replace_all(">", "&gt;", literal=True)
        style = f' s="{STYLE_WRAP}"' if wrap else ""
        space = ' xml:space="preserve"' if needs.edge_space else ""
        middle, end = f'"{style} t="inlineStr"><is><t{space}>', "</t></is></c>"
    elif dtype == pl.Boolean:
        value, middle, end = column.cast(pl.Int8).cast(pl.String), '" t="b"><v>', "</v></c>"
    elif dtype == pl.Date:
        value = (column - pl.lit(_EPOCH)).dt.total_days().cast(pl.String)
        middle, end = f'" s="{STYLE_DATE}"><v>', "</v></c>"
    elif dtype.is_float():
        value, middle, end = pl.when(column.is_finite()).then(column).cast(pl.String), \
            f'" s="{STYLE_FLOAT}"><v>', "</v></c>"
    else:
        value, middle, end = column.cast(pl.String), '"><v>', "</v></c>"
    return [pl.lit(f'<c r="{letter}'), row, pl.lit(middle), value, pl.lit(end)]


def prepare(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every column a type a cell holds: text, whole or decimal numbers, booleans, dates."""
    keep = (pl.String, pl.Boolean, pl.Date)
    return frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                              if not (t in keep or t.is_numeric()))


def widths(frame: pl.DataFrame, group: str | None = None) -> pl.DataFrame:
    """Column widths fitted to the content (header + 3 or longest value + 2, between MIN and MAX_WIDTH),
    one row for the frame, or one row per value of `group`."""
    lengths = [pl.col(c).cast(pl.String).str.len_chars().max().fill_null(0).alias(c) for c in frame.columns
               if c != group]
    table = frame.group_by(group).agg(lengths) if group else frame.select(lengths)
    return table.with_columns(
        pl.max_horizontal(pl.lit(len(c) + 3), pl.col(c) + 2).clip(MIN_WIDTH, MAX_WIDTH).alias(c)
        for c in frame.columns if c != group)


#: the column `with_row_numbers` adds: each row's sheet row number as text, made once for all its cells
ROW_NUMBER = "\x00row"


def with_row_numbers(frame: pl.DataFrame, group: str | None = None) -> pl.DataFrame:
    """`frame` with ROW_NUMBER (2 for its first row, or for the first row of each `group`), for `row_xml`."""
    number = pl.int_range(2, pl.len() + 2)
    return frame.with_columns((number.over(group) if group else number).cast(pl.String).alias(ROW_NUMBER))


def row_xml(frame: pl.DataFrame, row_number: pl.Expr, wrapped: set[str], group: str | None = None) -> pl.Expr:
    """One `<row>` element per row of `frame` (data rows; `row_number` is the sheet row, 2 = first data row:
    give `pl.col(ROW_NUMBER)` of `with_row_numbers`, which turns the numbers into text once for all cells)."""
    names = [c for c in frame.columns if c != group]
    texts = [c for c in names if frame.schema[c] == pl.String]
    needs = _text_needs(frame, texts)
    nulls = frame.select(pl.col(names).null_count()).row(0) if frame.height else (0,) * len(names)
    row = row_number.cast(pl.String)
    parts: list[pl.Expr] = [pl.lit('<row r="'), row, pl.lit('">')]
    for i, name in enumerate(names):
        pieces = _pieces(name, frame.schema[name], column_letter(i), row, name in wrapped, needs.get(name))
        # every cell joins one flat concatenation (no intermediate column per cell, which cost more than the
        # rest of a sheet); where a value is missing, each piece of its cell is null, so the cell is left out
        if nulls[i]:
            present = pl.col(name).is_not_null()
            pieces = [pl.when(present).then(piece) for piece in pieces]
        parts.extend(pieces)
    parts.append(pl.lit("</row>"))
    return pl.concat_str(parts, ignore_nulls=True)


def header_xml(columns: Sequence[str]) -> str:
    cells = "".join(f'<c r="{column_letter(i)}1" t="inlineStr"><is><t xml:space="preserve">{escape(name)}</t></is></c>'
                    for i, name in enumerate(columns))
    return f'<row r="1">{cells}</row>'


@dataclass(frozen=True)
class DropDown:
    """An in-cell list (an Excel data validation) on rows `first`..`last` (0-based data rows) of `column`:
    only `choices` can be entered; `prompt` shows when the cell is selected, `error` when anything else is
    typed."""

    first: int
    last: int
    column: int
    choices: tuple[str, ...]
    prompt_title: str = ""
    prompt: str = ""
    error_title: str = ""
    error: str = ""

    def xml(self) -> str:
        letter = column_letter(self.column)
        ref = f"{letter}{self.first + 2}" if self.first == self.last else \
            f"{letter}{self.first + 2}:{letter}{self.last + 2}"
        quote = {chr(34): "&quot;"}
        # a list validation's formula is one quoted, comma-separated string (so choices hold no comma)
        listed = escape(",".join(self.choices))
        return (f'<dataValidation type="list" allowBlank="1" showInputMessage="1" showErrorMessage="1" '
                f'errorTitle="{escape(self.error_title, quote)}" error="{escape(self.error, quote)}" '
                f'promptTitle="{escape(self.prompt_title, quote)}" prompt="{escape(self.prompt, quote)}" '
                f'sqref="{ref}"><formula1>"{listed}"</formula1></dataValidation>')


@dataclass(frozen=True)
class Sheet:
    """One sheet as XML parts: its name, columns, widths, data rows' XML and row count, and its drop-downs."""

    name: str
    columns: tuple[str, ...]
    widths: tuple[float, ...]
    rows_xml: bytes  # UTF-8, straight from polars (never decoded into a Python string: it can be 100s of MB)
    rows: int
    drop_downs: tuple[DropDown, ...] = ()


def sheet_of(name: str, frame: pl.DataFrame) -> Sheet:
    """A sheet of one frame (typed as `prepare` does), every cell's XML built in one polars pass."""
    frame = prepare(frame)
    if frame.width == 0:
        return Sheet(name, (), (), b"", 0)
    fitted = widths(frame).row(0)
    wrapped = {c for c, w in zip(frame.columns, fitted, strict=True) if w >= MAX_WIDTH}
    rows = with_row_numbers(frame).select(row_xml(frame, pl.col(ROW_NUMBER), wrapped).str.join("")
                                          .cast(pl.Binary)).item() if frame.height else b""
    return Sheet(name, tuple(frame.columns), tuple(float(w) for w in fitted), rows, frame.height)


def _worksheet(sheet: Sheet, selected: bool) -> bytes:
    if not sheet.columns:
        return f'{_XML}<worksheet xmlns="{_MAIN}"><sheetData/></worksheet>'.encode()
    last = column_letter(len(sheet.columns) - 1)
    bottom = max(sheet.rows + 1, 2)  # a table needs a data row, even an empty one
    wrap = f' style="{STYLE_WRAP}"'
    cols = "".join(f'<col min="{i + 1}" max="{i + 1}" width="{w:g}" customWidth="1"{wrap if w >= MAX_WIDTH else ""}/>'
                   for i, w in enumerate(sheet.widths))
    tab = ' tabSelected="1"' if selected else ""
    head = (f'{_XML}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}"><dimension ref="A1:{last}{bottom}"/>'
            f'<sheetViews><sheetView workbookViewId="0"{tab}><pane ySplit="1" topLeftCell="A2" '
            f'activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            f'</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols>'
            f'<sheetData>{header_xml(sheet.columns)}')
    validations = (f'<dataValidations count="{len(sheet.drop_downs)}">'
                   f'{"".join(d.xml() for d in sheet.drop_downs)}</dataValidations>' if sheet.drop_downs else "")
    tail = (f'</sheetData>{validations}'
            '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
            '<tableParts count="1"><tablePart r:id="rId1"/></tableParts></worksheet>')
    return b"".join((head.encode(), sheet.rows_xml, tail.encode()))


def _table(sheet: Sheet, number: int) -> str:
    last = column_letter(len(sheet.columns) - 1)
    ref = f"A1:{last}{max(sheet.rows + 1, 2)}"
    columns = "".join(f'<tableColumn id="{i + 1}" name="{escape(name, {chr(34): "&quot;"})}"/>'
                      for i, name in enumerate(sheet.columns))
    return (f'{_XML}<table xmlns="{_MAIN}" id="{number}" name="Table{number}" displayName="Table{number}" '
            f'ref="{ref}" totalsRowShown="0"><autoFilter ref="{ref}"/>'
            f'<tableColumns count="{len(sheet.columns)}">{columns}</tableColumns>'
            f'<tableStyleInfo name="TableStyleLight9" showFirstColumn="0" showLastColumn="0" showRowStripes="1" '
            f'showColumnStripes="0"/></table>')


_STYLES = (
    f'{_XML}<styleSheet xmlns="{_MAIN}"><numFmts count="2"><numFmt numFmtId="164" formatCode="0.0000"/>'
    r'<numFmt numFmtId="165" formatCode="yyyy\-mm\-dd"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><color theme="1"/><name val="Calibri"/><family val="2"/>'
    '<scheme val="minor"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    '</fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" applyAlignment="1">'
    '<alignment vertical="top" wrapText="1"/></xf>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
)


def sheet_name(name: str) -> str:
    """A valid, unique-by-caller sheet name: no `[]:*?/\\`, at most 31 characters."""
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in name)
    return cleaned[:31]


def workbook(sheets: Sequence[Sheet], as_of: date, title: str) -> bytes:
    """The .xlsx package of `sheets` (document dates pinned to `as_of`)."""
    stamp = f"{as_of.isoformat()}T00:00:00Z"
    parts: list[tuple[str, str | bytes]] = []
    overrides = ['<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                 'spreadsheetml.sheet.main+xml"/>',
                 '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                 'spreadsheetml.styles+xml"/>',
                 '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.'
                 'core-properties+xml"/>',
                 '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                 'extended-properties+xml"/>']
    entries, relations = [], []
    table_number = 0
    for index, sheet in enumerate(sheets, start=1):
        overrides.append(f'<Override PartName="/xl/worksheets/sheet{index}.xml" ContentType="application/vnd.'
                         f'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>')
        entries.append(f'<sheet name="{escape(sheet_name(sheet.name), {chr(34): "&quot;"})}" sheetId="{index}" '
                       f'r:id="rId{index}"/>')
        relations.append(f'<Relationship Id="rId{index}" Type="{_REL}/worksheet" '
                         f'Target="worksheets/sheet{index}.xml"/>')
        parts.append((f"xl/worksheets/sheet{index}.xml", _worksheet(sheet, selected=index == 1)))
        if sheet.columns:
            table_number += 1
            overrides.append(f'<Override PartName="/xl/tables/table{table_number}.xml" ContentType="application/'
                             f'vnd.openxmlformats-officedocument.spreadsheetml.table+xml"/>')
            parts.append((f"xl/worksheets/_rels/sheet{index}.xml.rels",
                          f'{_XML}<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" Type="{_REL}/table" '
                          f'Target="../tables/table{table_number}.xml"/></Relationships>'))
            parts.append((f"xl/tables/table{table_number}.xml", _table(sheet, table_number)))
    relations.append(f'<Relationship Id="rId{len(sheets) + 1}" Type="{_REL}/styles" Target="styles.xml"/>')
    head = [
        ("[Content_Types].xml",
         f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
         f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
         f'<Default Extension="xml" ContentType="application/xml"/>{"".join(overrides)}</Types>'),
        ("_rels/.rels",
         f'{_XML}<Relationships xmlns="{_PKG_REL}">'
         f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
         f'<Relationship Id="rId2" Type="{_PKG_REL}/metadata/core-properties" Target="docProps/core.xml"/>'
         f'<Relationship Id="rId3" Type="{_REL}/extended-properties" Target="docProps/app.xml"/></Relationships>'),
        ("docProps/core.xml",
         f'{_XML}<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-'
         f'properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
         f'xmlns:dcmitype="http://purl.org/dc/dcmitype/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
         f'<dc:title>{escape(title)}</dc:title><dc:creator>screening-audit</dc:creator>'
         f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
         f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified></cp:coreProperties>'),
        ("docProps/app.xml",
         f'{_XML}<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
         f'<Application>screening-audit</Application></Properties>'),
        ("xl/workbook.xml",
         f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><bookViews><workbookView activeTab="0"/></bookViews>'
         f'<sheets>{"".join(entries)}</sheets></workbook>'),
        ("xl/_rels/workbook.xml.rels", f'{_XML}<Relationships xmlns="{_PKG_REL}">{"".join(relations)}'
                                       f'</Relationships>'),
        ("xl/styles.xml", _STYLES),
    ]
    return zip_bytes([(name, text if isinstance(text, bytes) else text.encode("utf-8"))
                      for name, text in [*head, *parts]])
