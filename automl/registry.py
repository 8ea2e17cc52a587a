"""Registries of plugins by name: search spaces, evaluators, strategies, runners, CLI commands.

The core never imports a plugin module statically, and this module imports no other module of
``automl`` but :mod:`automl.errors` (no import cycle).  A plugin registers itself with
``register_space("name", "package.module:Class")`` (a lazy import path or the class itself),
usually from its package's ``__init__``; the core's own strategies and runners are listed below
by import string.  Packages that hold plugins are found through the ``automl.plugins``
entry-point group (this project's pyproject lists ``search_spaces`` and ``evaluators``).

Strict by design:
  * a name is registered once: registering another target under a taken name is a
    :class:`~automl.errors.RegistryError` (``replace=True`` to override on purpose);
  * options are checked against the constructor's signature before anything is built, so a typo
    is a :class:`~automl.errors.ConfigError` listing the valid options;
  * a ``"package.module:Class"`` name that is not registered is imported only with
    ``allow_import=True``.  Names read from files (run.json, a logged record) must go through
    :func:`create` without it: opening someone's run never imports and runs their code.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import re
import types
from importlib import metadata
from typing import Any, Callable, Mapping, Sequence

from . import _optional
from .errors import ConfigError, RegistryError

FAMILIES = ("space", "evaluator", "strategy", "runner", "command")
_registry: dict[str, dict[str, Any]] = {f: {} for f in FAMILIES}
_descriptions: dict[str, dict[str, str]] = {f: {} for f in FAMILIES}
#: optional packages a plugin needs (import names), checked before it is imported or built
_requires: dict[str, dict[str, tuple[str, ...]]] = {f: {} for f in FAMILIES}
_plugins_loaded = False
# Fallback used when the project runs from a source tree without being installed.
_DEFAULT_PLUGIN_PACKAGES = ("search_spaces", "evaluators")

_OPTUNA = "automl.strategies.optuna_sampler"
#: The core's own plugins, by import string (nothing is imported until one is used).
BUILTINS: dict[str, dict[str, tuple[str, str]]] = {
    "strategy": {
        "evolution": ("automl.strategies.evolution:RegularizedEvolution",
                      "regularized (aging) evolution with tournament selection"),
        "random": ("automl.strategies.evolution:RandomSearch", "independent random samples"),
        "tpe": (f"{_OPTUNA}:TPE", "Optuna TPE sampler"),
        "optuna-random": (f"{_OPTUNA}:OptunaRandom", "Optuna random sampler"),
        "nsga2": (f"{_OPTUNA}:NSGA2", "Optuna NSGA-II (multi-objective)"),
        "cmaes": (f"{_OPTUNA}:CMAES", "Optuna CMA-ES"),
        "qmc": (f"{_OPTUNA}:QMC", "Optuna quasi-Monte Carlo"),
        "gp": (f"{_OPTUNA}:GP", "Optuna Gaussian-process sampler"),
        "nsga2-native": ("automl.strategies.moo:NSGA2",
                         "native vectorised NSGA-II on categorical parameters (multi-objective)"),
        "linas": ("automl.strategies.moo:LINAS", "LINAS: ridge predictors refit every loop + inner NSGA-II on predictions"),
    },
    "runner": {
        "serial": ("automl.runners.local:SerialRunner", "in-process, one evaluation at a time"),
        "process": ("automl.runners.local:ProcessPoolRunner", "local process pool (--workers N)"),
        "ray": ("automl.runners.ray:RayRunner", "Ray actors on a local or remote cluster (--runner ray)"),
    },
}
#: The optional packages the core's own plugins need (see automl/_optional.py for their extras; what
#: a sampler needs beyond optuna is checked when it is built: automl/strategies/optuna_sampler.py).
BUILTIN_REQUIRES: dict[str, dict[str, tuple[str, ...]]] = {
    "strategy": {name: ("optuna",) for name, (target, _) in BUILTINS["strategy"].items() if target.startswith(_OPTUNA)},
    "runner": {"ray": ("ray",)},
}


def _register(family: str, name: str, target: Any, description: str = "", replace: bool = False,
              requires: Sequence[str] = ()) -> None:
    if family not in _registry:
        raise RegistryError(f"unknown plugin family {family!r}; one of {', '.join(FAMILIES)}")
    if not isinstance(name, str) or not name or ":" in name:
        raise RegistryError(f"a {family} name must be a non-empty string without ':', got {name!r}")
    old = _registry[family].get(name)
    if old is not None and not replace and old != target and not _same(old, target):
        raise RegistryError(f"{family} {name!r} is already registered (as {_label(old)}); choose another name "
                            "or pass replace=True")
    _registry[family][name] = target
    if description:
        _descriptions[family][name] = description
    if isinstance(requires, str):
        requires = (requires,)
    _requires[family][name] = tuple(requires)


def _label(target: Any) -> str:
    return target if isinstance(target, str) else f"{getattr(target, '__module__', '?')}:" \
        f"{getattr(target, '__qualname__', type(target).__name__)}"


def _same(a: Any, b: Any) -> bool:
    """The same plugin given once as an import string and once as the object (module re-import)."""
    return _label(a) == _label(b)


def register_space(name: str, target: Any, description: str = "", replace: bool = False,
                  requires: Sequence[str] = ()) -> None:
    _register("space", name, target, description, replace, requires)


def register_evaluator(name: str, target: Any, description: str = "", replace: bool = False,
                  requires: Sequence[str] = ()) -> None:
    _register("evaluator", name, target, description, replace, requires)


def register_strategy(name: str, target: Any, description: str = "", replace: bool = False,
                  requires: Sequence[str] = ()) -> None:
    _register("strategy", name, target, description, replace, requires)


def register_runner(name: str, target: Any, description: str = "", replace: bool = False,
                  requires: Sequence[str] = ()) -> None:
    _register("runner", name, target, description, replace, requires)


def register_command(name: str, target: Any, description: str = "", replace: bool = False,
                     requires: Sequence[str] = ()) -> None:
    """A CLI subcommand ``automl NAME`` contributed by a plugin.  ``target`` (or its import string)
    is an object with ``add_arguments(parser)`` and ``run(args) -> int``; see ``docs/core.md``.
    ``requires`` (as for every ``register_*``): optional packages it needs, by import name; a missing
    one is a MissingDependencyError naming its pip extra when the plugin is used (it is still listed)."""
    _register("command", name, target, description, replace, requires)


_defaults: dict[str, str] = {"strategy": "evolution"}


def set_default(family: str, name: str) -> None:
    """Make registered ``name`` the default of ``family`` (what ``automl.search`` uses when the
    caller names none).  Plugin packages set it; the core names no space or evaluator."""
    _defaults[family] = name


def default(family: str) -> str:
    load_plugins()
    if family not in _defaults:
        raise ConfigError(f"no default {family} is registered: name one (see `automl {family}s`)")
    return _defaults[family]


def _register_builtins() -> None:
    for family, entries in BUILTINS.items():
        for name, (target, desc) in entries.items():
            if name not in _registry[family]:
                _register(family, name, target, desc, requires=BUILTIN_REQUIRES.get(family, {}).get(name, ()))


_register_builtins()


def load_plugins() -> None:
    """Import every plugin package once (entry points, else the project's own packages)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    names = [ep.value for ep in metadata.entry_points(group="automl.plugins")]
    for mod in names or _DEFAULT_PLUGIN_PACKAGES:
        try:
            importlib.import_module(mod)
        except ImportError as exc:  # a broken third-party plugin must not take the CLI down
            if mod in _DEFAULT_PLUGIN_PACKAGES:
                raise
            import warnings

            warnings.warn(f"could not load automl plugin package {mod!r}: {exc}", stacklevel=2)


def _resolve(target: Any, what: str = "this plugin") -> Callable[..., Any]:
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            obj: Any = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # an optional package the plugin's module imports at the top
            if exc.name and _optional.extra_of(exc.name):
                raise _optional.missing_error([exc.name], what) from exc
            raise
        for part in attr.split("."):
            obj = getattr(obj, part)
        resolved: Callable[..., Any] = obj
        return resolved
    resolved_target: Callable[..., Any] = target
    return resolved_target


def names(family: str) -> list[str]:
    load_plugins()
    return sorted(_registry[family])


def is_registered(family: str, name: str) -> bool:
    load_plugins()
    return name in _registry[family]


def requirements(family: str, name: str) -> tuple[str, ...]:
    """Optional packages (import names) the plugin ``name`` declared it needs."""
    load_plugins()
    return _requires[family].get(name, ())


def missing_requirements(family: str, name: str) -> list[str]:
    """The declared requirements of ``name`` that are not installed here (nothing is imported)."""
    return [m for m in requirements(family, name) if not _optional.available(m)]


def check_requirements(family: str, name: str) -> None:
    """MissingDependencyError naming the pip extra(s) when ``name`` needs a package not installed."""
    _optional.require_all(requirements(family, name), f"{family} {name!r}")


def registered_as_object(family: str, name: str) -> bool:
    """True when ``name`` is registered with an object (a class), not an import string: a fresh
    worker process may not have it registered (a script or notebook registered it at run time), so
    runners ship such plugins by value (:class:`automl.runners.base.ObjectPlugin`)."""
    load_plugins()
    return name in _registry[family] and not isinstance(_registry[family][name], str)


def rebuildable(family: str, name: str) -> bool:
    """True when a fresh worker process can build ``name`` by itself: registered by import string
    (plugin packages load in every process) or a ``module:Class`` path; a plugin registered as an
    object at run time, or not registered at all, cannot."""
    load_plugins()
    if name in _registry[family]:
        return isinstance(_registry[family][name], str)
    return ":" in name


def describe(family: str, name: str) -> str:
    load_plugins()
    if name in _descriptions[family]:
        return _descriptions[family][name]
    doc = (getattr(get_class(family, name), "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def get_class(family: str, name: str, allow_import: bool = False) -> Callable[..., Any]:
    """The class registered as ``name``.  A ``"package.module:Class"`` path that is not registered
    is imported only with ``allow_import=True`` (the caller vouches for the name: it came from the
    user in this process, not from a file)."""
    load_plugins()
    if name not in _registry[family] and isinstance(name, str) and ":" in name:
        if not allow_import:
            raise RegistryError(f"{family} {name!r} is not a registered plugin; importing a module named in a "
                                "file is refused (it would run its code).  Register it, or opt in with "
                                "allow_import=True (CLI: --allow-import) if you trust it")
        try:
            return _resolve(name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise RegistryError(f"cannot import {family} {name!r}: {exc}") from None
    try:
        target = _registry[family][name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_registry[family])) or "none"
        raise RegistryError(f"unknown {family} {name!r}; registered {family}s: {known}") from None
    return _resolve(target, f"{family} {name!r}")


# --- options: one source for validating, listing and documenting ------------------------------
#
# A plugin's options are its constructor's keyword parameters: names, defaults and annotations
# come from the signature, docs from the class (or ``__init__``) docstring.  :func:`check_options`
# (called by :func:`create` before anything is built) and :func:`options` (``automl evaluators
# --options NAME``) read the same :func:`_specs`, so what is listed is exactly what is accepted.
#
# A constructor that forwards ``**kwargs`` to another callable (an Optuna strategy to its sampler)
# declares it with a classmethod ``forwarded_options() -> (target, excluded_names)``; the target's
# JSON-settable parameters then count as the plugin's own options.
#
# Docstrings are parsed here rather than with a docstring library: the core installs with numpy and
# xxhash only, and the forms needed are few (see :func:`option_docs`).

REQUIRED: Any = inspect.Parameter.empty  # the default of an option that must be given


@dataclasses.dataclass(frozen=True)
class Option:
    """One constructor option of a plugin."""

    name: str
    type: str  # the annotation as written ("" when unannotated)
    default: Any  # REQUIRED when it must be given
    doc: str
    source: str = ""  # where the option goes when not to the plugin itself (e.g. "optuna.samplers.TPESampler")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the default as JSON when it is, else its repr)."""
        default: Any = None if self.required else self.default
        try:
            json.dumps(default)
        except (TypeError, ValueError):
            default = repr(default)
        return {"name": self.name, "type": self.type, "default": default, "required": self.required,
                "doc": self.doc, "source": self.source}


_SECTION = re.compile(r"^(Options|Args|Arguments|Parameters|Keyword [Aa]rgs|Other Parameters)\s*:?\s*$")
_END = re.compile(r"^(Returns|Yields|Raises|Note|Notes|Example|Examples|Attributes|See Also|Warns|Warning)\s*:?\s*$"
                  r"|^\.\. ")
_BULLET = re.compile(r"^[-*]\s+``(\w+)``\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")  # - ``name`` (type): doc
_ENTRY = re.compile(r"^\**(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")  # name (type): doc, in a section


def _role(m: re.Match[str]) -> str:  # Sphinx roles as plain text: :obj:`True` -> True, :class:`~a.b.C` -> C
    text = str(m.group(1))
    return text.rsplit(".", 1)[-1] if text.startswith("~") else text


def _clean(text: str) -> str:
    text = re.sub(r":\w+:`([^`]*)`", _role, text)
    return re.sub(r"\s+", " ", text).strip().rstrip(";").strip()


def _public_name(obj: Any) -> str:
    """``package.Class`` for a class defined in ``package._private.module`` and exported higher up."""
    module, qual = getattr(obj, "__module__", "?"), getattr(obj, "__qualname__", "?")
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        mod = importlib.import_module(".".join(parts[:i])) if i < len(parts) else None
        if mod is not None and getattr(mod, qual, None) is obj:
            return f"{mod.__name__}.{qual}"
    return f"{module}.{qual}"


def option_docs(doc: str | None) -> dict[str, str]:
    """``{option: doc}`` from a docstring, in the forms this project and Optuna use:

    * bullets anywhere: ``- ``name``: doc`` or ``* ``name`` (type): doc``, continued by indented lines;
    * a Google-style section (``Options:``, ``Args:``, ``Parameters:``): ``name: doc`` or
      ``name (type): doc`` entries, the doc on the same or the following, more indented, lines.

    Only the first paragraph of each entry is kept."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out: dict[str, str] = {}
    cur: str | None = None
    cur_indent = 0
    section_indent: int | None = None
    buf: list[str] = []

    def flush() -> None:
        if cur is not None and cur not in out:
            out[cur] = _clean(" ".join(buf))

    for raw in lines:
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if not stripped:
            if cur is not None and buf:  # a paragraph ends the entry's doc
                flush()
                cur = None
            continue
        if _SECTION.match(stripped):
            flush()
            cur, section_indent = None, None
            section_indent = -1  # set by the first entry
            continue
        if _END.match(stripped) and (section_indent is None or section_indent < 0 or indent <= section_indent):
            flush()
            cur, section_indent = None, None
            continue
        m = _BULLET.match(stripped)
        in_section = section_indent is not None and (section_indent < 0 or indent <= section_indent)
        if not m and in_section:
            m = _ENTRY.match(stripped)
            if m and section_indent is not None and section_indent < 0:
                section_indent = indent
        if m and (cur is None or indent <= cur_indent):
            flush()
            cur, cur_indent, buf = m.group(1), indent, [m.group(3)]
            continue
        if cur is not None and (indent > cur_indent or not _BULLET.match(stripped)):
            buf.append(stripped)
            continue
        if section_indent is not None and section_indent >= 0 and indent < section_indent:
            flush()
            cur, section_indent = None, None
    flush()
    prose = _clean(" ".join(lines))
    sentences = re.split(r"(?<!e\.g\.)(?<!i\.e\.)(?<=\.)\s+(?=[A-Z`(*-])", prose)
    for name in re.findall(r"``(\w+)(?:[ =][^`]*)?``", prose):  # prose: the first sentence naming ``name``
        if name not in out:
            pattern = re.compile(rf"``{name}(?:[ =][^`]*)?``")
            sentence = re.sub(r"^[-*]\s+", "", next((x for x in sentences if pattern.search(x)), ""))
            out[name] = re.sub(rf"^``{name}``\s*:\s*", "", sentence)
    return {k: v for k, v in out.items() if v}


@functools.lru_cache(maxsize=256)
def _docs_of(cls: Any) -> Mapping[str, str]:
    """Option docs of ``cls``: its docstring, then its ``__init__``'s, then its bases' (the first
    that documents a name wins)."""
    out: dict[str, str] = {}
    for klass in (inspect.getmro(cls) if inspect.isclass(cls) else (cls,)):
        if klass is object:
            continue
        for doc in (klass.__dict__.get("__doc__") if inspect.isclass(klass) else klass.__doc__,
                    getattr(klass.__dict__.get("__init__"), "__doc__", None) if inspect.isclass(klass) else None):
            for k, v in option_docs(doc).items():
                out.setdefault(k, v)
    return types.MappingProxyType(out)


_JSON_TYPES = frozenset(("int", "float", "bool", "str", "None", "NoneType", "dict", "list", "tuple", "Any",
                         "Sequence", "Mapping", "Literal", "Optional", "Union", "typing", "collections", "abc"))


def _json_settable(p: inspect.Parameter) -> bool:
    """False for a parameter that takes an object no JSON option can give (a callable, a sampler)."""
    if callable(p.default) and p.default is not p.empty:
        return False
    ann = p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)
    if p.annotation is p.empty:
        return True
    return set(re.findall(r"[A-Za-z_]\w*", ann)) <= _JSON_TYPES


def _type_text(p: inspect.Parameter) -> str:
    if p.annotation is not p.empty:
        return p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(p.annotation)
    if p.default is not p.empty and p.default is not None:
        return type(p.default).__name__
    return ""


def _signature(cls: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(cls)
    except (TypeError, ValueError):  # a builtin or C type: nothing to introspect
        return None


def _params(sig: inspect.Signature) -> list[inspect.Parameter]:
    return [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def forwarded_options(cls: Any) -> list[Option]:
    """The options ``cls`` forwards through ``**kwargs`` (its ``forwarded_options`` hook), or []."""
    hook = getattr(cls, "forwarded_options", None)
    if hook is None:
        return []
    target, excluded = hook()
    sig = _signature(target)
    if sig is None:
        return []
    docs = _docs_of(target)
    source = _public_name(target)
    return [Option(p.name, _type_text(p), p.default, docs.get(p.name, ""), source)
            for p in _params(sig) if p.name not in excluded and _json_settable(p)]


def option_specs(cls: Any) -> tuple[list[Option], bool] | None:
    """``(options, accepts_any)`` of a plugin class: its constructor's keyword parameters (with
    the ones it forwards), and whether it also takes any other name (``**kwargs`` it does not
    declare as forwarded).  None when the constructor cannot be introspected."""
    sig = _signature(cls)
    if sig is None:
        return None
    docs = _docs_of(cls)
    own = [Option(p.name, _type_text(p), p.default, docs.get(p.name, "")) for p in _params(sig)]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if var_kw and getattr(cls, "forwarded_options", None) is not None:
        return own + [o for o in forwarded_options(cls) if o.name not in {x.name for x in own}], False
    return own, var_kw


def options(family: str, name: str, allow_import: bool = False) -> list[Option]:
    """The options of registered plugin ``name`` of ``family`` (space, evaluator, strategy,
    runner): name, type, default and doc of each, from the source :func:`create` validates with.
    ``Option.to_dict()`` gives JSON-able records.  A plugin whose constructor also takes any
    ``**options`` lists its named ones (``accepts_any_options`` tells)."""
    if family not in _registry:
        raise RegistryError(f"unknown plugin family {family!r}; one of {', '.join(FAMILIES)}")
    specs = option_specs(get_class(family, name, allow_import))
    return [] if specs is None else specs[0]


def accepts_any_options(family: str, name: str, allow_import: bool = False) -> bool:
    """True when plugin ``name`` takes ``**options`` beyond the ones :func:`options` lists."""
    specs = option_specs(get_class(family, name, allow_import))
    return specs is None or specs[1]


def check_options(family: str, name: str, cls: Callable[..., Any], options: dict[str, Any]) -> None:
    """ConfigError naming the valid options when ``options`` has a name ``cls`` does not take, or
    lacks one it requires.  Constructors taking undeclared ``**kwargs`` accept any name."""
    specs = option_specs(cls)
    if specs is None:  # let the call speak
        return
    listed, accepts_any = specs
    if not accepts_any:
        valid = [o.name for o in listed]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            hint = f" (`automl {_plural(family)} --options {name}` documents them)" if family in FAMILIES else ""
            raise ConfigError(f"{family} {name!r} has no option {', '.join(map(repr, unknown))}; valid options: "
                              f"{', '.join(valid) or 'none'}{hint}")
    missing = [o.name for o in listed if o.required and not o.source and o.name not in options]
    if missing:
        raise ConfigError(f"{family} {name!r} needs option(s) {', '.join(missing)}")


def _plural(family: str) -> str:
    return {"strategy": "strategies"}.get(family, f"{family}s")


def create(family: str, name: str, allow_import: bool = False, **options: Any) -> Any:
    """Instantiate a registered plugin after checking ``options`` against its constructor; a bad
    option is a ConfigError naming the plugin, the option and the valid ones."""
    if isinstance(name, str) and name in _registry[family]:
        check_requirements(family, name)  # before importing it: the error names the extra to install
    cls = get_class(family, name, allow_import)
    check_options(family, name, cls, options)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for {family} {name!r}: {exc}") from None


def get_space(name: str, **options: Any) -> Any:
    """A space by registered name, or by ``"package.module:Class"`` (a name typed in code: the
    caller vouches for it; code handling names read from files calls :func:`create`)."""
    return create("space", name, True, **options)


def get_evaluator(name: str, **options: Any) -> Any:
    """An evaluator by registered name or ``"package.module:Class"`` (see :func:`get_space`)."""
    return create("evaluator", name, True, **options)
