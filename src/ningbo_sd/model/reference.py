"""Reference runs with PySD: the translator and simulator the batch engine is tested against.

PySD writes a translated Python file beside the model it reads, so the model is copied
into a private temporary folder first; nothing is written into the repository. The copy is
named ``model.mdl`` (PySD writes the file's name into the generated module's docstring),
and the folder is removed when the translated model is dropped from the cache, at the
latest when the process exits. The file is checked first
(:func:`ningbo_sd.model.safety.check_model_text`): PySD writes model text into the
Python it imports (``docs/security.md``).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import weakref
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.model.metadata import MODEL_PATH, ModelFileError
from ningbo_sd.model.safety import check_model_text

# Warnings PySD 3.14 raises on import or run that say nothing about our model; they are
# documented in the README (section "PySD warnings").
PYSD_NOISE = (
    (DeprecationWarning, r".*chardet.*"),
    (FutureWarning, r".*"),
    (DeprecationWarning, r".*inplace.*"),
)


def _quiet():
    context = warnings.catch_warnings()
    context.__enter__()
    for category, pattern in PYSD_NOISE:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    warnings.filterwarnings("ignore", message=r".*inplace.*")
    return context


@lru_cache(maxsize=4)
def _translated(path: str, mtime: float):
    import pysd

    check_model_text(path)
    workdir = Path(tempfile.mkdtemp(prefix="ningbo-sd-pysd-"))
    # PySD writes the file's name into the generated source: use a plain one
    copy = workdir / (
        "model" + "".join(ch for ch in Path(path).suffix if ch.isalnum() or ch == ".")
    )
    context = _quiet()
    try:
        shutil.copy(path, copy)
        model = pysd.read_vensim(str(copy))
    except Exception as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ModelFileError(f"{path}: PySD cannot translate the model: {exc}") from exc
    finally:
        context.__exit__(None, None, None)
    # copies reload the translated file, so it lives as long as the cached model
    weakref.finalize(model, shutil.rmtree, workdir, ignore_errors=True)
    return model


def load_pysd_model(path: str | Path = MODEL_PATH):
    """Translate a Vensim file with PySD (cached per file and modification time).

    Parameters
    ----------
    path : str or Path
        The `.mdl` file.

    Returns
    -------
    pysd.py_backend.model.Model
        A fresh copy of the translated model (so runs never share state).
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found (expected a Vensim .mdl file)")
    return _translated(str(path), path.stat().st_mtime).copy()


def run_pysd(
    params: dict | None = None,
    path: str | Path = MODEL_PATH,
    return_columns: list[str] | None = None,
    final_time: float | None = None,
    saveper: float | None = None,
) -> pd.DataFrame:
    """Run a model once with PySD.

    Parameters
    ----------
    params : dict, optional
        Constant overrides by Vensim name; subscripted values as numpy arrays over the
        subscript's elements.
    path : str or Path
        The `.mdl` file.
    return_columns : list of str, optional
        Vensim names to return (all variables when omitted).
    final_time, saveper : float, optional
        Override the model's FINAL TIME and SAVEPER.

    Returns
    -------
    pandas.DataFrame
        Indexed by time, Vensim-named columns (subscripted as ``Name[elem]``).
    """
    model = load_pysd_model(path)
    pysd_params = {}
    for name, value in (params or {}).items():
        if isinstance(value, np.ndarray) and value.ndim == 1:
            import xarray as xr

            dims = list(model.get_coords(name)[1] or [])
            coords = model.get_coords(name)[0]
            value = xr.DataArray(value, coords={d: coords[d] for d in dims}, dims=dims)
        pysd_params[name] = value
    kwargs: dict = {"params": pysd_params}
    if return_columns is not None:
        kwargs["return_columns"] = return_columns
    if final_time is not None:
        kwargs["final_time"] = final_time
    if saveper is not None:
        kwargs["time_step"] = None
        kwargs["saveper"] = saveper
    context = _quiet()
    try:
        frame = model.run(**{k: v for k, v in kwargs.items() if v is not None})
    finally:
        context.__exit__(None, None, None)
    frame.index.name = "time"
    return frame
