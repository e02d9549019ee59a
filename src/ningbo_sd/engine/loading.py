"""Load a model file: PySD's parse once per content, and on-disk caches of what is built from it.

The IR (:func:`load_ir`) and any other product of a parse (:func:`cached_product`: the
metadata, the structure) are keyed by the SHA-256 of the file's bytes, of the compiler's own
sources (:func:`compiler_version`) and of PySD's and Python's versions, so editing the model
or the engine invalidates them; entries are written atomically beside the compiled kernels
(:func:`cache_dir`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path

from .compiler import build_ir
from .ir import ModelIR

__all__ = [
    "cache_dir",
    "cached_product",
    "compiler_version",
    "file_digest",
    "load_abstract_model",
    "load_ir",
]


#: Parsed models of this process, by the SHA-256 of the file's bytes (one parse per content).
_ABSTRACT_MODELS: dict[str, object] = {}
_ABSTRACT_MODELS_KEPT = 4


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes: what every parse product is keyed by."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_abstract_model(path: str | Path):
    """Parse a Vensim ``.mdl`` file with PySD's translator, once per content per process.

    Parameters
    ----------
    path : str or Path
        The model file.

    Returns
    -------
    pysd.translators.structures.abstract_model.AbstractModel
        Shared between callers: treat it as read-only.
    """
    import warnings

    digest = file_digest(path)
    if digest in _ABSTRACT_MODELS:
        return _ABSTRACT_MODELS[digest]
    from pysd.translators.vensim.vensim_file import VensimFile

    with warnings.catch_warnings():
        # PySD's parser warns about odd-but-valid text (e.g. unmatched quotes)
        warnings.simplefilter("ignore", UserWarning)
        vf = VensimFile(str(path))
        vf.parse()
        model = vf.get_abstract_model()
    while len(_ABSTRACT_MODELS) >= _ABSTRACT_MODELS_KEPT:
        _ABSTRACT_MODELS.pop(next(iter(_ABSTRACT_MODELS)))
    _ABSTRACT_MODELS[digest] = model
    return model


def cache_dir() -> Path:
    """Directory of cached IR and kernels (``NINGBO_SD_ENGINE_CACHE`` overrides).

    Defaults to ``~/.cache/ningbo-sd/engine``; falls back to a folder in the
    system's temporary directory when that is not writable.
    """
    env = os.environ.get("NINGBO_SD_ENGINE_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "ningbo-sd" / "engine"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe.{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        path = Path(tempfile.gettempdir()) / "ningbo-sd-engine"
        path.mkdir(parents=True, exist_ok=True)
    return path


def compiler_version() -> str:
    """Hash of the compiler's own sources, PySD's version and Python's: part of every key."""
    from importlib.metadata import version

    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("compiler.py", "ir.py", "statefuls.py", "subscripts.py", "toposort.py"):
        h.update((here / name).read_bytes())
    h.update(version("pysd").encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:32]


#: A product's on-disk entries are read only if they hold this type (by kind).
_PRODUCT_TYPES: dict[str, type] = {"ir": ModelIR}


def cached_product(path: str | Path, kind: str, build, salt: bytes = b"", cache=None):
    """Something derived from a model file's parse, from the on-disk cache when unchanged.

    The entry is keyed by the file's bytes, :func:`compiler_version`, ``kind`` and
    ``salt`` (the builder's own version, e.g. the hash of its source), and lives beside
    the compiled kernels. A hit never calls PySD's parser; a miss parses once per content
    per process (:func:`load_abstract_model`), builds, and writes the entry atomically.

    Parameters
    ----------
    path : str or Path
        The model file.
    kind : str
        A short name of the product (``ir``, ``metadata``, ``structure``...).
    build : callable
        ``build(abstract_model, path)`` returns the product (picklable).
    salt : bytes
        Anything else the product depends on.
    cache : Path, optional
        Cache directory (default :func:`cache_dir`).

    Returns
    -------
    object
        The product.
    """
    path = Path(path)
    data = path.read_bytes()
    h = hashlib.sha256(data)
    h.update(compiler_version().encode())
    h.update(kind.encode())
    h.update(salt)
    entry = (cache or cache_dir()) / f"{kind}_{h.hexdigest()[:32]}.pickle"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))  # deep expression trees
    try:
        if entry.is_file():
            try:
                with entry.open("rb") as fh:
                    product = pickle.load(fh)
                expected = _PRODUCT_TYPES.get(kind)
                if expected is None or isinstance(product, expected):
                    return product
            except (
                OSError,
                EOFError,
                ValueError,
                pickle.UnpicklingError,
                AttributeError,
                ImportError,
                TypeError,
            ):
                pass  # unreadable entry: rebuild and overwrite it
        product = build(load_abstract_model(path), path)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as fh:
                pickle.dump(product, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, entry)
        except OSError:
            tmp.unlink(missing_ok=True)  # read-only cache: just do not cache
        return product
    finally:
        sys.setrecursionlimit(limit)


def load_ir(path: str | Path, cache: Path | None = None) -> ModelIR:
    """The IR of a ``.mdl`` file, from the on-disk cache when unchanged.

    The cache entry is keyed by the SHA-256 of the file's bytes, of the
    compiler's own sources and of PySD's version, so editing the model or
    the engine invalidates it.  Entries are written atomically.

    Parameters
    ----------
    path : str or Path
        The model file.
    cache : Path, optional
        Cache directory (default: no caching).

    Returns
    -------
    ModelIR

    Raises
    ------
    UnsupportedConstructError
        If the model uses a construct the engine does not implement.
    """
    if cache is None:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20000))
        try:
            return build_ir(load_abstract_model(path))
        finally:
            sys.setrecursionlimit(limit)
    return cached_product(path, "ir", lambda abstract, _: build_ir(abstract), cache=cache)
