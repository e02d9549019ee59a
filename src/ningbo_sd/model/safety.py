"""Refuse model files whose text PySD would turn into code.

PySD 3.14 does not treat a model file as data only (``docs/security.md``):

- its Python builder writes a variable's documentation verbatim into a ``\"\"\"`` docstring
  of the generated module, and some names (data variables, subscript ranges, macros and
  their parameters, calls of unknown functions) and the strings of ``GET ...`` functions
  verbatim between single quotes; the module is then imported;
- its Vensim parser passes the text between ``[`` and ``]`` of a lookup's range to ``eval``.

So a crafted ``.mdl`` runs code under ``ningbo-sd run --model FILE --engine pysd``, and the
second point also under the batch engine, which reads models through PySD's parser.
:func:`check_model_text` reads the file *before* any of its text reaches PySD or the
project's compiler, splits it the way PySD's grammar does (sections, entries
``equation ~ units ~ documentation |``; the sketch after ``\\\\\\---///`` is ignored) and
refuses, with one line naming the file, the variable and the field, anything that could
end a Python string literal, comment or expression in generated source or reach ``eval``:

- bytes that are not text: NUL bytes, an encoding other than UTF-8/ASCII/Latin-1/
  Windows-1252, bytes the declared encoding cannot decode (PySD would silently drop them,
  which can join two quotes into three);
- control characters other than tab and line breaks, and bidirectional-override characters;
- ``\"\"\"`` or ``'''`` anywhere; a backslash before ``'`` anywhere (it would escape the
  closing quote of a string PySD writes); a backslash before ``"`` in documentation or
  units;
- a line break or a quote inside a units field;
- a lookup range ``[...]`` with parentheses that is not a list of number pairs;
- a name containing ``'`` or a backslash where PySD writes names verbatim: a name followed
  by ``(``, a name inside ``[...]``, any name of a subscript, data or other ``:``
  definition, any name of a macro's header.

Nothing is "neutralised": a refused file is not read at all. Legal Vensim that passes
includes quoted names with ``'``, ``\\"`` and backslashes used as plain variables (PySD
writes those with ``repr``) and documentation wrapped with Vensim's ``\\`` line
continuation; the SDXorg test suite and the Ningbo model pass
(``tests/test_model_safety.py``).
"""

from __future__ import annotations

import codecs
import contextlib
import re
import unicodedata
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ningbo_sd.io import UserError

__all__ = ["ENCODINGS", "Entry", "ModelFileError", "check_model_text", "model_entries"]


class ModelFileError(UserError):
    """A model file is missing, cannot be parsed or is refused as unsafe.

    Re-exported as :class:`ningbo_sd.model.metadata.ModelFileError`.
    """


#: Encodings a model file may declare (codec names as :func:`codecs.lookup` spells them).
ENCODINGS = ("utf-8", "utf-8-sig", "ascii", "iso8859-1", "cp1252")
#: Where PySD cuts the sketch off the equations (its ``VensimFile._split_sketch``).
SKETCH_MARK = "\\\\\\---///"
#: Characters that reorder text on screen (CVE-2021-42574, "Trojan source").
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: The most characters of a name or a value quoted in a refusal.
EXCERPT = 60

# PySD's grammars (pysd/translators/vensim/parsing_grammars): ``_`` is whitespace or a
# backslash; a basic name starts with a word character and goes on with word characters,
# ``'``, ``$`` and whitespace; a number is a signed decimal.
_WS = r"[\s\\]*"
_NUMBER = r"[+-]?[\s\\]*(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_POINT = rf"\({_WS}{_NUMBER}{_WS},{_WS}{_NUMBER}{_WS}\)"
#: A lookup range PySD may ``eval``: ``(x0,y0)-(x1,y1)`` and optional reference points.
LOOKUP_RANGE = re.compile(rf"{_WS}{_POINT}{_WS}-{_WS}{_POINT}(?:{_WS},{_WS}{_POINT})*{_WS}")
_BASIC_ID = re.compile(r"\w[\w'$\s]*")
_MACRO_HEAD = re.compile(r":MACRO:[\s\\]*")
_END_MACRO = ":END OF MACRO:"
_CLEAN = re.compile(r"(?:\\\n\t|\s)+")


@dataclass(frozen=True)
class _Text:
    """A piece of the cleaned model text, with each character's index in the raw text."""

    text: str
    pos: tuple[int, ...]

    def __getitem__(self, key: slice) -> _Text:
        return _Text(self.text[key], self.pos[key])

    def __add__(self, other: _Text) -> _Text:
        return _Text(self.text + other.text, self.pos + other.pos)

    def strip(self) -> _Text:
        start = len(self.text) - len(self.text.lstrip())
        return self[start : start + len(self.text.strip())]

    def raw(self, raw: str) -> str:
        """The raw text this piece was cleaned from (line breaks and all)."""
        return raw[self.pos[0] : self.pos[-1] + 1] if self.pos else ""


@dataclass(frozen=True)
class Entry:
    """One model entry as PySD's section grammar splits it (texts cleaned and stripped).

    Attributes
    ----------
    section : str
        ``"__main__"`` or the name of the macro it belongs to.
    equation, units, documentation, extra : str
        The fields of ``equation ~ units ~ documentation [~ extra] |``; PySD reads the
        first three (``extra`` is a flag such as ``:SUPPLEMENTARY``).
    """

    section: str
    equation: str
    units: str
    documentation: str
    extra: str


@dataclass(frozen=True)
class _Entry:
    section: str
    fields: tuple[_Text, ...]  # equation, units, documentation[, extra]; stripped


# ------------------------------------------------------------------------- bytes to text


def _line(data: bytes | str, index: int) -> int:
    return data.count(b"\n" if isinstance(data, bytes) else "\n", 0, index) + 1


def _declared_encoding(path: Path, data: bytes) -> str:
    """The encoding PySD reads the file with (``vensim_utils._detect_encoding_from_file``)."""
    first = data.split(b"\n", 1)[0] + (b"\n" if b"\n" in data else b"")
    try:
        if first.isascii():
            line = first.decode("ascii")
        else:  # what PySD does, so that both read the same declaration
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from chardet import detect

                line = first.decode(detect(first)["encoding"])
        return re.search(r"(?<={)(.*)(?=})", line).group()
    except (AttributeError, UnicodeDecodeError):
        return "UTF-8"  # PySD's default, with a warning
    except (ImportError, TypeError, LookupError):
        raise ModelFileError(
            f"{path}: cannot tell the encoding of the first line; start the file with {{UTF-8}}"
        ) from None


@contextlib.contextmanager
def model_file_opened(path: Path):
    """Turn a missing model file, or a folder given as one, into a one-line ModelFileError."""
    try:
        yield
    except FileNotFoundError:
        raise ModelFileError(
            f"{path}: model file not found (expected a Vensim .mdl file)"
        ) from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder (expected a Vensim .mdl file)") from None


def _read_text(path: Path) -> str:
    """The file's text as PySD reads it, or a refusal if it is not plain text."""
    with model_file_opened(path):
        data = path.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ModelFileError(
            f"{path}: line {_line(data, nul)}: contains a NUL byte (a binary file, not a "
            "Vensim text model); refused"
        )
    declared = _declared_encoding(path, data)
    try:
        codec = codecs.lookup(declared).name
    except LookupError:
        codec = None
    if codec not in ENCODINGS:
        raise ModelFileError(
            f"{path}: declares the encoding '{_show(declared)}'; only UTF-8 or Latin-1 "
            "(ISO-8859-1, Windows-1252) model files are read; save it as {UTF-8}"
        )
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise ModelFileError(
            f"{path}: line {_line(data, exc.start)}: byte 0x{data[exc.start]:02x} is not valid "
            f"{declared} text (PySD would drop it silently); save the file as {{UTF-8}}"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as open() reads it


# --------------------------------------------------------------- PySD's split of the text


def _clean(raw: str) -> _Text:
    """PySD's ``VensimFile._clean``: continuations and whitespace runs become one space."""
    text: list[str] = []
    pos: list[int] = []
    last = 0
    for match in _CLEAN.finditer(raw):
        text.append(raw[last : match.start()])
        pos.extend(range(last, match.start()))
        text.append(" ")
        pos.append(match.start())
        last = match.end()
    text.append(raw[last:])
    pos.extend(range(last, len(raw)))
    return _Text("".join(text), tuple(pos))


def _group_end(text: str, start: int) -> int | None:
    """End of the quoted name starting at ``start`` (PySD's ``escape_group``), or None."""
    i = start + 1
    while i < len(text):
        if text.startswith('\\"', i):
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return None


def _name_end(text: str, start: int) -> int | None:
    """End of the name (quoted or basic) starting at ``start``, or None."""
    if start < len(text) and text[start] == '"':
        return _group_end(text, start)
    match = _BASIC_ID.match(text, start)
    return match.end() if match else None


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and (text[i].isspace() or text[i] == "\\"):
        i += 1
    return i


def _macro_header(text: str, i: int) -> tuple[str, int] | None:
    """Name and end of a ``:MACRO: name(inputs : outputs)`` header at ``i``, or None."""
    match = _MACRO_HEAD.match(text, i)
    if not match:
        return None
    end = _name_end(text, match.end())
    if end is None:
        return None
    name = text[match.end() : end].strip().lower().replace(" ", "_")
    close = _skip_ws(text, end)
    if close >= len(text) or text[close] != "(":
        return None
    j = close + 1
    while j < len(text) and text[j] != ")":  # names, commas, a colon, whitespace
        stop = _name_end(text, j) if text[j] == '"' or text[j].isalnum() else None
        j = stop if stop else j + 1
    return (name, j + 1) if j < len(text) else None


def _sections(model: _Text) -> list[tuple[str, _Text, _Text | None]]:
    """PySD's file grammar: the main section (its parts joined) and each macro.

    Returns ``(name, content, header)`` triples; ``header`` is a macro's header text.
    """
    text = model.text
    i = 0
    encoding = re.match(r"\{[^}]*\}", text)
    if encoding:
        i = encoding.end()
    main: _Text | None = None
    macros: list[tuple[str, _Text, _Text | None]] = []
    i = _skip_ws(text, i)
    while i < len(text):
        header = _macro_header(text, i) if text.startswith(":MACRO:", i) else None
        end_macro = text.find(_END_MACRO, header[1] + 1) if header else -1
        if header and end_macro >= 0:
            macros.append((header[0], model[header[1] : end_macro].strip(), model[i : header[1]]))
            i = end_macro + len(_END_MACRO)
        else:
            # main text runs to the last ":MACRO:" (greedy), else to the end; a header PySD
            # cannot read fails its parse, and is checked here as main text
            last = text.rfind(":MACRO:")
            stop = last if last > i else len(text)
            part = model[i:stop].strip()
            main = part if main is None else main + part
            i = stop
        i = _skip_ws(text, i)
    return [("__main__", main or _Text("", ()), None), *macros]


def _element_end(text: str, i: int) -> int:
    """End of an element: quoted names (which may hold ``~`` and ``|``) or other text."""
    while i < len(text):
        if text[i] == '"':
            end = _group_end(text, i)
            i = end if end is not None else i + 1
        elif text[i] in "~|":
            return i
        else:
            i += 1
    return i


def _entries(section: str, content: _Text) -> list[_Entry]:
    """PySD's section grammar: ``(entry / group)+`` then anything (read as a sketch)."""
    text = content.text
    entries: list[_Entry] = []
    i = 0
    while i < len(text):
        a = _element_end(text, i)
        if a >= len(text) or text[a] != "~":
            break
        b = _element_end(text, a + 1)
        if b >= len(text):
            break
        if text[b] == "|":  # a group ("section"): equation ~ comment |, ignored by PySD
            i = b + 1
            continue
        c = b + 1
        while c < len(text) and text[c] not in "~|":
            c += 1
        fields = [content[i:a], content[a + 1 : b], content[b + 1 : c]]
        if c < len(text) and text[c] == "~":
            d = _element_end(text, c + 1)
            fields.append(content[c + 1 : d])
            c = d
        if c >= len(text) or text[c] != "|":
            break  # PySD cannot read the entry: the rest is taken as sketch
        entries.append(_Entry(section, tuple(field.strip() for field in fields)))
        i = c + 1
    return entries


def _split(raw: str) -> list[tuple[str, _Text, _Text | None]]:
    """The sections of the model text (the sketch cut off, the rest cleaned as PySD does)."""
    return _sections(_clean(raw.split(SKETCH_MARK, 1)[0]))


def model_entries(path: str | Path) -> list[Entry]:
    """Split a Vensim file into entries the way PySD's grammar does (nothing is parsed).

    Parameters
    ----------
    path : str or Path
        The ``.mdl`` file.

    Returns
    -------
    list of Entry
        Every entry PySD reads, in file order (macros after the main section).

    Raises
    ------
    ModelFileError
        If the file is missing or not text in an accepted encoding.
    """
    sections = _split(_read_text(Path(path)))
    found = []
    for name, content, _header in sections:
        for entry in _entries(name, content):
            texts = [field.text for field in entry.fields] + [""]
            found.append(Entry(name, *texts[:4]))
    return found


# ------------------------------------------------------------------------------ checks


def _show(text: str) -> str:
    """A name or value for an error line: one line, short, control characters escaped."""
    line = "".join(
        ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in " ".join(text.split())
    )
    return line if len(line) <= EXCERPT else line[: EXCERPT - 1] + "…"


def _lhs(equation: str) -> str:
    """The name an equation defines (its first name), for error lines."""
    end = _name_end(equation, 0)
    return equation[:end].strip() if end else equation.split("=", 1)[0].strip()


def _names(text: str):
    """Yield ``(name, start, end, in_brackets)`` for every name in an element's text."""
    i = 0
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            end = _group_end(text, i)
            if end is not None:
                yield text[i + 1 : end - 1], i, end, depth > 0
                i = end
                continue
        elif ch == "'" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_'$")):
            close = text.find("'", i + 1)  # a string: '[^']*'
            if close >= 0:
                i = close + 1
                continue
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        else:
            match = _BASIC_ID.match(text, i)
            if match:
                yield match.group().strip(), i, match.end(), depth > 0
                i = match.end()
                continue
        i += 1


def _verbatim_name(equation: str, whole: bool) -> str | None:
    """A name with ``'`` or a backslash where PySD writes names verbatim, or None."""
    lhs_end = _name_end(equation, 0)
    colon = False
    if lhs_end is not None:  # "name[subs] :..." or "name <-> ..." defines a subscript or data
        j = _skip_ws(equation, lhs_end)
        if j < len(equation) and equation[j] == "[":  # the subscripts, quoted names and all
            j += 1
            while j < len(equation) and equation[j] != "]":
                end = _group_end(equation, j) if equation[j] == '"' else None
                j = end if end is not None else j + 1
            j = _skip_ws(equation, j + 1)
        colon = equation.startswith((":", "<->"), j)
    for name, _start, end, in_brackets in _names(equation):
        if "'" not in name and "\\" not in name:
            continue
        j = _skip_ws(equation, end)
        if whole or colon or in_brackets or (j < len(equation) and equation[j] == "("):
            return name
    return None


def _bad_range(text: str) -> str | None:
    """A ``[...]`` with parentheses that is not a lookup range of numbers, or None."""
    start = text.find("[")
    while start >= 0:
        close = text.find("]", start + 1)
        inside = text[start + 1 : close if close >= 0 else len(text)]
        if "(" in inside and not LOOKUP_RANGE.fullmatch(inside):
            return inside
        start = text.find("[", start + 1)
    return None


_FIELDS = ("equation", "units", "documentation", "extra field")
_WHY_STRING = "could end a Python string in PySD's generated code"


def _check_characters(raw: str) -> tuple[int, str] | None:
    """Where and what is wrong with the characters of the model text, or None."""
    for index, ch in enumerate(raw):
        if (unicodedata.category(ch) == "Cc" and ch not in "\t\n") or ch in BIDI:
            kind = "a bidirectional-override" if ch in BIDI else "a control"
            return index, f"contains {kind} character U+{ord(ch):04X}; remove it"
    for quotes in ('"""', "'''"):
        index = raw.find(quotes)
        if index >= 0:
            return index, f"contains {quotes!r} ({_WHY_STRING}); remove it"
    index = raw.find("\\'")
    if index >= 0:
        return index, f"contains a backslash before ' ({_WHY_STRING}); remove the backslash"
    return None


def _check_entry(raw: str, entry: _Entry) -> str | None:
    """What is wrong with one entry's fields (field first), or None."""
    for number, field in enumerate(entry.fields):
        name = _FIELDS[number]
        original = field.raw(raw)
        if number in (1, 2) and '\\"' in original:
            return f'{name} contains a backslash before " ({_WHY_STRING}); remove the backslash'
        if number == 1 and ("'" in original or '"' in original):
            return f"{name} contains a quote ({_WHY_STRING}); remove it"
        if number == 1 and "\n" in original:
            return f"{name} contains a line break (could end a Python comment); join the lines"
        if number in (1, 2):
            continue  # PySD writes units with repr and reads their range with float()
        inside = _bad_range(field.text)
        if inside is not None:
            return (
                f"{name} contains the lookup range [{_show(inside)}] that is not number pairs "
                "(PySD's parser evaluates it as Python); write [(x0,y0)-(x1,y1)]"
            )
        bad = _verbatim_name(field.text, whole=False)
        if bad is not None:
            return (
                f"{name} uses the name '{_show(bad)}' with a quote or backslash where PySD "
                f"writes names verbatim ({_WHY_STRING}); rename it"
            )
    return None


def _where(raw: str, entries: list[_Entry], index: int) -> str:
    for entry in entries:
        for number, field in enumerate(entry.fields):
            if field.pos and field.pos[0] <= index <= field.pos[-1]:
                return f"variable '{_show(_lhs(entry.fields[0].text))}': {_FIELDS[number]}"
    return f"line {_line(raw, index)}"


def _check(path: Path) -> None:
    raw = _read_text(path)
    sections = _split(raw)
    entries = [entry for name, content, _ in sections for entry in _entries(name, content)]
    refusal = _check_characters(raw.split(SKETCH_MARK, 1)[0])
    if refusal is not None:
        index, what = refusal
        raise ModelFileError(f"{path}: {_where(raw, entries, index)} {what}")
    for name, _content, header in sections:
        if header is None:
            continue
        bad = _verbatim_name(header.text, whole=True)
        if bad is not None:
            raise ModelFileError(
                f"{path}: macro '{_show(name)}': header uses the name '{_show(bad)}' with a "
                f"quote or backslash ({_WHY_STRING}); rename it"
            )
    for entry in entries:
        problem = _check_entry(raw, entry)
        if problem is not None:
            variable = _show(_lhs(entry.fields[0].text))
            raise ModelFileError(f"{path}: variable '{variable}': {problem}")


@lru_cache(maxsize=64)
def _checked(path: str, stamp: tuple[int, int, int]) -> None:
    _check(Path(path))


def check_model_text(path: str | Path) -> None:
    """Refuse a Vensim file whose text could run as code in PySD (see the module's notes).

    Call it before the file reaches PySD's translator or the project's compiler. A file
    that passes is remembered (by path, size, inode and modification time), so repeated
    calls cost a ``stat``.

    Parameters
    ----------
    path : str or Path
        The ``.mdl`` file.

    Raises
    ------
    ModelFileError
        One line naming the file, the variable and the field, and what to change.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        stat = None
    if stat is None:
        _check(path)  # reports the missing file
        return
    _checked(str(path), (stat.st_size, stat.st_ino, stat.st_mtime_ns))
