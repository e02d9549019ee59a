"""Reality Check as data: extreme-condition tests run in one batch on the batch engine.

Vensim's Reality Check states what must hold under an extreme condition (no investment: the
capital stock falls; no energy quota: no output) and runs the model to see whether it does.
Here the tests are data, ``model/reality_checks.yaml`` (its header documents the schema;
:mod:`ningbo_sd.validation.reality_tests` reads it): a
list of tests, each with an ``id``, a ``title``, a ``condition`` (lever ids of
``levers.yaml`` or Vensim constant names -> numbers, and ``from_year``, the year it holds
from), the expectations on headline outputs it must meet (``expect``, kinds in
:data:`KINDS`) and optionally the ``known_failure`` reason why the model fails it today.

Only the plan periods' constants (``... 2021 2025``, ``... 2026 2035``) change during a run,
so a condition "from a year" is a path lever from 2021 or 2026; **every other parameter
applies for the whole run**, from 2015, and its condition's ``from_year`` must say so. Value ranges
are not enforced: an extreme condition may lie outside a lever's policy range.

A known failure never weakens an expectation: its failing rows are reported
``known_failure``, and when all its expectations pass they are reported ``fail`` ("passes
now: remove known_failure"), so the file cannot go stale. A condition naming a parameter the
model lacks is allowed only in a known-failure test, which is then not run.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.io import format_number
from ningbo_sd.model.metadata import MODEL_PATH, read_metadata
from ningbo_sd.model.structure import read_structure
from ningbo_sd.scenarios.run import compiled_model, resolve_parameters, run_batch
from ningbo_sd.validation import Section
from ningbo_sd.validation.reality_tests import (
    KINDS,
    Expectation,
    RealityCheck,
    load_reality_checks,
)

__all__ = ["KINDS", "Expectation", "RealityCheck", "load_reality_checks", "run_reality_checks"]

# ---------------------------------------------------------------- running


def _base_value(column: str, base: dict, meta) -> float:
    """The baseline's value of a sample-table column (calibrated, else the model's)."""
    name, _, element = column.partition("[")
    value = base.get(name, meta[name].default)
    if not element:
        return float(value)
    elements = meta.subscripts[meta[name].subscripts[0]]
    return float(np.asarray(value).ravel()[elements.index(element.rstrip("]"))])


def _table(tests: list[RealityCheck]) -> pd.DataFrame:
    """One row for the baseline, then one per test; every column at its baseline value
    except where the test's condition sets it."""
    meta = read_metadata(MODEL_PATH)
    base = resolve_parameters()
    columns = sorted({column for test in tests for column in test.parameters})
    baseline = {column: _base_value(column, base, meta) for column in columns}
    rows = [baseline] + [{**baseline, **test.parameters} for test in tests]
    return pd.DataFrame(rows, columns=columns, dtype=float)


def _stock_table(table: pd.DataFrame) -> dict:
    """The full parameter table of a raw run: the base parameters under the sample columns."""
    n = len(table)
    full: dict = {}
    for name, value in resolve_parameters().items():
        value = np.asarray(value, dtype=float)
        full[name] = np.broadcast_to(value, (n, *value.shape))
    full.update({column: table[column].to_numpy() for column in table.columns})
    return full


def _num(value: float) -> str:
    """A measured figure: thousands separators from 1,000, else five significant digits."""
    if not math.isfinite(value):
        return str(value).replace("nan", "NaN")
    return format_number(value) if abs(value) >= 1000 else f"{value:.5g}"


def _monotone(exp: Expectation, run: pd.Series) -> tuple[bool, str]:
    values = run.loc[exp.start - 1 : exp.end]
    change = np.diff(values.to_numpy())
    falls = exp.kind == "falls_every_year"
    good = change < 0 if falls else change > 0
    years = values.index[1:]
    word = "falls" if falls else "rises"
    span = f"{_num(values.iloc[0])} in {exp.start - 1} -> {_num(values.iloc[-1])} in {exp.end}"
    if good.all():
        return True, f"{word} in all {len(good)} years ({span})"
    bad = years[~good]
    return False, f"{word} in {int(good.sum())} of {len(good)} years; not in {bad[0]} ({span})"


def _versus(exp: Expectation, run: pd.Series, base: pd.Series) -> tuple[bool, str]:
    value, ref = float(run[exp.year]), float(base[exp.year])
    ratio = value / ref if ref else math.nan
    share = "" if math.isnan(ratio) else f", {ratio:.1%} of baseline"
    text = f"{exp.year}: {_num(value)} vs baseline {_num(ref)}{share}"
    checks = {
        "below_baseline": value < ref,
        "above_baseline": value > ref,
        "at_most_share_of_baseline": value <= (exp.value or 0.0) * ref,
        "at_least_share_of_baseline": value >= (exp.value or 0.0) * ref,
    }
    return bool(checks[exp.kind]), text


def _bounded(exp: Expectation, run: pd.Series, base: pd.Series) -> tuple[bool, str]:
    ratio = run / base.where(base != 0)
    limit = (exp.value or 0.0) * base
    over = ~(run <= limit)  # NaN counts as over
    peak = ratio.idxmax() if ratio.notna().any() else run.index[0]
    text = f"at most {ratio.max():.4g}x baseline ({peak})"
    if over.any():
        year = over.idxmax()
        return False, f"{_num(run[year])} in {year} is {ratio[year]:.4g}x baseline; " + text
    return True, text


def _recovers(exp: Expectation, run: pd.Series, base: pd.Series) -> tuple[bool, str]:
    later = run.index >= exp.year
    gap = ((run - base).abs() / base.abs())[later]
    worst = gap.idxmax() if gap.notna().all() else gap.index[gap.isna()][0]
    text = f"largest gap from {exp.year} on: {gap[worst]:.1%} of baseline in {worst}"
    ok = bool(gap.notna().all() and (gap <= (exp.value or 0.0)).all())
    return ok, text


def _finite(data, sample: int) -> tuple[bool, str]:
    bad = {}
    for var in data.data_vars:
        values = data[var].values[sample]
        if not np.isfinite(values).all():
            bad[var] = int(data["year"].to_numpy()[~np.isfinite(values)][0])
    if not bad:
        return True, f"all {len(data.data_vars)} headline columns finite"
    first = min(bad, key=bad.get)
    return False, (
        f"NaN/inf in {len(bad)} of {len(data.data_vars)} headline columns, "
        f"first {first} in {bad[first]}"
    )


def _no_negative(stocks, sample: int) -> tuple[bool, str]:
    lowest: dict[str, float] = {}
    undefined = []
    for name in stocks.data_vars:
        values = stocks[name].values[sample]
        if np.isnan(values).any():
            undefined.append(name)
        if not np.isnan(values).all():
            lowest[name] = float(np.nanmin(values))
    low = min(lowest, key=lowest.get)
    nan = f"; NaN in {', '.join(undefined)}" if undefined else ""
    if lowest[low] < 0:
        return False, f"{low} falls to {_num(lowest[low])}{nan}"
    if undefined:
        return False, f"every stock >= 0 where defined{nan}"
    return True, f"every stock >= 0 (lowest {_num(lowest[low])}, {low})"


def _evaluate(exp: Expectation, data, stocks, sample: int) -> tuple[bool, str]:
    """Whether one expectation holds for batch sample ``sample`` (0 is the baseline), and
    the measured figures; ``stocks`` holds the raw stocks of the same samples."""
    if exp.kind == "finite":
        return _finite(data, sample)
    if exp.kind == "no_negative_stock":
        return _no_negative(stocks, sample)
    years = data["year"].to_numpy()
    run, base = (pd.Series(data[exp.var].values[i], index=years) for i in (sample, 0))
    if exp.kind in ("falls_every_year", "rises_every_year"):
        return _monotone(exp, run)
    if exp.kind == "bounded":
        return _bounded(exp, run, base)
    if exp.kind == "recovers":
        return _recovers(exp, run, base)
    return _versus(exp, run, base)


def _describe_expectation(exp: Expectation) -> str:
    """The expectation in words (the detail of a passing or failing row)."""
    fixed = {
        "no_negative_stock": "every model stock >= 0 at every saved time",
        "finite": "no NaN or inf in any headline column",
    }
    if exp.kind in fixed:
        return fixed[exp.kind]
    if exp.start is not None:
        word = "falls" if exp.kind == "falls_every_year" else "rises"
        return f"{exp.var} {word} every year {exp.start}-{exp.end}"
    if exp.kind == "bounded":
        return f"{exp.var} <= {exp.value:g} x baseline in every year"
    if exp.kind == "recovers":
        return f"{exp.var} within {exp.value:.0%} of baseline from {exp.year} on"
    if exp.value is None:
        return f"{exp.var} {exp.kind.replace('_', ' ')} in {exp.year}"
    sign = "<=" if exp.kind == "at_most_share_of_baseline" else ">="
    return f"{exp.var} {sign} {exp.value:g} x baseline in {exp.year}"


def _simulate(runnable: list[RealityCheck]):
    """Headline outputs of the baseline and every test (one batch) and their raw stocks (one
    more run, when a test checks them). Extreme conditions may give NaN or inf: they are
    measured and reported, so numpy's warnings about them are silenced here."""
    table = _table(runnable)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        data = run_batch(samples=table, threads=1)
        stocks = None
        if any(exp.kind == "no_negative_stock" for test in runnable for exp in test.expect):
            kinds = read_structure(MODEL_PATH).kind
            names = sorted(name for name, kind in kinds.items() if kind == "stock")
            stocks = compiled_model(MODEL_PATH).run(_stock_table(table), keep=names, threads=1)
    return data, stocks


def run_reality_checks(path: str | Path | None = None) -> Section:
    """Run every Reality Check test in one batch and report one row per expectation.

    Parameters
    ----------
    path : str or Path, optional
        The YAML file (default ``model/reality_checks.yaml``).

    Returns
    -------
    Section
        ``name`` ``reality``, ``gate`` True; the table has columns ``test``,
        ``expectation``, ``status`` (``pass``, ``fail``, ``known_failure``), ``measured``
        and ``detail``. A known-failure test whose expectations all pass is reported
        ``fail`` ("passes now: remove known_failure").

    Raises
    ------
    UserError
        If the file is invalid (see :func:`load_reality_checks`).
    """
    tests = load_reality_checks(path)
    runnable = [test for test in tests if not test.missing]
    data, stocks = _simulate(runnable) if runnable else (None, None)
    samples = {test.id: i + 1 for i, test in enumerate(runnable)}  # sample 0: the baseline
    rows = []
    for test in tests:
        if test.missing:
            reason = f"not run: the model has no {', '.join(test.missing)}"
            for exp in test.expect:
                detail = (
                    f"{_describe_expectation(exp)}; {reason}; known failure: {test.known_failure}"
                )
                rows.append((test.id, exp.label, "known_failure", "not run", detail))
            continue
        sample = samples[test.id]
        results = [_evaluate(exp, data, stocks, sample) for exp in test.expect]
        all_pass = all(ok for ok, _ in results)
        for exp, (ok, measured) in zip(test.expect, results, strict=True):
            status, detail = ("pass" if ok else "fail"), _describe_expectation(exp)
            if test.known_failure and all_pass:
                status, detail = "fail", "passes now: remove known_failure"
            elif test.known_failure and not ok:
                status, detail = "known_failure", f"{detail}; known failure: {test.known_failure}"
            rows.append((test.id, exp.label, status, measured, detail))
    table = pd.DataFrame(rows, columns=["test", "expectation", "status", "measured", "detail"])
    counts = table["status"].value_counts()
    failing = set(table.loc[table["status"] == "known_failure", "test"])
    known = [f"{t.id}: {t.known_failure}" for t in tests if t.id in failing]
    summary = (
        f"{len(tests)} tests, {len(table)} expectations: {counts.get('pass', 0)} pass, "
        f"{counts.get('known_failure', 0)} known failures, {counts.get('fail', 0)} fail"
    )
    return Section(
        name="reality",
        title="Reality Check: extreme-condition tests",
        table=table,
        summary=summary,
        gate=True,
        known_failures=known,
    )
