"""Screening: the Monte Carlo carries no input that does nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from ningbo_sd.resources import calibration_data_dir, calibration_dir
from ningbo_sd.uncertainty.screening import screen_inputs

NORMALISED = ("Historical Cluster Weight", "Relative Value Added Rate", "Relative Energy Intensity")


@pytest.fixture(scope="module")
def shipped():
    return screen_inputs().set_index("factor")


def test_every_shipped_input_moves_an_output(shipped):
    assert (shipped["status"] == "pass").all(), shipped[shipped["status"] != "pass"]
    assert set(NORMALISED) <= set(shipped.index)  # kept, reparametrised as a spread


def test_a_common_factor_on_a_normalised_vector_is_caught(tmp_path):
    """The old parametrisation (vector_scale) of the three normalised vectors did nothing."""
    register = pd.read_csv(calibration_data_dir() / "assumptions.csv", dtype=str)
    register.loc[register["name"].isin(NORMALISED), "distribution"] = "vector_scale"
    register.to_csv(tmp_path / "assumptions.csv", index=False)
    spec = tmp_path / "uncertainty.yaml"
    spec.write_text(
        "assumptions:\n"
        f"  path: {tmp_path / 'assumptions.csv'}\n"
        "  categories: [plan, derived, assumption]\n"
        "posterior:\n"
        f"  path: {calibration_dir() / 'posterior.parquet'}\n",
        encoding="utf-8",
    )
    table = screen_inputs(spec=spec).set_index("factor")
    failed = set(table.index[table["status"] == "fail"])
    assert failed == set(NORMALISED)
    assert (table.loc[list(NORMALISED), "effect"] < 1e-12).all()
