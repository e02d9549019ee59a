"""Three browser-side fixes that make BokehJS (3.x) repaint the app's charts cheaply.

A slider move changes the data of six or seven figures. Profiling the page (Chrome CPU
profile and trace of a move, see ``bench/README.md``) showed that most of the browser's
time per move was not drawing but *style recalculation*, forced 40 times per move:

1. every renderer's ``paint`` rewrites its position style sheet
   (``InlineStyleSheet.replace``) even when the text is unchanged, and each write marks
   the page's styles dirty;
2. every line, fill and text property read while painting (``_get_css_value``) calls
   ``getComputedStyle(el).getPropertyValue("--bk-...")`` to look for a CSS-variable
   override, and with the styles dirty each such read recalculates the styles of
   Panel's shadow-DOM page (about 0.5 ms each);
3. every axis measure reads its plot's ``base_font_size`` through ``getComputedStyle``.

The fixes: a style sheet whose text is unchanged is not rewritten; the ``--bk-*``
CSS-variable overrides are not looked up (this app sets none; Panel's designs set none
either: they theme Bokeh through its Python theme); a plot's base font size is read once.
The drawn pictures are the same.

A fourth change defers work nobody sees: a plot scrolled out of view (more than
``OFFSCREEN_MARGIN_PX`` away from the viewport, watched by an ``IntersectionObserver``) is
not repainted when its data change; it is repainted, in full, as soon as it comes within
that margin again (plots are watched from their first render, so those that arrive after the
page loaded, as the whole app does, are covered). The main view is taller than a screen, so
some of its charts are out of view at any time (two of seven in a 1400 x 1000 window); their
canvases, and the page tiles that show them, were redrawn at every slider move. Its name is
``offscreen_plots``; the page counts the repaints it skipped and made up in
``window.ningboOffscreen``.

Each fix is applied only if the BokehJS internals it replaces are found; the names of
the applied ones are in ``window.ningboBokehFixes``.
"""

from __future__ import annotations

from bokeh.document import Document
from bokeh.models import CustomJS

FIXES: tuple[str, ...] = (
    "unchanged_stylesheets",
    "css_variable_lookups",
    "base_font_size",
    "offscreen_plots",
)
OFFSCREEN_MARGIN_PX = 150

FIX_JS = """
if (window.ningboBokehFixes === undefined && window.Bokeh && Bokeh.require) {
  const applied = [];
  const attempt = (name, apply) => {
    try { if (apply()) applied.push(name); } catch (error) { console.warn(name, error); }
  };
  attempt("unchanged_stylesheets", () => {
    const proto = Bokeh.require("core/dom").InlineStyleSheet.prototype;
    const update = proto._update;
    if (typeof update !== "function") return false;
    proto._update = function (css) {
      if (this.el.textContent !== css) update.call(this, css);
    };
    return true;
  });
  attempt("css_variable_lookups", () => {
    const proto = Bokeh.require("core/visuals/visual").VisualProperties.prototype;
    if (typeof proto._get_css_value !== "function") return false;
    proto._get_css_value = () => "";
    return true;
  });
  attempt("base_font_size", () => {
    const proto = Bokeh.require("models/plots/plot_canvas").PlotView.prototype;
    const descriptor = Object.getOwnPropertyDescriptor(proto, "base_font_size");
    if (descriptor === undefined || descriptor.get === undefined) return false;
    const read = descriptor.get;
    Object.defineProperty(proto, "base_font_size", {
      configurable: true,
      get() {
        if (this._ningbo_font_size === undefined) this._ningbo_font_size = read.call(this);
        return this._ningbo_font_size;
      },
    });
    return true;
  });
  attempt("offscreen_plots", () => {
    const PlotView = Bokeh.require("models/plots/plot_canvas").PlotView;
    const proto = PlotView.prototype;
    const repaint = proto.repaint;
    if (typeof repaint !== "function" || typeof proto.render !== "function"
        || typeof proto.request_paint !== "function"
        || typeof IntersectionObserver !== "function") return false;
    window.ningboOffscreen = {deferred: 0, caught_up: 0};  // repaints skipped / made up
    const observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const view = entry.target.ningboPlotView;
        if (view === undefined || view.is_destroyed) continue;
        view._ningbo_visible = entry.isIntersecting;
        if (entry.isIntersecting && view._ningbo_deferred) {
          view._ningbo_deferred = false;
          window.ningboOffscreen.caught_up += 1;
          view.request_paint();  // everything: data, ranges and axes may all have changed
        }
      }
    }, {rootMargin: "__MARGIN__px"});
    const watch = (view) => {
      if (view._ningbo_observed !== view.el) {  // a new view, or a new element
        view._ningbo_observed = view.el;
        view.el.ningboPlotView = view;
        observer.observe(view.el);  // visible until the observer says otherwise
      }
    };
    const render = proto.render;
    proto.render = function () {  // plots added after the page loaded (the app arrives so)
      render.call(this);
      watch(this);
    };
    proto.repaint = function () {
      watch(this);
      if (this._ningbo_visible === false) {
        this._ningbo_deferred = true;
        window.ningboOffscreen.deferred += 1;
        return;
      }
      repaint.call(this);
    };
    Bokeh.require("core/build_views").traverse_views(Bokeh.index.roots, (view) => {
      if (view instanceof PlotView) watch(view);  // the plots already on the page
    });
    return true;
  });
  window.ningboBokehFixes = applied;
}
""".replace("__MARGIN__", str(OFFSCREEN_MARGIN_PX))


def install_fixes(doc: Document | None) -> bool:
    """Have the browser apply the repaint fixes when ``doc``'s page is ready.

    Parameters
    ----------
    doc : bokeh.document.Document or None
        The session's document (``pn.state.curdoc``); ``None`` outside a server session.

    Returns
    -------
    bool
        Whether the fixes were attached (once per document).
    """
    if doc is None:
        return False
    callbacks = doc.callbacks.js_event_callbacks.get("document_ready", [])
    if any(getattr(cb, "name", None) == "ningbo-bokeh-fixes" for cb in callbacks):
        return False
    doc.js_on_event("document_ready", CustomJS(code=FIX_JS, name="ningbo-bokeh-fixes"))
    return True
