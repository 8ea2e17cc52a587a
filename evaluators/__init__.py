"""Evaluators.  Each registers under its name; classes (and torch) are imported only when used."""
from automl.registry import register_command, register_evaluator, set_default

register_evaluator("symbolic-regression", "evaluators.symbolic_regression:SymbolicRegression",
                   "fit a target function on seeded data (MSE)")
register_evaluator("zero-cost", "evaluators.synthetic:ZeroCost",
                   "returns a deterministic number from the candidate text at no cost (benchmarks, tests)")
register_evaluator("sleep", "evaluators.synthetic:Sleep",
                   "sleeps a fixed time, then returns like zero-cost (runner throughput benchmarks)")
register_evaluator("optimizer-proxy", "evaluators.optimizer_proxy:OptimizerProxy",
                   "train small models with a candidate optimizer program (validation loss)")
register_evaluator("nb201-tabular", "evaluators.tabular:NB201Tabular",
                   "NAS-Bench-201 lookup: CIFAR-10/100/ImageNet16-120 test accuracy")
register_evaluator("nb101-tabular", "evaluators.tabular:NB101Tabular",
                   "NAS-Bench-101 lookup on the shipped 500-cell subset")

register_command("funnel", "evaluators.optimizer_proxy.funnel:FunnelCommand",
                 "re-evaluate a run's best programs on a larger task; keep those that beat AdamW there")
set_default("evaluator", "symbolic-regression")
