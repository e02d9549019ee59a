"""In-process tests of the Panel app: state, widgets, charts, scorecard, files, language.

No browser here (see ``test_app_ui.py``): the App object is built as a session would
build it, widgets are set from Python, and the computed outputs are checked against
``ningbo_sd.scenarios.run`` directly.
"""

from __future__ import annotations

import html
import io
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from ningbo_sd.app.settings import (
    default_settings,
    lever_controls,
    scenario_to_settings,
    settings_class,
    settings_to_scenario,
)
from ningbo_sd.app.state import list_scenarios
from ningbo_sd.app.text import TEXTS, cluster_label, tr
from ningbo_sd.app.views import format_value, scorecard_cells, scorecard_html
from ningbo_sd.scenarios.run import run_scenario
from ningbo_sd.scenarios.schema import SCENARIO_DIR, load_scenario, scenario_parameters

INVESTMENT = "investment_growth_2021_2025"
RD_2025 = "rd_intensity_2021_2025"


def shown_text(pane) -> str:
    """The text a Markdown pane (the alert) shows: its rendered HTML without the tags."""
    rendered = html.unescape(pane.get_root().text)  # Bokeh's model holds the HTML escaped
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def test_app_starts_on_the_baseline(app, baseline):
    state = app.state
    assert state.scenario_name == "baseline"
    pd.testing.assert_frame_equal(state.results, baseline)
    output, ratio = app.numbers.values()
    assert output == pytest.approx(baseline.loc[2035, "gross_output"])
    assert ratio == pytest.approx(
        baseline.loc[2035, "gross_output"] / baseline.loc[2020, "gross_output"]
    )
    assert app.numbers.output.value == pytest.approx(output, abs=0.1)
    source = app.charts.sources["current"].data
    np.testing.assert_allclose(source["gross_output"], baseline["gross_output"].to_numpy())
    np.testing.assert_allclose(source["year"], baseline.index.to_numpy())


def test_moving_a_slider_reruns_and_updates_views_in_place(app, baseline):
    figure = app.charts.figures["gross_output"]
    source = app.charts.sources["current"]
    runs = app.state.runs
    app.levers.widget(INVESTMENT).value = 13.0
    assert app.state.runs == runs + 1
    assert app.state.settings.investment_growth_2021_2025 == 13.0
    expected = run_scenario(app.state.current_scenario())
    pd.testing.assert_frame_equal(app.state.results, expected)
    assert expected.loc[2035, "gross_output"] > baseline.loc[2035, "gross_output"]
    assert app.charts.figures["gross_output"] is figure  # updated, not rebuilt
    assert app.charts.sources["current"] is source
    assert source.data["gross_output"][-1] == pytest.approx(expected.loc[2035, "gross_output"])
    assert app.numbers.output.value == pytest.approx(expected.loc[2035, "gross_output"], abs=0.1)
    assert app.charts.marks.data["y"][-1] == pytest.approx(expected.loc[2035, "gross_output"])


def test_slider_values_reach_the_model_in_model_units(app):
    app.levers.widget(RD_2025).value = 3.1
    app.levers.widget(f"{RD_2025}_shape").value = "step"
    scenario = app.state.current_scenario()
    params = scenario_parameters(scenario)
    assert params["RD Intensity 2021 2025"] == pytest.approx(0.031)
    assert params["RD Intensity Shape 2021 2025"] == 0.0
    assert app.state.results.loc[2025, "rd_intensity"] == pytest.approx(3.1)


def test_same_data_compares_columns_values_and_nan():
    from ningbo_sd.app.charts import same_data

    nan = float("nan")
    assert same_data({"a": [1.0, nan], "b": ["x"]}, {"a": [1.0, nan], "b": ["x"]})
    assert not same_data({"a": [1.0, 2.0]}, {"a": [1.0, 2.5]})
    assert not same_data({"a": [1.0]}, {"a": [1.0, 1.0]})
    assert not same_data({"a": [1.0]}, {"b": [1.0]})
    assert not same_data({"a": [1, 2]}, {"a": [1.0, 2.0]})  # a type change is a change


def test_unchanged_chart_series_are_not_resent(app):
    land, output = (app.charts.figure_sources[name] for name in ("land", "gross_output"))
    land_before, output_before = land.data, output.data
    app.levers.widget(RD_2025).value = 3.3
    assert land.data is land_before  # R&D intensity does not move the land series
    assert output.data is not output_before
    np.testing.assert_allclose(output.data["gross_output"], app.state.results["gross_output"])


def test_scorecard_follows_the_levers(app):
    def rd_met():
        card = app.state.scorecard.set_index("id")
        return bool(card.loc["rd_intensity_2025", "met"])

    app.levers.widget(RD_2025).value = 2.0
    assert not rd_met()
    assert app.scorecard.row("rd_intensity_2025")["met"] == "met_no"
    app.levers.widget(RD_2025).value = 3.0
    assert rd_met()
    row = app.scorecard.rows().set_index("id").loc["rd_intensity_2025"]
    assert row["simulated"] == pytest.approx(app.state.results.loc[2025, "rd_intensity"])
    shown = app.scorecard.row("rd_intensity_2025")
    assert shown["met"] == "met_yes"
    assert shown["cells"][1] == format_value(row["simulated"])
    assert [r["id"] for r in app.scorecard.table.shown_rows()] == list(app.scorecard.rows()["id"])


def test_scorecard_cells_are_text_and_the_html_table_escapes_them(app):
    card = app.state.scorecard.copy()
    card.loc[card.index[0], "label_en"] = "R&D <b>share</b>"
    card.loc[card.index[0], "reading"] = 'a "quoted" reading'
    header, rows = scorecard_cells(card, "en")
    assert len(header) == 5 and len(rows) == len(card)
    assert rows[0]["cells"][0] == "R&D <b>share</b>"  # text: the component sets textContent
    assert {row["met"] for row in rows} <= {"met_yes", "met_no", "met_na"}
    markup = scorecard_html(card, "en")
    assert "R&amp;D &lt;b&gt;share&lt;/b&gt;" in markup and "<b>" not in markup
    assert 'title="a &quot;quoted&quot; reading"' in markup
    assert markup.count('<tr data-met="') == len(card)
    with_p = scorecard_html(card, "en", pd.Series({card["id"].iloc[0]: 0.25}))
    assert "25%" in with_p and tr("col_probability", "en") in with_p


def test_scorecard_shows_only_modelled_targets_unless_asked(app):
    shown = app.scorecard.rows()
    assert shown["modelled"].all()
    app.scorecard.show_all.value = True
    assert len(app.scorecard.rows()) == len(app.state.scorecard) > len(shown)


def test_language_switch_relabels_everything(app):
    app.state.settings.language = "zh"
    assert tr("chart_gross_output", "zh") in app.charts.headers["gross_output"].object
    assert app.levers.cards["investment"].title == tr("family_investment", "zh")
    assert tr("tab_results", "zh") in app.section.options
    assert app.numbers.output.label.startswith(tr("big_output", "zh"))
    cluster_card = app.levers.cards["clusters"]
    cluster_card.collapsed = False
    assert app.levers.widget("cluster_priority_weight_auto").name == cluster_label("auto", "zh")
    assert cluster_label("petrochem", "zh") in app.charts.headers["clusters"].object
    zh_header = [tr(k, "zh") for k in ("col_target", "col_simulated", "col_goal", "col_unit")]
    assert app.scorecard.table.header[:4] == zh_header
    labels = app.scorecard.rows().set_index("id")["label_zh"]
    assert app.scorecard.row("rd_intensity_2025")["cells"][0] == labels["rd_intensity_2025"]
    assert app.scenario_panel.reset.name == tr("reset", "zh")
    app.state.settings.language = "en"
    assert tr("chart_gross_output", "en") in app.charts.headers["gross_output"].object


def test_every_text_has_both_languages():
    for key, texts in TEXTS.items():
        assert texts["en"].strip() and texts["zh"].strip(), key


def test_invalid_scenario_file_keeps_the_last_good_state(app, tmp_path):
    app.levers.widget(INVESTMENT).value = 9.0
    results = app.state.results
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "title: {en: x, zh: y}\ndescription: {en: x, zh: y}\n"
        "levers:\n  investment_growth:\n    2021-2025: 7.5\n",
        encoding="utf-8",
    )
    assert not app.state.load_scenario(bad)
    level, text = app.state.message
    assert level == "error"
    assert "bad.yaml" in text and "investment_growth" in text
    assert app.state.results is results
    assert app.state.settings.investment_growth_2021_2025 == 9.0
    assert app.alert.visible and "bad.yaml" in shown_text(app.alert)


def test_picking_an_invalid_file_in_the_picker_reverts_the_picker(app, tmp_path):
    (tmp_path / "broken.yaml").write_text("title: [unclosed\n", encoding="utf-8")
    app.scenario_panel.refresh_scenarios()
    assert "broken" in app.scenario_panel.picker.options.values()
    results = app.state.results
    app.scenario_panel.picker.value = "broken"
    assert app.scenario_panel.picker.value == "baseline"
    assert app.state.results is results
    assert "malformed YAML" in app.state.message[1]


def test_uploaded_scenario_is_validated(app):
    results = app.state.results
    assert not app.state.load_scenario_text(b"title: x\n", "upload.yaml")
    assert "upload.yaml" in app.state.message[1] and "title" in app.state.message[1]
    assert not app.state.load_scenario_text(b"\xff\xfe", "binary.yaml")
    assert app.state.results is results
    good = yaml.safe_dump(
        {
            "title": {"en": "Up", "zh": "上传"},
            "description": {"en": "d", "zh": "d"},
            "levers": {"investment_growth": {"2021-2025": {"value": 0.1, "shape": "ramp"}}},
        }
    )
    assert app.state.load_scenario_text(good.encode(), "up.yaml")
    assert app.state.settings.investment_growth_2021_2025 == pytest.approx(10.0)
    assert app.state.settings.investment_growth_2021_2025_shape == "ramp"


def test_out_of_range_settings_are_rejected(app):
    results = app.state.results
    assert not app.state.apply_settings({INVESTMENT: 99.0})
    assert "investment_growth_2021_2025" in app.state.message[1]
    assert not app.state.apply_settings({"no_such_lever": 1.0})
    assert app.state.results is results
    assert app.state.settings.investment_growth_2021_2025 == pytest.approx(6.6)


def test_url_values_are_applied_one_by_one(app):
    app.apply_url_values({INVESTMENT: 99.0, "language": "zh", RD_2025: 2.8})
    assert app.state.language == "zh"
    assert app.state.settings.rd_intensity_2021_2025 == 2.8
    assert app.state.settings.investment_growth_2021_2025 == pytest.approx(6.6)
    assert app.state.message[0] == "error" and INVESTMENT in app.state.message[1]


@pytest.mark.parametrize("name", sorted(list_scenarios(SCENARIO_DIR)))
def test_loading_a_bundled_scenario_runs_exactly_that_scenario(app, name):
    assert app.state.load_scenario(name)
    expected = run_scenario(name)
    pd.testing.assert_frame_equal(app.state.results, expected)
    from_file = scenario_parameters(load_scenario(name))
    from_app = scenario_parameters(app.state.current_scenario())
    for constant, value in from_file.items():
        np.testing.assert_allclose(from_app[constant], value, err_msg=constant)


def test_scenario_picker_and_reset(app):
    app.scenario_panel.picker.value = "plan_2025"
    assert app.state.scenario_name == "plan_2025"
    assert app.levers.widget(INVESTMENT).value == pytest.approx(13.0)
    pd.testing.assert_frame_equal(app.state.results, run_scenario("plan_2025"))
    app.scenario_panel.reset.clicks += 1
    assert app.state.scenario_name == "baseline"
    assert app.levers.widget(INVESTMENT).value == pytest.approx(6.6)
    assert app.scenario_panel.picker.value == "baseline"


def test_save_writes_a_valid_scenario_and_never_overwrites(app, tmp_path):
    app.levers.widget(INVESTMENT).value = 11.5
    panel = app.scenario_panel
    panel.save_name.value = "my_case"
    panel.save_title.value = "My case"
    panel.save.clicks += 1
    path = tmp_path / "my_case.yaml"
    assert path.is_file()
    assert not list(tmp_path.glob(".*.tmp"))
    saved = load_scenario(path)
    assert saved.title.en == "My case"
    assert scenario_parameters(saved)["Investment Growth 2021 2025"] == pytest.approx(0.115)
    assert "my_case" in panel.picker.options.values()
    before = path.read_text(encoding="utf-8")
    app.levers.widget(INVESTMENT).value = 3.0
    panel.save.clicks += 1
    assert "exists" in app.state.message[1]
    assert path.read_text(encoding="utf-8") == before
    panel.save_name.value = "../escape"
    panel.save.clicks += 1
    assert "scenario name" in app.state.message[1]
    assert not (tmp_path.parent / "escape.yaml").exists()


def test_downloads(app):
    frame = pd.read_csv(io.StringIO(app.scenario_panel._csv_file().getvalue()), index_col="year")
    np.testing.assert_allclose(frame["gross_output"], app.state.results["gross_output"])
    text = app.scenario_panel._yaml_file().getvalue().decode("utf-8")
    downloaded = scenario_parameters(_parse_text(text))
    current = scenario_parameters(app.state.current_scenario())
    assert downloaded.keys() == current.keys()
    for name, value in current.items():
        np.testing.assert_allclose(downloaded[name], value, err_msg=name)


def _parse_text(text: str):
    from ningbo_sd.scenarios.schema import parse_scenario

    return parse_scenario(yaml.safe_load(text), source="download")


def test_pin_and_compare_overlay(app):
    app.scenario_panel.pin.clicks += 1
    pinned = app.charts.sources["pinned"].data["gross_output"]
    np.testing.assert_allclose(pinned, app.state.results["gross_output"])
    assert "pinned" in {key.group for key in app.charts.shown_keys("gross_output")}
    app.levers.widget(INVESTMENT).value = 12.0
    assert app.charts.sources["pinned"].data["gross_output"][-1] == pytest.approx(pinned[-1])
    assert app.charts.sources["current"].data["gross_output"][-1] > pinned[-1]
    app.scenario_panel.compare.value = "energy_tight"
    compare = app.charts.sources["compare"].data["gross_output"]
    np.testing.assert_allclose(compare, run_scenario("energy_tight")["gross_output"])
    assert "energy_tight" in app.charts.headers["value_added"].object
    app.scenario_panel.unpin.clicks += 1
    assert len(app.charts.sources["pinned"].data["gross_output"]) == 0
    assert "pinned" not in {key.group for key in app.charts.shown_keys("gross_output")}


def chart_models(app) -> dict:
    """Every Bokeh model of the main view's figures, by id."""
    return {m.id: m for fig in app.charts.figures.values() for m in fig.references()}


def test_main_charts_are_hvplot_charts_rendered_by_holoviews(app):
    from ningbo_sd.app.hvplot import _RENDERED

    assert set(app.charts.figures) <= set(_RENDERED)  # each rendered once per process
    for name, fig in app.charts.figures.items():
        assert fig.x_range.tags[0][0][0] == "year", name  # HoloViews tags its ranges
        glyphs = [r for r in fig.renderers if hasattr(r, "glyph") and r.glyph is not None]
        sources = {r.data_source.name for r in glyphs}
        published = {f"published-{column}" for column in app.charts.published.sources}
        assert sources <= {f"{name}-run", "current-run", None, *published}, (name, sources)
    clusters = app.charts.figures["clusters"].renderers
    assert len(clusters) == 13 and {type(r.glyph).__name__ for r in clusters} == {"VArea"}


def test_sessions_get_their_own_chart_models(app, tmp_path):
    from ningbo_sd.app.main import App

    other = App(scenario_dirs=(SCENARIO_DIR, tmp_path))
    assert not set(chart_models(app)) & set(chart_models(other))
    assert app.charts.sources["current"] is not other.charts.sources["current"]


def test_a_slider_move_replaces_no_chart_model(app):
    before = chart_models(app)
    app.levers.widget(RD_2025).value = 3.9
    after = chart_models(app)
    assert after.keys() == before.keys()
    assert all(after[key] is model for key, model in before.items())
    assert app.charts.figures["innovation"].renderers[0].data_source.data["rd_intensity"][
        10
    ] == pytest.approx(3.9)  # 2025, the end of the ramp


def test_language_switch_relabels_the_rendered_charts(app):
    app.state.settings.language = "zh"
    assert app.charts.figures["value_added"].xaxis[0].axis_label == tr("year", "zh")
    labels = app.charts.figures["binding"].yaxis[0].major_label_overrides
    assert labels[0] == tr("capital", "zh")


def test_url_query_round_trips_the_settings(app):
    from urllib.parse import urlencode

    from panel.util import parse_query

    assert app.state.load_scenario("rd_push") and app.state.set_compare("plan_2025")
    app.state.settings.param.update(**{RD_2025: 3.3, "language": "zh"})
    query = parse_query("?" + urlencode(app.url_query()))
    assert (query.pop("scenario"), query.pop("compare")) == ("rd_push", "plan_2025")
    other = settings_class()()
    other.param.update(**query)
    assert other.rd_intensity_2021_2025 == 3.3 and other.language == "zh"
    assert query == {name: getattr(app.state.settings, name) for name in query}


def test_url_scenarios_are_loaded_before_the_url_settings(app, warm_engine):
    app.apply_url_scenarios({"scenario": "energy_tight", "compare": "plan_2025"})
    state = app.state
    assert (state.scenario_name, state.compare_name) == ("energy_tight", "plan_2025")
    pd.testing.assert_frame_equal(state.results, run_scenario("energy_tight"))
    pd.testing.assert_frame_equal(state.compare, run_scenario("plan_2025"))
    assert app.scenario_panel.picker.value == "energy_tight"
    assert app.scenario_panel.compare.value == "plan_2025"
    assert app.charts.sources["compare"].data["gross_output"]  # the overlay is drawn
    results = state.results
    app.apply_url_scenarios({"scenario": "../etc/passwd", "compare": "nope"})
    level, text = state.message
    assert level == "error" and "scenario='../etc/passwd'" in text and "compare='nope'" in text
    assert "allowed: baseline" in text
    assert (state.scenario_name, state.compare_name) == ("energy_tight", "plan_2025")
    assert state.results is results  # nothing rerun, the last good view kept
    app.apply_url_scenarios({"compare": ""})  # empty: nothing to compare, nothing to report
    assert state.compare_name == "plan_2025"


def test_valid_url_values_are_applied_in_one_run(app):
    runs = app.state.runs
    app.apply_url_values({INVESTMENT: 9.0, RD_2025: 2.8})
    assert app.state.runs == runs + 1
    assert app.state.settings.investment_growth_2021_2025 == 9.0


def test_browser_fixes_are_attached_once_per_document():
    from bokeh.document import Document

    from ningbo_sd.app.bokehjs import FIX_JS, FIXES, OFFSCREEN_MARGIN_PX, install_fixes

    doc = Document()
    assert install_fixes(doc) and not install_fixes(doc)
    (callback,) = doc.callbacks.js_event_callbacks["document_ready"]
    assert all(f'"{name}"' in FIX_JS for name in FIXES)
    assert f'rootMargin: "{OFFSCREEN_MARGIN_PX}px"' in FIX_JS and "__" not in FIX_JS
    assert callback.code == FIX_JS
    assert not install_fixes(None)


def test_rarely_used_parts_are_built_when_first_needed(app):
    files = app.sidebar_cards["files"]
    assert files.objects == []
    files.collapsed = False
    assert app.scenario_panel.upload in files.objects[0].objects
    pinned = app.charts.sources["pinned"]
    figure = app.charts.figures["gross_output"]

    def sources():
        return [renderer.data_source for renderer in figure.renderers]

    assert pinned not in sources()
    app.state.pin()
    assert pinned in sources()
    assert sum(source is pinned for source in sources()) == 1
    app.state.unpin()
    app.state.pin()
    assert sum(source is pinned for source in sources()) == 1  # added once


def test_sessions_do_not_share_settings(warm_engine, tmp_path):
    from ningbo_sd.app.main import App

    first, second = App(scenario_dirs=(SCENARIO_DIR, tmp_path)), App(scenario_dirs=(tmp_path,))
    first.levers.widget(INVESTMENT).value = 14.0
    assert second.state.settings.investment_growth_2021_2025 == pytest.approx(6.6)
    assert (
        second.state.results.loc[2035, "gross_output"]
        < first.state.results.loc[2035, "gross_output"]
    )
    assert first.state.settings is not second.state.settings


def test_settings_and_scenarios_round_trip(warm_engine):
    settings = settings_class()()
    for control in lever_controls():
        assert control.start <= getattr(settings, control.name) <= control.end
    scenario = settings_to_scenario(settings, {"en": "t", "zh": "t"}, {"en": "d", "zh": "d"})
    values, extra = scenario_to_settings(scenario)
    assert values == default_settings() and extra == {}


def test_parameters_that_set_lever_constants_move_the_sliders(warm_engine):
    data = {
        "title": {"en": "t", "zh": "t"},
        "description": {"en": "d", "zh": "d"},
        "parameters": {"Investment Growth 2021 2025": 0.08, "Price Inflation Future": 0.02},
    }
    from ningbo_sd.scenarios.schema import parse_scenario

    values, extra = scenario_to_settings(parse_scenario(data))
    assert values[INVESTMENT] == pytest.approx(8.0)
    assert extra == {"Price Inflation Future": 0.02}


def test_registries_are_not_listed_as_scenarios():
    names = list_scenarios(SCENARIO_DIR)
    assert "baseline" in names and next(iter(names)) == "baseline"
    assert not {"levers", "targets", "uncertainty"} & set(names)


def test_importing_app_has_no_side_effects():
    import importlib

    import panel as pn

    module = importlib.import_module("ningbo_sd.app.main")
    assert not pn.state.served
    assert callable(module.create_app)
