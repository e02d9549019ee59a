"""The app's structure section: the stock-and-flow graph, generated from the model file.

Who depends on whom, and which variables are stocks, comes from the project's reading of
the model file (:mod:`ningbo_sd.model.structure`, PySD's parser); flows are the variables a stock's
``INTEG`` rate mentions, auxiliaries everything else computed, constants the numbers.
Sectors are the model file's groups (``.Capital``, ``.Land``...). The layout is a seeded
force-directed layout in numpy (no graphviz): each sector is laid out on its own and the
sectors are placed on a grid, so that they stay readable.

Tracing a variable (picked from a list or clicked in the graph) is Vensim's causes and uses
trees one level deep: its inputs are drawn in blue, the variables it feeds in red, the rest
is faded, the plot zooms to that neighbourhood, and its equation, units and documentation
are shown above the graph.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import numpy as np
import panel as pn
import param
from bokeh.models import (
    Arrow,
    ColumnDataSource,
    HoverTool,
    LabelSet,
    NormalHead,
    TapTool,
    VeeHead,
)
from bokeh.plotting import figure
from panel.viewable import Viewer

from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import html_text, tr
from ningbo_sd.model.metadata import MODEL_PATH, ModelFileError, file_digest

CONTROL_NAMES = frozenset({"INITIAL TIME", "FINAL TIME", "TIME STEP", "SAVEPER", "Time"})
KINDS: tuple[str, ...] = ("stock", "flow", "auxiliary", "constant")
KIND_STYLE = {
    "stock": ("square", 24, "#1f5fa8"),
    "flow": ("diamond", 18, "#e08214"),
    "auxiliary": ("circle", 9, "#7f7f7f"),
    "constant": ("triangle", 7, "#b0b0b0"),
}
SECTOR_LABELS = {
    "Policy time paths": "政策时间路径",
    "Prices and accounting": "价格与核算",
    "Capital": "资本",
    "Knowledge": "知识",
    "Land": "土地",
    "Energy": "能源",
    "Output": "产出",
    "Structure": "结构",
    "Control": "仿真控制",
}
EQUATION_CHARS = 240
TRACE_COLOURS = {"causes": "#1f5fa8", "uses": "#c0392b"}  # arrows into / out of the variable
FADED_ALPHA = 0.12  # what is outside a traced variable's neighbourhood
ZOOM_MARGIN = 2.5  # layout units round a traced neighbourhood (nodes are about 1 apart)


@dataclass(frozen=True)
class Node:
    """One model variable in the graph."""

    name: str
    kind: str
    sector: str
    units: str
    documentation: str
    equation: str


@dataclass(frozen=True)
class ModelGraph:
    """Variables and their dependencies; an edge is ``(source, target, kind)``.

    ``kind`` is ``flow`` for a rate feeding a stock, ``link`` for any other dependency.
    """

    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str, str], ...]


def normal_name(name: str) -> str:
    """A variable name compared loosely: lower case, runs of spaces and ``_`` as one space."""
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def integ_rate_text(equation: str) -> str:
    """The rate (first argument) of an ``INTEG(rate, initial)`` equation, else ''."""
    match = re.search(r"INTEG\s*\(", equation, flags=re.IGNORECASE)
    if not match:
        return ""
    depth, start = 0, match.end()
    for position in range(start, len(equation)):
        character = equation[position]
        if character == "(":
            depth += 1
        elif character == ")":
            if depth == 0:
                return equation[start:position]
            depth -= 1
        elif character == "," and depth == 0:
            return equation[start:position]
    return equation[start:]


def mentions(text: str, name: str) -> bool:
    """Whether an equation text mentions a variable (loose spelling, whole words)."""
    pattern = r"(?<![\w])" + r"[\s_]+".join(map(re.escape, normal_name(name).split())) + r"(?![\w])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


@lru_cache(maxsize=4)
def _graph(path: str, digest: str) -> ModelGraph:
    from ningbo_sd.model.metadata import read_metadata
    from ningbo_sd.model.structure import read_structure

    structure = read_structure(path)
    meta = read_metadata(path)
    entries = {name: (structure.sector[name], structure.equation[name]) for name in structure.kind}
    kinds = {
        name: "constant" if kind == "lookup" else kind
        for name, kind in structure.kind.items()
        if name not in CONTROL_NAMES
    }
    edges: set[tuple[str, str, str]] = set()
    for name, dependencies in structure.depends_on.items():
        if name not in kinds:
            continue
        rate = integ_rate_text(entries.get(name, ("", ""))[1]) if kinds[name] == "stock" else ""
        for dependency in dependencies:
            if dependency not in kinds:
                continue
            if rate and mentions(rate, dependency):
                edges.add((dependency, name, "flow"))
                if kinds[dependency] == "auxiliary":
                    kinds[dependency] = "flow"
            else:
                edges.add((dependency, name, "link"))
    nodes = []
    for name, kind in kinds.items():
        sector, equation = entries.get(name, ("", ""))
        variable = meta.variables.get(name)
        nodes.append(
            Node(
                name=name,
                kind=kind,
                sector=sector,
                units=variable.units if variable else "",
                documentation=variable.documentation if variable else "",
                equation=equation[:EQUATION_CHARS],
            )
        )
    return ModelGraph(tuple(nodes), tuple(sorted(edges)))


def model_graph(model_path: str | Path = MODEL_PATH) -> ModelGraph:
    """The stock-and-flow graph of a Vensim file (cached per file and modification time).

    Dependencies and kinds come from :func:`ningbo_sd.model.structure.read_structure`, units and
    documentation from :func:`ningbo_sd.model.metadata.read_metadata`; this adds the sectors, the
    equation text, and which dependencies of a stock are its rates (flows).
    """
    path = Path(model_path).resolve()
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found (expected a Vensim .mdl file)")
    return _graph(str(path), file_digest(path))


def neighbourhood(graph: ModelGraph, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The variables ``name`` depends on (its causes) and those that use it, each sorted.

    Vensim's "causes" and "uses" trees one level deep: the first tuple holds the sources
    of the edges into ``name``, the second the targets of the edges out of it.
    """
    causes = sorted({a for a, b, _ in graph.edges if b == name})
    uses = sorted({b for a, b, _ in graph.edges if a == name})
    return tuple(causes), tuple(uses)


def force_layout(n: int, pairs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fruchterman-Reingold positions of ``n`` nodes joined by ``pairs``, centred, unit spacing.

    Parameters
    ----------
    n : int
        Number of nodes.
    pairs : numpy.ndarray
        ``(edges, 2)`` node indices.
    rng : numpy.random.Generator
        Source of the starting positions.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` positions.
    """
    if n == 1:
        return np.zeros((1, 2))
    k = 1.0
    pos = rng.uniform(-1, 1, size=(n, 2)) * np.sqrt(n)
    temperature = np.sqrt(n) / 2
    for _ in range(300):
        delta = pos[:, None, :] - pos[None, :, :]
        distance = np.sqrt((delta**2).sum(-1)) + 1e-9
        move = (delta / distance[..., None] * (k**2 / distance)[..., None]).sum(1)
        if len(pairs):
            d = pos[pairs[:, 0]] - pos[pairs[:, 1]]
            pull = d * np.sqrt((d**2).sum(1))[:, None] / k
            np.add.at(move, pairs[:, 0], -pull)
            np.add.at(move, pairs[:, 1], pull)
        move -= pos * 0.2  # gravity keeps unconnected nodes near the rest
        size = np.sqrt((move**2).sum(1))[:, None] + 1e-9
        pos += move / size * np.minimum(size, temperature)
        temperature = max(temperature * 0.98, 0.01)
    pos -= np.median(pos, axis=0)
    distance = np.sqrt((pos**2).sum(1))
    radius = float(np.percentile(distance, 90)) or 1.0
    pos *= (np.minimum(distance, 1.3 * radius) / np.maximum(distance, 1e-9))[:, None]  # outliers in
    return pos * (1.1 * np.sqrt(n) / radius)  # every sector spread to a size that fits it


@lru_cache(maxsize=8)
def graph_layout(
    model_path: str | Path = MODEL_PATH, constants: bool = False, seed: int = 0
) -> Mapping[str, tuple[float, float]]:
    """Positions of the graph's nodes: each sector laid out on its own, sectors on a grid.

    Parameters
    ----------
    model_path : str or Path
    constants : bool
        Include the constants.
    seed : int
        Seed of the starting positions (the layout is deterministic for a seed).

    Returns
    -------
    Mapping of str to (x, y)
        Read-only (the layout is cached and shared by every session).
    """
    graph = model_graph(model_path)
    nodes = [n for n in graph.nodes if constants or n.kind != "constant"]
    sectors = list(dict.fromkeys(n.sector for n in nodes))
    rng = np.random.default_rng(seed)
    blocks = []
    for sector in sectors:
        members = [n.name for n in nodes if n.sector == sector]
        index = {name: i for i, name in enumerate(members)}
        pairs = np.array(
            [(index[a], index[b]) for a, b, _ in graph.edges if a in index and b in index],
            dtype=int,
        ).reshape(-1, 2)
        blocks.append((members, force_layout(len(members), pairs, rng)))
    cell = max(float(np.ptp(pos, axis=0).max()) for _, pos in blocks) + 4.0
    columns = int(np.ceil(np.sqrt(len(blocks))))
    layout: dict[str, tuple[float, float]] = {}
    for position, (members, pos) in enumerate(blocks):
        offset = np.array([position % columns, -(position // columns)], dtype=float) * cell
        for name, (x, y) in zip(members, pos + offset, strict=True):
            layout[name] = (float(x), float(y))
    return MappingProxyType(layout)  # shared by every session: read-only


def _shorten(x0, y0, x1, y1, by: float) -> tuple[float, float]:
    dx, dy = x1 - x0, y1 - y0
    length = max(np.hypot(dx, dy), 1e-9)
    keep = max(length - by, 0.0) / length
    return x0 + dx * keep, y0 + dy * keep


def arrow_data(layout: Mapping[str, tuple[float, float]], pairs, shorten_by: float) -> dict:
    """Arrow source columns ``x0, y0, x1, y1`` for ``(source, target)`` name pairs.

    Pairs with an end not in ``layout`` (a hidden constant) are left out; each arrow ends
    ``shorten_by`` short of its target, so that its head stays outside the marker.
    """
    data: dict = {"x0": [], "y0": [], "x1": [], "y1": []}
    for a, b in pairs:
        if a in layout and b in layout:
            (x0, y0), (x1, y1) = layout[a], layout[b]
            x1, y1 = _shorten(x0, y0, x1, y1, shorten_by)
            for key, value in zip(data, (x0, y0, x1, y1), strict=True):
                data[key].append(value)
    return data


def sector_label(sector: str, language: str) -> str:
    """A model sector's name in ``language`` (the file's English group name, or Chinese)."""
    return SECTOR_LABELS.get(sector, sector) if language == "zh" else sector


class StructureView(Viewer):
    """The stock-and-flow graph with hover equations; constants on demand."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.intro = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.constants = pn.widgets.Checkbox(value=False)
        self.constants.param.watch(self._redraw, "value")
        self.trace = pn.widgets.Select(width=360)
        self.trace.param.watch(self._redraw, "value")
        self.details = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.node_source = ColumnDataSource()
        self.link_source = ColumnDataSource()
        self.flow_source = ColumnDataSource()
        self.sector_source = ColumnDataSource()
        self.trace_sources = {
            kind: ColumnDataSource(name=f"trace-{kind}") for kind in TRACE_COLOURS
        }
        self.frame_source = ColumnDataSource({"x": [], "y": []})
        self.arrows: dict[str, Arrow] = {}
        self.figure = self._figure()
        self.node_source.selected.on_change("indices", self._tapped)
        self.state.settings.param.watch(self._redraw, ["language"])
        self._redraw()

    def _figure(self) -> figure:
        fig = figure(
            height=820,
            sizing_mode="stretch_width",
            tools="pan,wheel_zoom,box_zoom,reset,save",
            active_scroll="wheel_zoom",
            match_aspect=True,
        )
        fig.axis.visible = False
        fig.grid.visible = False
        self.arrows["link"] = Arrow(
            source=self.link_source, x_start="x0", y_start="y0", x_end="x1", y_end="y1",
            line_color="#aaaaaa", line_alpha=0.35, line_width=1,
            end=VeeHead(size=6, line_color="#aaaaaa", line_alpha=0.5),
        )  # fmt: skip
        self.arrows["flow"] = Arrow(
            source=self.flow_source, x_start="x0", y_start="y0", x_end="x1", y_end="y1",
            line_color="#e08214", line_width=3.5,
            end=NormalHead(size=10, fill_color="#e08214", line_color="#e08214"),
        )  # fmt: skip
        for kind, colour in TRACE_COLOURS.items():  # a traced variable's causes and uses
            self.arrows[kind] = Arrow(
                source=self.trace_sources[kind], x_start="x0", y_start="y0", x_end="x1",
                y_end="y1", line_color=colour, line_width=2.5,
                end=VeeHead(size=9, line_color=colour, fill_color=colour),
            )  # fmt: skip
        for arrow in self.arrows.values():
            fig.add_layout(arrow)
        nodes = fig.scatter(
            "x", "y", source=self.node_source, marker="marker", size="size", color="colour",
            line_color="#ffffff", alpha="alpha",
        )  # fmt: skip
        nodes.nonselection_glyph = nodes.glyph  # a click traces; it does not dim the others
        # an invisible frame round a traced variable's neighbourhood: the plot zooms to it
        self.frame = fig.scatter("x", "y", source=self.frame_source, size=1, alpha=0)
        fig.add_tools(TapTool(renderers=[nodes]))
        fig.add_layout(
            LabelSet(
                x="x", y="y", text="label", source=self.node_source, text_font_size="10px",
                x_offset=8, y_offset=4, text_color="#333333",
            )
        )  # fmt: skip
        fig.add_layout(
            LabelSet(
                x="x", y="y", text="text", source=self.sector_source, text_font_size="18px",
                text_color="#1f5fa8", text_alpha=0.35, text_align="center",
                text_font_style="bold",
            )
        )  # fmt: skip
        fig.add_tools(
            HoverTool(
                renderers=[nodes],
                tooltips=[
                    ("", "@name (@kind_label, @sector_label)"),
                    ("units", "@units"),
                    ("=", "@equation"),
                    ("", "@documentation"),
                ],
            )
        )
        return fig

    def _redraw(self, *events) -> None:
        lang = self.state.language
        self.intro.object = tr("structure_intro", lang)
        self.constants.name = tr("show_constants", lang)
        self.figure.title.text = tr("tab_structure", lang)
        graph = model_graph(self.state.model_path)
        layout = graph_layout(self.state.model_path, self.constants.value)
        nodes = [n for n in graph.nodes if n.name in layout]
        styles = [KIND_STYLE[n.kind] for n in nodes]
        focus = self._trace_options(nodes, lang)
        if focus is None:  # the trace was cleared, and that change has redrawn the graph
            return
        causes, uses = neighbourhood(graph, focus) if focus else ((), ())
        near = {focus, *causes, *uses} & set(layout) if focus else set()
        labelled = {"stock", "flow"}

        def label(node: Node) -> str:
            shown = node.name in near if focus else node.kind in labelled
            return node.name if shown else ""

        with pn.io.hold():
            self.node_source.data = {
                "x": [layout[n.name][0] for n in nodes],
                "y": [layout[n.name][1] for n in nodes],
                "name": [n.name for n in nodes],
                "label": [label(n) for n in nodes],
                "alpha": [0.95 if not focus or n.name in near else FADED_ALPHA for n in nodes],
                "kind_label": [tr(n.kind, lang) for n in nodes],
                "sector_label": [sector_label(n.sector, lang) for n in nodes],
                "units": [n.units for n in nodes],
                "equation": [n.equation for n in nodes],
                "documentation": [n.documentation for n in nodes],
                "marker": [s[0] for s in styles],
                "size": [s[1] for s in styles],
                "colour": [s[2] for s in styles],
            }
            for kind, source in (("link", self.link_source), ("flow", self.flow_source)):
                pairs = [(a, b) for a, b, edge_kind in graph.edges if edge_kind == kind]
                source.data = arrow_data(layout, pairs, 0.35 if kind == "flow" else 0.2)
            traced = {"causes": [(c, focus) for c in causes], "uses": [(focus, u) for u in uses]}
            for kind, pairs in traced.items():
                self.trace_sources[kind].data = arrow_data(layout, pairs, 0.3)
            for kind, alpha in (("link", 0.35), ("flow", 1.0)):
                arrow = self.arrows[kind]
                alpha = FADED_ALPHA if focus else alpha
                arrow.line_alpha = arrow.end.line_alpha = arrow.end.fill_alpha = alpha
            self._zoom([layout[name] for name in near])
            self.details.object = self._details_html(graph, focus, causes, uses, lang)
            by_sector: dict[str, list] = {}
            for n in nodes:
                by_sector.setdefault(n.sector, []).append(layout[n.name])
            self.sector_source.data = {
                "x": [float(np.mean([p[0] for p in v])) for v in by_sector.values()],
                "y": [float(np.max([p[1] for p in v])) + 0.8 for v in by_sector.values()],
                "text": [sector_label(s, lang) for s in by_sector],
            }

    def _trace_options(self, nodes: list[Node], lang: str) -> str | None:
        """Offer the variables on show for tracing; the traced one ('' for none).

        None when the traced variable is no longer shown (a constant, hidden again): the
        trace is then cleared, which redraws the graph through the trace's watcher.
        """
        options = {tr("trace_none", lang): ""}
        options.update({n.name: n.name for n in sorted(nodes, key=lambda n: n.name.lower())})
        self.trace.name = tr("trace", lang)
        if self.trace.options != options:
            self.trace.options = options
        if self.trace.value not in options.values():
            self.trace.value = ""
            return None
        return self.trace.value or ""

    def _zoom(self, points: list[tuple[float, float]]) -> None:
        """Fit the plot to ``points`` and a margin round them; the whole graph if none."""
        if points:
            xy = np.asarray(points, dtype=float)
            low, high = xy.min(axis=0) - ZOOM_MARGIN, xy.max(axis=0) + ZOOM_MARGIN
            self.frame_source.data = {"x": [low[0], high[0]], "y": [low[1], high[1]]}
            renderers = [self.frame]
        else:
            self.frame_source.data = {"x": [], "y": []}
            renderers = []  # every renderer: the whole graph
        for axis_range in (self.figure.x_range, self.figure.y_range):
            if axis_range.renderers != renderers:
                axis_range.renderers = renderers

    def _tapped(self, attr, old, new) -> None:
        """A click on a node traces it."""
        if new:
            self.trace.value = self.node_source.data["name"][new[0]]
            self.node_source.selected.indices = []

    def _details_html(self, graph: ModelGraph, focus: str, causes, uses, lang: str) -> str:
        """The traced variable: its kind, sector, units, equation, causes and uses."""
        if not focus:
            return ""
        node = next(n for n in graph.nodes if n.name == focus)

        def names(items) -> str:
            return html_text(", ".join(items)) if items else tr("nothing", lang)

        sector = sector_label(node.sector, lang)
        units = f" · {html_text(node.units)}" if node.units else ""
        return (
            f'<div style="font-size:12px"><b>{html_text(node.name)}</b> '
            f"({html_text(tr(node.kind, lang))}, {html_text(sector)}){units}<br>"
            f"<code>{html_text(node.equation)}</code><br>"
            f'<span style="color:#555">{html_text(node.documentation)}</span><br>'
            f'<b style="color:{TRACE_COLOURS["causes"]}">{tr("depends_on", lang)}</b> '
            f"({len(causes)}): {names(causes)}<br>"
            f'<b style="color:{TRACE_COLOURS["uses"]}">{tr("used_by", lang)}</b> '
            f"({len(uses)}): {names(uses)}</div>"
        )

    def __panel__(self):
        return pn.Column(
            self.intro,
            pn.Row(self.constants, self.trace),
            self.details,
            pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
