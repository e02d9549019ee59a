"""``ningbo-sd calibrate``: fit the model to 2015-2020 and write the calibrated parameters.

The command is a thin layer over :func:`run_calibration`, which the notebook and the
benchmark call too. Heavy imports stay inside the functions so that ``ningbo-sd --help``
stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_OUTPUT = Path("calibrated.yaml")


@dataclass
class CalibrationSettings:
    """How a calibration is run (recorded in its output files).

    Attributes
    ----------
    starts : int
        Latin-hypercube starts besides the register defaults.
    seed : int
        Seed of the starts and of the posterior sampler.
    draws : int
        Posterior draws (0: no posterior).
    keep_draws : int
        Thinned draws written to ``posterior.parquet``.
    walkers, burn_in, thin : int
        Sampler settings (``walkers = 0``: ``max(64, 4 * parameters)``).
    """

    starts: int = 8
    seed: int = 20210101
    draws: int = 20_000
    keep_draws: int = 2000
    walkers: int = 0
    burn_in: int = 2000
    thin: int = 10

    def check(self) -> None:
        """Raise ValueError naming the first setting out of its allowed range."""
        limits = {
            "starts": (0, 1000),
            "draws": (0, 1_000_000),
            "keep_draws": (1, 1_000_000),
            "walkers": (0, 10_000),
            "burn_in": (0, 100_000),
            "thin": (1, 1000),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"--{name.replace('_', '-')} {value}: allowed {low}-{high}")


def one_line(exc: Exception) -> str:
    """A data-file error as one line naming file, row, column and problem."""
    from ningbo_sd.plan.data import DataFileError

    if isinstance(exc, DataFileError):
        details = "; ".join(str(problem) for problem in exc.problems)
        return f"{exc.path}: {details}"
    return str(exc)


def run_calibration(
    settings: CalibrationSettings | None = None,
    observations: str | Path | None = None,
    assumptions: str | Path | None = None,
    parameters: list[str] | None = None,
    through: int | None = None,
):
    """Load the data, fit, and sample the posterior.

    Parameters
    ----------
    settings : CalibrationSettings, optional
    observations, assumptions : str or Path, optional
        Data files (default: the bundled ones).
    parameters : list of str, optional
        Fit only these register rows.
    through : int, optional
        Fit the plan's figures and the published actuals up to this year (default: the
        plan's 2015-2020 figures and the published figures of 2015 and 2020).

    Returns
    -------
    (FitResult, PosteriorResult or None)

    Raises
    ------
    ValueError
        Bad input files or settings; one line naming the file, row and column.
    """
    from ningbo_sd.calibration.fit import calibrate
    from ningbo_sd.calibration.posterior import sample_posterior
    from ningbo_sd.calibration.problem import load_problem, refuse_uninformed
    from ningbo_sd.plan.assumptions import ASSUMPTIONS_FILE
    from ningbo_sd.plan.data import DataFileError

    settings = settings or CalibrationSettings()
    settings.check()
    try:
        problem = load_problem(
            observations_path=observations,
            assumptions_path=assumptions or ASSUMPTIONS_FILE,
            parameters=parameters,
            through=through,
        )
    except DataFileError as exc:
        raise ValueError(one_line(exc)) from None
    refuse_uninformed(problem, assumptions or ASSUMPTIONS_FILE)
    fit = calibrate(problem, n_starts=settings.starts, seed=settings.seed)
    posterior = None
    if settings.draws > 0:
        posterior = sample_posterior(
            fit,
            n_draws=settings.draws,
            walkers=settings.walkers or None,
            burn_in=settings.burn_in,
            thin=settings.thin,
            seed=settings.seed,
        )
    return fit, posterior


def register(app: typer.Typer) -> None:
    """Add the ``calibrate`` command to the CLI."""

    @app.command()
    def calibrate(
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="Calibrated parameters (YAML); the report and draws go next to it.",
            ),
        ] = DEFAULT_OUTPUT,
        starts: Annotated[int, typer.Option(help="Latin-hypercube starts.")] = 8,
        seed: Annotated[int, typer.Option(help="Seed of starts and sampler.")] = 20210101,
        draws: Annotated[int, typer.Option(help="Posterior draws (0: none).")] = 20_000,
        keep_draws: Annotated[int, typer.Option(help="Draws written to the file.")] = 2000,
        walkers: Annotated[int, typer.Option(help="emcee walkers (0: automatic).")] = 0,
        burn_in: Annotated[
            int,
            typer.Option(
                help="Sampler steps discarded (2,000: with 72 parameters, 200 left the draws "
                "under-dispersed, e.g. a post-2025 assumption at 0.58 of its prior s.d.)."
            ),
        ] = 2000,
        thin: Annotated[int, typer.Option(help="Keep every n-th sampler step.")] = 10,
        observations: Annotated[
            Path | None, typer.Option(help="observations.csv to fit (default: bundled).")
        ] = None,
        assumptions: Annotated[
            Path | None, typer.Option(help="assumptions.csv (default: bundled).")
        ] = None,
        through: Annotated[
            int | None,
            typer.Option(
                help="Fit the plan's figures and the published actuals up to this year "
                "(default: the plan's 2015-2020 figures and the published figures of 2015 and "
                "2020; those of 2016-2019 and later stay out of sample)."
            ),
        ] = None,
    ) -> None:
        """Fit the model to 2015-2020 (least squares + emcee) and write calibrated.yaml."""
        if through is not None and not 2016 <= through <= 2035:
            raise ValueError(f"--through {through}: allowed: a year from 2016 to 2035")
        if through is not None and output == DEFAULT_OUTPUT:
            output = Path(f"calibrated_through_{through}.yaml")  # never the default's name
        from ningbo_sd.calibration.report import write_outputs

        settings = CalibrationSettings(
            starts=starts,
            seed=seed,
            draws=draws,
            keep_draws=keep_draws,
            walkers=walkers,
            burn_in=burn_in,
            thin=thin,
        )
        if output.suffix not in (".yaml", ".yml"):
            raise ValueError(f"--output {output}: the calibrated parameters are a .yaml file")
        fit, posterior = run_calibration(settings, observations, assumptions, through=through)
        record = dict(vars(settings))
        if through is not None:
            record["through"] = through
        record["observations"] = str(observations or "calibration/data/observations.csv")
        record["assumptions"] = str(assumptions or "calibration/data/assumptions.csv")
        if not output.parent.exists():  # the calibration writes a set of files: a folder
            output.parent.mkdir(parents=True)
            typer.echo(f"created folder {output.parent}", err=True)
        written = write_outputs(fit, posterior, output, record, settings.keep_draws)
        fitted = [t for t in fit.problem.terms if t.status == "fitted"]
        typer.echo(
            f"fitted {fit.problem.n_parameters} parameters to {len(fitted)} observations "
            f"(cost {fit.cost:.2f}, {len(fit.starts)} starts)"
        )
        for kind, path in written.items():
            typer.echo(f"wrote {kind}: {path}")
        from ningbo_sd.calibration.report import parameters_at_bound

        bounded = parameters_at_bound(output)
        if len(bounded):
            listed = ", ".join(
                f"{name} ({side})"
                for name, side in zip(bounded["parameter"], bounded["side"], strict=True)
            )
            typer.echo(
                f"{len(bounded)} of {fit.problem.n_parameters} parameters at a bound of their "
                f"register range: {listed}; the range holds them there, not the data "
                "(calibration_report.json: at_bound)"
            )
