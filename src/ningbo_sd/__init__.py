"""Ningbo manufacturing scenario simulator: a system-dynamics model of the city's 14th Five-Year
manufacturing plan, a batch engine for it and the tools around it.

Layers import downward only (``tests/test_layers.py`` enforces it)::

    engine -> model -> plan -> scenarios -> uncertainty -> calibration -> validation
    -> app -> cli

``engine`` is a generic Vensim compiler that knows nothing of Ningbo; ``resources`` and ``io``
are plumbing every layer may use.
"""

__version__ = "0.2.0"
