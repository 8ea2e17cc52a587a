"""Optional dependencies: the one place that knows which pip extra provides which package.

The core (``pip install automl-evo``) needs numpy, xxhash and cloudpickle only; everything heavier is an extra
declared in pyproject.toml (``[torch]``, ``[ray]``, ``[optuna]``, ``[plot]``, ``[dashboard]``,
``[progress]``, ``[fast]``, ``[networkx]``; ``[all]`` is all of them).  Code that needs one of these
packages calls :func:`require` where the feature is used, never at ``import automl``, so a missing
package is a :class:`~automl.errors.MissingDependencyError` naming the extra to install, raised when
the feature is asked for (not a bare ``ModuleNotFoundError`` deep inside an evaluation).

    torch = require("torch", "the optimizer-proxy evaluator")
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any, Iterable

from .errors import MissingDependencyError

DISTRIBUTION = "automl-evo"

#: top-level import name -> (pip extra that installs it, the PyPI distribution)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "scipy": ("torch", "scipy"),  # also in [optuna]; the evaluators that need it also need torch
    "ray": ("ray", "ray[tune]"),
    "optuna": ("optuna", "optuna"),
    "cmaes": ("optuna", "cmaes"),
    "matplotlib": ("plot", "matplotlib"),
    "optuna_dashboard": ("dashboard", "optuna-dashboard"),
    "tqdm": ("progress", "tqdm"),
    "numba": ("fast", "numba"),
    "networkx": ("networkx", "networkx"),
    "pandas": ("dataframe", "pandas"),
}


def extra_of(module: str) -> str | None:
    """The pip extra that provides ``module`` (a dotted name is looked up by its top-level package)."""
    entry = EXTRAS.get(module.partition(".")[0])
    return entry[0] if entry else None


def available(module: str) -> bool:
    """Whether ``module``'s top-level package can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def install_hint(extras: Iterable[str]) -> str:
    names = sorted(set(extras))
    return f"pip install '{DISTRIBUTION}[{','.join(names)}]'" if names else ""


def missing_error(modules: Iterable[str], what: str, extras: Iterable[str] | None = None) -> MissingDependencyError:
    """The error for ``what`` needing ``modules`` that are not installed; ``extras`` overrides the
    extras looked up in :data:`EXTRAS` (a package that several extras provide, e.g. scipy)."""
    modules = list(dict.fromkeys(m.partition(".")[0] for m in modules))
    extras = list(extras) if extras is not None else [e for e in (extra_of(m) for m in modules) if e]
    pkgs = ", ".join(EXTRAS[m][1] if m in EXTRAS else m for m in modules)
    how = install_hint(extras) if extras else f"pip install {' '.join(modules)}"
    return MissingDependencyError(f"{what} needs {pkgs}, which is not installed: {how} (or '{DISTRIBUTION}[all]')",
                                  modules=modules, extras=extras)


def require(module: str, what: str) -> ModuleType:
    """Import and return ``module``; when it (or a package it needs) is missing, raise
    :class:`MissingDependencyError` saying that ``what`` needs it and which extra installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise missing_error([exc.name or module], what) from exc  # the package actually missing


def require_all(modules: Iterable[str], what: str, extras: Iterable[str] | None = None) -> None:
    """Check (without importing) that every module in ``modules`` is installed; one error naming all
    the missing ones and their extras (or ``extras``) otherwise."""
    gone = [m for m in modules if not available(m)]
    if gone:
        raise missing_error(gone, what, extras)


def progress_bar(**tqdm_options: Any) -> Any:
    """A tqdm progress bar on stderr, or None without the ``[progress]`` extra: a bar is a nicety,
    so its absence never stops the work (callers print progress lines instead, or nothing)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(file=sys.stderr, dynamic_ncols=True, **tqdm_options)
