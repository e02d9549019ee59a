"""Units: the dimensional consistency of every equation of a Vensim model, checked with pint.

Each equation's right side is walked over PySD's abstract syntax; every reference takes its
variable's declared units, and the unit of the whole is compared with the declared one. Units
must agree in dimension *and* in scale: 亿元 (``CNY100m``) and 万元 (``CNY10k``) are both money,
but an equation that declares one and computes the other is off by 10,000, which is how a
literal conversion factor (``* 10000``) shows up.

The rules are Vensim's:

- ``+``, ``-``, comparisons, ``MIN``/``MAX``, the branches of ``IF THEN ELSE`` and the arguments
  of ``XIDZ`` take operands in the same units; a bare number adopts the units of the other side;
- ``*`` and ``/`` combine units (a number there is dimensionless), as do ``ZIDZ`` and ``XIDZ``;
- ``^``: the exponent is dimensionless; a base with units needs a literal exponent;
- ``EXP``, ``LN`` and the trigonometric functions take a dimensionless argument;
- ``INTEG(flow, initial)``: the flow in the stock's units per Year, the initial value in its
  units; ``SMOOTH``/``DELAY``: the output in the input's units, times in Year; ``Time`` and the
  control variables are in Year (the model's time unit: TIME STEP's units);
- a lookup returns its own declared units and takes a dimensionless input.

Where a construct has no unit rule (an undeclared unit, a function without a rule, external
data) the equation is ``unchecked``, with the reason, never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pint

from ningbo_sd.engine.subscripts import key
from ningbo_sd.io import UserError, read_yaml_file
from ningbo_sd.model.metadata import MODEL_PATH, ModelFileError
from ningbo_sd.resources import model_dir
from ningbo_sd.validation import Section
from ningbo_sd.validation.unit_registry import format_unit, parse_unit, registry, unit_problem

__all__ = ["check_units", "format_unit", "known_failures_file", "parse_unit", "registry"]

# ----------------------------------------------------------------------------- inference


class _MismatchError(Exception):
    """Units that do not agree inside or at the top of an equation."""


class _UncheckedError(Exception):
    """A construct without a unit rule."""


@dataclass(frozen=True)
class _Val:
    """The units of a sub-expression; ``unit=None`` is a bare number (it adopts units)."""

    unit: pint.Unit | None
    value: float | None = None

    @property
    def free(self) -> bool:
        return self.unit is None


_DMNL_FUNCS = {
    "exp", "ln", "log", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
}  # fmt: skip
_KEEP_FUNCS = {"abs", "integer", "sum", "vmin", "vmax"}
_SAME_FUNCS = {"min", "max", "modulo", "quantum"}
#: SMOOTH and DELAY structures: the field holding their time, and their name.
_STATEFUL = {
    "SmoothStructure": ("smooth_time", "SMOOTH"),
    "SmoothNStructure": ("smooth_time", "SMOOTH N"),
    "DelayStructure": ("delay_time", "DELAY"),
    "DelayNStructure": ("delay_time", "DELAY N"),
    "DelayFixedStructure": ("delay_time", "DELAY FIXED"),
}


def _is_number(ast) -> bool:
    return isinstance(ast, (int, float, bool, np.integer, np.floating, np.bool_, np.ndarray))


def _cls(obj) -> str:
    return type(obj).__name__


class _Checker:
    """Infers the units of one model's equations from its declared units."""

    def __init__(self, section) -> None:
        self.dmnl = registry().dimensionless
        self.elements = {key(el.name): el for el in section.elements}
        self.lookups = {
            k for k, el in self.elements.items() if _cls(el.components[0]) == "AbstractLookup"
        }
        self.subscripts: set[str] = set()
        for rng in section.subscripts:
            self.subscripts.add(key(rng.name))
            if isinstance(rng.subscripts, (list, tuple)):
                self.subscripts.update(key(s) for s in rng.subscripts)
        self.declared: dict[str, pint.Unit | str] = {}
        for k, el in self.elements.items():
            self.declared[k] = self._declare(el)
        # Vensim's time unit is TIME STEP's (Year in the project's models)
        step = self.declared.get("time_step", registry().Year)
        self.time_unit: pint.Unit | str = step
        if isinstance(step, str):
            self.time_unit = f"the model's time unit is unknown: TIME STEP {step}"
        self.current: pint.Unit | None = None  # declared units of the equation being checked

    @staticmethod
    def _declare(el) -> pint.Unit | str:
        """The element's declared unit, or why there is none (a string)."""
        text = (el.units or "").strip()
        if not text:
            return "declares no units"
        try:
            return parse_unit(text)
        except ValueError as exc:
            return f"units {exc}"

    # ----------------------------------------------------------------- helpers
    @property
    def year(self) -> pint.Unit:
        """The model's time unit (TIME STEP's units)."""
        if isinstance(self.time_unit, str):
            raise _UncheckedError(self.time_unit)
        return self.time_unit

    def _units_of(self, name: str) -> pint.Unit:
        declared = self.declared[key(name)]
        if isinstance(declared, str):
            raise _UncheckedError(f"'{self.elements[key(name)].name}' {declared}")
        return declared

    def _same(self, a: _Val, b: _Val, what: str) -> _Val:
        """Operands that must agree; a bare number adopts the other's units."""
        if a.free and b.free:
            return _Val(None, None)
        if a.free or b.free:
            return b if a.free else a
        problem = unit_problem(b.unit, a.unit)
        if problem:
            raise _MismatchError(
                f"{what} of {format_unit(a.unit)} and {format_unit(b.unit)}: {problem}"
            )
        # keep the shorter spelling of two equal units
        return min(a, b, key=lambda v: len(format_unit(v.unit)))

    def _need(self, val: _Val, unit: pint.Unit, what: str) -> None:
        if val.free:
            return
        problem = unit_problem(val.unit, unit)
        if problem:
            raise _MismatchError(
                f"{what} is in {format_unit(val.unit)}, needs {format_unit(unit)}: {problem}"
            )

    # ----------------------------------------------------------------- walk
    def infer(self, ast) -> _Val:
        """The units of one abstract-syntax node."""
        if _is_number(ast):
            return _Val(None, None if getattr(ast, "ndim", 0) else float(ast))
        if isinstance(ast, str):
            raise _UncheckedError("text argument")
        if _cls(ast) in _STATEFUL:
            return self._stateful(ast, *_STATEFUL[_cls(ast)])
        handler = getattr(self, f"_{_cls(ast).lower()}", None)
        if handler is None:
            label = _cls(ast).removesuffix("Structure").upper()
            raise _UncheckedError(f"{label} has no unit rule")
        return handler(ast)

    def _referencestructure(self, ast) -> _Val:
        ref = key(ast.reference)
        if ref == "time":
            return _Val(self.year)
        if ref in self.elements:
            if ref in self.lookups:
                raise _UncheckedError(f"lookup '{self.elements[ref].name}' used as a value")
            if _cls(self.elements[ref]) == "AbstractControlElement":
                return _Val(self.year)
            return _Val(self._units_of(ref))
        if ref in self.subscripts:
            return _Val(self.dmnl)
        raise _UncheckedError(f"unknown reference '{ast.reference}'")

    def _arithmeticstructure(self, ast) -> _Val:
        ops = list(ast.operators)
        args = list(ast.arguments)
        if ops == ["negative"]:
            val = self.infer(args[0])
            return _Val(val.unit, None if val.value is None else -val.value)
        if all(op == "^" for op in ops):
            out = self.infer(args[-1])
            for raw in reversed(args[:-1]):
                out = self._power(self.infer(raw), out)
            return out
        out = self.infer(args[0])
        for op, arg in zip(ops, args[1:], strict=True):
            out = self._binary(op, out, self.infer(arg))
        return out

    def _binary(self, op: str, a: _Val, b: _Val) -> _Val:
        if op in ("+", "-"):
            out = self._same(a, b, f"'{op}'")
            value = None
            if a.value is not None and b.value is not None:
                value = a.value + b.value if op == "+" else a.value - b.value
            return _Val(out.unit, value)
        if op not in ("*", "/"):
            raise _UncheckedError(f"operator '{op}' has no unit rule")
        if a.free and b.free:
            value = None
            if a.value is not None and b.value is not None:
                value = a.value * b.value if op == "*" else (a.value / b.value if b.value else None)
            return _Val(None, value)
        ua = self.dmnl if a.free else a.unit
        ub = self.dmnl if b.free else b.unit
        return _Val(ua * ub if op == "*" else ua / ub)

    def _power(self, base: _Val, exponent: _Val) -> _Val:
        self._need(exponent, self.dmnl, "the exponent of '^'")
        if base.free and exponent.free:
            value = None
            if base.value is not None and exponent.value is not None:
                try:
                    value = float(base.value**exponent.value)
                except (OverflowError, ZeroDivisionError, TypeError):
                    value = None
            return _Val(None, value)
        if base.free:
            return _Val(self.dmnl)
        if exponent.free and exponent.value is not None:
            return _Val(base.unit**exponent.value)
        self._need(base, self.dmnl, "the base of '^' with a non-literal exponent")
        return _Val(self.dmnl)

    def _logicstructure(self, ast) -> _Val:
        ops = [op.lower() for op in ast.operators]
        args = [self.infer(a) for a in ast.arguments]
        if any(op in (":and:", ":or:", ":not:") for op in ops):
            return _Val(self.dmnl)
        out = args[0]
        for op, arg in zip(ops, args[1:], strict=True):
            out = self._same(out, arg, f"'{op}'")
        return _Val(self.dmnl)

    def _callstructure(self, ast) -> _Val:
        name = key(ast.function.reference)
        label = name.upper().replace("_", " ")
        args = list(ast.arguments)
        if name in self.lookups:
            return self._lookup_call(self.elements[name].name, args, self._units_of(name))
        if name in ("pi", "elmcount"):
            return _Val(None, math.pi) if name == "pi" else _Val(self.dmnl)
        vals = [self.infer(a) for a in args]
        if name == "if_then_else" and len(vals) == 3:
            return self._same(vals[1], vals[2], "IF THEN ELSE branches")
        if name in _SAME_FUNCS and vals:
            out = vals[0]
            for val in vals[1:]:
                out = self._same(out, val, f"{label} arguments")
            return out
        if name in _KEEP_FUNCS and len(vals) == 1:
            return vals[0]
        if name == "prod" and len(vals) == 1:
            if not vals[0].free and unit_problem(vals[0].unit, self.dmnl):
                raise _UncheckedError(f"PROD of {format_unit(vals[0].unit)}: power set by a range")
            return vals[0]
        if name == "sqrt" and len(vals) == 1:
            return vals[0] if vals[0].free else _Val(vals[0].unit ** 0.5)
        if name in _DMNL_FUNCS and vals:
            for val in vals:
                self._need(val, self.dmnl, f"the argument of {label}")
            return _Val(self.dmnl)
        if name in ("zidz", "xidz") and len(vals) in (2, 3):
            ratio = self._binary("/", vals[0], vals[1])
            return ratio if len(vals) == 2 else self._same(ratio, vals[2], "XIDZ result and x")
        if name == "power" and len(vals) == 2:
            return self._power(vals[0], vals[1])
        if name == "active_initial" and len(vals) == 2:
            return self._same(vals[0], vals[1], "ACTIVE INITIAL arguments")
        return self._time_function(name, label, vals)

    def _time_function(self, name: str, label: str, vals: list[_Val]) -> _Val:
        if name == "step" and len(vals) == 2:
            self._need(vals[1], self.year, "STEP's time")
            return vals[0]
        if name == "ramp" and len(vals) in (2, 3):
            for val in vals[1:]:
                self._need(val, self.year, "RAMP's start or end")
            return vals[0] if vals[0].free else _Val(vals[0].unit * self.year)
        if (name == "pulse" and len(vals) == 2) or (name == "pulse_train" and len(vals) == 4):
            for val in vals:
                self._need(val, self.year, f"{label}'s times")
            return _Val(self.dmnl)
        raise _UncheckedError(f"function {label} ({len(vals)} arguments) has no unit rule")

    def _lookup_call(self, name: str, args, unit: pint.Unit) -> _Val:
        if len(args) != 1:
            raise _UncheckedError(f"lookup '{name}' called with {len(args)} arguments")
        val = self.infer(args[0])
        if not val.free and unit_problem(val.unit, self.dmnl):
            raise _UncheckedError(
                f"lookup '{name}' takes an input in {format_unit(val.unit)}; "
                "a lookup's input axis has no declared units"
            )
        return _Val(unit)

    def _inlinelookupsstructure(self, ast) -> _Val:
        if self.current is None:
            raise _UncheckedError("WITH LOOKUP in an equation without units")
        return self._lookup_call("WITH LOOKUP", [ast.argument], self.current)

    def _stateful(self, ast, time_field: str, label: str) -> _Val:
        out = self.infer(ast.input)
        self._need(self.infer(getattr(ast, time_field)), self.year, f"{label}'s time")
        if hasattr(ast, "initial"):
            out = self._same(out, self.infer(ast.initial), f"{label}'s input and initial value")
        order = getattr(ast, "order", None)
        if order is not None:
            self._need(self.infer(order), self.dmnl, f"{label}'s order")
        return out

    def _trendstructure(self, ast) -> _Val:
        rate = 1 / self.year
        self.infer(ast.input)
        self._need(self.infer(ast.average_time), self.year, "TREND's average time")
        self._need(self.infer(ast.initial_trend), rate, "TREND's initial trend")
        return _Val(rate)

    def _forecaststructure(self, ast) -> _Val:
        out = self.infer(ast.input)
        self._need(self.infer(ast.average_time), self.year, "FORECAST's average time")
        self._need(self.infer(ast.horizon), self.year, "FORECAST's horizon")
        self._need(self.infer(ast.initial_trend), 1 / self.year, "FORECAST's initial trend")
        return out

    def _sampleiftruestructure(self, ast) -> _Val:
        self.infer(ast.condition)
        return self._same(
            self.infer(ast.input), self.infer(ast.initial), "SAMPLE IF TRUE input and initial"
        )

    def _initialstructure(self, ast) -> _Val:
        return self.infer(ast.initial)

    def _gamestructure(self, ast) -> _Val:
        return self.infer(ast.expression)

    # ----------------------------------------------------------------- equations
    def check(self, el) -> dict:
        """One table row: the element's declared and inferred units and the verdict."""
        declared_text = (el.units or "").strip()
        row = {"variable": el.name, "declared": declared_text, "inferred": "", "detail": ""}
        declared = self.declared[key(el.name)]
        if isinstance(declared, str):
            return {**row, "status": "unchecked", "detail": declared}
        kinds = {_cls(c) for c in el.components}
        if "AbstractData" in kinds:
            return {**row, "status": "unchecked", "detail": "DATA variable"}
        if kinds == {"AbstractLookup"}:
            shown = format_unit(declared)
            return {**row, "status": "pass", "inferred": shown, "detail": "lookup table"}
        self.current = declared
        inferred: list[str] = []
        verdicts: list[tuple[str, str]] = []
        for component in el.components:
            try:
                unit, detail = self._component(component.ast, declared)
            except (_MismatchError, _UncheckedError) as exc:
                verdicts.append(
                    ("fail" if isinstance(exc, _MismatchError) else "unchecked", str(exc))
                )
                continue
            shown = format_unit(unit)
            if shown not in inferred:
                inferred.append(shown)
            problem = unit_problem(unit, declared)
            if problem:
                verdicts.append(("fail", detail or f"equation gives {shown}: {problem}"))
            else:
                verdicts.append(("pass", ""))
        control = _cls(el) == "AbstractControlElement" and not isinstance(self.time_unit, str)
        if control and (problem := unit_problem(declared, self.time_unit)):
            verdicts.append(("fail", f"a control variable in the model's time unit: {problem}"))
        self.current = None
        for status in ("fail", "unchecked", "pass"):
            details = [d for s, d in verdicts if s == status]
            if details:
                return {
                    **row,
                    "inferred": "; ".join(inferred),
                    "status": status,
                    "detail": "; ".join(dict.fromkeys(d for d in details if d)),
                }
        return {**row, "status": "unchecked", "detail": "no equation"}

    def _component(self, ast, declared: pint.Unit) -> tuple[pint.Unit, str]:
        """The inferred units of one component, and a failure's detail where it has its own."""
        if _cls(ast) != "IntegStructure":
            val = self.infer(ast)
            return (declared if val.free else val.unit), ""
        rate = declared / self.year
        flow = self.infer(ast.flow)
        initial = self.infer(ast.initial)
        if not initial.free and (problem := unit_problem(initial.unit, declared)):
            raise _MismatchError(f"initial value in {format_unit(initial.unit)}: {problem}")
        if flow.free:
            return declared, ""
        problem = unit_problem(flow.unit, rate)
        detail = ""
        if problem:
            detail = (
                f"flow in {format_unit(flow.unit)}, a stock in {format_unit(declared)} "
                f"needs {format_unit(rate)}: {problem}"
            )
        return flow.unit * self.year, detail


# ----------------------------------------------------------------------------- the section


def known_failures_file() -> Path:
    """The Ningbo model's known unit failures: ``model/units_known_failures.yaml``."""
    return model_dir() / "units_known_failures.yaml"


def _read_known_failures(path: Path) -> dict[str, str]:
    data = read_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of variable name to reason")
    for name, reason in data.items():
        if not isinstance(name, str) or not isinstance(reason, str) or not reason.strip():
            raise UserError(f"{path}: {name!r}: the reason must be a line of text")
    return dict(data)


def _parse(path: Path):
    from ningbo_sd.engine.loading import load_abstract_model
    from ningbo_sd.model.safety import check_model_text

    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found (expected a Vensim .mdl file)")
    check_model_text(path)  # PySD's parser evaluates some text: refuse unsafe files first
    try:
        return load_abstract_model(path)
    except Exception as exc:  # PySD raises many kinds of parse errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: cannot parse the Vensim model: {first}") from exc


def check_units(
    model_path: str | Path | None = None, known_failures: str | Path | None = None
) -> Section:
    """Check the dimensional consistency of every equation of a Vensim model.

    Parameters
    ----------
    model_path : str or Path, optional
        The ``.mdl`` file; defaults to the Ningbo model.
    known_failures : str or Path, optional
        A YAML mapping of variable name to the reason it is known to fail. Defaults to
        :func:`known_failures_file` for the Ningbo model and to none for any other model.

    Returns
    -------
    Section
        ``units``: one row per variable (``variable``, ``declared``, ``inferred``, ``status``,
        ``detail``), status ``pass``, ``fail``, ``known_failure`` or ``unchecked``; it gates.

    Raises
    ------
    ModelFileError
        If the model file is missing or cannot be parsed.
    UserError
        If the known-failures file is malformed.
    """
    path = Path(MODEL_PATH if model_path is None else model_path)
    if known_failures is None and path.resolve() == Path(MODEL_PATH).resolve():
        known_failures = known_failures_file()
    known = _read_known_failures(Path(known_failures)) if known_failures else {}
    section = _parse(path).sections[0]
    checker = _Checker(section)
    rows = [checker.check(el) for el in section.elements]
    table = pd.DataFrame(rows, columns=["variable", "declared", "inferred", "status", "detail"])
    listed = table["variable"].isin(list(known))
    failing = table["status"] == "fail"
    for index in table.index[listed & failing]:
        reason = known[table.at[index, "variable"]]
        table.at[index, "status"] = "known_failure"
        table.at[index, "detail"] = f"{table.at[index, 'detail']} (known: {reason})"
    counts = table["status"].value_counts()
    passed, unchecked = int(counts.get("pass", 0)), int(counts.get("unchecked", 0))
    known_count, fails = int(counts.get("known_failure", 0)), int(counts.get("fail", 0))
    summary = (
        f"units: {passed} of {len(table)} equations consistent, "
        f"{fails + known_count} mismatched ({known_count} known), {unchecked} unchecked"
    )
    stale = sorted(set(known) - set(table.loc[table["status"] == "known_failure", "variable"]))
    if stale:
        summary += f"; listed as known failures but not failing: {', '.join(stale)}"
    return Section(
        name="units",
        title="Dimensional consistency of every equation",
        table=table,
        summary=summary,
        gate=True,
        known_failures=sorted(table.loc[table["status"] == "known_failure", "variable"]),
    )
