"""Small views of the app: the 2035 headline numbers and the plan-target scorecard."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import pandas as pd
import panel as pn
import param
from panel.custom import JSComponent
from panel.viewable import Viewer

from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import display_unit, html_text, tr

MET_COLOURS = {True: "#d8f0d8", False: "#f8d7d4", None: "#eeeeee"}
DOUBLING_YEAR = 2035
BASE_YEAR = 2020


def gross_output_base(results: pd.DataFrame | None) -> float:
    """2020 gross output the doubling is measured from: the run's own 2020 value.

    The scorecard (``scenarios/registry/targets.yaml``, ``gross_output_2035``) measures the doubling
    on the simulated 2020 level, so the line, the ratio and the scorecard agree.
    """
    if results is None or BASE_YEAR not in results.index:
        return math.nan
    return float(results.loc[BASE_YEAR, "gross_output"])


def format_value(value) -> str:
    """A number with sensible digits for a table cell (blank for missing); plain text."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value) if value is not None else ""
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


SCORECARD_CSS = (
    ".scorecard{border-collapse:collapse;font-size:12px;width:100%}"
    ".scorecard td,.scorecard th{padding:3px 6px;border-bottom:1px solid #ddd;text-align:left}"
    ".scorecard td:nth-child(2),.scorecard td:nth-child(3){text-align:right}"
    + "".join(
        f'.scorecard tr[data-met="{word}"]{{background:{MET_COLOURS[met]}}}'
        for met, word in ((True, "met_yes"), (False, "met_no"), (None, "met_na"))
    )
)


def scorecard_cells(
    card: pd.DataFrame, language: str, probabilities: pd.Series | None = None
) -> tuple[list[str], list[dict]]:
    """The scorecard's header and rows as plain text, ready for a table.

    Parameters
    ----------
    card : pandas.DataFrame
        ``ningbo_sd.scenarios.scorecard.scorecard`` output (not empty).
    language : {"en", "zh"}
    probabilities : pandas.Series, optional
        P(met) by target id (Monte Carlo), shown as an extra column.

    Returns
    -------
    header : list of str
    rows : list of dict
        Per target: ``id``, ``met`` (``"met_yes"``, ``"met_no"`` or ``"met_na"``),
        ``reading`` (how the target reads the run: the label's tooltip) and ``cells``
        (label, simulated, goal, unit, met word[, probability]); text, not HTML.
    """
    label_column = "label_zh" if language == "zh" else "label_en"
    header = [tr(k, language) for k in ("col_target", "col_simulated", "col_goal", "col_unit")]
    header.append(tr("col_met", language))
    if probabilities is not None:
        header.append(tr("col_probability", language))
    labels = card[label_column] if label_column in card else card["id"]
    probability_of = probabilities if probabilities is not None else {}
    rows = []
    for row, label in zip(card.itertuples(index=False), labels, strict=True):
        word = {True: "met_yes", False: "met_no", None: "met_na"}[
            met_state(getattr(row, "met", None))
        ]
        cells = [
            str(label or row.id),
            format_value(row.simulated),
            f"{row.op or ''} {format_value(row.target)}",
            display_unit(row.unit or "", language),
            tr(word, language),
        ]
        if probabilities is not None:
            p = probability_of.get(row.id)
            cells.append("" if p is None or pd.isna(p) else f"{100 * float(p):.0f}%")
        reading = str(getattr(row, "reading", "") or "")
        rows.append({"id": str(row.id), "met": word, "reading": reading, "cells": cells})
    return header, rows


def scorecard_html(
    card: pd.DataFrame, language: str, probabilities: pd.Series | None = None
) -> str:
    """The scorecard as an HTML table, one coloured row per target.

    Parameters
    ----------
    card : pandas.DataFrame
        ``ningbo_sd.scenarios.scorecard.scorecard`` output.
    language : {"en", "zh"}
    probabilities : pandas.Series, optional
        P(met) by target id (Monte Carlo), shown as an extra column.

    Returns
    -------
    str
    """
    if card is None or card.empty:
        return f"<p><i>{html_text(tr('met_na', language))}</i></p>"
    header, rows = scorecard_cells(card, language, probabilities)
    lines = []
    for row in rows:
        label, *rest = (html_text(cell) for cell in row["cells"])
        reading = html_text(row["reading"])
        tds = "".join(f"<td>{c}</td>" for c in [f'<span title="{reading}">{label}</span>', *rest])
        lines.append(f'<tr data-met="{row["met"]}">{tds}</tr>')
    ths = "".join(f"<th>{html_text(h)}</th>" for h in header)
    table = f'<table class="scorecard"><tr>{ths}</tr>{"".join(lines)}</table>'
    return f"<style>{SCORECARD_CSS}</style>{table}"


LIVE_COLUMNS = (1, 4)  # scorecard columns that change with the run: simulated, met word


class ScorecardTable(JSComponent):
    """The scorecard table in the browser, updated cell by cell.

    A slider move changes a few numbers and colours of the table, not its shape. Sent
    as HTML (``pn.pane.HTML``) the table was rebuilt by the browser at every move (style,
    layout and raster of ~200 cells: ~50 ms of Chromium CPU per move, more than the
    charts; see ``bench/README.md``) and its 24 KB of text were sent each time. Here the
    rows' fixed text (``rows``: label, goal, unit, tooltip) is sent when it changes
    (language, rows shown, the scenario's targets) and a move sends only ``values``, the
    simulated number and met state of each row; the browser writes only the cells whose
    text changed.
    """

    header = param.List(default=[], item_type=str, doc="Column titles")
    rows = param.List(
        default=[], item_type=dict, doc="Per row: id, reading (tooltip), cells (fixed text)"
    )
    values = param.List(default=[], item_type=list, doc="Per row: [met state, simulated, met word]")
    empty_text = param.String(default="", doc="Shown instead of the table when no rows")

    _stylesheets: ClassVar[list[str]] = [SCORECARD_CSS + "p.empty{font-style:italic}"]

    _esm = """
    const LIVE = __LIVE__;  // columns the values fill: simulated, met word
    export function render({ model }) {
      const root = document.createElement("div");
      const empty = document.createElement("p");
      empty.className = "empty";
      const table = document.createElement("table");
      table.className = "scorecard";
      const head = table.createTHead().insertRow();
      const body = table.createTBody();
      root.append(empty, table);
      const setText = (node, text) => { if (node.textContent !== text) node.textContent = text; };
      const layout = () => {
        const header = model.header, rows = model.rows;
        empty.hidden = rows.length > 0;
        table.hidden = rows.length === 0;
        setText(empty, rows.length > 0 ? "" : model.empty_text);
        while (head.cells.length > header.length) head.deleteCell(-1);
        header.forEach((text, i) => {
          setText(head.cells[i] ?? head.appendChild(document.createElement("th")), text);
        });
        while (body.rows.length > rows.length) body.deleteRow(-1);
        rows.forEach((row, i) => {
          const tr = body.rows[i] ?? body.insertRow();
          if (tr.dataset.id !== row.id) tr.dataset.id = row.id;
          while (tr.cells.length > row.cells.length) tr.deleteCell(-1);
          row.cells.forEach((text, j) => {
            const td = tr.cells[j] ?? tr.insertCell();
            if (j > 0) { if (!LIVE.includes(j)) setText(td, text); return; }
            const label = td.firstElementChild ?? td.appendChild(document.createElement("span"));
            setText(label, text);
            if (label.title !== row.reading) label.title = row.reading;
          });
        });
        fill();
      };
      const fill = () => {
        model.values.forEach((value, i) => {
          const tr = body.rows[i];
          if (tr === undefined) return;
          const [met, ...texts] = value;
          if (tr.dataset.met !== met) tr.dataset.met = met;
          LIVE.forEach((column, k) => {
            if (tr.cells[column]) setText(tr.cells[column], texts[k]);
          });
        });
      };
      layout();
      model.on("header", layout);
      model.on("rows", layout);
      model.on("empty_text", layout);
      model.on("values", fill);
      return root;
    }
    """.replace("__LIVE__", json.dumps(list(LIVE_COLUMNS)))

    def show(self, card: pd.DataFrame | None, language: str) -> None:
        """Show ``card`` (a scorecard, or its shown rows) in ``language``."""
        if card is None or card.empty:
            self.param.update(rows=[], values=[], empty_text=tr("met_na", language))
            return
        header, rows = scorecard_cells(card, language)
        fixed = [
            {
                "id": row["id"],
                "reading": row["reading"],
                "cells": [
                    text if i not in LIVE_COLUMNS else "" for i, text in enumerate(row["cells"])
                ],
            }
            for row in rows
        ]
        values = [[row["met"], *(row["cells"][i] for i in LIVE_COLUMNS)] for row in rows]
        # one patch; whichever of rows and values the browser applies first, laying the
        # rows out fills in the values again, so the table ends the same. A move changes
        # only the values: the unchanged header and rows are left out here, where a list
        # comparison is cheap, rather than compared by param item by item (about half of
        # this method's time, which is a fifth of a lever move's)
        changed = {"values": values, "empty_text": ""}
        if header != self.header:
            changed["header"] = header
        if fixed != self.rows:
            changed["rows"] = fixed
        self.param.update(**changed)

    def shown_rows(self) -> list[dict]:
        """The rows as the browser shows them: ``rows`` with ``values`` filled in."""
        shown = []
        for row, (met, *texts) in zip(self.rows, self.values, strict=True):
            cells = list(row["cells"])
            for column, text in zip(LIVE_COLUMNS, texts, strict=True):
                cells[column] = text
            shown.append({"id": row["id"], "met": met, "reading": row["reading"], "cells": cells})
        return shown


class ScorecardView(Viewer):
    """The plan-target scorecard of the current run, coloured met / not met."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.title = pn.pane.Markdown("", margin=(0, 10))
        self.show_all = pn.widgets.Checkbox(value=False, margin=(0, 10))
        self.show_all.param.watch(self._update, "value")
        self.table = ScorecardTable(sizing_mode="stretch_width", margin=(5, 10))
        self.state.param.watch(self._update, ["scorecard"])
        self.state.settings.param.watch(self._update, ["language"])
        self._update()

    def rows(self) -> pd.DataFrame:
        """The scorecard rows shown: the modelled targets, or all with ``show_all``."""
        card = self.state.scorecard
        if card is None or self.show_all.value or "modelled" not in card:
            return card
        return card[card["modelled"].astype(bool)]

    def row(self, target_id: str) -> dict:
        """The table row (``scorecard_cells`` form) shown for ``target_id``."""
        return next(row for row in self.table.shown_rows() if row["id"] == target_id)

    def _update(self, *events) -> None:
        lang = self.state.language
        self.title.object = f"### {tr('scorecard', lang)}"
        self.show_all.name = tr("show_all_targets", lang)
        self.table.show(self.rows(), lang)

    def __panel__(self):
        return pn.Column(self.title, self.show_all, self.table, sizing_mode="stretch_width")
