"""Validity tests of the Ningbo model run by PySD (the reference simulator).

Behaviour reproduction of the 2015 and 2020 levels, extreme conditions, stock-flow
balance and the land control line, as the field judges a system-dynamics model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ningbo_sd.model.metadata import read_metadata
from ningbo_sd.model.reference import run_pysd
from ningbo_sd.plan.data import load_observations

# stock -> (inflows, outflows): the balance test checks each stock's change per time step
STOCK_FLOWS = {
    "Capital Stock": (["Capital Completion"], ["Depreciation"]),
    "Knowledge Stock": (["Knowledge Investment"], ["Knowledge Obsolescence"]),
    "Effective Invention Patents": (["New Patents"], ["Patent Lapses"]),
    "High Tech Enterprises": (["High Tech Certifications"], ["Certificate Expiries"]),
    "Industrial Land": (["Land Inflow"], ["Land Exits"]),
    "Construction Land": (["New Construction Land"], []),
    "Energy Intensity": ([], ["Intensity Reduction"]),
    "Energy Quota": (["Energy Quota Change"], []),
    "Investment Trend": (["Investment Trend Growth"], []),
    "Workforce": (["Workforce Change"], []),
    "Above Scale Firms": (["Firm Entries"], ["Firm Exits"]),
}
STOCKS = list(STOCK_FLOWS)
DT = 0.25


def fine_run(params: dict | None = None) -> pd.DataFrame:
    """A PySD run saved at every time step."""
    return run_pysd(params, saveper=DT)


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    return fine_run()


def columns_of(frame: pd.DataFrame, name: str) -> list[str]:
    """The column(s) holding a variable (one per cluster when subscripted)."""
    return [c for c in frame.columns if c == name or c.startswith(f"{name}[")]


def test_every_integ_stock_is_in_the_balance_table():
    meta = read_metadata()
    text = meta.path.read_text(encoding="utf-8")
    integ_names = {
        block.split("=")[0].split("[")[0].strip()
        for block in text.split("|")
        if "INTEG" in block.split("~")[0]
    }
    assert integ_names == set(STOCKS)


@pytest.mark.parametrize("stock", STOCKS)
def test_stock_change_equals_inflows_minus_outflows(baseline, stock):
    inflows, outflows = STOCK_FLOWS[stock]
    for column in columns_of(baseline, stock):
        suffix = column[len(stock) :]
        values = baseline[column].to_numpy()
        net = np.zeros(len(baseline))
        for flows, sign in ((inflows, 1.0), (outflows, -1.0)):
            for flow in flows:
                name = flow + suffix if flow + suffix in baseline else flow
                net += sign * baseline[name].to_numpy()
        np.testing.assert_allclose(np.diff(values), net[:-1] * DT, rtol=1e-10, atol=1e-9)


def observed_level(indicator: str, year: int) -> float:
    rows = load_observations()
    rows = rows[
        (rows["indicator"] == indicator) & (rows["measure"] == "level") & (rows["year"] == year)
    ]
    if rows.empty:
        pytest.fail(f"no level observation of {indicator} in {year}")
    return float(rows["value"].iloc[0])


def observed_2015(indicator: str) -> float:
    """2015 level: given directly, or derived from the 2020 level and the 2015-2020 change."""
    rows = load_observations()
    direct = rows[
        (rows["indicator"] == indicator) & (rows["measure"] == "level") & (rows["year"] == 2015)
    ]
    if not direct.empty:
        return float(direct["value"].iloc[0])
    change = rows[
        (rows["indicator"] == indicator)
        & (rows["measure"] == "change_pct")
        & (rows["year_start"] == 2015)
        & (rows["year"] == 2020)
    ]
    return observed_level(indicator, 2020) / (1 + float(change["value"].iloc[0]) / 100)


HEADLINE_FIGURES = [
    # (indicator in observations.csv, model variable, scale to the observation's unit)
    ("gross_output", "Gross Output", 1.0),
    ("value_added", "Value Added", 1.0),
    ("rd_intensity", "RD Intensity", 100.0),
]


@pytest.mark.parametrize(("indicator", "variable", "scale"), HEADLINE_FIGURES)
@pytest.mark.parametrize("year", [2015, 2020])
def test_baseline_reproduces_2015_and_2020_within_5_percent(
    baseline, indicator, variable, scale, year
):
    observed = observed_2015(indicator) if year == 2015 else observed_level(indicator, year)
    simulated = float(baseline.loc[year, variable]) * scale
    assert simulated == pytest.approx(observed, rel=0.05)


def test_no_investment_capital_only_decays():
    run = fine_run({"Investment 2015": 0.0})
    assert np.all(run["Industrial Investment"].to_numpy() == 0)
    rate = read_metadata()["Depreciation Rate"].default
    for column in columns_of(run, "Capital Stock"):
        capital = run[column].to_numpy()
        np.testing.assert_allclose(capital[1:], capital[:-1] * (1 - rate * DT), rtol=1e-12)
        assert capital[-1] < capital[0]


@pytest.mark.parametrize("auto_share", [0.08, 0.13, 0.2])
def test_the_automobile_share_is_taken_from_equipment_and_the_split_sums_to_one(auto_share):
    """Raising the automobile share takes value added from the other clusters' equipment part.

    The split sums to 1 at any share; the non-equipment clusters keep their judged shares, and
    the equipment share of 2015 moves by under a tenth of the automobile change (three clusters
    are counted as equipment only in part).
    """
    columns = ["Value Added Share 2015", "Base Value Added Share", "Equipment Fraction"]
    run = run_pysd({"Auto Value Added Share 2015": auto_share}, return_columns=columns)
    first = run.iloc[0]
    share = first[columns_of(run, "Value Added Share 2015")].to_numpy()
    base = first[columns_of(run, "Base Value Added Share")].to_numpy()
    equipment = first[columns_of(run, "Equipment Fraction")].to_numpy()
    clusters = [c.split("[")[1].rstrip("]") for c in columns_of(run, "Value Added Share 2015")]
    auto = clusters.index("auto")
    assert share.sum() == pytest.approx(1.0, abs=1e-12)
    assert share[auto] == pytest.approx(auto_share, abs=1e-12)
    assert (share > 0).all()
    not_equipment = equipment == 0
    np.testing.assert_allclose(share[not_equipment], base[not_equipment], rtol=1e-12)
    moved = abs(share[auto] - base[auto])
    assert abs(share @ equipment - base @ equipment) <= 0.1 * moved


def test_a_high_tech_certificate_lasts_exactly_three_years():
    """With no certification and no renewal, the 2015 stock is gone at the start of 2018.

    The certificates held at the start of 2015 expire evenly over 2015-2017 (a pipeline of
    twelve quarter-year stages, not an average exit rate, which would leave e^-1 of them).
    """
    run = fine_run(
        {"Spontaneous Certification": 0, "Peer Certification Effect": 0, "Renewal Share": 0}
    )
    stock = run["High Tech Enterprises"]
    initial = float(stock.loc[2015.0])
    for year, left in ((2016.0, 2 / 3), (2017.0, 1 / 3), (2018.0, 0.0), (2025.0, 0.0)):
        assert float(stock.loc[year]) == pytest.approx(left * initial, abs=1e-9 * initial)
    assert float(run["Certificate Expiries"].loc[2016.5]) == pytest.approx(initial / 3)


def test_the_cultivation_campaign_acts_from_2018_only():
    """The 2018-2020 campaign leaves 2015-2017 as they were and adds certifications after."""
    with_campaign = fine_run({"High Tech Campaign Effect": 2.0})
    without = fine_run({"High Tech Campaign Effect": 1.0})
    before = with_campaign.index < 2018
    after = with_campaign.index >= 2018.25
    first = "First High Tech Certifications"
    np.testing.assert_array_equal(with_campaign.loc[before, first], without.loc[before, first])
    assert (
        with_campaign.loc[after, "High Tech Enterprises"]
        > without.loc[after, "High Tech Enterprises"]
    ).all()


def test_zero_energy_quota_means_no_output():
    run = fine_run({"Initial Energy Quota Ratio": 0.0})
    for variable in ("Value Added", "Gross Output", "Energy Use", "Revenue"):
        assert np.all(run[variable].to_numpy() == 0), variable
    assert set(run["Binding Constraint"].unique()) == {2}


EXTREMES = {
    "everything_low": {
        "Investment Growth 2021 2025": -0.3,
        "Investment Growth 2026 2035": -0.3,
        "Energy Quota Growth 2021 2025": -0.2,
        "Energy Quota Growth 2026 2035": -0.2,
        "Labour Growth 2021 2025": -0.05,
        "Labour Growth 2026 2035": -0.05,
        "Land Exit Rate 2021 2025": 0.1,
        "Land Exit Rate 2026 2035": 0.1,
        "RD Intensity 2021 2025": 0.0,
        "RD Intensity 2026 2035": 0.0,
        "Land Revitalisation 2021 2025": 0.0,
        "New Construction Land": 0.0,
    },
    "everything_high": {
        "Investment Growth 2021 2025": 0.5,
        "Investment Growth 2026 2035": 0.5,
        "Energy Quota Growth 2021 2025": 0.2,
        "RD Intensity 2021 2025": 0.1,
        "RD Intensity 2026 2035": 0.1,
        "Intensity Reduction Effort 2021 2025": 0.1,
        "Intensity Reduction Effort 2026 2035": 0.1,
        "Land Revitalisation 2021 2025": 20.0,
        "Land Revitalisation 2026 2035": 20.0,
        "Industrial Share of New Land 2021 2025": 1.0,
        "Industrial Share of New Land 2026 2035": 1.0,
        "Land Exit Rate 2021 2025": 0.0,
        "New Construction Land": 50.0,
    },
}


@pytest.fixture(scope="module", params=sorted(EXTREMES))
def extreme_run(request) -> pd.DataFrame:
    return fine_run(EXTREMES[request.param])


def test_no_stock_goes_negative(extreme_run):
    for stock in STOCKS:
        for column in columns_of(extreme_run, stock):
            assert extreme_run[column].min() >= 0, column


def test_land_never_above_the_control_line(extreme_run):
    gap = extreme_run["Industrial Land Control Line"] - extreme_run["Industrial Land"]
    assert gap.min() >= -1e-9


def test_land_never_above_the_control_line_in_baseline(baseline):
    assert (baseline["Industrial Land"] <= baseline["Industrial Land Control Line"] + 1e-9).all()


def test_binding_constraint_matches_the_limits(extreme_run):
    limits = extreme_run[
        [
            "Demanded Value Added",
            "Production Capacity",
            "Land Limited Value Added",
            "Energy Limited Value Added",
        ]
    ].to_numpy()
    own = np.minimum(limits[:, 0], limits[:, 1])  # the firms' own limit: orders or capacity
    np.testing.assert_array_equal(
        extreme_run["Binding Constraint"].to_numpy(),
        # ties resolve to the firms' own limit, then land, as the model's IF THEN ELSE does
        np.where(
            limits[:, 3] < np.minimum(own, limits[:, 2]),
            2,
            np.where(limits[:, 2] < own, 1, 0),
        ),
    )
    # the smooth minimum: (sum of limit^-k)^(-1/k), never above the hard minimum and at
    # most a factor 4^(1/k) below it
    k = read_metadata()["Constraint Sharpness"].default
    smallest = limits.min(axis=1)
    expected = smallest * np.sum((smallest[:, None] / limits) ** k, axis=1) ** (-1 / k)
    realised = extreme_run["Value Added Real"].to_numpy()
    np.testing.assert_allclose(realised, expected, rtol=1e-12)
    assert np.all(realised <= smallest * (1 + 1e-12))
    assert np.all(realised >= smallest * 4 ** (-1 / k) * (1 - 1e-12))
