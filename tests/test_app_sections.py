"""In-process tests of the app's sections: the charts' ranges, uncertainty, calibration, structure.

Like ``test_app.py``, without a browser: the App is built as a session builds it (the
``app`` fixture in ``conftest.py``), and what each section computes is checked against the
project's own modules (Monte Carlo, observations, the model file).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

INVESTMENT = "investment_growth_2021_2025"
RD_2025 = "rd_intensity_2021_2025"


def out_of_view(fig) -> list[str]:
    """What a figure draws outside its fixed x/y ranges: glyph columns and horizontal spans.

    A glyph's column (``y``, ``y1``, ``y2``, ``x`` ...) counts when it names a column of
    the renderer's ColumnDataSource; ranges that Bokeh fits itself (not ``Range1d``) are
    not checked.
    """
    from bokeh.models import ColumnDataSource, GlyphRenderer, Range1d, Span

    def outside(values, axis_range) -> bool:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if not values.size or not isinstance(axis_range, Range1d):
            return False
        return bool(values.min() < axis_range.start or values.max() > axis_range.end)

    problems = []
    for renderer in fig.renderers:
        if not isinstance(renderer, GlyphRenderer):
            continue
        source = renderer.data_source
        if not isinstance(source, ColumnDataSource):
            continue
        y_range = (
            fig.y_range
            if renderer.y_range_name == "default"
            else fig.extra_y_ranges[renderer.y_range_name]
        )
        for prop, axis_range in (("x", fig.x_range), ("y", y_range)):
            for name in (prop, f"{prop}0", f"{prop}1", f"{prop}2"):
                column = getattr(renderer.glyph, name, None)
                if isinstance(column, str) and column in source.data:
                    if outside(source.data[column], axis_range):
                        problems.append(f"{type(renderer.glyph).__name__}.{name}={column}")
    for span in fig.center:
        if isinstance(span, Span) and span.dimension == "width":
            if outside([span.location], fig.y_range):
                problems.append(f"span at {span.location}")
    return problems


def test_uncertainty_section_matches_the_project_monte_carlo(app):
    from ningbo_sd.app.uncertainty import QUANTILE_NAMES
    from ningbo_sd.calibration.history import history_likelihood
    from ningbo_sd.uncertainty.discrepancy import SCENARIO_INPUTS, load_discrepancy
    from ningbo_sd.uncertainty.montecarlo import run_monte_carlo

    app.show_section("uncertainty")
    view = app.views["uncertainty"]
    app.levers.widget(RD_2025).value = 2.9
    outcome = view.run(n_samples=120, seed=3)
    assert view.progress.value == 100
    assert outcome.weighted and 1 < outcome.effective_samples < outcome.n_samples
    for fan in outcome.fans.values():
        levels = fan[list(QUANTILE_NAMES)].to_numpy()
        assert np.all(np.diff(levels, axis=1) >= -1e-9)
    source = view.sources["gross_output"].data
    np.testing.assert_allclose(source["q50"], outcome.fans["gross_output"]["q50"].to_numpy())
    # the project's Monte Carlo, weighted on history as `ningbo-sd mc` is
    reference = run_monte_carlo(
        app.state.current_scenario(), n_samples=120, seed=3, condition=history_likelihood
    )
    assert outcome.effective_samples == pytest.approx(reference.effective_samples, rel=1e-6)
    expected = reference.probabilities["probability"]
    for target, probability in expected.items():
        assert outcome.probabilities[target] == pytest.approx(probability, nan_ok=True, abs=1e-9)
    quantiles = reference.quantiles.loc[("gross_output", 2035)]
    assert outcome.fans["gross_output"].loc[2035, "q05"] == pytest.approx(quantiles["q05"])
    assert outcome.fans["gross_output"].loc[2035, "q95"] == pytest.approx(quantiles["q95"])
    # the probability that the published figure meets each target, as `ningbo-sd mc` gives it
    predictive = run_monte_carlo(
        app.state.current_scenario(), n_samples=120, seed=3, condition=history_likelihood,
        discrepancy=load_discrepancy(),
    ).probabilities["predictive"]  # fmt: skip
    assert outcome.predictive is not None and predictive.notna().sum() >= 20
    for target, probability in predictive.dropna().items():
        assert outcome.predictive[target] == pytest.approx(probability, abs=1e-8), target
    for name, fan in outcome.fans.items():  # the band with model error is the wider one
        if name in SCENARIO_INPUTS:
            np.testing.assert_array_equal(fan["p05"], fan["q05"])
        else:
            # not each end pointwise: a weighted quantile can sit on one heavy sample, and
            # the mixture around it then puts its 95% point a hair below (energy use, 2031)
            assert (fan["p95"] - fan["p05"] > fan["q95"] - fan["q05"]).all(), name
            assert (fan["p05"] < fan["q50"]).all() and (fan["p95"] > fan["q50"]).all(), name
    assert "allowing for the model" in view.summary.object
    again = view.run(n_samples=120, seed=3)
    pd.testing.assert_frame_equal(again.fans["gross_output"], outcome.fans["gross_output"])
    for name, fig in view.figures.items():  # the bands and the current line are in view
        assert view.sources[name].data["q95"], name
        assert out_of_view(fig) == [], name
    assert "P(met)" in view.table.object
    app.levers.widget(RD_2025).value = 3.2
    assert "levers have moved" in view.status.object


def test_uncertainty_section_weights_on_history_and_states_the_doubling(app):
    """ESS and weighted P(doubling), nominal and real, against a direct computation."""
    from ningbo_sd.calibration.history import effective_sample_size
    from ningbo_sd.uncertainty.montecarlo import CALIBRATED_FILE
    from ningbo_sd.validation.evidence import band_results, weighted_quantiles

    app.show_section("uncertainty")
    view = app.views["uncertainty"]
    outcome = view.run(n_samples=200, seed=5)
    # directly: the same samples run by the validation layer, weighted, scored by hand
    results, log_weights = band_results(app.state.current_scenario(), CALIBRATED_FILE, 200, 5)
    weights = np.exp(log_weights - log_weights.max())
    ess = effective_sample_size(log_weights)
    assert outcome.effective_samples == pytest.approx(ess, rel=1e-9)
    assert ess < 0.9 * outcome.n_samples  # the weights are not all equal
    text = view.summary.object
    assert f"effective sample size {ess:,.0f} of 200" in text
    unweighted = {}
    for reading, column, target in (
        ("nominal", "gross_output", "gross_output_2035"),
        ("real", "gross_output_real", "gross_output_real_2035"),
    ):
        series = results[column]
        ratio = (series.sel(year=2035) / series.sel(year=2020)).to_numpy()
        doubled = ratio >= 2
        probability = float(weights[doubled].sum() / weights.sum())
        unweighted[reading] = float(doubled.mean())
        assert outcome.probabilities[target] == pytest.approx(probability, abs=1e-9), reading
        assert (
            f"{reading} {probability:.0%}" in text
            or f"{reading} (2020 prices) {probability:.0%}" in text
        )
    # the real doubling is harder than the nominal; the weights change the answer
    assert (
        outcome.probabilities["gross_output_real_2035"] < outcome.probabilities["gross_output_2035"]
    )
    assert any(
        abs(outcome.probabilities[t] - unweighted[r]) > 1e-6
        for r, t in (("nominal", "gross_output_2035"), ("real", "gross_output_real_2035"))
    )
    # the fan's 2035 band is the weighted one, not the plain one
    values = results["gross_output"].sel(year=2035).to_numpy()[:, None]
    q05, q95 = weighted_quantiles(values, log_weights, [0.05, 0.95])[:, 0]
    fan = outcome.fans["gross_output"]
    assert fan.loc[2035, "q05"] == pytest.approx(q05) and fan.loc[2035, "q95"] == pytest.approx(q95)
    # what has to hold: P(nominal doubling) by third of each input, from the same samples
    holds = outcome.holds
    assert holds.attrs["probability"] == pytest.approx(
        outcome.probabilities["gross_output_2035"], abs=1e-12
    )
    assert "posterior_draw" not in set(holds["input"])  # a draw's index is not an input
    assert (holds["spread"].abs().diff().dropna() <= 1e-12).all()  # most decisive first
    top = holds.iloc[0]
    assert "hangs on" in text and f"{top['input']} {top['low']:.0%} → {top['high']:.0%}" in text
    app.state.settings.language = "zh"
    assert "有效样本量" in view.summary.object and "翻一番" in view.summary.object
    assert "取决于" in view.summary.object


def test_uncertainty_charts_show_the_published_figures(app):
    from ningbo_sd.app.published import points_of
    from ningbo_sd.app.uncertainty import band_coverage

    app.show_section("uncertainty")
    view = app.views["uncertainty"]
    published = view.published
    assert {"gross_output", "value_added"} <= set(published.sources)
    for column, source in published.sources.items():
        points = points_of(column)
        assert source.data["year"] == [float(p.year) for p in points]
        assert source.data["value"] == pytest.approx([p.value for p in points])
        figure = view.figures[column]
        (marker,) = [r for r in figure.renderers if r.data_source is source]
        assert any(marker in item.renderers for item in figure.legend[0].items)
    gross = dict(
        zip(
            published.sources["gross_output"].data["year"],
            published.sources["gross_output"].data["value"],
            strict=True,
        )
    )
    assert gross[2021.0] == pytest.approx(22100) and gross[2022.0] == pytest.approx(24300)
    outcome = view.run(n_samples=120, seed=3)
    for name, fig in view.figures.items():  # the markers are in view too
        assert out_of_view(fig) == [], name
    coverage = band_coverage(outcome.fans)
    assert len(coverage) == sum(len(points_of(c)) for c in published.sources)
    row = coverage.set_index("id").loc["gross_output_2022"]
    fan = outcome.fans["gross_output"].loc[2022]
    assert row["in_90"] == bool(fan["q05"] <= 24300 <= fan["q95"])
    in90 = int(coverage["in_90"].sum())
    assert f"inside the 90% band: {in90} of {len(coverage)}" in view.summary.object


def test_calibration_section_compares_the_baseline_with_the_data(app, baseline):
    from ningbo_sd.plan.data import load_observations

    app.show_section("calibration")
    view = app.views["calibration"]
    table = view.table_data.set_index("id")
    observations = load_observations().set_index("id")
    row = table.loc["gross_output_2020"]
    assert row["observed"] == pytest.approx(observations.loc["gross_output_2020", "value"])
    assert row["model"] == pytest.approx(baseline.loc[2020, "gross_output"])
    assert (
        table["within"] == ((table["model"] - table["observed"]).abs() <= table["tolerance"])
    ).all()
    assert set(table["year"]) <= set(range(2015, 2021))
    # the same figure cited in two places of the plan shows as two rows, each with its source
    assert (table["source"] == observations.loc[table.index, "source"]).all()
    assert table.loc["rd_intensity_2020_t11", "source"] == "表1-1"
    assert {"fitted", "secondary"} <= set(table["status"])
    assert "表1-1" in view.table.object and "check only" in view.table.object
    for indicator in view.indicator.options.values():  # each series is drawn in view
        view.indicator.value = indicator
        assert view.series_model.data["value"] and view.series_data.data["value"]
        assert out_of_view(view.series) == [], indicator
    english = list(view.overview.y_range.factors)
    app.state.settings.language = "zh"
    assert list(view.overview.y_range.factors) != english
    assert len(view.dots.data["label"]) == len(table)


@pytest.mark.parametrize(
    "settings",
    [{}, {INVESTMENT: 16.0, RD_2025: 4.5}, {INVESTMENT: -3.0}],
    ids=["baseline", "high", "low"],
)
def test_every_chart_draws_its_runs_in_view(app, settings):
    assert app.state.apply_settings(settings)
    app.state.pin()
    app.state.set_compare("energy_tight")
    app.show_section("uncertainty")
    app.views["uncertainty"].run(n_samples=60, seed=1)
    figures = {**app.charts.figures, **app.views["uncertainty"].figures}
    for name, fig in figures.items():
        assert out_of_view(fig) == [], name


def test_structure_section_is_generated_from_the_model_file(app, repo):
    import re

    from ningbo_sd.app.structure import graph_layout, model_graph
    from ningbo_sd.resources import model_file

    graph = model_graph()
    text = model_file().read_text(encoding="utf-8")
    stocks = {n.name for n in graph.nodes if n.kind == "stock"}
    assert len(stocks) == len(re.findall(r"=\s*INTEG\s*\(", text))
    fed = {target for _, target, kind in graph.edges if kind == "flow"}
    assert stocks == fed
    assert graph_layout() == graph_layout()
    app.show_section("structure")
    view = app.views["structure"]
    shown = len(view.node_source.data["name"])
    assert shown == sum(n.kind != "constant" for n in graph.nodes)
    view.constants.value = True
    assert len(view.node_source.data["name"]) == len(graph.nodes) > shown
    assert app.sections["structure"].visible and not app.sections["results"].visible


def test_structure_section_traces_a_variable(app):
    from ningbo_sd.app.structure import graph_layout, mentions, model_graph, neighbourhood

    graph = model_graph()
    equations = {n.name: n.equation for n in graph.nodes}
    focus = "Gross Output"
    causes, uses = neighbourhood(graph, focus)
    assert "Cluster Gross Output" in causes and {"Revenue", "Value Added Rate"} <= set(uses)
    assert all(mentions(equations[focus], cause) for cause in causes)  # read off the file
    assert all(mentions(equations[use], focus) for use in uses)
    app.show_section("structure")
    view = app.views["structure"]
    view.trace.value = focus
    layout = graph_layout()
    into, out = view.trace_sources["causes"].data, view.trace_sources["uses"].data
    assert sorted(zip(into["x0"], into["y0"], strict=True)) == sorted(layout[c] for c in causes)
    assert len(out["x0"]) == len(uses)
    assert set(zip(out["x0"], out["y0"], strict=True)) == {layout[focus]}
    alpha = dict(zip(view.node_source.data["name"], view.node_source.data["alpha"], strict=True))
    near = {focus, *causes, *uses}
    assert all(alpha[name] > 0.9 for name in near)
    assert all(value < 0.2 for name, value in alpha.items() if name not in near)
    assert f"Used by</b> ({len(uses)})" in view.details.object
    frame = view.frame_source.data  # the plot zooms to the neighbourhood
    for axis, values in (("x", [layout[n][0] for n in near]), ("y", [layout[n][1] for n in near])):
        assert min(frame[axis]) < min(values) and max(frame[axis]) > max(values)
    assert view.figure.x_range.renderers == [view.frame] == view.figure.y_range.renderers
    view.node_source.selected.indices = [view.node_source.data["name"].index("Revenue")]
    assert view.trace.value == "Revenue" and view.node_source.selected.indices == []
    view.constants.value = True  # trace a constant, then hide the constants again
    view.trace.value = next(n.name for n in graph.nodes if n.kind == "constant")
    view.constants.value = False
    assert view.trace.value == "" and view.details.object == ""
    assert view.trace_sources["causes"].data["x0"] == [] and view.figure.x_range.renderers == []
    assert set(view.node_source.data["alpha"]) == {0.95}


def test_published_figures_are_drawn_once_with_their_sources(app, warm_engine, tmp_path):
    from bokeh.models import HoverTool

    from ningbo_sd.app.main import App
    from ningbo_sd.app.published import published_points
    from ningbo_sd.plan.actuals import load_actuals
    from ningbo_sd.scenarios.schema import SCENARIO_DIR

    actuals = load_actuals().set_index("id")
    source = app.charts.published.sources["gross_output"]
    points = dict(zip(source.data["year"], source.data["value"], strict=True))
    assert points[2021.0] == pytest.approx(22100) and points[2022.0] == pytest.approx(24300)
    assert 2018.0 not in points  # the 2018 figure is all industry, not the model's scope
    for year, row_id in ((2021.0, "gross_output_2021"), (2022.0, "gross_output_2022")):
        i = source.data["year"].index(year)
        row = actuals.loc[row_id]
        text = source.data["source"][i]
        assert row["publisher"] in text and row["published"] in text and row["title"] in text
        assert source.data["grade"][i] == row["confidence"]
        assert source.data["confidence"][i].startswith(f"{row['confidence']}: ")
    assert 2021.0 in app.charts.published.sources["value_added"].data["year"]
    patents = app.charts.published.sources["effective_patents"]  # on the right-hand axis
    assert app.charts.published.axis_of["effective_patents"] == app.charts.patents_axis
    assert patents.data["value"] and out_of_view(app.charts.figures["innovation"]) == []
    figure = app.charts.figures["gross_output"]
    (marker,) = [r for r in figure.renderers if r.data_source is source]
    (hover,) = [t for t in figure.tools if isinstance(t, HoverTool) and marker in t.renderers]
    assert ("Source", "@source") in hover.tooltips
    assert not any("{safe}" in value for _, value in hover.tooltips)  # Bokeh escapes them
    assert "published figure" in app.charts.headers["gross_output"].object
    # read once per process; a slider move sends nothing for the markers
    misses = published_points.cache_info().misses
    data = source.data
    app.levers.widget(INVESTMENT).value = 12.0
    assert source.data is data and app.charts.published.sources["gross_output"] is source
    App(scenario_dirs=(SCENARIO_DIR, tmp_path))
    assert published_points.cache_info().misses == misses
    app.state.settings.language = "zh"
    assert hover.tooltips[1] == ("出处", "@source") and "亿元" in source.data["text"][0]


def test_review_section_shows_each_2025_target_and_its_published_outcome(app):
    from ningbo_sd.app.review import review_table, target_years
    from ningbo_sd.scenarios.scorecard import with_published

    app.show_section("review")
    view = app.views["review"]
    table = view.table_data.set_index("id")
    card = app.state.scorecard.set_index("id")
    assert "gross_output_2035" not in table.index  # a 2035 target
    assert set(table.index) == {i for i in card.index if target_years()[i] == 2025}
    row = table.loc["high_tech_firms_2025"]
    assert row["published"] == pytest.approx(10000) and bool(row["met_in_fact"]) is True
    assert row["simulated"] == pytest.approx(card.loc["high_tech_firms_2025", "simulated"])
    assert row["met"] == card.loc["high_tech_firms_2025", "met"]  # what the model said
    assert row["published_confidence"] == "B"
    expected = with_published(app.state.scorecard).set_index("id").loc[table.index]
    pd.testing.assert_series_equal(table["published"], expected["published"])
    assert (table["published_source"].fillna("") == expected["published_source"].fillna("")).all()
    shown = view.table.object
    assert 'data-id="high_tech_firms_2025"' in shown and "10,000" in shown
    assert "宁波日报" in shown and "Met in fact" in shown and "[B]" in shown
    assert "2 with a published outcome" in view.summary.object
    view.only_published.value = True
    assert shown.count("<tr data-id") > view.table.object.count("<tr data-id") == 2
    # hidden, it waits; shown again, it shows the current settings
    app.show_section("results")
    app.levers.widget(INVESTMENT).value = 13.0
    assert view._stale
    app.show_section("review")
    now = app.state.scorecard.set_index("id").loc["high_tech_firms_2025", "simulated"]
    assert view.table_data.set_index("id").loc["high_tech_firms_2025", "simulated"] == now
    app.state.settings.language = "zh"
    assert "实际是否达成" in view.table.object and "规划回顾" in view.title.object
    assert review_table(None).empty


def test_review_section_shows_the_track_record_of_ningbo_sd_check(app):
    from ningbo_sd.app.track_record import track_record_html
    from ningbo_sd.validation.evidence import indicator_errors, out_of_sample

    app.show_section("review")
    view = app.views["review"]
    expected = indicator_errors(out_of_sample(calibrated=app.state.calibrated).table)
    pd.testing.assert_frame_equal(view.track_data, expected)
    shown = view.track.object
    gross = expected.set_index("indicator").loc["gross_output"]
    row = shown.split('data-indicator="gross_output"')[1].split("</tr>")[0]
    assert "Gross industrial output (above-scale)" in row
    assert f"{gross['mape_pct']:.1f}%" in row
    assert f"{gross['figures']:.0f} ({gross['levels']:.0f})" in row
    # an indicator only the published figures use takes its output column's label
    assert "R&amp;D spending" in shown.split('data-indicator="rd_expenditure"')[1]
    levels = int(expected["levels"].sum())
    assert f"{levels} of them levels" in view.track_summary.object
    app.state.settings.language = "zh"
    assert "规上工业总产值" in view.track.object and "检验记录" in view.track_title.object
    hostile = expected.head(1).assign(indicator='<img src=x onerror="alert(1)">')
    html = track_record_html(hostile, "en")
    assert "<img" not in html and "&lt;img" in html


def test_review_table_escapes_every_text(app):
    from ningbo_sd.app.review import review_html, review_table

    table = review_table(app.state.scorecard)
    row = table.index[table["id"] == "high_tech_firms_2025"][0]
    table.loc[row, "published_source"] = '<script>alert("x")</script> & <b>'
    table.loc[row, "reading"] = '" onmouseover="alert(1)'
    table.loc[row, "label_en"] = "<img src=x>"
    text = review_html(table, "en")
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in text
    assert 'title="&quot; onmouseover=&quot;alert(1)"' in text
