"""The Ningbo manufacturing policy simulator: a Panel web app for policy researchers.

Start it with ``ningbo-sd app`` or ``python app.py`` (add ``--port 5006 --address 127.0.0.1
--show``), or with ``panel serve app.py``. Importing this module has no side effects:
every browser session gets its own :class:`App` (state, widgets and figures) from
:func:`create_app`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import panel as pn
import param
from panel.viewable import Viewer

from ningbo_sd.app.settings import setting_names
from ningbo_sd.app.state import AppState
from ningbo_sd.app.text import MESSAGE_CHARS, html_text, markdown_text, tr
from ningbo_sd.io import excerpt
from ningbo_sd.model.metadata import MODEL_PATH
from ningbo_sd.scenarios.schema import SCENARIO_DIR

LOGGER = logging.getLogger("ningbo_sd.app")
TITLE = "宁波制造业政策模拟器 · Ningbo manufacturing policy simulator"
SIDEBAR_WIDTH = 390
HEADER_COLOUR = "#1f5fa8"
SECTIONS: tuple[str, ...] = ("results", "uncertainty", "calibration", "review", "structure")
URL_DELAY_MS = 1000  # the URL is written once the settings rest this long
URL_SCENARIO_KEYS: tuple[str, ...] = ("scenario", "compare")  # URL keys naming scenarios
NOTIFICATION_MS = {"error": 10000, "success": 4000, "info": 2500}


class App(Viewer):
    """One session of the app: state, controls, views and the template that holds them.

    Parameters
    ----------
    scenario_dirs : tuple of Path
        Folders the scenario picker lists; new scenarios are saved into the last one.
    model_path : Path
        The model file.
    engine : str, optional
        ``ningbo_sd.scenarios.run`` engine (default: the fastest available).
    """

    state = param.ClassSelector(class_=AppState)

    def __init__(
        self,
        scenario_dirs: tuple[Path, ...] = (SCENARIO_DIR,),
        model_path: Path = MODEL_PATH,
        engine: str | None = None,
        calibrated: Path | None = None,
        **params,
    ) -> None:
        from ningbo_sd.app.charts import ResultCharts
        from ningbo_sd.app.controls import LeverPanel, ScenarioPanel
        from ningbo_sd.app.views import HeadlineNumbers, ScorecardView

        state = AppState(
            model_path=model_path, scenario_dirs=scenario_dirs, engine=engine, calibrated=calibrated
        )
        super().__init__(state=state, **params)
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, margin=(0, 10))
        self.heading = pn.pane.Markdown("", margin=(0, 10))
        self.scenario_panel = ScenarioPanel(state=state)
        self.levers = LeverPanel(state=state, live=state.engine == "batch")
        self.numbers = HeadlineNumbers(state=state)
        self.charts = ResultCharts(state=state)
        self.scorecard = ScorecardView(state=state)
        self.sidebar_cards = {
            "levers": pn.pane.Markdown("", margin=(10, 10, 0, 10)),
            # filled when first opened (lighter page load)
            "files": pn.Card(collapsed=True, sizing_mode="stretch_width"),
            "compare": pn.Card(
                self.scenario_panel.compare_section(),
                collapsed=False,
                sizing_mode="stretch_width",
            ),
        }
        self.section = pn.widgets.RadioButtonGroup(
            options={key: key for key in SECTIONS},
            value="results",
            color="primary",
            variant="outline",
            margin=(0, 10, 10, 10),
        )
        self.views: dict = {}  # section key -> its Viewer, built on first show
        self._location = None  # the session's pn.state.location, once synced
        self._url_due: float | None = None  # when a pending URL write is due (monotonic s)
        self.sections: dict = {"results": self._results_section()}
        self.body = pn.Column(self.sections["results"], sizing_mode="stretch_width")
        self.sidebar_cards["files"].param.watch(self._open_files, "collapsed")
        self.section.param.watch(self._show_section, "value")
        state.param.watch(self._show_message, ["message"])
        state.settings.param.watch(self._relabel, ["language"])
        self._relabel()

    # ------------------------------------------------------------------ sections
    def _results_section(self):
        return pn.Column(self.numbers, self.charts, self.scorecard, sizing_mode="stretch_width")

    def _build_section(self, key: str):
        if key == "uncertainty":
            from ningbo_sd.app.uncertainty import UncertaintyView

            return UncertaintyView(state=self.state)
        if key == "calibration":
            from ningbo_sd.app.calibration import CalibrationView

            return CalibrationView(state=self.state)
        if key == "review":
            from ningbo_sd.app.review import ReviewView

            return ReviewView(state=self.state)
        if key == "structure":
            from ningbo_sd.app.structure import StructureView

            return StructureView(state=self.state)
        raise KeyError(f"unknown section {key!r}; allowed: {', '.join(SECTIONS)}")

    def show_section(self, key: str) -> None:
        """Show one section (one of :data:`SECTIONS`), building it when first shown."""
        if key not in self.sections:
            self.views[key] = self._build_section(key)
            self.sections[key] = pn.panel(self.views[key])
            self.body.append(self.sections[key])
        for name, view in self.sections.items():
            view.visible = name == key
        if self.section.value != key:
            self.section.value = key

    def _show_section(self, event) -> None:
        self.show_section(event.new)

    def _open_files(self, event) -> None:
        card = self.sidebar_cards["files"]
        if not event.new and not card.objects:
            card.objects = [self.scenario_panel.file_section()]

    # ------------------------------------------------------------------ wiring
    def _show_message(self, event) -> None:
        level, text = event.new
        if not text:
            return
        # messages quote what users gave (URL values, file names and contents): the alert is
        # Markdown and the notifications are HTML, so both get the text escaped, one line
        if level == "error":
            self.alert.object = markdown_text(text)
            self.alert.visible = True
        else:
            self.alert.visible = False
        notifications = pn.state.notifications
        if notifications is not None:
            notify = getattr(notifications, level if level != "success" else "success")
            notify(html_text(text, MESSAGE_CHARS), duration=NOTIFICATION_MS.get(level, 4000))

    def _relabel(self, *events) -> None:
        lang = self.state.language
        self.heading.object = f"## {tr('app_title', lang)}"
        self.sidebar_cards["levers"].object = f"### {tr('levers', lang)}"
        self.sidebar_cards["files"].title = f"{tr('save', lang)} / {tr('upload', lang)}"
        self.sidebar_cards["compare"].title = tr("compare_with", lang)
        self.section.options = {tr(f"tab_{key}", lang): key for key in SECTIONS}

    def sync_url(
        self, dropped: list[str] | tuple[str, ...] = (), query: dict | None = None
    ) -> None:
        """Keep the lever settings and the language in the page URL (shareable views).

        The URL's values are applied when the session starts (invalid ones are reported in
        one message, with ``dropped``: values :func:`ningbo_sd.app.serve.bound_query` took
        out of the request for their length; the valid ones are kept). Later changes are
        written to the URL once the settings have rested for ``URL_DELAY_MS``, not at every
        slider step: each URL write is a ``history.pushState`` in the browser and a message
        back to the server, together about as much CPU as redrawing the charts, and a
        history entry per step would make the browser's back button walk through a whole
        drag.

        Parameters
        ----------
        dropped : sequence of str
            URL values taken out of the request for their length, to report.
        query : dict, optional
            The URL's values (default: parsed from ``pn.state.location`` now).
        """
        location = pn.state.location
        if location is None:
            return
        self._location = location
        query = location.query_params if query is None else query
        problems = list(dropped)  # each names its parameter and the limit
        problems += self._url_scenarios(
            {key: query[key] for key in URL_SCENARIO_KEYS if key in query}
        )
        values = {name: query[name] for name in self._url_names() if name in query}
        if values:
            problems += self._url_values(values)
        if problems:
            self.state.notify("error", f"URL: ignored {'; '.join(problems)}")
        self._write_url()
        self.state.settings.param.watch(self._url_later, self._url_names())
        self.state.param.watch(self._url_later, ["scenario_name", "compare_name"])

    def _url_names(self) -> list[str]:
        return [*setting_names(self.state.model_path), "language"]

    def url_query(self) -> dict[str, str]:
        """The view as URL query values (the way Panel's ``Location.sync`` writes them).

        The scenario the settings start from (``scenario``) and the compared one
        (``compare``, empty for none), then every lever setting and the language.
        """
        settings = self.state.settings
        query = {"scenario": self.state.scenario_name, "compare": self.state.compare_name}
        for name in self._url_names():
            value = settings.param[name].serialize(getattr(settings, name))
            query[name] = value if isinstance(value, str) else json.dumps(value)
        return query

    def apply_url_scenarios(self, names: dict) -> None:
        """Load the scenario and the compared scenario a shared URL names.

        Called before the URL's lever values are applied, so that the view starts from
        the same scenario (its title, targets and parameters no slider covers) and then
        takes the shared settings. A name that is not one of the picker's scenarios is
        reported and ignored.
        """
        problems = self._url_scenarios(names)
        if problems:
            self.state.notify("error", f"URL: ignored {'; '.join(problems)}")

    def _url_scenarios(self, names: dict) -> list[str]:
        """Load the URL's scenarios; the names not found, as one entry for the message."""
        files = self.state.scenario_files()
        rejected = []
        for key, name in names.items():
            name = "" if name is None else str(name)
            if not name:
                continue
            if name not in files:
                rejected.append(url_item(key, name))
            elif key == "scenario" and name != self.state.scenario_name:
                self.state.load_scenario(name)
            elif key == "compare" and name != self.state.compare_name:
                self.state.set_compare(name)
        if not rejected:
            return []
        return [f"{', '.join(rejected)} (allowed: {', '.join(files)})"]

    def _write_url(self) -> None:
        self._url_due = None
        if self._location is not None:  # the whole query: the browser's may hold anything
            self._location.search = "?" + urlencode(self.url_query())

    def _url_later(self, *events) -> None:
        """Write the URL once the settings have not changed for ``URL_DELAY_MS``."""
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            self._write_url()
            return
        pending = self._url_due is not None
        self._url_due = time.monotonic() + URL_DELAY_MS / 1000
        if not pending:
            pn.state.add_periodic_callback(self._url_tick, period=URL_DELAY_MS, count=1)

    def _url_tick(self) -> None:
        if self._url_due is None:
            return
        wait_ms = 1000 * (self._url_due - time.monotonic())
        if wait_ms > 5:
            pn.state.add_periodic_callback(self._url_tick, period=int(wait_ms) + 1, count=1)
        else:
            self._write_url()

    def apply_url_values(self, values: dict) -> None:
        """Apply settings read from the URL: all at once, else the valid ones one by one.

        Invalid values (unknown type, out of range) are reported in one message.
        """
        problems = self._url_values(values)
        if problems:
            self.state.notify("error", f"URL: ignored {'; '.join(problems)}")

    def _url_values(self, values: dict) -> list[str]:
        """Apply the URL's settings; the invalid ones, as one entry for the message."""
        try:
            self.state.settings.param.update(**values)
            return []
        except (ValueError, TypeError):
            pass
        rejected = []
        for name, value in values.items():
            try:
                setattr(self.state.settings, name, value)
            except (ValueError, TypeError):
                rejected.append(url_item(name, value))
        return [f"{', '.join(rejected)} (see the slider ranges)"] if rejected else []

    def _sidebar(self) -> pn.Column:
        return pn.Column(
            self.scenario_panel,
            self.sidebar_cards["levers"],
            self.levers,
            self.sidebar_cards["compare"],
            self.sidebar_cards["files"],
            width=SIDEBAR_WIDTH,
            styles={"background": "#f6f8fb", "border-right": "1px solid #dde3ea"},
        )

    def _main(self) -> pn.Column:
        return pn.Column(
            self.heading, self.alert, self.section, self.body, sizing_mode="stretch_width"
        )

    def body_parts(self) -> list:
        """The page under its header: the controls on the left, the results on the right."""
        return [self._sidebar(), self._main()]

    def page(self) -> pn.Column:
        """The page: a header bar, the controls on the left, the results on the right.

        A plain Panel layout rather than a Bootstrap/Fast template: the templates' style
        sheets made every chart repaint (each slider move) about twice as slow in the
        browser, and the Fast template loads a font from Google (blocked in China).
        """
        return page_layout(self.body_parts())

    def __panel__(self):
        return self.page()


def page_layout(body: list) -> pn.Column:
    """The page's frame: the header bar over a row holding ``body``."""
    header = pn.pane.HTML(
        f'<div style="font-size:19px;font-weight:600;color:white">{TITLE}</div>',
        styles={"background": HEADER_COLOUR, "padding": "10px 18px"},
        sizing_mode="stretch_width",
        margin=0,
    )
    row = pn.Row(*body, sizing_mode="stretch_width", margin=0)
    return pn.Column(header, row, sizing_mode="stretch_width", margin=0)


def url_item(name: str, value) -> str:
    """``name='value'`` for a message about a URL value, the value cut to a short excerpt."""
    shown = repr(excerpt(value)) if isinstance(value, str) else excerpt(repr(value))
    return f"{name}={shown}"


def report_unexpected(exc: BaseException) -> None:
    """Panel's handler for errors escaping a callback: log the traceback, show one line."""
    LOGGER.error("unexpected error in a callback", exc_info=exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if pn.state.notifications is not None:
        message = html_text(f"Unexpected error: {text}", MESSAGE_CHARS)
        pn.state.notifications.error(message, duration=10000)


def create_app(
    scenario_dirs: tuple[Path, ...] = (SCENARIO_DIR,), calibrated: Path | None = None
) -> pn.viewable.Viewable:
    """Build one session's page (the factory ``pn.serve`` calls per browser session).

    The page request gets only the frame (the header and a loading line); the app itself
    (its state, its first run, the controls and the charts: about 0.7 s of the server's
    one event-loop thread) is built when the page's websocket connects (``pn.state.onload``)
    and arrives as one update. So a request that never opens a websocket (a crawler, a
    health check, ``curl``) costs a few milliseconds and holds no session's worth of
    memory, and a burst of them does not hold up the sessions in use. Without a server
    (tests, notebooks) the app is built at once.

    Parameters
    ----------
    scenario_dirs : tuple of Path
        Folders the scenario picker lists; scenarios are saved into the last one.
    calibrated : Path, optional
        The calibration every run starts from (default: the default calibration).

    Returns
    -------
    panel.viewable.Viewable
        The session's page.
    """
    from panel.io.resources import get_dist_path

    from ningbo_sd.app.bokehjs import install_fixes
    from ningbo_sd.app.runqueue import run_queue
    from ningbo_sd.app.serve import bound_query, read_query_once, release_views

    pn.config.exception_handler = report_unexpected
    doc = pn.state.curdoc
    context = None if doc is None else doc.session_context
    # before anything asks for pn.state.location, which parses the URL's query
    dropped = bound_query(None if context is None else context.request)
    query = None
    if context is not None:  # Panel 1.9 keeps a view of every page until this runs
        pn.state.on_session_destroyed(release_views)
        # a session opened by its websocket alone (--num-procs: the page request reached
        # another worker) has none of the page's variables; Panel then pointed its style
        # sheets at its CDN, unreachable offline
        doc._template_variables.setdefault("dist_url", get_dist_path())
        query = read_query_once(pn.state.location)
    loading = pn.pane.Markdown(f"*{tr('loading', 'en')} · {tr('loading', 'zh')}*", margin=(10, 20))
    page = page_layout([loading])

    def build() -> None:
        app = App(scenario_dirs=scenario_dirs, calibrated=calibrated)
        app.state.start_run = run_queue().submit  # one session's run at a time
        app.sync_url(dropped, query)
        page[1].objects = app.body_parts()

    install_fixes(doc)  # cheaper chart repaints in the browser
    pn.state.onload(build)
    return page


def warm_up(wait_for_kernel: bool = False) -> None:
    """Compile the engine, score one run and render the charts, so the first session is fast.

    Building one session also has HoloViews render the charts (once per process, see
    :func:`ningbo_sd.app.hvplot.chart_figure`).

    Parameters
    ----------
    wait_for_kernel : bool
        Compile the numba kernel into its disk cache before going on (``--num-procs``):
        workers forked later cannot see a background compile end (it is not their
        child), and each compiled numba again in its event loop, answering nothing for
        a minute.
    """
    import subprocess

    from ningbo_sd.app.state import compute_scorecard
    from ningbo_sd.scenarios.run import compiled_model, run_scenario

    model = compiled_model()
    if wait_for_kernel and model.path is not None and not model.kernel_cached():
        command = [sys.executable, "-m", "ningbo_sd.engine.warm", str(model.path)]
        subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
    # a new machine: numba compiles in another process while the app answers on numpy
    model.compile_in_background()
    compute_scorecard(run_scenario())
    App()


def main(argv: list[str] | None = None) -> None:
    """Serve the app: ``python app.py [--port N] [--address A] [--show] [--save-dir D]``.

    The port is tried first: one that is in use (or that cannot be bound) is one line on
    stderr and exit code 2, before the warm-up. The server answers only the hosts of
    :func:`ningbo_sd.app.serve.allowed_hosts` (``--allow-host``, ``NINGBO_SD_ALLOWED_HOSTS``).
    """
    from ningbo_sd.app.serve import (
        ALLOWED_HOSTS_ENV,
        allowed_hosts,
        listen_error,
        make_server,
        port_problem,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--show", action="store_true", help="open a browser tab")
    parser.add_argument(
        "--save-dir",
        type=Path,
        default=None,
        help="folder for scenarios saved from the app (default: scenarios/)",
    )
    parser.add_argument(
        "--allow-host",
        "--allow-websocket-origin",
        dest="allow_host",
        action="append",
        default=[],
        help=(
            "host:port the page may be opened as, besides 127.0.0.1:PORT and localhost:PORT "
            f"(repeatable; also ${ALLOWED_HOSTS_ENV}, comma separated)"
        ),
    )
    parser.add_argument(
        "--num-procs",
        type=int,
        default=1,
        help="server processes sharing the port (0: one per CPU); see bench/README.md",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="calibration to run from (default: calibration/calibrated.yaml)",
    )
    args = parser.parse_args(argv)
    if args.num_procs < 0:
        parser.error(f"--num-procs {args.num_procs}: use 1 or more (0: one per CPU)")
    if args.calibration is not None and not args.calibration.is_file():
        parser.error(f"--calibration {args.calibration}: file not found")
    problem = port_problem(args.address, args.port)
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(2)
    hosts = allowed_hosts(args.address, args.port, args.allow_host)
    dirs = (SCENARIO_DIR,) if args.save_dir is None else (SCENARIO_DIR, args.save_dir)
    warm_up(wait_for_kernel=args.num_procs != 1)

    def session() -> pn.viewable.Viewable:  # pn.serve needs a plain function, not a partial
        return create_app(scenario_dirs=dirs, calibrated=args.calibration)

    try:
        server = make_server(
            session,
            port=args.port,
            address=args.address,
            hosts=hosts,
            title=TITLE,
            show=args.show,
            num_procs=args.num_procs,
        )
    except OSError as exc:  # taken during the warm-up
        print(listen_error(exc, args.address, args.port), file=sys.stderr)
        raise SystemExit(2) from None
    LOGGER.info("answering hosts %s", ", ".join(hosts))
    server.start()
    server.io_loop.start()


def serve_here() -> None:
    """Under ``panel serve``: make this document one session of the app."""
    pn.extension(notifications=True, exception_handler=report_unexpected)
    create_app().servable(title=TITLE)


def run_main(argv: list[str] | None = None) -> None:
    """``python app.py`` and ``ningbo-sd app``: load Panel's extension, then :func:`main`."""
    pn.extension(notifications=True, exception_handler=report_unexpected)
    main(argv)
