"""The evaluator contract.  An evaluator turns a genome into objectives.

Evaluators are built from ``(name, options)`` wherever they run (in-process, a process pool, a
Ray actor), so options must be JSON-able; they are the evaluator's *fidelity* and are part of
every cache key.  Heavy imports (torch, data) belong inside methods, not at module import.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

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
