"""The result charts: declared with hvplot, rendered by HoloViews once, updated in place.

Each chart is an hvplot/HoloViews object (``DataFrame.hvplot.line``, ``.area(stacked=True)``,
``.scatter``; options through ``.opts``). :func:`render_chart` renders it with
``hv.render(..., backend="bokeh")``; from then on the Bokeh figure is the chart and is
updated in place, never re-rendered:
:func:`share_source` points every rendered glyph at the session's shared
``ColumnDataSource`` of that figure (the columns keep the names HoloViews gave the
glyphs: the headline columns), so that a slider move sends one small data message per
figure and HoloViews does no work per move.

The one departure from the rendered glyphs is the stacked cluster areas: HoloViews draws
each stacked area as a polygon computed in Python (``Patch``), which would mean sending 13
polygons per move; :func:`stack_areas` replaces each with a ``VArea`` on ``Stack``
expressions of the shared source (same colours, same picture), so the browser stacks.

Rendering through HoloViews costs about 0.75 s for the seven charts, too much to do for
every session (the page-load bar is 3 s), so :func:`chart_figure` renders each chart once
per process and gives every session a copy of the rendered Bokeh figure (new models with
new ids, decoded from the serialised figure). The charts are declared on a two-row
template frame: the declared data never reach the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import holoviews as hv
import hvplot.pandas  # noqa: F401  (registers DataFrame.hvplot)
import pandas as pd
from bokeh.core.serialization import Deserializer, Serializer
from bokeh.models import (
    ColumnDataSource,
    FixedTicker,
    GlyphRenderer,
    Legend,
    NumeralTickFormatter,
    Stack,
    VArea,
)
from bokeh.plotting import figure
from bokeh.util.serialization import make_id

YEARS: tuple[int, ...] = (2015, 2035)
X_LIMITS: tuple[float, float] = (2014.5, 2035.5)
X_TICKS: tuple[int, ...] = tuple(range(2015, 2036, 5))
_RENDERED: dict[str, dict] = {}  # chart key -> its rendered figure, serialised (per process)


def template_frame(columns: Sequence[str]) -> pd.DataFrame:
    """A two-row frame (2015, 2035) with ``columns``: what the charts are declared on.

    The declared data never reaches the browser: the rendered glyphs are pointed at the
    session's shared sources (:func:`share_source`).
    """
    data = {name: [0.0, 1.0] for name in columns}
    return pd.DataFrame(data, index=pd.Index(list(YEARS), name="year")).reset_index()


def sizing(height: int) -> dict:
    """hvplot's sizing arguments: full width, fixed height (hvplot's default is 700 px wide)."""
    return {"responsive": True, "height": height}


def common_options(height: int) -> dict:
    """HoloViews options every chart shares: size, axes, no toolbar, no canvas legend."""
    return {
        "responsive": True,
        "height": height,
        "toolbar": None,
        "default_tools": [],
        "tools": [],
        "show_legend": False,
        "show_grid": True,
        "xlim": X_LIMITS,
        "xticks": list(X_TICKS),
        "yformatter": NumeralTickFormatter(format="0,0"),
        "xlabel": "",
        "ylabel": "",
        "title": "",
        "shared_axes": False,
    }


def line_chart(columns: Sequence[str], colours, widths, dashes, height: int, **options):
    """An overlay of one hvplot line per column (year on x).

    ``options``: further HoloViews overlay options (``multi_y=True``: one y axis per line).
    """
    frame = template_frame(columns)
    curves = [
        frame.hvplot.line(
            x="year", y=column, color=colour, line_width=width, line_dash=dash, **sizing(height)
        )
        for column, colour, width, dash in zip(columns, colours, widths, dashes, strict=True)
    ]
    return hv.Overlay(curves).opts(**(common_options(height) | options))


def area_chart(columns: Sequence[str], colours: Sequence[str], height: int):
    """Stacked hvplot areas of ``columns`` (year on x)."""
    frame = template_frame(columns)
    areas = frame.hvplot.area(
        x="year", y=list(columns), stacked=True, color=list(colours), **sizing(height)
    )
    return areas.opts(hv.opts.Area(line_alpha=0, fill_alpha=1)).opts(**common_options(height))


def square_chart(code: str, colour: str, height: int, ticks: int):
    """hvplot squares at ``code`` per year, coloured by the ``colour`` column."""
    frame = template_frame([code]).assign(**{colour: ["#000000", "#000000"]})
    options = common_options(height) | {"ylim": (-0.6, ticks - 0.4), "yticks": list(range(ticks))}
    return frame.hvplot.scatter(
        x="year", y=code, color=colour, marker="square", size=13, line_color=None, **sizing(height)
    ).opts(**options)


def render_chart(chart) -> figure:
    """Render a declared chart to a Bokeh figure, without the parts this app never uses.

    HoloViews gives every glyph selection, non-selection, muted and hover copies; the app
    neither selects nor mutes, so they are dropped (fewer models per session to build,
    serialise and send). The same goes for hvplot's tools and canvas legend.
    """
    fig = hv.render(chart, backend="bokeh")
    for renderer in fig.renderers:
        if isinstance(renderer, GlyphRenderer):
            renderer.update(
                selection_glyph=None, nonselection_glyph=None, muted_glyph=None, hover_glyph=None
            )
    # hvplot draws with WebGL and adds hover, zoom and pan tools and a legend to every
    # chart: WebGL without a GPU made each repaint slower (software GL), and the app uses
    # neither the tools nor canvas legends (its legends are HTML above the figures)
    fig.output_backend = "canvas"
    fig.toolbar.tools = []
    fig.toolbar_location = None
    fig.center = [model for model in fig.center if not isinstance(model, Legend)]
    fig.min_border_left = 60
    fig.xaxis.ticker = FixedTicker(ticks=list(X_TICKS))  # multi_y overlays drop ``xticks``
    fig.yaxis.axis_label = None  # ... and keep the column names as axis labels
    fig.title.text = ""
    return fig


def glyph_renderers(fig: figure) -> list[GlyphRenderer]:
    """The figure's glyph renderers, in drawing order."""
    return [r for r in fig.renderers if isinstance(r, GlyphRenderer)]


def share_source(fig: figure, source: ColumnDataSource) -> list[GlyphRenderer]:
    """Point every glyph of a rendered figure at ``source`` (the columns keep their names)."""
    renderers = glyph_renderers(fig)
    for renderer in renderers:
        renderer.data_source = source
    return renderers


def stack_areas(fig: figure, source: ColumnDataSource, columns: Sequence[str]) -> None:
    """Replace the rendered stacked-area polygons by ``VArea`` glyphs stacked in the browser.

    The ``i``-th area runs from the sum of the first ``i`` columns to the sum of the first
    ``i + 1``; neighbouring areas share their ``Stack`` expressions.
    """
    stacks = [Stack(fields=list(columns[:i])) for i in range(len(columns) + 1)]
    renderers = glyph_renderers(fig)
    if len(renderers) != len(columns):
        raise ValueError(f"{len(renderers)} rendered areas for {len(columns)} columns")
    for i, renderer in enumerate(renderers):
        colour = renderer.glyph.fill_color
        renderer.update(
            data_source=source,
            glyph=VArea(x="year", y1=stacks[i], y2=stacks[i + 1], fill_color=colour),
        )


def with_fresh_ids(rep, ids: dict[str, str]):
    """A copy of a serialised Bokeh model graph in which every model has a new id."""
    if isinstance(rep, dict):
        if "id" in rep and (rep.get("type") == "object" or set(rep) == {"id"}):
            rep = {**rep, "id": ids.setdefault(rep["id"], make_id())}
        return {key: with_fresh_ids(value, ids) for key, value in rep.items()}
    if isinstance(rep, list | tuple):  # map entries are (key, value) tuples
        return type(rep)(with_fresh_ids(value, ids) for value in rep)
    return rep


def chart_figure(key: str, declare: Callable[[], object]) -> figure:
    """A new Bokeh figure of the hvplot chart ``declare()`` returns.

    HoloViews renders each chart once per process (``key`` names it); every session gets
    a copy of that figure with its own models (decoded from the serialised figure with new
    ids), which costs a fraction of rendering it again (see ``bench/README.md``).
    """
    rep = _RENDERED.get(key)
    if rep is None:
        rep = _RENDERED.setdefault(key, Serializer().encode(render_chart(declare())))
    return Deserializer().decode(with_fresh_ids(rep, {}))
