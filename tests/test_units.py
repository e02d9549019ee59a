"""The units check: pint over PySD's abstract model, on tiny models and on the Ningbo model."""

from __future__ import annotations

import math

import pytest

from ningbo_sd.io import UserError, read_yaml_file
from ningbo_sd.model.metadata import ModelFileError
from ningbo_sd.validation import Section
from ningbo_sd.validation.units import (
    check_units,
    format_unit,
    known_failures_file,
    parse_unit,
    registry,
)

CONTROL = """
********************************************************
	.Control
********************************************************~
		Simulation Control Parameters
	|

FINAL TIME  = 2025
	~	Year
	~	The final time for the simulation.
	|

INITIAL TIME  = 2015
	~	Year
	~	The initial time for the simulation.
	|

SAVEPER  = TIME STEP
	~	Year
	~	The frequency with which output is stored.
	|

TIME STEP  = 0.25
	~	Year
	~	The time step for the simulation.
	|
"""


def write_model(tmp_path, equations: dict[str, tuple[str, str]], name: str = "tiny.mdl"):
    """A Vensim file of ``name: (equation, units)`` plus the control section."""
    body = "".join(
        # a lookup's definition, "( [(x,y)-(x,y)], ...)", follows its name without "="
        f"{variable}{'' if equation.startswith('( [') else '='}\n\t{equation}\n"
        f"\t~\t{units}\n\t~\t\n\t|\n\n"
        for variable, (equation, units) in equations.items()
    )
    path = tmp_path / name
    path.write_text("{UTF-8}\n" + body + CONTROL, encoding="utf-8")
    return path


def row(section: Section, variable: str) -> dict:
    rows = section.table[section.table["variable"] == variable]
    assert len(rows) == 1, f"{variable}: {len(rows)} rows"
    return rows.iloc[0].to_dict()


#: A consistent little model: a stock of money, its flows, a rate, a lookup and the delays.
CONSISTENT = {
    "Capital": ("INTEG(Investment - Depreciation, 6000)", "CNY100m"),
    "Investment": ("Capital * Growth * Effect(Pressure)", "CNY100m/Year"),
    "Depreciation": ("Capital / Life", "CNY100m/Year"),
    "Growth": ("0.05", "1/Year"),
    "Life": ("15", "Year"),
    "Pressure": ("MIN(10, ZIDZ(Energy, Quota))", "Dmnl"),
    "Energy": ("Capital * Intensity / Life", "tce10k/Year"),
    "Intensity": ("0.85", "tce/CNY10k"),
    "Quota": ("XIDZ(Energy * 2, 1, 0)", "tce10k/Year"),
    "Effect": ("( [(0,0)-(10,2)],(0,1),(1,0.8),(10,0.2))", "Dmnl"),
    "Perceived": ("SMOOTH(Investment, Life)", "CNY100m/Year"),
    "Completion": ("DELAY3(Investment, 1.5)", "CNY100m/Year"),
    "Ramp": ("MAX(0, MIN(1, (Time - 2020) / Life))", "Dmnl"),
    "Price": ("EXP(Growth * (Time - 2020))", "Dmnl"),
    "Step": ("IF THEN ELSE(Time >= 2021, 1, 0)", "Dmnl"),
    "Scale": ("(Capital / (Capital + 1)) ^ 0.4", "Dmnl"),
    "Squared": ("Capital ^ 2 / Capital", "CNY100m"),
    "Land": ("INTEG(12, 470)", "km2"),
    "Mu per km2": ("1500", "mu/km2"),
    "Land in Mu": ("Land * Mu per km2", "mu"),
    "Labour": ("142.1", "person10k"),
    "Productivity": ("ZIDZ(Investment, Labour)", "CNY10k/(person*Year)"),
}


def test_a_consistent_model_passes(tmp_path):
    section = check_units(write_model(tmp_path, CONSISTENT))
    assert isinstance(section, Section)
    assert section.name == "units" and section.gate
    table = section.table
    assert list(table.columns) == ["variable", "declared", "inferred", "status", "detail"]
    assert set(table["status"]) == {"pass"}, table[table["status"] != "pass"].to_string()
    assert section.passed and not section.known_failures
    total = len(CONSISTENT) + 4
    assert section.summary == (
        f"units: {total} of {total} equations consistent, 0 mismatched (0 known), 0 unchecked"
    )
    assert row(section, "Energy")["inferred"] == "CNY100m*tce/(CNY10k*Year)"  # = tce10k/Year


#: One broken equation each: (equations, variable, status, words the detail names).
CASES = {
    "flow with the stock's units": (
        {"Stock": ("INTEG(Flow, 10)", "CNY100m"), "Flow": ("5", "CNY100m")},
        "Stock",
        "fail",
        ["flow in CNY100m", "needs CNY100m/Year", "CNY100m"],
    ),
    "initial value in other units": (
        {"Stock": ("INTEG(0, Init)", "CNY100m"), "Init": ("5", "CNY10k")},
        "Stock",
        "fail",
        ["initial value in CNY10k", "1 CNY100m = 10000 CNY10k"],
    ),
    "CNY100m plus CNY10k": (
        {"A": ("1", "CNY100m"), "B": ("1", "CNY10k"), "Sum": ("A + B", "CNY100m")},
        "Sum",
        "fail",
        ["'+' of CNY100m and CNY10k", "1 CNY100m = 10000 CNY10k"],
    ),
    "literal conversion factor": (
        {"A": ("1", "CNY100m/Year"), "Per Mu": ("A * 10000 / 1500", "CNY10k/(Year*mu)")},
        "Per Mu",
        "fail",
        ["CNY100m/Year", "CNY10k/(Year*mu)", "[area]"],
    ),
    "same dimension, wrong scale": (
        {"A": ("1", "CNY100m/Year"), "L": ("1", "mu"), "Per Mu": ("A / L", "CNY10k/(Year*mu)")},
        "Per Mu",
        "fail",
        ["CNY100m/(Year*mu)", "10000 CNY10k/(Year*mu)"],
    ),
    "exp of a quantity": (
        {"T": ("2", "Year"), "E": ("EXP(T)", "Dmnl")},
        "E",
        "fail",
        ["argument of EXP", "Year"],
    ),
    "ln of a quantity": (
        {"A": ("2", "km2"), "E": ("LN(A)", "Dmnl")},
        "E",
        "fail",
        ["argument of LN", "km2"],
    ),
    "exponent with units": (
        {"T": ("2", "Year"), "P": ("2 ^ T", "Dmnl")},
        "P",
        "fail",
        ["exponent", "Year"],
    ),
    "quantity to a variable power": (
        {"A": ("2", "km2"), "K": ("0.5", "Dmnl"), "P": ("A ^ K", "Dmnl")},
        "P",
        "fail",
        ["base of '^'", "km2"],
    ),
    "MIN of two units": (
        {"A": ("2", "km2"), "B": ("2", "mu"), "M": ("MIN(A, B)", "km2")},
        "M",
        "fail",
        ["MIN arguments of km2 and mu", "1 km2 = 1500 mu"],
    ),
    "IF THEN ELSE branches": (
        {"A": ("2", "km2"), "B": ("2", "Year"), "M": ("IF THEN ELSE(Time > 2020, A, B)", "km2")},
        "M",
        "fail",
        ["IF THEN ELSE branches", "km2", "Year"],
    ),
    "comparison of two units": (
        {"A": ("2", "km2"), "M": ("IF THEN ELSE(A > Time, 1, 0)", "Dmnl")},
        "M",
        "fail",
        ["'>' of km2 and Year"],
    ),
    "smoothing time not in Year": (
        {"A": ("2", "km2"), "S": ("SMOOTH(A, A)", "km2")},
        "S",
        "fail",
        ["SMOOTH's time is in km2, needs Year"],
    ),
    "ramp without its period": (
        {"W": ("MAX(0, MIN(1, (Time - 2020) / 5))", "Dmnl")},
        "W",
        "fail",
        ["equation gives Year", "Dmnl"],
    ),
    "literal adopts in a sum": (
        {"A": ("2", "CNY100m"), "S": ("A + 5 - 1", "CNY100m")},
        "S",
        "pass",
        [],
    ),
    "literal adopts in MIN and a comparison": (
        {"A": ("2", "km2"), "S": ("IF THEN ELSE(A > 3, MIN(A, 0), 7)", "km2")},
        "S",
        "pass",
        [],
    ),
    "literal adopts as a stock's flow and initial value": (
        {"S": ("INTEG(5, 100)", "tce10k")},
        "S",
        "pass",
        [],
    ),
    "literal in a product is a number": (
        {"A": ("2", "CNY100m"), "S": ("A * 100", "CNY100m")},
        "S",
        "pass",
        [],
    ),
    "literal exponent of a quantity": (
        {"A": ("2", "km2"), "S": ("A ^ (1 / 2)", "km2^0.5")},
        "S",
        "pass",
        [],
    ),
    "constant in its declared units": (
        {"A": ("2", "CNY10k/(Year*mu)")},
        "A",
        "pass",
        [],
    ),
    "undeclared unit": (
        {"A": ("2", "widgets"), "B": ("A * 2", "Dmnl")},
        "B",
        "unchecked",
        ["'A'", "widgets", "not declared"],
    ),
    "no units": ({"A": ("2", "")}, "A", "unchecked", ["declares no units"]),
    "function without a rule": (
        {"A": ("RANDOM UNIFORM(0, 1, 1)", "Dmnl")},
        "A",
        "unchecked",
        ["RANDOM UNIFORM", "no unit rule"],
    ),
    "lookup of a quantity": (
        {
            "T": ("( [(0,0)-(10,2)],(0,1),(10,0.2))", "Dmnl"),
            "A": ("2", "km2"),
            "B": ("T(A)", "Dmnl"),
        },
        "B",
        "unchecked",
        ["lookup 'T'", "km2"],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_rules(tmp_path, case):
    equations, variable, status, words = CASES[case]
    section = check_units(write_model(tmp_path, equations))
    found = row(section, variable)
    assert found["status"] == status, found
    for word in words:
        assert word in found["detail"], (word, found["detail"])
    assert section.passed == (status != "fail")


def test_a_failure_names_both_sides(tmp_path):
    path = write_model(tmp_path, {"A": ("2", "CNY100m/Year"), "B": ("A", "CNY10k/Year")})
    found = row(check_units(path), "B")
    assert (found["declared"], found["inferred"], found["status"]) == (
        "CNY10k/Year",
        "CNY100m/Year",
        "fail",
    )
    assert "1 CNY100m/Year = 10000 CNY10k/Year" in found["detail"]


def test_known_failures_are_not_counted_against_the_gate(tmp_path):
    path = write_model(tmp_path, {"A": ("2", "CNY100m"), "B": ("A * 10000", "CNY10k")})
    known = tmp_path / "known.yaml"
    known.write_text('B: "literal *10000 converts 亿元 to 万元"\n', encoding="utf-8")
    section = check_units(path, known)
    found = row(section, "B")
    assert found["status"] == "known_failure" and "亿元 to 万元" in found["detail"]
    assert section.passed and section.known_failures == ["B"]
    assert "1 mismatched (1 known)" in section.summary
    known.write_text('A: "a stale entry"\n', encoding="utf-8")
    section = check_units(path, known)
    assert not section.passed and "not failing: A" in section.summary
    known.write_text("- A\n", encoding="utf-8")
    with pytest.raises(UserError, match="mapping"):
        check_units(path, known)


def test_a_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        check_units(tmp_path / "none.mdl")


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("亿元", "CNY100m"),
        ("万元", "CNY10k"),
        ("百亿元", "CNY10bn"),
        ("万吨标准煤", "tce10k"),
        ("km²", "km2"),
        ("亩", "mu"),
        ("件", "patents"),
        ("家", "firms"),
        ("亿元 (nominal)", "CNY100m"),
        ("tce/万元 (2020 prices)", "tce/CNY10k"),
        ("Dmnl", "1"),
        ("1/Year", "1/year"),
        ("CNY100m/(Year*Year)", "CNY100m/Year^2"),
    ],
)
def test_parse_unit_reads_vensim_and_chinese_names(text, same_as):
    assert parse_unit(text) == parse_unit(same_as)


def test_the_registry_scales():
    quantity = registry().Quantity
    assert quantity(1, parse_unit("km2")).to(parse_unit("亩")).magnitude == pytest.approx(1500)
    assert quantity(1, parse_unit("亿元")).to(parse_unit("万元")).magnitude == pytest.approx(1e4)
    ratio = quantity(1, parse_unit("CNY100m/person10k")).to(parse_unit("CNY10k/person"))
    assert math.isclose(ratio.magnitude, 1)
    assert format_unit(parse_unit("CNY10k/(Year*mu)")) == "CNY10k/(Year*mu)"
    assert format_unit(parse_unit("Dmnl")) == "Dmnl"
    for bad in ("", "widgets", "CNY100m/"):
        with pytest.raises(ValueError):
            parse_unit(bad)


def test_the_ningbo_model_fails_only_where_recorded():
    """Every failing equation is a recorded known failure, and no recorded one now passes."""
    known = read_yaml_file(known_failures_file())
    assert isinstance(known, dict)  # empty since model v2 named its conversion constants
    assert all(isinstance(reason, str) and reason.strip() for reason in known.values())
    section = check_units()
    table = section.table
    assert len(table) == table["variable"].nunique() > 200
    failing = set(table.loc[table["status"].isin(["fail", "known_failure"]), "variable"])
    assert failing <= set(known), f"not recorded: {sorted(failing - set(known))}"
    assert set(known) <= failing, f"recorded but consistent now: {sorted(set(known) - failing)}"
    assert section.passed and section.known_failures == sorted(known)
    assert not (table["status"] == "unchecked").any(), table[table["status"] == "unchecked"]
    assert section.summary.startswith(f"units: {len(table) - len(known)} of {len(table)}")
