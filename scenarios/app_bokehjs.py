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
The drawn pictures are the same. Each fix is applied only if the BokehJS internals it
replaces are found; the names of the applied ones are in ``window.ningboBokehFixes``.
"""

from __future__ import annotations

from bokeh.document import Document
from bokeh.models import CustomJS

FIXES: tuple[str, ...] = ("unchanged_stylesheets", "css_variable_lookups", "base_font_size")

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
  window.ningboBokehFixes = applied;
}
"""


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
