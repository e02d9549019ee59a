"""The brief's feedback loops exist as loops in the model file, edge by edge."""

from __future__ import annotations

import pytest

from ningbo_sd.model.structure import read_structure

# Each loop as a closed chain of direct dependencies: every variable's equation reads the
# one before it, and the first reads the last.
LOOPS = {
    "innovation (R1): output -> revenue -> R&D -> knowledge -> productivity -> output": [
        "Value Added Real",
        "Realisation Ratio",
        "Cluster Value Added Real",
        "Cluster Value Added",
        "Cluster Gross Output",
        "Gross Output",
        "Revenue",
        "RD Spending",
        "RD Spending Real",
        "Knowledge Investment",
        "Knowledge Stock",
        "Relative Knowledge",
        "Productivity Index",
        "Potential Value Added",
        "Total Potential Value Added",
        "Demanded Value Added",
    ],
    "investment (R2): output -> profit -> investment -> capital -> output": [
        "Value Added",
        "Profit",
        "Profit Rate",
        "Perceived Profit Rate",
        "Profit Effect on Investment",
        "Industrial Investment",
        "Real Investment",
        "Cluster Investment",
        "Capital Completion",
        "Capital Stock",
        "Potential Value Added",
        "Total Potential Value Added",
        "Production Capacity",
        "Value Added Real",
    ],
    "energy (B1): output -> energy demand -> quota pressure -> investment -> output": [
        "Potential Value Added",
        "Energy Demand",
        "Energy Pressure",
        "Energy Pressure Effect on Investment",
        "Industrial Investment",
        "Real Investment",
        "Cluster Investment",
        "Capital Completion",
        "Capital Stock",
    ],
    "energy saving (B2): energy pressure -> intensity reduction -> energy demand": [
        "Energy Pressure",
        "Intensity Reduction Rate",
        "Intensity Reduction",
        "Energy Intensity",
        "Cluster Energy Intensity",
        "Energy Demand",
    ],
}


@pytest.fixture(scope="module")
def structure():
    return read_structure()


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_loop_is_closed_by_direct_dependencies(structure, loop):
    chain = LOOPS[loop]
    for before, after in zip(chain, [*chain[1:], chain[0]], strict=True):
        assert before in structure.depends_on[after], f"{after} does not read {before}"


def test_every_stock_has_a_flow(structure):
    stocks = [name for name, kind in structure.kind.items() if kind == "stock"]
    assert len(stocks) == 11
    for stock in stocks:
        assert structure.depends_on[stock], stock
