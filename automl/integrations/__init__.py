"""Adapters to other tools: Ray Tune (``automl.integrations.tune``) and Optuna
(``automl.integrations.optuna_export``).  Nothing is imported here: each module imports its
tool (ray.tune, optuna) when it is imported itself."""
