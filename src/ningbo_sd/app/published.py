"""Published figures on the result charts: markers with their source and confidence grade.

The figures are the published actuals (``calibration/data/actuals.csv``) that the model
computes: the level figures that :func:`ningbo_sd.calibration.observations.actual_terms`
pairs with a headline column and fits (primary readings of a scope the column stands for).
They do not change with the levers, so they are read once per process
(:func:`published_points`); each session draws them from one small ``ColumnDataSource``
per charted column, filled when the session is built and never sent again: a slider move
costs the markers nothing. Only the y ranges take them into account (see
:meth:`ningbo_sd.app.charts.ResultCharts._rescale`).

The hover text is plain text: Bokeh escapes each ``@field`` of a ``(label, value)``
tooltip (no ``{safe}`` format is used), so a source title cannot inject HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from bokeh.models import ColumnDataSource, GlyphRenderer, HoverTool, Scatter
from bokeh.plotting import figure

from ningbo_sd.app.text import display_unit, tr
from ningbo_sd.app.views import format_value

PUBLISHED_COLOUR = "#111111"
PUBLISHED_FILL = "#ffd54f"
#: What each confidence grade of ``actuals.csv`` means (``ningbo_sd.plan.actuals.CONFIDENCE``).
CONFIDENCE_TEXTS: Mapping[str, str] = MappingProxyType(
    {"A": "confidence_a", "B": "confidence_b", "C": "confidence_c"}
)
SOURCE_COLUMNS: tuple[str, ...] = ("year", "value", "text", "source", "confidence", "grade")


@dataclass(frozen=True)
class PublishedPoint:
    """One published figure the model computes, in the headline column's unit.

    Attributes
    ----------
    id : str
        The row id in ``actuals.csv``.
    column : str
        The headline column it is compared with.
    year : int
    value : float
        The published figure divided by the term's scale (the column's unit).
    unit : str
        The published figure's unit.
    source : str
        ``publisher, date: title``.
    confidence : str
        ``A``, ``B`` or ``C`` (see :data:`CONFIDENCE_TEXTS`).
    """

    id: str
    column: str
    year: int
    value: float
    unit: str
    source: str
    confidence: str


@lru_cache(maxsize=1)
def published_points() -> tuple[PublishedPoint, ...]:
    """The published level figures the model computes and fits, once per process.

    Returns
    -------
    tuple of PublishedPoint
        In the order of ``actuals.csv``.
    """
    from ningbo_sd.calibration.observations import actual_terms
    from ningbo_sd.plan.actuals import load_actuals

    actuals = load_actuals()
    rows = actuals.set_index("id")
    points = []
    for term in actual_terms(actuals):
        if term.column is None or term.status != "fitted" or term.measure != "level":
            continue
        row = rows.loc[term.id]
        points.append(
            PublishedPoint(
                id=term.id,
                column=term.column,
                year=int(term.year),
                value=float(term.value) / term.scale,
                unit=str(row["unit"]),
                source=f"{row['publisher']}, {row['published']}: {row['title']}",
                confidence=str(row["confidence"]),
            )
        )
    return tuple(points)


def points_of(column: str) -> tuple[PublishedPoint, ...]:
    """The published figures of one headline column, by year."""
    return tuple(sorted((p for p in published_points() if p.column == column), key=_year))


def _year(point: PublishedPoint) -> int:
    return point.year


def confidence_text(grade: str, language: str) -> str:
    """A confidence grade and what it means, e.g. ``B: government report or release``."""
    key = CONFIDENCE_TEXTS.get(grade)
    return f"{grade}: {tr(key, language)}" if key else grade


@lru_cache(maxsize=64)
def _point_columns(column: str, language: str) -> Mapping[str, tuple]:
    points = points_of(column)
    return MappingProxyType(
        {
            "year": tuple(float(p.year) for p in points),
            "value": tuple(p.value for p in points),
            "text": tuple(
                f"{format_value(p.value)} {display_unit(p.unit, language)}" for p in points
            ),
            "source": tuple(p.source for p in points),
            "confidence": tuple(confidence_text(p.confidence, language) for p in points),
            "grade": tuple(p.confidence for p in points),
        }
    )


def point_data(column: str, language: str) -> dict:
    """``ColumnDataSource`` data of one column's published figures (new plain lists).

    Columns: ``year``, ``value`` (where the marker is drawn), ``text`` (the value as
    printed, with its unit), ``source``, ``confidence`` (the grade and what it means in
    ``language``) and ``grade`` (the letter). Computed once per process and language;
    each call gives its own lists, for one session's source.
    """
    return {name: list(values) for name, values in _point_columns(column, language).items()}


def tooltips(language: str) -> list[tuple[str, str]]:
    """The markers' hover text: year and value, source, confidence grade (escaped by Bokeh)."""
    return [
        (tr("published", language), "@year{0}: @text"),
        (tr("col_source_published", language), "@source"),
        (tr("col_confidence", language), "@confidence"),
    ]


def line_renderer(fig: figure, column: str) -> GlyphRenderer | None:
    """The renderer of a figure that draws ``column`` as its ``y`` (its axis is the markers')."""
    for renderer in fig.renderers:
        y = getattr(getattr(renderer, "glyph", None), "y", None)
        if isinstance(renderer, GlyphRenderer) and getattr(y, "field", y) == column:
            return renderer
    return None


class PublishedMarkers:
    """The published figures drawn on a session's figures, one source per charted column.

    Parameters
    ----------
    figures : mapping of str to bokeh.plotting.figure
        The session's figures by name.
    columns : mapping of str to tuple of str
        The columns each figure draws as lines; a column with published figures gets
        markers on the axis its line uses.
    language : str
        The hover text's language (:meth:`relabel` changes it).
    """

    def __init__(
        self, figures: Mapping[str, figure], columns: Mapping[str, tuple[str, ...]], language: str
    ) -> None:
        self.sources: dict[str, ColumnDataSource] = {}
        self.figure_of: dict[str, str] = {}  # column -> figure name
        self.axis_of: dict[str, str] = {}  # column -> y range name
        self.hovers: list[HoverTool] = []
        self._values: dict[tuple[str, str], list[float]] = {}  # (figure, y range) -> values
        for name, fig in figures.items():
            for column in columns.get(name, ()):
                line = line_renderer(fig, column)
                if line is None or not points_of(column):
                    continue
                source = ColumnDataSource(point_data(column, language), name=f"published-{column}")
                glyph = Scatter(
                    x="year",
                    y="value",
                    marker="diamond",
                    size=12,
                    fill_color=PUBLISHED_FILL,
                    line_color=PUBLISHED_COLOUR,
                    line_width=1.5,
                )
                renderer = fig.add_glyph(source, glyph, y_range_name=line.y_range_name)
                renderer.update(selection_glyph=None, nonselection_glyph=None, muted_glyph=None)
                hover = HoverTool(renderers=[renderer], tooltips=tooltips(language))
                fig.add_tools(hover)
                self.hovers.append(hover)
                self.sources[column] = source
                self.figure_of[column] = name
                self.axis_of[column] = line.y_range_name
                key = (name, line.y_range_name)
                self._values[key] = [*self._values.get(key, []), *source.data["value"]]

    def figures(self) -> set[str]:
        """Names of the figures that show published figures."""
        return set(self.figure_of.values())

    def values(self, name: str, axis: str = "default") -> list[float]:
        """The published values a figure draws against one of its y ranges (set once)."""
        return self._values.get((name, axis), [])

    def relabel(self, language: str) -> None:
        """Hover labels, units and confidence texts in ``language`` (on a language switch)."""
        for hover in self.hovers:
            hover.tooltips = tooltips(language)
        for column, source in self.sources.items():
            data = point_data(column, language)
            if any(list(source.data[name]) != data[name] for name in data):
                source.data = data
