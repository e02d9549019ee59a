"""Read variable metadata (units, limits, documentation, defaults) from a Vensim file.

The `.mdl` file is the single source of truth: every lever's range, default, unit
and documentation line is read from it through PySD's parser, never copied by hand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ningbo_sd.model.safety import ModelFileError, check_model_text, model_file_opened
from ningbo_sd.resources import model_file

MODEL_PATH = model_file()


@dataclass(frozen=True)
class VariableMeta:
    """Metadata of one model variable, as written in the `.mdl` file.

    Attributes
    ----------
    name : str
        The Vensim name.
    units : str
        The units text.
    low, high : float or None
        The declared range ``[low, high]`` (None where open).
    documentation : str
        The documentation line.
    subscripts : tuple of str
        Subscript ranges the variable is defined over.
    default : float, numpy.ndarray or None
        The value for a constant (an array over the subscript for a subscripted
        constant); None for anything computed.
    """

    name: str
    units: str
    low: float | None
    high: float | None
    documentation: str
    subscripts: tuple[str, ...]
    default: float | np.ndarray | None


@dataclass(frozen=True)
class ModelMeta:
    """Metadata of a whole model: variables by name and subscript ranges."""

    path: Path
    variables: dict[str, VariableMeta]
    subscripts: dict[str, tuple[str, ...]]

    def __getitem__(self, name: str) -> VariableMeta:
        try:
            return self.variables[name]
        except KeyError:
            raise KeyError(f"{self.path.name}: no variable named {name!r}") from None


def _constant_value(component) -> float | np.ndarray | None:
    ast = component.ast
    if isinstance(ast, bool):
        return None
    if isinstance(ast, int | float):
        return float(ast)
    if isinstance(ast, np.ndarray) and ast.dtype.kind in "fiu":
        return ast.astype(float)
    return None


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a model file's bytes.

    Raises
    ------
    ModelFileError
        If the file is missing or a folder.
    """
    from ningbo_sd.engine.loading import file_digest as digest  # the engine's cache key

    path = Path(path)
    with model_file_opened(path):
        return digest(path)


def module_salt(module_file: str) -> bytes:
    """A parse product's builder version: the SHA-256 of the module that builds it."""
    return hashlib.sha256(Path(module_file).read_bytes()).digest()


def parse_product(path: str | Path, kind: str, build, module_file: str):
    """A product of the model file's one parse (metadata, structure), cached on disk.

    Keyed by the file's content, the engine's compiler version and the builder module's
    source (:func:`ningbo_sd.engine.loading.cached_product`); a warm process never calls
    PySD's parser.

    Raises
    ------
    ModelFileError
        If the file is missing or PySD cannot parse it.
    """
    from ningbo_sd.engine.loading import cached_product

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found (expected a Vensim .mdl file)")
    check_model_text(path)  # before PySD's parser sees any of it (docs/security.md)
    try:
        return cached_product(path, kind, build, salt=module_salt(module_file))
    except Exception as exc:  # PySD raises many kinds of parse errors
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: cannot parse the Vensim model: {first_line}") from exc


def _build_metadata(abstract, path: Path) -> tuple[dict, dict]:
    section = abstract.sections[0]
    subscripts = {rng.name: tuple(rng.subscripts) for rng in section.subscripts}
    variables: dict[str, VariableMeta] = {}
    for element in section.elements:
        component = element.components[0]
        limits = (*tuple(element.limits or ()), None, None)
        default = None
        if len(element.components) == 1 and type(component).__name__ == "AbstractComponent":
            default = _constant_value(component)
        variables[element.name] = VariableMeta(
            name=element.name,
            units=element.units or "",
            low=None if limits[0] is None else float(limits[0]),
            high=None if limits[1] is None else float(limits[1]),
            documentation=(element.documentation or "").strip(),
            subscripts=tuple(component.subscripts[0]),
            default=default,
        )
    return variables, subscripts


@lru_cache(maxsize=8)
def _metadata(path: str, digest: str) -> ModelMeta:
    variables, subscripts = parse_product(path, "metadata", _build_metadata, __file__)
    return ModelMeta(path=Path(path), variables=variables, subscripts=subscripts)


def read_metadata(path: str | Path = MODEL_PATH) -> ModelMeta:
    """Read a Vensim file's variables' metadata (one parse per content, cached on disk).

    Parameters
    ----------
    path : str or Path
        The `.mdl` file; defaults to the Ningbo model.

    Returns
    -------
    ModelMeta

    Raises
    ------
    ModelFileError
        If the file is missing or PySD cannot parse it.
    """
    return _metadata(str(path), file_digest(path))
