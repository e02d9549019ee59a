"""``ningbo-sd scenarios``, ``scorecard``, ``compare`` and ``goal``.

Heavy imports stay inside the command functions so that ``ningbo-sd --help`` stays fast.
Every command prints to standard output, or writes ``--output`` atomically (a temporary
file in the same folder, then a rename), so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import unicodedata
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ningbo_sd.io import atomic_write, check_output, format_number

SCENARIO_HELP = "Scenario YAML file, or a bundled scenario's name (see `ningbo-sd scenarios`)."
OUTPUT_HELP = "Write to this file instead of the screen (replaced atomically)."


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    json = "json"
    csv = "csv"


def verdict(met) -> str:
    """``met``, ``NOT MET`` or ``n/a`` (the model cannot compute the target)."""
    if _missing(met):
        return "n/a"
    return "met" if bool(met) else "NOT MET"


def _missing(value) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_target(value) -> str:
    """A target as the plan writes it: ``2.5``, ``150``, ``6,000``, ``-13.5``."""
    if _missing(value):
        return "-"
    value = float(value)
    if value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.6g}"


def display_width(text: str) -> int:
    """Columns a text takes on a terminal (Chinese characters take two)."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def aligned(rows: list[list[str]], header: list[str], right: set[int] | None = None) -> str:
    """Rows of text as aligned columns under a header and a rule."""
    right = right or set()
    widths = [
        max(display_width(str(c)) for c in column) for column in zip(header, *rows, strict=True)
    ]

    def pad(text: str, width: int, to_right: bool) -> str:
        fill = " " * (width - display_width(text))
        return fill + text if to_right else text + fill

    def line(cells) -> str:
        return "  ".join(
            pad(str(c), w, i in right) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def check_emit(output: Path | None) -> None:
    """Check ``--output`` before the work, so a mistyped folder costs no runs."""
    if output is not None:
        check_output(output)


def emit(text: str, output: Path | None) -> None:
    """Print text, or write it to ``output`` through a temporary file and a rename."""
    if output is None:
        typer.echo(text)
        return
    text = text if text.endswith("\n") else text + "\n"
    atomic_write(output, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    typer.echo(f"wrote {output}", err=True)


def _json_value(value):
    if _missing(value):
        return None
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def _records(frame) -> list[dict]:
    import pandas as pd

    plain = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    return [
        {str(k): _json_value(v) for k, v in row.items()}
        for row in frame.reset_index(drop=plain).to_dict(orient="records")
    ]


def _dump_json(data) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


# ---------------------------------------------------------------- rendering


def render_scorecard(card, scenario_name: str, fmt: OutputFormat, lang: str = "en") -> str:
    """Render a scorecard as an aligned table, JSON or CSV."""
    if fmt is OutputFormat.json:
        return _dump_json({"scenario": scenario_name, "targets": _records(card)})
    if fmt is OutputFormat.csv:
        frame = card.copy()
        for column in ("met", "met_in_fact"):
            if column in frame:
                frame[column] = ["" if _missing(m) else verdict(m) for m in frame[column]]
        return frame.to_csv(index=False)
    label = "label_zh" if lang == "zh" else "label_en"
    published = "published" in card

    def fact(row) -> str:
        return "-" if _missing(row["published"]) else verdict(row["met_in_fact"])

    rows = [
        [
            row["id"],
            row[label],
            format_number(row["simulated"]),
            f"{row['op']} {format_target(row['target'])}",
            row["unit"],
            verdict(row["met"]),
            *([format_number(row["published"]), fact(row)] if published else []),
        ]
        for _, row in card.iterrows()
    ]
    header = ["id", "target", "simulated", "goal", "unit", "model says"]
    header += ["published", "in fact"] if published else []
    table = aligned(rows, header, right={2, 3, 6} if published else {2, 3})
    scored = card[card["met"].notna()]
    summary = (
        f"{int(scored['met'].sum())} of {len(scored)} scored targets met; "
        f"{int((~card['modelled']).sum())} targets the model cannot compute (n/a)."
    )
    if published:
        sources = card[card["published"].notna()]
        summary += "\nPublished outcomes (calibration/data/actuals.csv):\n" + "\n".join(
            f"  {row['id']}: {format_number(row['published'])} ({row['published_confidence']}) "
            f"{row['published_source']}"
            for _, row in sources.iterrows()
        )
    return f"Scorecard of {scenario_name}\n\n{table}\n\n{summary}"


def render_compare(indicators, differences, fmt: OutputFormat, lang: str = "en") -> str:
    """Render the side-by-side indicators and the differing targets."""
    names = [c for c in indicators.columns if c not in ("label_en", "label_zh", "unit")]
    if fmt is OutputFormat.json:
        return _dump_json(
            {
                "scenarios": names,
                "indicators": _records(indicators),
                "target_differences": _records(differences),
            }
        )
    if fmt is OutputFormat.csv:
        import pandas as pd

        long = indicators.reset_index()
        long.insert(0, "section", "indicator")
        diffs = pd.DataFrame(
            {
                "section": "target",
                "indicator": differences["id"],
                "year": "",
                "label_en": differences["label_en"],
                "label_zh": differences["label_zh"],
                "unit": [f"{op} {format_target(v)} {u}" for op, v, u in zip(
                    differences["op"], differences["target"], differences["unit"], strict=True)],
                **{name: [verdict(m) for m in differences[name]] for name in names},
            }
        )  # fmt: skip
        return pd.concat([long, diffs], ignore_index=True).to_csv(index=False)
    label = "label_zh" if lang == "zh" else "label_en"
    rows = []
    previous = None
    for (indicator, year), row in indicators.iterrows():
        first = indicator != previous
        previous = indicator
        rows.append(
            [row[label] if first else "", row["unit"] if first else "", str(year)]
            + [format_number(row[name]) for name in names]
        )
    table = aligned(
        rows, ["indicator", "unit", "year", *names], right=set(range(3, 3 + len(names)))
    )
    if differences.empty:
        tail = "Every scored target has the same verdict in all scenarios."
    else:
        diff_rows = [
            [
                row["id"],
                f"{row['op']} {format_target(row['target'])} {row['unit']}",
                *[f"{verdict(row[n])} ({format_number(row[f'{n} value'])})" for n in names],
            ]
            for _, row in differences.iterrows()
        ]
        tail = "Targets whose verdict differs:\n\n" + aligned(diff_rows, ["target", "goal", *names])
    return f"{table}\n\n{tail}"


def render_goal(result, fmt: OutputFormat) -> str:
    """Render a goal-seek result."""
    from dataclasses import asdict

    data = {k: _json_value(v) for k, v in asdict(result).items()}
    if fmt is OutputFormat.json:
        return _dump_json(data)
    if fmt is OutputFormat.csv:
        import pandas as pd

        data["fixed"] = json.dumps(data["fixed"])
        return pd.DataFrame([data]).to_csv(index=False)
    return result.message


def render_frontier(table, lever: str, other: str, target: str, fmt: OutputFormat) -> str:
    """Render a two-lever frontier."""
    if fmt is OutputFormat.json:
        return _dump_json({"target": target, "lever": lever, "frontier_lever": other,
                           "rows": _records(table.set_index(other))})  # fmt: skip
    if fmt is OutputFormat.csv:
        return table.to_csv(index=False)
    rows = [
        [
            format_number(row[other]),
            "not reachable"
            if row[lever] != row[lever]
            else f"{row['direction']} {format_number(row[lever])}",
            row["binding_constraint"],
        ]
        for _, row in table.iterrows()
    ]
    heading = f"Smallest {lever} that meets {target}, for each {other}:\n\n"
    return heading + aligned(rows, [other, lever, "binding constraint"], right={0})


# ---------------------------------------------------------------- commands


def _values(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"--frontier-values {text!r}: expected numbers separated by commas, e.g. 0.02,0.03"
        ) from None
    if not values:
        raise ValueError("--frontier-values: give at least one number")
    return values


def register(app: typer.Typer) -> None:
    """Add the ``scenarios``, ``scorecard``, ``compare`` and ``goal`` commands."""

    @app.command("scenarios")
    def list_scenarios() -> None:
        """List the bundled scenarios with their titles."""
        from ningbo_sd.scenarios.schema import bundled_scenarios, load_scenario

        rows = []
        for name in bundled_scenarios():
            scenario = load_scenario(name)
            rows.append([name, scenario.title.en, scenario.title.zh])
        typer.echo(aligned(rows, ["name", "title", "标题"]))

    @app.command("scorecard")
    def scorecard_command(
        scenario: Annotated[str, typer.Argument(help=SCENARIO_HELP)],
        format: Annotated[
            OutputFormat, typer.Option("--format", "-f", help="table, json or csv.")
        ] = OutputFormat.table,
        lang: Annotated[str, typer.Option(help="Label language of the table: en or zh.")] = "en",
        output: Annotated[Path | None, typer.Option("--output", "-o", help=OUTPUT_HELP)] = None,
        actuals: Annotated[
            bool,
            typer.Option(
                "--actuals",
                help="Add the published outcome beside each target, and whether it was met "
                "in fact (calibration/data/actuals.csv).",
            ),
        ] = False,
    ) -> None:
        """Score a scenario against the plan's targets (表3-1, 2035 doubling, land, clusters)."""
        from ningbo_sd.scenarios.run import run_scenario
        from ningbo_sd.scenarios.schema import load_scenario
        from ningbo_sd.scenarios.scorecard import scorecard

        check_emit(output)
        if lang not in ("en", "zh"):
            raise ValueError(f"--lang {lang!r}: allowed: en, zh")
        loaded = load_scenario(scenario)
        card = scorecard(run_scenario(loaded), assumed=loaded.targets)
        if actuals:
            from ningbo_sd.scenarios.scorecard import with_published

            card = with_published(card)
        emit(render_scorecard(card, loaded.name, format, lang), output)

    @app.command("compare")
    def compare_command(
        scenario_list: Annotated[
            list[str], typer.Argument(metavar="SCENARIO...", help="Two or more scenarios.")
        ],
        format: Annotated[
            OutputFormat, typer.Option("--format", "-f", help="table, json or csv.")
        ] = OutputFormat.table,
        years: Annotated[
            str, typer.Option(help="Years to show, comma-separated.")
        ] = "2020,2025,2035",
        lang: Annotated[str, typer.Option(help="Label language of the table: en or zh.")] = "en",
        output: Annotated[Path | None, typer.Option("--output", "-o", help=OUTPUT_HELP)] = None,
    ) -> None:
        """Show headline indicators of scenarios side by side and the targets that differ."""
        from ningbo_sd.scenarios.compare import (
            compare_results,
            run_scenarios,
            scorecards,
            target_differences,
        )

        check_emit(output)
        if lang not in ("en", "zh"):
            raise ValueError(f"--lang {lang!r}: allowed: en, zh")
        try:
            year_list = [int(part) for part in years.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--years {years!r}: expected years separated by commas") from None
        bad = [year for year in year_list if not 2015 <= year <= 2035]
        if bad or not year_list:
            raise ValueError(f"--years {years!r}: allowed: years 2015-2035, comma-separated")
        runs = run_scenarios(scenario_list)
        indicators = compare_results({n: frame for n, (_, frame) in runs.items()}, year_list)
        differences = target_differences(scorecards(runs))
        emit(render_compare(indicators, differences, format, lang), output)

    @app.command("goal")
    def goal_command(
        scenario: Annotated[str, typer.Argument(help=SCENARIO_HELP)],
        target: Annotated[
            str,
            typer.Option(
                "--target",
                "-t",
                help="A comparison such as 'gross_output[2035] >= 2 * gross_output[2020]', "
                "or a scorecard target id.",
            ),
        ],
        lever: Annotated[
            str,
            typer.Option("--lever", "-l", help="Lever to move: <lever>[.<period>|.<cluster>]."),
        ],
        low: Annotated[float | None, typer.Option(help="Lowest value to try.")] = None,
        high: Annotated[float | None, typer.Option(help="Highest value to try.")] = None,
        frontier_lever: Annotated[
            str | None,
            typer.Option(help="Second lever: tabulate the smallest --lever for its values."),
        ] = None,
        frontier_values: Annotated[
            str | None, typer.Option(help="Values of the second lever, comma-separated.")
        ] = None,
        frontier_points: Annotated[
            int, typer.Option(help="Grid size over the second lever's range.")
        ] = 6,
        format: Annotated[
            OutputFormat, typer.Option("--format", "-f", help="table, json or csv.")
        ] = OutputFormat.table,
        output: Annotated[Path | None, typer.Option("--output", "-o", help=OUTPUT_HELP)] = None,
    ) -> None:
        """Find the smallest lever value that meets a target, or a two-lever frontier."""
        from ningbo_sd.scenarios.goal import frontier, goal_seek, parse_lever, resolve_target

        check_emit(output)
        parsed_target = resolve_target(target)
        choice = parse_lever(lever)
        if frontier_lever is None:
            if frontier_values is not None:
                raise ValueError("--frontier-values needs --frontier-lever")
            result = goal_seek(scenario, parsed_target, choice, low=low, high=high)
            emit(render_goal(result, format), output)
            return
        if frontier_points < 2:
            raise ValueError(f"--frontier-points {frontier_points}: allowed: 2 or more")
        other = parse_lever(frontier_lever)
        table = frontier(
            scenario, parsed_target, choice, other, _values(frontier_values),
            points=frontier_points, low=low, high=high,
        )  # fmt: skip
        emit(render_frontier(table, choice.label, other.label, parsed_target.text, format), output)
