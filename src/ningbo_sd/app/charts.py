"""The result charts of the app: hvplot charts rendered once per session, updated in place.

Each chart is declared with hvplot (:mod:`ningbo_sd.app.hvplot`) and rendered to a Bokeh
figure when the session is built. Its glyphs then read shared ``ColumnDataSource``
objects (one per figure for the current run, one for a pinned run and one for a compared
scenario), so one slider move sends one small data message per changed figure; no figure
is rebuilt or re-rendered. Titles, axis labels and legends are relabelled in place when
the language changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.properties import field
from bokeh.models import (
    ColumnDataSource,
    FixedTicker,
    HoverTool,
    LabelSet,
    Line,
    NumeralTickFormatter,
    Range1d,
    Scatter,
    Span,
)
from bokeh.plotting import figure
from panel.viewable import Viewer

from ningbo_sd.app.hvplot import (
    area_chart,
    chart_figure,
    line_chart,
    share_source,
    square_chart,
    stack_areas,
)
from ningbo_sd.app.published import PUBLISHED_COLOUR, PUBLISHED_FILL, PublishedMarkers
from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import cluster_label, display_unit, html_text, tr
from ningbo_sd.model.outputs import BINDING_LABELS, CLUSTERS, output_columns

CURRENT_COLOUR = "#1f5fa8"
SECOND_COLOUR = "#e08214"
PINNED_COLOUR = "#555555"
COMPARE_COLOUR = "#c0392b"
CLUSTER_COLOURS: tuple[str, ...] = (
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728",
    "#ff9896", "#9467bd", "#c5b0d5", "#8c564b", "#17becf", "#c7c7c7",
)  # fmt: skip
BINDING_COLOURS: tuple[str, ...] = ("#4c78a8", "#f58518", "#e45756")
MARK_YEARS: tuple[int, ...] = (2025, 2035)
OVERLAY_STYLES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"pinned": (PINNED_COLOUR, "dashed"), "compare": (COMPARE_COLOUR, "dotted")}
)
LINE_COLUMNS: tuple[str, ...] = (
    "gross_output", "value_added", "value_added_real", "industrial_land", "land_control_line",
    "energy_use", "energy_quota", "rd_intensity", "effective_patents",
)  # fmt: skip
CLUSTER_COLUMNS: tuple[str, ...] = tuple(f"gross_output_{c}" for c in CLUSTERS)
FIGURE_HEIGHT = 270
AXIS_FORMAT = "0,0.[00]"  # thousands separators; decimals only where the ticks need them
FIGURE_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "gross_output": ("gross_output",),
        "value_added": ("value_added", "value_added_real"),
        "clusters": CLUSTER_COLUMNS,
        "binding": ("binding_code", "binding_colour"),
        "land": ("industrial_land", "land_control_line"),
        "energy": ("energy_use", "energy_quota"),
        "innovation": ("rd_intensity", "effective_patents"),
    }
)
#: Figures whose lines get the published figures of their columns as markers (the stacked
#: cluster areas and the binding squares do not draw a column's level).
PUBLISHED_FIGURES: tuple[str, ...] = ("gross_output", "value_added", "land", "energy", "innovation")


def column_label(name: str, language: str) -> str:
    """Label of a headline column (``model/outputs.yaml``) in ``language``."""
    for column in output_columns():
        if column.name == name:
            return column.label_zh if language == "zh" else column.label_en
    raise KeyError(f"{name!r} is not a headline column of model/outputs.yaml")


def column_unit(name: str, language: str = "en") -> str:
    """Unit of a headline column, written for ``language``."""
    for column in output_columns():
        if column.name == name:
            return display_unit(column.unit, language)
    raise KeyError(f"{name!r} is not a headline column of model/outputs.yaml")


def empty_data() -> dict:
    """Source data with every column the charts read and no rows."""
    names = ("year", *LINE_COLUMNS, *CLUSTER_COLUMNS, "binding_code", "binding_colour")
    return {name: [] for name in names}


def chart_data(results: pd.DataFrame | None) -> dict:
    """Turn a headline table into the charts' source data, as plain lists.

    Lists, not numpy arrays: Bokeh sends every array as its own binary websocket frame
    (some 45 frames per update), while short lists travel inside one JSON message.
    """
    if results is None:
        return empty_data()
    data = {"year": results.index.to_numpy(dtype=float).tolist()}
    for name in (*LINE_COLUMNS, *CLUSTER_COLUMNS):
        data[name] = results[name].to_numpy(dtype=float).tolist()
    codes = [BINDING_LABELS.index(v) for v in results["binding_constraint"]]
    data["binding_code"] = codes
    data["binding_colour"] = [BINDING_COLOURS[c] for c in codes]
    return data


def figure_data(data: dict, figure: str) -> dict:
    """The columns of ``data`` one figure draws (see :data:`FIGURE_COLUMNS`)."""
    return {column: data[column] for column in ("year", *FIGURE_COLUMNS[figure])}


def same_data(old: Mapping, new: Mapping) -> bool:
    """Whether two ColumnDataSource ``data`` dicts hold the same columns and values.

    A source given data equal to what it has would still be sent to the browser and
    every figure drawing it repainted; a lever that leaves a chart's series unchanged
    (R&D intensity and the land chart, say) should cost that chart nothing.
    """
    if old.keys() != new.keys():
        return False
    for name, column in new.items():
        before, after = np.asarray(old[name]), np.asarray(column)
        if before.shape != after.shape or before.dtype != after.dtype:
            return False
        if not np.array_equal(before, after, equal_nan=after.dtype.kind == "f"):
            return False
    return True


def nice_range(low: float, high: float, current: tuple[float, float] | None) -> tuple:
    """A y range for data in ``[low, high]``: the current one while it still fits well.

    Axes that rescale on every slider move make the page re-lay itself out (the slowest part
    of an update in the browser) and make lines hard to follow, so a range is kept until the
    data leave it or fill less than 60 % of it; a new range has round ends and 6 % margins.
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        return current or (0.0, 1.0)
    span = (high - low) or abs(high) or 1.0
    lo, hi = low - 0.06 * span, high + 0.06 * span
    if low >= 0:
        lo = max(lo, 0.0)
    if current is not None:
        start, end = current
        if start <= low and end >= high and (high - low) >= 0.6 * (end - start):
            return current
    step = 10.0 ** np.floor(np.log10(hi - lo)) / 10
    return float(np.floor(lo / step) * step), float(np.ceil(hi / step) * step)


def fit_y_range(axis_range: Range1d, *series, keep: bool = True) -> None:
    """Set a fixed y range so that it shows every finite value of ``series``.

    Parameters
    ----------
    axis_range : bokeh.models.Range1d
        The range to set (changed only if its ends move).
    *series : array-like
        The values the figure draws against this range.
    keep : bool
        Keep the current range while the values still fill it well (:func:`nice_range`);
        False for a figure that now shows a different quantity.
    """
    arrays = [np.asarray(s, dtype=float).ravel() for s in series]
    values = np.concatenate(arrays) if arrays else np.empty(0)
    values = values[np.isfinite(values)]
    if not values.size:
        return
    fitted = axis_range.end > axis_range.start
    current = (axis_range.start, axis_range.end) if keep and fitted else None
    start, end = nice_range(float(values.min()), float(values.max()), current)
    if (start, end) != (axis_range.start, axis_range.end):
        axis_range.update(start=start, end=end)


def make_figure(**options) -> figure:
    """A plain Bokeh time-axis figure (2015-2035) in the app's style, without toolbar.

    For the secondary tabs (uncertainty, calibration); the main view's charts are hvplot
    charts (:mod:`ningbo_sd.app.hvplot`). The y range is fixed (a data-driven range makes
    the browser re-lay the page out at every update): the caller fits it to what it draws
    with :func:`fit_y_range`.
    """
    options.setdefault("y_range", Range1d(0, 1))
    options.setdefault("title", None)
    fig = figure(
        height=FIGURE_HEIGHT,
        sizing_mode="stretch_width",
        toolbar_location=None,
        tools="",
        x_range=(2014.5, 2035.5),
        **options,
    )
    fig.xaxis.ticker = FixedTicker(ticks=list(range(2015, 2036, 5)))
    fig.yaxis.formatter = NumeralTickFormatter(format=AXIS_FORMAT)
    if fig.title is not None:
        fig.title.text_font_size = "13px"
    fig.min_border_left = 60
    return fig


@dataclass(frozen=True)
class Key:
    """One legend entry, drawn in HTML above a figure (not on its canvas).

    Attributes
    ----------
    colour : str
    style : str
        ``solid``, ``dashed``, ``dotted`` or ``dashdot`` for a line; ``area`` for a patch;
        ``marker`` for a point (the published figures).
    label : callable
        ``label(language) -> str``.
    group : str
        ``current`` (always shown), ``pinned`` or ``compare`` (shown while that run is).
    """

    colour: str
    style: str
    label: Callable[[str], str]
    group: str = "current"


def key_html(key: Key, text: str) -> str:
    """A legend entry: a line or patch swatch and its label."""
    if key.style == "area":
        swatch = f"width:11px;height:11px;background:{key.colour}"
    elif key.style == "marker":
        swatch = (
            f"width:7px;height:7px;background:{PUBLISHED_FILL};border:1.5px solid {key.colour};"
            "transform:rotate(45deg)"
        )
    else:
        border = {"dashdot": "dashed"}.get(key.style, key.style)
        swatch = f"width:20px;height:0;border-top:3px {border} {key.colour}"
    return (
        f'<span style="white-space:nowrap;margin-right:12px"><span style="display:inline-block;'
        f'{swatch};vertical-align:middle;margin-right:4px"></span>{html_text(text)}</span>'
    )


class ResultCharts(Viewer):
    """Gross output, value added, clusters, binding constraint, land, energy, innovation.

    Titles and legends are HTML above each figure: they change only with the language or
    the pinned/compared runs, and keeping them off the canvas makes the redraw that every
    slider move causes cheaper in the browser.
    """

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        # One source per figure, so that a figure whose data did not change is not redrawn
        # (Bokeh sends nothing for an unchanged property); the gross output one is "current".
        self.figure_sources = {
            name: ColumnDataSource(figure_data(empty_data(), name), name=f"{name}-run")
            for name in FIGURE_COLUMNS
        }
        self.figure_sources["gross_output"].name = "current-run"  # read by the browser tests
        self.sources = {
            "current": self.figure_sources["gross_output"],
            "pinned": ColumnDataSource(empty_data(), name="pinned-run"),
            "compare": ColumnDataSource(empty_data(), name="compared-run"),
        }
        self.keys: dict[str, list[Key]] = {name: [] for name in FIGURE_COLUMNS}
        self._overlay_columns: list[tuple[str, str]] = []  # (figure, column) of overlay lines
        self._overlaid: set[str] = set()  # overlay groups drawn so far
        self.spans: dict[str, Span] = {}
        self.figures = {
            "gross_output": self._gross_output_figure(),
            "value_added": self._value_added_figure(),
            "clusters": self._clusters_figure(),
            "binding": self._binding_figure(),
            "land": self._pair_figure("land", "industrial_land", "land_control_line"),
            "energy": self._pair_figure("energy", "energy_use", "energy_quota"),
            "innovation": self._innovation_figure(),
        }
        # the published figures: drawn once per session, never updated by a slider move
        self.published = PublishedMarkers(
            self.figures,
            {name: FIGURE_COLUMNS[name] for name in PUBLISHED_FIGURES},
            self.state.language,
        )
        for name in sorted(self.published.figures()):
            self.keys[name].append(Key(PUBLISHED_COLOUR, "marker", partial(tr, "published_key")))
        self.headers = {
            name: pn.pane.HTML("", sizing_mode="stretch_width", margin=(8, 10, 0, 10))
            for name in self.figures
        }
        self.panes = {
            name: pn.Column(
                self.headers[name],
                pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            )
            for name, fig in self.figures.items()
        }
        self.state.param.watch(self._update_data, ["results", "pinned", "compare"])
        self.state.settings.param.watch(self._relabel, ["language"])
        self._update_data()
        self._relabel()

    # ------------------------------------------------------------------ building
    def _lines(self, name: str, lines: list[tuple], **options) -> figure:
        """An hvplot line chart of the current run, rendered, with its legend keys.

        ``lines``: one ``(column, colour, style, label, line width)`` per line; ``options``
        go to :func:`ningbo_sd.app.hvplot.line_chart`.
        """
        columns, colours, styles, labels, widths = zip(*lines, strict=True)
        fig = chart_figure(
            name, partial(line_chart, columns, colours, widths, styles, FIGURE_HEIGHT, **options)
        )
        share_source(fig, self.figure_sources[name])
        for colour, style, label in zip(colours, styles, labels, strict=True):
            self.keys[name].append(Key(colour, style, label))
        return fig

    def _overlays(self, fig: figure, name: str, column: str) -> None:
        """Dashed pinned and dotted compared lines of ``column`` (drawn from the first pin)."""
        self._overlay_columns.append((name, column))
        self.keys[name].append(Key(PINNED_COLOUR, "dashed", partial(tr, "pinned"), "pinned"))
        self.keys[name].append(
            Key(COMPARE_COLOUR, "dotted", lambda lang: self.state.compare_name, "compare")
        )

    def _add_overlays(self, group: str) -> None:
        """Add the pinned or compared lines to every figure, the first time they are shown.

        Until then the session's page has neither these renderers nor their source, which
        keeps the page (and every session's set-up) lighter.
        """
        if group in self._overlaid:
            return
        self._overlaid.add(group)
        colour, style = OVERLAY_STYLES[group]
        for name, column in self._overlay_columns:
            glyph = Line(x="year", y=column, line_color=colour, line_width=2, line_dash=style)
            self.figures[name].add_glyph(self.sources[group], glyph)

    def _gross_output_figure(self) -> figure:
        fig = self._lines(
            "gross_output", [("gross_output", CURRENT_COLOUR, "solid", partial(tr, "current"), 3)]
        )
        (line,) = fig.renderers
        self._overlays(fig, "gross_output", "gross_output")
        self.marks = ColumnDataSource({"x": [], "y": [], "text": []})
        glyph = Scatter(x="x", y="y", size=9, fill_color=CURRENT_COLOUR, line_color=CURRENT_COLOUR)
        fig.add_glyph(self.marks, glyph)
        fig.add_layout(
            LabelSet(
                x="x",
                y="y",
                text="text",
                source=self.marks,
                text_align="right",
                x_offset=-8,
                y_offset=2,
                text_font_size="11px",
                text_font_style="bold",
            )
        )
        for name, colour in (("level_2020", "#777777"), ("doubling", "#2e7d32")):
            span = Span(
                location=0, dimension="width", line_color=colour, line_dash="dashed", line_width=1.5
            )
            fig.add_layout(span)
            self.spans[name] = span
        for year in MARK_YEARS:
            fig.add_layout(
                Span(location=year, dimension="height", line_color="#bbbbbb", line_dash="dotted")
            )
        self._span_labels = LabelSet(
            x="x",
            y="y",
            text="text",
            source=ColumnDataSource({"x": [2015.0, 2015.0], "y": [0.0, 0.0], "text": ["", ""]}),
            y_offset=3,
            text_font_size="10px",
            text_color="#555555",
        )
        fig.add_layout(self._span_labels)
        fig.add_tools(
            HoverTool(
                renderers=[line],
                mode="vline",
                tooltips=[("", "@year{0}"), ("", "@gross_output{0,0}")],
            )
        )
        return fig

    def _value_added_figure(self) -> figure:
        fig = self._lines(
            "value_added",
            [
                ("value_added", CURRENT_COLOUR, "solid", partial(tr, "nominal"), 3),
                ("value_added_real", SECOND_COLOUR, "solid", partial(tr, "real_2020"), 2),
            ],
        )
        self._overlays(fig, "value_added", "value_added")
        return fig

    def _clusters_figure(self) -> figure:
        fig = chart_figure(
            "clusters", partial(area_chart, CLUSTER_COLUMNS, CLUSTER_COLOURS, FIGURE_HEIGHT)
        )
        stack_areas(fig, self.figure_sources["clusters"], CLUSTER_COLUMNS)
        for cluster, colour in zip(CLUSTERS, CLUSTER_COLOURS, strict=True):
            self.keys["clusters"].append(Key(colour, "area", partial(cluster_label, cluster)))
        return fig

    def _binding_figure(self) -> figure:
        chart = partial(square_chart, "binding_code", "binding_colour", 160, len(BINDING_LABELS))
        fig = chart_figure("binding", chart)
        (renderer,) = share_source(fig, self.figure_sources["binding"])
        renderer.glyph.update(fill_color=field("binding_colour"), size=13)
        fig.yaxis.formatter = NumeralTickFormatter(format="0")
        return fig

    def _pair_figure(self, name: str, level: str, cap: str) -> figure:
        fig = self._lines(
            name,
            [
                (level, CURRENT_COLOUR, "solid", partial(column_label, level), 3),
                (cap, "#c62828", "dashdot", partial(column_label, cap), 2),
            ],
        )
        self._overlays(fig, name, level)
        return fig

    def _innovation_figure(self) -> figure:
        # R&D intensity on the left axis, patents on a second axis on the right (multi_y)
        fig = self._lines(
            "innovation",
            [
                ("rd_intensity", CURRENT_COLOUR, "solid", partial(column_label, "rd_intensity"), 3),
                ("effective_patents", SECOND_COLOUR, "solid", partial(tr, "patents"), 2),
            ],
            multi_y=True,
        )
        fig.left[0].formatter = NumeralTickFormatter(format="0.00")
        fig.right[0].formatter = NumeralTickFormatter(format="0,0")
        ((self.patents_axis, self.patents_range),) = fig.extra_y_ranges.items()
        self._overlays(fig, "innovation", "rd_intensity")
        return fig

    # ------------------------------------------------------------------ updating
    def doubling_base(self) -> float:
        """The 2020 gross output the 2035 doubling is measured from."""
        from ningbo_sd.app.views import gross_output_base

        return gross_output_base(self.state.results)

    def _update_data(self, *events) -> None:
        names = {event.name for event in events} or {"results", "pinned", "compare"}
        with pn.io.hold():
            if "results" in names:
                data = chart_data(self.state.results)
                for name, source in self.figure_sources.items():
                    columns = figure_data(data, name)
                    if not same_data(source.data, columns):
                        source.data = columns
                results = self.state.results
                marks = [y for y in MARK_YEARS if y in results.index]
                values = [float(results.loc[y, "gross_output"]) for y in marks]
                self.marks.data = {
                    "x": [float(y) for y in marks],
                    "y": values,
                    "text": [f"{y}: {v:,.0f}" for y, v in zip(marks, values, strict=True)],
                }
                base = self.doubling_base()
                self.spans["level_2020"].location = base
                self.spans["doubling"].location = 2 * base
                labels = self._span_labels.source
                labels.data = {**labels.data, "y": [base, 2 * base]}
            for group in ("pinned", "compare"):
                run = getattr(self.state, group)
                if group in names and (run is not None or group in self._overlaid):
                    self._add_overlays(group)
                    self.sources[group].data = chart_data(run)
            if names & {"pinned", "compare"}:
                self._relabel()
            self._rescale()

    def _rescale(self) -> None:
        """Set each figure's y range from the runs it shows (see :func:`nice_range`)."""
        state = self.state
        runs = [r for r in (state.results, state.pinned, state.compare) if r is not None]
        current = self.state.results
        base = self.doubling_base()
        published = self.published.values
        extent = {
            "gross_output": [r["gross_output"] for r in runs] + [pd.Series([base, 2 * base])],
            "value_added": [r["value_added"] for r in runs] + [current["value_added_real"]],
            "clusters": [current[list(CLUSTER_COLUMNS)].sum(axis=1), pd.Series([0.0])],
            "land": [r["industrial_land"] for r in runs] + [current["land_control_line"]],
            "energy": [r["energy_use"] for r in runs] + [current["energy_quota"]],
            "innovation": [r["rd_intensity"] for r in runs],
        }
        for name, series in extent.items():
            fit_y_range(self.figures[name].y_range, *series, published(name))
        patents = published("innovation", self.patents_axis)
        fit_y_range(self.patents_range, current["effective_patents"], patents)

    def shown_keys(self, name: str) -> list[Key]:
        """The legend entries of a figure that are shown now."""
        shown = {"current": True}
        shown["pinned"] = self.state.pinned is not None
        shown["compare"] = self.state.compare is not None
        return [key for key in self.keys[name] if shown[key.group]]

    def _relabel(self, *events) -> None:
        lang = self.state.language
        titles = {
            "gross_output": f"{tr('chart_gross_output', lang)} ({tr('unit_100m', lang)})",
            "value_added": f"{tr('chart_value_added', lang)} ({tr('unit_100m', lang)})",
            "clusters": f"{tr('chart_clusters', lang)} ({tr('unit_100m', lang)})",
            "binding": tr("chart_binding", lang),
            "land": f"{tr('chart_land', lang)} (km²)",
            "energy": f"{tr('chart_energy', lang)} ({column_unit('energy_use', lang)})",
            "innovation": f"{tr('chart_innovation', lang)} (%)",
        }
        with pn.io.hold():
            for name, fig in self.figures.items():
                keys = "".join(key_html(key, key.label(lang)) for key in self.shown_keys(name))
                self.headers[name].object = (
                    f'<div style="font-size:13px"><b>{html_text(titles[name])}</b></div>'
                    f'<div style="font-size:11px;color:#333">{keys}</div>'
                )
                fig.xaxis.axis_label = tr("year", lang)
            self.figures["binding"].yaxis.major_label_overrides = {
                i: tr(name, lang) for i, name in enumerate(BINDING_LABELS)
            }
            source = self._span_labels.source
            source.data = {**source.data, "text": [tr("level_2020", lang), tr("doubling", lang)]}
            if events and any(event.name == "language" for event in events):
                self.published.relabel(lang)

    def __panel__(self):
        panes = self.panes
        return pn.Column(
            panes["gross_output"],
            pn.GridBox(
                panes["value_added"],
                panes["innovation"],
                panes["land"],
                panes["energy"],
                ncols=2,
                sizing_mode="stretch_width",
            ),
            panes["clusters"],
            panes["binding"],
            sizing_mode="stretch_width",
        )
