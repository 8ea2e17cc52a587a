"""ProgramOptimizer: an optimizer program (space "optimizer-programs") as a torch.optim.Optimizer.

Each step runs the program once per param group, over all parameters of the group that have a
gradient, with inputs ``w`` (the parameters), ``g`` (their gradients), ``m``, ``v`` (state slots,
zero at the start), ``lr`` (the group's current ``lr``, so torch LR schedulers work) and ``t``
(the parameter's step count, 1-based), then applies ``w = w - update``.  Whole-model reductions
(``dot``, ``global_norm``, ...) sum over all parameters of the group.  Math runs in the
parameters' dtype on their device; scalars that depend only on ``lr``, ``t`` and constants are
computed on the host in float64 (as torch's own optimizers do), reductions stay on the device.

Hyper-parameters: the program's tunable constants (``constants.constants``) are per-group
options with the program's values as defaults, named by :func:`hyperparameter_names`; the plan
reads them from registers fed by the group at every step, so param groups, constructor keywords
and schedulers set them as they set torch's ``weight_decay`` or ``momentum``.

Per-parameter state: ``step`` (int) and the program's *live* slots among ``m`` and ``v`` (a slot
the update never reads cannot change the weights, so it is neither computed nor stored).

Backends.  ``"foreach"``: elementwise ops run over all parameters at once with
``torch._foreach_*`` kernels, write in place into buffers that are dead afterwards or into scratch
buffers kept across steps (no per-step allocation), and ``x + y*c`` / ``w - y*c`` are fused into
one ``add(alpha=c)`` pass (which may round once where the program rounds twice).  ``"interp"``:
the per-tensor torch implementation of the function table (search_spaces/programs/ops.py), op by
op.  ``"compile"``: the program lowered to straight-line per-parameter code (``_lowered_step``)
and torch.compile'd, so inductor fuses the whole update into one loop per parameter (the
interpreter's "foreach" path is the fallback when compiling fails).  All agree with the numpy
interpreter that the hash uses to ~1e-15 relative per step (tests/test_optim.py checks every op
and random programs; tests/test_program_optimizer_contract.py the lowering and torch's contract).

Imports torch at module import (torch._dynamo only when a step is compiled); ``import automl``
never imports this module.
"""
from __future__ import annotations

import functools
import itertools
import numbers
import os
import shutil
import warnings
from types import FunctionType
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from automl._optional import missing_error
from automl.errors import ConfigError

from .ops import clamp_bound

try:
    import torch
except ModuleNotFoundError as exc:
    raise missing_error([exc.name or "torch"], "ProgramOptimizer") from exc

SPACE = "optimizer-programs"
# register numbers of the inputs (fixed by the program IR)
_W, _G, _M, _V, _LR, _T = range(6)


class PerParam(list):
    """A scalar that differs between parameters (``t`` when parameters have different step counts)."""


def load_program(program: Any, space: Any = None):
    """A validated program genome from text, a genome, or a run-log record (a dict whose
    ``"candidate"`` holds the text; its ``"space"``, when given, must name a program space).
    Raises ParseError for bad text and InvalidCandidate for a program that does not type-check."""
    from automl import registry

    if isinstance(program, Mapping):
        if "candidate" not in program:
            raise ConfigError("a log record must have a 'candidate' key holding the program text")
        space = space or program.get("space") or SPACE
        program = program["candidate"]
    if space is None or isinstance(space, str):
        # a name from a logged record resolves only to a registered space (never imports a module)
        space = registry.create("space", space or getattr(program, "automl_space", None) or SPACE)
    genome = space.from_text(program) if isinstance(program, str) else program
    space.validate(genome)
    return genome, space


# --- fast kernels (torch._foreach_*) ----------------------------------------------------------------
# A kernel takes (args, donate, scratch): tensor arguments are lists of tensors (one per
# parameter), scalar arguments floats or 0-d tensors; ``donate`` is the index of an argument whose
# buffers may be overwritten (or None).  Results go in place into the donated argument, else into a
# scratch buffer (persistent across steps, so large models do not pay for fresh allocations every
# step).  Returns the result list, or None when this argument pattern has no fast form (the caller
# then uses the function table's per-tensor torch impl).  The same elementwise kernels run either
# way, so the fast path computes exactly what the per-tensor torch ops compute.

class _Scratch:
    """Free scratch buffer lists for one group.  ``per_tensor``: fill a fresh buffer with one
    ``out=`` call per tensor (one memory pass; for large tensors) instead of copy + in-place
    foreach op (two passes, two dispatches in all; for many small tensors)."""

    def __init__(self, params: list):
        self.params = params
        self.free: list[list] = []
        self.per_tensor = sum(p.numel() for p in params) >= 8192 * len(params)

    def take(self) -> list:
        return self.free.pop() if self.free else [torch.empty_like(p) for p in self.params]

    def fresh(self, x: list, f_out: Callable, f_inplace: Callable, *rest) -> list:
        """A scratch buffer holding ``f(x, *rest)`` (``rest``: lists or scalars)."""
        d = self.take()
        if self.per_tensor:
            for i, (xi, di) in enumerate(zip(x, d)):
                f_out(xi, *[r[i] if isinstance(r, list) else r for r in rest], out=di)
        else:
            torch._foreach_copy_(d, x)
            f_inplace(d, *rest)
        return d


def _is_scalar(a: Any) -> bool:
    return isinstance(a, float) or (isinstance(a, torch.Tensor) and a.dim() == 0)


def _unary(name: str, torch_name: str) -> Callable:
    f, f_ = getattr(torch, torch_name), getattr(torch, f"_foreach_{torch_name}_")

    def kernel(args, donate, scratch):
        if donate == 0:
            f_(args[0])
            return args[0]
        return scratch.fresh(args[0], f, f_)

    return kernel


def _binary(name: str, commutative: bool, scalar_name: str | None = None) -> Callable:
    f, f_ = getattr(torch, name), getattr(torch, f"_foreach_{name}_")
    fs, fs_ = (getattr(torch, scalar_name), getattr(torch, f"_foreach_{scalar_name}_")) if scalar_name else (f, f_)

    def kernel(args, donate, scratch):
        x, y = args
        if isinstance(x, list) and isinstance(y, list):
            if donate == 1 and commutative:
                f_(y, x)
                return y
            if donate == 0:
                f_(x, y)
                return x
            return scratch.fresh(x, f, f_, y)
        if isinstance(x, list) and _is_scalar(y):
            if scalar_name and not isinstance(y, float):
                return None
            if scalar_name and x:  # a clamp bound: as the tensors' dtype would hold it (ops.clamp_bound)
                y = clamp_bound(y, x[0])
            if donate == 0:
                fs_(x, y)
                return x
            return scratch.fresh(x, fs, fs_, y)
        if commutative and isinstance(y, list) and _is_scalar(x):
            return kernel([y, x], 0 if donate == 1 else None, scratch)
        return None

    return kernel


_SUB = _binary("sub", False)


def _sub(args, donate, scratch):
    x, y = args
    if isinstance(y, list) and (isinstance(x, float) or (isinstance(x, list) and donate == 1)):
        # x - y == (-y) + x exactly
        if donate == 1:
            torch._foreach_neg_(y)
            d = y
        else:
            d = scratch.fresh(y, torch.neg, torch._foreach_neg_)
        torch._foreach_add_(d, x)
        return d
    return _SUB(args, donate, scratch)


def _square(args, donate, scratch):
    x = args[0]
    if donate == 0:
        torch._foreach_mul_(x, x)
        return x
    return scratch.fresh(x, torch.mul, torch._foreach_mul_, x)


def _interp(args, donate, scratch):
    x, y, a = args
    if not (isinstance(x, list) and isinstance(y, list) and isinstance(a, float)):
        return None
    if donate == 1:
        torch._foreach_mul_(y, a)
        torch._foreach_add_(y, x, alpha=1.0 - a)
        return y
    if donate == 0:
        torch._foreach_mul_(x, 1.0 - a)
        d = x
    else:
        d = scratch.fresh(x, torch.mul, torch._foreach_mul_, 1.0 - a)
    torch._foreach_add_(d, y, alpha=a)
    return d


FAST: dict[str, Callable] = {
    "add": _binary("add", True), "sub": _sub, "mul": _binary("mul", True),
    "truediv": _binary("div", False), "pow": _binary("pow", False),
    "max": _binary("maximum", False, "clamp_min"), "min": _binary("minimum", False, "clamp_max"),
    "square": _square, "interp": _interp,
    **{op: _unary(op, name) for op, name in (
        ("neg", "neg"), ("abs", "abs"), ("sign", "sign"), ("sqrt", "sqrt"), ("exp", "exp"), ("log", "log"),
        ("sin", "sin"), ("cos", "cos"), ("tan", "tan"), ("arcsin", "asin"), ("arccos", "acos"),
        ("arctan", "atan"), ("sinh", "sinh"), ("cosh", "cosh"), ("tanh", "tanh"))},
}


def _scalar_apply(spec, args):
    """An op on scalars: numpy on the host for floats, the torch impl when a 0-d tensor is involved."""
    if any(isinstance(a, torch.Tensor) for a in args):
        return spec.torch(*args)
    with np.errstate(all="ignore"):
        return float(spec.np(*args))


def _apply(spec, args, donate, n, scratch):
    """One op.  ``scratch`` is None for the generic path (no fast kernels)."""
    if spec.arg_types is not None:  # whole-model reduction: lists in, scalar (or list) out
        return spec.torch(*args)
    lists = [a for a in args if isinstance(a, list)]
    if not lists:
        return _scalar_apply(spec, args)
    if all(isinstance(a, PerParam) for a in lists):  # per-parameter scalars only
        return PerParam(_scalar_apply(spec, [a[i] if isinstance(a, list) else a for a in args]) for i in range(n))
    if scratch is not None and not any(isinstance(a, PerParam) for a in lists):
        kernel = FAST.get(spec.name)
        if kernel is not None:
            out = kernel(args, donate, scratch)
            if out is not None:
                return out
    return [spec.torch(*[a[i] if isinstance(a, list) else a for a in args]) for i in range(n)]


class _Fused:
    """A fused op of the fast path: ``axpy(x, y, c) = x + y*c``, ``axmy(x, y, c) = x - y*c``
    (one memory pass through ``add(..., alpha=c)``, which may round once instead of twice)."""

    arg_types = None

    def __init__(self, name: str, sign: float):
        self.name, self.sign = name, sign

    def torch(self, x, y, c):
        return x + y * c if self.sign > 0 else x - y * c


def _axpy_kernel(args, donate, scratch, sign):
    x, y, c = args
    if not (isinstance(x, list) and isinstance(y, list) and isinstance(c, float)):
        return None
    alpha = sign * c
    if donate == 0:
        torch._foreach_add_(x, y, alpha=alpha)
        return x
    d = scratch.take()
    if scratch.per_tensor:
        for xi, yi, di in zip(x, y, d):
            torch.add(xi, yi, alpha=alpha, out=di)
    else:
        torch._foreach_copy_(d, x)
        torch._foreach_add_(d, y, alpha=alpha)
    return d


FAST["axpy"] = lambda args, donate, scratch: _axpy_kernel(args, donate, scratch, 1.0)
FAST["axmy"] = lambda args, donate, scratch: _axpy_kernel(args, donate, scratch, -1.0)
_AXPY, _AXMY = _Fused("axpy", 1.0), _Fused("axmy", -1.0)


def _scaled(op: str, args: tuple, types) -> tuple[int, Any] | None:
    """(tensor register, scalar operand) when ``op(*args)`` is ``tensor * scalar``, else None."""
    if op != "mul":
        return None
    a, b = args
    for y, c in ((a, b), (b, a)):
        if type(y) is int and types[y] == "tensor" and (type(c) is float or types[c] == "scalar"):
            return y, c
    return None


class _Plan:
    """The live instructions of a program, as run by ProgramOptimizer.

    Hyper-parameters: every read of a named constant (``hp_values[k]``) becomes a read of register
    ``hp_regs[k]``, fed from the param group at each step (the same Python float when the group keeps
    the program's value, so nothing changes numerically).  Statements whose arguments are all
    constants are folded once here, with the numpy function the step would use.  With ``fuse``, a
    ``tensor * scalar`` read only by an add/sub becomes an axpy, and one read only as the update
    becomes ``w.sub_(y, alpha=c)``; then each op gets its in-place (donation) and buffer-release
    decisions from liveness."""

    def __init__(self, genome, ops: Mapping[str, Any], fuse: bool, hp_values: tuple[float, ...] = ()):
        info = genome.info
        n0 = 6 + len(genome.instrs)
        types = list(info.types) + ["scalar"] * len(hp_values)
        self.n_regs = n0 + len(hp_values)
        self.hp_regs = tuple(range(n0, self.n_regs))
        hp_reg = {v: r for v, r in zip(hp_values, self.hp_regs)}
        self.outputs = genome.outputs
        self.live_slots = tuple({_M: "m", _V: "v"}[s] for s in info.live_slots)
        u, m, v = genome.outputs
        kept = {m if "m" in self.live_slots else None, v if "v" in self.live_slots else None}
        roots = [u] + [o for o in kept if o is not None]
        # (spec, dest, args): constants -> hyper-parameter registers, constant statements folded
        folded: dict[int, float] = {}
        code = []
        for ins, lv in zip(genome.instrs, info.live):
            if not lv:
                continue
            spec = ops[ins.op]
            args = tuple(folded.get(a, a) if type(a) is int else hp_reg.get(a, a) for a in ins.args)
            if spec.arg_types is None and all(type(a) is float for a in args):
                folded[ins.dest] = _scalar_apply(spec, list(args))
                continue
            code.append((spec, ins.dest, args))
        self.straight = tuple(code)  # before fusion: "interp" runs this, the lowered step its body
        # the lowered (compiled) step: a host prelude (scalar math on lr, t, hyper-parameters and
        # constants, in float64 like the other backends) and a body (the rest, fed the prelude's values
        # as inputs, so the compiled loop does not redo that math for every vector of elements)
        host = {_LR, _T, *self.hp_regs}
        self.prelude, self.body = [], []
        for spec, dest, args in code:
            if spec.arg_types is None and all(type(a) is float or a in host for a in args):
                self.prelude.append((spec, dest, args))
                host.add(dest)
            else:
                self.body.append((spec, dest, args))
        read = {a for _, _, args in self.body for a in args if type(a) is int}
        self.pre_regs = tuple(r for r in sorted(host) if r in read)  # host scalars the body reads
        self.final_scale = None  # (register y, scalar operand c): w -= y * c
        if fuse:
            uses: dict[int, int] = {}
            for _, _, args in code:
                for a in args:
                    if type(a) is int:
                        uses[a] = uses.get(a, 0) + 1
            for r in roots:
                uses[r] = uses.get(r, 0) + 1
            defs = {dest: (spec.name, args) for spec, dest, args in code}
            dropped: set[int] = set()
            fused = []
            for spec, dest, args in code:
                if spec.name in ("add", "sub"):
                    for k, t in enumerate(args):
                        if spec.name == "sub" and k == 0:
                            continue
                        x = args[1 - k]
                        sc = _scaled(*defs[t], types) if type(t) is int and t in defs else None
                        if sc is None or uses[t] != 1 or type(x) is not int or types[x] != "tensor":
                            continue
                        spec, args = (_AXMY if spec.name == "sub" else _AXPY), (x, sc[0], sc[1])
                        dropped.add(t)
                        break
                fused.append((spec, dest, args))
            sc = _scaled(*defs[u], types) if u in defs else None
            if sc is not None and uses[u] == 1 and u not in dropped:
                self.final_scale = sc
                dropped.add(u)
            code = [c for c in fused if c[1] not in dropped]
        # liveness over the final code: the update (or its scaled source) and kept slots are read last
        end_reads = [o for o in kept if o is not None]
        end_reads += list(self.final_scale) if self.final_scale else [u]
        last: dict[int, int] = {}
        for i, (_, _, args) in enumerate(code):
            for a in args:
                if type(a) is int:
                    last[a] = i
        for a in end_reads:
            if type(a) is int:
                last[a] = len(code)
        owned = {_M, _V} | {dest for _, dest, _ in code}
        self.code = []
        for i, (spec, dest, args) in enumerate(code):
            regs = [a for a in args if type(a) is int]
            dying = [a for a in dict.fromkeys(regs) if a in owned and last[a] == i and types[a] == "tensor"]
            donate = next((k for k, a in enumerate(args) if type(a) is int and a in dying and regs.count(a) == 1),
                          None)
            release = tuple(a for a in dying if donate is None or a != args[donate])
            self.code.append((spec, dest, args, donate, release))
        # after w -= update: buffers read there that are scratch (owned, not kept as state) go back
        self.release_end = tuple(a for a in dict.fromkeys(end_reads)
                                 if type(a) is int and a in owned and a not in kept and types[a] == "tensor")
        # slot outputs that must be copied: foreign buffers (w, g) or one buffer returned twice
        self.copy_m = m in (_W, _G)
        self.copy_v = v in (_W, _G) or (v == m and "m" in self.live_slots and "v" in self.live_slots)

    def run(self, params, grads, m, v, lr, t, hp, scratch: _Scratch | None):
        """One step: applies ``w -= update`` to ``params`` and returns (new m, new v).  ``hp``: the
        group's hyper-parameter values (floats); ``scratch``: the group's scratch buffers, or None
        for the generic path."""
        regs: list[Any] = [None] * self.n_regs
        regs[_W], regs[_G], regs[_M], regs[_V], regs[_LR], regs[_T] = params, grads, m, v, lr, t
        for r, x in zip(self.hp_regs, hp):
            regs[r] = x
        n = len(params)
        for spec, dest, args, donate, release in self.code:
            out = _apply(spec, [regs[a] if type(a) is int else a for a in args], donate, n, scratch)
            regs[dest] = out
            if scratch is not None:
                for r in release:
                    buf = regs[r]
                    if isinstance(buf, list) and buf is not out and not isinstance(buf, PerParam):
                        scratch.free.append(buf)
        mo, vo = regs[self.outputs[1]], regs[self.outputs[2]]
        if self.copy_m and mo is not None:
            mo = [x.clone() for x in mo]
        if self.copy_v and vo is not None:
            vo = [x.clone() for x in vo]
        if self.final_scale is None:
            torch._foreach_sub_(params, regs[self.outputs[0]])
        else:
            y, c = self.final_scale
            c = regs[c] if type(c) is int else c
            if isinstance(c, float):
                torch._foreach_sub_(params, regs[y], alpha=c)
            else:
                torch._foreach_sub_(params, [yi * (c[i] if isinstance(c, list) else c) for i, yi in enumerate(regs[y])])
        if scratch is not None:
            for r in self.release_end:
                buf = regs[r]
                if buf is not mo and buf is not vo:
                    scratch.free.append(buf)
        return mo, vo


# --- the lowered step (backend "compile") ------------------------------------------------------------

def _host_scalars(plan: _Plan, lr: float, steps: list[float], hp: list[float]) -> list[list[float]]:
    """The lowered step's host prelude: the values of ``plan.pre_regs``, one row for all parameters
    when their step counts agree, else one row per parameter.  Same numpy scalar math as "foreach"."""
    rows = []
    for t in (steps[:1] if all(s == steps[0] for s in steps) else steps):
        regs: dict[int, Any] = {_LR: lr, _T: t, **dict(zip(plan.hp_regs, hp))}
        for spec, dest, args in plan.prelude:
            regs[dest] = _scalar_apply(spec, [regs[a] if type(a) is int else a for a in args])
        rows.append([float(regs[r]) for r in plan.pre_regs])
    return rows


class _HostPrelude:
    """The host prelude's values (backend "compile", the common case of one step count for the
    whole group and a Python-float lr), with its costly part computed for a block of steps ahead.

    The prelude is scalar float64 math on ``lr``, ``t`` and the hyper-parameters, run through the
    op table's numpy functions, whose transcendental ops are ``automl.probe_math``'s (exact, but
    costly per call: ~100 us a step for AdamW's bias corrections, more than the fused update of a
    100 k-parameter model).  The statements that do not read ``lr`` (``1 - 0.999 ** t``: the
    costly ones) are run over an array of the next ``BLOCK`` values of ``t`` at once, for as
    long as the hyper-parameters hold; the few that read ``lr`` (``lr / bc1``, ``lr * 0.01``)
    run each step, so a scheduler changing lr at every step keeps the block.  The values are
    bit-identical to the per-step path's (:func:`_host_scalars`; tests/test_program_optimizer_contract.py):
    every op of the prelude is elementwise and probe_math computes an element of an array as it
    computes a scalar, except ``x ** t`` for t = 1..4, which a one-number exponent takes by exact
    repeated multiplication; so blocks start at ``t >= BLOCK_FROM`` only."""

    BLOCK = 256
    BLOCK_FROM = 5.0

    def __init__(self, plan: _Plan):
        self.plan = plan
        uses_lr = {_LR}
        self.t_part, self.lr_part = [], []
        for spec, dest, args in plan.prelude:
            if any(type(a) is int and a in uses_lr for a in args):
                uses_lr.add(dest)
                self.lr_part.append((spec, dest, args))
            else:
                self.t_part.append((spec, dest, args))
        # the t-part values the lr-part or the compiled body reads
        read = {a for _, _, args in self.lr_part for a in args if type(a) is int} | set(plan.pre_regs)
        self.t_regs = tuple(dest for _, dest, _ in self.t_part if dest in read)
        self.key: tuple | None = None
        self.t0 = 0.0
        self.block: np.ndarray | None = None  # (BLOCK, len(t_regs))

    def row(self, lr: float, t: float, hp: list[float]) -> np.ndarray:
        """The prelude's values (``plan.pre_regs`` order) at step ``t``, shape (1, n)."""
        if t < self.BLOCK_FROM or t != int(t):
            return np.array(_host_scalars(self.plan, lr, [t], hp))
        key = tuple(hp)
        if key != self.key or self.block is None or not 0 <= t - self.t0 < len(self.block):
            self.key, self.t0 = key, t
            self.block = self._t_block(np.arange(self.BLOCK, dtype=np.float64) + t, hp)
        vals = self.block[int(t - self.t0)]
        regs: dict[int, Any] = {_LR: lr, _T: t, **dict(zip(self.plan.hp_regs, hp))}
        for j, r in enumerate(self.t_regs):
            regs[r] = float(vals[j])
        with np.errstate(all="ignore"):  # what _scalar_apply does for floats, one errstate for all
            for spec, dest, args in self.lr_part:
                regs[dest] = float(spec.np(*[regs[a] if type(a) is int else a for a in args]))
        return np.array([[float(regs[r]) for r in self.plan.pre_regs]])

    def _t_block(self, ts: np.ndarray, hp: list[float]) -> np.ndarray:
        regs: dict[int, Any] = {_T: ts, **dict(zip(self.plan.hp_regs, hp))}
        with np.errstate(all="ignore"):
            for spec, dest, args in self.t_part:
                regs[dest] = spec.np(*[regs[a] if type(a) is int else a for a in args])
        out = np.empty((len(ts), len(self.t_regs)), dtype=np.float64)
        for j, r in enumerate(self.t_regs):
            out[:, j] = regs[r]
        return out


def _lowered_step(plan: _Plan, params, grads, ms, vs, pre) -> None:
    """One step of ``plan.body`` as straight-line per-parameter torch code, for torch.compile.

    A tensor register is a list with one tensor per parameter; a scalar register is one 0-d tensor
    shared by the group, or a list of per-parameter 0-d tensors when the parameters' step counts
    differ.  ``pre`` (float64, on the parameters' device) holds the host prelude's values
    (:func:`_host_scalars`: one row, or one per parameter), so a scheduler changing lr or a
    hyper-parameter does not recompile.  No host math and no branching on values: traced once,
    the group's update becomes one graph that inductor fuses into one loop per parameter.
    Updates ``params`` and the state buffers ``ms``/``vs`` in place."""
    n = len(params)
    regs: list[Any] = [None] * plan.n_regs
    regs[_W], regs[_G], regs[_M], regs[_V] = params, grads, ms, vs
    for j, r in enumerate(plan.pre_regs):
        regs[r] = pre[0, j] if pre.shape[0] == 1 else [pre[i, j] for i in range(n)]
    for spec, dest, args in plan.body:
        vals = [regs[a] if type(a) is int else a for a in args]
        if spec.arg_types is not None or not any(isinstance(x, list) for x in vals):
            regs[dest] = spec.torch(*vals)  # a whole-group reduction, or scalar math on one
        else:
            regs[dest] = [spec.torch(*[x[i] if isinstance(x, list) else x for x in vals]) for i in range(n)]
    u, mo, vo = plan.outputs
    writes = [(ms, mo, _M)] if "m" in plan.live_slots else []
    writes += [(vs, vo, _V)] if "v" in plan.live_slots else []
    # an output that is an input buffer overwritten below (w, m, v) is copied before the writes
    update = [x.clone() for x in regs[u]] if u in (_W, _M, _V) else regs[u]
    pending = [(dst, [x.clone() for x in regs[r]] if r in (_W, _M, _V) else regs[r])
               for dst, r, own in writes if r != own]
    for dst, src in pending:
        for d, s in zip(dst, src):
            d.copy_(s)
    for p, x in zip(params, update):
        p.sub_(x)


_compile_count = itertools.count()


def _compile(plan: _Plan) -> Callable:
    """``_lowered_step`` bound to ``plan``, through torch.compile.  Each plan gets its own copy of
    the function's code object, because dynamo keeps its compiled graphs (and its recompile limit)
    per code object: optimizers running different programs must not evict each other."""
    code = _lowered_step.__code__.replace(co_name=f"program_step_{next(_compile_count)}")
    fn = FunctionType(code, _lowered_step.__globals__, code.co_name)
    return torch.compile(functools.partial(fn, plan), fullgraph=True, dynamic=False)


def _have_cxx() -> bool:
    """torch.compile on CPU needs a C++ compiler (inductor's default search: $CXX, g++, c++, clang++)."""
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


# --- hyper-parameters ----------------------------------------------------------------------------------

#: Group keys that are not hyper-parameters of a program: torch's own ("params", "param_names",
#: "differentiable"), the learning rate, and what torch's schedulers add ("initial_lr", "swa_lr").
_GROUP_KEYS = frozenset({"params", "param_names", "lr", "initial_lr", "swa_lr", "differentiable"})


def hyperparameter_names(genome, text: str | None = None,
                         constant_names: Mapping[str, float] | None = None) -> dict[str, float]:
    """Name -> value of the program's tunable constants (``constants.constants``: distinct values of
    live statements, 0, ±1, ±2 and 0.5 excluded), in program order.  A constant is named, first
    match wins, by ``constant_names`` (name -> the program's value), by the names ``text`` binds
    to it (``beta1 = 0.9``), by the conventional names of a classic program whose text it is
    (``classic.CLASSIC_CONSTANT_NAMES``), else ``c1``, ``c2``... by its position in that order."""
    from .classic import CLASSIC_CONSTANT_NAMES, CLASSIC_PROGRAMS
    from .constants import constants
    from .ir import to_text
    from .parser import named_constants

    values = constants(genome)
    sources: list[tuple[str, float]] = []
    explicit = dict(constant_names or {})
    for name, value in explicit.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"constant_names[{name!r}] must be one of the program's constants, got {value!r}")
        if any(float(value) == v for _, v in sources):
            raise ConfigError(f"constant_names gives the constant {value!r} two names")
        if float(value) not in values:
            raise ConfigError(f"constant_names[{name!r}] = {value!r} is not a tunable constant of the program "
                              f"(its tunable constants: {values})")
        sources.append((name, float(value)))
    if text is not None:
        sources += named_constants(text)
    canonical = to_text(genome)
    for cname, ctext in CLASSIC_PROGRAMS.items():
        if ctext == canonical:
            sources += list(CLASSIC_CONSTANT_NAMES.get(cname, ()))
    named: dict[int, str] = {}
    taken: set[str] = set()
    for name, value in sources:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_") or name in _GROUP_KEYS:
            if any(name == n for n, _ in explicit.items()):
                raise ConfigError(f"{name!r} cannot name a hyper-parameter (reserved: {sorted(_GROUP_KEYS)})")
            continue
        if value in values and name not in taken and values.index(value) not in named:
            named[values.index(value)] = name
            taken.add(name)
    out: dict[str, float] = {}
    for k, value in enumerate(values):
        name = named.get(k)
        if name is None:
            name, j = f"c{k + 1}", 1
            while name in taken:
                j += 1
                name = f"c{k + 1}_{j}"
            taken.add(name)
        out[name] = value
    return out


def _real(name: str, value: Any) -> float:
    """A group hyper-parameter as a float; a tensor must hold one element (as torch requires of lr)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ConfigError(f"Tensor {name} must be 1-element, got shape {tuple(value.shape)}")
        if value.is_complex():
            raise ConfigError(f"{name} must be real, got a complex tensor")
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a real number or a 1-element tensor, got {type(value).__name__}")
    return float(value)


def _lr(value: Any) -> Any:
    """The group's lr as the program sees it: a float, or a 0-d tensor when it lives on an
    accelerator (kept there, no host sync).  Raises ConfigError like torch for a tensor lr that
    is not 1-element."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ConfigError(f"Tensor lr must be 1-element, got shape {tuple(value.shape)}")
        if value.is_complex() or not value.is_floating_point():
            raise ConfigError(f"Tensor lr must be a real floating-point tensor, got {value.dtype}")
        return float(value.item()) if value.device.type == "cpu" else value.detach().reshape(())
    return _real("lr", value)


BACKENDS = ("auto", "interp", "foreach", "compile")
#: backend "auto" compiles a param group holding at least this many elements (see docs/programs.md)
AUTO_COMPILE_NUMEL = 1 << 20


class ProgramOptimizer(torch.optim.Optimizer):
    """Run an optimizer program as a torch optimizer.

    ``program``: program text, a parsed program (``search_spaces.programs.Program``) or a log
    record dict with the text under ``"candidate"``.  ``lr`` is the default group learning rate
    fed to the program's ``lr`` input.

    Hyper-parameters: the program's tunable constants are per-group options like torch's
    ``weight_decay`` or ``betas``, defaulting to the program's values
    (``opt.hyperparameters``; names from :func:`hyperparameter_names`); ``**hyperparameters``
    overrides their defaults, a param group or a scheduler may set them per group
    (``{"params": no_decay, "weight_decay": 0.0}``), and an unknown group key raises ConfigError.

    ``backend``: "interp" (per-tensor torch ops, op by op), "foreach" (multi-tensor
    ``torch._foreach_*`` kernels with in-place buffer reuse), "compile" (the program lowered to
    straight-line code and torch.compile'd: one fused pass per parameter; falls back to "foreach"
    with a warning when compiling fails) or "auto" ("compile" for groups of at least
    ``AUTO_COMPILE_NUMEL`` elements when a compiler is available, else "foreach").  The default
    is "foreach": compiling is opt-in, as ``fused=True`` is for torch's optimizers, because a cold
    compile takes seconds to a minute on the first step.  ``foreach`` is the older spelling: False
    means "interp", True "foreach".

    Raises ParseError / InvalidCandidate for a bad program.  ``state_dict()`` also records the
    program text; loading a state saved by a different program raises ConfigError.  The optimizer
    survives copy.deepcopy, pickle and torch.save (the program travels as its text).
    """

    def __init__(self, params: Iterable[Any], program: Any, lr: Any = 1.0, *, backend: str | None = None,
                 foreach: bool | None = None, constant_names: Mapping[str, float] | None = None,
                 **hyperparameters: Any):
        if foreach is not None:
            if backend is not None and backend != ("foreach" if foreach else "interp"):
                raise ConfigError(f"foreach={foreach} contradicts backend={backend!r}")
            backend = "foreach" if foreach else "interp"
        backend = backend or "foreach"
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        genome, space = load_program(program)
        text = program.get("candidate") if isinstance(program, Mapping) else program
        names = hyperparameter_names(genome, text if isinstance(text, str) else None, constant_names)
        self._setup(space.to_text(genome), backend, names)
        unknown = sorted(set(hyperparameters) - set(names))
        if unknown:
            raise ConfigError(self._unknown_message(unknown))
        # "differentiable": torch's Optimizer adds it on unpickling; in from the start, copies compare equal
        defaults: dict[str, Any] = {"lr": lr, **names, **hyperparameters, "differentiable": False}
        super().__init__(params, defaults)

    def _setup(self, text: str, backend: str, names: Mapping[str, float]) -> None:
        """Build everything derived from the program (also after unpickling)."""
        genome, space = load_program(text)
        self.program = genome
        self.program_text: str = space.to_text(genome)
        self.backend = backend
        self._hp_defaults = dict(names)  # name -> the program's value (what the plan substitutes)
        values = tuple(self._hp_defaults.values())
        ops = type(space).OPS
        self._plan = _Plan(genome, ops, fuse=True, hp_values=values)  # "foreach"
        self._straight = _Plan(genome, ops, fuse=False, hp_values=values)  # "interp" and "compile"
        self._scratch: dict[int, tuple[tuple[int, ...], _Scratch]] = {}  # group index -> (param ids, buffers)
        self._compiled: Callable | None = None
        self._prelude = _HostPrelude(self._straight)
        self._compiled_ran = False
        self._compile_failed: str | None = None

    @property
    def foreach(self) -> bool:
        return self.backend != "interp"

    @property
    def hyperparameters(self) -> dict[str, float]:
        """Name -> the program's own value of each hyper-parameter (group defaults may differ)."""
        return dict(self._hp_defaults)

    def _unknown_message(self, keys) -> str:
        known = ", ".join(["lr", *self._hp_defaults]) or "lr"
        return (f"unknown hyper-parameter{'s' * (len(keys) > 1)} {', '.join(map(repr, keys))} for this program; "
                f"its hyper-parameters are: {known} (name a constant in the program text, e.g. "
                f"'weight_decay = 0.01', or with constant_names=)")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if isinstance(param_group, dict):
            unknown = sorted(k for k in param_group if k not in _GROUP_KEYS and k not in self._hp_defaults)
            if unknown:
                raise ConfigError(self._unknown_message(unknown))
            for name in self._hp_defaults:
                if name in param_group:
                    _real(name, param_group[name])
            if "lr" in param_group:
                _lr(param_group["lr"])
            if param_group.get("differentiable"):
                raise ConfigError("ProgramOptimizer does not support differentiable=True")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _lr(group["lr"])
        for name in self._hp_defaults:
            _real(name, group[name])
        lr = group["lr"]
        if not isinstance(lr, torch.Tensor) and not lr >= 0.0:
            raise ConfigError(f"Invalid learning rate: {lr}")

    # -- stepping -------------------------------------------------------------------------------------

    def _backend_for(self, params: list) -> str:
        if self.backend in ("interp", "foreach"):
            return self.backend
        if self._compile_failed is not None:
            return "foreach"
        if self.backend == "compile":
            return "compile"
        if sum(p.numel() for p in params) < AUTO_COMPILE_NUMEL:
            return "foreach"
        return "compile" if params[0].device.type != "cpu" or _have_cxx() else "foreach"

    def _step_compiled(self, params, grads, states, lr, hp) -> bool:
        """Run the compiled step; False (nothing changed) when torch.compile is unavailable."""
        dev = params[0].device
        lr = float(lr) if isinstance(lr, torch.Tensor) else lr  # the prelude runs on the host
        steps = [float(st["step"]) for st in states]
        if all(s == steps[0] for s in steps):
            row = self._prelude.row(lr, steps[0], hp)
            pre = torch.from_numpy(row) if dev.type == "cpu" else torch.tensor(row, device=dev)
        else:
            rows = _host_scalars(self._straight, lr, steps, hp)
            pre = torch.tensor(rows, dtype=torch.float64, device=dev).reshape(len(rows), len(self._straight.pre_regs))
        ms = [st["m"] for st in states] if "m" in self._straight.live_slots else []
        vs = [st["v"] for st in states] if "v" in self._straight.live_slots else []
        try:
            if self._compiled is None:
                self._compiled = _compile(self._straight)
            self._compiled(params, grads, ms, vs, pre)
            self._compiled_ran = True
            return True
        except (RuntimeError, OSError, ImportError) as exc:
            if self._compiled_ran:
                raise  # it compiled and ran before: this is the program's run-time error, not the compiler's
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            self._compile_failed = reason
            self._compiled = None
            if self.backend == "compile":
                warnings.warn(f"ProgramOptimizer: torch.compile failed ({reason}); using the foreach backend",
                              RuntimeWarning, stacklevel=3)
            return False

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = []
            for p in params:
                if p.grad.is_sparse:
                    raise ConfigError("ProgramOptimizer does not support sparse gradients")
                if p.is_complex():
                    raise ConfigError("ProgramOptimizer does not support complex parameters")
                grads.append(p.grad)
            lr = _lr(group["lr"])
            hp = [_real(name, group[name] if name in group else default)
                  for name, default in self._hp_defaults.items()]
            backend = self._backend_for(params)
            plan = self._plan if backend == "foreach" else self._straight
            states = [self.state[p] for p in params]
            for p, st in zip(params, states):
                if not st:
                    st["step"] = 0
                    for slot in plan.live_slots:
                        st[slot] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
            if backend == "compile":
                if self._step_compiled(params, grads, states, lr, hp):
                    continue
                backend, plan = "foreach", self._plan
            steps = [st["step"] for st in states]
            t: Any = float(steps[0]) if all(s == steps[0] for s in steps) else PerParam(float(s) for s in steps)
            m = [st["m"] for st in states] if "m" in plan.live_slots else None
            v = [st["v"] for st in states] if "v" in plan.live_slots else None
            scratch = None
            if backend == "foreach":
                key = tuple(id(p) for p in params)
                if gi not in self._scratch or self._scratch[gi][0] != key:
                    self._scratch[gi] = (key, _Scratch(params))
                scratch = self._scratch[gi][1]
            m_new, v_new = plan.run(params, grads, m, v, lr, t, hp, scratch)
            for slot, new in (("m", m_new), ("v", v_new)):
                if slot in plan.live_slots:
                    for st, x in zip(states, new):
                        st[slot] = x
        return loss

    # -- persistence --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["program"] = self.program_text
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        text = state_dict.get("program")
        if text is not None and text != self.program_text:
            raise ConfigError("this state_dict was saved by a ProgramOptimizer running a different program")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "program"})
        for group in self.param_groups:  # a state saved before the program had named hyper-parameters
            for name, default in self._hp_defaults.items():
                group.setdefault(name, default)

    def __getstate__(self) -> dict[str, Any]:
        # torch's Optimizer pickles defaults, state and param_groups only; the program travels as text
        state = super().__getstate__()
        state["program_text"] = self.program_text
        state["backend"] = self.backend
        state["hyperparameter_names"] = dict(self._hp_defaults)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # also called by torch's load_state_dict with only "state" and "param_groups": keep the program
        state = dict(state)
        text = state.pop("program_text", None)
        backend = state.pop("backend", "auto")
        names = state.pop("hyperparameter_names", None)
        super().__setstate__(state)
        if text is not None:
            self._setup(text, backend, names if names is not None else {})


__all__ = ["ProgramOptimizer", "load_program", "hyperparameter_names", "BACKENDS"]
