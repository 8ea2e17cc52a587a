"""Runners: where evaluations execute.  ``serial`` and ``process`` are local; ``ray`` runs
evaluator actors on a Ray cluster (``import ray`` inside its module)."""
from ..registry import register_runner
from .base import PluginSpec, Runner
from .local import ProcessPoolRunner, SerialRunner

register_runner("serial", SerialRunner, "in-process, one evaluation at a time")
register_runner("process", ProcessPoolRunner, "local process pool (--workers N)")
register_runner("ray", "automl.runners.ray:RayRunner", "Ray actors on a local or remote cluster (--runner ray)")

__all__ = ["PluginSpec", "Runner", "SerialRunner", "ProcessPoolRunner"]
