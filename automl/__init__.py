"""automl: an evolutionary search engine for programs and architectures with a functional
equivalence cache.  ``import automl`` loads numpy, xxhash and the stdlib only; torch, ray and
optuna are imported where they are used.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .api import Run, Trial, create_run, load_run, read_run, reproduce, search
from .errors import (AutoMLError, CallbackError, ClusterError, ConfigError, EvaluationTimeout, InvalidCandidate,
                     ParseError, RegistryError, RunDirError, SearchFailed)
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
    "Record", "search", "create_run", "load_run", "read_run", "reproduce", "Run", "Trial", "SearchFailed",
    "CallbackError",
]


