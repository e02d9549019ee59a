"""The model's track record in the app: its errors on published figures it was not fitted to.

The per-indicator summary of ``ningbo-sd check``'s out-of-sample section
(:func:`ningbo_sd.validation.evidence.indicator_errors`): for the baseline of the session's
calibration, how many published figures of each indicator the model computes out of sample,
the mean absolute percentage error on their levels, the mean absolute error of their growth
rates, and the share inside the predictive 90% band (model runs and model discrepancy). The
same samples and seed as ``ningbo-sd check``, so the two show the same numbers.

It does not depend on the levers, so it is computed once per calibration and process (under
a second with a warm engine), when the review section is first shown. Labels come from data
files and every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from ningbo_sd.app.text import html_text, tr

COLUMNS: tuple[str, ...] = ("col_indicator", "col_figures", "col_mape", "col_growth_error")
COLUMNS += ("col_in_predictive_band",)
TRACK_CSS = (
    ".track{border-collapse:collapse;font-size:12px}"
    ".track td,.track th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}"
    ".track td.number,.track th.number{text-align:right;white-space:nowrap}"
)


@lru_cache(maxsize=4)
def track_record(calibrated: str) -> pd.DataFrame:
    """Errors per indicator of the baseline run from ``calibrated`` (see the module doc).

    Parameters
    ----------
    calibrated : str
        The calibration file the session runs from.

    Returns
    -------
    pandas.DataFrame
        :func:`~ningbo_sd.validation.evidence.indicator_errors`' table, smallest MAPE first.
    """
    from ningbo_sd.validation.evidence import indicator_errors, out_of_sample

    return indicator_errors(out_of_sample(calibrated=Path(calibrated)).table)


@lru_cache(maxsize=1)
def indicator_labels() -> Mapping[str, tuple[str, str]]:
    """Indicator id -> (English, Chinese) label.

    From ``calibration/data/indicators.csv``; an indicator only the published figures use
    (``calibration/actuals_map.yaml``) takes the label of the headline column it maps to.
    """
    from ningbo_sd.calibration.observations import ACTUALS_MAP, load_observation_map
    from ningbo_sd.model.outputs import output_columns
    from ningbo_sd.plan.data import load_indicators

    indicators = load_indicators()
    labels = {
        str(i): (str(en), str(zh))
        for i, en, zh in zip(
            indicators["id"], indicators["label_en"], indicators["label_zh"], strict=True
        )
    }
    columns = {column.name: (column.label_en, column.label_zh) for column in output_columns()}
    for indicator, entry in load_observation_map(ACTUALS_MAP).indicators.items():
        column = entry.get("column")
        if isinstance(column, dict):
            column = next(iter(column.values()), None)
        if indicator not in labels and column in columns:
            labels[indicator] = columns[column]
    return MappingProxyType(labels)


def _percent(value: float, digits: int = 1) -> str:
    return "-" if pd.isna(value) else f"{value:.{digits}f}%"


def track_record_cells(errors: pd.DataFrame, language: str) -> tuple[list[str], list[dict]]:
    """The track record's header and rows as plain text (not HTML).

    Parameters
    ----------
    errors : pandas.DataFrame
        From :func:`track_record`.
    language : {"en", "zh"}

    Returns
    -------
    header : list of str
    rows : list of dict
        Per indicator: ``indicator`` (its id) and ``cells``: label, figures (levels),
        MAPE on levels, growth-rate error, share inside the predictive 90% band.
    """
    labels = indicator_labels()
    header = [tr(key, language) for key in COLUMNS]
    rows = []
    for row in errors.itertuples(index=False):
        english, chinese = labels.get(row.indicator, (row.indicator, row.indicator))
        growth = "-" if pd.isna(row.growth_error_pp) else f"{row.growth_error_pp:.1f} pp"
        share = "-" if pd.isna(row.cover90p) else f"{100 * row.cover90p:.0f}%"
        cells = [
            chinese if language == "zh" else english,
            f"{row.figures} ({row.levels})",
            _percent(row.mape_pct),
            growth,
            share,
        ]
        rows.append({"indicator": str(row.indicator), "cells": cells})
    return header, rows


def track_record_html(errors: pd.DataFrame, language: str) -> str:
    """The track record as an HTML table (styled like the review); every text is escaped."""
    header, rows = track_record_cells(errors, language)
    first, *rest = map(html_text, header)
    head = f"<th>{first}</th>" + "".join(f'<th class="number">{text}</th>' for text in rest)
    lines = []
    for row in rows:
        label, *numbers = map(html_text, row["cells"])
        cells = f"<td>{label}</td>" + "".join(f'<td class="number">{n}</td>' for n in numbers)
        lines.append(f'<tr data-indicator="{html_text(row["indicator"])}">{cells}</tr>')
    table = f'<table class="track"><tr>{head}</tr>{"".join(lines)}</table>'
    return f"<style>{TRACK_CSS}</style>{table}"


def track_record_counts(errors: pd.DataFrame) -> Mapping[str, object]:
    """Figures compared, their levels, and the level-weighted MAPE, for the summary line."""
    levels = int(errors["levels"].sum()) if not errors.empty else 0
    with_levels = errors[errors["levels"] > 0]
    weighted = (with_levels["mape_pct"] * with_levels["levels"]).sum()
    return MappingProxyType(
        {
            "figures": int(errors["figures"].sum()) if not errors.empty else 0,
            "levels": levels,
            "mape": f"{weighted / levels:.1f}" if levels else "-",
        }
    )
