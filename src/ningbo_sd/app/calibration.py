"""The app's calibration section: the baseline run against the plan's 2015-2020 levels.

Which model column computes each observation (and on which price basis) is the
calibration's own definition (``calibration/observation_map.yaml`` through
:func:`ningbo_sd.calibration.observations.build_terms`); this view only shows the level rows of
``calibration/data/observations.csv`` next to the baseline run.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, FactorRange, Span, Whisker
from bokeh.plotting import figure
from panel.viewable import Viewer

from ningbo_sd.app.charts import CURRENT_COLOUR, fit_y_range, make_figure
from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import display_unit, html_text, tr
from ningbo_sd.app.views import format_value
from ningbo_sd.io import USER_ERRORS

CALIBRATION_YEARS = range(2015, 2021)
WITHIN_COLOUR, OUTSIDE_COLOUR = "#2e7d32", "#c0392b"
USE_TEXTS = {"fitted": "use_fitted", "secondary": "use_secondary", "not fitted": "use_not_fitted"}


@lru_cache(maxsize=1)
def level_terms() -> tuple:
    """The level observations of 2015-2020 the model computes (``ObservationTerm`` objects)."""
    from ningbo_sd.calibration.observations import build_terms, load_observation_map
    from ningbo_sd.plan.data import load_observations

    terms = build_terms(load_observations(), load_observation_map())
    return tuple(
        term
        for term in terms
        if term.measure == "level" and term.computable and term.year in CALIBRATION_YEARS
    )


@lru_cache(maxsize=1)
def indicator_labels() -> dict:
    """Indicator id -> {"en": label, "zh": label} from ``calibration/data/indicators.csv``."""
    from ningbo_sd.plan.data import load_indicators

    table = load_indicators()
    return {
        str(row["id"]): {"en": str(row["label_en"]), "zh": str(row["label_zh"])}
        for _, row in table.iterrows()
    }


@lru_cache(maxsize=1)
def plan_citations() -> dict:
    """Observation id -> (plan section or table, the plan's Chinese text) of each figure."""
    from ningbo_sd.plan.data import load_observations

    table = load_observations()
    return {
        str(i): (str(source), str(quote))
        for i, source, quote in zip(table["id"], table["source"], table["quote"], strict=True)
    }


def comparison_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per level observation: observed, model, error and whether within tolerance.

    Parameters
    ----------
    results : pandas.DataFrame
        A run's headline table (the baseline).

    Returns
    -------
    pandas.DataFrame
        Columns ``id, indicator, year, observed, model, error, error_pct, tolerance,
        tolerance_pct, within, unit, status`` (``fitted``, ``secondary`` or ``not fitted``,
        see :class:`ningbo_sd.calibration.observations.ObservationTerm`), ``source`` (the plan's
        section or table) and ``quote`` (the plan's Chinese text).
    """
    rows = []
    for term in level_terms():
        model = float(results.loc[term.year, term.column]) * term.scale
        error = model - term.value
        scale = abs(term.value) if term.value else 1.0
        source, quote = plan_citations()[term.id]
        rows.append(
            {
                "id": term.id,
                "indicator": term.indicator,
                "year": int(term.year),
                "observed": term.value,
                "model": model,
                "error": error,
                "error_pct": 100 * error / scale,
                "tolerance": term.tolerance,
                "tolerance_pct": 100 * term.tolerance / scale,
                "within": bool(abs(error) <= term.tolerance),
                "unit": term.unit,
                "status": term.status,
                "source": source,
                "quote": quote,
            }
        )
    return pd.DataFrame(rows)


def row_label(indicator: str, year: int, language: str) -> str:
    """Axis label of one observation: the indicator's name and the year."""
    labels = indicator_labels().get(indicator, {})
    return f"{labels.get(language) or labels.get('en') or indicator} {year}"


class CalibrationView(Viewer):
    """Relative error of the baseline run at each 2015-2020 level figure, and the series."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        from ningbo_sd.scenarios.run import run_scenario

        self.intro = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.message = pn.pane.Alert("", alert_type="warning", visible=False)
        try:
            self.baseline = run_scenario("baseline", calibrated=self.state.calibrated)
            self.table_data = comparison_table(self.baseline)
        except USER_ERRORS as exc:
            self.baseline, self.table_data = None, pd.DataFrame()
            self.message.object = str(exc).splitlines()[0]
            self.message.visible = True
        self.dots = ColumnDataSource(
            {"label": [], "error": [], "low": [], "high": [], "colour": []}
        )
        self.overview = self._overview_figure()
        self.indicator = pn.widgets.Select(width=320)
        self.indicator.param.watch(self._series_changed, "value")
        self.series_model = ColumnDataSource({"year": [], "value": []})
        self.series_data = ColumnDataSource({"year": [], "value": [], "low": [], "high": []})
        self.series = self._series_figure()
        self.table = pn.pane.HTML("", sizing_mode="stretch_width")
        self.state.settings.param.watch(self._relabel, ["language"])
        self._relabel()

    def _overview_figure(self) -> figure:
        height = 60 + 18 * max(len(self.table_data), 1)
        fig = figure(
            y_range=FactorRange(),
            height=height,
            sizing_mode="stretch_width",
            toolbar_location=None,
            tools="hover",
            tooltips=[("", "@label"), ("error %", "@error{0.0}")],
        )
        fig.add_layout(
            Whisker(source=self.dots, base="label", lower="low", upper="high", dimension="width")
        )
        fig.scatter("error", "label", source=self.dots, size=8, color="colour")
        fig.add_layout(Span(location=0, dimension="height", line_color="#888888"))
        fig.min_border_left = 220
        return fig

    def _series_figure(self) -> figure:
        fig = make_figure(title="")
        fig.x_range.start, fig.x_range.end = 2014.5, 2025.5
        fig.line("year", "value", source=self.series_model, color=CURRENT_COLOUR, line_width=3)
        fig.add_layout(Whisker(source=self.series_data, base="year", lower="low", upper="high"))
        fig.scatter("year", "value", source=self.series_data, size=9, color="#c0392b")
        return fig

    def _series_changed(self, *events) -> None:
        indicator = self.indicator.value
        data = self.table_data
        if self.baseline is None or not indicator or data.empty:
            return
        column = next(t.column for t in level_terms() if t.indicator == indicator)
        scale = next(t.scale for t in level_terms() if t.indicator == indicator)
        years = [y for y in self.baseline.index if y <= 2025]
        self.series_model.data = {
            "year": [float(y) for y in years],
            "value": [float(self.baseline.loc[y, column]) * scale for y in years],
        }
        rows = data[data["indicator"] == indicator]
        self.series_data.data = {
            "year": rows["year"].astype(float).tolist(),
            "value": rows["observed"].tolist(),
            "low": (rows["observed"] - rows["tolerance"]).tolist(),
            "high": (rows["observed"] + rows["tolerance"]).tolist(),
        }
        fit_y_range(
            self.series.y_range,
            self.series_model.data["value"],
            self.series_data.data["low"],
            self.series_data.data["high"],
            keep=False,  # another indicator: its own scale
        )
        self.series.title.text = row_label(indicator, "", self.state.language).strip()

    def _relabel(self, *events) -> None:
        lang = self.state.language
        self.intro.object = tr("calibration_intro", lang)
        data = self.table_data
        if data.empty:
            return
        labels = [
            row_label(i, y, lang) for i, y in zip(data["indicator"], data["year"], strict=True)
        ]
        self.overview.y_range.factors = list(dict.fromkeys(reversed(labels)))
        self.dots.data = {
            "label": labels,
            "error": data["error_pct"].tolist(),
            "low": (data["error_pct"] - data["tolerance_pct"]).tolist(),
            "high": (data["error_pct"] + data["tolerance_pct"]).tolist(),
            "colour": [WITHIN_COLOUR if w else OUTSIDE_COLOUR for w in data["within"]],
        }
        self.overview.title.text = f"{tr('model', lang)} − {tr('observed', lang)} (%)"
        options = {row_label(i, "", lang).strip(): i for i in dict.fromkeys(data["indicator"])}
        value = self.indicator.value if self.indicator.value in options.values() else None
        self.indicator.options = options
        self.indicator.value = value or next(iter(options.values()))
        self.indicator.name = tr("mc_indicator", lang)
        self._series_changed()
        self.table.object = self._table_html(lang)

    def _table_html(self, lang: str) -> str:
        head = ["col_target", "col_year", "col_observed", "col_model", "col_error"]
        head += ["col_tolerance", "col_unit", "col_within", "col_source", "col_use"]
        cells = "".join(f"<th>{html_text(tr(k, lang))}</th>" for k in head)
        rows = []
        for _, row in self.table_data.iterrows():
            colour = "#d8f0d8" if row["within"] else "#f8d7d4"
            values = [
                html_text(row_label(row["indicator"], "", lang).strip()),
                str(row["year"]),
                html_text(format_value(row["observed"])),
                html_text(format_value(row["model"])),
                f"{row['error_pct']:+.1f}%",
                html_text(format_value(row["tolerance"])),
                html_text(display_unit(row["unit"], lang)),
                tr("yes" if row["within"] else "no", lang),
                f'<span title="{html_text(row["quote"])}">{html_text(row["source"])}</span>',
                html_text(tr(USE_TEXTS[row["status"]], lang)),
            ]
            tds = "".join(f"<td>{v}</td>" for v in values)
            rows.append(f'<tr style="background:{colour}">{tds}</tr>')
        return (
            '<table class="scorecard" style="font-size:12px;border-collapse:collapse;width:100%">'
            f"<tr>{cells}</tr>{''.join(rows)}</table>"
        )

    def __panel__(self):
        return pn.Column(
            self.intro,
            self.message,
            pn.pane.Bokeh(self.overview, sizing_mode="stretch_width"),
            self.indicator,
            pn.pane.Bokeh(self.series, sizing_mode="stretch_width"),
            self.table,
            sizing_mode="stretch_width",
        )
