"""The result charts of the app: Bokeh figures built once per session, updated in place.

Every figure reads the same three ``ColumnDataSource`` objects (the current run, a pinned
run and a compared scenario), so one slider move sends one small data message per
source; no figure is rebuilt. Titles, axis labels and legends are relabelled in place
when the language changes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.properties import value as fixed_value
from bokeh.models import (
    ColumnDataSource,
    FixedTicker,
    HoverTool,
    LabelSet,
    Legend,
    LegendItem,
    LinearAxis,
    NumeralTickFormatter,
    Range1d,
    Span,
)
from bokeh.plotting import figure
from panel.viewable import Viewer

from model.outputs import BINDING_LABELS, CLUSTERS, output_columns
from scenarios.app_state import AppState
from scenarios.app_text import cluster_label, display_unit, tr

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
LINE_COLUMNS: tuple[str, ...] = (
    "gross_output", "value_added", "value_added_real", "industrial_land", "land_control_line",
    "energy_use", "energy_quota", "rd_intensity", "effective_patents",
)  # fmt: skip
CLUSTER_COLUMNS: tuple[str, ...] = tuple(f"gross_output_{c}" for c in CLUSTERS)
FIGURE_HEIGHT = 270


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


def make_figure(**options) -> figure:
    """A time-axis figure (2015-2035) in the app's style, without toolbar."""
    options.setdefault("y_range", Range1d(0, 1))
    fig = figure(
        height=FIGURE_HEIGHT,
        sizing_mode="stretch_width",
        toolbar_location=None,
        tools="",
        x_range=(2014.5, 2035.5),
        **options,
    )
    fig.xaxis.ticker = FixedTicker(ticks=list(range(2015, 2036, 5)))
    fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
    fig.title.text_font_size = "13px"
    fig.min_border_left = 60
    return fig


class ResultCharts(Viewer):
    """Gross output, value added, clusters, binding constraint, land, energy, innovation."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.sources = {
            "current": ColumnDataSource(empty_data(), name="current-run"),
            "pinned": ColumnDataSource(empty_data(), name="pinned-run"),
            "compare": ColumnDataSource(empty_data(), name="compared-run"),
        }
        self.legend_items: list[tuple] = []  # (legend item, label function of the language)
        self.overlay_items: dict[str, list[LegendItem]] = {"pinned": [], "compare": []}
        self.spans: dict[str, Span] = {}
        self.figures = {
            "gross_output": self._gross_output_figure(),
            "value_added": self._value_added_figure(),
            "clusters": self._clusters_figure(),
            "binding": self._binding_figure(),
            "land": self._pair_figure("industrial_land", "land_control_line"),
            "energy": self._pair_figure("energy_use", "energy_quota"),
            "innovation": self._innovation_figure(),
        }
        self.panes = {
            name: pn.pane.Bokeh(fig, sizing_mode="stretch_width")
            for name, fig in self.figures.items()
        }
        self.state.param.watch(self._update_data, ["results", "pinned", "compare"])
        self.state.settings.param.watch(self._relabel, ["language"])
        self._update_data()
        self._relabel()

    # ------------------------------------------------------------------ building
    def _overlays(self, fig: figure, column: str) -> None:
        """Dashed pinned and dotted compared lines of ``column``."""
        pinned = fig.line(
            "year",
            column,
            source=self.sources["pinned"],
            color=PINNED_COLOUR,
            line_width=2,
            line_dash="dashed",
        )
        compare = fig.line(
            "year",
            column,
            source=self.sources["compare"],
            color=COMPARE_COLOUR,
            line_width=2,
            line_dash="dotted",
        )
        self.overlay_items["pinned"].append(
            self._legend(fig, pinned, lambda lang: tr("pinned", lang))
        )
        self.overlay_items["compare"].append(
            self._legend(fig, compare, lambda lang: self.state.compare_name or tr("none", lang))
        )

    def _legend(self, fig: figure, renderer, label) -> LegendItem:
        if not fig.legend:
            legend = Legend(
                location="bottom_right",
                label_text_font_size="11px",
                background_fill_alpha=0.6,
                spacing=0,
                padding=4,
                margin=4,
            )
            fig.add_layout(legend)
        item = LegendItem(label=fixed_value(""), renderers=[renderer])
        fig.legend[0].items.append(item)
        self.legend_items.append((item, label))
        return item

    def _gross_output_figure(self) -> figure:
        fig = make_figure()
        line = fig.line(
            "year",
            "gross_output",
            source=self.sources["current"],
            color=CURRENT_COLOUR,
            line_width=3,
        )
        self._legend(fig, line, lambda lang: tr("current", lang))
        self._overlays(fig, "gross_output")
        self.marks = ColumnDataSource({"x": [], "y": [], "text": []})
        fig.scatter("x", "y", source=self.marks, size=9, color=CURRENT_COLOUR)
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
        fig.scatter("x", "y", source=self._span_labels.source, alpha=0)  # keeps both lines in range
        fig.add_tools(
            HoverTool(
                renderers=[line],
                mode="vline",
                tooltips=[("", "@year{0}"), ("", "@gross_output{0,0}")],
            )
        )
        return fig

    def _value_added_figure(self) -> figure:
        fig = make_figure()
        nominal = fig.line(
            "year",
            "value_added",
            source=self.sources["current"],
            color=CURRENT_COLOUR,
            line_width=3,
        )
        real = fig.line(
            "year",
            "value_added_real",
            source=self.sources["current"],
            color=SECOND_COLOUR,
            line_width=2,
        )
        self._legend(fig, nominal, lambda lang: tr("nominal", lang))
        self._legend(fig, real, lambda lang: tr("real_2020", lang))
        self._overlays(fig, "value_added")
        return fig

    def _clusters_figure(self) -> figure:
        fig = make_figure()
        renderers = fig.varea_stack(
            stackers=list(CLUSTER_COLUMNS),
            x="year",
            color=list(CLUSTER_COLOURS),
            source=self.sources["current"],
        )
        legend = Legend(
            label_text_font_size="10px",
            spacing=0,
            padding=2,
            margin=2,
            glyph_height=12,
            glyph_width=12,
        )
        fig.add_layout(legend, "right")
        for cluster, renderer in reversed(list(zip(CLUSTERS, renderers, strict=True))):
            item = LegendItem(label=fixed_value(cluster), renderers=[renderer])
            legend.items.append(item)
            self.legend_items.append((item, lambda lang, c=cluster: cluster_label(c, lang)))
        return fig

    def _binding_figure(self) -> figure:
        fig = make_figure(y_range=(-0.6, len(BINDING_LABELS) - 0.4))
        fig.rect(
            "year",
            "binding_code",
            width=0.85,
            height=0.7,
            source=self.sources["current"],
            fill_color="binding_colour",
            line_color=None,
        )
        fig.yaxis.ticker = FixedTicker(ticks=list(range(len(BINDING_LABELS))))
        fig.yaxis.formatter = NumeralTickFormatter(format="0")
        fig.height = 160
        return fig

    def _pair_figure(self, level: str, cap: str) -> figure:
        fig = make_figure()
        used = fig.line(
            "year", level, source=self.sources["current"], color=CURRENT_COLOUR, line_width=3
        )
        limit = fig.line(
            "year",
            cap,
            source=self.sources["current"],
            color="#c62828",
            line_width=2,
            line_dash="dashdot",
        )
        self._legend(fig, used, lambda lang: column_label(level, lang))
        self._legend(fig, limit, lambda lang: column_label(cap, lang))
        self._overlays(fig, level)
        return fig

    def _innovation_figure(self) -> figure:
        fig = make_figure()
        fig.yaxis.formatter = NumeralTickFormatter(format="0.00")
        rd = fig.line(
            "year",
            "rd_intensity",
            source=self.sources["current"],
            color=CURRENT_COLOUR,
            line_width=3,
        )
        fig.extra_y_ranges = {"patents": Range1d(0, 1)}
        patents = fig.line(
            "year",
            "effective_patents",
            source=self.sources["current"],
            color=SECOND_COLOUR,
            line_width=2,
            y_range_name="patents",
        )
        axis = LinearAxis(y_range_name="patents", formatter=NumeralTickFormatter(format="0,0"))
        fig.add_layout(axis, "right")
        self._legend(fig, rd, lambda lang: column_label("rd_intensity", lang))
        self._legend(fig, patents, lambda lang: tr("patents", lang))
        self._overlays(fig, "rd_intensity")
        return fig

    # ------------------------------------------------------------------ updating
    def doubling_base(self) -> float:
        """The 2020 gross output the 2035 doubling is measured from."""
        from scenarios.app_views import gross_output_base

        return gross_output_base(self.state.results)

    def _update_data(self, *events) -> None:
        names = {event.name for event in events} or {"results", "pinned", "compare"}
        with pn.io.hold():
            if "results" in names:
                data = chart_data(self.state.results)
                self.sources["current"].data = data
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
            if "pinned" in names:
                self.sources["pinned"].data = chart_data(self.state.pinned)
                for item in self.overlay_items["pinned"]:
                    item.visible = self.state.pinned is not None
            if "compare" in names:
                self.sources["compare"].data = chart_data(self.state.compare)
                for item in self.overlay_items["compare"]:
                    item.visible = self.state.compare is not None
                self._relabel()
            self._rescale()

    def _rescale(self) -> None:
        """Set each figure's y range from the runs it shows (see :func:`nice_range`)."""
        runs = [
            r for r in (self.state.results, self.state.pinned, self.state.compare) if r is not None
        ]
        current = self.state.results
        base = self.doubling_base()
        extent = {
            "gross_output": [r["gross_output"] for r in runs] + [pd.Series([base, 2 * base])],
            "value_added": [r["value_added"] for r in runs] + [current["value_added_real"]],
            "clusters": [current[list(CLUSTER_COLUMNS)].sum(axis=1), pd.Series([0.0])],
            "land": [r["industrial_land"] for r in runs] + [current["land_control_line"]],
            "energy": [r["energy_use"] for r in runs] + [current["energy_quota"]],
            "innovation": [r["rd_intensity"] for r in runs],
        }
        for name, series in extent.items():
            values = np.concatenate([np.asarray(s, dtype=float) for s in series])
            self._set_range(self.figures[name].y_range, values)
        self._set_range(
            self.figures["innovation"].extra_y_ranges["patents"], current["effective_patents"]
        )

    @staticmethod
    def _set_range(axis_range: Range1d, values) -> None:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if not values.size:
            return
        current = (axis_range.start, axis_range.end) if axis_range.end > axis_range.start else None
        start, end = nice_range(float(values.min()), float(values.max()), current)
        if (start, end) != (axis_range.start, axis_range.end):
            axis_range.update(start=start, end=end)

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
                fig.title.text = titles[name]
                fig.xaxis.axis_label = tr("year", lang)
            for item, label in self.legend_items:
                item.label = fixed_value(label(lang))
            self.figures["binding"].yaxis.major_label_overrides = {
                i: tr(name, lang) for i, name in enumerate(BINDING_LABELS)
            }
            source = self._span_labels.source
            source.data = {**source.data, "text": [tr("level_2020", lang), tr("doubling", lang)]}

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
