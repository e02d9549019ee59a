"""The model's calendar: flows over the year, year-end stocks, levers from a period's start.

Model time 2015 is 1 January 2015. A year's flow is read at mid-year, a year-end stock on
the next 1 January, and an annual figure the model reads (an index for year Y, a lever's
value for year Y) applies at mid-year (``ningbo_sd.model.outputs``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ningbo_sd.model.outputs import annual_years, headline_frame, reading_time, year_positions
from ningbo_sd.scenarios.run import resolve_parameters, run_raw, run_scenario


@pytest.mark.parametrize(
    ("year", "timing", "expected"),
    [
        (2020, "flow", 2020.5),
        (2020, "stock", 2021.0),
        (2035, "flow", 2035.5),
        (2015, "stock", 2016.0),
    ],
)
def test_reading_time(year, timing, expected):
    assert reading_time(year, timing) == expected


def test_an_unknown_timing_is_refused():
    with pytest.raises(ValueError, match="'average' is not one of flow, stock"):
        reading_time(2020, "average")


def test_a_yearly_grid_cannot_give_mid_year_flows():
    times = np.arange(2015.0, 2036.0)
    assert annual_years(times).size == 0
    message = r"model time 2020.5 \(flow for 2020\) is not a saved time"
    with pytest.raises(ValueError, match=message):
        year_positions(times, np.array([2020]), "flow")


def test_the_run_covers_2015_to_2035_with_both_readings():
    raw = run_raw(resolve_parameters("baseline"), columns=["Gross Output"])
    assert raw.index[0] == 2015.0 and raw.index[-1] == 2036.0
    assert annual_years(raw.index.to_numpy()).tolist() == list(range(2015, 2036))


def test_headline_frame_reads_flows_mid_year_and_stocks_at_year_end():
    times = np.arange(2015.0, 2017.01, 0.5)
    raw = pd.DataFrame({"Gross Output": times * 10, "Above Scale Firms": times * 100}, index=times)
    from ningbo_sd.model.outputs import output_columns

    for column in output_columns():  # every other column: a constant
        raw[column.variable] = raw.get(column.variable, 0.0)
    table = headline_frame(raw)
    assert table.index.tolist() == [2015, 2016]
    assert table["gross_output"].tolist() == [20155.0, 20165.0]
    assert table["firms"].tolist() == [201600.0, 201700.0]


def test_a_lever_for_2021_2025_shows_in_2021_and_not_before():
    """The issue's timing bar: a lever for a period acts from that period's first year."""
    base = run_scenario("baseline", calibrated=None)
    moved = run_scenario(
        "baseline", overrides={"Investment Growth 2021 2025": 0.25}, calibrated=None
    )
    ratio = moved["industrial_investment"] / base["industrial_investment"]
    assert ratio.loc[2015:2020].tolist() == [1.0] * 6
    # the lever sets the policy-led trend: by mid-2021 (flows are read at mid-year) it has had
    # two quarter-year Euler steps at 25% instead of 6.6%
    trends = [
        run_raw(
            resolve_parameters("baseline", overrides, calibrated=None), columns=["Investment Trend"]
        )
        for overrides in ({}, {"Investment Growth 2021 2025": 0.25})
    ]
    trend_ratio = trends[1]["Investment Trend"] / trends[0]["Investment Trend"]
    assert trend_ratio.loc[2021.0] == 1.0
    assert trend_ratio.loc[2021.5] == pytest.approx((1.0625 / 1.0165) ** 2, rel=1e-12)
    # the policy-led part is a third to a half of investment; firms' own part follows demand
    assert 1.02 < ratio.loc[2021] < trend_ratio.loc[2021.5]


def test_an_annual_index_applies_at_mid_year():
    """The producer price index for 2017 is the deflator's value at mid-2017 (no noise)."""
    params = resolve_parameters("baseline")
    raw = run_raw(params, columns=["Price Index"])
    wedge = params.get("VA Deflator Wedge", 0.008)
    ppi_2017 = 0.986854  # 2020 = 1; drivers.csv ppi_china, as in the model's table
    assert raw["Price Index"].loc[2017.5] == pytest.approx(ppi_2017 * np.exp(wedge * -3), rel=1e-12)


def test_a_run_to_1_january_2036_reports_2015_to_2035():
    from ningbo_sd.model.outputs import report_years

    assert report_years(2015.0, 2036.0) == range(2015, 2036)
    assert report_years(2015.0, 2035.5) == range(2015, 2035)  # 2035's year-end is outside
