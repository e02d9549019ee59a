"""``ningbo-sd mc`` and ``ningbo-sd sensitivity``: Monte Carlo and global sensitivity.

Heavy imports stay inside the command functions so that ``ningbo-sd --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ningbo_sd.io import format_number

SPEC_HELP = "Uncertainty specification (YAML; default scenarios/registry/uncertainty.yaml)."
CHUNK_HELP = "Samples per task (affects memory and speed only, never the results)."
WORKERS_HELP = "Run on a local dask cluster of this many worker processes (127.0.0.1)."
SCHEDULER_HELP = "Run on a running dask scheduler, e.g. tcp://10.0.0.5:8786."


def _indicator_list(text: str) -> tuple[str, ...]:
    from ningbo_sd.model.outputs import output_columns
    from ningbo_sd.uncertainty.montecarlo import DEFAULT_INDICATORS

    if text.strip() == "default":
        return DEFAULT_INDICATORS
    if text.strip() == "all":
        return tuple(column.name for column in output_columns())
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _year_list(text: str) -> tuple[int, ...] | None:
    if text.strip() == "all":
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--years {text!r}: give 'all' or comma-separated years") from None


def print_summary(summary) -> None:
    """Print a Monte Carlo summary: quantiles, binding constraints, target probabilities."""
    quantiles = summary.quantiles.copy()
    numbers = [c for c in quantiles.columns if c != "unit"]
    for column in numbers:
        quantiles[column] = quantiles[column].map(format_number)
    joint = (
        int((summary.parameters["origin"] == "posterior").sum()) if len(summary.parameters) else 0
    )
    typer.echo(
        f"Monte Carlo of {summary.scenario}: {summary.n_samples:,} samples, seed {summary.seed}, "
        f"{len(summary.parameters)} uncertain parameters"
        + (f" ({joint} drawn jointly from the calibration posterior)" if joint else "")
    )
    if summary.held:
        typer.echo(f"held at the scenario's value: {', '.join(summary.held)}")
    effective = getattr(summary, "effective_samples", None)
    if effective is not None and effective != summary.n_samples:  # a weighted run
        typer.echo(f"weighted: effective sample size {effective:,.0f}")
    typer.echo("\nQuantiles (5/25/50/75/95%):")
    typer.echo(quantiles[["unit", "q05", "q25", "q50", "q75", "q95", "mean"]].to_string())
    if not summary.binding.empty:
        typer.echo("\nShare of samples by binding constraint:")
        typer.echo(summary.binding.map(lambda v: f"{v:.1%}").to_string())
    table = summary.probabilities
    if not table.empty:
        shown = table.assign(
            target=[
                f"{op} {format_number(v)} {u}"
                for op, v, u in zip(table["op"], table["target_value"], table["unit"], strict=True)
            ],
            probability=[
                f"{p:.1%} ± {e:.1%}" if p == p else "-"
                for p, e in zip(table["probability"], table["std_error"], strict=True)
            ],
        )
        columns = ["label_en", "target", "probability"]
        heading = "\nProbability of meeting each target (± one standard error)"
        if "predictive" in table:
            shown["predictive"] = [f"{p:.1%}" if p == p else "-" for p in table["predictive"]]
            columns.append("predictive")
            heading += "; predictive: that the published figure meets it (model discrepancy)"
        typer.echo(heading + ":")
        typer.echo(shown[columns].to_string())
    if summary.output is not None:
        typer.echo(f"\nwrote {summary.n_samples:,} samples to {summary.output}")


def register(app: typer.Typer) -> None:
    """Add the ``mc`` and ``sensitivity`` commands to the CLI."""

    @app.command("mc")
    def monte_carlo(
        scenario: Annotated[str, typer.Argument(help="Scenario YAML or bundled name.")],
        samples: Annotated[int, typer.Option("--samples", "-n", help="Ensemble size.")] = 1000,
        seed: Annotated[int, typer.Option(help="Seed of the sample table.")] = 0,
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Parquet file for per-sample results.")
        ] = Path("mc_results.parquet"),
        chunk_size: Annotated[int | None, typer.Option(help=CHUNK_HELP)] = None,
        workers: Annotated[int | None, typer.Option(help=WORKERS_HELP)] = None,
        scheduler: Annotated[str | None, typer.Option(help=SCHEDULER_HELP)] = None,
        spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
        design: Annotated[str, typer.Option(help="lhs (Latin hypercube) or random.")] = "lhs",
        indicators: Annotated[
            str,
            typer.Option(help="Headline columns to write: default, all, or a comma list."),
        ] = "default",
        years: Annotated[
            str,
            typer.Option(help="Years to write: all (2015-2035) or a comma list incl. 2025,2035."),
        ] = "all",
        progress: Annotated[
            bool | None,
            typer.Option("--progress/--no-progress", help="Progress bar (default: on a TTY)."),
        ] = None,
        list_parameters: Annotated[
            bool,
            typer.Option(
                "--list-parameters",
                help="Print the uncertain parameters (distribution, origin, source) and exit.",
            ),
        ] = False,
        calibration: Annotated[
            Path | None,
            typer.Option(help="Calibration to start from; its posterior.parquet is sampled."),
        ] = None,
        condition: Annotated[
            bool,
            typer.Option(
                help=(
                    "Weight each sample by how well it keeps the 2015-2020 figures (importance "
                    "weights over the posterior; quantiles and probabilities are weighted)."
                )
            ),
        ] = True,
        predictive: Annotated[
            bool,
            typer.Option(
                help=(
                    "Also give each target's predictive probability: that the published "
                    "figure meets it, allowing for the model discrepancy the hindcast measured "
                    "(calibration/discrepancy.yaml)."
                )
            ),
        ] = True,
    ) -> None:
        """Run a Monte Carlo ensemble; print quantiles and the probability of each target."""
        from ningbo_sd.cli import _calibration
        from ningbo_sd.uncertainty.discrepancy import load_discrepancy
        from ningbo_sd.uncertainty.montecarlo import prepare, run_monte_carlo
        from ningbo_sd.uncertainty.sampling import SPEC_FILE

        if list_parameters:
            resolved = prepare(scenario, spec or SPEC_FILE).spec
            typer.echo(resolved.table().to_string(index=False))
            if resolved.held:
                typer.echo(f"held at the scenario's value: {', '.join(resolved.held)}")
            return
        summary = run_monte_carlo(
            scenario,
            samples,
            seed,
            output=output,
            spec=spec or SPEC_FILE,
            design=design,
            chunk_size=chunk_size,
            workers=workers,
            scheduler=scheduler,
            indicators=_indicator_list(indicators),
            years=_year_list(years),
            progress=progress,
            calibrated=_calibration(calibration),
            condition=_history_of(_calibration(calibration)) if condition else None,
            discrepancy=load_discrepancy() if predictive else None,
        )
        print_summary(summary)

    @app.command("holds")
    def holds(
        results: Annotated[Path, typer.Argument(help="Results file written by `ningbo-sd mc -o`.")],
        target: Annotated[
            str, typer.Option(help="Target id, as `ningbo-sd mc` lists them.")
        ] = "gross_output_2035",
        top: Annotated[int, typer.Option(help="Inputs shown, most decisive first.")] = 10,
        box: Annotated[
            bool,
            typer.Option(
                "--box",
                help="Instead, the box of inputs where the target is met with --density (PRIM).",
            ),
        ] = False,
        density: Annotated[
            float, typer.Option(help="With --box: the share of the box's runs that meet it.")
        ] = 0.95,
        predictive: Annotated[
            bool,
            typer.Option(
                "--predictive",
                help=(
                    "Read each run as the probability that the published figure meets the "
                    "target (the model discrepancy, as `mc` does), not whether the run does."
                ),
            ),
        ] = False,
    ) -> None:
        """What has to hold: P(target) by third of each input, or the PRIM box (Monte Carlo)."""
        from ningbo_sd.uncertainty.conditions import what_holds

        if top < 1:
            raise ValueError(f"--top {top}: give at least 1")
        discrepancy = _recorded_discrepancy() if predictive else None
        reading = "predictive probability" if predictive else "share of the model's runs"
        if box:
            _print_box(results, target, density, discrepancy, reading)
            return
        table = what_holds(results, target, discrepancy)
        typer.echo(
            f"{target}: {reading} {table.attrs['probability']:.1%} (effective sample size "
            f"{table.attrs['ess']:,.0f}); by tercile of each input (equal weight in each), "
            f"the {reading} in each:"
        )
        head = table.head(top)
        shown = head.assign(
            low=head["low"].map("{:.1%}".format),
            middle=head["middle"].map("{:.1%}".format),
            high=head["high"].map("{:.1%}".format),
            spread=head["spread"].map("{:+.1%}".format),
            split_at=[
                f"{format_number(a)} / {format_number(b)}"
                for a, b in zip(head["edge_low"], head["edge_high"], strict=True)
            ],
        )
        typer.echo(
            shown[["input", "low", "middle", "high", "spread", "split_at"]].to_string(index=False)
        )

    @app.command("sensitivity")
    def sensitivity(
        scenario: Annotated[str, typer.Argument(help="Scenario YAML or bundled name.")],
        method: Annotated[str, typer.Option(help="sobol or morris.")] = "sobol",
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Indices: .csv, .parquet or .json.")
        ] = Path("sensitivity.csv"),
        samples: Annotated[
            int,
            typer.Option(
                "--samples", "-n", help="Sobol: base samples (a power of 2); Morris: trajectories."
            ),
        ] = 1024,
        seed: Annotated[int, typer.Option(help="Seed of the design and the bootstrap.")] = 0,
        parameters: Annotated[
            str | None,
            typer.Option(help="Comma list of uncertain parameters to vary (default: all)."),
        ] = None,
        target: Annotated[
            list[str] | None,
            typer.Option(
                help="Scorecard target to analyse (repeatable; default gross_output_2035)."
            ),
        ] = None,
        chunk_size: Annotated[int | None, typer.Option(help=CHUNK_HELP)] = None,
        workers: Annotated[int | None, typer.Option(help=WORKERS_HELP)] = None,
        scheduler: Annotated[str | None, typer.Option(help=SCHEDULER_HELP)] = None,
        spec: Annotated[Path | None, typer.Option(help=SPEC_HELP)] = None,
    ) -> None:
        """Global sensitivity (Sobol or Morris) of 2035 gross output and the doubling goal."""
        from ningbo_sd.uncertainty.sampling import SPEC_FILE
        from ningbo_sd.uncertainty.sensitivity import (
            check_indices_output,
            run_sensitivity,
            write_indices,
        )

        check_indices_output(output)  # before the runs, not after
        names = [p.strip() for p in parameters.split(",") if p.strip()] if parameters else None
        result = run_sensitivity(
            scenario,
            method=method,
            n=samples,
            seed=seed,
            spec=spec or SPEC_FILE,
            parameters=names,
            targets=tuple(target) if target else None,
            chunk_size=chunk_size,
            workers=workers,
            scheduler=scheduler,
        )
        write_indices(result.indices, output)
        typer.echo(result.report())
        typer.echo(f"\nwrote {len(result.indices)} rows ({result.n_runs:,} runs) to {output}")


def _recorded_discrepancy():
    """The recorded model discrepancy, or a one-line refusal when none is recorded."""
    from ningbo_sd.uncertainty.discrepancy import discrepancy_file, load_discrepancy

    discrepancy = load_discrepancy()
    if discrepancy is None:
        raise FileNotFoundError(
            f"--predictive: no model discrepancy recorded ({discrepancy_file()}); "
            "run `ningbo-sd check --record` first"
        )
    return discrepancy


def _print_box(results: Path, target: str, density: float, discrepancy, reading: str) -> None:
    """Print the PRIM box of a results file (``ningbo-sd holds --box``)."""
    import pandas as pd

    from ningbo_sd.uncertainty.discovery import PEEL, SEARCHED, box_table, discover

    found, reached, whole = discover(results, target, density, discrepancy=discrepancy)
    typer.echo(
        f"{target}: {reading} {whole.density:.1%}. "
        + (
            f"A box of inputs where it is {found.density:.1%} (at least {density:.0%})"
            if reached
            else f"No box reaches {density:.0%}; in the densest box it is {found.density:.1%}"
        )
        + f": {found.mass:.1%} of the runs' weight, holding {found.coverage:.1%} of the runs "
        f"that meet it (PRIM, peeling {PEEL:.0%} at a time over the {SEARCHED} most decisive "
        "inputs):"
    )
    table = box_table(found, whole)
    if table.empty:
        typer.echo("(no input restricted: the whole ensemble)")
        return
    shown = pd.DataFrame({
        "input": table["input"],
        "from": table["from"].map(lambda v: "-" if v != v else format_number(v)),
        "to": table["to"].map(lambda v: "-" if v != v else format_number(v)),
        "sampled": [
            f"{format_number(a)} to {format_number(b)}"
            for a, b in zip(table["sampled_from"], table["sampled_to"], strict=True)
        ],
    })  # fmt: skip
    typer.echo(shown.to_string(index=False))


def _history_of(calibrated):
    """The history likelihood that conditions a Monte Carlo from ``calibrated``.

    The figures that calibration fitted (:func:`ningbo_sd.calibration.history.fitted_terms`):
    the default's 2015-2020 figures, or for a calibration through 2018 those up to 2018.
    """

    def history(prepared):
        from ningbo_sd.calibration.history import fitted_terms, history_likelihood

        return history_likelihood(prepared, fitted_terms(calibrated))

    return history
