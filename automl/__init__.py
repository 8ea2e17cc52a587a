"""automl: an evolutionary search engine for programs and architectures with a functional
equivalence cache.  ``import automl`` loads numpy, xxhash and the stdlib only; torch, ray and
optuna are imported where they are used.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (AutoMLError, ClusterError, ConfigError, EvaluationTimeout, InvalidCandidate, ParseError,
                     RegistryError, RunDirError)
from .evaluator import Evaluator
from .hashing import Hasher, functional_hash, structural_hash
from .registry import (get_evaluator, get_space, register_evaluator, register_runner, register_space,
                       register_strategy)
from .space import Categorical, Float, Int, SearchSpace
from .types import Candidate, CacheOutcome, Direction, EvalResult, Evaluation, Objective, Record, Status

__all__ = [
    "AutoMLError", "ClusterError", "ConfigError", "EvaluationTimeout", "InvalidCandidate", "ParseError", "RegistryError",
    "RunDirError", "Evaluator", "Hasher", "functional_hash", "structural_hash", "get_evaluator", "get_space",
    "register_evaluator", "register_runner", "register_space", "register_strategy", "Categorical", "Float",
    "Int", "SearchSpace", "Candidate", "EvalResult", "Evaluation", "Objective", "Direction", "Status", "CacheOutcome",
    "Record", "search", "load_run",
]


def search(*args, **kwargs):
    """Run a search; see :func:`automl.api.search`."""
    from .api import search as _search

    return _search(*args, **kwargs)


def load_run(run_dir: str):
    """(run.json contents, candidate records) of a run directory; see :func:`automl.api.load_run`."""
    from .api import load_run as _load_run

    return _load_run(run_dir)
