"""Registries of plugins by name: search spaces, evaluators, strategies and runners.

The core never imports a plugin module statically.  A plugin registers itself with
``register_space("name", "package.module:Class")`` (a lazy import path or the class itself),
usually from its package's ``__init__``.  Packages that hold plugins are found through the
``automl.plugins`` entry-point group (this project's pyproject lists ``search_spaces`` and
``evaluators``); third-party packages add their own entry points the same way.
"""
from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Callable

from .errors import RegistryError

FAMILIES = ("space", "evaluator", "strategy", "runner")
_registry: dict[str, dict[str, Any]] = {f: {} for f in FAMILIES}
_descriptions: dict[str, dict[str, str]] = {f: {} for f in FAMILIES}
_plugins_loaded = False
# Fallback used when the project runs from a source tree without being installed.
_DEFAULT_PLUGIN_PACKAGES = ("search_spaces", "evaluators")


def _register(family: str, name: str, target: Any, description: str = "") -> None:
    _registry[family][name] = target
    if description:
        _descriptions[family][name] = description


def register_space(name: str, target: Any, description: str = "") -> None:
    _register("space", name, target, description)


def register_evaluator(name: str, target: Any, description: str = "") -> None:
    _register("evaluator", name, target, description)


def register_strategy(name: str, target: Any, description: str = "") -> None:
    _register("strategy", name, target, description)


def register_runner(name: str, target: Any, description: str = "") -> None:
    _register("runner", name, target, description)


# Plugin subcommands of the `automl` CLI: name -> "module:function" taking the remaining argv and
# returning an exit status.  (Minimal hook; the consolidated core may replace it.)
_commands: dict[str, Any] = {}


def register_command(name: str, target: Any, description: str = "") -> None:
    _commands[name] = (target, description)


def command(name: str) -> Callable[..., Any] | None:
    """The registered CLI subcommand ``name`` (its main function), or None."""
    load_plugins()
    entry = _commands.get(name)
    return None if entry is None else _resolve(entry[0])


def commands() -> dict[str, str]:
    """Registered plugin subcommands and their one-line descriptions."""
    load_plugins()
    return {k: v[1] for k, v in sorted(_commands.items())}


def load_plugins() -> None:
    """Import every plugin package once (entry points, else the project's own packages)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from . import strategies as _s, runners as _r  # noqa: F401  (core plugins register themselves)

    names = [ep.value for ep in metadata.entry_points(group="automl.plugins")]
    for mod in names or _DEFAULT_PLUGIN_PACKAGES:
        try:
            importlib.import_module(mod)
        except ImportError as exc:  # a broken third-party plugin must not take the CLI down
            if mod in _DEFAULT_PLUGIN_PACKAGES:
                raise
            import warnings

            warnings.warn(f"could not load automl plugin package {mod!r}: {exc}")


def _resolve(target: Any) -> Callable[..., Any]:
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    return target


def names(family: str) -> list[str]:
    load_plugins()
    return sorted(_registry[family])


def describe(family: str, name: str) -> str:
    load_plugins()
    if name in _descriptions[family]:
        return _descriptions[family][name]
    doc = (getattr(get_class(family, name), "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def get_class(family: str, name: str) -> Callable[..., Any]:
    """The class registered as ``name``; a ``"package.module:Class"`` path works without registering."""
    load_plugins()
    if name not in _registry[family] and ":" in name:
        try:
            return _resolve(name)
        except (ImportError, AttributeError) as exc:
            raise RegistryError(f"cannot import {family} {name!r}: {exc}") from None
    try:
        target = _registry[family][name]
    except KeyError:
        known = ", ".join(sorted(_registry[family])) or "none"
        raise RegistryError(f"unknown {family} {name!r}; registered {family}s: {known}") from None
    return _resolve(target)


def create(family: str, name: str, **options: Any) -> Any:
    """Instantiate a registered plugin; a bad option names the plugin and the option."""
    cls = get_class(family, name)
    try:
        return cls(**options)
    except TypeError as exc:
        from .errors import ConfigError

        raise ConfigError(f"bad options for {family} {name!r}: {exc}") from None


def get_space(name: str, **options: Any):
    return create("space", name, **options)


def get_evaluator(name: str, **options: Any):
    return create("evaluator", name, **options)
