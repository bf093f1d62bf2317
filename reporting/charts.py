"""Charts as inline SVG, generated here so the report needs no JavaScript library and no network.

Each function takes small, already aggregated data (per site, per criterion: tens to hundreds of
items, never per subject) and returns SVG markup (markupsafe.Markup, every text escaped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

FONT = "font-family='system-ui,-apple-system,Segoe UI,Roboto,sans-serif' font-size='11'"
PALETTE = {"important": "#c0392b", "query": "#e6a23c", "screened": "#b8c4d6", "enrolled": "#2f6db5",
           "grid": "#e3e6ea", "text": "#222", "muted": "#667", "amber": "#e6a23c", "red": "#c0392b",
           "ok": "#2f6db5"}


def _svg(width: float, height: float, body: list[str], title: str) -> Markup:
    # every text and attribute value in `body` went through `escape` (see _text and the callers)
    return Markup(  # noqa: S704
        f"<svg xmlns='http://www.w3.org/2000/svg' role='img' width='{width:.0f}' height='{height:.0f}' "
        f"viewBox='0 0 {width:.0f} {height:.0f}' {FONT}><title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: object, anchor: str = "start", extra: str = "") -> str:
    return f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' {extra}>{escape(str(text))}</text>"


def _heat_colour(value: float, top: float) -> str:
    if value <= 0 or top <= 0:
        return "#f7f8fa"
    share = min(value / top, 1.0)
    # from a pale amber to a deep red
    r, g, b = (int(253 - share * (253 - 179)), int(224 - share * (224 - 40)), int(178 - share * (178 - 36)))
    return f"rgb({r},{g},{b})"


def heatmap(rows: Sequence[str], columns: Sequence[str], cells: dict[tuple[str, str], int], title: str) -> Markup:
    """Rows (sites) x columns (criteria) with the count in each cell, darker for more."""
    cell, top = 26, 56
    left = 14 + 6.6 * max((len(r) for r in rows), default=4)
    width, height = left + cell * max(len(columns), 1) + 10, top + cell * max(len(rows), 1) + 10
    peak = max(cells.values(), default=0)
    body = []
    for j, column in enumerate(columns):
        x = left + j * cell + cell / 2
        body.append(_text(x, top - 6, column, "start", f"transform='rotate(-60 {x:.1f} {top - 6})'"))
    for i, row in enumerate(rows):
        y = top + i * cell
        body.append(_text(left - 6, y + cell / 2 + 4, row, "end"))
        for j, column in enumerate(columns):
            value = cells.get((row, column), 0)
            x = left + j * cell
            body.append(
                f"<rect x='{x:.1f}' y='{y}' width='{cell - 2}' height='{cell - 2}' rx='3' "
                f"fill='{_heat_colour(value, peak)}'><title>{escape(f'site {row}, {column}: {value}')}</title></rect>"
            )
            if value:
                colour = "#fff" if peak and value / peak > 0.55 else PALETTE["text"]
                body.append(_text(x + (cell - 2) / 2, y + cell / 2 + 3, value, "middle", f"fill='{colour}'"))
    return _svg(width, height, body, title)


@dataclass(frozen=True)
class Bar:
    label: str
    values: tuple[float, ...]  # stacked segments, in the order of the chart's colours
    note: str = ""


def hbars(bars: Sequence[Bar], colours: Sequence[str], legend: Sequence[str], title: str,
          overlay: bool = False, plot: int = 420) -> Markup:
    """Horizontal bars, one per item; segments stacked, or drawn over each other when `overlay`."""
    row, top = 20, 24
    left = 14 + 6.6 * max((len(b.label) for b in bars), default=4)
    right = 12 + 6.2 * max((len(b.note) for b in bars), default=0)
    width, height = left + plot + right, top + row * max(len(bars), 1) + 8
    peak = max((max(b.values) if overlay else sum(b.values)) for b in bars) if bars else 0
    scale = plot / peak if peak else 0
    body = []
    x = left
    for colour, name in zip(colours, legend, strict=True):
        body.append(f"<rect x='{x:.1f}' y='6' width='10' height='10' fill='{colour}'/>")
        body.append(_text(x + 14, 15, name))
        x += 24 + 7 * len(name)
    for i, bar in enumerate(bars):
        y = top + i * row
        body.append(_text(left - 6, y + 13, bar.label, "end"))
        start = left
        for value, colour in zip(bar.values, colours, strict=True):
            length = value * scale
            body.append(f"<rect x='{(left if overlay else start):.1f}' y='{y + 3}' width='{length:.1f}' "
                        f"height='{row - 6}' fill='{colour}'><title>{escape(f'{bar.label}: {value:g}')}"
                        f"</title></rect>")
            start += 0 if overlay else length
        end = left + (max(bar.values) if overlay else sum(bar.values)) * scale
        body.append(_text(end + 6, y + 13, bar.note, "start", f"fill='{PALETTE['muted']}'"))
    return _svg(width, height, body, title)


@dataclass(frozen=True)
class FunnelPoint:
    label: str
    n: float
    rate: float
    flag: int


def funnel(points: Sequence[FunnelPoint], p0: float, limits: Sequence[tuple[float, float, float, float]],
           title: str, x_label: str, y_label: str) -> Markup:
    """A funnel plot: each site's rate against its denominator, the study rate `p0`, and the control
    limits as samples (n, low, high, z) with z = 2.0 (amber curve) or 3.0 (red curve)."""
    width, height, left, bottom, top, right = 380, 230, 46, 36, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n_max = max([p.n for p in points] + [1.0])
    # scale to the sites and to the limits at the smallest site, not to the funnel's mouth at tiny n
    n_min = min((p.n for p in points), default=n_max)
    at_smallest = [hi for n, _, hi, z in limits if n >= n_min and z == 3.0][:1] or [p0]
    y_max = max([p.rate * 1.1 for p in points] + [at_smallest[0] * 1.05, p0 * 1.5, 1e-9])

    def px(n: float) -> float:
        return left + plot_w * n / n_max

    def py(v: float) -> float:
        return top + plot_h * (1 - min(v, y_max) / y_max)

    body = [f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fbfbfc' "
            f"stroke='{PALETTE['grid']}'/>"]
    for k in range(5):
        v = y_max * k / 4
        body.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{py(v):.1f}' y2='{py(v):.1f}' "
                    f"stroke='{PALETTE['grid']}'/>")
        body.append(_text(left - 4, py(v) + 3, f"{v:.2g}", "end", f"fill='{PALETTE['muted']}'"))
    for k in range(5):
        n = n_max * k / 4
        body.append(_text(px(n), top + plot_h + 13, f"{n:.0f}", "middle", f"fill='{PALETTE['muted']}'"))
    for z_level, colour in ((2.0, PALETTE["amber"]), (3.0, PALETTE["red"])):
        curve = [(n, lo, hi) for n, lo, hi, z in limits if z == z_level]
        for pick in (1, 2):
            # draw only the part of a limit inside the plot: a gap where it leaves it, no flat edge
            parts, pen_down = [], False
            for c in curve:
                if 0 < c[pick] <= y_max:
                    parts.append(f"{'L' if pen_down else 'M'}{px(c[0]):.1f},{py(c[pick]):.1f}")
                    pen_down = True
                else:
                    pen_down = False
            if parts:
                body.append(f"<path d='{' '.join(parts)}' fill='none' stroke='{colour}' stroke-dasharray='4 3'/>")
    body.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{py(p0):.1f}' y2='{py(p0):.1f}' "
                f"stroke='{PALETTE['muted']}'/>")
    for p in points:
        colour = PALETTE["red"] if abs(p.flag) >= 2 else PALETTE["amber"] if p.flag else PALETTE["ok"]
        body.append(f"<circle cx='{px(p.n):.1f}' cy='{py(p.rate):.1f}' r='4' fill='{colour}' "
                    f"fill-opacity='0.85'><title>{escape(f'site {p.label}: {p.rate:.3g} (n={p.n:g})')}"
                    f"</title></circle>")
        if p.flag:
            body.append(_text(px(p.n) + 6, py(p.rate) - 4, p.label, "start", f"fill='{colour}'"))
    body.append(_text(left + plot_w / 2, height - 4, x_label, "middle", f"fill='{PALETTE['muted']}'"))
    body.append(_text(12, top + plot_h / 2, y_label, "middle",
                      f"fill='{PALETTE['muted']}' transform='rotate(-90 12 {top + plot_h / 2:.1f})'"))
    return _svg(width, height, body, title)


def columns(labels: Sequence[str], stacks: Sequence[tuple[float, ...]], colours: Sequence[str],
            legend: Sequence[str], title: str, notes: Sequence[str] = ()) -> Markup:
    """Vertical stacked columns, one per label (a run), with the total above each column."""
    left, top, bottom, step = 36, 38, 34, 46
    plot_h = 150
    width, height = max(left + step * max(len(labels), 1) + 16, 240), top + plot_h + bottom
    peak = max((sum(s) for s in stacks), default=0) or 1
    body = []
    x = left
    for colour, name in zip(colours, legend, strict=True):
        body.append(f"<rect x='{x}' y='6' width='10' height='10' fill='{colour}'/>")
        body.append(_text(x + 14, 15, name))
        x += 24 + 7 * len(name)
    body.append(f"<line x1='{left}' x2='{width - 10}' y1='{top + plot_h}' y2='{top + plot_h}' "
                f"stroke='{PALETTE['grid']}'/>")
    for i, (label, stack) in enumerate(zip(labels, stacks, strict=True)):
        x0 = left + i * step + 4
        y = top + plot_h
        for value, colour in zip(stack, colours, strict=True):
            h = plot_h * value / peak
            y -= h
            body.append(f"<rect x='{x0}' y='{y:.1f}' width='{step - 8}' height='{h:.1f}' fill='{colour}'>"
                        f"<title>{escape(f'{label}: {value:g}')}</title></rect>")
        note = notes[i] if i < len(notes) else ""
        body.append(_text(x0 + (step - 8) / 2, y - 3, f"{sum(stack):g}", "middle", f"fill='{PALETTE['muted']}'"))
        body.append(_text(x0 + (step - 8) / 2, top + plot_h + 12, label, "middle"))
        if note:
            body.append(_text(x0 + (step - 8) / 2, top + plot_h + 25, note, "middle", f"fill='{PALETTE['muted']}'"))
    return _svg(width, height, body, title)
