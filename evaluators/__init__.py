"""Evaluators.  Each registers under its name; classes (and torch) are imported only when used.
``requires`` names the optional packages an evaluator needs (their pip extras: automl/_optional.py):
it is listed without them and raises a MissingDependencyError naming the extra when used."""
from automl.registry import register_command, register_evaluator, set_default

register_evaluator("symbolic-regression", "evaluators.symbolic_regression:SymbolicRegression",
                   "fit a target function on seeded data (MSE)")
register_evaluator("zero-cost", "evaluators.synthetic:ZeroCost",
                   "returns a deterministic number from the candidate text at no cost (benchmarks, tests)")
register_evaluator("sleep", "evaluators.synthetic:Sleep",
                   "sleeps a fixed time, then returns like zero-cost (runner throughput benchmarks)")
register_evaluator("optimizer-proxy", "evaluators.optimizer_proxy:OptimizerProxy",
                   "train small models with a candidate optimizer program (validation loss)", requires=("torch",))
register_evaluator("nb201-tabular", "evaluators.tabular:NB201Tabular",
                   "NAS-Bench-201 lookup: CIFAR-10/100/ImageNet16-120 test accuracy")
register_evaluator("nb101-tabular", "evaluators.tabular:NB101Tabular",
                   "NAS-Bench-101 lookup on the shipped 500-cell subset")

register_command("funnel", "evaluators.optimizer_proxy.funnel:FunnelCommand",
                 "re-evaluate a run's best programs on a larger task; keep those that beat AdamW there",
                 requires=("torch",))
set_default("evaluator", "symbolic-regression")

register_evaluator("supernet", "evaluators.supernet.ranking:SupernetAccuracy",
                   "a subnet's top-1 accuracy with a trained weight-sharing supernet (checkpoint in the fidelity)",
                   requires=("torch",))

register_command("supernet", "evaluators.supernet.cli:SupernetCommand",
                 "train a one-shot supernet (SPOS/FairNAS/PA&DA/class-uniform) and rank cells with it",
                 requires=("torch", "scipy"))

register_evaluator("ofa-hw", "evaluators.hardware.evaluators:OFAHardware",
                   "OFA MobileNetV3: oracle top-1 (DyNAS-T fit), counted MACs, LUT or measured latency, constraints")

register_evaluator("ensemble-supernet", "evaluators.ensemble.evaluate:EnsembleSupernetAccuracy",
                   "an ensemble's top-1 (mean logits) with a K-path supernet, its MACs and FLOPs-budget violation",
                   requires=("torch",))
register_command("ensemble", "evaluators.ensemble.cli:EnsembleCommand",
                 "NEAS: train a K-path ensemble supernet with diversity-guided shrinking, "
                 "search ensembles under a FLOPs budget", requires=("torch",))
