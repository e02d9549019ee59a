"""The app under hostile input (issue 19): escaped messages, bounded URLs, hosts, the port.

The app's half of the bad-input catalogue (``test_bad_input.py`` holds the command line's).

* In process: every text a user gives (URL values, an upload's name and content) reaches
  the alert (Markdown) and the notifications (HTML) as text, never as markup, and bounded;
  URL values too long to read are taken out of the request; the Host allow-list and the
  port check.
* A real server (``ningbo-sd app`` in a subprocess on a free port of 127.0.0.1, marked
  ``slow``): other Host headers and websocket Origins get 403, overlong URL values no
  longer give HTTP 500, a port in use is one line before the warm-up.
* A real browser (marked ``ui``, headless Chromium as in ``test_app_ui.py``): ``<img
  onerror>`` and ``<script>`` payloads in every URL parameter and in an uploaded file
  run nothing.
"""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from servers import free_port, headless_chromium
from servers import served as serve_app

REPO = Path(__file__).resolve().parents[1]
INVESTMENT = "investment_growth_2021_2025"
#: Runs in a Markdown pane or an HTML notification if either passes raw HTML through.
IMG = "<img src=x onerror=alert(document.domain)>"
SCRIPT = "<script>alert(1)</script>"
URL_KEYS = ("scenario", "compare", INVESTMENT, f"{INVESTMENT}_shape", "language")
SCENARIO = {
    "title": {"en": "Up", "zh": "上传"},
    "description": {"en": "d", "zh": "d"},
    "levers": {"investment_growth": {"2021-2025": {"value": 0.1, "shape": "ramp"}}},
}


def rendered(pane) -> str:
    """The HTML a Markdown pane sends to the browser (Bokeh's model holds it escaped)."""
    return html.unescape(pane.get_root().text)


def assert_shown_as_text(pane, text: str) -> None:
    """The pane is one paragraph, no other element, and it shows ``text`` literally."""
    markup = rendered(pane)
    assert re.findall(r"<\s*(\w+)", markup) == ["p"], markup
    visible = html.unescape(re.sub(r"<[^>]+>", "", markup))
    assert text in visible, (text, visible)


class Notifications:
    """Stands in for ``pn.state.notifications``, keeping what the app sends it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def _send(self, level: str, text: str, duration: int = 0) -> None:
        self.sent.append((level, text))

    def error(self, text: str, duration: int = 0) -> None:
        self._send("error", text)

    def info(self, text: str, duration: int = 0) -> None:
        self._send("info", text)

    def success(self, text: str, duration: int = 0) -> None:
        self._send("success", text)


@pytest.fixture()
def notifications(monkeypatch) -> Notifications:
    import panel as pn

    recorder = Notifications()
    monkeypatch.setattr(type(pn.state), "notifications", property(lambda self: recorder))
    return recorder


# ---------------------------------------------------------------- escaping, in process
@pytest.mark.parametrize("payload", [IMG, SCRIPT, "[x](javascript:alert(1)) *b* `c` # h"])
def test_markdown_text_shows_exactly_the_characters(payload):
    import panel as pn

    from ningbo_sd.app.text import markdown_text

    assert_shown_as_text(pn.pane.Alert(markdown_text(payload)), payload)


def test_html_text_escapes_markup_and_quotes_and_bounds_on_request():
    from ningbo_sd.app.text import html_text

    assert html_text('<b title="x">\'&') == "&lt;b title=&quot;x&quot;&gt;&#x27;&amp;"
    assert html_text("a" * 1000, 50) == "a" * 49 + "…"


@pytest.mark.parametrize("key", URL_KEYS)
@pytest.mark.parametrize("payload", [IMG, SCRIPT])
def test_a_rejected_url_value_is_shown_as_text(app, notifications, key, payload):
    if key in ("scenario", "compare"):
        app.apply_url_scenarios({key: payload})
    else:
        app.apply_url_values({key: payload})
    level, text = app.state.message
    assert level == "error" and key in text and payload in text
    assert app.alert.visible
    assert_shown_as_text(app.alert, f"{key}={payload!r}")
    sent_level, sent = notifications.sent[-1]
    assert sent_level == "error" and "<" not in sent and html.escape(payload) in sent


def test_a_long_url_value_is_quoted_as_a_short_excerpt(app, notifications):
    app.apply_url_scenarios({"scenario": "A" * 10_000})
    text = app.state.message[1]
    assert "scenario='AAAA" in text and "…" in text and len(text) < 300
    app.apply_url_values({"language": "<" * 10_000})
    assert len(rendered(app.alert)) < 2_000  # 300 characters, each at most an entity
    assert all(len(sent) < 2_000 for _, sent in notifications.sent)


def test_an_upload_is_bounded_and_its_name_shown_as_text(app, notifications):
    name = f"{IMG}.yaml"
    upload = app.scenario_panel.upload
    upload.filename = name
    upload.value = b"# padding\n" * 150_000  # 1.5 MB
    level, text = app.state.message
    assert level == "error" and name in text and "at most 1,000,000" in text
    assert_shown_as_text(app.alert, name)
    assert "<" not in notifications.sent[-1][1]


def test_an_upload_with_hostile_title_and_name_loads_as_data(app, notifications):
    scenario = dict(SCENARIO, title={"en": SCRIPT, "zh": IMG})
    upload = app.scenario_panel.upload
    upload.filename = f"{IMG}.yaml"
    upload.value = yaml.safe_dump(scenario, allow_unicode=True).encode()
    assert app.state.message[0] == "info", app.state.message
    assert app.state.title == {"en": SCRIPT, "zh": IMG}
    level, sent = notifications.sent[-1]
    assert level == "info" and "<" not in sent and "&lt;img src=x" in sent


def test_an_unexpected_error_is_notified_as_text(notifications):
    from ningbo_sd.app.main import report_unexpected

    report_unexpected(RuntimeError(IMG + "x" * 1000))
    level, sent = notifications.sent[-1]
    assert level == "error" and sent.startswith("Unexpected error: &lt;img") and len(sent) < 600


# ---------------------------------------------------------------- URL bounds, in process
def test_overlong_url_values_are_taken_out_of_the_request():
    from ningbo_sd.app.serve import MAX_URL_VALUE_CHARS, bound_query

    request = SimpleNamespace(uri=f"/?{INVESTMENT}={'9' * 5000}&language=zh&scenario={'x' * 201}")
    assert bound_query(request) == [
        f"{INVESTMENT} (a value of 5,000 characters; at most {MAX_URL_VALUE_CHARS})",
        "scenario (a value of 201 characters; at most 200)",
    ]
    assert request.uri == "/?language=zh"
    request = SimpleNamespace(uri=f"/?scenario={'x' * 200}&compare=")
    assert bound_query(request) == [] and request.uri == f"/?scenario={'x' * 200}&compare="
    assert bound_query(SimpleNamespace(uri="/")) == [] and bound_query(None) == []


def test_an_overlong_url_query_is_dropped_whole():
    from ningbo_sd.app.serve import bound_query

    request = SimpleNamespace(uri="/app?" + "&".join(f"k{i}=1" for i in range(300)))
    assert bound_query(request) == ["the query (more than 200 fields)"]
    assert request.uri == "/app"
    request = SimpleNamespace(uri="/?" + "&".join(["language=zh"] * 3000))
    assert bound_query(request) == ["the query (35,999 characters; at most 20,000)"]
    assert request.uri == "/"


def test_dropped_values_are_reported_with_the_rejected_ones(app):
    import panel as pn

    class Location:  # what sync_url reads and writes of pn.state.location
        def __init__(self) -> None:
            self.query_params = {"scenario": "nope", "language": "zz"}
            self.search = ""

    location = Location()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(pn.state), "location", property(lambda self: location))
        app.sync_url(["investment_growth_2021_2025 (a value of 5,000 characters)"])
    text = app.state.message[1]
    assert text.startswith("URL: ignored investment_growth_2021_2025 (a value of 5,000")
    assert "scenario='nope' (allowed: " in text and "language='zz'" in text
    assert urllib.parse.parse_qs(location.search[1:])["language"] == ["en"]


def test_the_browsers_own_report_of_its_url_is_not_parsed_again():
    from panel.io.location import Location

    from ningbo_sd.app.serve import read_query_once

    location = Location(search="?scenario=baseline&investment_growth_2021_2025=7")
    query = read_query_once(location)
    assert query == {"scenario": "baseline", "investment_growth_2021_2025": 7}
    # what the browser reports when its websocket connects: the URL as typed (Panel's
    # own watcher ran int() on it and raised ValueError: more than 4,300 digits)
    location.search = f"?investment_growth_2021_2025={'9' * 5000}"
    assert len(location.search) > 5000


# ---------------------------------------------------------------- hosts and the port
def test_the_default_allow_list_is_this_machine_at_this_port(monkeypatch):
    from ningbo_sd.app.serve import ALLOWED_HOSTS_ENV, allowed_hosts, host_allowed

    monkeypatch.delenv(ALLOWED_HOSTS_ENV, raising=False)
    hosts = allowed_hosts("127.0.0.1", 5006)
    assert hosts == ["127.0.0.1:5006", "localhost:5006"]
    assert host_allowed("LOCALHOST:5006", hosts) and host_allowed("127.0.0.1:5006", hosts)
    for host in ("evil.example:5006", "127.0.0.1:5007", "127.0.0.1", "a:b:c", "", None):
        assert not host_allowed(host, hosts), host
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "sim.example.org, 10.0.0.5:8080")
    hosts = allowed_hosts("0.0.0.0", 5006, ["box:5006"])
    assert hosts == [
        "127.0.0.1:5006",
        "localhost:5006",
        "box:5006",
        "sim.example.org:80",
        "10.0.0.5:8080",
    ]
    assert host_allowed("sim.example.org", hosts) and not host_allowed("0.0.0.0:5006", hosts)


def test_a_port_in_use_is_named_in_one_line():
    from ningbo_sd.app.serve import port_problem

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert port_problem("127.0.0.1", port) == (
            f"ningbo-sd app: port {port} is in use (choose another with --port)"
        )
    assert port_problem("127.0.0.1", port) is None
    assert "ports are 0 to 65535" in port_problem("127.0.0.1", 70_000)


@pytest.mark.slow
@pytest.mark.parametrize("command", [["-m", "ningbo_sd", "app"], ["app.py"]])
def test_serving_on_a_port_in_use_exits_2_before_the_warm_up(command):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, *command, "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"ningbo-sd app: port {port} is in use (choose another with --port)\n"
    assert time.monotonic() - start < 20  # the warm-up alone takes longer


# ---------------------------------------------------------------- a real server
def http_status(port: int, path: str = "/", headers: dict | None = None) -> int:
    """The status of a raw HTTP/1.1 GET to 127.0.0.1 with exactly these headers."""
    headers = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall("\r\n".join(lines).encode("latin-1"))
        head = connection.recv(64)
    return int(head.split(b" ")[1])


def websocket_status(port: int, host: str, origin: str) -> int:
    """The status of a websocket handshake to the app (101: accepted)."""
    return http_status(
        port,
        "/ws",
        {
            "Host": host,
            "Origin": origin,
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": "bokeh",
        },
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``ningbo-sd app`` in a subprocess on a free port; extra hosts from the option and
    the environment variable. Yields the port."""
    folder = tmp_path_factory.mktemp("served")
    port = free_port()
    env = dict(os.environ, NINGBO_SD_ALLOWED_HOSTS=f"env-allowed.example:{port}")
    command = ["-m", "ningbo_sd", "app", "--port", str(port), "--save-dir", str(folder)]
    command = [sys.executable, *command, "--allow-host", f"cli-allowed.example:{port}"]
    with serve_app(command, port, folder / "server.log", REPO, env):
        yield port


@pytest.mark.slow
def test_only_allowed_hosts_get_the_page(served):
    port = served
    for host in ("127.0.0.1", "localhost", "cli-allowed.example", "env-allowed.example"):
        assert http_status(port, headers={"Host": f"{host}:{port}"}) == 200, host
    for host in (f"evil.example:{port}", f"127.0.0.1:{port + 1}", "a:b:c", "127.0.0.1"):
        assert http_status(port, headers={"Host": host}) == 403, host


@pytest.mark.slow
def test_a_page_request_builds_only_the_frame(served):
    """A GET that never opens a websocket (a crawler, a health check) gets the header and a
    loading line; no session's state, run or charts are built for it."""
    import panel.models  # noqa: F401  (the page's model types, to read the document)
    from bokeh.client import pull_session

    with pull_session(url=f"http://127.0.0.1:{served}/") as session:  # no document_ready
        models = list(session.document.models)
    texts = " ".join(str(getattr(model, "text", "")) for model in models)
    assert "Loading the model" in texts
    assert session.document.get_model_by_name("current-run") is None
    assert not [model for model in models if type(model).__name__ == "Slider"]
    assert len(models) < 30, f"{len(models)} models"


@pytest.mark.slow
def test_the_websocket_refuses_other_hosts_and_origins(served):
    port = served
    good, evil = f"127.0.0.1:{port}", f"evil.example:{port}"
    assert websocket_status(port, good, f"http://{good}") == 101
    assert websocket_status(port, evil, f"http://{evil}") == 403  # DNS rebinding
    assert websocket_status(port, good, f"http://{evil}") == 403
    assert websocket_status(port, good, "null") == 403


@pytest.mark.slow
@pytest.mark.parametrize(
    "query",
    [
        f"{INVESTMENT}={'9' * 5000}",
        f"language={'9' * 5000}",
        f"scenario={'x' * 300}&{INVESTMENT}=9",
        "&".join([f"{INVESTMENT}=9"] * 1000),  # 30,000 characters
        f"{INVESTMENT}=[" + "[" * 150 + "]" * 151,
    ],
    ids=["5000_digits", "language_5000_digits", "long_scenario", "long_query", "nested_lists"],
)
def test_an_overlong_url_value_is_not_a_server_error(served, query):
    assert http_status(served, f"/?{query}") == 200


# ---------------------------------------------------------------- a real browser
READY_JS = """() => {
  if (!window.Bokeh || !Bokeh.documents.length) return false;
  const cds = Bokeh.documents[0].get_model_by_name('current-run');
  return cds !== null && cds.data.gross_output.length > 0;
}"""
#: Elements a payload would have made, anywhere in the page (Panel renders in shadow roots).
INJECTED_JS = """() => { const found = [];
  const walk = root => { for (const el of root.querySelectorAll('*')) {
    if ((el.tagName === 'IMG' && el.getAttribute('src') === 'x') ||
        (el.tagName === 'SCRIPT' && el.textContent.includes('PWN'))) found.push(el.outerHTML);
    if (el.shadowRoot) walk(el.shadowRoot); } };
  walk(document); return found; }"""
#: Log "PWN" (no quotes, so that a message quotes the value as it is; under the 60
#: characters a message quotes of a value).
PWN = "console.log(/PWN/.source)"
BROWSER_PAYLOADS = (f"<img src=x onerror={PWN}>", f"<script>{PWN}</script>")
#: A file name holds no "/".
FILE_NAME = "<img src=x onerror=console.log(String.fromCharCode(80,87,78))>"


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


def open_page(browser, url: str):
    """A new tab on ``url``, loaded; ``tab.ran`` collects evidence of a payload running."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    tab = context.new_page()
    tab.ran = []
    tab.on("console", lambda m: tab.ran.append(m.text) if "PWN" in m.text else None)
    tab.on("request", lambda r: tab.ran.append(r.url) if r.url.endswith("/x") else None)
    tab.goto(url, wait_until="load")
    tab.wait_for_function(READY_JS, timeout=120_000)
    return context, tab


@pytest.mark.ui
@pytest.mark.parametrize("key", URL_KEYS)
def test_no_url_payload_runs_in_the_browser(browser, served, key):
    for payload in BROWSER_PAYLOADS:
        url = f"http://127.0.0.1:{served}/?{key}={urllib.parse.quote(payload)}"
        context, tab = open_page(browser, url)
        try:
            tab.get_by_text(f"URL: ignored {key}=").first.wait_for(timeout=30_000)
            tab.wait_for_timeout(500)  # the notification is drawn too
            assert tab.ran == [] and tab.evaluate(INJECTED_JS) == []
            assert tab.get_by_text(f"{key}={payload!r}").count() >= 1  # shown as text
        finally:
            context.close()


@pytest.mark.ui
def test_an_overlong_url_value_gets_the_one_line_alert(browser, served):
    url = f"http://127.0.0.1:{served}/?{INVESTMENT}={'9' * 5000}&language=zh"
    context, tab = open_page(browser, url)
    try:
        expected = f"URL: ignored {INVESTMENT} (a value of 5,000 characters; at most 200)"
        tab.get_by_text(expected, exact=True).first.wait_for(timeout=30_000)
        tab.get_by_text("政策杠杆").first.wait_for(timeout=30_000)  # the valid part applied
    finally:
        context.close()


@pytest.mark.ui
def test_no_uploaded_payload_runs_in_the_browser(browser, served):
    context, tab = open_page(browser, f"http://127.0.0.1:{served}/")
    try:
        tab.get_by_text("Save as scenario / Open a scenario file (YAML)").first.click()
        file_input = tab.locator("input[type=file]").first
        bad = {"name": f"{FILE_NAME}.yaml", "mimeType": "text/yaml"}
        file_input.set_input_files(dict(bad, buffer=b"title: [unclosed\n"))
        tab.get_by_text("malformed YAML").first.wait_for(timeout=30_000)
        hostile = dict(SCENARIO, title={"en": BROWSER_PAYLOADS[1], "zh": BROWSER_PAYLOADS[0]})
        good = yaml.safe_dump(hostile, allow_unicode=True).encode()
        file_input.set_input_files(dict(bad, buffer=good))
        tab.get_by_text(f"Loaded scenario {FILE_NAME}").first.wait_for(timeout=30_000)
        tab.wait_for_timeout(500)
        assert tab.ran == [] and tab.evaluate(INJECTED_JS) == []
    finally:
        context.close()
