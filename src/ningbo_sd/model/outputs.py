"""Headline output columns of a run, defined in ``outputs.yaml``.

One function turns raw model results (Vensim-named columns indexed by time, from
PySD or from the batch engine) into the tidy per-year table the CLI, the scorecard
and the app share.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ningbo_sd.io import read_yaml_file
from ningbo_sd.resources import model_dir

OUTPUTS_FILE = model_dir() / "outputs.yaml"
CLUSTERS: tuple[str, ...] = (
    "petrochem",
    "auto",
    "equipment",
    "new_materials",
    "electronics",
    "software",
    "basic_parts",
    "appliances",
    "textiles",
    "biomedicine",
    "stationery_sports",
    "green_tech",
    "other",
)
BINDING_LABELS: tuple[str, ...] = ("capital", "land", "energy")
CLUSTER_OUTPUT_VARIABLE = "Cluster Gross Output"


@dataclass(frozen=True)
class OutputColumn:
    """One headline column: where it comes from and how it is labelled."""

    name: str
    variable: str
    scale: float
    unit: str
    label_en: str
    label_zh: str


@lru_cache(maxsize=1)
def output_columns() -> tuple[OutputColumn, ...]:
    """Return the headline columns in file order, then one per cluster."""
    spec = read_yaml_file(OUTPUTS_FILE)
    columns = [
        OutputColumn(
            name=name,
            variable=entry["variable"],
            scale=float(entry["scale"]),
            unit=entry["unit"],
            label_en=entry["en"],
            label_zh=entry["zh"],
        )
        for name, entry in spec.items()
    ]
    columns += [
        OutputColumn(
            name=f"gross_output_{cluster}",
            variable=f"{CLUSTER_OUTPUT_VARIABLE}[{cluster}]",
            scale=1.0,
            unit="亿元 (nominal)",
            label_en=f"Gross output: {cluster}",
            label_zh=f"工业总产值：{cluster}",
        )
        for cluster in CLUSTERS
    ]
    return tuple(columns)


def required_variables() -> list[str]:
    """Model variables (Vensim names, without subscripts) the headline table needs."""
    names = {column.variable.split("[")[0] for column in output_columns()}
    return sorted(names)


def binding_label(code: float) -> str:
    """Map the model's binding-constraint code (0, 1, 2) to its name."""
    index = round(float(code))
    if not 0 <= index < len(BINDING_LABELS):
        raise ValueError(f"binding constraint code {code!r} is not one of 0, 1, 2")
    return BINDING_LABELS[index]


def headline_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Turn raw results into the headline table, one row per year.

    Parameters
    ----------
    raw : pandas.DataFrame
        Indexed by time; columns are Vensim names, subscripted ones as ``Name[elem]``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``year`` (int), one column per headline output; ``binding_constraint``
        holds ``capital``, ``land`` or ``energy``.
    """
    columns = output_columns()
    missing = [c.variable for c in columns if c.variable not in raw.columns]
    if missing:
        raise KeyError(f"model results lack the variables {missing[:5]} needed for the table")
    # one DataFrame call, not one column insertion per output (0.8 ms instead of 12.5 ms:
    # most of the app's server time per slider move)
    positions = raw.columns.get_indexer([column.variable for column in columns])
    values = raw.to_numpy(dtype=float)
    data = {}
    for column, position in zip(columns, positions, strict=True):
        if column.name == "binding_constraint":
            data[column.name] = [binding_label(v) for v in values[:, position]]
        else:
            data[column.name] = values[:, position] * column.scale
    index = pd.Index(np.round(raw.index.to_numpy()).astype(int), name="year")
    return pd.DataFrame(data, index=index)
