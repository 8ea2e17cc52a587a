"""The evaluator contract.  An evaluator turns a genome into objectives.

Evaluators are built from ``(name, options)`` wherever they run (in-process, a process pool, a
Ray actor), so options must be JSON-able; they are the evaluator's *fidelity* and are part of
every cache key.  Heavy imports (torch, data) belong inside methods, not at module import.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .errors import ConfigError
from .types import Evaluation, Objective, objectives_of


class Evaluator:
    name: str = ""
    version: str = "1"
    #: Objectives in order; the first is primary.  Direction is "min" or "max".
    objectives: Mapping[str, str] = {"loss": "min"}
    #: True when repeated evaluations of one candidate differ (the cache then aggregates).
    noisy: bool = False
    #: Objectives that belong to the candidate's text, not to its function (expression size, the
    #: parameter count of one encoding): computed for every candidate by
    #: :meth:`candidate_objectives` (cheaply, on the driver) and never cached or copied from an
    #: equivalent candidate.  The others are *functional*: cached per equivalence class.
    per_candidate: tuple[str, ...] = ()
    #: Spaces this evaluator understands, or None for any.
    spaces: tuple[str, ...] | None = None
    #: Options that make one evaluation quick; the contract test suite builds the evaluator with them.
    test_options: Mapping[str, Any] = {}
    #: How many candidates one ``evaluate_batch`` call should receive (runners fill batches up to it).
    batch_size: int = 1

    def __init__(self, **options: Any):
        self._options = dict(options)

    def options(self) -> dict[str, Any]:
        """JSON-able options this evaluator was built with."""
        return dict(self._options)

    def weights_version(self) -> str | None:
        """Identity of the weights this evaluator scores with (e.g. a supernet checkpoint digest), or
        None.  When set it is part of :meth:`fidelity`, hence of every cache key: results obtained
        with one checkpoint are never served for another."""
        return None

    def probe_domain(self) -> dict[str, Any] | None:
        """The inputs this evaluator will exercise, for the functional probe (JSON-able), or None
        for the space's documented default.  A space whose ``probe`` takes a ``domain`` keyword
        builds its probe from it; the declaration is part of every functional digest's namespace
        (automl.hashing), so changing it never reuses digests or aliases.  Keys each space reads:
        docs/hashing.md (e.g. expressions: ``{"points": {var: [...]}}``; optimizer programs:
        ``{"steps", "lr", "grad_log10", "weight_log10"}``)."""
        return None

    def fidelity(self) -> dict[str, Any]:
        """What the result depends on besides the candidate (steps, data set, seed, weights...).
        Part of every digest's namespace.  Default: the options, plus ``weights`` when
        :meth:`weights_version` names one."""
        fid = self.options()
        w = self.weights_version()
        if w is not None:
            fid["weights"] = str(w)
        return fid

    def evaluate(self, genome: Any, space: Any) -> Mapping[str, float] | Evaluation:
        """Evaluate one genome of ``space``; return ``{objective: value}`` with every name of
        :attr:`objectives`, or an :class:`~automl.types.Evaluation` to also report constraint
        violations and ``info`` for the log.

        Runs wherever the runner puts it (this process, a worker process, a Ray actor).  Raise any
        exception for a failed evaluation (it is recorded, with an ``info`` attribute's mapping if
        the exception has one); non-finite objectives mark the candidate ``invalid``.  Must not
        depend on global RNG state: seed from the options.
        """
        raise NotImplementedError

    def evaluate_batch(self, genomes: Sequence[Any], space: Any) -> Sequence[Mapping[str, float] | Evaluation
                                                                                 | BaseException]:
        """Optional: evaluate several genomes at once (one forward pass over many subnets...).

        Return one entry per genome, in order: what :meth:`evaluate` would return, or an exception
        instance for a member that failed alone.  Override it (and set :attr:`batch_size`) and the
        runners and the dispatcher hand this evaluator batches; by default it is not offered.
        """
        raise NotImplementedError

    def reference(self) -> dict[str, dict[str, Any]]:
        """Known reference values of objectives, drawn as lines on plots and listed in reports:
        ``{objective: {"value": float, "label": str}}`` (e.g. a benchmark table's optimum, the
        score of a hand-designed baseline).  Default: none.  Called on the reading side
        (``automl plot``/``report``), so it must be cheap and need nothing the evaluation needs
        (no device, no training)."""
        return {}

    def candidate_objectives(self, genome: Any, space: Any) -> Mapping[str, float]:
        """The :attr:`per_candidate` objectives of ``genome`` (required when any are declared)."""
        raise NotImplementedError(f"{type(self).__name__} declares per_candidate objectives "
                                  f"{self.per_candidate} but no candidate_objectives()")

    def close(self) -> None:
        """Release resources (called once when a worker shuts down)."""

    @property
    def primary(self) -> str:
        return next(iter(self.objectives))

    def objective_list(self) -> tuple[Objective, ...]:
        """The objectives as :class:`~automl.types.Objective` (name, direction), in order."""
        return objectives_of(self.objectives)

    def better(self, a: float, b: float) -> bool:
        """True when objective value ``a`` is strictly better than ``b`` on the primary objective."""
        return self.objective_list()[0].better(a, b)


_DIRECTIONS = {"min": "min", "minimize": "min", "max": "max", "maximize": "max"}


def direction_of(direction: Any) -> str:
    """"min"/"max" from "min", "max", "minimize" or "maximize" (Optuna's words); ConfigError else."""
    d = _DIRECTIONS.get(str(getattr(direction, "value", direction)).lower())
    if d is None:
        raise ConfigError(f"direction must be 'min' or 'max' (or 'minimize'/'maximize'), got {direction!r}")
    return d


def callable_label(fn: Any) -> str:
    """``module.qualname`` of a function or callable object (what a run logs as its evaluator);
    a ``functools.partial`` is named by the function it wraps."""
    import functools

    while isinstance(fn, functools.partial):
        fn = fn.func
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(target, '__module__', None) or '?'}.{getattr(target, '__qualname__', type(fn).__name__)}"


def _code_digest(fn: Any) -> str:
    """A digest of what ``fn`` runs: its source text when it can be read, else its bytecode and
    constants.  The evaluator's version: editing the function starts a new cache namespace, and
    resuming a run with an edited function is refused (see ``automl.api``)."""
    import functools
    import inspect

    import xxhash

    if isinstance(fn, functools.partial):  # the wrapped function and the arguments bound to it
        return xxhash.xxh3_64_hexdigest(f"{_code_digest(fn.func)}{fn.args!r}{sorted(fn.keywords.items())!r}".encode())
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn)
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        code = getattr(getattr(target, "__func__", target), "__code__", None)
        text = repr((code.co_code, code.co_consts)) if code is not None else callable_label(fn)
    return xxhash.xxh3_64_hexdigest(text.encode())


class FunctionEvaluator(Evaluator):
    """A plain callable ``fn(genome, **options) -> float | dict | Evaluation`` as an evaluator
    (what ``automl.search(evaluator=fn)`` wraps a function in).

    Objectives, one rule:

    * ``objectives`` given (``{"acc": "max", "size": "min"}``, or a list of names, all in
      ``direction``): ``fn`` returns a dict holding those names (a float when there is one);
      further keys of the dict are logged with the record (``info``), not ranked.
    * not given: ``fn`` returns a float, the one objective ``"value"``, in ``direction``.
    * ``direction`` defaults to ``"min"``; ``"max"``, ``"minimize"`` and ``"maximize"`` work too.

    ``options`` are passed to ``fn`` as keyword arguments and are its fidelity (part of every
    cache key, recorded in run.json).  The version is a digest of ``fn``'s source, so an edited
    function never reuses the old one's cached results; values ``fn`` reads from globals or a
    closure or its object are not seen: pass them as options (a ``functools.partial``'s bound
    arguments are seen).
    """

    def __init__(self, fn: Any, objectives: Any = None, direction: Any = None, name: str | None = None,
                 **options: Any):
        if not callable(fn):
            raise ConfigError(f"evaluator must be a registered name, an Evaluator, or a callable; got "
                              f"{type(fn).__name__}")
        super().__init__(**options)
        d = direction_of(direction if direction is not None else "min")
        if objectives is None:
            objs: dict[str, str] = {"value": d}
        elif isinstance(objectives, str):
            objs = {objectives: d}
        elif isinstance(objectives, Mapping):
            objs = {str(k): direction_of(v) for k, v in objectives.items()}
        else:
            objs = {str(k): d for k in objectives}
        if not objs:
            raise ConfigError("objectives must name at least one objective")
        self.fn = fn
        self.objectives = objs
        self.name = name or f"callable:{callable_label(fn)}"
        self.version = _code_digest(fn)

    @property
    def source(self) -> str:
        """What the values converted come from, for messages."""
        return f"what {callable_label(self.fn)} returned"

    def evaluate(self, genome: Any, space: Any) -> Mapping[str, float] | Evaluation:
        return self.convert(self.fn(genome, **self._options))

    def convert(self, out: Any) -> Mapping[str, float] | Evaluation:
        """What ``fn`` returned as objectives (the rule in the class docstring); ConfigError when
        it does not fit them."""
        if isinstance(out, Evaluation):
            return out
        if isinstance(out, Mapping):
            missing = [k for k in self.objectives if k not in out]
            if missing:
                raise ConfigError(f"{self.source} is a dict with keys {sorted(map(str, out))}, "
                                  f"without objective(s) {missing}; declare the objectives it returns, e.g. "
                                  f"objectives={{{', '.join(repr(str(k)) + ': ' + repr('min') for k in out)}}}")
            objs = {k: out[k] for k in self.objectives}
            rest = {str(k): v for k, v in out.items() if k not in self.objectives}
            return Evaluation(objs, info=rest or None)
        if len(self.objectives) != 1:
            raise ConfigError(f"{self.source} is a {type(out).__name__}; with several objectives it "
                              f"must return a dict with keys {list(self.objectives)}")
        try:
            return {self.primary: float(out)}
        except (TypeError, ValueError):
            raise ConfigError(f"{self.source} is a {type(out).__name__}, expected a number or a dict "
                              "of objectives") from None
