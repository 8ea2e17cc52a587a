"""ProgramOptimizer: an optimizer program (space "optimizer-programs") as a torch.optim.Optimizer.

Each step runs the program once per param group, over all parameters of the group that have a
gradient, with inputs ``w`` (the parameters), ``g`` (their gradients), ``m``, ``v`` (state slots,
zero at the start), ``lr`` (the group's current ``lr``, so torch LR schedulers work) and ``t``
(the parameter's step count, 1-based), then applies ``w = w - update``.  Whole-model reductions
(``dot``, ``global_norm``, ...) sum over all parameters of the group.  Math runs in the
parameters' dtype on their device; scalars that depend only on ``lr``, ``t`` and constants are
computed on the host in float64 (as torch's own optimizers do), reductions stay on the device.

Per-parameter state: ``step`` (int) and the program's *live* slots among ``m`` and ``v`` (a slot
the update never reads cannot change the weights, so it is neither computed nor stored).

Fast path (``foreach=True``, the default): elementwise ops run over all parameters at once with
``torch._foreach_*`` kernels, write in place into buffers that are dead afterwards or into scratch
buffers kept across steps (no per-step allocation), and ``x + y*c`` / ``w - y*c`` are fused into
one ``add(alpha=c)`` pass (which may round once where the program rounds twice).  Every other op,
and the whole generic path (``foreach=False``), uses the per-tensor torch implementation of the
function table (search_spaces/programs/ops.py).  Both agree with the numpy interpreter that the
hash uses to ~1e-15 relative per step (tests/test_optim.py checks every op and random programs).

Imports torch at module import; ``import automl`` never imports this module.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np

from automl._optional import missing_error
from automl.errors import ConfigError

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


def _scaled(ins, types) -> tuple[int, Any] | None:
    """(tensor register, scalar operand) when ``ins`` is ``tensor * scalar``, else None."""
    if ins.op != "mul":
        return None
    a, b = ins.args
    for y, c in ((a, b), (b, a)):
        if type(y) is int and types[y] == "tensor" and (type(c) is float or types[c] == "scalar"):
            return y, c
    return None


class _Plan:
    """The live instructions of a program, as run by ProgramOptimizer: with ``fuse``, a
    ``tensor * scalar`` read only by an add/sub becomes an axpy, and one read only as the update
    becomes ``w.sub_(y, alpha=c)``; then each op gets its in-place (donation) and buffer-release
    decisions from liveness."""

    def __init__(self, genome, ops: Mapping[str, Any], fuse: bool):
        info, types = genome.info, genome.info.types
        live = [ins for ins, lv in zip(genome.instrs, info.live) if lv]
        self.n_regs = 6 + len(genome.instrs)
        self.outputs = genome.outputs
        self.live_slots = tuple({_M: "m", _V: "v"}[s] for s in info.live_slots)
        u, m, v = genome.outputs
        kept = {m if "m" in self.live_slots else None, v if "v" in self.live_slots else None}
        roots = [u] + [o for o in kept if o is not None]
        # (spec, dest, args) after fusion
        code = [(ops[ins.op], ins.dest, ins.args) for ins in live]
        self.final_scale = None  # (register y, scalar operand c): w -= y * c
        if fuse:
            uses: dict[int, int] = {}
            for ins in live:
                for a in ins.args:
                    if type(a) is int:
                        uses[a] = uses.get(a, 0) + 1
            for r in roots:
                uses[r] = uses.get(r, 0) + 1
            defs = {ins.dest: ins for ins in live}
            dropped: set[int] = set()
            fused = []
            for spec, dest, args in code:
                if spec.name in ("add", "sub"):
                    for k, t in enumerate(args):
                        if spec.name == "sub" and k == 0:
                            continue
                        x = args[1 - k]
                        sc = _scaled(defs[t], types) if type(t) is int and t in defs else None
                        if sc is None or uses[t] != 1 or type(x) is not int or types[x] != "tensor":
                            continue
                        spec, args = (_AXMY if spec.name == "sub" else _AXPY), (x, sc[0], sc[1])
                        dropped.add(t)
                        break
                fused.append((spec, dest, args))
            sc = _scaled(defs[u], types) if u in defs else None
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

    def run(self, params, grads, m, v, lr, t, scratch: _Scratch | None):
        """One step: applies ``w -= update`` to ``params`` and returns (new m, new v).
        ``scratch``: the group's scratch buffers, or None for the generic path."""
        regs: list[Any] = [None] * self.n_regs
        regs[_W], regs[_G], regs[_M], regs[_V], regs[_LR], regs[_T] = params, grads, m, v, lr, t
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


class ProgramOptimizer(torch.optim.Optimizer):
    """Run an optimizer program as a torch optimizer.

    ``program``: program text, a parsed program (``search_spaces.programs.Program``) or a log
    record dict with the text under ``"candidate"``.  ``lr`` is the default group learning rate
    fed to the program's ``lr`` input.  ``foreach=False`` disables the fast multi-tensor path.
    Raises ParseError / InvalidCandidate for a bad program.  ``state_dict()`` also records the
    program text; loading a state saved by a different program raises ConfigError.
    """

    def __init__(self, params: Iterable[Any], program: Any, lr: float = 1.0, *, foreach: bool = True):
        genome, space = load_program(program)
        self.program = genome
        self.program_text: str = space.to_text(genome)
        self.foreach = bool(foreach)
        self._plan = _Plan(genome, type(space).OPS, fuse=self.foreach)
        self._scratch: dict[int, tuple[tuple[int, ...], _Scratch]] = {}  # group index -> (param ids, buffers)
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plan = self._plan
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
            states = [self.state[p] for p in params]
            for p, st in zip(params, states):
                if not st:
                    st["step"] = 0
                    for slot in plan.live_slots:
                        st[slot] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
            steps = [st["step"] for st in states]
            t: Any = float(steps[0]) if all(s == steps[0] for s in steps) else PerParam(float(s) for s in steps)
            lr = group["lr"]
            lr = float(lr) if not isinstance(lr, torch.Tensor) else lr
            m = [st["m"] for st in states] if "m" in plan.live_slots else None
            v = [st["v"] for st in states] if "v" in plan.live_slots else None
            scratch = None
            if self.foreach:
                key = tuple(id(p) for p in params)
                if gi not in self._scratch or self._scratch[gi][0] != key:
                    self._scratch[gi] = (key, _Scratch(params))
                scratch = self._scratch[gi][1]
            m_new, v_new = plan.run(params, grads, m, v, lr, t, scratch)
            for slot, new in (("m", m_new), ("v", v_new)):
                if slot in plan.live_slots:
                    for st, x in zip(states, new):
                        st[slot] = x
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["program"] = self.program_text
        return sd

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        text = state_dict.get("program")
        if text is not None and text != self.program_text:
            raise ConfigError("this state_dict was saved by a ProgramOptimizer running a different program")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "program"})


__all__ = ["ProgramOptimizer", "load_program"]
