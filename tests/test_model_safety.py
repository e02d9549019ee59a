"""A model file cannot run code (issue 19, item 6; ``docs/security.md``).

PySD 3.14 writes documentation and some names verbatim into the Python it generates and
imports, and its parser ``eval``s a lookup's range; ``ningbo_sd.model.safety`` refuses such
text before PySD or the batch engine reads the file.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
from external import SUITE, needs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from ningbo_sd.cli import main
from ningbo_sd.model.metadata import MODEL_PATH, ModelFileError
from ningbo_sd.model.safety import check_model_text, model_entries

CONTROL = """
FINAL TIME = 2
\t~\tMonth
\t~\tThe final time.
\t|

INITIAL TIME = 0
\t~\tMonth
\t~\tThe initial time.
\t|

SAVEPER = 1
\t~\tMonth [0,?]
\t~\tThe save step.
\t|

TIME STEP = 1
\t~\tMonth [0,?]
\t~\tThe time step.
\t|

\\\\\\---/// Sketch information - do not modify anything except names
V300  Do not put anything below this section - it will be ignored
"""


# Hypothesis caches the constants of local modules (when it collects this file) and unicode
# tables in ./.hypothesis; a home inside this file cannot be created, so its best-effort
# caches write nothing (the example database is off in the test's settings).
set_hypothesis_home_dir(Path(__file__) / "no-hypothesis-cache")


@pytest.fixture(scope="module", autouse=True)
def _private_folders(tmp_path_factory):
    """PySD's translations (``model.reference``) go to a test folder, not the system's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("pysd-temp")))
        yield
    set_hypothesis_home_dir(None)


def entry(equation: str, units: str = "Dmnl", doc: str = "A documentation line.") -> str:
    """One Vensim entry: ``equation ~ units ~ documentation |``."""
    return f"{equation}\n\t~\t{units}\n\t~\t{doc}\n\t|\n\n"


def write_model(path: Path, *entries: str) -> Path:
    """A small model (the given entries plus the control block), UTF-8."""
    path.write_text("{UTF-8}\n" + "".join(entries) + CONTROL, encoding="utf-8")
    return path


def code(marker: Path) -> str:
    """Python that creates ``marker``: what a crafted model tries to run."""
    return f"open(r'{marker}', 'w')"


def reproducers(marker: Path) -> dict[str, tuple[list[str], str]]:
    """Crafted models (entries) and what the refusal names, by the field they abuse."""
    run = code(marker)
    return {
        # PySD writes the documentation into a \"\"\" docstring of the generated module
        "documentation": (
            [entry("Foo = 1", doc=f'"""; {run}; """')],
            "variable 'Foo': documentation contains '\"\"\"'",
        ),
        # PySD 3.14 writes units with repr(); older builders put them in the docstring
        "units": (
            [entry("Foo = 1", units=f'Dmnl"""; {run}; """')],
            "variable 'Foo': units contains '\"\"\"'",
        ),
        # a data variable's name goes verbatim into TabData('<name>', ...)
        "name": (
            [
                entry(f"\"Foo' + str({run}) + '\" :INTERPOLATE:"),
                entry(f"Bar = \"Foo' + str({run}) + '\""),
            ],
            "where PySD writes names verbatim",
        ),
        # PySD's parser eval()s the text between [ and ] of a lookup's range
        "lookup range": (
            [entry(f"Foo(\n\t[(0,0)-(1,1),{run}],(0,0),(1,1))"), entry("Bar = Foo(Time)")],
            "variable 'Foo': equation contains the lookup range",
        ),
    }


def unguarded_pysd_run(path: Path) -> None:
    """Translate and run a model with PySD itself (it warns about the crafted models)."""
    import pysd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pysd.read_vensim(str(path)).run()


# ------------------------------------------------------------------ the reproducers


@pytest.mark.parametrize("engine", ["pysd", "batch"])
@pytest.mark.parametrize("field", ["documentation", "units", "name", "lookup range"])
def test_crafted_model_is_refused_before_anything_runs(tmp_path, capsys, field, engine):
    marker = tmp_path / "marker"
    entries, expected = reproducers(marker)[field]
    path = write_model(tmp_path / "m.mdl", *entries)
    out = tmp_path / "out.csv"
    argv = ["run", "--model", str(path), "--all", "--engine", engine, "-o", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert error.startswith(f"error: {path}: ") and expected in error, error
    assert "Traceback" not in error
    assert not marker.exists()
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mdl"]


@pytest.mark.parametrize("field", ["documentation", "name", "lookup range"])
def test_unguarded_pysd_runs_the_reproducers(tmp_path, field):
    """Why the check exists: PySD 3.14 on its own runs the crafted code.

    If this fails after a PySD upgrade, PySD has fixed the hole: update docs/security.md.
    """
    marker = tmp_path / "marker"
    entries, _ = reproducers(marker)[field]
    path = write_model(tmp_path / "m.mdl", *entries)
    with contextlib.suppress(Exception):  # the code runs before PySD fails on what it made
        unguarded_pysd_run(path)
    assert marker.exists(), f"PySD {field}: the crafted code did not run (fixed upstream?)"


def test_file_name_does_not_reach_pysd(tmp_path, monkeypatch):
    """PySD writes the file's name into the generated module's docstring; the copy it
    translates is called ``model.mdl``."""
    monkeypatch.chdir(tmp_path)
    name = '"""+str(open("marker","w"))+"""'
    path = write_model(tmp_path / f"{name}.mdl", entry("Foo = 1"))
    out = tmp_path / "out.csv"
    assert main(["run", "--model", str(path), "--all", "--engine", "pysd", "-o", str(out)]) == 0
    assert not (tmp_path / "marker").exists()
    assert out.exists()


# ------------------------------------------------------------------ legal models pass


def test_the_ningbo_model_passes():
    check_model_text(MODEL_PATH)
    assert len(model_entries(MODEL_PATH)) > 200


def _suite_models() -> list[Path]:
    return sorted(SUITE.glob("*/*.mdl"))


def _pysd_entries(path: Path) -> list[tuple]:
    """PySD's own split of a file into entries (its grammars; nothing is evaluated)."""
    from pysd.translators.vensim import vensim_utils
    from pysd.translators.vensim.vensim_file import FileSectionsVisitor, VensimFile
    from pysd.translators.vensim.vensim_section import SectionElementsVisitor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = VensimFile(path).model_text
    tree = vensim_utils.Grammar.get("file_sections").parse(text)
    found = []
    for section in FileSectionsVisitor(tree).entries:
        elements = vensim_utils.Grammar.get("section_elements").parse(section.content)
        for element in SectionElementsVisitor(elements).entries:
            found.append(
                (
                    section.name,
                    element.equation,
                    element.units,
                    element.documentation,
                    repr(element.limits),
                )
            )
    return found


def _mine(path: Path) -> list[tuple]:
    from pysd.translators.vensim.vensim_element import Element

    found = []
    for item in model_entries(path):
        element = Element(item.equation, item.units, item.documentation)  # splits the range
        found.append(
            (
                item.section,
                element.equation,
                element.units,
                element.documentation,
                repr(element.limits),
            )
        )
    return found


@needs("suite")
def test_every_suite_model_pysd_reads_passes():
    refused = []
    for path in _suite_models():
        try:
            check_model_text(path)
        except ModelFileError as exc:
            try:
                _pysd_entries(path)
            except Exception:
                continue  # PySD cannot read it either
            refused.append(str(exc))
    assert len(_suite_models()) > 100
    assert not refused, "\n".join(refused)


@needs("suite")
def test_the_split_is_pysds():
    """Entries, fields and macro sections agree with PySD's grammar on every model."""
    differ = [
        str(path.relative_to(SUITE))
        for path in [*_suite_models(), MODEL_PATH]
        if _mine(path) != _pysd_entries(path)
    ]
    assert not differ


def test_quoted_names_with_quotes_and_backslashes_pass_as_plain_variables(tmp_path):
    """Like the suite's special_characters model: PySD writes such names with repr()."""
    path = write_model(
        tmp_path / "m.mdl",
        entry('"Flow with \\"Quotes\\" in \'it\' and \\ backslashes|~!!"= 4'),
        entry('Bar = "Flow with \\"Quotes\\" in \'it\' and \\ backslashes|~!!" * 2'),
        entry(
            "Tab(\n\t[(0,0)-(2,10),(-1,10),(0.5,3)],(0,0),(1,1),(2,10))",
            doc="Wrapped over \\\n\t\ttwo lines; (see [Sterman (2000)]) with \"quotes\" and 'it'.",
        ),
    )
    check_model_text(path)
    assert [e.equation.split("=")[0].strip() for e in model_entries(path)][:2] == [
        '"Flow with \\"Quotes\\" in \'it\' and \\ backslashes|~!!"',
        "Bar",
    ]


def test_latin1_model_with_its_declaration_passes(tmp_path):
    path = tmp_path / "m.mdl"
    text = "{ISO-8859-1}\n" + entry("Café = 1", doc="Équipe") + CONTROL
    path.write_bytes(text.encode("latin-1"))
    check_model_text(path)
    assert model_entries(path)[0].equation == "Café = 1"


# ------------------------------------------------------------------ each refusal


REFUSED = {
    "nul": (b"{UTF-8}\nFoo = 1\x00\n~ ~ |\n", "contains a NUL byte"),
    "undecodable": (b'{UTF-8}\nFoo = 1\n~ Dmnl ~ ""\xff" |\n', "byte 0xff is not valid UTF-8"),
    "encoding": (b"{UTF-7}\nFoo = 1\n~ Dmnl ~ +ACIAIgAi- |\n", "declares the encoding 'UTF-7'"),
    "control": (b"{UTF-8}\nFoo = 1\n~ Dmnl ~ a\x0bb |\n", "control character U+000B"),
    "bidi": ("{UTF-8}\nFoo = 1\n~ Dmnl ~ a\u202eb |\n".encode(), "bidirectional-override"),
    "single triple": (
        b"{UTF-8}\nFoo = 1\n~ Dmnl ~ '''; x |\n",
        "variable 'Foo': documentation contains \"'''\"",
    ),
    "string backslash": (
        b"{UTF-8}\nFoo = GET DIRECT CONSTANTS('a\\', 'b', 'c')\n~ Dmnl ~ |\n",
        "variable 'Foo': equation contains a backslash before '",
    ),
    "doc backslash quote": (
        b'{UTF-8}\nFoo = 1\n~ Dmnl ~ say \\"hi |\n',
        "variable 'Foo': documentation contains a backslash before \"",
    ),
    "units line break": (b"{UTF-8}\nFoo = 1\n~ Dmnl\nx ~ doc |\n", "units contains a line break"),
    "units quote": (b"{UTF-8}\nFoo = 1\n~ Dmnl' ~ doc |\n", "units contains a quote"),
    "with lookup range": (
        b"{UTF-8}\nFoo = WITH LOOKUP(Time, ([(0,0)-(1,1),print(1)],(0,0),(1,1)))\n~ ~ |\n",
        "lookup range [(0,0)-(1,1),print(1)]",
    ),
    "subscript range name": (
        b'{UTF-8}\n"d\'x": a, b\n~ ~ |\n',
        "variable '\"d'x\"': equation uses the name 'd'x'",
    ),
    "subscript reference": (
        b'{UTF-8}\nFoo["d\'x"] = 1\n~ ~ |\n',
        "variable 'Foo': equation uses the name 'd'x'",
    ),
    "function name": (b'{UTF-8}\nFoo = "f\\x"(1)\n~ ~ |\n', "uses the name 'f\\x'"),
    "data name": (b'{UTF-8}\n"d\'x" := 1\n~ ~ |\n', "uses the name 'd'x'"),
    "macro": (
        b'{UTF-8}\n:MACRO: "m\'x"(a)\n"m\'x" = a\n~ ~ |\n:END OF MACRO:\nFoo = 1\n~ ~ |\n',
        "macro '\"m'x\"': header uses the name 'm'x'",
    ),
    "macro input": (
        b'{UTF-8}\n:MACRO: mac("a\'")\nmac = "a\'"\n~ ~ |\n:END OF MACRO:\nFoo = 1\n~ ~ |\n',
        "macro 'mac': header uses the name 'a''",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusal_is_one_line_naming_file_variable_and_field(tmp_path, case):
    data, expected = REFUSED[case]
    path = tmp_path / "m.mdl"
    path.write_bytes(data)
    with pytest.raises(ModelFileError) as caught:
        check_model_text(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{path}: ") and expected in message, message


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        check_model_text(tmp_path / "absent.mdl")


def test_refusals_reach_the_metadata_reader(tmp_path):
    from ningbo_sd.model.metadata import read_metadata

    marker = tmp_path / "marker"
    entries, _ = reproducers(marker)["lookup range"]
    path = write_model(tmp_path / "m.mdl", *entries)
    with pytest.raises(ModelFileError, match="lookup range"):
        read_metadata(path)
    assert not marker.exists()


# ------------------------------------------------------------------ the batch engine


def test_kernel_source_holds_no_documentation_or_units(tmp_path):
    """The batch engine builds its kernel from the IR: no model text reaches it."""
    from ningbo_sd.engine.engine import compile_model
    from ningbo_sd.engine.runtime_numba import NumbaRuntime

    path = write_model(
        tmp_path / "m.mdl",
        entry("Stock = INTEG(Flow, 1)", "Widgetzq", "Docstringzq of the stock."),
        entry("Flow = Stock * Rate", "Widgetzq/Month", "Docstringzq of the flow."),
        entry("Rate = 0.1", "1/Monthzq", "Docstringzq of the rate."),
    )
    for model in (path, MODEL_PATH):
        source = NumbaRuntime(compile_model(model).ir).source
        texts = {t for e in model_entries(model) for t in (e.units, e.documentation)}
        leaked = sorted(t for t in texts if len(t) >= 8 and t in source)
        assert not leaked, f"{model.name}: {leaked[:3]}"
        assert "zq" not in source


# ------------------------------------------------------------------ PySD's temp folder


def test_pysd_runs_leave_no_temp_folder(tmp_path):
    model = write_model(tmp_path / "m.mdl", entry("Foo = 1"))
    temp = tmp_path / "temp"
    temp.mkdir()
    out = tmp_path / "out.csv"
    argv = ["run", "--model", str(model), "--all", "--engine", "pysd", "-o", str(out)]
    completed = subprocess.run(
        [sys.executable, "-m", "ningbo_sd", *argv],
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert list(temp.iterdir()) == []


def test_translated_model_stays_usable_until_dropped(tmp_path, monkeypatch):
    from ningbo_sd.model import reference

    model = write_model(tmp_path / "m.mdl", entry("Foo = 1"))
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    reference._translated.cache_clear()
    gc.collect()
    first = reference.run_pysd(path=model)
    assert [p.name.startswith("ningbo-sd-pysd-") for p in temp.iterdir()] == [True]
    second = reference.run_pysd(path=model)  # a second copy reloads the translated file
    assert first.equals(second) and math.isclose(first["Foo"].iloc[-1], 1.0)
    reference._translated.cache_clear()
    gc.collect()
    assert list(temp.iterdir()) == []


# ------------------------------------------------------------------ fuzzing

#: Characters that matter to Python and Vensim quoting, and some that do not.
_ALPHABET = st.sampled_from(list("\"'\\\n\t ~|[]()#;:=+abcXYZ0129_é增ß€\u00a0"))
_PAYLOADS = [
    '"""; {code}; """',
    "''' + str({code}) + '''",
    "' + str({code}) + '",
    '" + str({code}) + "',
    "\\'; {code} #",
    "\n{code}\n",
    "[(0,0)-(1,1),{code}]",
]


@pytest.mark.slow
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,  # nothing written outside the test folders
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(["documentation", "units", "name", "data name", "range name"]),
    prefix=st.text(_ALPHABET, max_size=12),
    payload=st.sampled_from(_PAYLOADS),
    suffix=st.text(_ALPHABET, max_size=12),
)
def test_fuzzed_text_never_runs(tmp_path_factory, field, prefix, payload, suffix):
    folder = tmp_path_factory.mktemp("fuzz")
    marker = folder / "marker"
    text = prefix + payload.format(code=code(marker)) + suffix
    if field == "documentation":
        entries = [entry("Foo = 1", doc=text)]
    elif field == "units":
        entries = [entry("Foo = 1", units=text)]
    elif field == "name":
        entries = [entry(f'"Foo {text}" = 1'), entry(f'Bar = "Foo {text}" + 1')]
    elif field == "data name":
        entries = [entry(f'"Foo {text}" :INTERPOLATE:'), entry(f'Bar = "Foo {text}"')]
    else:
        entries = [entry(f'"Dim {text}": (e1-e2)'), entry(f'Foo["Dim {text}"] = 1')]
    path = write_model(folder / "m.mdl", *entries)
    out = folder / "out.csv"
    status = main(["run", "--model", str(path), "--all", "--engine", "pysd", "-o", str(out)])
    assert not marker.exists(), path.read_text(encoding="utf-8")
    assert status in (0, 2)
    assert out.exists() == (status == 0)
