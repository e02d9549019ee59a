"""The Panel app's entry point: ``python app.py [--port N]`` or ``panel serve app.py``.

The app itself is :mod:`ningbo_sd.app`; ``ningbo-sd app`` serves it from an installed package.
"""

import panel as pn

from ningbo_sd.app.main import run_main, serve_here

if pn.state.served:  # panel serve app.py
    serve_here()

if __name__ == "__main__":  # python app.py
    run_main()
