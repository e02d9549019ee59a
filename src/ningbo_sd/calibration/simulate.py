"""Run many parameter vectors at once and return headline columns per year.

The calibration evaluates thousands of parameter vectors (finite-difference Jacobians,
posterior walkers); each engine call takes a whole table of samples. Runs use the
project's compiled batch engine (``ningbo_sd.scenarios.run.compiled_model``, the model
``ningbo_sd.scenarios.run.run_batch`` runs) and the headline definitions of ``model/outputs.yaml``
(the same columns ``run_scenario`` and ``run_batch`` report). It calls the engine's raw
``simulate`` rather than ``run_batch`` for two reasons: the calibration must start from
the model file's defaults, never from a previous ``calibration/calibrated.yaml``; and a
least-squares iteration makes a few small engine calls, where building an xarray Dataset
per call would triple the cost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.model.metadata import MODEL_PATH
from ningbo_sd.model.outputs import OutputColumn, output_columns, year_rows

CLUSTER_COLUMN = re.compile(r"^(?P<variable>[^\[]+)\[(?P<element>[^\]]+)\]$")


class BatchSimulator:
    """Simulate parameter tables and collect headline columns on a grid of years.

    Parameters
    ----------
    columns : sequence of str
        Headline column names (``model/outputs.yaml`` plus ``gross_output_<cluster>``).
    years : sequence of int
        Years to return (each column read at its time in the year:
        :func:`ningbo_sd.model.outputs.reading_time`).
    model_path : str or Path
        The Vensim model (the Ningbo model by default).
    """

    def __init__(
        self,
        columns: Sequence[str],
        years: Sequence[int],
        model_path: str | Path = MODEL_PATH,
    ) -> None:
        known = {column.name: column for column in output_columns()}
        unknown = [name for name in columns if name not in known]
        if unknown:
            raise KeyError(
                f"unknown headline column(s) {unknown}; allowed: see model/outputs.yaml "
                "and gross_output_<cluster>"
            )
        self.columns: tuple[OutputColumn, ...] = tuple(known[name] for name in columns)
        self.years = np.asarray(list(years), dtype=int)
        self.model_path = Path(model_path)
        self._compiled = None
        self.calls = 0
        self.samples = 0

    @property
    def compiled(self):
        """The compiled batch model (the project's shared per-process compilation)."""
        if self._compiled is None:
            try:
                from ningbo_sd.scenarios.run import compiled_model
            except ImportError:  # the shared cache is not there: compile privately
                from ningbo_sd.engine.engine import compile_model as compiled_model
            compiled = compiled_model(self.model_path)
            # Run once now, at a shallow call depth: the first run compiles (or loads) the
            # numba kernel, which must not happen deep inside an optimiser's call stack.
            compiled.simulate(None, keep=self._variables(compiled), threads=1)
            self._compiled = compiled
        return self._compiled

    def defaults(self, names: Sequence[str]) -> dict[str, float | np.ndarray]:
        """Model-file defaults of the given constants.

        Parameters
        ----------
        names : sequence of str
            Vensim constant names.

        Returns
        -------
        dict
        """
        constants = self.compiled.constants
        missing = [name for name in names if name not in constants]
        if missing:
            raise KeyError(f"{self.model_path.name}: {missing} are not settable model constants")
        return {name: constants[name] for name in names}

    def _variables(self, compiled=None) -> list[str]:
        del compiled  # the variable names do not depend on the compiled model
        names = []
        for column in self.columns:
            match = CLUSTER_COLUMN.match(column.variable)
            names.append(match.group("variable") if match else column.variable)
        return list(dict.fromkeys(names))

    def _layout(self, names: list[str]) -> dict[str, tuple[int, int, tuple]]:
        """Column offsets of each recorded variable in the engine's flat records."""
        layout, offset = {}, 0
        for name in names:
            meta = self.compiled.variables[name]
            size = int(np.prod([len(c) for c in meta.coords])) if meta.dims else 1
            layout[name] = (offset, size, tuple(meta.coords[0]) if meta.dims else ())
            offset += size
        return layout

    def run(self, table: pd.DataFrame | dict) -> dict[str, np.ndarray]:
        """Run every sample of a parameter table.

        Parameters
        ----------
        table : pandas.DataFrame or dict
            One row per sample, columns are Vensim constant names; or a dict of
            name -> array over samples (2-D ``(samples, elements)`` for subscripted).

        Returns
        -------
        dict
            Column name -> array ``(samples, years)``.
        """
        names, times, data = self.compiled.simulate(table, keep=self._variables(), threads=1)
        positions = {
            timing: year_rows(times, self.years, timing)
            for timing in {column.timing for column in self.columns}
        }
        layout = self._layout(names)
        out: dict[str, np.ndarray] = {}
        for column in self.columns:
            match = CLUSTER_COLUMN.match(column.variable)
            variable = match.group("variable") if match else column.variable
            offset, _, elements = layout[variable]
            if match:
                offset += elements.index(match.group("element"))
            out[column.name] = data[:, positions[column.timing], offset] * column.scale
        self.calls += 1
        self.samples += int(data.shape[0])
        return out
