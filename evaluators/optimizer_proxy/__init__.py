"""Optimizer-program proxy evaluation (issue 3, Lion-style symbolic discovery; Chen et al. 2023).

``OptimizerProxy`` (registered as "optimizer-proxy") trains small models on seeded local data
with a candidate program and scores it by validation loss relative to AdamW; ``heldout_score``
is the meta-validation on tasks the search never sees; ``funnel.funnel`` re-evaluates a run's
best programs on a larger task and promotes those that still beat AdamW there.  torch is
imported only when something is trained.
"""
from .proxy import DEFAULT_TASKS, HELDOUT_TASKS, KNOWN_TASKS, OptimizerProxy, heldout_score

__all__ = ["OptimizerProxy", "heldout_score", "DEFAULT_TASKS", "HELDOUT_TASKS", "KNOWN_TASKS"]
