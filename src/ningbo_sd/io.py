"""Plumbing every layer shares: user errors, atomic writes, the safe YAML reader, numbers.

One of each, here, so that the CLI, the app, the calibration and the Monte Carlo behave alike.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

__all__ = [
    "USER_ERRORS",
    "AtomicOutput",
    "UserError",
    "atomic_write",
    "check_output",
    "excerpt",
    "format_number",
    "not_utf8",
    "plain_decimal",
    "read_yaml",
    "read_yaml_file",
    "write_text_atomically",
]

#: The largest YAML text read (scenario files and uploads are a few kB).
MAX_YAML_BYTES = 1_000_000
#: The deepest nesting of mappings and lists a YAML document may have.
MAX_YAML_DEPTH = 20
#: The most values (keys, scalars, mappings, lists) a YAML document may hold once its aliases
#: (``*name``) are expanded: the largest registry holds about 500; an alias bomb ("billion
#: laughs") holds billions in a few hundred bytes.
MAX_YAML_VALUES = 100_000
#: The most characters of a bad value quoted back in an error line.
EXCERPT_CHARS = 60


class UserError(ValueError):
    """Bad input from a user: reported as one line naming the file, the field, the value and
    what is allowed, never as a traceback (the CLI exits 2, the app shows a message)."""


#: What the CLI and the app report as one line instead of a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (UserError, ValueError, KeyError, OSError)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line excerpt of a value for an error line."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ---------------------------------------------------------------- atomic writes


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _output_target(path: str | Path) -> tuple[Path, int | None]:
    """The file an output path writes (a link's target) and the mode of the file it replaces."""
    if str(path) in ("", "."):
        raise UserError("output path is empty: name a file")
    path = Path(path)
    try:
        target = path.resolve() if path.is_symlink() else path
    except (OSError, RuntimeError):  # a loop of links (RuntimeError before Python 3.13)
        raise UserError(f"{path}: a symbolic link that loops; name a file") from None
    mode = None
    try:
        info = target.stat()
    except (FileNotFoundError, NotADirectoryError):  # no such file (or its folder is a file)
        info = None
    except OSError as exc:
        raise UserError(f"{path}: cannot check the output: {exc.strerror or exc}") from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise UserError(f"{path}: is a folder; name a file to write")
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path}: not a regular file (a FIFO or a device); name a file")
        mode = stat.S_IMODE(info.st_mode)
    if not target.parent.is_dir():
        if target.parent.exists():
            raise UserError(
                f"{path}: {target.parent} is a file, not a folder; name a file in a folder"
            )
        raise UserError(f"{path}: folder {target.parent} does not exist")
    return target, mode


def check_output(path: str | Path) -> Path:
    """Check, before any work, that :class:`AtomicOutput` can write ``path``.

    Parameters
    ----------
    path : str or Path
        Destination.

    Returns
    -------
    Path
        The file that will be written (a symbolic link's target).

    Raises
    ------
    UserError
        If the destination is a folder, a FIFO or a device, or its folder does not exist.
    """
    return _output_target(path)[0]


class AtomicOutput:
    """A file being written: a temporary sibling of ``path``, renamed into place on commit.

    A reader never sees a half-written file and a failed or aborted write leaves the old
    file as it was. The destination's folder must exist (a mistyped folder is reported, not
    created). The new file gets the mode of the file it replaces, else what a plain ``open``
    gives (``0o666`` less the umask). A symbolic link is written through (its target is
    replaced); a folder, a FIFO or a device is refused, never replaced.

    Parameters
    ----------
    path : str or Path
        Destination.

    Raises
    ------
    UserError
        If the destination is not a regular file, its folder does not exist or is not
        writable.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        target, mode = _output_target(path)
        self.mode = _default_mode() if mode is None else mode
        try:
            handle, temporary = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
        except PermissionError:
            raise UserError(
                f"{path}: folder {target.parent} is not writable (permission denied)"
            ) from None
        except OSError as exc:
            raise UserError(
                f"{path}: cannot write in folder {target.parent}: {exc.strerror or exc}"
            ) from None
        try:
            os.close(handle)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self.target = target
        self.temporary = Path(temporary)

    def commit(self) -> Path:
        """Give the file its mode and rename it into place; returns the destination.

        If either step fails (or is interrupted) the temporary file is deleted and the old
        destination stays as it was.
        """
        try:
            os.chmod(self.temporary, self.mode)
            os.replace(self.temporary, self.target)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Delete the temporary file; the destination is untouched."""
        self.temporary.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through :class:`AtomicOutput`: ``write`` fills the temporary file.

    Parameters
    ----------
    path : str or Path
        Destination.
    write : callable
        Called with the temporary path; must write the whole content there.

    Returns
    -------
    Path
        The destination.

    Raises
    ------
    UserError
        If the destination is not a regular file, its folder does not exist or is not
        writable, or writing fails (a full disk).
    """
    output = AtomicOutput(path)
    try:
        write(output.temporary)
    except OSError as exc:
        output.abort()
        raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        output.abort()
        raise
    return output.commit()


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write a UTF-8 text file atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------- YAML

_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_FastLoader):
    """A safe YAML loader (libyaml where installed) that refuses a key written twice."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep=False):
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # ``<<: *anchor`` merges; explicit keys may override merged ones
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice in one mapping (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _depth(data, limit: int) -> int:
    """Nesting depth of plain data, stopping past ``limit`` (aliases are visited once)."""
    stack, seen, deepest = [(data, 1)], set(), 0
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list) or id(item) in seen:
            continue
        seen.add(id(item))
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest


def not_utf8(data: bytes) -> str | None:
    """Why bytes are not UTF-8 text, for an error line (None when they are).

    Returns
    -------
    str or None
        E.g. ``not a UTF-8 text file (byte 0xe9 on line 3)``: the first bad byte and its
        line, never the content.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"not a UTF-8 text file (byte 0x{data[exc.start]:02x} on line {line})"
    return None


def _values(data, limit: int) -> tuple[int, int]:
    """Values in plain data with its aliases expanded, and as written (both stop past ``limit``).

    A mapping or list reached twice (a YAML alias) counts each time it is reached, as any
    code that copies or walks the data would expand it; sizes are memoised per object, so
    an alias bomb is measured without being expanded. Nesting is already bounded.
    """
    sizes: dict[int, int] = {}
    written = 0

    def size(item) -> int:
        nonlocal written
        known = sizes.get(id(item)) if isinstance(item, dict | list) else None
        if known is not None:  # an alias of a mapping or list already counted
            return known
        written = min(written + 1, limit + 1)
        if not isinstance(item, dict | list):
            return 1
        total = 1
        children = [v for pair in item.items() for v in pair] if isinstance(item, dict) else item
        for child in children:
            total = min(total + size(child), limit + 1)
        sizes[id(item)] = total
        return total

    return size(data), written


def read_yaml(text: str | bytes, source: str, max_bytes: int = MAX_YAML_BYTES):
    """Parse YAML text safely: no tags that build objects, unique keys, bounded size and depth.

    Parameters
    ----------
    text : str or bytes
        The document (bytes must be UTF-8).
    source : str
        Where it came from (a file name), for error lines.
    max_bytes : int
        The largest document accepted.

    Returns
    -------
    object
        Plain data: dicts, lists, strings, numbers, booleans, None.

    Raises
    ------
    UserError
        One line naming ``source``: too large, not UTF-8, malformed (with line and column),
        a key written twice, nested too deeply, or too many values once its aliases are
        expanded (an alias bomb). Never the document's content.
    """
    size = len(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    if size > max_bytes:
        raise UserError(f"{source}: {size:,} bytes; a YAML file here is at most {max_bytes:,}")
    if isinstance(text, bytes):
        problem = not_utf8(text)
        if problem:
            raise UserError(f"{source}: {problem}; save it as UTF-8")
        text = text.decode("utf-8")
    if "\x00" in text:
        raise UserError(f"{source}: not a UTF-8 text file (it holds NUL bytes)")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = excerpt(getattr(exc, "problem", None) or type(exc).__name__, 120)
        raise UserError(f"{source}: malformed YAML{at}: {problem}") from None
    except RecursionError:
        raise UserError(f"{source}: nested too deeply (at most {MAX_YAML_DEPTH} levels)") from None
    if _depth(data, MAX_YAML_DEPTH) > MAX_YAML_DEPTH:
        raise UserError(f"{source}: nested too deeply (at most {MAX_YAML_DEPTH} levels)")
    expanded, distinct = _values(data, MAX_YAML_VALUES)
    if expanded > MAX_YAML_VALUES:
        if distinct < expanded:
            raise UserError(
                f"{source}: its aliases (*name) expand to more than {MAX_YAML_VALUES:,} values; "
                f"a YAML file here holds at most {MAX_YAML_VALUES:,} (write the values out)"
            )
        raise UserError(
            f"{source}: more than {MAX_YAML_VALUES:,} values; "
            f"a YAML file here holds at most {MAX_YAML_VALUES:,}"
        )
    return data


def read_yaml_file(path: str | Path, max_bytes: int = MAX_YAML_BYTES):
    """Read a YAML file with :func:`read_yaml`; a missing or unreadable file is a UserError."""
    path = Path(path)
    try:
        if path.is_dir():
            raise UserError(f"{path}: is a folder; expected a YAML file")
        size = path.stat().st_size
        if size > max_bytes:
            raise UserError(f"{path}: {size:,} bytes; a YAML file here is at most {max_bytes:,}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except PermissionError:
        raise UserError(f"{path}: not readable (permission denied)") from None
    return read_yaml(data, str(path), max_bytes)


# ---------------------------------------------------------------- numbers


def format_number(value) -> str:
    """A compact display of a number: thousands separators from 1,000, else 4 digits.

    ``None`` and NaN show as ``-``; text is returned as it is.
    """
    if value is None or isinstance(value, str):
        return "-" if value is None else value
    value = float(value)
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4g}"


def plain_decimal(value: float) -> str:
    """Shortest plain decimal for a number (``30000.0`` -> ``"30000"``, ``2.5`` -> ``"2.5"``)."""
    if not math.isfinite(value):
        raise ValueError(f"not finite: {value}")
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
