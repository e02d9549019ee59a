"""Small views of the app: the 2035 headline numbers and the plan-target scorecard."""

from __future__ import annotations

import html
import math

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from scenarios.app_state import AppState
from scenarios.app_text import display_unit, tr

MET_COLOURS = {True: "#d8f0d8", False: "#f8d7d4", None: "#eeeeee"}
DOUBLING_YEAR = 2035
BASE_YEAR = 2020


def gross_output_base(results: pd.DataFrame | None) -> float:
    """2020 gross output the doubling is measured from: the run's own 2020 value.

    The scorecard (``scenarios/targets.yaml``, ``gross_output_2035``) measures the doubling
    on the simulated 2020 level, so the line, the ratio and the scorecard agree.
    """
    if results is None or BASE_YEAR not in results.index:
        return math.nan
    return float(results.loc[BASE_YEAR, "gross_output"])


def format_value(value) -> str:
    """A number with sensible digits for a table cell (blank for missing)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value)) if value is not None else ""
    if math.isnan(number):
        return ""
    magnitude = abs(number)
    if magnitude >= 1000:
        return f"{number:,.0f}"
    if magnitude >= 100:
        return f"{number:.1f}"
    return f"{number:.2f}"


def met_state(value) -> bool | None:
    """True, False or None (not scored) from a scorecard's ``met`` cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NA:
        return None
    return bool(value)


class HeadlineNumbers(Viewer):
    """Big numbers: 2035 gross output and its ratio to the 2020 level."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.output = pn.indicators.Number(
            value=0,
            format="{value:,.0f}",
            font_size="34pt",
            title_size="12pt",
            default_color="#1f5fa8",
            css_classes=["big-output"],
        )
        self.ratio = pn.indicators.Number(
            value=0,
            format="{value:.2f}×",
            font_size="34pt",
            title_size="12pt",
            colors=[(2.0, "#c0392b"), (1e12, "#2e7d32")],
            css_classes=["big-ratio"],
        )
        self.state.param.watch(self._update, ["results"])
        self.state.settings.param.watch(self._relabel, ["language"])
        self._update()
        self._relabel()

    def values(self) -> tuple[float, float]:
        """(2035 gross output, ratio to the 2020 base) of the current run."""
        results = self.state.results
        output = float(results.loc[DOUBLING_YEAR, "gross_output"])
        return output, output / gross_output_base(results)

    def _update(self, *events) -> None:
        output, ratio = self.values()
        self.output.value = round(output, 1)
        self.ratio.value = round(ratio, 3)

    def _relabel(self, *events) -> None:
        lang = self.state.language
        # the indicator shows its ``label`` but redraws only when its value changes
        for indicator, text in (
            (self.output, f"{tr('big_output', lang)} ({tr('unit_100m', lang)})"),
            (self.ratio, tr("big_ratio", lang)),
        ):
            indicator.param.update(label=text, name=text)
            indicator.param.trigger("value")

    def __panel__(self):
        return pn.Row(self.output, self.ratio, sizing_mode="stretch_width")


def scorecard_html(
    card: pd.DataFrame, language: str, probabilities: pd.Series | None = None
) -> str:
    """The scorecard as an HTML table, one coloured row per target.

    Parameters
    ----------
    card : pandas.DataFrame
        ``scenarios.scorecard.scorecard`` output.
    language : {"en", "zh"}
    probabilities : pandas.Series, optional
        P(met) by target id (Monte Carlo), shown as an extra column.

    Returns
    -------
    str
    """
    if card is None or card.empty:
        return f"<p><i>{html.escape(tr('met_na', language))}</i></p>"
    label_column = "label_zh" if language == "zh" else "label_en"
    head = [tr(k, language) for k in ("col_target", "col_simulated", "col_goal", "col_unit")]
    head.append(tr("col_met", language))
    if probabilities is not None:
        head.append(tr("col_probability", language))
    rows = []
    labels = card[label_column] if label_column in card else card["id"]
    probability_of = probabilities if probabilities is not None else {}
    for row, label in zip(card.itertuples(index=False), labels, strict=True):
        met = met_state(getattr(row, "met", None))
        word = {True: "met_yes", False: "met_no", None: "met_na"}[met]
        reading = html.escape(str(getattr(row, "reading", "") or ""), quote=True)
        cells = [
            f'<span title="{reading}">{html.escape(str(label or row.id))}</span>',
            format_value(row.simulated),
            html.escape(str(row.op or "")) + " " + format_value(row.target),
            html.escape(display_unit(row.unit or "", language)),
            html.escape(tr(word, language)),
        ]
        if probabilities is not None:
            p = probability_of.get(row.id)
            cells.append("" if p is None or pd.isna(p) else f"{100 * float(p):.0f}%")
        tds = "".join(f"<td>{c}</td>" for c in cells)
        rows.append(f'<tr data-met="{word}" style="background:{MET_COLOURS[met]}">{tds}</tr>')
    ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    style = (
        "<style>.scorecard{border-collapse:collapse;font-size:12px;width:100%}"
        ".scorecard td,.scorecard th{padding:3px 6px;border-bottom:1px solid #ddd;text-align:left}"
        ".scorecard td:nth-child(2),.scorecard td:nth-child(3){text-align:right}</style>"
    )
    return f'{style}<table class="scorecard"><tr>{ths}</tr>{"".join(rows)}</table>'


class ScorecardView(Viewer):
    """The plan-target scorecard of the current run, coloured met / not met."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.title = pn.pane.Markdown("", margin=(0, 10))
        self.show_all = pn.widgets.Checkbox(value=False, margin=(0, 10))
        self.show_all.param.watch(self._update, "value")
        self.table = pn.pane.HTML("", sizing_mode="stretch_width")
        self.state.param.watch(self._update, ["scorecard"])
        self.state.settings.param.watch(self._update, ["language"])
        self._update()

    def rows(self) -> pd.DataFrame:
        """The scorecard rows shown: the modelled targets, or all with ``show_all``."""
        card = self.state.scorecard
        if card is None or self.show_all.value or "modelled" not in card:
            return card
        return card[card["modelled"].astype(bool)]

    def _update(self, *events) -> None:
        lang = self.state.language
        self.title.object = f"### {tr('scorecard', lang)}"
        self.show_all.name = tr("show_all_targets", lang)
        self.table.object = scorecard_html(self.rows(), lang)

    def __panel__(self):
        return pn.Column(self.title, self.show_all, self.table, sizing_mode="stretch_width")
