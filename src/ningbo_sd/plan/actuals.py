"""Published outcomes after the plan was written: ``calibration/data/actuals.csv``.

Figures for Ningbo's industry that the plan does not print: the 2016-2019 intermediate
years and the years after 2020, from statistical bulletins, government work reports and
official releases, each with its publisher, date, title, the quoted phrase and a confidence
grade. They validate the model; the default calibration never fits them
(``ningbo-sd calibrate --through YEAR`` may). ``calibration/data/ACTUALS-NOTES.md`` logs
what was searched for, what was not found and how conflicts were decided.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from ningbo_sd.plan.csvfile import read_records as read_csv_records
from ningbo_sd.plan.data import BASES, DATA_DIR, MEASURES, DataFileError, Problem, parse_tags

ACTUALS_PATH = DATA_DIR / "actuals.csv"
ACTUALS_COLUMNS: tuple[str, ...] = (
    "id",
    "indicator",
    "measure",
    "year_start",
    "year",
    "value",
    "unit",
    "basis",
    "scope",
    "publisher",
    "published",
    "title",
    "url",
    "quote",
    "confidence",
    "note",
)
#: What a figure covers: above-scale industry (the model's scope), all industry, the whole
#: city (counts of firms, patents, R&D/GDP), or another stated scope (see the note).
SCOPES: tuple[str, ...] = (
    "above_scale",
    "manufacturing_above_scale",
    "all_industry",
    "city",
    "other",
)
#: A: a statistical bulletin or the statistics bureau quoted directly; B: a government work
#: report, an official outlet or a department's release; C: a secondary page, or derived.
CONFIDENCE: tuple[str, ...] = ("A", "B", "C")
YEARS = range(2010, 2031)
MAX_QUOTE = 200
_SLUG = re.compile(r"[a-z0-9_]+")
_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def _problems(row: int, line: int, record: dict[str, str]) -> list[Problem]:
    """Everything wrong with one record (empty when it is valid)."""
    found: list[Problem] = []

    def bad(column: str, message: str, allowed: str) -> None:
        found.append(Problem(row, line, column, message, allowed))

    text = {name: (record.get(name) or "").strip() for name in ACTUALS_COLUMNS}
    if not _SLUG.fullmatch(text["id"]):
        bad("id", f"{text['id']!r} is not a slug", "lower-case letters, digits and _")
    if not _SLUG.fullmatch(text["indicator"]):
        bad("indicator", f"{text['indicator']!r} is not a slug", "an indicator id (snake_case)")
    if text["measure"] not in MEASURES:
        bad("measure", f"{text['measure']!r}", ", ".join(MEASURES))
    for column in ("year", "year_start"):
        if column == "year_start" and not text[column]:
            if text["measure"] not in ("level", ""):
                bad(column, "empty", f"the base year of a {text['measure']} figure")
            continue
        if not text[column].isdigit() or int(text[column]) not in YEARS:
            bad(column, f"{text[column]!r}", f"a year {YEARS.start}-{YEARS.stop - 1}")
    if text["year_start"].isdigit() and text["year"].isdigit():
        if int(text["year_start"]) >= int(text["year"]):
            bad("year_start", f"{text['year_start']} is not before {text['year']}", "earlier")
    try:
        value = float(text["value"])
        if not math.isfinite(value):
            raise ValueError
    except ValueError:
        bad("value", f"{text['value']!r} is not a finite number", "a number, e.g. 22100 or -1.8")
    if text["basis"] not in BASES:
        bad("basis", f"{text['basis']!r}", ", ".join(BASES))
    if text["scope"] not in SCOPES:
        bad("scope", f"{text['scope']!r}", ", ".join(SCOPES))
    if text["confidence"] not in CONFIDENCE:
        bad("confidence", f"{text['confidence']!r}", "A, B or C")
    if not (_DATE.fullmatch(text["published"]) or text["published"] == "undated"):
        bad("published", f"{text['published']!r}", "YYYY, YYYY-MM, YYYY-MM-DD or undated")
    for column in ("unit", "publisher", "title", "quote"):
        if not text[column]:
            bad(column, "empty", "the text of the source")
    if len(text["quote"]) > MAX_QUOTE:
        bad("quote", f"{len(text['quote'])} characters", f"at most {MAX_QUOTE}: a short phrase")
    if text["url"] and not text["url"].startswith(("http://", "https://")):
        bad("url", f"{text['url'][:40]!r}", "empty, or an http(s) address")
    return found


def load_actuals(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the published actuals.

    Parameters
    ----------
    path : str or Path, optional
        The CSV (default: the bundled ``calibration/data/actuals.csv``).

    Returns
    -------
    pandas.DataFrame
        One row per figure, the file's columns with ``year_start`` as a nullable integer,
        ``value`` as float, plus ``tags`` (the note's ``[tag]`` markers) and ``primary``
        (False for ``[alternative]`` and ``[duplicate]`` rows).

    Raises
    ------
    DataFileError
        Naming the file, the data row, the CSV line, the column, the value and what is
        allowed, for every problem at once (also a repeated id).
    """
    path = Path(path) if path is not None else ACTUALS_PATH
    records = read_csv_records(path, ACTUALS_COLUMNS)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for row, line, record in records:
        problems += _problems(row, line, record)
        identifier = record["id"].strip()
        if identifier in seen:
            problems.append(
                Problem(row, line, "id", f"{identifier!r} repeats data row {seen[identifier]}",
                        "a unique id")
            )  # fmt: skip
        seen.setdefault(identifier, row)
    if problems:
        raise DataFileError(path, problems)
    frame = pd.DataFrame([record for _, _, record in records], columns=list(ACTUALS_COLUMNS))
    frame = frame.apply(lambda column: column.str.strip())
    frame["year"] = frame["year"].astype(int)
    frame["year_start"] = pd.array(
        [int(v) if v else pd.NA for v in frame["year_start"]], dtype="Int64"
    )
    frame["value"] = frame["value"].astype(float)
    frame["tags"] = [parse_tags(note) for note in frame["note"]]
    frame["primary"] = [not {"alternative", "duplicate"} & set(tags) for tags in frame["tags"]]
    return frame


def published_outcomes(targets: pd.DataFrame, actuals: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published figure that measures each target, where one was published.

    A figure measures a target when indicator, measure, years and cluster agree (the
    cluster is the ``__<cluster>`` suffix of both ids) and it is a primary reading.

    Parameters
    ----------
    targets : pandas.DataFrame
        From :func:`ningbo_sd.plan.data.load_targets` (``id``, ``indicator``, ``measure``,
        ``year_start``, ``year``, ``cluster``).
    actuals : pandas.DataFrame, optional
        From :func:`load_actuals` (default: the bundled file).

    Returns
    -------
    pandas.DataFrame
        Indexed by target id: ``published`` (the value), ``published_id``,
        ``published_source`` (publisher, date and title) and ``published_confidence``.
    """
    actuals = load_actuals() if actuals is None else actuals
    primary = actuals[actuals["primary"]]

    def key(indicator, measure, year_start, year, cluster):
        start = None if pd.isna(year_start) else int(year_start)
        return (indicator, measure, start, int(year), cluster or None)

    found = {}
    for _, row in primary.iterrows():
        cluster = row["id"].partition("__")[2] or None
        found.setdefault(
            key(row["indicator"], row["measure"], row["year_start"], row["year"], cluster), row
        )
    rows = {}
    for _, target in targets.iterrows():
        cluster = target.get("cluster")
        cluster = None if pd.isna(cluster) else cluster
        match = found.get(
            key(target["indicator"], target["measure"], target["year_start"], target["year"],
                cluster)
        )  # fmt: skip
        if match is not None:
            rows[target["id"]] = {
                "published": float(match["value"]),
                "published_id": match["id"],
                "published_source": f"{match['publisher']}, {match['published']}: {match['title']}",
                "published_confidence": match["confidence"],
            }
    columns = ["published", "published_id", "published_source", "published_confidence"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)
