"""The app's plan review 2021-2025: each 2025 target, the model now and what was published.

Below it, the model's track record (:mod:`ningbo_sd.app.track_record`): its errors on the
published figures it was not fitted to, by indicator.

One row per 2025 target of the plan scorecard (``scenarios/registry/targets.yaml``; the
2035 doubling is not a 2025 target): the target, the model's value for the current
settings (the session's live scorecard, :attr:`ningbo_sd.app.state.AppState.scorecard`),
what the model says about it, the published outcome where one exists, whether it was met
in fact, and the figure's source and confidence grade. The published part is
:func:`ningbo_sd.scenarios.scorecard.with_published` (``ningbo-sd scorecard --actuals``):
it does not change with the levers, so it is computed once per set of targets and goals
(:func:`published_columns`), and a slider move only joins it to the new scorecard, and only
while the review is on screen.

Every text in the table is escaped: source titles come from the data file and are
untrusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from ningbo_sd.app.published import confidence_text
from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import display_unit, html_text, tr
from ningbo_sd.app.track_record import track_record, track_record_counts, track_record_html
from ningbo_sd.app.views import MET_COLOURS, format_value, met_state

REVIEW_YEAR = 2025
PUBLISHED_COLUMNS: tuple[str, ...] = (
    "published",
    "met_in_fact",
    "published_source",
    "published_confidence",
)
MET_WORDS: Mapping[bool | None, str] = MappingProxyType(
    {True: "met_yes", False: "met_no", None: "met_na"}
)
REVIEW_CSS = (
    ".review{border-collapse:collapse;font-size:12px;width:100%}"
    ".review td,.review th{padding:3px 6px;border-bottom:1px solid #ddd;text-align:left;"
    "vertical-align:top}"
    ".review td.number{text-align:right;white-space:nowrap}"
    ".review tr.has-published{font-weight:600}"
    ".review td.source{font-weight:normal;max-width:420px}"
    + "".join(
        f'.review td[data-met="{word}"]{{background:{MET_COLOURS[met]}}}'
        for met, word in MET_WORDS.items()
    )
)
_PUBLISHED: dict[tuple, pd.DataFrame] = {}  # (id, op, goal) of a card's rows -> its columns
_PUBLISHED_KEEP = 16


@lru_cache(maxsize=1)
def target_years() -> Mapping[str, int]:
    """Target id -> the year it is set for (``calibration/data/targets.csv``)."""
    from ningbo_sd.plan.data import load_targets

    targets = load_targets()
    return MappingProxyType(
        {str(i): int(y) for i, y in zip(targets["id"], targets["year"], strict=True)}
    )


def published_columns(card: pd.DataFrame) -> pd.DataFrame:
    """``with_published``'s columns for a scorecard's targets, indexed by target id.

    The published outcome and whether it meets the goal depend on the targets and their
    goals, not on the run, so the result is kept per (id, operator, goal) of the rows: a
    new run of the same scenario reuses it.

    Parameters
    ----------
    card : pandas.DataFrame
        A scorecard (``ningbo_sd.scenarios.scorecard.scorecard``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PUBLISHED_COLUMNS`, one row per target of ``card``.
    """
    from ningbo_sd.scenarios.scorecard import with_published

    key = tuple(
        (str(i), str(op), None if pd.isna(goal) else float(goal))
        for i, op, goal in zip(card["id"], card["op"], card["target"], strict=True)
    )
    columns = _PUBLISHED.get(key)
    if columns is None:
        columns = with_published(card).set_index("id")[list(PUBLISHED_COLUMNS)]
        if len(_PUBLISHED) >= _PUBLISHED_KEEP:
            _PUBLISHED.clear()
        _PUBLISHED[key] = columns
    return columns


def review_table(card: pd.DataFrame | None) -> pd.DataFrame:
    """The 2025 targets of a scorecard with their published outcomes.

    Parameters
    ----------
    card : pandas.DataFrame or None
        The live scorecard of the current settings.

    Returns
    -------
    pandas.DataFrame
        The scorecard's rows for targets set for :data:`REVIEW_YEAR` (in its order), with
        ``published``, ``met_in_fact`` (nullable boolean), ``published_source`` and
        ``published_confidence`` added; ``met`` is what the model says. Empty without a
        scorecard.
    """
    if card is None or card.empty:
        return pd.DataFrame(columns=["id", "met", "simulated", *PUBLISHED_COLUMNS])
    years = target_years()
    rows = card[[years.get(str(i)) == REVIEW_YEAR for i in card["id"]]]
    return rows.join(published_columns(card), on="id")


def review_counts(table: pd.DataFrame) -> dict[str, int]:
    """Targets, those with a published outcome, met in fact, and where the model agrees."""
    published = table[table["published"].notna()] if not table.empty else table
    met = [met_state(m) for m in published.get("met", [])]
    fact = [met_state(m) for m in published.get("met_in_fact", [])]
    return {
        "targets": len(table),
        "published": len(published),
        "met": sum(f is True for f in fact),
        "agree": sum(m is not None and m == f for m, f in zip(met, fact, strict=True)),
    }


def review_cells(table: pd.DataFrame, language: str) -> tuple[list[str], list[dict]]:
    """The review's header and rows as plain text (not HTML), ready for a table.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`review_table`.
    language : {"en", "zh"}

    Returns
    -------
    header : list of str
    rows : list of dict
        Per target: ``id``, ``reading`` (the label's tooltip), ``said`` and ``fact``
        (``"met_yes"``, ``"met_no"`` or ``"met_na"``), ``published`` (bool), ``grade``
        (confidence letter, or empty) and ``cells``: label, goal, model value, what the
        model said, published value, met in fact, source.
    """
    keys = ("col_target", "col_goal", "col_model_now", "col_model_said", "col_published")
    keys += ("col_met_in_fact", "col_source_published")
    header = [tr(key, language) for key in keys]
    labels = table["label_zh" if language == "zh" else "label_en"] if not table.empty else []
    rows = []
    for row, label in zip(table.itertuples(index=False), labels, strict=True):
        said = MET_WORDS[met_state(row.met)]
        published = not pd.isna(row.published)
        fact = MET_WORDS[met_state(row.met_in_fact)] if published else "met_na"
        goal = f"{row.op or ''} {format_value(row.target)} {display_unit(row.unit or '', language)}"
        cells = [
            str(label or row.id),
            goal.strip(),
            format_value(row.simulated) or "-",
            tr(said, language),
            format_value(row.published) if published else "-",
            tr(fact, language) if published else "-",
            str(row.published_source) if published else "",
        ]
        rows.append(
            {
                "id": str(row.id),
                "reading": str(row.reading or ""),
                "said": said,
                "fact": fact,
                "published": published,
                "grade": str(row.published_confidence) if published else "",
                "cells": cells,
            }
        )
    return header, rows


def review_html(table: pd.DataFrame, language: str) -> str:
    """The review as an HTML table; every text is escaped (source titles are untrusted).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`review_table`.
    language : {"en", "zh"}

    Returns
    -------
    str
    """
    if table.empty:
        return f"<p><i>{html_text(tr('met_na', language))}</i></p>"
    header, rows = review_cells(table, language)

    def attribute(text: str) -> str:
        return html_text(text)

    lines = []
    for row in rows:
        label, goal, model, said, published, fact, source = map(html_text, row["cells"])
        if row["grade"]:
            meaning = attribute(confidence_text(row["grade"], language))
            source += f' <span title="{meaning}">[{html_text(row["grade"])}]</span>'
        cells = [
            f'<td><span title="{attribute(row["reading"])}">{label}</span></td>',
            f'<td class="number">{goal}</td>',
            f'<td class="number">{model}</td>',
            f'<td data-met="{row["said"]}">{said}</td>',
            f'<td class="number">{published}</td>',
            f'<td data-met="{row["fact"]}">{fact}</td>',
            f'<td class="source">{source}</td>',
        ]
        css = ' class="has-published"' if row["published"] else ""
        lines.append(f'<tr data-id="{attribute(row["id"])}"{css}>{"".join(cells)}</tr>')
    head = "".join(f"<th>{html_text(text)}</th>" for text in header)
    body = "".join(lines)
    return f'<style>{REVIEW_CSS}</style><table class="review"><tr>{head}</tr>{body}</table>'


class ReviewView(Viewer):
    """The plan review 2021-2025 of the current settings (a section of the app).

    It follows the live scorecard while it is shown; hidden, it only notes that it is out
    of date and catches up when shown again, so that slider moves on the results page do
    not pay for it.
    """

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.title = pn.pane.Markdown("", margin=(0, 10))
        self.intro = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self.only_published = pn.widgets.Checkbox(value=False, margin=(0, 10))
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10))
        self.table = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10))
        self.table_data = review_table(None)
        self.track_title = pn.pane.Markdown("", margin=(10, 10, 0, 10))
        self.track_intro = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self.track_summary = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10))
        self.track = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10))
        self.layout = pn.Column(
            self.title,
            self.intro,
            self.summary,
            self.only_published,
            self.table,
            self.track_title,
            self.track_intro,
            self.track_summary,
            self.track,
            sizing_mode="stretch_width",
        )
        self._stale = True
        self.only_published.param.watch(self._refresh, "value")
        self.layout.param.watch(self._shown, "visible")
        self.state.param.watch(self._changed, ["scorecard"])
        self.state.settings.param.watch(self._changed, ["language"])
        self._refresh()

    def shown_rows(self) -> pd.DataFrame:
        """The rows of :attr:`table_data` the table shows (all, or those with an outcome)."""
        data = self.table_data
        if self.only_published.value and not data.empty:
            return data[data["published"].notna()]
        return data

    def _changed(self, *events) -> None:
        if self.layout.visible:
            self._refresh()
        else:
            self._stale = True

    def _shown(self, event) -> None:
        if event.new and self._stale:
            self._refresh()

    @property
    def track_data(self):
        """The model's errors per indicator on published figures (:mod:`.track_record`)."""
        return track_record(str(self.state.calibrated))

    def _refresh(self, *events) -> None:
        lang = self.state.language
        self.table_data = review_table(self.state.scorecard)
        self._stale = False
        counts = review_counts(self.table_data)
        with pn.io.hold():
            self.title.object = f"### {tr('review_title', lang)}"
            self.intro.object = tr("review_intro", lang)
            self.only_published.name = tr("review_only_published", lang)
            self.summary.object = html_text(tr("review_summary", lang, **counts))
            self.table.object = review_html(self.shown_rows(), lang)
            self.track_title.object = f"### {tr('track_title', lang)}"
            self.track_intro.object = tr("track_intro", lang)
            self.track_summary.object = html_text(
                tr("track_summary", lang, **track_record_counts(self.track_data))
            )
            self.track.object = track_record_html(self.track_data, lang)

    def __panel__(self):
        return self.layout
