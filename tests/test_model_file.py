"""The model file as a document: metadata on every variable, and the assumptions register."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ningbo_sd.model.metadata import MODEL_PATH, ModelFileError, read_metadata
from ningbo_sd.resources import calibration_data_dir

REGISTER = calibration_data_dir() / "assumptions.csv"
CONTROL = {"FINAL TIME", "INITIAL TIME", "SAVEPER", "TIME STEP"}


@pytest.fixture(scope="module")
def meta():
    return read_metadata()


@pytest.fixture(scope="module")
def register() -> list[dict]:
    with REGISTER.open(encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_every_variable_has_units_and_documentation(meta):
    for variable in meta.variables.values():
        assert variable.units.strip(), f"{variable.name} has no units"
        assert len(variable.documentation) >= 10, f"{variable.name} has no documentation line"


#: Unit definitions, not quantities: no range to declare.
DEFINITIONS = ("Mu per km2", "One Year")


def test_every_constant_has_a_range(meta):
    for variable in meta.variables.values():
        if variable.default is None or variable.name in CONTROL or variable.name in DEFINITIONS:
            continue
        assert variable.low is not None and variable.high is not None, variable.name
        assert np.all(np.asarray(variable.default) >= variable.low), variable.name
        assert np.all(np.asarray(variable.default) <= variable.high), variable.name


def test_time_settings(meta):
    assert meta["INITIAL TIME"].default == 2015
    assert meta["FINAL TIME"].default == 2036  # 1 January 2036: 2035 ends inside the run
    assert meta["TIME STEP"].default == 0.25
    assert meta["SAVEPER"].default == 0.5  # mid-year flows and year-end stocks
    assert meta.subscripts["cluster"][-1] == "other"
    assert len(meta.subscripts["cluster"]) == 13


def test_register_covers_every_constant_that_is_not_a_future_lever(meta, register):
    names = {row["name"] for row in register}
    constants = {
        name
        for name, variable in meta.variables.items()
        if variable.default is not None
        and name not in CONTROL
        and " 2021 2025" not in name
        and " 2026 2035" not in name
    }
    assert constants == names


def test_register_rows_are_consistent_with_the_model(meta, register):
    for row in register:
        variable = meta[row["name"]]
        low, high = float(row["low"]), float(row["high"])
        assert low <= high, row["name"]
        assert row["rationale"].strip() and row["source"].strip(), row["name"]
        assert row["distribution"] in {"uniform", "fixed", "vector_scale", "vector_spread"}
        values = np.array([float(x) for x in row["value"].split(";")])
        np.testing.assert_allclose(values, np.atleast_1d(variable.default), err_msg=row["name"])
        if row["distribution"].startswith("vector_") or values.size > 1:
            continue  # low/high are a factor or an exponent on the whole vector
        assert low <= values[0] <= high, row["name"]
        if variable.low is not None:
            assert variable.low <= low and high <= variable.high, row["name"]


def test_missing_or_broken_model_file_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        read_metadata(tmp_path / "absent.mdl")
    broken = tmp_path / "broken.mdl"
    broken.write_text("{UTF-8}\nStock = INTEG(((\n~ ~ |\n", encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"broken\.mdl"):
        read_metadata(broken)


def test_pysd_reads_the_model_file():
    from ningbo_sd.model.reference import load_pysd_model

    model = load_pysd_model(MODEL_PATH)
    assert "Gross Output" in model.doc["Real Name"].to_numpy()
