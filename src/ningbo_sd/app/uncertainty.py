"""The app's uncertainty section: a Monte Carlo of the current settings, with fan charts.

The ensemble is the project's Monte Carlo (:mod:`ningbo_sd.uncertainty.montecarlo`: the uncertainty
specification ``scenarios/registry/uncertainty.yaml`` over the assumptions register, sampled by
:mod:`ningbo_sd.uncertainty.sampling`, run by the batch engine and scored by
:mod:`ningbo_sd.scenarios.scorecard`), run chunk by chunk so that progress can be shown; the chunks
run in a worker thread, so the session's sliders stay live meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.properties import value as fixed_value
from bokeh.models import ColumnDataSource, Legend, LegendItem, NumeralTickFormatter
from panel.viewable import Viewer

from ningbo_sd.app.charts import column_label, column_unit, fit_y_range, make_figure
from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import tr
from ningbo_sd.app.views import scorecard_html
from ningbo_sd.io import USER_ERRORS

FAN_INDICATORS: tuple[str, ...] = ("gross_output", "value_added", "rd_intensity", "energy_use")
SAMPLE_SIZES: tuple[int, ...] = (1000, 2000, 5000)
CHUNK_SIZE = 500
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_NAMES: tuple[str, ...] = ("q05", "q25", "q50", "q75", "q95")
FAN_COLOUR = "#1f5fa8"


@dataclass(frozen=True)
class MonteCarloOutcome:
    """What the uncertainty section shows.

    Attributes
    ----------
    fans : dict of str to pandas.DataFrame
        Per indicator: quantiles ``q05 ... q95`` by year (index ``year``).
    probabilities : pandas.Series
        P(target met) by target id (met over samples where the target is defined).
    n_samples, seed : int
    seconds : float
        Wall time of the ensemble.
    settings : dict
        The lever settings it was run for.
    """

    fans: dict
    probabilities: pd.Series
    n_samples: int
    seed: int
    seconds: float
    settings: dict


def prepare_ensemble(scenario, indicators: tuple[str, ...] = FAN_INDICATORS, calibrated=None):
    """Resolve the scenario and the uncertainty specification (``montecarlo.prepare``).

    ``calibrated``: the calibration to start from (default: the default); its posterior
    draws are sampled when they sit beside it.
    """
    from ningbo_sd.uncertainty.montecarlo import CALIBRATED_FILE, posterior_beside, prepare

    calibrated = CALIBRATED_FILE if calibrated is None else calibrated
    return prepare(
        scenario,
        indicators=tuple(indicators),
        calibrated=calibrated,
        targets=True,
        threads=1,
        posterior=posterior_beside(calibrated),
    )


def run_ensemble_chunk(prepared, n_samples: int, seed: int, start: int, stop: int) -> pd.DataFrame:
    """Samples ``start:stop`` of the ensemble a seed gives, run and scored (one output row each)."""
    from ningbo_sd.uncertainty.montecarlo import run_chunk
    from ningbo_sd.uncertainty.sampling import sample_table

    table = sample_table(prepared.spec, n_samples, seed, "lhs", start, stop)
    return run_chunk(table, prepared.context)


def summarise(
    frames: list[pd.DataFrame],
    indicators,
    n_samples: int,
    seed: int,
    seconds: float,
    settings: dict | None = None,
) -> MonteCarloOutcome:
    """Quantile fans per indicator and year, and P(met) per target, from the chunk outputs."""
    frame = pd.concat(frames, ignore_index=True)
    fans = {}
    for indicator in indicators:
        columns = [c for c in frame.columns if c.split(":")[0] == indicator and c.count(":") == 1]
        years = np.array([int(c.split(":")[1]) for c in columns])
        order = np.argsort(years)
        values = frame[columns].to_numpy(dtype=float)[:, order]
        levels = np.nanquantile(values, QUANTILES, axis=0).T
        fans[indicator] = pd.DataFrame(
            levels, index=pd.Index(years[order], name="year"), columns=list(QUANTILE_NAMES)
        )
    met_columns = [c for c in frame.columns if c.startswith("target:") and c.endswith(":met")]
    probabilities = {}
    for column in met_columns:
        flags = frame[column].astype("Float64")
        defined = int(flags.notna().sum())
        probabilities[column.split(":")[1]] = float(flags.sum()) / defined if defined else np.nan
    probabilities = pd.Series(probabilities, dtype=float)
    return MonteCarloOutcome(fans, probabilities, n_samples, seed, seconds, dict(settings or {}))


def run_ensemble(
    scenario,
    n_samples: int,
    seed: int,
    progress=None,
    settings: dict | None = None,
    calibrated=None,
) -> MonteCarloOutcome:
    """Run the whole ensemble in this thread; ``progress(done, total)`` after each chunk."""
    start = time.perf_counter()
    prepared = prepare_ensemble(scenario, calibrated=calibrated)
    frames = []
    for lo in range(0, n_samples, CHUNK_SIZE):
        hi = min(lo + CHUNK_SIZE, n_samples)
        frames.append(run_ensemble_chunk(prepared, n_samples, seed, lo, hi))
        if progress is not None:
            progress(hi, n_samples)
    seconds = time.perf_counter() - start
    return summarise(frames, FAN_INDICATORS, n_samples, seed, seconds, settings)


def fan_data(fan: pd.DataFrame | None) -> dict:
    """Column data of one fan chart."""
    if fan is None:
        return {"year": [], **{name: [] for name in QUANTILE_NAMES}}
    data = {"year": fan.index.to_numpy(dtype=float).tolist()}  # lists: one message, no buffers
    data.update({name: fan[name].to_numpy(dtype=float).tolist() for name in QUANTILE_NAMES})
    return data


class UncertaintyView(Viewer):
    """Run a Monte Carlo of the current settings; fan charts and P(target met)."""

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
        self.sources: dict[str, ColumnDataSource] = {}
        self.current: dict[str, ColumnDataSource] = {}
        self.figures = {name: self._fan_figure(name) for name in FAN_INDICATORS}
        self.legend_items: list[tuple[LegendItem, str]] = []
        for figure in self.figures.values():
            keys = ("band_90", "band_50", "median", "current")
            for item, key in zip(figure.legend[0].items, keys, strict=True):
                self.legend_items.append((item, key))
        self.table = pn.pane.HTML("", sizing_mode="stretch_width")
        self.state.settings.param.watch(self._relabel, ["language"])
        self.state.param.watch(self._current_changed, ["results"])
        self.state.param.watch(self._relabel, ["scorecard"])
        self._current_changed()
        self._relabel()

    def _fan_figure(self, indicator: str):
        figure = make_figure(title="")
        source = ColumnDataSource(fan_data(None))
        current = ColumnDataSource({"year": [], "value": []})
        self.sources[indicator], self.current[indicator] = source, current
        outer = figure.varea(
            "year", "q05", "q95", source=source, fill_color=FAN_COLOUR, fill_alpha=0.18
        )
        inner = figure.varea(
            "year", "q25", "q75", source=source, fill_color=FAN_COLOUR, fill_alpha=0.35
        )
        median = figure.line("year", "q50", source=source, color=FAN_COLOUR, line_width=2.5)
        line = figure.line(
            "year", "value", source=current, color="#222222", line_dash="dashed", line_width=1.5
        )
        if indicator == "rd_intensity":
            figure.yaxis.formatter = NumeralTickFormatter(format="0.00")
        legend = Legend(location="top_left", label_text_font_size="11px", spacing=0, padding=4)
        for renderer in (outer, inner, median, line):
            legend.items.append(LegendItem(label=fixed_value(""), renderers=[renderer]))
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
                source.data = {"year": years, "value": values}
            self._rescale()

    def _rescale(self) -> None:
        """Fit each fan chart's y axis to its 5-95 % band and the current run's line."""
        for name, figure in self.figures.items():
            fan, line = self.sources[name].data, self.current[name].data
            fit_y_range(figure.y_range, fan["q05"], fan["q95"], line["value"])

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
        outcome = self.outcome
        if outcome is None:
            self.status.object = tr("mc_not_run", lang)
            self.table.object = ""
            return
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
            self.table,
            sizing_mode="stretch_width",
        )
