"""Validation: the evidence a planner asks for before trusting a verdict.

Each check is a function returning a :class:`Section`: a tidy table, a one-line summary and
whether it passed. ``ningbo-sd check`` runs them all and prints one table; a section that
``gates`` the build fails the command (exit 1) unless every failing row is a known failure
(listed with its reason in the data, never a weakened expectation).

Sections: out of sample (published actuals), in sample (the calibration, net of replays),
Reality Check (``model/reality_checks.yaml``), units, loops, hindcast, and the ceiling (the
structure fitted to every published figure, beside the default's forecast errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Section"]


@dataclass
class Section:
    """The result of one check.

    Attributes
    ----------
    name : str
        Short id (``units``, ``reality``, ``out_of_sample``...).
    title : str
        What the section checks, in a few words.
    table : pandas.DataFrame
        One row per item checked; columns are the section's own, with ``status`` in
        ``pass``, ``fail``, ``known_failure`` or ``info``.
    summary : str
        One line with the headline figures.
    gate : bool
        Whether a failure fails ``ningbo-sd check``.
    known_failures : list of str
        Items that fail for a recorded reason (not counted against the gate).
    """

    name: str
    title: str
    table: pd.DataFrame
    summary: str
    gate: bool = False
    known_failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True unless an item failed that is not a known failure."""
        if "status" not in self.table:
            return True
        return not (self.table["status"] == "fail").any()
