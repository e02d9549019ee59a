"""The app's controls: lever sliders by family, scenario file actions, compare, language.

Widgets are linked to the session's :class:`~ningbo_sd.app.state.AppState` both ways:
moving a slider sets the state's setting (which runs the model once), and a change of the
setting (a loaded scenario, reset, the URL, a rejected value) moves the slider back.
"""

from __future__ import annotations

import io
from collections import defaultdict

import panel as pn
import param
from panel.viewable import Viewer

from ningbo_sd.app.settings import LeverControl, lever_controls, setting_names
from ningbo_sd.app.state import BASELINE_NAME, AppState
from ningbo_sd.app.text import LANGUAGES, cluster_label, html_text, pick, tr

FAMILIES: tuple[str, ...] = ("investment", "innovation", "land", "energy", "clusters")
SLIDER_WIDTH = 205


class LeverSlider(pn.widgets.FloatSlider):
    """A float slider whose moves reach the server without Panel's 50 ms debounce.

    Panel waits 50 ms after a browser change before processing it, to merge bursts; with
    a model run of a few milliseconds that wait is most of a slider's latency. Bursts are
    still merged: changes that arrive while one is pending are folded into it.
    """

    _debounce = 5


def plan_marker_html(control: LeverControl, language: str) -> str:
    """A small mark under a slider at the plan's target value ('' if the plan sets none)."""
    if control.plan_target is None:
        return ""
    share = (control.plan_target - control.start) / (control.end - control.start)
    left = min(max(100 * share, 0.0), 100.0)
    text = f"▲ {tr('plan_target', language)} {control.plan_target:g}"
    return (
        '<div style="position:relative;height:14px;margin:-6px 12px 0 12px;font-size:10px;'
        'color:#2e7d32;white-space:nowrap">'
        f'<span class="plan-target" style="position:absolute;left:{left:.1f}%;'
        f'transform:translateX(-5px)">{text}</span></div>'
    )


class LeverPanel(Viewer):
    """Sliders grouped by family; path levers get one slider and a step/ramp toggle per period.

    Parameters
    ----------
    state : AppState
    live : bool
        Update while a slider is dragged (fast engine) rather than on release.
    """

    state = param.ClassSelector(class_=AppState)
    live = param.Boolean(default=True)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.sliders: dict[str, LeverSlider] = {}
        self.toggles: dict[str, pn.widgets.RadioButtonGroup] = {}
        self.markers: dict[str, pn.pane.HTML] = {}
        self.headers: dict[str, pn.pane.HTML] = {}
        self._controls = {c.name: c for c in lever_controls(self.state.model_path)}
        self._families: dict[str, list[LeverControl]] = defaultdict(list)
        for control in self._controls.values():
            self._families[control.lever.family].append(control)
        order = [f for f in FAMILIES if f in self._families]
        order += sorted(set(self._families) - set(FAMILIES))
        self.cards: dict[str, pn.Card] = {}
        for family in order:
            card = pn.Card(collapsed=True, sizing_mode="stretch_width", tags=[family])
            card.param.watch(self._card_toggled, "collapsed")
            self.cards[family] = card
        self.state.settings.param.watch(self._setting_changed, setting_names(self.state.model_path))
        self.state.settings.param.watch(self._relabel, ["language"])
        self.cards[order[0]].collapsed = False  # builds the first family's sliders
        self._relabel()

    # ------------------------------------------------------------------ building
    def _card_toggled(self, event) -> None:
        if not event.new:
            self._build_family(event.obj.tags[0])

    def _build_family(self, family: str) -> None:
        """Create a family's sliders the first time its card opens (keeps page load light)."""
        card = self.cards[family]
        if card.objects:
            return
        rows: list = []
        seen: set[str] = set()
        for control in self._families[family]:
            lever = control.lever
            if lever.id not in seen:
                seen.add(lever.id)
                self.headers[lever.id] = pn.pane.HTML("", margin=(8, 10, 0, 10))
                rows.append(self.headers[lever.id])
            rows.append(self._control_row(control))
        self._relabel()
        card.objects = rows

    def widget(self, name: str):
        """The slider or toggle of a setting, building its family's card if needed."""
        if name not in self.sliders and name not in self.toggles:
            control = self._controls.get(name) or next(
                (c for c in self._controls.values() if c.shape_name == name), None
            )
            if control is None:
                raise KeyError(f"no slider or toggle named {name!r}")
            self._build_family(control.lever.family)
        return self.sliders.get(name) or self.toggles[name]

    def _control_row(self, control: LeverControl):
        slider = LeverSlider(
            start=control.start,
            end=control.end,
            step=control.step,
            value=getattr(self.state.settings, control.name),
            width=SLIDER_WIDTH,
            margin=(2, 10),
            css_classes=["lever-slider"],
            tags=[control.name],
        )
        slider.param.watch(self._slider_moved, "value" if self.live else "value_throttled")
        if self.live:  # the release event also counts (keyboard moves, last drag position)
            slider.param.watch(self._slider_moved, "value_throttled")
        self.sliders[control.name] = slider
        items = [slider]
        if control.plan_target is not None:
            # as wide as the slider and its margins, so that the mark's left % is on the track
            self.markers[control.name] = pn.pane.HTML(
                "", margin=0, height=14, width=SLIDER_WIDTH + 20
            )
            items.append(self.markers[control.name])
        if control.shape_name is not None:
            toggle = pn.widgets.RadioButtonGroup(
                options={"step": "step", "ramp": "ramp"},
                value=getattr(self.state.settings, control.shape_name),
                color="primary",
                variant="outline",
                width=100,
                height=28,
                margin=(18, 0, 0, 0),
                tags=[control.shape_name],
            )
            toggle.param.watch(self._toggle_changed, "value")
            self.toggles[control.shape_name] = toggle
            return pn.Row(pn.Column(*items, margin=0), toggle, margin=0)
        return pn.Column(*items, margin=0)

    # ------------------------------------------------------------------ linking
    def _slider_moved(self, event) -> None:
        name = event.obj.tags[0]
        if event.new is not None and getattr(self.state.settings, name) != event.new:
            with pn.io.hold():  # every view's changes go to the browser in one message
                setattr(self.state.settings, name, event.new)

    def _toggle_changed(self, event) -> None:
        name = event.obj.tags[0]
        if getattr(self.state.settings, name) != event.new:
            with pn.io.hold():
                setattr(self.state.settings, name, event.new)

    def _setting_changed(self, *events) -> None:
        for event in events:
            widget = self.sliders.get(event.name) or self.toggles.get(event.name)
            if widget is not None and widget.value != event.new:
                widget.value = event.new

    def _relabel(self, *events) -> None:
        lang = self.state.language
        for family, card in self.cards.items():
            card.title = tr(f"family_{family}", lang)
        for name, slider in self.sliders.items():
            control = self._controls[name]
            if control.lever.kind == "path":
                slider.name = control.part
            elif control.lever.kind == "cluster":
                slider.name = cluster_label(control.part, lang)
            else:
                slider.name = pick(control.lever.unit, lang)
            if name in self.markers:
                self.markers[name].object = plan_marker_html(control, lang)
        for lever_id, header in self.headers.items():
            controls = [c for c in self._controls.values() if c.lever.id == lever_id]
            lever = controls[0].lever
            defaults = ", ".join(
                f"{c.part}: {c.default:g}" if c.lever.kind == "path" else f"{c.default:g}"
                for c in controls
                if c.lever.kind != "cluster"
            )
            spans = "; ".join(
                f"{a:g} – {b:g}" for a, b in sorted({(c.start, c.end) for c in controls})
            )
            parts = [f"{tr('default', lang)} {defaults}"] if defaults else []
            parts.append(f"{tr('range', lang)} {spans}")
            note = f"<br><small>{html_text(' · '.join(parts))}</small>"
            header.object = (
                f'<b title="{html_text(lever.documentation)}">'
                f"{html_text(pick(lever.label, lang))}</b> "
                f'<span style="color:#666">({html_text(pick(lever.unit, lang))})</span>'
                f'<span style="color:#888">{note}</span>'
            )
        for toggle in self.toggles.values():
            toggle.options = {tr("step", lang): "step", tr("ramp", lang): "ramp"}

    def __panel__(self):
        return pn.Column(*self.cards.values(), sizing_mode="stretch_width")


class ScenarioPanel(Viewer):
    """Language, scenario picker, reset, open/save/download, pin and compare."""

    state = param.ClassSelector(class_=AppState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        state = self.state
        self.language = pn.widgets.RadioButtonGroup(
            options={"English": "en", "中文": "zh"}, value=state.language, color="primary"
        )
        self.language.param.watch(self._language_picked, "value")
        self.picker = pn.widgets.Select(sizing_mode="stretch_width")
        self.picker.param.watch(self._scenario_picked, "value")
        self.reset = pn.widgets.Button(color="warning", sizing_mode="stretch_width")
        self.reset.on_click(lambda event: self._reset())
        self.upload = pn.widgets.FileInput(accept=".yaml,.yml", sizing_mode="stretch_width")
        self.upload.param.watch(self._uploaded, "value")
        self.upload_label = pn.pane.HTML("", margin=(0, 10))
        self.save_name = pn.widgets.TextInput(
            placeholder="my_scenario", sizing_mode="stretch_width"
        )
        self.save_title = pn.widgets.TextInput(sizing_mode="stretch_width")
        self.save = pn.widgets.Button(color="primary", sizing_mode="stretch_width")
        self.save.on_click(lambda event: self._save())
        self.download_yaml = pn.widgets.FileDownload(
            callback=self._yaml_file, filename="scenario.yaml", sizing_mode="stretch_width"
        )
        self.download_csv = pn.widgets.FileDownload(
            callback=self._csv_file, filename="ningbo_run.csv", sizing_mode="stretch_width"
        )
        self.pin = pn.widgets.Button(sizing_mode="stretch_width")
        self.pin.on_click(lambda event: state.pin())
        self.unpin = pn.widgets.Button(sizing_mode="stretch_width")
        self.unpin.on_click(lambda event: state.unpin())
        self.compare = pn.widgets.Select(sizing_mode="stretch_width")
        self.compare.param.watch(self._compare_picked, "value")
        state.settings.param.watch(self._relabel, ["language"])
        state.param.watch(self._scenario_loaded, ["scenario_name"])
        state.param.watch(self._compare_set, ["compare_name"])
        self._relabel()

    # ------------------------------------------------------------------ options
    def _scenario_options(self) -> dict[str, str]:
        from ningbo_sd.app.state import scenario_title

        lang = self.state.language
        return {
            scenario_title(path, lang): name for name, path in self.state.scenario_files().items()
        }

    def refresh_scenarios(self) -> None:
        """Re-read the scenario folders (after a save) and relabel the pickers."""
        options = self._scenario_options()
        current = self.state.scenario_name
        self.picker.options = options
        if current in options.values():
            self.picker.value = current
        else:
            self.picker.value = None
        compare = {tr("none", self.state.language): "", **options}
        self.compare.options = compare
        if self.state.compare_name not in compare.values():
            self.compare.value = ""
        else:
            self.compare.value = self.state.compare_name

    # ------------------------------------------------------------------ actions
    def _language_picked(self, event) -> None:
        if event.new in LANGUAGES:
            self.state.settings.language = event.new

    def _scenario_picked(self, event) -> None:
        if event.new and event.new != self.state.scenario_name:
            if not self.state.load_scenario(event.new):
                self.picker.value = event.old

    def _scenario_loaded(self, event) -> None:
        if self.picker.value != event.new and event.new in self.picker.options.values():
            self.picker.value = event.new

    def _compare_set(self, event) -> None:
        if self.compare.value != event.new and event.new in self.compare.options.values():
            self.compare.value = event.new

    def _reset(self) -> None:
        self.state.reset()
        if BASELINE_NAME in self.picker.options.values():
            self.picker.value = BASELINE_NAME

    def _uploaded(self, event) -> None:
        if event.new:
            self.state.load_scenario_text(event.new, self.upload.filename or "upload.yaml")

    def _save(self) -> None:
        path = self.state.save_scenario(self.save_name.value, self.save_title.value or None)
        if path is not None:
            self.refresh_scenarios()

    def _compare_picked(self, event) -> None:
        if event.new != self.state.compare_name and not self.state.set_compare(event.new or ""):
            self.compare.value = event.old

    def _yaml_file(self):
        try:
            text = self.state.scenario_yaml(self.save_title.value or None)
        except ValueError as exc:
            self.state.notify("error", str(exc).splitlines()[0])
            return None
        name = (self.save_name.value or "scenario").strip() or "scenario"
        self.download_yaml.filename = f"{name}.yaml"
        return io.BytesIO(text.encode("utf-8"))

    def _csv_file(self):
        return io.StringIO(self.state.results_csv())

    def _relabel(self, *events) -> None:
        lang = self.state.language
        if self.language.value != lang:
            self.language.value = lang
        self.reset.name = tr("reset", lang)
        self.upload_label.object = f"<small>{tr('upload', lang)}</small>"
        self.save_name.name = tr("save_name", lang)
        self.save_title.name = tr("save_title", lang)
        self.save.name = tr("save", lang)
        self.download_yaml.label = tr("download_yaml", lang)
        self.download_csv.label = tr("download_csv", lang)
        self.pin.name = tr("pin", lang)
        self.unpin.name = tr("unpin", lang)
        self.picker.name = tr("scenario", lang)
        self.compare.name = tr("compare_with", lang)
        self.refresh_scenarios()

    def file_section(self):
        """Open, save and download, for the sidebar's file card."""
        return pn.Column(
            self.upload_label,
            self.upload,
            self.save_name,
            self.save_title,
            self.save,
            self.download_yaml,
            self.download_csv,
            sizing_mode="stretch_width",
        )

    def compare_section(self):
        """Pin and compare controls."""
        return pn.Column(
            pn.Row(self.pin, self.unpin, sizing_mode="stretch_width"),
            self.compare,
            sizing_mode="stretch_width",
        )

    def __panel__(self):
        return pn.Column(self.language, self.picker, self.reset, sizing_mode="stretch_width")
