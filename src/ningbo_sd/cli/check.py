"""``ningbo-sd check``: every validation check, one table, exit 1 when a gate fails.

Heavy imports stay inside the command so that ``ningbo-sd --help`` stays fast.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from ningbo_sd.cli.scenario_commands import OutputFormat, _dump_json, _records, aligned, emit
from ningbo_sd.io import UserError, format_number

#: Section name -> the function that computes it (module:function), in report order.
SECTIONS: dict[str, str] = {
    "out_of_sample": "ningbo_sd.validation.evidence:out_of_sample",
    "in_sample": "ningbo_sd.validation.evidence:in_sample",
    "reality": "ningbo_sd.validation.reality:run_reality_checks",
    "units": "ningbo_sd.validation.units:check_units",
    "loops": "ningbo_sd.validation.loops:check_loops",
    "screening": "ningbo_sd.validation.screen:screening",
    "hindcast": "ningbo_sd.validation.hindcast:hindcast",
    "ceiling": "ningbo_sd.validation.ceiling:ceiling",
}
#: Columns shown per section in the table format (all columns go to json and csv).
SHOWN: dict[str, tuple[str, ...]] = {
    "out_of_sample": ("id", "year", "observed", "model", "ape_pct", "growth_error_pp", "q05",
                      "q95", "in_90", "p05", "p95", "in_90p", "status"),
    "in_sample": ("id", "year", "observed", "model", "tolerance", "status", "reason"),
    "hindcast": ("id", "year", "observed", "model", "ape_pct", "growth_error_pp", "q05", "q95",
                 "in_90", "status"),
    "ceiling": ("id", "year", "observed", "default_model", "default_ape_pct", "model", "ape_pct",
                "growth_error_pp", "tolerance", "status"),
}  # fmt: skip
#: The sections ``--record`` writes from (the MAPE guard and the model discrepancy).
RECORDED = ("out_of_sample", "hindcast")
#: Rows shown per section in the table format: the ones worth reading.
NOTEWORTHY = (
    "fail", "known_failure", "miss", "compared", "secondary", "in sample", "info", "by indicator",
    "at bound", "unreached",
)  # fmt: skip


def run_sections(names: list[str], calibrated: Path | None = None) -> list:
    """Compute the named sections (all when empty), in report order.

    ``calibrated`` (a calibration file) goes to the sections that run the calibrated model
    (out of sample, in sample); the others check the model itself.
    """
    import inspect

    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise UserError(f"--section {unknown[0]!r}: allowed: {', '.join(SECTIONS)}")
    sections = []
    for name in [n for n in SECTIONS if not names or n in names]:
        module, _, function = SECTIONS[name].partition(":")
        compute = getattr(importlib.import_module(module), function)
        takes = "calibrated" in inspect.signature(compute).parameters
        sections.append(compute(calibrated=calibrated) if takes and calibrated else compute())
    return sections


def _recorded(sections, name: str):
    """The section ``--record`` writes from (the command refused the run without it)."""
    return next(s for s in sections if s.name == name)


def record_mape(sections) -> None:
    """Write the out-of-sample MAPE into the guard's record file."""
    from ningbo_sd.io import write_text_atomically
    from ningbo_sd.validation.evidence import RECORD_FILE

    guard = _recorded(sections, "out_of_sample").table.set_index("id").loc["mape_guard"]
    text = (
        "# The out-of-sample MAPE (%) on levels at the last landing: `ningbo-sd check` fails\n"
        "# when the model does worse. Written by `ningbo-sd check --record`.\n"
        f"out_of_sample_mape_pct: {float(guard['model']):.4f}\n"
    )
    write_text_atomically(RECORD_FILE, text)
    typer.echo(f"recorded out-of-sample MAPE {float(guard['model']):.2f}% in {RECORD_FILE.name}")


def record_discrepancy(sections) -> None:
    """Write the discrepancy the hindcast estimates into ``calibration/discrepancy.yaml``."""
    from ningbo_sd.io import write_text_atomically
    from ningbo_sd.uncertainty.discrepancy import discrepancy_file
    from ningbo_sd.validation.hindcast import estimate_discrepancy

    estimate, n_errors = estimate_discrepancy(_recorded(sections, "hindcast").table)
    path = discrepancy_file()
    text = (
        "# The model discrepancy (ningbo_sd.uncertainty.discrepancy): a stationary AR(1) log\n"
        "# deviation of a published figure from the model's, with this standard deviation and\n"
        "# year-to-year correlation. Maximum likelihood over the hindcast's forecast errors\n"
        f"# ({n_errors} figures of 2019-2020, calibrated through 2018). Written by\n"
        "# `ningbo-sd check --record`; `ningbo-sd check` reports when it no longer matches.\n"
        f"sd: {estimate.sd:.12g}\n"
        f"correlation: {estimate.correlation:.12g}\n"
    )
    write_text_atomically(path, text)
    typer.echo(
        f"recorded discrepancy sd {estimate.sd:.4f}, correlation {estimate.correlation:.4f} in "
        f"{path.name} (the out-of-sample bands of this run used the previous record)"
    )


def _cell(value) -> str:
    import pandas as pd

    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or pd.isna(value):
        return "-"
    return format_number(value) if isinstance(value, float | int) else str(value)


def render(sections, fmt: OutputFormat) -> str:
    """The sections as one table (text), one JSON document or one tidy CSV."""
    import pandas as pd

    if fmt == OutputFormat.json:
        return _dump_json(
            {
                "passed": all(s.passed for s in sections if s.gate),
                "sections": [
                    {"name": s.name, "title": s.title, "summary": s.summary, "gate": s.gate,
                     "passed": s.passed, "rows": _records(s.table)}
                    for s in sections
                ],
            }
        )  # fmt: skip
    if fmt == OutputFormat.csv:
        frames = [s.table.assign(section=s.name) for s in sections]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        columns = ["section", *[c for c in frame.columns if c != "section"]]
        return frame[columns].to_csv(index=False)
    blocks = []
    for section in sections:
        verdict = "PASS" if section.passed else "FAIL"
        gate = "gate" if section.gate else "info"
        lines = [f"== {section.title} [{gate}: {verdict}]", section.summary]
        table = section.table
        if "status" in table and len(table) > 12:
            table = table[table["status"].isin(NOTEWORTHY)]
        shown = [c for c in SHOWN.get(section.name, table.columns) if c in table.columns]
        if len(table):
            rows = [
                [
                    str(v) if name == "year" and pd.notna(v) else _cell(v)
                    for name, v in zip(shown, row, strict=True)
                ]
                for row in table[shown].itertuples(index=False)
            ]
            lines.append(aligned(rows, shown))
        blocks.append("\n".join(lines))
    failed = [s.name for s in sections if s.gate and not s.passed]
    blocks.append("result: " + (f"FAIL ({', '.join(failed)})" if failed else "all gates pass"))
    return "\n\n".join(blocks)


def register(app: typer.Typer) -> None:
    """Add the ``check`` command to the CLI."""

    @app.command()
    def check(
        section: Annotated[
            list[str] | None,
            typer.Option("--section", "-s", help=f"Run only these ({', '.join(SECTIONS)})."),
        ] = None,
        fmt: Annotated[
            OutputFormat, typer.Option("--format", "-f", help="table, json or csv.")
        ] = OutputFormat.table,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write here instead of printing.")
        ] = None,
        calibration: Annotated[
            Path | None,
            typer.Option(help="Calibration to validate (default: the default, fitted 2015-2020)."),
        ] = None,
        record: Annotated[
            bool,
            typer.Option(
                "--record",
                help="Record this out-of-sample MAPE as the regression guard (when landing a "
                "model change that earns it) and the hindcast's model discrepancy.",
            ),
        ] = False,
    ) -> None:
        """Validate the model: out of sample, in sample, Reality Check, units, loops,
        screening of the sampled inputs, hindcast, and the ceiling (fitted to everything).

        Exits 1 when a gating section fails (Reality Check, units, loops, the out-of-sample
        MAPE guard); known failures are listed with their reasons and do not fail it.
        """
        from ningbo_sd.cli import _calibration

        if record and calibration is not None:
            raise UserError("--record: only the default calibration's MAPE is the guard")
        if record and section and (missing := [n for n in RECORDED if n not in section]):
            # refused before any work, so nothing is half recorded
            raise UserError(f"--record: run the {' and '.join(missing)} section too")
        calibrated = _calibration(calibration) if calibration is not None else None
        sections = run_sections(list(section or []), calibrated)
        if record:
            record_mape(sections)
            record_discrepancy(sections)
        emit(render(sections, fmt), output)
        if not all(s.passed for s in sections if s.gate):
            raise typer.Exit(1)
