"""Real-browser tests of the Panel app (headless Debian Chromium through Playwright).

The server is started by a fixture (``pn.serve(..., threaded=True)``) on a free port and
stopped afterwards; saved scenarios go to ``tmp_path``. Panel renders inside shadow roots,
so elements are found with Playwright locators (which pierce them) and the run's data is
read from the page's Bokeh document.
"""

from __future__ import annotations

import re
import time

import pytest
from servers import free_port, headless_chromium, served, wait_for_port

pytestmark = pytest.mark.ui

LOAD_TIMEOUT_MS = 60_000
LAST_OUTPUT_JS = """() => {
  const cds = Bokeh.documents[0].get_model_by_name('current-run');
  return cds.data.gross_output[cds.data.gross_output.length - 1];
}"""
READY_JS = """() => {
  if (!window.Bokeh || !Bokeh.documents.length) return false;
  const cds = Bokeh.documents[0].get_model_by_name('current-run');
  return cds !== null && cds.data.gross_output.length > 0;
}"""
SET_SLIDER_JS = """([name, value]) => {
  const slider = [...Bokeh.documents[0].all_models].find(
    m => m.type === 'Slider' && m.tags.includes(name));
  slider.value = value;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app served on a free local port for this module's tests."""
    import panel as pn

    from ningbo_sd.app.main import create_app, warm_up
    from ningbo_sd.scenarios.schema import SCENARIO_DIR

    warm_up()
    saves = tmp_path_factory.mktemp("saved_scenarios")
    port = free_port()
    handle = pn.serve(
        lambda: create_app(scenario_dirs=(SCENARIO_DIR, saves)),
        address="127.0.0.1",
        port=port,
        threaded=True,
        show=False,
        title="test",
    )
    wait_for_port(port, None, 30)
    yield f"http://127.0.0.1:{port}/"
    handle.stop()


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture()
def page(browser, server):
    """A fresh session with its console errors collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.goto(server, wait_until="load")
    tab.wait_for_function(READY_JS, timeout=LOAD_TIMEOUT_MS)
    # the run's data can be in the page before the widgets are drawn: wait for both columns
    tab.get_by_text("Policy levers").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    tab.get_by_text("Plan targets: scorecard").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    yield tab
    context.close()


def big_number(page) -> str:
    """The text of the 2035 gross output figure (waiting until it is drawn)."""
    number = re.compile(r"^\s*[\d,]+\s*$")
    page.locator(".big-output div").filter(has_text=number).first.wait_for(timeout=20_000)
    texts = page.locator(".big-output div").all_inner_texts()
    numbers = [t for t in texts if re.fullmatch(r"[\d,]+", t.strip())]
    assert numbers, f"no number in the 2035 output figure: {texts}"
    return numbers[0].strip()


def test_page_loads_without_console_errors(page):
    assert page.get_by_text("Gross output 2035").first.is_visible()
    assert re.fullmatch(r"\d{1,3}(,\d{3})+", big_number(page))
    assert page.get_by_text("Plan targets: scorecard").first.is_visible()
    page.wait_for_timeout(500)
    assert page.errors == []


def test_repaint_fixes_are_applied_and_moves_do_not_rewrite_styles(page):
    from ningbo_sd.app.bokehjs import FIXES

    page.wait_for_function("() => window.ningboBokehFixes !== undefined", timeout=20_000)
    assert page.evaluate("() => window.ningboBokehFixes") == list(FIXES)
    # count the style-sheet writes of one slider move: only changed sheets are written
    writes = page.evaluate(
        """async ([name]) => {
      const dom = Bokeh.require("core/dom");
      const proto = dom.InlineStyleSheet.prototype, update = proto._update;
      let written = 0, asked = 0;
      proto._update = function (css) {
        asked += 1;
        written += this.el.textContent !== css;
        update.call(this, css);
      };
      const doc = Bokeh.documents[0];
      const cds = doc.get_model_by_name('current-run');
      const changed = new Promise(r => cds.connect(cds.properties.data.change, r));
      [...doc.all_models].find(m => m.type === 'Slider' && m.tags.includes(name)).value = 9.5;
      await changed;
      await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
      proto._update = update;
      return [written, asked];
    }""",
        ["investment_growth_2021_2025"],
    )
    written, asked = writes
    mutations = page.evaluate(
        """async () => {
      const sheet = new (Bokeh.require("core/dom").InlineStyleSheet)(":host{top:1px}");
      const records = [];
      new MutationObserver(r => records.push(...r)).observe(
        sheet.el, {childList: true, characterData: true, subtree: true});
      sheet.replace(":host{top:1px}");  // unchanged: not written
      await new Promise(r => setTimeout(r, 0));
      const unchanged = records.length;
      sheet.replace(":host{top:2px}");
      await new Promise(r => setTimeout(r, 0));
      return [unchanged, records.length];
    }"""
    )
    assert mutations[0] == 0 and mutations[1] > 0
    assert asked > 20  # every renderer's paint asks to write its position sheet ...
    assert written < asked / 2  # ... but unchanged sheets are no longer rewritten
    assert page.errors == []


def test_scorecard_table_is_updated_in_place(page):
    cell = page.locator('tr[data-id="gross_output_2035"] td').nth(1)
    cell.wait_for(timeout=20_000)
    before = cell.inner_text()
    # mark the table element: a rebuilt table would lose the mark
    page.locator("table.scorecard").first.evaluate("t => { t.ningboMark = 'kept'; }")
    page.evaluate(SET_SLIDER_JS, ["investment_growth_2021_2025", 9.5])
    deadline = time.monotonic() + 20
    while cell.inner_text() == before and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert cell.inner_text() != before
    table = page.locator("table.scorecard").first
    assert table.evaluate("t => t.isConnected && t.ningboMark") == "kept"
    assert page.errors == []


def test_offscreen_charts_repaint_when_scrolled_into_view(page):
    page.set_viewport_size({"width": 1500, "height": 500})  # the lower charts out of view
    page.wait_for_function("() => window.ningboOffscreen !== undefined", timeout=20_000)
    counts = "() => [window.ningboOffscreen.deferred, window.ningboOffscreen.caught_up]"
    deferred, caught_up = page.evaluate(counts)
    before = page.evaluate(LAST_OUTPUT_JS)
    page.evaluate(SET_SLIDER_JS, ["investment_growth_2021_2025", 9.5])
    page.wait_for_function(f"() => ({LAST_OUTPUT_JS})() !== {before}", timeout=20_000)
    page.wait_for_function(f"() => ({counts})()[0] > {deferred}", timeout=20_000)
    assert page.evaluate(counts)[1] == caught_up  # nothing made up while out of view
    page.get_by_text("Plan targets: scorecard").first.scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({counts})()[1] > {caught_up}", timeout=20_000)
    assert page.errors == []


def open_innovation_levers(page) -> None:
    """Fold the investment levers and unfold the innovation ones (R&D intensity first)."""
    page.get_by_text("Investment", exact=True).first.click()
    page.get_by_text("Innovation: R&D and talent").first.click()
    page.get_by_text("R&D intensity (R&D / revenue)").first.wait_for(timeout=20_000)


def test_slider_drag_updates_output_chart_and_scorecard(page):
    before_number, before_chart = big_number(page), page.evaluate(LAST_OUTPUT_JS)
    open_innovation_levers(page)
    handle = page.locator(".noUi-handle >> visible=true").first
    handle.wait_for(timeout=20_000)
    box = handle.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 60, y, steps=8)
    page.mouse.up()
    page.wait_for_function(f"() => ({LAST_OUTPUT_JS})() !== {before_chart}", timeout=20_000)
    deadline = time.monotonic() + 20
    while big_number(page) == before_number and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert big_number(page) != before_number
    # R&D intensity dragged well above the plan's 2.5 %: its 2025 target turns green
    from ningbo_sd.scenarios.scorecard import load_target_specs

    label = next(spec.label_en for spec in load_target_specs() if spec.id == "rd_intensity_2025")
    row = page.locator('tr[data-met="met_yes"]', has_text=label)
    row.first.wait_for(timeout=20_000)
    assert page.errors == []


def test_language_switch_changes_labels(page):
    assert page.get_by_text("Policy levers").first.is_visible()
    page.get_by_role("button", name="中文").click()
    page.get_by_text("政策杠杆").first.wait_for(timeout=20_000)
    assert page.get_by_text("规划目标完成情况").first.is_visible()
    assert page.get_by_text("2035年工业总产值").first.is_visible()  # the big number's title
    assert page.get_by_text("Policy levers").count() == 0
    assert page.errors == []


def test_scenario_picker_loads_a_scenario(page):
    from ningbo_sd.app.state import scenario_title
    from ningbo_sd.scenarios.schema import SCENARIO_DIR

    before = page.evaluate(LAST_OUTPUT_JS)
    label = scenario_title(SCENARIO_DIR / "plan_2025.yaml", "en")
    page.locator("select").first.select_option(label=label)
    page.wait_for_function(f"() => ({LAST_OUTPUT_JS})() !== {before}", timeout=20_000)
    page.get_by_text("2021-2025: 13").first.wait_for(timeout=20_000)
    assert page.errors == []


def test_url_carries_the_settings(page, server):
    open_innovation_levers(page)
    page.evaluate(SET_SLIDER_JS, ["rd_intensity_2021_2025", 3.3])
    page.wait_for_function("() => window.location.search.includes('rd_intensity_2021_2025=3.3')")
    shared = page.context.new_page()
    shared.goto(page.url, wait_until="load")
    shared.wait_for_function(READY_JS, timeout=LOAD_TIMEOUT_MS)
    shared.get_by_text("Innovation: R&D and talent").first.click()
    shared.get_by_text("2021-2025: 3.3").first.wait_for(timeout=20_000)
    shared.close()


def test_url_carries_the_scenario_and_the_compared_one(page):
    from ningbo_sd.app.state import scenario_title
    from ningbo_sd.scenarios.schema import SCENARIO_DIR

    label = scenario_title(SCENARIO_DIR / "land_tight.yaml", "en")
    compared = scenario_title(SCENARIO_DIR / "plan_2025.yaml", "en")
    page.locator("select").first.select_option(label=label)
    page.locator("select").nth(1).select_option(label=compared)
    page.wait_for_function(
        "() => window.location.search.includes('scenario=land_tight')"
        " && window.location.search.includes('compare=plan_2025')",
        timeout=20_000,
    )
    expected = page.evaluate(LAST_OUTPUT_JS)
    shared, errors = page.context.new_page(), []
    shared.on("pageerror", lambda exc: errors.append(str(exc)))
    shared.goto(page.url, wait_until="load")
    shared.wait_for_function(READY_JS, timeout=LOAD_TIMEOUT_MS)
    shared.wait_for_function(
        "() => { const cds = Bokeh.documents[0].get_model_by_name('compared-run');"
        " return cds !== null && cds.data.gross_output.length > 0; }",
        timeout=20_000,
    )
    assert shared.evaluate(LAST_OUTPUT_JS) == expected
    picked = shared.locator("select").first.evaluate("s => s.options[s.selectedIndex].text")
    assert picked == label
    assert errors == []
    shared.close()


def test_structure_tab_traces_a_variable(page):
    page.get_by_role("button", name="Model structure").click()
    trace = page.locator("select", has=page.locator("option", has_text="Cluster Gross Output"))
    trace.first.select_option(label="Gross Output")
    page.get_by_text(re.compile(r"Used by \(\d+\)")).first.wait_for(timeout=20_000)
    counts = page.evaluate(
        "() => ['causes', 'uses'].map(kind =>"
        " Bokeh.documents[0].get_model_by_name('trace-' + kind).data.x0.length)"
    )
    assert counts[0] >= 1 and counts[1] >= 1
    assert page.errors == []


def test_bad_url_value_shows_a_message_not_a_traceback(browser, server):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(server + "?investment_growth_2021_2025=999&language=zh", wait_until="load")
    tab.wait_for_function(READY_JS, timeout=LOAD_TIMEOUT_MS)
    tab.get_by_text("investment_growth_2021_2025=999").first.wait_for(timeout=20_000)
    assert tab.get_by_text("Traceback").count() == 0
    tab.get_by_text("政策杠杆").first.wait_for(timeout=20_000)  # the valid part was applied
    assert errors == []
    context.close()


@pytest.mark.slow
def test_python_app_py_serves_the_app(browser, tmp_path, repo):
    import sys

    port = free_port()
    command = [sys.executable, "app.py", "--port", str(port), "--save-dir", str(tmp_path)]
    with served(command, port, tmp_path / "server.log", repo, timeout=180):
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(f"http://127.0.0.1:{port}/", wait_until="load")
        tab.wait_for_function(READY_JS, timeout=LOAD_TIMEOUT_MS)
        assert re.fullmatch(r"\d{1,3}(,\d{3})+", big_number(tab))
        context.close()


FAN_RANGES_JS = """() => {
  const out = [];
  for (const model of Bokeh.documents[0].all_models) {
    if (model.type !== 'Figure' && model.type !== 'figure') continue;
    for (const renderer of model.renderers) {
      const data = renderer.data_source && renderer.data_source.data;
      if (!data || !data.q95 || data.q95.length === 0) continue;
      const q05 = [...data.q05], q95 = [...data.q95];
      out.push({start: model.y_range.start, end: model.y_range.end,
                low: Math.min(...q05), high: Math.max(...q95)});
    }
  }
  return out;
}"""


def test_monte_carlo_fans_are_drawn_in_view(page):
    page.get_by_role("button", name="Uncertainty").click()
    page.get_by_role("button", name="Run Monte Carlo").click()
    page.get_by_text(re.compile(r"1000 samples in")).first.wait_for(timeout=60_000)
    page.wait_for_function(f"() => ({FAN_RANGES_JS})().length >= 8", timeout=20_000)
    bands = page.evaluate(FAN_RANGES_JS)
    for band in bands:  # every band (5-95 % and 25-75 %) lies inside its figure's y axis
        assert band["start"] <= band["low"] < band["high"] <= band["end"], band
    # what has to hold: the inputs the doubling hangs on, with its thirds
    line = page.get_by_text(re.compile(r"what the nominal doubling hangs on")).first
    line.wait_for(timeout=10_000)
    assert re.search(r"hangs on .*: [A-Z][\w ]+ \d+% → \d+%", line.inner_text())
    assert page.errors == []


def test_plan_target_mark_sits_under_the_slider_at_that_value(page):
    from ningbo_sd.app.settings import lever_controls

    control = next(c for c in lever_controls() if c.name == "investment_growth_2021_2025")
    handle = page.locator(".noUi-handle >> visible=true").first  # the first lever's slider
    mark = page.locator(".plan-target >> visible=true").first
    handle.wait_for(timeout=20_000)  # drawn: the page's data can arrive before its widgets
    mark.wait_for(timeout=20_000)
    page.evaluate(SET_SLIDER_JS, [control.name, control.plan_target])
    page.get_by_text(f"2021-2025: {control.plan_target:g}").first.wait_for(timeout=20_000)
    mark, handle = mark.bounding_box(), handle.bounding_box()
    arrow_x = mark["x"] + 5  # the mark is shifted left by 5 px so that its ▲ is at `left`
    assert abs(arrow_x - (handle["x"] + handle["width"] / 2)) < 8, (mark, handle)
    range_text = f"range {control.start:g} – {control.end:g}"  # the lever's header
    assert page.get_by_text(range_text).first.is_visible()


PUBLISHED_JS = """() => {
  const cds = Bokeh.documents[0].get_model_by_name('published-gross_output');
  return cds === null ? null : {year: [...cds.data.year], value: [...cds.data.value],
                                source: [...cds.data.source]};
}"""


def test_review_tab_shows_published_outcomes_and_their_sources(page):
    from ningbo_sd.plan.actuals import load_actuals

    actuals = load_actuals().set_index("id")
    markers = page.evaluate(PUBLISHED_JS)  # the published figures on the output chart
    assert markers is not None and 22100 in markers["value"] and 24300 in markers["value"]
    source = markers["source"][markers["year"].index(2022)]
    assert actuals.loc["gross_output_2022", "title"] in source
    page.get_by_role("button", name="Plan 2021-2025 review").click()
    row = page.locator('table.review tr[data-id="high_tech_firms_2025"]')
    row.wait_for(timeout=20_000)
    text = row.inner_text()
    publisher = actuals.loc["high_tech_firms_2025", "publisher"]
    assert "10,000" in text and publisher in text and "[B]" in text
    assert page.get_by_text("Met in fact").first.is_visible()
    assert page.errors == []
