"""Typed errors.  Each also inherits the builtin a caller would naturally catch."""
from __future__ import annotations


class AutoMLError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(AutoMLError, ValueError):
    """A bad option, flag, name or configuration value."""


class RegistryError(ConfigError, KeyError):
    """An unknown space, evaluator, strategy or runner name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ParseError(AutoMLError, ValueError):
    """Text that does not parse as a candidate of a space.  Carries line and column (1-based)."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None):
        self.message, self.line, self.col = message, line, col
        where = f" (line {line}, column {col})" if line is not None else ""
        super().__init__(f"{message}{where}")


class InvalidCandidate(AutoMLError, ValueError):
    """A candidate that is well formed but cannot be run (type/shape error, cycle, disconnected output)."""


class EvaluationTimeout(AutoMLError, TimeoutError):
    """An evaluation ran past its per-evaluation time limit."""


class RunDirError(AutoMLError, OSError):
    """A run directory that is missing, not a run, or already holds a run."""


class ClusterError(AutoMLError, ConnectionError):
    """A Ray cluster that cannot be reached or joined (address, network, token authentication)."""


class CacheError(AutoMLError, OSError):
    """A cache file that cannot be opened, read or written (damaged, not a cache, locked too long)."""


class TransientEvaluationError(AutoMLError, RuntimeError):
    """Raised by an evaluator for a failure that says nothing about the candidate (a lost file
    server, a busy GPU): the failure is cached as ``transient`` and retried by a later run."""


class MissingDependencyError(AutoMLError, ImportError):
    """A feature whose optional dependency is not installed; the message names the pip extra that
    installs it (``pip install 'automl-evo[torch]'``).  ``modules`` and ``extras`` list them."""

    def __init__(self, message: str, modules: list[str] | None = None, extras: list[str] | None = None):
        super().__init__(message)
        self.modules, self.extras = list(modules or ()), list(extras or ())


class SearchFailed(AutoMLError, RuntimeError):
    """A search whose every evaluation failed (a broken evaluator, a plugin the workers cannot
    build, a device that is not there): stopped early, records kept."""


class CallbackError(AutoMLError, RuntimeError):
    """A user callback raised; the run stopped cleanly with its results kept (``__cause__`` is
    the callback's exception)."""
