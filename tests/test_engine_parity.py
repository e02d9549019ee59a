"""Differential tests: the batch engine against PySD, and batch against single runs."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from external import REPO, SUITE, missing

from ningbo_sd.engine.engine import compile_model
from ningbo_sd.resources import model_file

N_DRAWS = 20
#: models on which both runtimes agree bit for bit (a sum's order is the kernel's)
BIT_IDENTICAL = {"ningbo", "synthetic13"}

MODELS = {
    "ningbo": model_file(),
    "synthetic13": REPO / "tests" / "data" / "synthetic13.mdl",
    "subscripted_delays": SUITE / "subscripted_delays" / "test_subscripted_delays.mdl",
    "smooth_and_stock": SUITE / "smooth_and_stock" / "test_smooth_and_stock.mdl",
    "lookups": SUITE / "lookups" / "test_lookups.mdl",
    "subscripted_trend": SUITE / "subscripted_trend" / "test_subscripted_trend.mdl",
    "subscript_aggregation": SUITE / "subscript_aggregation" / "test_subscript_aggregation.mdl",
    "arguments": SUITE / "arguments" / "test_arguments.mdl",
}
#: models whose random draws are also checked (PySD runs are slow)
DRAWS = {
    "ningbo": N_DRAWS,
    "synthetic13": N_DRAWS,
    "subscripted_delays": 3,
    "smooth_and_stock": 5,
    "lookups": 5,
    "subscripted_trend": 3,
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request, tmp_path_factory):
    """(name, model copy in a temp dir, compiled model, PySD model)."""
    src = MODELS[request.param]
    if not src.is_file():
        pytest.skip(missing("suite") or f"{src} is absent")
    import pysd

    work = tmp_path_factory.mktemp(request.param)
    path = work / src.name
    shutil.copy(src, path)  # PySD writes its translation beside the model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pysd_model = pysd.read_vensim(str(path))
    return request.param, path, compile_model(path), pysd_model


def _pysd_run(model, params=None) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.reload()
        return model.run(params=params or {})


def _assert_close(ours: pd.DataFrame, ref: pd.DataFrame, label: str) -> None:
    cols = [c for c in ref.columns if c in ours.columns]
    assert len(cols) >= len(ref.columns) - 0, (
        f"{label}: engine lacks {sorted(set(ref.columns) - set(ours.columns))[:5]}"
    )
    assert np.allclose(ours.index.to_numpy(float), ref.index.to_numpy(float))
    a = ours[cols].to_numpy(float)
    b = ref[cols].to_numpy(float)
    bad = ~(np.isclose(a, b, rtol=1e-9, atol=1e-12) | (np.isnan(a) & np.isnan(b)))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise AssertionError(
            f"{label}: {cols[j]} at t={ref.index[i]}: engine {a[i, j]!r}, "
            f"PySD {b[i, j]!r} ({bad.sum()} values differ)"
        )


def _draws(cm, n: int, seed: int):
    """Constants drawn uniformly within +-20% of their defaults."""
    if not cm.constants:
        pytest.skip("the model has no constants to draw")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        d = {}
        for name, val in cm.constants.items():
            d[name] = np.asarray(val) * rng.uniform(0.8, 1.2, size=np.shape(val))
        draws.append(d)
    return draws


def _to_pysd(cm, draw: dict) -> dict:
    out = {}
    for name, val in draw.items():
        meta = cm.variables[name]
        if meta.dims:
            out[meta.py_name] = xr.DataArray(
                np.asarray(val),
                {d: list(c) for d, c in zip(meta.dims, meta.coords, strict=True)},
                list(meta.dims),
            )
        else:
            out[meta.py_name] = float(val)
    return out


def test_default_parameters(case):
    """Default run equals PySD at every saved step (1e-9 relative)."""
    name, _, cm, pysd_model = case
    _assert_close(cm.run_one(), _pysd_run(pysd_model), f"{name} defaults")


def test_random_draws(case):
    """Batch of random draws equals PySD draw by draw (1e-9 relative)."""
    name, _, cm, pysd_model = case
    if name not in DRAWS:
        pytest.skip("defaults only")
    draws = _draws(cm, DRAWS[name], seed=12345)
    params = {k: np.stack([d[k] for d in draws]) for k in cm.constants}
    ds = cm.run(params)
    for j, draw in enumerate(draws):
        ref = _pysd_run(pysd_model, _to_pysd(cm, draw))
        ours = _dataset_row(cm, ds, j)
        _assert_close(ours, ref, f"{name} draw {j}")


def _dataset_row(cm, ds: xr.Dataset, j: int) -> pd.DataFrame:
    cols = {}
    for name in ds.data_vars:
        arr = ds[name].isel(sample=j).to_numpy()
        meta = cm.variables[name]
        if not meta.dims:
            cols[name] = arr
        else:
            for combo in np.ndindex(*arr.shape[1:]):
                label = ",".join(c[i] for c, i in zip(meta.coords, combo, strict=True))
                cols[f"{name}[{label}]"] = arr[(slice(None), *combo)]
    return pd.DataFrame(cols, index=pd.Index(ds["time"].to_numpy(), name="time"))


def test_batch_sample_equals_single_run(case):
    """Sample j of a batch equals a single run of sample j (1e-12)."""
    name, _, cm, _ = case
    draws = _draws(cm, 40, seed=7)
    params = {k: np.stack([d[k] for d in draws]) for k in cm.constants}
    ds = cm.run(params, chunk_size=16, threads=2)
    for j in (0, 17, 39):
        single = cm.run_one(draws[j])
        _assert_close(single, _dataset_row(cm, ds, j), f"{name} sample {j}")
        batch = _dataset_row(cm, ds, j)[single.columns].to_numpy()
        np.testing.assert_allclose(single.to_numpy(), batch, rtol=1e-12, atol=0)


def test_numpy_and_numba_runtimes_agree(case):
    """The jitted runtime equals the numpy reference runtime: bit for bit on the project's
    models (sums fold in the kernel's order), to 1e-12 on the rest of the suite."""
    pytest.importorskip("numba")
    name, path, cm, _ = case
    ref = compile_model(path, backend="numpy")
    draws = _draws(cm, 8, seed=3)
    params = {k: np.stack([d[k] for d in draws]) for k in cm.constants}
    a, b = cm.run(params), ref.run(params)
    for var in a.data_vars:
        if name in BIT_IDENTICAL:  # the first start answers on numpy while numba compiles
            np.testing.assert_array_equal(
                a[var].to_numpy(), b[var].to_numpy(), err_msg=f"{name}: {var}"
            )
            continue
        np.testing.assert_allclose(
            a[var].to_numpy(), b[var].to_numpy(), rtol=1e-12, atol=1e-300, err_msg=f"{name}: {var}"
        )
