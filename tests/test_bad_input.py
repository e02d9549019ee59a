"""Bad input at the command line: one table of cases, each refused in one line (issue 19).

Every case of :data:`CASES` runs through :func:`ningbo_sd.cli.main` and must give the stated
exit code (2: bad input) and exactly one line on stderr that starts ``error:``, names the
file or field, quotes the value at most as a short excerpt (never a file's content: the
line is bounded), says what is allowed, and holds no traceback; and nothing in the test's
folder may change: a pre-existing output file keeps its bytes and its mode, no temporary
file is left, no input is touched. Outputs that are not errors (a symbolic link written
through, file modes), the refusal time of an absurd sample count, and interrupts (SIGINT
130, SIGTERM 143, in a subprocess) are tested after the table.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ningbo_sd.cli import main

HEADER = "title: {en: a, zh: b}\ndescription: {en: a, zh: b}\n"
SYNTHETIC = Path(__file__).parent / "data" / "synthetic13.mdl"
#: Pre-existing outputs in ``{tmp}/out``: every case must leave them as they are.
OLD_OUTPUTS = ("out.csv", "out.parquet", "out.txt", "out.yaml")
OLD_MODE = 0o640
RD = ("-l", "rd_intensity.2026-2035")
#: Model files are checked before PySD reads them (ningbo_sd.model.safety); without that
#: check a binary model is reported by PySD's parser, quoting the bytes where it stopped.
MODEL_SAFETY = importlib.util.find_spec("ningbo_sd.model.safety") is not None
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def scenario(levers: str) -> bytes:
    """A scenario file's text with valid title and description and the given levers."""
    return (HEADER + f"levers: {levers}\n").encode()


def billion_laughs() -> bytes:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def huge_scenario() -> bytes:
    """A valid scenario padded with comments to 5 MB."""
    return scenario("{}") + b"# padding\n" * 500_000


def text_10mb() -> bytes:
    """10 MB of prose, not YAML."""
    return b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 180_000


def truncated_model() -> bytes:
    text = SYNTHETIC.read_bytes()
    return text[: len(text) // 2]


def make_fifo(tmp: Path) -> None:
    os.mkfifo(tmp / "out" / "fifo.csv")


@dataclass(frozen=True)
class Case:
    """One bad input: the command, what its error line must hold, and the files it needs.

    ``{tmp}`` in ``args`` and ``expected`` is the test's folder; ``files`` are written there
    first (bytes, or a function returning them); ``limit`` bounds the error line, which must
    be printable text when ``printable`` (no control characters or raw bytes).
    """

    args: tuple[str, ...]
    expected: tuple[str, ...]
    files: dict[str, bytes | Callable[[], bytes]] = field(default_factory=dict)
    code: int = 2
    limit: int = 700
    setup: Callable[[Path], None] | None = None
    marks: tuple = ()
    printable: bool = True


RUN = ("run", "{tmp}/scenario.yaml", "-o", "{tmp}/out/out.csv")
IN_SCENARIO = "{tmp}/scenario.yaml"

CASES: dict[str, Case] = {
    # ---------------------------------------------------------- scenario files
    "malformed_yaml": Case(
        RUN,
        (IN_SCENARIO, "malformed YAML at line 2, column 1"),
        {"scenario.yaml": b"title: [unclosed\n"},
    ),
    "empty_yaml": Case(
        RUN,
        (IN_SCENARIO, "expected a mapping with fields title", "got nothing (empty)"),
        {"scenario.yaml": b""},
    ),
    "binary_yaml": Case(
        RUN,
        (IN_SCENARIO, "not a UTF-8 text file (byte 0x89 on line 1)", "save it as UTF-8"),
        {"scenario.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40},
    ),
    "latin1_yaml": Case(
        RUN,
        (IN_SCENARIO, "not a UTF-8 text file (byte 0xe9 on line 3)"),
        {"scenario.yaml": (HEADER + "# café\nlevers: {}\n").encode("latin-1")},
    ),
    "billion_laughs": Case(
        RUN,
        (IN_SCENARIO, "aliases (*name) expand to more than 100,000 values", "at most 100,000"),
        {"scenario.yaml": billion_laughs},
    ),
    "alias_bomb_inside_levers": Case(
        RUN,
        (IN_SCENARIO, "aliases (*name) expand to more than 100,000 values"),
        {"scenario.yaml": billion_laughs() + HEADER.encode() + b"levers: {rd_intensity: *i}\n"},
    ),
    "duplicate_key": Case(
        RUN,
        (IN_SCENARIO, "key 'title' appears twice in one mapping (first on line 1)"),
        {"scenario.yaml": (HEADER + "title: {en: c, zh: d}\n").encode()},
    ),
    "python_object_tag": Case(
        RUN,
        (IN_SCENARIO, "could not determine a constructor for the tag", "python/object/apply"),
        {
            "scenario.yaml": (
                HEADER + "levers: !!python/object/apply:os.system ['touch {tmp}/pwned']\n"
            ).encode()
        },
    ),
    "unknown_lever": Case(
        RUN,
        (IN_SCENARIO, "levers.warp_drive: unknown lever; allowed: cluster_priority_weight"),
        {"scenario.yaml": scenario("{warp_drive: 1}")},
    ),
    "nan_value": Case(
        RUN,
        (
            IN_SCENARIO,
            "levers.investment_growth.2021-2025: expected a number in [-0.3, 0.5]",
            "got nan",
        ),
        {"scenario.yaml": scenario("{investment_growth: {'2021-2025': .nan}}")},
    ),
    "plus_infinity": Case(
        RUN,
        (IN_SCENARIO, "levers.investment_growth.2021-2025", "[-0.3, 0.5], got inf"),
        {"scenario.yaml": scenario("{investment_growth: {'2021-2025': .inf}}")},
    ),
    "minus_infinity": Case(
        RUN,
        (IN_SCENARIO, "levers.investment_growth.2021-2025", "[-0.3, 0.5], got -inf"),
        {"scenario.yaml": scenario("{investment_growth: {'2021-2025': -.inf}}")},
    ),
    "negative_value": Case(
        RUN,
        (
            IN_SCENARIO,
            "levers.rd_intensity.2021-2025: value -0.01 is outside the allowed range [0, 0.1]",
        ),
        {"scenario.yaml": scenario("{rd_intensity: {'2021-2025': -0.01}}")},
    ),
    "out_of_range_value": Case(
        RUN,
        (
            IN_SCENARIO,
            "levers.investment_growth.2021-2025: value 0.9 is outside the allowed "
            "range [-0.3, 0.5]",
        ),
        {"scenario.yaml": scenario("{investment_growth: {'2021-2025': 0.9}}")},
    ),
    "out_of_range_constant": Case(
        RUN,
        (IN_SCENARIO, "levers.new_construction_land: value 1e+06 is outside the allowed range"),
        {"scenario.yaml": scenario("{new_construction_land: 1.0e+6}")},
    ),
    "exponent_read_as_text": Case(  # YAML 1.1 reads 1e6 as text: the line says how to write it
        RUN,
        (
            IN_SCENARIO,
            "levers.new_construction_land: expected a number in [0, 50], got '1e6'",
            "e.g. 1.0e+6",
        ),
        {"scenario.yaml": scenario("{new_construction_land: 1e6}")},
    ),
    "text_for_a_number": Case(
        RUN,
        (
            IN_SCENARIO,
            "levers.investment_growth.2021-2025: expected a number in [-0.3, 0.5]",
            "got 'fast' (text)",
        ),
        {"scenario.yaml": scenario("{investment_growth: {'2021-2025': fast}}")},
    ),
    "huge_scenario_5mb": Case(
        RUN,
        (IN_SCENARIO, "5,", "bytes; a YAML file here is at most 1,000,000"),
        {"scenario.yaml": huge_scenario},
        limit=300,
    ),
    "text_file_10mb": Case(
        RUN,
        (IN_SCENARIO, "bytes; a YAML file here is at most 1,000,000"),
        {"scenario.yaml": text_10mb},
        limit=300,
    ),
    "long_line_of_text": Case(  # under the size limit: YAML reads it as one long string
        RUN,
        (IN_SCENARIO, "expected a mapping with fields title", "(text)"),
        {"scenario.yaml": b"Lorem ipsum dolor sit amet " * 30_000},
        limit=300,
    ),
    "long_unknown_key": Case(
        RUN,
        (IN_SCENARIO, "malformed YAML at line 3, column 500001"),
        {"scenario.yaml": HEADER.encode() + b"x" * 500_000 + b": 1\n"},
        limit=300,
    ),
    "folder_as_scenario": Case(
        ("run", "{tmp}/out", "-o", "{tmp}/out/out.csv"),
        ("{tmp}/out: is a folder; expected a scenario YAML file",),
    ),
    "missing_scenario": Case(
        ("run", "{tmp}/nothere.yaml", "-o", "{tmp}/out/out.csv"),
        ("{tmp}/nothere.yaml: scenario file not found (bundled scenarios: baseline",),
    ),
    "dotdot_bundled_name_run": Case(
        ("run", "../baseline", "-o", "{tmp}/out/out.csv"),
        ("../baseline: scenario file not found", "a bundled scenario is named without a folder"),
    ),
    "dotdot_bundled_name_mc": Case(
        ("mc", "../../scenarios/baseline", "-n", "10", "-o", "{tmp}/out/out.parquet"),
        ("../../scenarios/baseline: scenario file not found", "named without a folder"),
    ),
    "alias_bomb_spec": Case(
        ("mc", "baseline", "-n", "10", "--spec", "{tmp}/spec.yaml", "-o", "{tmp}/out/out.parquet"),
        ("{tmp}/spec.yaml", "aliases (*name) expand to more than 100,000 values"),
        {"spec.yaml": billion_laughs},
    ),
    # ---------------------------------------------------------- model files
    "missing_model": Case(
        ("run", "--model", "{tmp}/nothere.mdl", "--all", "-o", "{tmp}/out/out.csv"),
        ("{tmp}/nothere.mdl: model file not found",),
    ),
    "empty_model": Case(
        ("run", "--model", "{tmp}/empty.mdl", "--all", "-o", "{tmp}/out/out.csv"),
        ("{tmp}/empty.mdl", "cannot parse"),
        {"empty.mdl": b""},
    ),
    "truncated_model": Case(
        ("run", "--model", "{tmp}/truncated.mdl", "--all", "-o", "{tmp}/out/out.csv"),
        ("{tmp}/truncated.mdl",),
        {"truncated.mdl": truncated_model},
    ),
    "binary_model": Case(
        ("run", "--model", "{tmp}/model.mdl", "--all", "-o", "{tmp}/out/out.csv"),
        ("{tmp}/model.mdl", *(("binary",) if MODEL_SAFETY else ())),
        {"model.mdl": b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 40},
        printable=MODEL_SAFETY,
    ),
    "non_utf8_model": Case(
        ("run", "--model", "{tmp}/model.mdl", "--all", "-o", "{tmp}/out/out.csv"),
        ("{tmp}/model.mdl", *(("0x80",) if MODEL_SAFETY else ())),
        {"model.mdl": bytes(range(0x80, 0x100)) * 20},
        printable=MODEL_SAFETY,
    ),
    # ---------------------------------------------------------- outputs
    "output_parent_is_a_file": Case(
        ("run", "baseline", "-o", "{tmp}/out/out.txt/results.csv"),
        ("{tmp}/out/out.txt/results.csv: {tmp}/out/out.txt is a file, not a folder",),
    ),
    "output_folder_missing": Case(
        ("run", "baseline", "-o", "{tmp}/nofolder/results.csv"),
        ("{tmp}/nofolder/results.csv: folder {tmp}/nofolder does not exist",),
    ),
    "output_is_a_folder": Case(
        ("run", "baseline", "-o", "{tmp}/out"),
        ("{tmp}/out: is a folder; name a file to write",),
    ),
    "output_is_a_fifo": Case(
        ("run", "baseline", "-o", "{tmp}/out/fifo.csv"),
        ("{tmp}/out/fifo.csv: not a regular file (a FIFO or a device); name a file",),
        setup=make_fifo,
    ),
    "scorecard_output_is_a_fifo": Case(
        ("scorecard", "baseline", "-o", "{tmp}/out/fifo.csv"),
        ("{tmp}/out/fifo.csv: not a regular file (a FIFO or a device)",),
        setup=make_fifo,
    ),
    "mc_output_folder_missing": Case(
        ("mc", "baseline", "-n", "10", "-o", "{tmp}/nofolder/mc.parquet"),
        ("{tmp}/nofolder/mc.parquet: folder {tmp}/nofolder does not exist",),
    ),
    "mc_output_not_parquet": Case(
        ("mc", "baseline", "-n", "10", "-o", "{tmp}/out/out.csv"),
        ("{tmp}/out/out.csv: the Monte Carlo output must be a .parquet file",),
    ),
    "sensitivity_output_folder_missing": Case(
        ("sensitivity", "baseline", "-n", "4", "-o", "{tmp}/nofolder/s.csv"),
        ("{tmp}/nofolder/s.csv: folder {tmp}/nofolder does not exist",),
    ),
    "sensitivity_output_suffix": Case(
        ("sensitivity", "baseline", "-n", "4", "-o", "{tmp}/out/out.txt"),
        ("{tmp}/out/out.txt: the sensitivity output must end in .csv, .parquet, .json",),
    ),
    "unwritable_output_folder": Case(
        ("run", "baseline", "-o", "{tmp}/locked/results.csv"),
        ("{tmp}/locked/results.csv: folder {tmp}/locked is not writable (permission denied)",),
        setup=lambda tmp: (tmp / "locked").mkdir(mode=0o500),
        marks=(pytest.mark.skipif(ROOT, reason="root ignores folder modes"),),
    ),
    # ---------------------------------------------------------- sample counts
    "mc_zero_samples": Case(
        ("mc", "baseline", "-n", "0", "-o", "{tmp}/out/out.parquet"),
        ("--samples must be at least 1 (got 0)",),
    ),
    "mc_negative_samples": Case(
        ("mc", "baseline", "-n", "-5", "-o", "{tmp}/out/out.parquet"),
        ("--samples must be at least 1 (got -5)",),
    ),
    "mc_absurd_samples": Case(  # refused by disk or, on a huge disk, by memory
        ("mc", "baseline", "-n", "10000000000", "-o", "{tmp}/out/out.parquet"),
        ("--samples 10,000,000,000:", "at least", "allowed here: fewer than"),
    ),
    "mc_samples_beyond_any_disk": Case(
        ("mc", "baseline", "-n", str(10**15), "-o", "{tmp}/out/out.parquet"),
        ("--samples 1,000,000,000,000,000:", "bytes a sample", "free; allowed here"),
    ),
    "mc_zero_chunk": Case(
        ("mc", "baseline", "-n", "10", "--chunk-size", "0", "-o", "{tmp}/out/out.parquet"),
        ("--chunk-size must be at least 1 (got 0)",),
    ),
    "sensitivity_zero_samples": Case(
        ("sensitivity", "baseline", "-n", "0", "-o", "{tmp}/out/out.csv"),
        ("--samples for Sobol must be a power of 2, at least 2 (got 0)",),
    ),
    "sensitivity_negative_samples": Case(
        ("sensitivity", "baseline", "-n", "-4", "-o", "{tmp}/out/out.csv"),
        ("--samples for Sobol must be a power of 2, at least 2 (got -4)",),
    ),
    "sensitivity_absurd_samples": Case(
        ("sensitivity", "baseline", "-n", str(2**33), "-o", "{tmp}/out/out.csv"),
        ("--samples 8,589,934,592: would need at least", "of memory", "base samples"),
    ),
    "morris_zero_trajectories": Case(
        ("sensitivity", "baseline", "--method", "morris", "-n", "0", "-o", "{tmp}/out/out.csv"),
        ("--samples (Morris trajectories) must be at least 2 (got 0)",),
    ),
    "morris_absurd_trajectories": Case(
        (
            "sensitivity",
            "baseline",
            "--method",
            "morris",
            "-n",
            "10000000000",
            "-o",
            "{tmp}/out/out.csv",
        ),
        ("--samples 10,000,000,000: would need at least", "of memory", "trajectories"),
    ),
    "samples_not_a_number": Case(
        ("mc", "baseline", "-n", "many", "-o", "{tmp}/out/out.parquet"),
        ("Invalid value for '--samples'",),
    ),
    # ---------------------------------------------------------- what has to hold
    "holds_missing_results": Case(
        ("holds", "{tmp}/none.parquet"),
        ("{tmp}/none.parquet", "Monte Carlo results not found"),
    ),
    "holds_not_parquet": Case(
        ("holds", "{tmp}/scenario.yaml"),
        ("{tmp}/scenario.yaml", "not a Parquet file"),
        files={"scenario.yaml": scenario("{}")},
    ),
    "holds_box_density_above_one": Case(
        ("holds", "{tmp}/none.parquet", "--box", "--density", "2"),
        ("--density 2.0", "a share in (0, 1]"),
    ),
    "holds_top_zero": Case(
        ("holds", "{tmp}/none.parquet", "--top", "0"),
        ("--top 0", "at least 1"),
    ),
    # ---------------------------------------------------------- goal targets
    "goal_target_too_long": Case(
        ("goal", "baseline", "-t", "gross_output[2035] >= " + "1 + " * 2_500 + "1", *RD),
        ("a target is at most 500", "10,023 characters"),
        limit=300,
    ),
    "goal_target_nested_too_deeply": Case(
        ("goal", "baseline", "-t", "gross_output[2035] >= " + "(" * 51 + "1" + ")" * 51, *RD),
        ("nested too deeply (at most 50 levels of parentheses and signs)",),
        limit=300,
    ),
    "goal_signs_nested_too_deeply": Case(
        ("goal", "baseline", "-t", "gross_output[2035] >= " + "-" * 60 + "1", *RD),
        ("nested too deeply (at most 50 levels",),
        limit=300,
    ),
    "goal_division_by_constant_zero": Case(
        ("goal", "baseline", "-t", "gross_output[2035] >= 1 / (2 - 2)", *RD),
        ("division by zero in the target at position 24", "allowed: a divisor that is never 0"),
    ),
    "goal_division_by_zero_in_runs": Case(
        (
            "goal",
            "baseline",
            "-t",
            "gross_output[2035] / (gross_output[2020] - gross_output[2020]) >= 2",
            *RD,
        ),
        ("division by zero in the target at position 19", "the divisor is 0 in 17 of 17 runs"),
        marks=(pytest.mark.slow,),  # the first batch run of a session compiles its kernel
    ),
    "goal_overflow": Case(
        ("goal", "baseline", "-t", "gross_output[2035] * 1e300 * 1e300 >= 1", *RD),
        ("overflows", "allowed: finite values"),
    ),
    "goal_number_too_large": Case(
        ("goal", "baseline", "-t", "gross_output[2035] >= 1e999", *RD),
        ("number too large", "'1e999'"),
    ),
    "goal_unknown_column": Case(
        ("goal", "baseline", "-t", "warp[2035] >= 1", *RD),
        ("unknown column 'warp'; allowed: capital_stock",),
        limit=1200,  # every column is listed
    ),
    "long_unknown_field": Case(
        RUN,
        (IN_SCENARIO, "unknown field; allowed: title, description", "x…"),
        {"scenario.yaml": HEADER.encode() + b'"' + b"x" * 900 + b'": 1\n'},
        limit=300,
    ),
    # ---------------------------------------------------------- calibration data
    "calibrate_binary_observations": Case(
        (
            "calibrate",
            "--observations",
            "{tmp}/obs.csv",
            "--draws",
            "0",
            "--starts",
            "0",
            "-o",
            "{tmp}/out/out.yaml",
        ),
        ("{tmp}/obs.csv: not a UTF-8 text file (byte 0x80 on line 1)", "a UTF-8 CSV file"),
        {"obs.csv": bytes(range(0x80, 0x100)) * 40},
    ),
    "calibrate_binary_assumptions": Case(
        (
            "calibrate",
            "--assumptions",
            "{tmp}/assumptions.csv",
            "--draws",
            "0",
            "--starts",
            "0",
            "-o",
            "{tmp}/out/out.yaml",
        ),
        ("{tmp}/assumptions.csv: not a UTF-8 text file", "a UTF-8 CSV file"),
        {"assumptions.csv": b"name,value\n" + bytes(range(0x80, 0x100))},
    ),
    "calibrate_missing_observations": Case(
        (
            "calibrate",
            "--observations",
            "{tmp}/nothere.csv",
            "--draws",
            "0",
            "--starts",
            "0",
            "-o",
            "{tmp}/out/out.yaml",
        ),
        ("{tmp}/nothere.csv: file not found",),
    ),
}


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed): its kind, mode and content digest."""
    state = {}
    for folder, folders, files in os.walk(root, followlinks=False):
        for name in [*folders, *files]:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            else:
                content = None
            state[str(path.relative_to(root))] = (
                stat.S_IFMT(info.st_mode),
                stat.S_IMODE(info.st_mode),
                content,
            )
    return state


def prepare(case: Case, tmp: Path) -> list[str]:
    """Write the case's files and the old outputs; return its arguments."""
    (tmp / "out").mkdir()
    for name in OLD_OUTPUTS:
        old = tmp / "out" / name
        old.write_bytes(b"old output\n")
        old.chmod(OLD_MODE)
    for name, content in case.files.items():
        data = content() if callable(content) else content
        (tmp / name).write_bytes(data.replace(b"{tmp}", str(tmp).encode()))
    if case.setup is not None:
        case.setup(tmp)
    return [arg.replace("{tmp}", str(tmp)) for arg in case.args]


def check_refused(case: Case, tmp: Path, code: int, err: str, out: str) -> None:
    """The exit code, one bounded error line with the expected parts, and no traceback."""
    assert code == case.code, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("error: "), err
    assert len(err) <= case.limit, f"{len(err)} characters: {err[:200]!r}"
    assert "Traceback" not in err + out
    assert err[:-1].isprintable() or not case.printable, f"not printable: {err!r}"
    for part in case.expected:
        assert part.replace("{tmp}", str(tmp)) in err, f"{part!r} not in {err!r}"


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """Compile the model's engine once (the CLI commands below load it)."""
    output = tmp_path_factory.mktemp("warm") / "warm.csv"
    assert main(["run", "baseline", "-o", str(output)]) == 0


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=case.marks) for name, case in CASES.items()]
)
def test_bad_input_is_refused_in_one_line_and_changes_nothing(warm, tmp_path, capsys, name):
    case = CASES[name]
    args = prepare(case, tmp_path)
    before = snapshot(tmp_path)
    code = main(args)
    captured = capsys.readouterr()
    check_refused(case, tmp_path, code, captured.err, captured.out)
    assert snapshot(tmp_path) == before  # old outputs: same bytes, same mode; no temp files
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------- outputs that are written


def test_a_symbolic_link_is_written_through(warm, tmp_path, capsys):
    target = tmp_path / "target.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(target.name)  # relative, as users make them
    assert main(["run", "baseline", "-o", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == target.name
    assert target.read_text().startswith("year,")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "target.csv"]


def test_a_dangling_link_creates_its_target(warm, tmp_path):
    link = tmp_path / "link.csv"
    link.symlink_to("new.csv")
    assert main(["run", "baseline", "-o", str(link)]) == 0
    assert link.is_symlink() and (tmp_path / "new.csv").read_text().startswith("year,")


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_outputs_get_0644_under_umask_022_and_keep_it_when_overwritten(
    warm, tmp_path, umask_022
):
    output = tmp_path / "results.csv"
    assert main(["run", "baseline", "-o", str(output)]) == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o644
    output.write_text("old\n")
    assert main(["run", "baseline", "-o", str(output)]) == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o644
    assert output.read_text().startswith("year,")
    scorecard = tmp_path / "card.txt"
    assert main(["scorecard", "baseline", "-o", str(scorecard)]) == 0
    assert stat.S_IMODE(scorecard.stat().st_mode) == 0o644


def test_an_overwritten_file_keeps_its_own_mode(warm, tmp_path):
    output = tmp_path / "results.csv"
    output.write_text("old\n")
    output.chmod(0o600)
    assert main(["run", "baseline", "-o", str(output)]) == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


# ---------------------------------------------------------------- absurd requests, fast


@pytest.mark.parametrize(
    "args",
    [
        ["mc", "baseline", "-n", "10000000000"],
        ["sensitivity", "baseline", "-n", str(2**33)],
    ],
    ids=["mc", "sensitivity"],
)
def test_an_absurd_sample_count_is_refused_within_a_second(warm, tmp_path, capsys, args):
    output = ["-o", str(tmp_path / ("out.parquet" if args[0] == "mc" else "out.csv"))]
    assert main([*args[:2], "-n", "0", *output]) == 2  # imports done: time the refusal only
    capsys.readouterr()
    start = time.perf_counter()
    assert main([*args, *output]) == 2
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "allowed here" in err
    assert list(tmp_path.iterdir()) == []


def test_the_full_estimate_refuses_what_the_first_check_lets_through(
    warm, tmp_path, capsys, monkeypatch
):
    """Before the scenario is resolved only some columns are known (149 bytes a sample); the
    second check counts them all (about 2,100): 100,000 samples need about 214 MB."""
    from ningbo_sd.uncertainty import budget

    monkeypatch.setattr(budget, "free_space", lambda folder: 50_000_000)
    assert main(["mc", "baseline", "-n", "100000", "-o", str(tmp_path / "mc.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --samples 100,000: the results would take about 2")
    assert "bytes a sample) but" in err and "has 50.0 MB free" in err
    assert "allowed here: at most about 2" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- interrupts


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    """``python -m ningbo_sd ARGS`` in ``tmp_path`` (the engine cache comes with the env)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ningbo_sd", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


INTERRUPTS = [
    pytest.param(signal.SIGINT, 130, "interrupted\n", id="SIGINT"),
    pytest.param(signal.SIGTERM, 143, "interrupted (SIGTERM)\n", id="SIGTERM"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "line"), INTERRUPTS)
def test_an_interrupted_monte_carlo_leaves_the_old_file_and_no_temporary(
    warm, tmp_path, signum, code, line
):
    old = tmp_path / "out.parquet"
    old.write_bytes(b"old results\n")
    process = start(tmp_path, "mc", "baseline", "-n", "2000000", "-o", "out.parquet")
    try:
        wait_for(lambda: any(tmp_path.glob(".out.parquet.*.tmp")), process, 120)
        time.sleep(0.5)  # rows are being written
        process.send_signal(signum)
        first = process.stderr.readline()
        # reported at once, the temporary already deleted (the chunk running is not awaited)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]
        _, rest = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == code, first + rest
    assert first + rest == line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]
    assert old.read_bytes() == b"old results\n"


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "line"), INTERRUPTS)
def test_an_interrupted_sensitivity_run_leaves_the_old_file(warm, tmp_path, signum, code, line):
    old = tmp_path / "sobol.csv"
    old.write_bytes(b"old indices\n")
    process = start(tmp_path, "sensitivity", "baseline", "-n", "4096", "-o", "sobol.csv")
    try:
        time.sleep(5)  # past start-up, into the runs (about 160,000 of them)
        assert process.poll() is None, process.communicate()
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == code, err
    assert err == line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sobol.csv"]
    assert old.read_bytes() == b"old indices\n"
