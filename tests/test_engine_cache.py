"""On-disk caches of the batch engine: parsed IR and jitted kernels, across processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ningbo_sd.engine.loading
from ningbo_sd.engine import compile_model

REPO = Path(__file__).resolve().parents[1]
SYN = Path(__file__).resolve().parent / "data" / "synthetic13.mdl"

_PROBE = """
import hashlib, json, sys
from ningbo_sd.engine.engine import compile_model
cm = compile_model(sys.argv[1])
out = {}
if sys.argv[2] == "source":
    from ningbo_sd.engine.runtime_numba import NumbaRuntime
    rt = NumbaRuntime(cm.ir)
    out["digest"] = hashlib.sha256(rt.source.encode() + rt.I.tobytes() + rt.F.tobytes()).hexdigest()
else:
    df = cm.run_one()  # one sample: the numpy runtime, bit-identical
    runtime = cm._runtime()  # the numba kernel: loaded (a cache hit) or compiled (a miss)
    runtime.prepare()
    mod = runtime._kernel()
    out["hits"] = sum(mod.run_loop.stats.cache_hits.values()) + sum(
        mod.init_loop.stats.cache_hits.values())
    out["misses"] = sum(mod.run_loop.stats.cache_misses.values()) + sum(
        mod.init_loop.stats.cache_misses.values())
    out["last"] = float(df.iloc[-1].sum())
print(json.dumps(out))
"""


def _probe(path: Path, what: str, seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), what],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_generated_kernel_does_not_depend_on_the_hash_seed(tmp_path):
    """Two processes with different string hash seeds generate the same kernel (cache key)."""
    pytest.importorskip("numba")
    path = tmp_path / SYN.name
    shutil.copy(SYN, path)
    assert _probe(path, "source", "1") == _probe(path, "source", "2")


def test_second_process_loads_the_kernel_from_disk(tmp_path):
    """A fresh process finds the jitted kernels in the cache instead of compiling them."""
    pytest.importorskip("numba")
    path = tmp_path / SYN.name
    shutil.copy(SYN, path)
    first = _probe(path, "run", "3")
    second = _probe(path, "run", "4")
    assert second["misses"] == 0 and second["hits"] >= 2, second
    assert second["last"] == first["last"]


def test_ir_cache_is_used_and_invalidated_by_edits(tmp_path, monkeypatch):
    """An unchanged model is not parsed again; any edit of the file is."""
    monkeypatch.setenv("NINGBO_SD_ENGINE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / SYN.name
    shutil.copy(SYN, path)
    fresh = compile_model(path, backend="numpy")
    assert len(list((tmp_path / "cache").glob("ir_*.pickle"))) == 1

    def no_parsing(_path):
        raise AssertionError("the model was parsed again")

    monkeypatch.setattr(ningbo_sd.engine.loading, "load_abstract_model", no_parsing)
    cached = compile_model(path, backend="numpy")
    np.testing.assert_array_equal(cached.run_one().to_numpy(), fresh.run_one().to_numpy())
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="parsed again"):
        compile_model(path, backend="numpy")


def test_corrupt_ir_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    """A truncated cache entry is ignored and rewritten."""
    monkeypatch.setenv("NINGBO_SD_ENGINE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / SYN.name
    shutil.copy(SYN, path)
    compile_model(path, backend="numpy")
    (entry,) = (tmp_path / "cache").glob("ir_*.pickle")
    entry.write_bytes(entry.read_bytes()[:100])
    cm = compile_model(path, backend="numpy")
    assert np.isfinite(cm.run_one().to_numpy()).all()
    assert entry.stat().st_size > 100


def test_a_first_start_answers_on_numpy_while_numba_compiles_elsewhere(tmp_path, monkeypatch):
    """An empty cache: a background process compiles; runs meanwhile are numpy's, and equal."""
    pytest.importorskip("numba")
    monkeypatch.setenv("NINGBO_SD_ENGINE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / SYN.name
    shutil.copy(SYN, path)
    cm = compile_model(path)
    assert not cm.kernel_cached()
    assert cm.compile_in_background()
    process = cm._compiling
    draws = {name: np.full(3, value) for name, value in cm.constants.items() if np.ndim(value) == 0}
    during = cm.run(draws)
    assert process.poll() is not None or cm.backend == "numpy"  # answered without waiting
    assert process.wait(timeout=600) == 0
    after = cm.run(draws)
    assert cm.backend == "numba" and cm.kernel_cached()
    for name in during.data_vars:
        np.testing.assert_array_equal(during[name].to_numpy(), after[name].to_numpy())
    fresh = compile_model(path)
    assert fresh.kernel_cached() and not fresh.compile_in_background()


_ORPHAN = """
import os, sys, time
from ningbo_sd.engine import compile_model
cm = compile_model(sys.argv[1])
assert cm.compile_in_background()
print(cm._compiling.pid, flush=True)
time.sleep(600)  # killed outright by the test: no atexit runs
"""


def test_a_background_compile_ends_with_a_parent_killed_outright(tmp_path):
    """SIGKILL skips atexit; the compile notices its parent is gone and ends within seconds."""
    pytest.importorskip("numba")
    from ningbo_sd.resources import model_file

    path = tmp_path / "ningbo.mdl"  # a compile of tens of seconds, in an empty cache
    shutil.copy(model_file(), path)
    env = {**os.environ, "NINGBO_SD_ENGINE_CACHE": str(tmp_path / "cache")}
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 8  # it checks every 0.5 s; the compile takes far longer
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(child), "the background compile outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def _alive(pid: int) -> bool:
    """Whether a process (not a zombie) with this id runs."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
