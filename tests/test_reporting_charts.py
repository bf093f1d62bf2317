"""Inline SVG charts: well-formed, escaped, labels inside the canvas, values where they belong."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from reporting import charts

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(svg) -> ET.Element:
    return ET.fromstring(str(svg))


def texts(root: ET.Element) -> list[tuple[float, str]]:
    return [(float(t.get("x")), t.text or "") for t in root.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize("label", ["101", "SITE-WITH-A-VERY-LONG-NAME-0001", "<b>&x"])
def test_labels_stay_on_the_canvas_and_are_escaped(label):
    for svg in (charts.heatmap([label, "2"], ["IN01", "EX02"], {(label, "IN01"): 3}, "t"),
                charts.hbars([charts.Bar(label, (1.0, 2.0), "note")], ["#000", "#111"], ["a", "b"], "t")):
        root = parse(svg)
        width = float(root.get("width"))
        for x, text in texts(root):
            if text == label:
                assert x - 6.6 * len(text) >= 0 and x <= width


def test_heatmap_cells_carry_their_counts():
    root = parse(charts.heatmap(["101", "102"], ["IN10", "EX07"], {("101", "IN10"): 4, ("102", "EX07"): 1}, "t"))
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "site 101, IN10: 4" in titles and "site 102, IN10: 0" in titles and "site 102, EX07: 1" in titles
    rects = list(root.iter("{http://www.w3.org/2000/svg}rect"))
    assert len(rects) == 4
    # the largest count gets the darkest fill, an empty cell the neutral one
    fills = {r.find("s:title", NS).text: r.get("fill") for r in rects}
    assert fills["site 102, IN10: 0"] == "#f7f8fa"
    assert fills["site 101, IN10: 4"] == "rgb(179,40,36)"


def test_stacked_bars_are_proportional():
    root = parse(charts.hbars([charts.Bar("A", (3.0, 1.0)), charts.Bar("B", (1.0, 1.0))], ["#a00", "#0a0"],
                              ["x", "y"], "t", plot=400))
    widths = {r.find("s:title", NS).text: float(r.get("width")) for r in root.iter("{http://www.w3.org/2000/svg}rect")
              if r.find("s:title", NS) is not None}
    assert widths == {"A: 3": 300.0, "A: 1": 100.0, "B: 1": 100.0}


def test_funnel_marks_flagged_sites():
    points = [charts.FunnelPoint("101", 50, 0.7, 2), charts.FunnelPoint("102", 40, 0.2, 0)]
    limits = [(n, 0.0, 0.5, z) for n in (10, 50) for z in (2.0, 3.0)]
    root = parse(charts.funnel(points, 0.2, limits, "t", "n", "rate"))
    circles = {c.find("s:title", NS).text: c.get("fill") for c in root.iter("{http://www.w3.org/2000/svg}circle")}
    assert circles["site 101: 0.7 (n=50)"] == charts.PALETTE["red"]
    assert circles["site 102: 0.2 (n=40)"] == charts.PALETTE["ok"]
    assert "101" in [t for _, t in texts(root)] and "102" not in [t for _, t in texts(root)]


def test_columns_show_totals_and_new_counts():
    root = parse(charts.columns(["11-26", "11-27"], [(2.0, 1.0), (0.0, 1.0)], ["#a00", "#0a0"], ["i", "q"], "t",
                                notes=["+3", "+1"]))
    labels = [t for _, t in texts(root)]
    assert labels.count("3") == 1 and labels.count("1") == 1 and "+3" in labels and "11-27" in labels


def test_funnel_limits_are_drawn_inside_the_plot_only():
    from reporting.risk import funnel_limits

    samples = [(n, *funnel_limits(0.3, n, z, "binomial"), z) for z in (2.0, 3.0) for n in range(1, 41)]
    root = parse(charts.funnel([charts.FunnelPoint("101", 40, 0.35, 0)], 0.3, samples, "t", "n", "rate"))
    ys = [float(point.split(",")[1]) for path in root.iter("{http://www.w3.org/2000/svg}path")
          for point in path.get("d").replace("M", " ").replace("L", " ").split()]
    height = float(root.get("height"))
    assert ys and all(16 <= y <= height - 36 for y in ys)
