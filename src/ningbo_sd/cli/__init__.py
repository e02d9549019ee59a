"""Command-line interface: ``ningbo-sd``."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from ningbo_sd.io import USER_ERRORS, atomic_write, check_output, excerpt

#: The longest error line printed (a safety net: messages quote short excerpts already).
MAX_ERROR_CHARS = 2000

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="System-dynamics scenarios of Ningbo's manufacturing (14th Five-Year plan).",
)


@app.callback()
def _group() -> None:
    """System-dynamics scenarios of Ningbo's manufacturing (14th Five-Year plan)."""


# Modules that add commands: each defines ``register(app: typer.Typer) -> None`` and keeps
# its heavy imports inside the command functions so that ``ningbo-sd --help`` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "ningbo_sd.cli.mc",
    "ningbo_sd.cli.scenario_commands",
    "ningbo_sd.cli.calibrate",
    "ningbo_sd.cli.check",
)


CALIBRATION_HELP = (
    "Calibration to run from (default: calibration/calibrated.yaml, fitted to 2015-2020); "
    "e.g. one written by `ningbo-sd calibrate --through 2024`."
)


def _calibration(path: Path | None):
    """The calibration file a command runs from (the default when None); checked to exist."""
    from ningbo_sd.resources import calibrated_file

    if path is None:
        return calibrated_file()
    if not Path(path).is_file():
        raise FileNotFoundError(f"--calibration {path}: file not found")
    return path


@app.command()
def run(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario YAML (default: the baseline defaults).")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write.")] = Path(
        "results.csv"
    ),
    model: Annotated[
        Path | None, typer.Option(help="Run this Vensim model instead of the Ningbo model.")
    ] = None,
    all_variables: Annotated[
        bool, typer.Option("--all", help="Write `time` plus every variable under its Vensim name.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="Simulation engine: batch (compiled numpy) or pysd (reference).")
    ] = "batch",
    calibration: Annotated[Path | None, typer.Option(help=CALIBRATION_HELP)] = None,
) -> None:
    """Run a scenario 2015-2035 and write one row per year."""
    from ningbo_sd.model.metadata import MODEL_PATH
    from ningbo_sd.scenarios.run import run_raw, run_scenario

    check_output(output)  # a mistyped folder is reported before the run, not after

    if model is not None or all_variables:
        from ningbo_sd.scenarios.run import resolve_parameters

        # the Ningbo model starts from its calibration, as the headline run does; another
        # model from its own defaults
        params = resolve_parameters(
            scenario,
            model_path=model or MODEL_PATH,
            calibrated=_calibration(calibration) if model is None else None,
        )
        raw = run_raw(params, model or MODEL_PATH, engine)
        frame = raw.reset_index()
    else:
        frame = run_scenario(scenario, engine=engine, calibrated=_calibration(calibration))
        frame = frame.reset_index()
    atomic_write(output, lambda temporary: frame.to_csv(temporary, index=False))
    typer.echo(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {output}")


@app.command("app")
def serve_app(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 5006,
    address: Annotated[
        str, typer.Option(help="Address to bind (default this machine only: 127.0.0.1).")
    ] = "127.0.0.1",
    show: Annotated[bool, typer.Option(help="Open a browser tab.")] = False,
    save_dir: Annotated[
        Path | None, typer.Option(help="Folder for scenarios saved from the app.")
    ] = None,
    calibration: Annotated[Path | None, typer.Option(help=CALIBRATION_HELP)] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help=(
                "host:port the page may be opened as (repeatable), besides 127.0.0.1:PORT "
                "and localhost:PORT; also $NINGBO_SD_ALLOWED_HOSTS (comma separated). "
                "Requests for other hosts get HTTP 403."
            )
        ),
    ] = None,
    num_procs: Annotated[
        int,
        typer.Option(
            help=(
                "Server processes sharing the port (0: one per CPU). Each process keeps "
                "its own sessions; see bench/README.md, App capacity."
            )
        ),
    ] = 1,
) -> None:
    """Serve the Panel app (what `python app.py` does in a checkout)."""
    from ningbo_sd.app.main import run_main

    # the server's event loop stops on KeyboardInterrupt; it would log and swallow the
    # commands' Interrupted, so it gets Python's own handlers back
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    argv = ["--port", str(port), "--address", address]
    argv += ["--show"] if show else []
    argv += ["--save-dir", str(save_dir)] if save_dir is not None else []
    argv += ["--calibration", str(_calibration(calibration))] if calibration is not None else []
    for host in allow_host or ():
        argv += ["--allow-host", host]
    argv += ["--num-procs", str(num_procs)] if num_procs != 1 else []
    run_main(argv)


def _register_commands() -> None:
    import importlib

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(app)


@functools.cache
def _command():
    """The CLI as a click command, built once per process.

    ``app(...)`` would rebuild it from the functions' signatures on every call (about 0.4 s),
    and registering the commands again on every call would pile up copies of them.
    """
    _register_commands()
    return typer.main.get_command(app)


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM while a command runs: the command stops, cleaning up.

    A ``BaseException`` like ``KeyboardInterrupt`` (so no ``except Exception`` swallows it,
    and every ``except BaseException``/``finally`` deletes its temporary files), but not a
    ``KeyboardInterrupt``, which click would turn into an "Aborted!" of its own.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for death by this signal: 128 + its number (130, 143)."""
        return 128 + self.signum


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread.

    Only the first signal raises: later ones are ignored while the command cleans up, so a
    second Ctrl-C cannot cut short the deletion of a temporary file. The previous handlers
    come back afterwards. Outside the main thread (where Python cannot set handlers) the
    block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, frame) -> None:
        if not received:
            received.append(signum)
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; bad input exits with code 2 and one line on stderr.

    SIGINT (Ctrl-C) exits 130 and SIGTERM 143, with one line ("interrupted"); an output
    being written is left as it was (its temporary file is deleted).
    """
    try:
        with _interrupts():
            code = _command()(args=argv, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):  # click returns typer.Exit's
            return code
    except Interrupted as exc:
        sigterm = exc.signum == signal.SIGTERM
        typer.echo("interrupted (SIGTERM)" if sigterm else "interrupted", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # a Ctrl-C outside the main thread's handler
        typer.echo("interrupted", err=True)
        return 128 + signal.SIGINT
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's errors
            typer.echo(f"error: {exc.format_message()}", err=True)
            return exc.exit_code
        if isinstance(exc, USER_ERRORS):
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            message = str(text).splitlines()[0] if str(text) else type(exc).__name__
            typer.echo(f"error: {excerpt(message, MAX_ERROR_CHARS)}", err=True)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
