"""The runner contract.  A runner evaluates candidate *texts* somewhere and hands back raw
outcomes (data only, see :func:`automl.evaluation.run_evaluation`).  The engine never knows
where an evaluation ran; the cache and the log stay with the engine.
"""
from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from ..errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PluginSpec:
    """A registered plugin by name and JSON-able options: how a worker rebuilds a space/evaluator.

    ``allow_import``: the name may be an unregistered ``module:Class`` path.  A spec built in code
    carries the caller's word (default True); one built from a name read from a file must say
    False unless the user opted in (see :mod:`automl.registry`; ``automl.search`` does this)."""

    name: str
    options: dict[str, Any]
    allow_import: bool = True
    #: The caller's own object, when there is one: a runner that evaluates in this process uses it
    #: as it is (:meth:`build` returns it).  It is not pickled unless ``ship_instance`` (a worker
    #: rebuilds the plugin from ``name``/``options``, or from an ObjectPlugin's payload).
    instance: Any = dataclasses.field(default=None, compare=False, repr=False)
    ship_instance: bool = dataclasses.field(default=False, compare=False, repr=False)

    @classmethod
    def of(cls, obj: Any, family: str) -> "PluginSpec":
        """The spec of a live space/evaluator object: its registered name and options, carrying
        the object itself for in-process use.  An object whose name a worker cannot rebuild (not
        registered by import string, or options that are not data) travels by value instead."""
        from ..registry import rebuildable

        name, options = str(getattr(obj, "name", "") or type(obj).__name__), getattr(obj, "options", None)
        opts = options() if callable(options) else {}
        return cls(name, dict(opts or {}), True, instance=obj, ship_instance=not rebuildable(family, name))

    def with_instance(self, obj: Any) -> "PluginSpec":
        """This spec carrying ``obj`` (the caller's already-built plugin) for in-process runners."""
        return dataclasses.replace(self, instance=obj) if obj is not None else self

    def build(self, family: str) -> Any:
        if self.instance is not None:
            return self.instance
        from ..registry import create

        return create(family, self.name, self.allow_import, **self.options)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not self.ship_instance:
            state["instance"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)


@dataclasses.dataclass(frozen=True)
class ObjectPlugin(PluginSpec):
    """A space or evaluator *object* shipped to workers by value: ``payload`` is the object
    pickled with cloudpickle when it is importable (it pickles functions, lambdas and classes
    defined in ``__main__`` or a notebook by value), else with :mod:`pickle`.  ``name`` is the
    label the run logs (``options`` stay empty: the object carries its own).  Built with
    :meth:`ship`, which raises ConfigError naming what cannot be pickled *before* a run starts.

    Workers unpickle what the driver sent them (the driver's own object); no file is ever
    unpickled: run.json records only the label."""

    payload: bytes = b""

    @classmethod
    def ship(cls, obj: Any, label: str, family: str) -> "ObjectPlugin":
        try:
            import cloudpickle
        except ImportError:  # a core dependency; plain pickle ships importable objects only
            dumps = pickle.dumps
            how = "pickle (install cloudpickle to ship objects defined in __main__ or a notebook by value)"
        else:
            dumps = cloudpickle.dumps
            how = "cloudpickle"
        try:
            payload = dumps(obj)
            pickle.loads(payload)  # what a worker will do: fail here, not in every worker
        except Exception as exc:  # pickling runs arbitrary __reduce__ code: any error means "cannot ship"
            raise ConfigError(f"the {family} {label} cannot be sent to worker processes: {how} failed with "
                              f"{type(exc).__name__}: {exc}.  Use runner='serial' (workers=1), or make it picklable "
                              "(no open files, locks, sockets or database connections among its attributes or "
                              "in its closure; open those lazily in evaluate())") from None
        return cls(label, {}, True, payload=payload)

    def build(self, family: str) -> Any:
        if self.instance is not None:
            return self.instance
        return pickle.loads(self.payload)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """The one retry/timeout policy every runner applies.

    * an evaluation whose worker dies (segfault, OOM kill, lost actor) is retried up to
      ``max_retries`` times, then recorded failed;
    * an evaluation past its ``timeout`` is stopped from outside once it is :meth:`grace` seconds
      beyond it (its worker process is killed and replaced) and recorded failed (``timeout``); no
      signal is ever sent inside an evaluation, so the default grace is 0: the kill is the timeout.
    """

    max_retries: int = 2
    grace_fraction: float = 0.0
    min_grace_s: float = 0.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries}")

    def grace(self, timeout: float) -> float:
        """Seconds past its limit an evaluation may run before its worker is killed from outside."""
        return max(self.min_grace_s, self.grace_fraction * timeout)

    def kill_after(self, timeout: float) -> float:
        """Seconds after its start at which an evaluation is stopped from outside."""
        return timeout + self.grace(timeout)

    def gives_up(self, attempts: int) -> bool:
        """True when an evaluation that has used ``attempts`` attempts may not be retried."""
        return attempts > self.max_retries

    def died_message(self) -> str:
        return f"worker process died {self.max_retries + 1} times evaluating this candidate"


class Runner:
    """Base class.  ``start`` once, then any number of ``submit``/``poll``, then ``close``."""

    name = ""

    def start(self, space: PluginSpec, evaluator: PluginSpec, timeout: float | None = None) -> None:
        """Prepare workers.  ``space``/``evaluator`` say how to build the plugins: a runner that
        evaluates in this process calls ``spec.build(family)``, which returns the caller's own
        object when the spec carries one (:meth:`PluginSpec.of`, :meth:`PluginSpec.with_instance`);
        a runner with workers sends the spec, and each worker builds its own."""
        raise NotImplementedError

    @property
    def capacity(self) -> int:
        """How many evaluations may be in flight at once."""
        return 1

    def submit(self, task_id: int, text: str, genome: Any = None) -> None:
        """Queue one evaluation.  ``genome`` is the already-built genome of ``text``: runners that
        evaluate in this process may use it to skip parsing; others ignore it."""
        raise NotImplementedError

    def poll(self, timeout: float | None = None) -> list[tuple[int, dict[str, Any]]]:
        """Finished ``(task_id, raw)`` pairs; waits up to ``timeout`` s for at least one when any is
        in flight (None: wait as long as needed)."""
        raise NotImplementedError

    def kill(self) -> None:
        """End every evaluation now (a second Ctrl-C): nothing may wait.  Runners that evaluate in
        this process have nothing to kill."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
