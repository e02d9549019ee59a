"""The ceiling: the structure fitted to every published figure, beside the default's forecasts."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from ningbo_sd.calibration.history import fitted_terms
from ningbo_sd.calibration.problem import load_problem
from ningbo_sd.cli import main
from ningbo_sd.resources import calibrated_file
from ningbo_sd.validation import evidence
from ningbo_sd.validation.ceiling import CEILING_FILE, THROUGH, ceiling


@pytest.fixture(scope="module")
def section():
    return ceiling()


def test_the_committed_ceiling_is_the_fit_to_every_published_figure():
    """Stale after a model or register change: `ningbo-sd calibrate --through 2025 ...`."""
    problem = load_problem(through=THROUGH)
    assert {t.id for t in fitted_terms(CEILING_FILE)} == {
        t.id for t in problem.terms if t.status == "fitted"
    }
    parameters = yaml.safe_load(CEILING_FILE.read_text(encoding="utf-8"))["parameters"]
    assert set(parameters) == set(problem.names)
    # it fits the years the default forecasts: the default's window is a part of it
    default = {t.id for t in fitted_terms(None)}
    assert default < {t.id for t in fitted_terms(CEILING_FILE)}


def test_the_ceiling_compares_the_figures_the_default_forecasts(section):
    table = section.table.set_index("id")
    assert "high_tech_firms_new_2015" not in table.index  # the default fits it
    assert {"gross_output_2021", "value_added_real_growth_2021", "profit_2022"} <= set(table.index)
    # the default's columns are the out-of-sample check's own point run
    forecasts = evidence.out_of_sample(n_samples=20).table.set_index("id")
    np.testing.assert_allclose(
        table["default_model"], forecasts.loc[table.index, "model"].astype(float)
    )
    # a status says whether the fit to everything came within the figure's tolerance
    fitted = table[table["status"] != "not fitted"]
    outside = (fitted["model"] - fitted["observed"]).abs() > fitted["tolerance"]
    assert (fitted["status"] == np.where(outside, "unreached", "reached")).all()
    assert set(table["status"]) <= {"reached", "unreached", "not fitted"}
    # the headline is the table's: both MAPEs on the same levels
    levels = table["ape_pct"].notna()
    assert f"MAPE on levels {table.loc[levels, 'ape_pct'].mean():.1f}%" in section.summary
    assert f"out of sample: {table.loc[levels, 'default_ape_pct'].mean():.1f}%" in section.summary
    assert "parameters end at a bound" in section.summary


def test_a_ceiling_that_fits_what_the_default_fits_changes_nothing():
    """Analytic truth: with the default itself as the 'fit to everything', every figure the
    default forecasts is one the ceiling did not fit, with the same value."""
    table = ceiling(fitted_to_all=calibrated_file()).table
    assert len(table) > 30 and (table["status"] == "not fitted").all()
    np.testing.assert_array_equal(table["model"], table["default_model"])


def test_without_its_calibration_a_section_says_how_to_make_it(tmp_path):
    """The ceiling and the hindcast alike (an empty comparison once raised KeyError 'year')."""
    from ningbo_sd.validation.hindcast import hindcast

    missing = ceiling(fitted_to_all=tmp_path / "calibrated.yaml")
    assert missing.table.empty and missing.passed
    assert f"--through {THROUGH} --draws 0 -o calibration/ceiling" in missing.summary
    missing = hindcast(tmp_path / "calibrated.yaml")
    assert missing.table.empty and "--through 2018 -o calibration/hindcast" in missing.summary
    assert main(["check", "-s", "ceiling", "-f", "json", "-o", str(tmp_path / "c.json")]) == 0
    assert '"name": "ceiling"' in (tmp_path / "c.json").read_text(encoding="utf-8")
