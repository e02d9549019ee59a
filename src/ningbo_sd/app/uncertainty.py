"""The app's uncertainty section: a Monte Carlo of the current settings, with fan charts.

The ensemble is the project's Monte Carlo (:mod:`ningbo_sd.uncertainty.montecarlo`: the uncertainty
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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.properties import value as fixed_value
from bokeh.models import ColumnDataSource, Legend, LegendItem, NumeralTickFormatter
from panel.viewable import Viewer

from ningbo_sd.app.charts import column_label, column_unit, fit_y_range, make_figure
from ningbo_sd.app.published import PublishedMarkers, points_of
from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import html_text, pick, tr
from ningbo_sd.app.views import scorecard_html
from ningbo_sd.io import USER_ERRORS
from ningbo_sd.uncertainty.discrepancy import load_discrepancy

FAN_INDICATORS: tuple[str, ...] = ("gross_output", "value_added", "rd_intensity", "energy_use")
SAMPLE_SIZES: tuple[int, ...] = (1000, 2000, 5000)
CHUNK_SIZE = 500
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_NAMES: tuple[str, ...] = ("q05", "q25", "q50", "q75", "q95")
#: The 90% band with the model discrepancy drawn (what a published figure may be).
PREDICTIVE_NAMES: tuple[str, ...] = ("p05", "p95")
FAN_COLOUR = "#1f5fa8"
#: The doubling of gross output on 2020 by 2035, at current and at 2020 prices (scorecard ids).
DOUBLING_TARGETS: tuple[tuple[str, str], ...] = (
    ("nominal", "gross_output_2035"),
    ("real", "gross_output_real_2035"),
)
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
}


def section_text(key: str, language: str, **fields) -> str:
    """One of :data:`SECTION_TEXTS` in ``language``, formatted with ``fields``."""
    return pick(SECTION_TEXTS[key], language).format(**fields)


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
    effective_samples : float
        ``(sum w)^2 / sum w^2`` of the importance weights (``n_samples`` when unweighted).
    weighted : bool
        Whether the samples carry weights on history (``log_weight``).
    ratios : pandas.DataFrame
        Per doubling reading (index ``nominal``, ``real``): the weighted 5/50/95%
        quantiles of gross output 2035 / 2020 (``q05``, ``q50``, ``q95``).
    predictive : pandas.Series or None
        Per target: the probability that the *published* figure meets it, the model's
        value moved by the recorded model discrepancy
        (:mod:`ningbo_sd.uncertainty.discrepancy`); None when none is recorded. The fans
        then also carry ``p05`` and ``p95``, the 90% band with the discrepancy.
    """

    fans: dict
    probabilities: pd.Series
    n_samples: int
    seed: int
    seconds: float
    settings: dict
    effective_samples: float = np.nan
    weighted: bool = False
    ratios: pd.DataFrame | None = None
    predictive: pd.Series | None = None


def prepare_ensemble(
    scenario,
    indicators: tuple[str, ...] = FAN_INDICATORS,
    calibrated=None,
    weighted: bool = True,
):
    """Resolve the scenario and the uncertainty specification (``montecarlo.prepare``).

    Parameters
    ----------
    scenario : Scenario, path, bundled name or None
    indicators : tuple of str
        The headline columns kept per sample.
    calibrated : path, optional
        The calibration to start from (default: the default); its posterior draws are
        sampled when they sit beside it.
    weighted : bool
        Condition the ensemble on the figures the calibration fitted (as ``ningbo-sd mc``
        does; :func:`ningbo_sd.calibration.history.fitted_terms`: the default's 2015-2020
        figures): the chunk context gets
        :func:`ningbo_sd.calibration.history.history_likelihood`, so every row carries
        ``log_weight`` and ``weight``. It costs one run per posterior draw, once per
        ensemble.

    Returns
    -------
    ningbo_sd.uncertainty.montecarlo.Prepared
    """
    import dataclasses

    from ningbo_sd.calibration.history import fitted_terms, history_likelihood
    from ningbo_sd.uncertainty.montecarlo import CALIBRATED_FILE, posterior_beside, prepare

    calibrated = CALIBRATED_FILE if calibrated is None else calibrated
    prepared = prepare(
        scenario,
        indicators=tuple(indicators),
        calibrated=calibrated,
        targets=True,
        threads=1,
        posterior=posterior_beside(calibrated),
    )
    if not weighted:
        return prepared
    history = history_likelihood(prepared, fitted_terms(calibrated))
    context = dataclasses.replace(prepared.context, history=history)
    return dataclasses.replace(prepared, context=context)


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
    """Quantile fans per indicator and year, and P(met) per target, from the chunk outputs.

    When the rows carry ``log_weight`` (a weighted ensemble), the quantiles are weighted
    (the inverted weighted CDF, :func:`ningbo_sd.uncertainty.results.weighted_quantiles`)
    and each P(met) is the weighted share of the samples where the target is defined.
    """
    from ningbo_sd.calibration.history import effective_sample_size
    from ningbo_sd.uncertainty.results import weighted_quantiles

    frame = pd.concat(frames, ignore_index=True)
    weighted = "log_weight" in frame
    log_weights = frame["log_weight"].to_numpy(dtype=float) if weighted else None
    weights = (
        np.exp(log_weights - np.max(log_weights)) if weighted else np.ones(len(frame))
    )  # relative weights: the shares and quantiles do not depend on their scale
    discrepancy = load_discrepancy()
    fans = {}
    for indicator in indicators:
        columns = [c for c in frame.columns if c.split(":")[0] == indicator and c.count(":") == 1]
        years = np.array([int(c.split(":")[1]) for c in columns])
        order = np.argsort(years)
        values = frame[columns].to_numpy(dtype=float)[:, order]
        levels = weighted_quantiles(values, log_weights, QUANTILES).T
        fans[indicator] = pd.DataFrame(
            levels, index=pd.Index(years[order], name="year"), columns=list(QUANTILE_NAMES)
        )
        if discrepancy is not None:
            fans[indicator][["p05", "p95"]] = predictive_band(
                values, log_weights, discrepancy, indicator
            )
    met_columns = [c for c in frame.columns if c.startswith("target:") and c.endswith(":met")]
    probabilities = {}
    for column in met_columns:
        flags = frame[column].astype("Float64")
        defined = flags.notna().to_numpy()
        met = flags.fillna(0).to_numpy(dtype=float) == 1
        total = weights[defined].sum()
        probabilities[column.split(":")[1]] = (
            float(weights[met & defined].sum() / total) if total > 0 else np.nan
        )
    probabilities = pd.Series(probabilities, dtype=float)
    ratios = {}
    for reading, target in DOUBLING_TARGETS:
        column = f"target:{target}:value"
        if column in frame:  # the change on 2020 in %, as a ratio 2035 / 2020
            ratio = 1 + frame[[column]].to_numpy(dtype=float) / 100
            levels = weighted_quantiles(ratio, log_weights, (0.05, 0.5, 0.95))[:, 0]
            ratios[reading] = dict(zip(("q05", "q50", "q95"), levels, strict=True))
    ratios = pd.DataFrame.from_dict(ratios, orient="index", columns=["q05", "q50", "q95"])
    effective = effective_sample_size(log_weights) if weighted else float(len(frame))
    predictive = (
        predictive_probabilities(frame, weights, discrepancy) if discrepancy is not None else None
    )
    return MonteCarloOutcome(
        fans,
        probabilities,
        n_samples,
        seed,
        seconds,
        dict(settings or {}),
        effective_samples=effective,
        weighted=weighted,
        ratios=ratios,
        predictive=predictive,
    )


def predictive_band(values, log_weights, discrepancy, indicator: str) -> np.ndarray:
    """The weighted 5 and 95% quantiles ``(years, 2)`` of what may be published each year.

    The mixture of the samples' values moved by the discrepancy of a level
    (:meth:`ningbo_sd.uncertainty.discrepancy.Discrepancy.quantiles`). A scenario input
    (:data:`~ningbo_sd.uncertainty.discrepancy.SCENARIO_INPUTS`) keeps the model's band: a
    published figure differs from it by policy, not by model error.
    """
    from ningbo_sd.uncertainty.discrepancy import SCENARIO_INPUTS
    from ningbo_sd.uncertainty.results import weighted_quantiles

    if indicator in SCENARIO_INPUTS:
        return weighted_quantiles(values, log_weights, (0.05, 0.95)).T
    return np.array(
        [
            discrepancy.quantiles(values[:, year], log_weights, (0.05, 0.95), "level")
            for year in range(values.shape[1])
        ]
    )


def predictive_probabilities(frame: pd.DataFrame, weights, discrepancy) -> pd.Series:
    """Per target: the weighted mean probability that the published figure meets it."""
    from ningbo_sd.uncertainty.summary import target_readings

    ids = [
        c.split(":")[1] for c in frame.columns if c.startswith("target:") and c.endswith(":value")
    ]
    out = {}
    for target, reading in target_readings(ids).items():
        values = frame[f"target:{target}:value"].to_numpy(dtype=float)
        p = discrepancy.probability(
            values, reading.measure, reading.span, reading.op, reading.value
        )
        defined = np.isfinite(p)
        total = weights[defined].sum()
        out[target] = float(np.dot(weights[defined], p[defined]) / total) if total > 0 else np.nan
    return pd.Series(out, dtype=float)


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


def weight_text(outcome: MonteCarloOutcome, language: str) -> str:
    """The effective sample size of a weighted ensemble (or that it is unweighted)."""
    if not outcome.weighted:
        return section_text("unweighted", language)
    return section_text("weighted", language, ess=outcome.effective_samples, n=outcome.n_samples)


def band_coverage(fans: dict) -> pd.DataFrame:
    """The published figures of the fan charts and whether the bands cover them.

    Parameters
    ----------
    fans : dict of str to pandas.DataFrame
        :attr:`MonteCarloOutcome.fans`.

    Returns
    -------
    pandas.DataFrame
        One row per published figure of a charted indicator in a year of its fan:
        ``id``, ``column``, ``year``, ``value``, ``q05``, ``q25``, ``q75``, ``q95``,
        ``in_50``, ``in_90``.
    """
    rows = []
    for column, fan in fans.items():
        for point in points_of(column):
            if point.year not in fan.index:
                continue
            band = fan.loc[point.year]
            predictive = "p05" in band and np.isfinite(band[["p05", "p95"]]).all()
            rows.append(
                {
                    "id": point.id,
                    "column": column,
                    "year": point.year,
                    "value": point.value,
                    **{name: float(band[name]) for name in ("q05", "q25", "q75", "q95")},
                    "in_50": bool(band["q25"] <= point.value <= band["q75"]),
                    "in_90": bool(band["q05"] <= point.value <= band["q95"]),
                    "in_90p": bool(band["p05"] <= point.value <= band["p95"])
                    if predictive
                    else None,
                }
            )
    columns = ["id", "column", "year", "value", "q05", "q25", "q75", "q95", "in_50", "in_90"]
    return pd.DataFrame(rows, columns=[*columns, "in_90p"])


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
    names = (*QUANTILE_NAMES, *PREDICTIVE_NAMES)
    if fan is None:
        return {"year": [], **{name: [] for name in names}}
    data = {"year": fan.index.to_numpy(dtype=float).tolist()}  # lists: one message, no buffers
    for name in names:  # no discrepancy recorded: the predictive lines are not drawn
        column = fan[name] if name in fan else pd.Series(np.nan, index=fan.index)
        data[name] = column.to_numpy(dtype=float).tolist()
    return data


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
        lines = [weight_text(outcome, lang), doubling_text(outcome, lang)]
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
