"""The Ray runner: a pool of evaluator actors on a local or remote Ray cluster.

``import ray`` happens inside functions only, so importing this module costs nothing.

* Connecting (:func:`connect`): a process already connected to Ray keeps its connection.
  Otherwise ``address`` (or the ``RAY_ADDRESS`` environment variable) joins a running cluster —
  ``"auto"`` finds one started on this machine with ``ray start --head`` — and no address starts a
  private local instance (``ray.init(address="local")``).  A cluster that cannot be reached or
  joined raises one :class:`~automl.errors.ClusterError` that says what to check.
* Token authentication (Ray >= 2.59): a local instance enables it by itself.  ``"auto"`` turns it
  on when a token is found (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN_PATH`` or ``RAY_AUTH_TOKEN``);
  an explicit ``host:port`` needs ``RAY_AUTH_MODE=token`` and the cluster's token in this process's
  environment (Ray never enables it for explicit addresses).  See docs/ray.md.
* Actors: ``num_actors`` evaluator actors, each asking for ``num_cpus_per_actor`` CPUs and
  ``num_gpus_per_actor`` GPUs (fractions allowed: 0.5 puts two actors on one GPU; Ray sets
  ``CUDA_VISIBLE_DEVICES`` in each).  The space and evaluator specs go into the object store once
  (``ray.put``) and every actor, replacements included, builds its space and evaluator from that
  reference once.  Work goes only to started actors, ``tasks_per_actor`` (1) at a time, so the
  driver knows when each evaluation started and can time it.
* Faults: an actor that dies while evaluating (``os._exit``, segfault, OOM kill, lost node) is
  replaced and its candidate retried on the new actor, up to ``max_retries`` times, then
  reported failed (``transient``).  ``timeout`` is enforced by process isolation only: the driver
  kills and replaces an actor whose evaluation has run ``timeout`` seconds and reports the
  candidate ``"timed out after X s"`` (no signal inside the evaluation).  An actor whose
  construction fails (bad evaluator option, missing module on the workers) is a configuration
  error, raised at once.
* The cache, the run log and in-flight de-duplication stay with the engine on the driver; this
  runner only evaluates the texts it is given.
"""
from __future__ import annotations

import collections
import os
import socket
import sys
import time
from typing import Any

from ..errors import ClusterError, ConfigError
from ..evaluation import run_evaluation
from .base import PluginSpec, RetryPolicy, Runner
from .local import check_timeout

#: Seconds to wait for a TCP connection to an explicit cluster address before giving up.
CONNECT_PROBE_S = 5.0


def _grace(timeout: float) -> float:
    """Extra seconds the driver waits past ``timeout`` before killing an actor: the shared
    :class:`~automl.runners.base.RetryPolicy` (none: no signal runs inside the actor, so the
    driver's kill is the timeout)."""
    return RetryPolicy().grace(timeout)


# --- connecting ------------------------------------------------------------------------------------

def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` (optionally ``ray://host:port``) -> (host, port); None when not of that form."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _auth_hint() -> str:
    mode = os.environ.get("RAY_AUTH_MODE")
    return (" If the cluster uses token authentication (the default for clusters started on a machine "
            "that holds a Ray token, Ray >= 2.59), export RAY_AUTH_MODE=token and make the cluster's token "
            "available here: copy ~/.ray/auth_token from the head node, or set RAY_AUTH_TOKEN_PATH or "
            f"RAY_AUTH_TOKEN (RAY_AUTH_MODE is {mode!r} in this process).  See docs/ray.md.")


def connect(address: str | None = None, init_kwargs: dict[str, Any] | None = None) -> bool:
    """Connect this process to Ray; return True when this call initialised Ray.

    A process already connected keeps its connection (``address`` is then ignored).  ``address``
    None falls back to ``RAY_ADDRESS``, then to a new private local instance.  Raises
    :class:`ClusterError` when the cluster cannot be reached or joined.
    """
    from .._optional import require

    ray = require("ray", "the ray runner")
    if ray.is_initialized():
        return False
    addr = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"log_to_driver": True}
    if addr == "local":
        kwargs["include_dashboard"] = False
    kwargs.update(init_kwargs or {})
    hp = None if addr in ("local", "auto") else _host_port(addr)
    if addr not in ("local", "auto") and hp is None:
        raise ClusterError(f"bad Ray address {addr!r}: use host:port, ray://host:port or auto")
    if hp is not None:  # fail in seconds, not after Ray's minute of retries
        try:
            socket.create_connection(hp, timeout=CONNECT_PROBE_S).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ClusterError(f"cannot reach the Ray cluster at {addr}: {reason}.  Is `ray start --head` "
                               f"running there, and is port {hp[1]} open from this machine?") from None
    try:
        ray.init(address=addr, **kwargs)
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if addr == "auto" and "find any running Ray instance" in first:
            raise ClusterError("no running Ray cluster found for address 'auto'.  Start one with `ray start "
                               "--head`, give its host:port, or leave the address unset to start a local Ray "
                               "instance.") from None
        if addr == "local":
            raise ClusterError(f"could not start a local Ray instance: {first}") from None
        raise ClusterError(f"could not join the Ray cluster at {addr}: {first}." + _auth_hint()) from None
    return True


# --- the actor -------------------------------------------------------------------------------------

class EvaluatorActor:
    """One worker: builds the space and evaluator once, then evaluates candidate texts.

    Wrapped with ``ray.remote`` by :class:`RayRunner`; usable as a plain object in tests.
    """

    def __init__(self, specs: tuple[PluginSpec, PluginSpec], torch_threads: int | None = 1):
        self.torch_threads = torch_threads
        if torch_threads:
            # Read by torch/MKL/OpenMP at import; set before the evaluator can import torch.
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[var] = str(torch_threads)
        space, evaluator = specs
        self.space = space.build("space")
        self.evaluator = evaluator.build("evaluator")
        self._torch_threads_set = False
        self._set_torch_threads()
        import ray

        ctx = ray.get_runtime_context()
        self.worker = f"{ctx.get_node_id()[:8]}:{os.getpid()}"

    def _set_torch_threads(self) -> None:
        """torch.set_num_threads once torch is loaded (never imports torch itself)."""
        if self.torch_threads and not self._torch_threads_set and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(self.torch_threads))
            self._torch_threads_set = True

    def info(self) -> dict[str, Any]:
        """Where this actor runs and what Ray gave it (pid, node, GPU ids, CUDA_VISIBLE_DEVICES)."""
        import ray

        ctx = ray.get_runtime_context()
        return {"pid": os.getpid(), "worker": self.worker, "node_id": ctx.get_node_id(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}

    def evaluate(self, text: str, timeout: float | None) -> dict[str, Any]:
        out = run_evaluation(self.evaluator, self.space, text, timeout)
        self._set_torch_threads()
        out["worker"] = self.worker
        return out

    def close(self) -> None:
        self.evaluator.close()


_remote_actor_cls: Any = None


def _actor_class() -> Any:
    global _remote_actor_cls
    if _remote_actor_cls is None:
        import ray

        _remote_actor_cls = ray.remote(EvaluatorActor)
    return _remote_actor_cls


# --- the runner ------------------------------------------------------------------------------------

#: With ``tasks_per_actor=None``, actors get a second queued task while evaluations average below
#: this many seconds: the next one then starts without waiting for a driver round trip.
PIPELINE_BELOW_S = 0.02


class RayRunner(Runner):
    """Evaluator actors on Ray (see the module docstring for connection, placement and faults).

    ``address``: the cluster to join (``"auto"``, ``"host:port"``, ``"ray://..."``; None: start or
    join a local one).  ``max_retries``: re-runs of a candidate whose actor died, before it is
    recorded ``failed``.

    ``num_actors`` defaults to what the cluster has free at start: available CPUs /
    ``num_cpus_per_actor``, and with GPUs requested also at most available GPUs /
    ``num_gpus_per_actor``.  ``num_cpus_per_actor`` is always passed to Ray explicitly (an actor
    given only a fractional GPU would otherwise hold a whole CPU).  ``torch_threads`` caps each
    actor's torch/OpenMP threads.  ``init_kwargs`` go to ``ray.init`` (e.g. ``runtime_env``).
    Constructing the runner connects to Ray (see :func:`connect`), so a bad address fails early.
    ``tasks_per_actor``: evaluations handed to one actor at a time (it runs them in order, so the
    next starts without a driver round trip; worth it only for evaluations of a few ms).  None:
    2 while evaluations average below PIPELINE_BELOW_S, else 1.  When an actor holding several
    dies and it is unclear which one it was running (results lost with the process), none is
    charged an attempt; each is re-run alone on an actor, where a death is unambiguous.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_actors: int | None = None, num_gpus_per_actor: float = 0.0,
                 num_cpus_per_actor: float = 1.0, max_retries: int = 2, torch_threads: int | None = 1,
                 init_kwargs: dict[str, Any] | None = None, tasks_per_actor: int | None = 1):
        if num_actors is not None and int(num_actors) < 1:
            raise ConfigError(f"num_actors must be >= 1, got {num_actors}")
        if num_gpus_per_actor is None or not 0.0 <= float(num_gpus_per_actor):
            raise ConfigError(f"num_gpus_per_actor must be >= 0, got {num_gpus_per_actor}")
        if float(num_gpus_per_actor) > 1.0 and not float(num_gpus_per_actor).is_integer():
            raise ConfigError(f"num_gpus_per_actor above 1 must be a whole number, got {num_gpus_per_actor}")
        if not 0.0 <= float(num_cpus_per_actor):
            raise ConfigError(f"num_cpus_per_actor must be >= 0, got {num_cpus_per_actor}")
        if int(max_retries) < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if tasks_per_actor is not None and int(tasks_per_actor) < 1:
            raise ConfigError(f"tasks_per_actor must be >= 1, got {tasks_per_actor}")
        self.address = address
        self.num_actors = None if num_actors is None else int(num_actors)
        self.num_gpus_per_actor = float(num_gpus_per_actor or 0.0)
        self.num_cpus_per_actor = float(num_cpus_per_actor)
        self.max_retries = int(max_retries)
        self.retry = RetryPolicy(self.max_retries)
        self.torch_threads = torch_threads
        self.init_kwargs = dict(init_kwargs or {})
        self.tasks_per_actor = None if tasks_per_actor is None else int(tasks_per_actor)
        self._n = 0
        self._started = False
        # Connect now: a cluster that cannot be joined fails before a run directory is written.
        connect(self.address, self.init_kwargs)

    # --- set-up ------------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return max(self._n, 1) * self._depth()

    def _depth(self) -> int:
        if self.tasks_per_actor is not None:
            return self.tasks_per_actor
        if not self._started or self._n_results < 2 * self._n:
            return 1
        return 2 if self._mean_cost < PIPELINE_BELOW_S else 1

    def _default_actors(self, ray: Any) -> int:
        free = ray.available_resources()
        total = ray.cluster_resources()
        if self.num_gpus_per_actor > 0 and total.get("GPU", 0.0) < self.num_gpus_per_actor:
            raise ClusterError(f"each actor asks for {self.num_gpus_per_actor:g} GPU but the Ray cluster has "
                               f"{total.get('GPU', 0.0):g} GPUs")
        if self.num_cpus_per_actor > total.get("CPU", 0.0):
            raise ClusterError(f"each actor asks for {self.num_cpus_per_actor:g} CPUs but the Ray cluster has "
                               f"{total.get('CPU', 0.0):g}")
        if self.num_actors is not None:
            return self.num_actors
        counts = []
        if self.num_cpus_per_actor > 0:
            counts.append(int(free.get("CPU", 0.0) / self.num_cpus_per_actor + 1e-9))
        if self.num_gpus_per_actor > 0:
            counts.append(int(free.get("GPU", 0.0) / self.num_gpus_per_actor + 1e-9))
        if not counts:
            raise ConfigError("give num_actors when actors ask for neither CPUs nor GPUs")
        return max(min(counts), 1)

    def start(self, space: PluginSpec, evaluator: PluginSpec, timeout: float | None = None) -> None:
        """Connect, then start the actor pool (actors become usable as they finish building)."""
        if not isinstance(space, PluginSpec) or not isinstance(evaluator, PluginSpec):
            raise ConfigError("the ray runner needs the space and evaluator as PluginSpecs (PluginSpec.of(obj) "
                              "makes one from an object)")
        timeout = check_timeout(timeout)
        connect(self.address, self.init_kwargs)
        import ray

        self._ray = ray
        self.timeout = timeout
        self._n = self._default_actors(ray)
        self._specs_ref = ray.put((space, evaluator))  # once; every actor gets the reference
        self._actors: dict[int, Any] = {}  # actor key -> handle
        self._info: dict[int, dict[str, Any]] = {}  # actor key -> EvaluatorActor.info()
        self._starting: dict[Any, int] = {}  # info() ref -> actor key, until the actor is built
        self._ready: list[int] = []  # built actors, in start order
        # actor key -> (ref, task id) in the actor's order
        self._assigned: dict[int, collections.deque[tuple[Any, int]]] = {}
        self._running: dict[Any, tuple[int, int]] = {}  # ref -> (actor key, task id)
        self._since: dict[int, float] = {}  # actor key -> when its first assigned task started
        self._queue: collections.deque[int] = collections.deque()  # task ids waiting for an actor
        self._suspects: set[int] = set()  # held by an actor that died ambiguously: run alone
        self._texts: dict[int, str] = {}
        self._attempts: dict[int, int] = {}
        self._next_key = 0
        self._n_results, self._mean_cost = 0, 0.0
        self.actors_started = 0
        self._started = True
        for _ in range(self._n):
            self._new_actor()

    def _new_actor(self) -> None:
        cls = _actor_class().options(num_cpus=self.num_cpus_per_actor, num_gpus=self.num_gpus_per_actor,
                                     max_restarts=0, max_task_retries=0)
        handle = cls.remote(self._specs_ref, self.torch_threads)
        key, self._next_key = self._next_key, self._next_key + 1
        self._actors[key] = handle
        self._starting[handle.info.remote()] = key
        self.actors_started += 1

    def _drop_actor(self, key: int) -> list[int]:
        """End actor ``key``; return the task ids it held, the one it was running first."""
        handle = self._actors.pop(key, None)
        self._info.pop(key, None)
        self._since.pop(key, None)
        if key in self._ready:
            self._ready.remove(key)
        held = []
        for ref, task_id in self._assigned.pop(key, ()):
            self._running.pop(ref, None)
            held.append(task_id)
        if handle is not None:
            try:
                self._ray.kill(handle, no_restart=True)
            except (ValueError, self._ray.exceptions.RayError):  # already gone
                pass
        return held

    def _requeue_unstarted(self, task_ids: list[int]) -> None:
        """Queue again, first, tasks that did not (knowingly) run on a lost actor: no attempt charged."""
        for task_id in reversed(task_ids):
            self._attempts[task_id] -= 1
            self._queue.appendleft(task_id)

    def actor_info(self) -> list[dict[str, Any]]:
        """Info of every started, live actor (pid, node, GPU ids, CUDA_VISIBLE_DEVICES)."""
        return [dict(v) for _, v in sorted(self._info.items())]

    # --- submit / poll -----------------------------------------------------------------------------
    def submit(self, task_id: int, text: str, genome: Any = None) -> None:
        """Queue ``text`` for the next free actor (``genome`` is ignored: actors parse the text)."""
        self._texts[task_id] = text
        self._attempts.setdefault(task_id, 0)
        self._queue.append(task_id)
        self._dispatch()

    def _dispatch(self) -> None:
        depth = self._depth()
        while self._queue:
            alone = self._queue[0] in self._suspects
            free = [k for k in self._ready if not self._assigned[k]] if alone else [
                k for k in self._ready if len(self._assigned[k]) < depth
                and not any(t in self._suspects for _, t in self._assigned[k])]
            if not free:
                return
            key = min(free, key=lambda k: len(self._assigned[k]))
            task_id = self._queue.popleft()
            self._attempts[task_id] += 1
            ref = self._actors[key].evaluate.remote(self._texts[task_id], self.timeout)
            if not self._assigned[key]:
                self._since[key] = time.monotonic()
            self._assigned[key].append((ref, task_id))
            self._running[ref] = (key, task_id)

    def _finish(self, task_id: int, raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._suspects.discard(task_id)
        raw["attempts"] = self._attempts.pop(task_id)
        self._texts.pop(task_id, None)
        return task_id, raw

    def _lost(self, task_id: int, why: str, started: float, out: list[tuple[int, dict[str, Any]]]) -> None:
        """The actor running ``task_id`` is gone: retry the candidate, or give it up as failed."""
        if self.retry.gives_up(self._attempts[task_id]):
            out.append(self._finish(task_id, {
                "objectives": None, "cost_s": time.monotonic() - started, "failure": "transient",
                "error": f"evaluator actor died {self._attempts[task_id]} times evaluating this candidate "
                         f"(last: {why})"}))
        else:
            self._queue.appendleft(task_id)

    def poll(self, timeout: float | None = None) -> list[tuple[int, dict[str, Any]]]:
        if not (self._queue or self._running):
            return []
        ray = self._ray
        until = None if timeout is None else time.monotonic() + timeout
        out: list[tuple[int, dict[str, Any]]] = []
        while True:
            self._dispatch()
            refs = list(self._running) + list(self._starting)
            if not refs:  # cannot happen while actors are replaced on every loss; never spin
                raise ClusterError("no evaluator actor is running or starting")
            now = time.monotonic()
            wait = None if until is None else max(until - now, 0.0)
            if self.timeout is not None and self._since:
                kill_at = min(self._since.values()) + self.timeout + _grace(self.timeout)
                wait = max(kill_at - now, 0.0) if wait is None else min(wait, max(kill_at - now, 0.0))
            done, rest = ray.wait(refs, num_returns=1, timeout=wait)
            if done and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                done += more
            for ref in done:
                if ref in self._starting:
                    self._started_actor(ref)
                elif ref in self._running:  # (not already dropped with its dead actor)
                    self._completed(ref, out)
            self._enforce_timeouts(out)
            self._dispatch()
            if out or (until is not None and time.monotonic() >= until):
                return out

    def _started_actor(self, ref: Any) -> None:
        ray = self._ray
        key = self._starting.pop(ref)
        try:
            self._info[key] = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            if exc.actor_init_failed:
                lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
                self.close()
                raise ConfigError(f"the evaluator actor failed to start: {lines[-1] if lines else exc}") from None
            self._drop_actor(key)  # lost before it was built (node gone): try again
            self._new_actor()
            return
        self._ready.append(key)
        self._assigned[key] = collections.deque()

    def _completed(self, ref: Any, out: list[tuple[int, dict[str, Any]]]) -> None:
        ray = self._ray
        key, task_id = self._running[ref]
        try:
            raw = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the actor died (or its worker crashed)
            self._actor_lost(key, exc, out)
            return
        self._record(key, ref, task_id, raw, out)

    def _record(self, key: int, ref: Any, task_id: int, raw: dict[str, Any], out: list[tuple[int, dict[str, Any]]]) -> None:
        del self._running[ref]
        q = self._assigned[key]
        q.remove((ref, task_id))  # the head: an actor runs its tasks in order
        if q:
            self._since[key] = time.monotonic()  # the next one has started
        else:
            self._since.pop(key, None)
        self._n_results += 1
        self._mean_cost += (float(raw.get("cost_s", 0.0)) - self._mean_cost) / min(self._n_results, 50)
        out.append(self._finish(task_id, raw))

    def _actor_lost(self, key: int, exc: Exception, out: list[tuple[int, dict[str, Any]]]) -> None:
        """Actor ``key`` is gone.  Its tasks ran in order: those whose results arrived keep them.  One
        task left was running: it is charged an attempt (retried, or failed after max_retries).
        Several left: a result may have been lost with the process, so which one was running is
        unknown; none is charged and each is re-run alone (see ``tasks_per_actor``)."""
        ray = self._ray
        why = type(exc).__name__
        if not isinstance(exc, ray.exceptions.RayActorError) and str(exc):
            why += f": {str(exc).splitlines()[0]}"
        started = self._since.get(key, time.monotonic())
        held = list(self._assigned.get(key, ()))
        ready, _ = ray.wait([r for r, _ in held], num_returns=len(held), timeout=0) if held else ([], [])
        for ref, task_id in held:
            if ref not in ready:
                break
            try:
                raw = ray.get(ref)
            except ray.exceptions.RayError:
                break
            self._record(key, ref, task_id, raw, out)
        rest = self._drop_actor(key)
        self._new_actor()
        if len(rest) == 1:  # everything before it finished: it was running
            self._lost(rest[0], why, started, out)
        elif rest:  # results may have died with the process: unclear which ran; charge none
            self._suspects.update(rest)
            self._requeue_unstarted(rest)

    def _enforce_timeouts(self, out: list[tuple[int, dict[str, Any]]]) -> None:
        if self.timeout is None:
            return
        now = time.monotonic()
        limit = self.timeout + _grace(self.timeout)
        for key, since in list(self._since.items()):
            if now - since >= limit:
                held = self._drop_actor(key)
                self._new_actor()
                self._requeue_unstarted(held[1:])
                out.append(self._finish(held[0], {"objectives": None, "cost_s": now - since, "failure": "timeout",
                                                  "error": f"timed out after {self.timeout:g} s"}))

    def kill(self) -> None:
        """End every actor now (a second Ctrl-C)."""
        if self._started:
            for key in list(self._actors):
                self._drop_actor(key)

    def close(self) -> None:
        """Let idle actors close their evaluators, then end every actor (Ray itself stays up)."""
        if not self._started:
            return
        self._started = False
        ray = self._ray
        idle = [self._actors[k] for k in self._ready if not self._assigned.get(k)]
        if idle:
            ray.wait([a.close.remote() for a in idle], num_returns=len(idle), timeout=5.0)
        for key in list(self._actors):
            self._drop_actor(key)
        self._running.clear()
        self._starting.clear()
        self._queue.clear()
        self._suspects.clear()
        self._n = 0


__all__ = ["RayRunner", "EvaluatorActor", "connect"]
