"""CSV data files read strictly: the header checked, every problem named by row, line and column.

:func:`read_records` reads a UTF-8 CSV into ``(data row, start line, record)`` triples after
checking that its header holds exactly the expected columns in order; a problem raises
:class:`DataFileError`, whose message names the file, the 1-based *data row* (the header is
not counted), the *CSV line* on which that row starts, the column, and what is allowed.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ningbo_sd.io import UserError, not_utf8

__all__ = ["DataFileError", "Problem", "read_records"]


@dataclass(frozen=True)
class Problem:
    """One problem found in a data file.

    Attributes
    ----------
    row : int or None
        1-based data row (the header is not counted); None for the header itself.
    line : int
        1-based CSV line on which the record starts (line 1 is the header).
    column : str
        Column the problem is in.
    message : str
        What is wrong.
    allowed : str
        What the column allows.
    """

    row: int | None
    line: int
    column: str
    message: str
    allowed: str

    def __str__(self) -> str:
        where = "header" if self.row is None else f"data row {self.row}"
        return (
            f"{where} (CSV line {self.line}), column '{self.column}': {self.message}; "
            f"allowed: {self.allowed}"
        )


class DataFileError(UserError):
    """A data file breaks its schema.

    The message names the file, then one line per problem giving the 1-based data row (header
    not counted), the CSV line on which that row starts, the column, the problem and what is
    allowed.

    Parameters
    ----------
    path : Path
        The offending file.
    problems : sequence of Problem
        What is wrong, in file order.
    """

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.path = Path(path)
        self.problems = tuple(problems)
        lines = [f"{self.path}: {len(self.problems)} problem(s)"]
        lines += [f"  {self.path.name}: {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def read_records(path: Path, columns: Sequence[str]) -> list[tuple[int, int, dict[str, str]]]:
    """Read a CSV into ``(data row, start line, record)`` triples after checking its header.

    A file that is not UTF-8 text (a binary file, a Latin-1 export) or not CSV at all is a
    :class:`~ningbo_sd.io.UserError` naming it and the first bad byte, not a codec's error.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    problem = not_utf8(path.read_bytes())
    if problem:
        raise UserError(f"{path}: {problem}; allowed: a UTF-8 CSV file")
    try:
        return _read_csv_text(path, columns)
    except csv.Error as exc:
        raise UserError(f"{path}: not readable as CSV ({exc}); allowed: a UTF-8 CSV file") from None


def _read_csv_text(path: Path, columns: Sequence[str]) -> list[tuple[int, int, dict[str, str]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataFileError(
                path, [Problem(None, 1, "(all)", "file is empty", ", ".join(columns))]
            ) from None
        expected = ", ".join(columns)
        problems = [
            Problem(None, 1, c, "missing column", f"columns in this order: {expected}")
            for c in columns
            if c not in header
        ]
        problems += [
            Problem(None, 1, c, "unknown column", f"columns in this order: {expected}")
            for c in header
            if c not in columns
        ]
        if not problems and tuple(header) != tuple(columns):
            problems.append(
                Problem(None, 1, "(header)", f"columns out of order: {', '.join(header)}",
                        f"columns in this order: {expected}")
            )  # fmt: skip
        if problems:
            raise DataFileError(path, problems)
        records: list[tuple[int, int, dict[str, str]]] = []
        row_problems: list[Problem] = []
        last_line = reader.line_num
        for fields in reader:
            start = last_line + 1
            last_line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            row = len(records) + 1
            if len(fields) != len(columns):
                row_problems.append(
                    Problem(row, start, "(all)", f"{len(fields)} fields",
                            f"{len(columns)} fields: {expected}")
                )  # fmt: skip
            records.append((row, start, dict(zip(columns, fields, strict=False))))
        if row_problems:
            raise DataFileError(path, row_problems)
    return records
