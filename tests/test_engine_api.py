"""Python API of the batch engine (ningbo_sd.engine.engine)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ningbo_sd.engine import UnsupportedConstructError, compile_model, run_default

DATA = Path(__file__).resolve().parent / "data"
SYN = DATA / "synthetic13.mdl"


@pytest.fixture(scope="module")
def cm():
    """The compiled synthetic 13-cluster model."""
    return compile_model(SYN)


def test_metadata(cm):
    """Constants, variables and time grid are exposed."""
    assert cm.time == {
        "initial_time": 2015.0,
        "final_time": 2035.0,
        "time_step": 0.25,
        "saveper": 0.25,
    }
    assert cm.constants["Elasticity"] == 0.6
    assert cm.constants["Base Output"].shape == (13,)
    meta = cm.variables["Output"]
    assert meta.kind == "stock" and meta.dims == ("cluster",) and meta.units == "bn yuan"
    assert len(meta.coords[0]) == 13 and meta.py_name == "output"
    assert cm.variables["Demand Table"].kind == "lookup"
    assert cm.variables["Total Output"].kind == "aux"
    assert "Initial output" in cm.variables["Base Output"].documentation


def test_run_dataset_shapes(cm):
    """Dataset over (sample, time[, cluster]) with only the kept variables."""
    ds = cm.run(
        {"Elasticity": np.linspace(0.5, 0.7, 5)}, keep=["Total Output", "output"], saveper=1.0
    )
    assert set(ds.data_vars) == {"Total Output", "Output"}
    assert ds["Output"].dims == ("sample", "time", "cluster")
    assert ds.sizes == {"sample": 5, "time": 21, "cluster": 13}
    assert ds["time"].values[0] == 2015.0 and ds["time"].values[-1] == 2035.0


def test_param_forms_agree(cm):
    """DataFrame, 'Name[elem]' columns, 2-D arrays and PySD names are equivalent."""
    base = cm.constants["Growth Rate"]
    rows = np.array([base * 1.1, base * 0.9])
    a = cm.run({"growth_rate": rows, "Capacity Cost": [2.0, 2.5]}, keep=["Total Output"])
    df = pd.DataFrame({f"Growth Rate[c{i + 1}]": rows[:, i] for i in range(13)})
    df["CAPACITY  cost"] = [2.0, 2.5]
    b = cm.run(df, keep=["Total Output"])
    np.testing.assert_array_equal(a["Total Output"].values, b["Total Output"].values)
    c = cm.run(pd.DataFrame({"Growth Rate": [0.1, 0.1]}), keep=["Output"])
    d = cm.run_one({"Growth Rate": np.full(13, 0.1)}, keep=["Output"])
    np.testing.assert_allclose(c["Output"].values[1].ravel(), d.to_numpy().ravel(), rtol=1e-12)


def test_unknown_name_lists_close_matches(cm):
    """Unknown names raise KeyError naming the name and close matches."""
    with pytest.raises(KeyError, match=r"Elastcity.*Elasticity"):
        cm.run({"Elastcity": 0.5})
    with pytest.raises(KeyError, match="not a constant"):
        cm.run({"Total Output": 1.0})


def test_chunking_and_threads_do_not_change_results(cm):
    """Chunk size and thread count leave results bit-identical."""
    p = {"Elasticity": np.linspace(0.4, 0.8, 37)}
    a = cm.run(p, keep=["Output"], chunk_size=5, threads=2)
    b = cm.run(p, keep=["Output"], chunk_size=100, threads=1)
    np.testing.assert_array_equal(a["Output"].values, b["Output"].values)


def test_run_one_columns_like_pysd(cm):
    """run_one reports every variable, subscripted ones as 'Name[elem]'."""
    df = cm.run_one()
    assert df.index.name == "time"
    assert "Output[c13]" in df.columns and "Total Output" in df.columns
    assert "TIME STEP" in df.columns and "Demand Table" not in df.columns


def test_run_default(tmp_path):
    """run_default runs a model with its defaults."""
    path = tmp_path / SYN.name
    shutil.copy(SYN, path)
    df = run_default(path)
    assert df.shape[0] == 81 and np.isfinite(df.to_numpy()).all()


def test_unsupported_construct_fails_at_compile_time(tmp_path):
    """The error names the construct and the variable."""
    path = tmp_path / "bad.mdl"
    path.write_text(
        "{UTF-8}\nx = DELAY FIXED(Time, 2, 0) ~~|\n"
        "INITIAL TIME = 0 ~~|\nFINAL TIME = 1 ~~|\nTIME STEP = 1 ~~|\nSAVEPER = 1 ~~|\n"
    )
    with pytest.raises(UnsupportedConstructError, match=r"'x'.*DELAY ?FIXED"):
        compile_model(path)


def test_generated_source_holds_no_model_text(cm):
    """No name or text from the model file reaches generated code."""
    pytest.importorskip("numba")
    from ningbo_sd.engine.runtime_numba import _TEMPLATE, NumbaRuntime
    from ningbo_sd.engine.vpow import NUMBA_SOURCE

    body = NumbaRuntime(cm.ir).source
    fragments = [
        *re.split(r"__(?:NC|INIT|BODY|REPORT|POW|UPDATE)__", _TEMPLATE),
        NUMBA_SOURCE.strip(),
    ]
    for fragment in fragments:  # keep only generated code
        assert fragment in body
        body = body.replace(fragment, "\n", 1)
    assert len(body) > 1000  # the equations are there
    assert "'" not in body and '"' not in body  # no strings at all
    ident = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
    allowed = set(ident.findall(_TEMPLATE)) | {"e", "k", "j", "math", "exp", "log", "sqrt"}
    allowed |= {"_powf", "_pow", "_expf", "_exp", "u0", "u1", "False"}
    extra = {w for w in ident.findall(body) if w not in allowed and not re.fullmatch(r"v\d+", w)}
    assert not extra, extra


def test_state_update_is_generated_per_run_of_rows():
    """Consecutive stock/flow rows become one literal loop; a row read and written is refused."""
    from ningbo_sd.engine.codegen import update_source

    src = update_source(
        np.array([3, 4, 5, 9]), np.array([20, 21, 22, 30]), np.array([7]), np.array([8]), 4, 0
    )
    assert "for k in range(3):" in src and "u0 = (3 + k) * NC" in src and "u1 = (20 + k)" in src
    assert "X[36 + s] = X[36 + s] + X[120 + s] * dt" in src  # row 9 alone, as literals
    assert "X[28 + s] = X[32 + s]" in src  # the discrete state: a copy
    with pytest.raises(ValueError, match="read by the update"):
        update_source(
            np.array([1, 2]), np.array([2, 3]), np.array([], int), np.array([], int), 4, 0
        )


def test_a_variable_held_on_its_own_path_reproduces_the_run_exactly():
    """with_paths: a path given at every time step is the variable's own value (an identity)."""
    from ningbo_sd.resources import model_file

    model = compile_model(model_file())
    reference = model.run_one(saveper=model.time["time_step"])
    times = reference.index.to_numpy()
    columns = [c for c in reference.columns if c.startswith("Cluster Investment[")]
    held = model.with_paths(
        {
            "Profit Effect on Investment": (times, reference["Profit Effect on Investment"]),
            "Cluster Investment": (times, reference[columns].to_numpy()),
        }
    )
    np.testing.assert_array_equal(held.run_one().to_numpy(), model.run_one().to_numpy())


def test_a_held_variable_cuts_its_links():
    """Holding investment at a constant changes the capital path; stocks cannot be held."""
    from ningbo_sd.resources import model_file

    model = compile_model(model_file())
    times = np.array([2015.0, 2035.0])
    held = model.with_paths({"Industrial Investment": (times, np.zeros(2))})
    capital = held.run_one(keep=["Total Capital Stock"])["Total Capital Stock"]
    assert np.all(np.diff(capital.to_numpy()[2:]) < 0)  # no investment: capital depreciates
    with pytest.raises(ValueError, match="only auxiliaries"):
        model.with_paths({"Capital Stock": (times, np.zeros((2, 13)))})
    with pytest.raises(KeyError):
        model.with_paths({"No Such Variable": (times, np.zeros(2))})


def test_constants_come_in_the_models_order_whatever_the_hash_seed():
    """Seeded draws over ``constants`` must not depend on the process's string hashing."""
    import os
    import subprocess
    import sys

    code = (
        "from ningbo_sd.engine.engine import compile_model;"
        f"print(list(compile_model({str(SYN)!r}).constants))"
    )
    orders = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(orders) == 1


def test_reporting_variables_are_computed_only_at_saved_steps_with_the_same_bits():
    """What no state update reads is computed at the saved steps only, and equals an every-step run.

    The numba kernel skips the reporting variables (shares, per-unit ratios) at the steps
    it does not save; a run saving every step computes them every step. The values at the
    common times must be the same bits, and nothing a stock reads may be report-only.
    """
    from ningbo_sd.resources import model_file

    cm = compile_model(model_file(), backend="numba")
    ir = cm.ir
    assert {"High Tech Share", "Value Added per Mu"} <= ir.report_only
    assert "Gross Output" not in ir.report_only  # revenue funds R&D, which builds knowledge
    for _, flow in ir.stocks:
        deps = {flow}
        for name in reversed(ir.run_order):
            if name in deps:
                deps |= set().union(*(a.deps_run for a in ir.assigns.get(name, [])))
        assert not deps & ir.report_only, flow
    rng = np.random.default_rng(3)
    draws = {"Capital Elasticity": cm.constants["Capital Elasticity"] * rng.uniform(0.9, 1.1, 6)}
    keep = ["High Tech Share", "Value Added per Mu", "Gross Output"]
    half = cm.run(draws, keep=keep, saveper=2 * cm.time["time_step"])
    every = cm.run(draws, keep=keep, saveper=cm.time["time_step"])
    assert half.sizes["time"] < every.sizes["time"]
    for name in keep:
        np.testing.assert_array_equal(half[name].values, every[name].sel(time=half.time).values)


def test_a_delay_n_with_a_fixed_delay_time_runs_without_stage_clocks_and_equals_pysd(tmp_path):
    """DELAY N whose delay time is fixed for the run lowers to DELAY's stages (no clocks).

    PySD's DELAY N keeps a clock per stage for a delay time that changes; when it cannot
    change, the clocks all hold it and the stages are DELAY's. Both forms must match PySD.
    """
    import warnings

    import pysd

    path = tmp_path / "delays.mdl"
    path.write_text(
        "{UTF-8}\n"
        "Input = 5 + STEP(10, 2) + RAMP(1, 4, 9) ~~|\n"
        "Delay Time = 3 ~~|\n"
        "Fixed = DELAY N(Input, Delay Time, 2, 4) ~~|\n"
        "Varying = DELAY N(Input, Delay Time * (1 + Time / 20), 2, 4) ~~|\n"
        "INITIAL TIME = 0 ~~|\nFINAL TIME = 15 ~~|\nTIME STEP = 0.25 ~~|\nSAVEPER = 0.25 ~~|\n"
    )
    model = compile_model(path, backend="numpy")
    clocks = [n for n, v in model.ir.variables.items() if v.kind == "discrete"]
    assert len(clocks) == 4  # the varying delay's four stage clocks only
    ours = model.run_one(keep=["Fixed", "Varying"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pysd.read_vensim(str(path)).run(return_columns=["Fixed", "Varying"])
    for name in ("Fixed", "Varying"):
        np.testing.assert_allclose(ours[name].to_numpy(), reference[name].to_numpy(), rtol=1e-12)
