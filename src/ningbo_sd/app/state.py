"""State of one app session: lever settings, the current run, the pinned and compared runs.

Nothing here imports Panel: the state is plain ``param`` so that it can be tested and
driven without a browser. Each session builds its own :class:`AppState`. The lever
settings themselves are defined in :mod:`ningbo_sd.app.settings`; this module adds the
scenario files (listing, loading, saving) and the runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import pandas as pd
import param

from ningbo_sd.app.settings import (
    default_settings,
    scenario_to_settings,
    setting_names,
    settings_class,
    settings_to_scenario,
)
from ningbo_sd.app.text import tr
from ningbo_sd.io import USER_ERRORS, UserError, read_yaml, read_yaml_file, write_text_atomically
from ningbo_sd.model.metadata import MODEL_PATH
from ningbo_sd.resources import calibrated_file
from ningbo_sd.scenarios.schema import (
    SCENARIO_DIR,
    Scenario,
    ScenarioError,
    dump_scenario,
    load_scenario,
    parse_scenario,
)

SCENARIO_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
BASELINE_NAME = "baseline"


@lru_cache(maxsize=256)
def _file_header(path: str, mtime: float, size: int) -> tuple[bool, Mapping | None]:
    """(looks like a scenario, its title) of a YAML file; cached per modification (read-only)."""
    try:
        data = read_yaml_file(path)
    except UserError:
        return True, None
    if not isinstance(data, dict):
        return True, None
    title = data.get("title")
    return "title" in data, MappingProxyType(dict(title)) if isinstance(title, dict) else None


def _header(path: Path) -> tuple[bool, Mapping | None]:
    try:
        status = path.stat()
    except OSError:
        return True, None
    return _file_header(str(path), status.st_mtime, status.st_size)


def is_scenario_file(path: Path) -> bool:
    """Whether a YAML file in a scenario folder is meant as a scenario.

    A file that cannot be read is listed, so that picking it
    reports what is wrong with it.
    """
    return _header(path)[0]


def list_scenarios(*directories: str | Path) -> dict[str, Path]:
    """Scenario files by name (baseline first); a later folder wins over an earlier one."""
    found: dict[str, Path] = {}
    for directory in directories or (SCENARIO_DIR,):
        for path in sorted(Path(directory).glob("*.yaml")):
            if is_scenario_file(path):
                found[path.stem] = path
    return dict(sorted(found.items(), key=lambda item: (item[0] != BASELINE_NAME, item[0])))


def scenario_title(path: Path, language: str) -> str:
    """A scenario's title for the picker (its file name, marked, if the file is invalid)."""
    title = _header(path)[1]
    if not title or not title.get(language):
        return f"{path.stem} (?)"
    return f"{title[language]} [{path.stem}]"


@lru_cache(maxsize=64)
def _read_scenario(path: str, mtime: float, size: int, model_path: str) -> Scenario:
    return load_scenario(path, model_path)


def read_scenario(path: str | Path, model_path: str | Path = MODEL_PATH) -> Scenario:
    """``load_scenario``, cached per file modification (sessions share it).

    Raises
    ------
    ScenarioError
        As ``load_scenario`` (errors are not cached).
    """
    path = Path(path)
    try:
        status = path.stat()
    except OSError:
        return load_scenario(path, model_path)  # reports the missing file
    return _read_scenario(str(path), status.st_mtime, status.st_size, str(model_path))


def check_scenario_name(name: str) -> str:
    """Validate a file name for a saved scenario (no path, no extension)."""
    name = (name or "").strip()
    if name.endswith(".yaml"):
        name = name[: -len(".yaml")]
    if not SCENARIO_NAME_PATTERN.fullmatch(name):
        raise ScenarioError(
            f"scenario name {name!r}: use 1-64 letters, digits, '_' or '-' (no spaces or folders)"
        )
    return name


def best_engine() -> str:
    """The fastest engine ``scenarios.run`` offers: ``batch`` once it exists, else ``pysd``."""
    from ningbo_sd.scenarios.run import ENGINES

    return "batch" if "batch" in ENGINES else ENGINES[0]


def compute_scorecard(results: pd.DataFrame, assumed: dict | None = None) -> pd.DataFrame:
    """The plan-target scorecard of a run (``ningbo_sd.scenarios.scorecard.scorecard``)."""
    from ningbo_sd.scenarios.scorecard import scorecard

    return scorecard(results, assumed=assumed or None)


class AppState(param.Parameterized):
    """Everything one session knows: settings, the current run and the runs it compares.

    Parameters
    ----------
    model_path : Path
        The model (and so the levers).
    scenario_dirs : tuple of Path
        Folders the scenario picker lists; the last one is where scenarios are saved.
    engine : str
        ``ningbo_sd.scenarios.run`` engine; default the fastest available.
    """

    settings = param.Parameter(doc="The LeverSettings instance (sliders, toggles, language)")
    results = param.DataFrame(default=None, allow_None=True, doc="Headline table of this run")
    scorecard = param.DataFrame(default=None, allow_None=True, doc="Scorecard of this run")
    pinned = param.DataFrame(default=None, allow_None=True, doc="A pinned earlier run")
    compare = param.DataFrame(default=None, allow_None=True, doc="A scenario to compare with")
    compare_name = param.String(default="", doc="Name of the compared scenario")
    scenario_name = param.String(default=BASELINE_NAME, doc="Scenario last loaded")
    title = param.Dict(default={"en": "Baseline", "zh": "基准情景"})
    extra_parameters = param.Dict(default={}, doc="Scenario parameters no slider covers")
    targets = param.Dict(default={}, doc="The scenario's values for targets without a number")
    message = param.Tuple(default=("", ""), length=2, doc="(level, text) of the last message")
    runs = param.Integer(default=0, doc="Model runs done for this session")

    def __init__(
        self,
        model_path: Path = MODEL_PATH,
        scenario_dirs: tuple[Path, ...] = (SCENARIO_DIR,),
        engine: str | None = None,
        calibrated: Path | None = None,
        **params,
    ) -> None:
        super().__init__(settings=settings_class(model_path)(), **params)
        self.model_path = Path(model_path)
        self.calibrated = calibrated_file() if calibrated is None else Path(calibrated)
        self.scenario_dirs = tuple(Path(d) for d in scenario_dirs)
        self.engine = engine or best_engine()
        self._good_settings = default_settings(model_path)
        self._suspended = False
        #: How a lever move's run is started: called with :meth:`recompute`. At once by
        #: default; the served app hands it to its run queue (``ningbo_sd.app.runqueue``).
        self.start_run: Callable[[Callable[[], bool]], object] = _call
        self.settings.param.watch(self._settings_changed, setting_names(model_path))
        if BASELINE_NAME not in self.scenario_files() or not self.load_scenario(BASELINE_NAME):
            self.recompute()

    # ------------------------------------------------------------------ language
    @property
    def language(self) -> str:
        """The current label language."""
        return self.settings.language

    def notify(self, level: str, text: str) -> None:
        """Record a message for the view (``level`` is ``info``, ``success`` or ``error``)."""
        if self.message == (level, text):
            self.param.trigger("message")  # the same message again is still news
        else:
            self.message = (level, text)

    def _error(self, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else _first_line(exc)
        self.notify("error", tr("error_prefix", self.language) + text)

    # ------------------------------------------------------------------ running
    def current_scenario(self, source: str = "app settings", title: str | None = None) -> Scenario:
        """The scenario the sliders describe now (optionally under a new title)."""
        description = {
            "en": f"Saved from the app; based on {self.scenario_name}.",
            "zh": f"由模拟器保存；基于情景 {self.scenario_name}。",
        }
        return settings_to_scenario(
            self.settings,
            {"en": title, "zh": title} if title else self.title,
            description,
            self.extra_parameters,
            source,
            self.model_path,
            self.targets,
        )

    def run(self, scenario: Scenario) -> pd.DataFrame:
        """Run one scenario with this session's engine (headline table)."""
        from ningbo_sd.scenarios.run import run_scenario

        frame = run_scenario(scenario, engine=self.engine, calibrated=self.calibrated)
        self.runs += 1
        return frame

    def recompute(self) -> bool:
        """Run the current settings; on failure put the last good settings back (run kept).

        Returns
        -------
        bool
            Whether the run succeeded.
        """
        try:
            results = self.run(self.current_scenario())
        except USER_ERRORS as exc:
            self._restore_good_settings()
            self._error(exc)
            return False
        self._good_settings = {name: getattr(self.settings, name) for name in self._good_settings}
        try:
            card = compute_scorecard(results, self.targets)
        except USER_ERRORS as exc:
            self.results = results
            self._error(exc)
        else:  # one update: the views see the run and its scorecard together
            self.param.update(results=results, scorecard=card)
        return True

    def _settings_changed(self, *events) -> None:
        if not self._suspended:
            self.start_run(self.recompute)

    def _restore_good_settings(self) -> None:
        changed = {
            name: value
            for name, value in self._good_settings.items()
            if getattr(self.settings, name) != value
        }
        if changed:
            self._suspended = True
            try:
                self.settings.param.update(**changed)
            finally:
                self._suspended = False

    def apply_settings(self, values: dict) -> bool:
        """Set several sliders at once (one run); invalid values change nothing.

        Returns
        -------
        bool
            Whether the values were valid and the run succeeded.
        """
        known = set(self._good_settings)
        try:
            unknown = sorted(set(values) - known)
            if unknown:
                raise ScenarioError(f"unknown settings {unknown}; allowed: {sorted(known)}")
            type(self.settings)(**values)  # validates types and ranges
        except USER_ERRORS as exc:
            self._error(exc)
            return False
        self._suspended = True
        try:
            self.settings.param.update(**values)
        finally:
            self._suspended = False
        return self.recompute()

    # ------------------------------------------------------------------ scenarios
    def scenario_files(self) -> dict[str, Path]:
        """Scenario files the picker offers, by name."""
        return list_scenarios(*self.scenario_dirs)

    def load_scenario(self, name_or_path: str | Path) -> bool:
        """Load a scenario by picker name or path; an invalid file changes nothing."""
        files = self.scenario_files()
        path = files.get(str(name_or_path), Path(name_or_path))
        try:
            scenario = read_scenario(path, self.model_path)
        except USER_ERRORS as exc:
            self._error(exc)
            return False
        return self._apply_scenario(scenario, Path(path).stem)

    def load_scenario_text(self, text: bytes | str, filename: str) -> bool:
        """Load an uploaded scenario file's content; an invalid file changes nothing."""
        try:
            data = read_yaml(text, filename)
            scenario = parse_scenario(data, source=filename, model_path=self.model_path)
        except USER_ERRORS as exc:
            self._error(exc)
            return False
        return self._apply_scenario(scenario, Path(filename).stem)

    def _apply_scenario(self, scenario: Scenario, name: str) -> bool:
        values, extra = scenario_to_settings(scenario, self.model_path)
        previous = (self.extra_parameters, self.targets, self.title, self.scenario_name)
        self.extra_parameters = extra
        self.targets = dict(scenario.targets)
        self.title = scenario.title.model_dump()
        self.scenario_name = name
        if not self.apply_settings(values):
            self.extra_parameters, self.targets, self.title, self.scenario_name = previous
            return False
        self.notify("info", tr("loaded", self.language, name=name))
        return True

    def reset(self) -> bool:
        """Back to the baseline scenario (the model defaults if there is no baseline file)."""
        if BASELINE_NAME in self.scenario_files():
            return self.load_scenario(BASELINE_NAME)
        self.extra_parameters = {}
        self.targets = {}
        self.scenario_name = BASELINE_NAME
        return self.apply_settings(default_settings(self.model_path))

    def scenario_yaml(self, title: str | None = None) -> str:
        """The current settings as scenario-file text (validated by a round trip)."""
        text = dump_scenario(self.current_scenario(title=title))
        parse_scenario(read_yaml(text, "saved scenario"), "saved scenario", self.model_path)
        return text

    def save_scenario(self, name: str, title: str | None = None) -> Path | None:
        """Save the current settings as ``<name>.yaml`` in the last scenario folder.

        An existing file is never overwritten. Returns the path, or None after an error
        (reported through :attr:`message`).
        """
        try:
            name = check_scenario_name(name)
            path = self.scenario_dirs[-1] / f"{name}.yaml"
            if name in self.scenario_files() or path.exists():
                raise ScenarioError(f"{path}: a scenario with this name exists; choose another")
            text = self.scenario_yaml(title)
            write_text_atomically(path, text)
        except USER_ERRORS as exc:
            self._error(exc)
            return None
        self.notify("success", tr("saved", self.language, path=path))
        return path

    # ------------------------------------------------------------------ comparing
    def pin(self) -> None:
        """Keep the current run to compare later runs with."""
        self.pinned = None if self.results is None else self.results.copy()

    def unpin(self) -> None:
        """Forget the pinned run."""
        self.pinned = None

    def set_compare(self, name: str) -> bool:
        """Run a scenario by picker name to overlay it; ``""`` clears the comparison."""
        if not name:
            self.param.update(compare=None, compare_name="")
            return True
        try:
            path = self.scenario_files().get(name, Path(name))
            frame = self.run(read_scenario(path, self.model_path))
        except USER_ERRORS as exc:
            self._error(exc)
            return False
        self.param.update(compare=frame, compare_name=name)
        return True

    def results_csv(self) -> str:
        """The current run's headline table as CSV text."""
        return self.results.to_csv()


def _call(function: Callable[[], object]) -> object:
    return function()


def _first_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    text = str(text).strip()
    return text.splitlines()[0] if text else type(exc).__name__
