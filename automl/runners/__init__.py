"""Runners: where evaluations execute.  ``serial`` and ``process`` are local; ``ray`` runs
evaluator actors on a Ray cluster (``import ray`` inside its module).  Registered by import
string in ``automl.registry.BUILTINS``."""
from .base import PluginSpec, RetryPolicy, Runner
from .local import ProcessPoolRunner, SerialRunner

__all__ = ["PluginSpec", "RetryPolicy", "Runner", "SerialRunner", "ProcessPoolRunner"]
