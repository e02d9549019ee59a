"""Compare scenarios: headline indicators side by side, and the targets whose verdict differs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from ningbo_sd.model.outputs import output_columns
from ningbo_sd.scenarios.schema import Scenario, ScenarioError, load_scenario
from ningbo_sd.scenarios.scorecard import scorecard

COMPARE_YEARS: tuple[int, ...] = (2020, 2025, 2035)
COMPARE_COLUMNS: tuple[str, ...] = (
    "gross_output", "value_added", "value_added_real", "industrial_investment", "rd_intensity",
    "effective_patents", "high_tech_firms", "labour_productivity", "profit_margin",
    "high_tech_share", "industrial_land", "va_per_mu", "tax_per_mu", "energy_use",
    "energy_quota", "energy_intensity", "binding_constraint",
)  # fmt: skip


def _as_scenario(item: Scenario | str | Path) -> Scenario:
    return item if isinstance(item, Scenario) else load_scenario(item)


def scenario_names(scenarios: Iterable[Scenario]) -> list[str]:
    """Unique display names: the file stem, suffixed ``#2``, ``#3``... when names repeat."""
    names: list[str] = []
    for scenario in scenarios:
        name, count = scenario.name, 2
        while name in names:
            name = f"{scenario.name}#{count}"
            count += 1
        names.append(name)
    return names


def run_scenarios(
    scenarios: Iterable[Scenario | str | Path], engine: str = "batch"
) -> dict[str, tuple[Scenario, pd.DataFrame]]:
    """Run several scenarios once each.

    Parameters
    ----------
    scenarios : iterable of Scenario, path or bundled name
    engine : str
        Passed to :func:`ningbo_sd.scenarios.run.run_scenario`.

    Returns
    -------
    dict
        Display name -> (scenario, headline table), in the order given.
    """
    from ningbo_sd.scenarios.run import run_scenario

    loaded = [_as_scenario(item) for item in scenarios]
    if not loaded:
        raise ScenarioError("compare: give at least one scenario")
    return {
        name: (scenario, run_scenario(scenario, engine=engine))
        for name, scenario in zip(scenario_names(loaded), loaded, strict=True)
    }


def compare_results(
    results: Mapping[str, pd.DataFrame],
    years: Iterable[int] = COMPARE_YEARS,
    columns: Iterable[str] = COMPARE_COLUMNS,
) -> pd.DataFrame:
    """Headline indicators of several runs side by side.

    Parameters
    ----------
    results : mapping
        Scenario name -> headline table (index ``year``).
    years : iterable of int
        Years to show.
    columns : iterable of str
        Headline columns to show.

    Returns
    -------
    pandas.DataFrame
        Index ``(indicator, year)``; columns ``label_en``, ``label_zh``, ``unit``, then one
        column per scenario.
    """
    years, columns = list(years), list(columns)
    described = {column.name: column for column in output_columns()}
    for name, frame in results.items():
        missing_years = [year for year in years if year not in frame.index]
        missing_columns = [column for column in columns if column not in frame.columns]
        if missing_years or missing_columns:
            raise KeyError(
                f"compare: results of {name} lack years {missing_years} / columns {missing_columns}"
            )
    index = pd.MultiIndex.from_product([columns, years], names=["indicator", "year"])
    table = pd.DataFrame(index=index)
    table["label_en"] = [described[c].label_en if c in described else c for c, _ in index]
    table["label_zh"] = [described[c].label_zh if c in described else c for c, _ in index]
    table["unit"] = [described[c].unit if c in described else "" for c, _ in index]
    for name, frame in results.items():
        table[name] = pd.Series(
            [frame.at[year, column] for column, year in index], index=index, dtype=object
        )
    return table


def target_differences(
    cards: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Targets whose met / not-met verdict differs between scenarios.

    Parameters
    ----------
    cards : mapping
        Scenario name -> scorecard (:func:`ningbo_sd.scenarios.scorecard.scorecard`).

    Returns
    -------
    pandas.DataFrame
        One row per differing target: ``id``, ``label_en``, ``label_zh``, ``op``,
        ``target``, ``unit``, then ``<name>`` (met, nullable boolean) and
        ``<name> value`` per scenario. Rows the model cannot compute never differ.
    """
    names = list(cards)
    first = cards[names[0]].set_index("id")
    met = pd.DataFrame({name: card.set_index("id")["met"] for name, card in cards.items()})
    known = met.notna().all(axis=1)
    differs = known & (met.nunique(axis=1, dropna=True) > 1)
    rows = first.loc[differs[differs].index, ["label_en", "label_zh", "op", "target", "unit"]]
    table = rows.reset_index()
    for name, card in cards.items():
        indexed = card.set_index("id")
        table[name] = indexed.loc[table["id"], "met"].to_numpy()
        table[f"{name} value"] = indexed.loc[table["id"], "simulated"].to_numpy()
    return table


def compare(
    scenarios: Iterable[Scenario | str | Path],
    years: Iterable[int] = COMPARE_YEARS,
    columns: Iterable[str] = COMPARE_COLUMNS,
    engine: str = "batch",
) -> pd.DataFrame:
    """Run scenarios and show their headline indicators side by side.

    Parameters
    ----------
    scenarios : iterable of Scenario, path or bundled name
    years : iterable of int
        Years to show (default 2020, 2025, 2035).
    columns : iterable of str
        Headline columns to show.
    engine : str
        Simulation engine.

    Returns
    -------
    pandas.DataFrame
        See :func:`compare_results`. For the targets whose verdict differs, see
        :func:`compare_targets` (the CLI runs each scenario once and shows both).
    """
    runs = run_scenarios(scenarios, engine=engine)
    return compare_results({name: frame for name, (_, frame) in runs.items()}, years, columns)


def scorecards(runs: Mapping[str, tuple[Scenario, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """Scorecard of each run (with each scenario's own values for targets without a number)."""
    return {
        name: scorecard(frame, assumed=scenario.targets) for name, (scenario, frame) in runs.items()
    }


def compare_targets(
    scenarios: Iterable[Scenario | str | Path], engine: str = "batch"
) -> pd.DataFrame:
    """Run scenarios and list the targets whose met / not-met verdict differs.

    Parameters
    ----------
    scenarios : iterable of Scenario, path or bundled name
    engine : str
        Simulation engine.

    Returns
    -------
    pandas.DataFrame
        See :func:`target_differences`.
    """
    return target_differences(scorecards(run_scenarios(scenarios, engine=engine)))
