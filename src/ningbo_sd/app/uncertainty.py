"""The app's uncertainty section: a Monte Carlo of the current settings, with fan charts.

The ensemble (:mod:`ningbo_sd.app.ensemble`) is the project's Monte Carlo
(:mod:`ningbo_sd.uncertainty.montecarlo`: the uncertainty
specification ``scenarios/registry/uncertainty.yaml`` over the assumptions register, sampled by
:mod:`ningbo_sd.uncertainty.sampling`, run by the batch engine and scored by
:mod:`ningbo_sd.scenarios.scorecard`), run chunk by chunk so that progress can be shown; the chunks
run in a worker thread, so the session's sliders stay live meanwhile.

As ``ningbo-sd mc`` does, the ensemble is conditioned on the 2015-2020 figures: each sample
carries an importance weight (:func:`ningbo_sd.calibration.history.history_likelihood`, from
its simulated history and its ``posterior_draw``), the bands are weighted quantiles
(:func:`ningbo_sd.uncertainty.results.weighted_quantiles`) and P(met) are weighted shares.
The text states the effective sample size, P(doubling) nominal and real, and how many of the
published figures drawn on the band charts (:mod:`ningbo_sd.app.published`) the bands cover.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import panel as pn
import param
from bokeh.core.properties import value as fixed_value
from bokeh.models import ColumnDataSource, Legend, LegendItem, NumeralTickFormatter
from panel.viewable import Viewer

from ningbo_sd.app.charts import column_label, column_unit, fit_y_range, make_figure
from ningbo_sd.app.ensemble import (
    CHUNK_SIZE,
    DOUBLING_TARGETS,
    FAN_INDICATORS,
    PREDICTIVE_NAMES,
    QUANTILE_NAMES,
    QUANTILES,
    SAMPLE_SIZES,
    MonteCarloOutcome,
    band_coverage,
    fan_data,
    prepare_ensemble,
    run_ensemble,
    run_ensemble_chunk,
    summarise,
)
from ningbo_sd.app.published import PublishedMarkers
from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import html_text, pick, tr
from ningbo_sd.app.views import scorecard_html
from ningbo_sd.io import USER_ERRORS

# the ensemble itself is ensemble's; this section's callers find it here too
__all__ = [
    "CHUNK_SIZE",
    "DOUBLING_TARGETS",
    "FAN_INDICATORS",
    "PREDICTIVE_NAMES",
    "QUANTILES",
    "QUANTILE_NAMES",
    "SAMPLE_SIZES",
    "MonteCarloOutcome",
    "UncertaintyView",
    "band_coverage",
    "fan_data",
    "prepare_ensemble",
    "run_ensemble",
    "run_ensemble_chunk",
    "summarise",
]
FAN_COLOUR = "#1f5fa8"
#: This section's own texts (``{"en": ..., "zh": ...}``), beside :data:`ningbo_sd.app.text.TEXTS`.
SECTION_TEXTS: dict[str, dict[str, str]] = {
    "weighted": {
        "en": "weighted on the 2015-2020 figures: effective sample size {ess:,.0f} of {n:,}",
        "zh": "按2015-2020年数据加权：有效样本量{ess:,.0f}（共{n:,}个）",
    },
    "unweighted": {"en": "unweighted", "zh": "未加权"},
    "doubling": {
        "en": "P(gross output 2035 ≥ 2 × 2020): nominal {nominal}, real (2020 prices) {real}",
        "zh": "2035年工业总产值较2020年翻一番的概率：名义{nominal}，实际（2020年价格）{real}",
    },
    "doubling_band": {
        "en": "{p} (90% band of the ratio {lo:.2f}-{hi:.2f}×)",
        "zh": "{p}（比值90%区间{lo:.2f}-{hi:.2f}倍）",
    },
    "doubling_predictive": {
        "en": " — {p} allowing for the model's own error",
        "zh": "——计入模型自身误差后为{p}",
    },
    "coverage_predictive": {
        "en": "; inside the 90% band with model error: {in90} of {n}",
        "zh": "；落在含模型误差的90%区间内：{in90}/{n}",
    },
    "coverage": {
        "en": "published figures on the charts inside the 90% band: {in90} of {n} "
        "(inside the 50% band: {in50})",
        "zh": "图中公开发布数据落在90%区间内：{in90}/{n}（落在50%区间内：{in50}）",
    },
    "holds": {
        "en": "what the nominal doubling hangs on (share of runs that double, lowest → highest "
        "third of each input): {items}",
        "zh": "名义翻一番取决于（各输入由低到高三等分，各组中翻一番的模拟比例）：{items}",
    },
    "holds_item": {"en": "{name} {low:.0%} → {high:.0%}", "zh": "{name} {low:.0%} → {high:.0%}"},
}
#: Inputs named in the "what has to hold" line of the uncertainty section.
HOLDS_SHOWN = 3


def section_text(key: str, language: str, **fields) -> str:
    """One of :data:`SECTION_TEXTS` in ``language``, formatted with ``fields``."""
    return pick(SECTION_TEXTS[key], language).format(**fields)


def doubling_text(outcome: MonteCarloOutcome, language: str) -> str:
    """P(doubling) nominal and real, each with the 90% band of the ratio 2035 / 2020."""
    readings = {}
    for reading, target in DOUBLING_TARGETS:
        probability = outcome.probabilities.get(target, np.nan)
        text = "n/a" if not np.isfinite(probability) else f"{probability:.0%}"
        ratios = outcome.ratios
        if ratios is not None and reading in ratios.index and np.isfinite(probability):
            lo, hi = ratios.loc[reading, "q05"], ratios.loc[reading, "q95"]
            text = section_text("doubling_band", language, p=text, lo=lo, hi=hi)
        predictive = (
            outcome.predictive.get(target, np.nan) if outcome.predictive is not None else np.nan
        )
        if np.isfinite(predictive):
            text += section_text("doubling_predictive", language, p=f"{predictive:.0%}")
        readings[reading] = text
    return section_text("doubling", language, **readings)


def holds_text(outcome: MonteCarloOutcome, language: str) -> str:
    """The inputs the nominal doubling depends on most, with P(doubling) in their low and
    high thirds ("" when the ensemble does not score the doubling)."""
    table = outcome.holds
    if table is None or table.empty:
        return ""
    items = [
        section_text("holds_item", language, name=row.input, low=row.low, high=row.high)
        for row in table.head(HOLDS_SHOWN).itertuples()
    ]
    return section_text("holds", language, items="; ".join(items))


def weight_text(outcome: MonteCarloOutcome, language: str) -> str:
    """The effective sample size of a weighted ensemble (or that it is unweighted)."""
    if not outcome.weighted:
        return section_text("unweighted", language)
    return section_text("weighted", language, ess=outcome.effective_samples, n=outcome.n_samples)


def coverage_text(outcome: MonteCarloOutcome, language: str) -> str:
    """How many of the charts' published figures the 90% and 50% bands cover."""
    table = band_coverage(outcome.fans)
    if table.empty:
        return ""
    text = section_text(
        "coverage",
        language,
        in90=int(table["in_90"].sum()),
        in50=int(table["in_50"].sum()),
        n=len(table),
    )
    known = table["in_90p"].notna()
    if known.any():
        inside = int(table.loc[known, "in_90p"].astype(bool).sum())
        text += section_text("coverage_predictive", language, in90=inside, n=int(known.sum()))
    return text


class UncertaintyView(Viewer):
    """Run a Monte Carlo of the current settings; fan charts and P(target met).

    The bands and P(met) are weighted on history; the status states the effective sample
    size, P(doubling) nominal and real, and the bands' coverage of the published figures
    drawn on the charts (:attr:`published`, one marker source per charted column).
    """

    state = param.ClassSelector(class_=AppState)
    outcome = param.Parameter(default=None, doc="The last MonteCarloOutcome")
    running = param.Boolean(default=False)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.intro = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.samples = pn.widgets.Select(
            options=list(SAMPLE_SIZES), value=SAMPLE_SIZES[0], width=120
        )
        self.seed = pn.widgets.IntInput(value=0, start=0, width=100)
        self.button = pn.widgets.Button(color="primary", width=220, margin=(24, 10, 0, 10))
        self.button.on_click(self._clicked)
        self.progress = pn.indicators.Progress(value=0, max=100, width=300, margin=(30, 10, 0, 10))
        self.status = pn.pane.Markdown("", margin=(20, 10, 0, 10))
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width")
        self.sources: dict[str, ColumnDataSource] = {}
        self.current: dict[str, ColumnDataSource] = {}
        self.figures = {name: self._fan_figure(name) for name in FAN_INDICATORS}
        self.legend_items: list[tuple[LegendItem, str]] = []
        for figure in self.figures.values():
            keys = ("band_90", "band_50", "median", "band_predictive", "current")
            for item, key in zip(figure.legend[0].items, keys, strict=True):
                self.legend_items.append((item, key))
        # the published figures: markers on the axis of the current run's line (named after
        # its column), drawn once per session
        self.published = PublishedMarkers(
            self.figures, {name: (name,) for name in FAN_INDICATORS}, self.state.language
        )
        for column, source in self.published.sources.items():
            figure = self.figures[self.published.figure_of[column]]
            markers = [r for r in figure.renderers if r.data_source is source]
            item = LegendItem(label=fixed_value(""), renderers=markers)
            figure.legend[0].items.append(item)
            self.legend_items.append((item, "published"))
        self.table = pn.pane.HTML("", sizing_mode="stretch_width")
        self.state.settings.param.watch(self._relabel, ["language"])
        self.state.param.watch(self._current_changed, ["results"])
        self.state.param.watch(self._relabel, ["scorecard"])
        self._current_changed()
        self._relabel()

    def _fan_figure(self, indicator: str):
        figure = make_figure(title="")
        source = ColumnDataSource(fan_data(None))
        current = ColumnDataSource({"year": [], indicator: []})
        self.sources[indicator], self.current[indicator] = source, current
        outer = figure.varea(
            "year", "q05", "q95", source=source, fill_color=FAN_COLOUR, fill_alpha=0.18
        )
        inner = figure.varea(
            "year", "q25", "q75", source=source, fill_color=FAN_COLOUR, fill_alpha=0.35
        )
        median = figure.line("year", "q50", source=source, color=FAN_COLOUR, line_width=2.5)
        predictive = [
            figure.line("year", name, source=source, color=FAN_COLOUR, line_dash="dotted",
                        line_width=1.5)
            for name in PREDICTIVE_NAMES
        ]  # fmt: skip
        line = figure.line(
            "year", indicator, source=current, color="#222222", line_dash="dashed", line_width=1.5
        )
        if indicator == "rd_intensity":
            figure.yaxis.formatter = NumeralTickFormatter(format="0.00")
        legend = Legend(location="top_left", label_text_font_size="11px", spacing=0, padding=4)
        for renderers in ([outer], [inner], [median], predictive, [line]):
            legend.items.append(LegendItem(label=fixed_value(""), renderers=renderers))
        figure.add_layout(legend)
        return figure

    # ------------------------------------------------------------------ running
    def run(self, n_samples: int | None = None, seed: int | None = None) -> MonteCarloOutcome:
        """Run the ensemble of the current settings in this thread and show it."""
        n_samples = int(n_samples or self.samples.value)
        seed = int(self.seed.value if seed is None else seed)
        scenario = self.state.current_scenario()
        outcome = run_ensemble(
            scenario, n_samples, seed, self._progress, self._settings(), self.state.calibrated
        )
        self._show(outcome)
        return outcome

    def _settings(self) -> dict:
        return self.state.settings.param.values()

    def _progress(self, done: int, total: int) -> None:
        self.progress.value = round(100 * done / total)

    async def _clicked(self, event) -> None:
        if self.running:
            return
        self.running = True
        self.button.disabled = True
        self.progress.value = 0
        n_samples, seed = int(self.samples.value), int(self.seed.value)
        try:
            scenario, settings = self.state.current_scenario(), self._settings()
            start = time.perf_counter()
            prepared = await asyncio.to_thread(
                prepare_ensemble, scenario, FAN_INDICATORS, self.state.calibrated
            )
            frames = []
            for lo in range(0, n_samples, CHUNK_SIZE):
                hi = min(lo + CHUNK_SIZE, n_samples)
                frames.append(
                    await asyncio.to_thread(run_ensemble_chunk, prepared, n_samples, seed, lo, hi)
                )
                self._progress(hi, n_samples)
            seconds = time.perf_counter() - start
            self._show(summarise(frames, FAN_INDICATORS, n_samples, seed, seconds, settings))
        except USER_ERRORS as exc:
            self.state.notify("error", f"Monte Carlo: {str(exc).splitlines()[0]}")
        finally:
            self.running = False
            self.button.disabled = False

    # ------------------------------------------------------------------ showing
    def _show(self, outcome: MonteCarloOutcome) -> None:
        self.outcome = outcome
        with pn.io.hold():
            for name, source in self.sources.items():
                source.data = fan_data(outcome.fans.get(name))
            self._rescale()
            self.progress.value = 100
            self._relabel()

    def _current_changed(self, *events) -> None:
        results = self.state.results
        years = results.index.to_numpy(dtype=float).tolist()
        with pn.io.hold():
            for name, source in self.current.items():
                values = results[name].to_numpy(dtype=float).tolist()
                source.data = {"year": years, name: values}
            self._rescale()

    def _rescale(self) -> None:
        """Fit each fan chart's y axis to its bands, the current run and the published figures."""
        for name, figure in self.figures.items():
            fan, line = self.sources[name].data, self.current[name].data
            published = self.published.values(name)
            fit_y_range(
                figure.y_range,
                fan["q05"],
                fan["q95"],
                fan["p05"],
                fan["p95"],
                line[name],
                published,
            )

    def _relabel(self, *events) -> None:
        lang = self.state.language
        self.intro.object = tr("mc_intro", lang)
        self.samples.name = tr("mc_samples", lang)
        self.seed.name = "seed"
        self.button.name = tr("mc_run", lang)
        for name, figure in self.figures.items():
            figure.title.text = f"{column_label(name, lang)} ({column_unit(name, lang)})"
            figure.xaxis.axis_label = tr("year", lang)
        for item, key in self.legend_items:
            item.label = fixed_value(tr(key, lang))
        if events and any(getattr(e, "name", "") == "language" for e in events):
            self.published.relabel(lang)
        outcome = self.outcome
        if outcome is None:
            self.status.object = tr("mc_not_run", lang)
            self.summary.object = ""
            self.table.object = ""
            return
        lines = [
            weight_text(outcome, lang),
            doubling_text(outcome, lang),
            holds_text(outcome, lang),
        ]
        coverage = coverage_text(outcome, lang)
        self.summary.object = "<br>".join(html_text(line) for line in [*lines, coverage] if line)
        self.status.object = tr("mc_done", lang, n=outcome.n_samples, seconds=outcome.seconds)
        current = {k: v for k, v in self._settings().items() if k != "language"}
        if current != {k: v for k, v in outcome.settings.items() if k != "language"}:
            self.status.object += " — " + tr("mc_stale", lang)
        card = self.state.scorecard
        if card is not None and "modelled" in card:
            card = card[card["modelled"].astype(bool)]
        self.table.object = scorecard_html(card, lang, outcome.probabilities)

    def __panel__(self):
        return pn.Column(
            self.intro,
            pn.Row(self.samples, self.seed, self.button, self.progress, self.status),
            pn.GridBox(
                *[pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in self.figures.values()],
                ncols=2,
                sizing_mode="stretch_width",
            ),
            self.summary,
            self.table,
            sizing_mode="stretch_width",
        )
