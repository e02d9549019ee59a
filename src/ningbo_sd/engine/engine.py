"""Batch simulation engine: compile a Vensim model once, run many samples fast.

Examples
--------
>>> from ningbo_sd.engine.engine import compile_model
>>> cm = compile_model("model/ningbo.mdl")                  # doctest: +SKIP
>>> ds = cm.run({"Some Constant": np.linspace(1, 2, 1000)})  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .ir import ModelIR, UnsupportedConstructError, VariableMeta
from .loading import cache_dir, load_ir
from .params import fill_constants, parse_params
from .runtime_numpy import NumpyRuntime
from .subscripts import key
from .timegrid import _RPREC, time_grid
from .timegrid import chunk_size as _chunk_size

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "CompiledModel",
    "UnsupportedConstructError",
    "VariableMeta",
    "compile_model",
    "run_default",
    "time_grid",
]


def _stop(process) -> None:
    """End a background compile that is still running, and reap it."""
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def compile_model(path: str | Path, backend: str = "auto") -> CompiledModel:
    """Compile a Vensim ``.mdl`` file into a vectorised simulator.

    Parameters
    ----------
    path : str or Path
        The model file (treated as data; nothing in it is executed).
    backend : {"auto", "numba", "numpy"}
        ``auto`` uses numba when installed, else the pure-numpy runtime.

    Returns
    -------
    CompiledModel

    Raises
    ------
    UnsupportedConstructError
        If the model uses a construct the engine does not implement.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"model file {str(path)!r} not found")
    return CompiledModel(load_ir(path, cache_dir()), path=Path(path), backend=backend)


def run_default(path: str | Path) -> pd.DataFrame:
    """Run a model once with its default constants, like ``pysd.read_vensim(path).run()``.

    Parameters
    ----------
    path : str or Path
        The ``.mdl`` file.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``time``; one column per variable under its Vensim name
        (subscripted ones as ``Name[elem,...]``).
    """
    return compile_model(path).run_one()


class CompiledModel:
    """A compiled model; see :func:`compile_model`.

    Attributes
    ----------
    constants : dict
        Vensim name -> default value (float, or ndarray for subscripted).
    variables : dict
        Vensim name -> :class:`VariableMeta` (user-visible variables).
    time : dict
        ``initial_time``, ``final_time``, ``time_step``, ``saveper``.
    ir : ModelIR
        The intermediate representation.
    """

    def __init__(self, model: ModelIR, path: Path | None = None, backend: str = "auto") -> None:
        self.ir = model
        self.path = path
        self._numpy = NumpyRuntime(model)
        self._backend_name = backend
        self._fast = None
        self._compiling = None  # a background compile (subprocess.Popen), if any
        self.variables: dict[str, VariableMeta] = {}
        self._names: dict[str, str] = {}
        for name, v in model.variables.items():
            if name.startswith("~"):
                continue
            self.variables[name] = VariableMeta(
                name, v.py_name, v.kind, v.units, v.limits, v.documentation, v.dims, v.coords
            )
            for alias in (key(name), v.py_name, key(v.py_name)):
                self._names.setdefault(alias, name)
        self._settable = {
            n
            for n, v in model.variables.items()
            if v.kind == "constant" and n not in model.structural
        }
        # in the model's order, not a set's: the same in every process (seeded draws over
        # ``constants`` give the same samples whatever the string hash seed)
        self.constants = {n: self._default(n) for n in model.variables if n in self._settable}
        self.structural_constants = {n: self._default(n) for n in sorted(model.structural)}
        self._cache: dict = {}  # keep rows, time grids and column labels, per request
        self._control_fns = self._control_closure()
        self.time = self._control_values({}, 1)

    # ------------------------------------------------------------------ metadata
    def _default(self, name: str):
        v = self.ir.variables[name]
        return float(v.default[0]) if not v.dims else v.default.reshape(v.shape).copy()

    def resolve(self, name: str) -> str:
        """Vensim name of a variable given any accepted spelling.

        Parameters
        ----------
        name : str
            Vensim name (case/space/underscore-insensitive) or PySD python name.

        Raises
        ------
        KeyError
            Naming the unknown name and listing close matches.
        """
        hit = self._names.get(key(name)) or self._names.get(name)
        if hit is None:
            close = difflib.get_close_matches(key(name), list(self._names), n=5, cutoff=0.6)
            close = sorted({self._names[c] for c in close})
            raise KeyError(f"unknown variable {name!r}; close matches: {close}")
        return hit

    # ------------------------------------------------------------------ backend
    @property
    def backend(self) -> str:
        """The runtime in use: ``numba`` or ``numpy``."""
        self._runtime()
        return "numba" if self._fast is not None else "numpy"

    def _runtime(self, n: int | None = None):
        """The runtime for a run of ``n`` samples.

        ``auto`` runs one sample on numpy until the numba kernel is loaded in this
        process (a one-off run costs less than loading numba; the two agree bit for bit
        on the models the tests name), and runs everything on numpy while a background
        compile (:meth:`compile_in_background`) is under way.
        """
        if self._fast is not None:
            return self._fast
        if self._backend_name == "numpy":
            return self._numpy
        if self._backend_name == "auto":
            if self._compiling is not None:
                if self._compiling.poll() is None:
                    return self._numpy  # still compiling elsewhere: answer now
                self._compiling = None  # done: load the kernel from the disk cache
            elif n == 1:
                return self._numpy
        try:
            from .runtime_numba import NumbaRuntime
        except ImportError:
            if self._backend_name == "numba":
                raise
            self._backend_name = "numpy"
            return self._numpy
        self._fast = NumbaRuntime(self.ir)
        return self._fast

    def with_paths(self, paths: dict) -> CompiledModel:
        """A copy in which some auxiliaries follow given time paths instead of their equations.

        This cuts every link into those variables (a loop test holds a link at the path it
        had in another run, as Vensim users do by hand with data variables). A path is
        interpolated linearly in time; given at every time step, it is reproduced exactly.
        The copy runs on the numpy runtime (no compile).

        Parameters
        ----------
        paths : dict
            Vensim name -> ``(times, values)``: ``times`` ascending, ``values`` of shape
            ``(len(times),)`` or ``(len(times), n_elements)`` (subscripted variables, in
            the order of their elements).

        Returns
        -------
        CompiledModel

        Raises
        ------
        KeyError
            A name that is not a variable of the model.
        ValueError
            A stock, a constant or a control variable (only auxiliaries can be held), or
            values of the wrong shape.
        """
        from .paths import hold_on_paths

        resolved = {self._names.get(n, self._names.get(key(n), n)): v for n, v in paths.items()}
        return CompiledModel(hold_on_paths(self.ir, resolved), path=None, backend="numpy")

    def kernel_cached(self) -> bool:
        """Whether the numba kernel is in the on-disk cache (loading it takes ~1 s)."""
        try:
            from .runtime_numba import NumbaRuntime
        except ImportError:
            return False
        return NumbaRuntime.is_cached(self.ir)

    def compile_in_background(self) -> bool:
        """Compile the numba kernel in another process; run on numpy until it is done.

        A new machine's first start would otherwise wait ~40 s for numba. The other
        process writes the kernel to the on-disk cache, and the first run after it
        finishes loads it from there. Needs the model's path (see :func:`compile_model`).

        Returns
        -------
        bool
            True if a compile was started; False if the kernel is cached already (then
            it is loaded now), numba is missing or the backend is ``numpy``.
        """
        if self._fast is not None or self._backend_name == "numpy" or self.path is None:
            return False
        if self.kernel_cached():
            self._runtime(n=None)
            if hasattr(self._fast, "prepare"):
                self._fast.prepare()
            return False
        import atexit
        import os
        import subprocess
        import sys

        # --parent: it ends with this process, even one killed outright (no atexit)
        command = [sys.executable, "-m", f"{__package__}.warm", "--parent", str(os.getpid())]
        self._compiling = subprocess.Popen(
            [*command, str(self.path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(_stop, self._compiling)  # never outlive the process that asked
        return True

    # ------------------------------------------------------------------ params
    def _parse_params(self, params) -> tuple[dict, int]:
        """Return ``({var: (S|1, size) array}, n_samples)`` (see :func:`.params.parse_params`)."""
        return parse_params(params, self._parse_label, self.ir.variables)

    def _parse_label(self, label: str) -> tuple[str, tuple | None]:
        """A parameter label's constant and, for ``"Name[elem,...]"``, its element keys.

        Remembered per label: the app runs the same hundred labels at every slider move,
        and resolving them (regular expressions and name keys) was a quarter of a run.
        """
        labels = self._cache.setdefault("parsed labels", {})
        parsed = labels.get(label)
        if parsed is None:
            m = re.fullmatch(r"\s*(.+?)\s*\[(.+)\]\s*", label)
            if m and key(label) not in self._names:
                name = self._check_settable(m.group(1))
                parsed = (name, tuple(key(e) for e in m.group(2).split(",")))
            else:
                parsed = (self._check_settable(label), None)
            labels[label] = parsed
        return parsed

    def _check_settable(self, label: str) -> str:
        name = self.resolve(label)
        if name in self.ir.structural:
            raise KeyError(
                f"{name!r} fixes the model structure (a DELAY N / SMOOTH N "
                "order) and cannot be changed per run; edit the model instead"
            )
        if name not in self._settable:
            raise KeyError(
                f"{name!r} is not a constant (kind "
                f"{self.ir.variables[name].kind!r}); only constants can be set"
            )
        return name

    # ------------------------------------------------------------------ time grid
    def _control_closure(self):
        ctrl = set(self.ir.control.values())
        need, stack = set(), list(ctrl)
        while stack:
            n = stack.pop()
            if n in need:
                continue
            need.add(n)
            for a in self.ir.assigns.get(n, []):
                stack.extend(a.deps_init)
        sub = ModelIR(
            variables=self.ir.variables,
            assigns=self.ir.assigns,
            init_order=[n for n in self.ir.init_order if n in need],
            tables=self.ir.tables,
            n_rows=self.ir.n_rows,
        )
        self._control_inputs = need & (self._settable | self.ir.structural)
        return NumpyRuntime(sub).init_fns

    def _defaults(self) -> np.ndarray:
        """One value per state row: the constants' defaults, 0 elsewhere (computed later)."""
        defaults = self._cache.get("defaults")
        if defaults is None:
            defaults = np.zeros(self.ir.n_rows)
            for name in self._settable | self.ir.structural:
                v = self.ir.variables[name]
                defaults[v.offset : v.offset + v.size] = v.default
            self._cache["defaults"] = defaults
        return defaults

    def _fill_constants(self, X: np.ndarray, values: dict, lo: int, hi: int) -> None:
        """Write samples ``lo:hi`` of the constants into ``X`` (:func:`.params.fill_constants`)."""
        fill_constants(X, values, self.ir.variables, lo, hi)

    def _control_values(self, values: dict, n: int) -> dict:
        if hasattr(self, "time") and not self._control_inputs.intersection(values):
            return dict(self.time)  # the time grid does not depend on these parameters
        X = self._numpy.allocate(n, self._defaults())
        self._fill_constants(X, values, 0, n)
        with np.errstate(all="ignore"):
            for fn in self._control_fns:
                fn(X, 0.0)
        out = {}
        for k, name in self.ir.control.items():
            row = X[self.ir.variables[name].offset]
            if np.ptp(row) != 0:
                raise ValueError(f"{name!r} must be the same for all samples")
            out[k] = float(row[0])
        return out

    # ------------------------------------------------------------------ running
    def _keep_rows(self, keep) -> tuple[list[str], np.ndarray]:
        tag = keep if keep is None or isinstance(keep, str) else tuple(keep)
        hit = self._cache.get(("keep", tag))
        if hit is None:
            hit = self._cache[("keep", tag)] = self._find_keep_rows(keep)
        return list(hit[0]), hit[1]

    def _time_grid(self, ctl: dict):
        tag = ("grid", ctl["initial_time"], ctl["final_time"], ctl["time_step"], ctl["saveper"])
        hit = self._cache.get(tag)
        if hit is None:
            hit = self._cache[tag] = time_grid(
                ctl["initial_time"], ctl["final_time"], ctl["time_step"], ctl["saveper"]
            )
        return hit

    def _find_keep_rows(self, keep) -> tuple[list[str], np.ndarray]:
        if keep is None:
            names = [n for n, m in self.variables.items() if m.kind != "lookup"]
        else:
            names = [self.resolve(k) for k in ([keep] if isinstance(keep, str) else keep)]
            bad = [n for n in names if self.variables[n].kind == "lookup"]
            if bad:
                raise KeyError(f"lookups cannot be recorded: {bad}")
            names = list(dict.fromkeys(names))
        rows = [
            np.arange(
                self.ir.variables[n].offset, self.ir.variables[n].offset + self.ir.variables[n].size
            )
            for n in names
        ]
        return names, np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)

    def simulate(
        self,
        params=None,
        keep=None,
        saveper: float | None = None,
        chunk_size: int | None = None,
        threads: int | None = None,
        row_major: bool = False,
    ):
        """Run and return raw records (used by :meth:`run` and :meth:`run_one`).

        Parameters
        ----------
        row_major : bool
            Lay the records out as ``(n_rows, n_saved, n_samples)``: each recorded
            row is then one contiguous ``(times, samples)`` block, as the kernel
            writes it (what :meth:`run` wants; per-variable arithmetic on the
            default layout strides over every recorded row and was ~20x slower for
            100,000 samples).

        Returns
        -------
        names : list of str
            Recorded variables.
        times : ndarray
            Saved times (rounded as PySD reports them).
        data : ndarray
            ``(n_samples, n_saved, n_rows)`` records (``row_major``: ``(n_rows,
            n_saved, n_samples)``), variables' rows concatenated in the order of
            ``names``.
        """
        values, n = self._parse_params(params)
        ctl = self._control_values(values, n)
        if saveper is not None:
            ctl["saveper"] = float(saveper)
        times, save = self._time_grid(ctl)
        names, keep_rows = self._keep_rows(keep)
        runtime = self._runtime(n)
        if hasattr(runtime, "prepare"):
            runtime.prepare()  # compile/load once, before any worker thread starts
        n_saved = int(save.sum())
        data = np.empty((len(keep_rows), n_saved, n) if row_major else (n, n_saved, len(keep_rows)))
        if threads is None:
            threads = min(os.cpu_count() or 1, 2)
        if chunk_size is None:
            chunk_size = _chunk_size(n, threads, getattr(runtime, "group", 1))
        bounds = [(lo, min(lo + chunk_size, n)) for lo in range(0, n, chunk_size)]

        def work(b):
            lo, hi = b
            X = runtime.allocate(hi - lo, self._defaults())
            self._fill_constants(X, values, lo, hi)
            rec = runtime.run(X, times, save, keep_rows, ctl["time_step"])[:, :, : hi - lo]
            if row_major:
                data[:, :, lo:hi] = rec  # (rows, times, samples): block copies
            else:
                data[lo:hi] = rec.transpose(2, 1, 0)

        threads = min(threads, len(bounds))
        if threads > 1 and len(bounds) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(work, bounds))
        else:
            for b in bounds:
                work(b)
        digits = -int(np.log10(ctl["time_step"] * _RPREC))
        return names, np.round(times[save], digits), data

    def run(
        self,
        params=None,
        keep=None,
        saveper: float | None = None,
        chunk_size: int | None = None,
        threads: int | None = None,
    ) -> xr.Dataset:
        """Run a batch of samples.

        Parameters
        ----------
        params : DataFrame or dict, optional
            Constants per sample.  DataFrame: one row per sample, columns are
            constant names (a subscripted constant as one column broadcast to all
            elements, or as ``"Name[elem]"`` columns).  dict: name -> scalar,
            1-D array over samples, or 2-D array ``(samples, elements)``.
            Names may be Vensim names (case/space-insensitive) or PySD names.
        keep : list of str, optional
            Variables to record (default: all).  Bounds memory for big batches.
        saveper : float, optional
            Override SAVEPER (recording interval).
        chunk_size : int, optional
            Samples simulated together (default 2048).
        threads : int, optional
            Worker threads over chunks (default: up to 2).

        Returns
        -------
        xarray.Dataset
            One variable per recorded model variable over
            ``(sample, time[, subscript dims])``.

        Raises
        ------
        KeyError
            Unknown or non-constant parameter name.
        """
        names, times, data = self.simulate(
            params, keep, saveper, chunk_size, threads, row_major=True
        )
        n = data.shape[2]
        out, col = {}, 0
        coords: dict = {"sample": np.arange(n), "time": times}
        for name in names:
            m = self.variables[name]
            shape = [len(c) for c in m.coords]
            size = int(np.prod(shape)) if m.dims else 1
            # (elements, time, sample) -> (sample, time, *dims): a view, no copy (the
            # few years and columns a caller picks are copied when it picks them)
            block = data[col : col + size].reshape((*shape, len(times), n))
            arr = np.moveaxis(block, (-1, -2), (0, 1))
            col += size
            for dim, elements in zip(m.dims, m.coords, strict=True):
                if coords.setdefault(dim, list(elements)) != list(elements):
                    raise ValueError(f"dimension {dim!r} has two sets of elements")
            attrs = {"units": m.units, "py_name": m.py_name}
            out[name] = (("sample", "time", *m.dims), arr, attrs)
        # (dims, values, attrs) tuples with the coordinates given once: no alignment
        # pass over every variable (0.4 s per 100,000 samples with DataArrays)
        import xarray as xr  # only batch runs pay for importing xarray

        return xr.Dataset(out, coords=coords)

    def run_one(self, params=None, keep=None, saveper: float | None = None) -> pd.DataFrame:
        """Run one sample and return a PySD-style DataFrame.

        Parameters
        ----------
        params : dict, optional
            Name -> scalar, or (subscripted constants) an array of the element
            values; ``"Name[elem]"`` keys are accepted too.
        keep : list of str, optional
            Variables to report (default: all).
        saveper : float, optional
            Override SAVEPER.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``time``; subscripted variables as ``"Name[e1,e2]"`` columns.
        """
        single = {}
        for k, val in (params or {}).items():
            a = np.asarray(val, dtype=float)
            single[k] = a[None, ...] if a.ndim >= 1 else a
        names, times, data = self.simulate(single or None, keep, saveper, threads=1)
        tag = ("labels", tuple(names))
        labels = self._cache.get(tag)
        if labels is None:
            labels = self._cache[tag] = self._labels(names)
        return pd.DataFrame(data[0], index=pd.Index(times, name="time"), columns=labels, copy=False)

    def _labels(self, names: list[str]) -> list[str]:
        """PySD-style column labels of the recorded rows of ``names``."""
        labels = []
        for name in names:
            m = self.variables[name]
            if not m.dims:
                labels.append(name)
                continue
            for combo in np.ndindex(*[len(c) for c in m.coords]):
                elems = ",".join(c[i] for c, i in zip(m.coords, combo, strict=True))
                labels.append(f"{name}[{elems}]")
        return labels
