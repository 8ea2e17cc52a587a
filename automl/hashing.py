"""The unified hash: structural and functional digests for every representation.

Functional digest (what a candidate computes)
  1. run the candidate on a fixed, seeded probe (``SearchSpace.probe`` or, for a plain Python
     callable, :func:`probe_inputs`);
  2. quantize every output with :func:`quantize`: float64, round to nearest keeping
     ``bits`` (default 24) of the 52 mantissa bits (the carry may move into the exponent, so
     0.9999999999999999 and 1.0 agree); finite values with magnitude below ``FLUSH`` (2**-40)
     become +0.0; explicit tokens for NaN (any payload), +inf, -inf; -0.0 keeps its sign bit and
     so differs from +0.0;
  3. mix the shapes and quantized words with xxh3-128, prefixed by a namespace.

Structural digest (what a candidate is): the space's canonical form (``structural_key``),
mixed with xxh3-128 under the same kind of namespace.

Namespace = schema version, digest kind, representation (space name + version), probe spec,
probe dtype and device class, quantization, evaluator name + version + fidelity.  Digests are
stable across processes, runs and PYTHONHASHSEED: no Python ``hash()``, no object ids.
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Sequence

import numpy as np
import xxhash

from .errors import ConfigError

SCHEMA_VERSION = 1
DEFAULT_BITS = 24
FLUSH = 2.0**-40
PROBE_SEED = 20231
LAMBDA_PROBE_N = 64
LAMBDA_PROBE_SPEC = f"lambda:x~U(-3,3)x{LAMBDA_PROBE_N} per argument;seed={PROBE_SEED}"

_NAN_TOKEN = np.uint64(0x7FF8_0000_0000_0001)
_POS_INF = np.uint64(0x7FF0_0000_0000_0000)
_NEG_INF = np.uint64(0xFFF0_0000_0000_0000)


def quantize(outputs: Sequence[Any] | np.ndarray, bits: int = DEFAULT_BITS, flush: float = FLUSH) -> bytes:
    """Quantize probe outputs into bytes (see the module docstring for the exact rule)."""
    if not 1 <= bits <= 52:
        raise ConfigError(f"quantize bits must be in 1..52, got {bits}")
    if isinstance(outputs, np.ndarray) or np.isscalar(outputs):
        outputs = [outputs]
    half = np.uint64(1 << (52 - bits - 1)) if bits < 52 else np.uint64(0)
    mask = ~np.uint64((1 << (52 - bits)) - 1)
    parts: list[bytes] = []
    for out in outputs:
        a = np.array(out, dtype=np.float64)  # a copy: modified below
        parts.append(b"S" + repr(a.shape).encode())
        flat = a.reshape(-1)
        mag = np.abs(flat)
        flat[(mag < flush) & (mag > 0.0)] = 0.0  # tiny finite values -> +0.0 (NaN compares False)
        w = flat.view(np.uint64)
        finite = mag <= np.finfo(np.float64).max
        if finite.all():  # the common case: one vectorised rounding, no tokens needed
            q = (w + half) & mask
        else:
            q = np.where(finite, (w + half) & mask, w)
            q[np.isnan(flat)] = _NAN_TOKEN
            q[flat == np.inf] = _POS_INF
            q[flat == -np.inf] = _NEG_INF
        parts.append(q.astype("<u8", copy=False).tobytes())
    return b"|".join(parts)


def mix(*parts: bytes | str) -> str:
    """xxh3-128 of the parts, separated unambiguously; hex digest."""
    h = xxhash.xxh3_128()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def evaluator_namespace(evaluator: Any) -> str:
    """Namespace part for an evaluator: name, version and fidelity (or 'none')."""
    if evaluator is None:
        return "evaluator=none"
    return f"evaluator={evaluator.name}@{evaluator.version};fidelity={_canonical_json(evaluator.fidelity())}"


def namespace(kind: str, representation: str, probe_spec: str = "", dtype: str = "float64",
              device: str = "cpu", bits: int = DEFAULT_BITS, evaluator: Any = None) -> str:
    """The namespace string prefixed to every digest (documented in the module docstring)."""
    return (f"automl-hash/v{SCHEMA_VERSION};{kind};repr={representation};probe={probe_spec};"
            f"dtype={dtype};device={device};bits={bits};{evaluator_namespace(evaluator)}")


# --- resolving what is being hashed -------------------------------------------------------------

def _resolve(obj: Any, space: Any):
    """Return (space_or_None, genome_or_callable)."""
    from .types import Candidate

    if isinstance(obj, Candidate):
        obj = obj.genome
    if isinstance(space, str):
        from . import registry

        space = registry.get_space(space)
    if space is None:
        name = getattr(obj, "automl_space", None)
        if isinstance(name, str):
            from . import registry

            space = registry.get_space(name)
    if space is None:
        if isinstance(obj, str):
            raise ConfigError("hashing text needs its space: pass space='<registered name>'")
        if not callable(obj):
            raise ConfigError(
                f"cannot hash a {type(obj).__name__}: pass a callable, a genome of a registered "
                "space, or text with space='<name>'")
        return None, obj
    if isinstance(obj, str):
        obj = space.from_text(obj)
    return space, obj


def _space_repr(space: Any) -> str:
    opts = space.options()
    return f"{space.name}@{space.version}" + (f"{_canonical_json(opts)}" if opts else "")


# --- the plain-callable ("lambda") representation ------------------------------------------------

_probe_cache: dict[tuple[int, int, int], list[np.ndarray]] = {}


def probe_inputs(n_args: int, seed: int = PROBE_SEED, n: int = LAMBDA_PROBE_N) -> list[np.ndarray]:
    """Fixed probe arrays for a callable of ``n_args`` arguments (read-only, reused)."""
    key = (n_args, seed, n)
    if key not in _probe_cache:
        rng = np.random.default_rng(seed)
        arrays = [rng.uniform(-3.0, 3.0, size=n) for _ in range(n_args)]
        for a in arrays:
            a.flags.writeable = False
        _probe_cache[key] = arrays
    return _probe_cache[key]


def _n_args(fn: Callable) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    return sum(1 for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _code_key(code: Any) -> bytes:
    """Structural form of a code object: bytecode, constants, names (not local variable names)."""
    parts = [code.co_code, repr(code.co_names).encode(), str(code.co_argcount).encode()]
    for c in code.co_consts:
        parts.append(_code_key(c) if inspect.iscode(c) else repr(c).encode())
    return b"\x00".join(parts)


def _callable_key(fn: Callable) -> bytes:
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn).encode()
    key = _code_key(code)
    for cell in getattr(fn, "__closure__", None) or ():
        key += b"\x01" + repr(cell.cell_contents).encode()
    return key


def _call_probe(fn: Callable, seed: int) -> list[np.ndarray]:
    """Run ``fn`` on the probe arrays.  A function that does not take arrays (``math.sin``) is
    called element by element; a constant result is broadcast to the probe's shape, so
    ``lambda x: 1.0`` and ``lambda x: np.ones_like(x)`` compute the same."""
    args = probe_inputs(_n_args(fn), seed)
    with np.errstate(all="ignore"):
        try:
            out = fn(*args)
        except (TypeError, ValueError):
            try:
                rows = [fn(*xs) for xs in zip(*args)] if args else [fn()]
            except Exception as exc:  # the user's function: report what it raised
                raise ConfigError(f"cannot run {getattr(fn, '__name__', fn)!r} on the probe: "
                                  f"{type(exc).__name__}: {exc}") from None
            out = tuple(np.array(col, dtype=np.float64) for col in zip(*rows)) \
                if rows and isinstance(rows[0], tuple) else np.array(rows, dtype=np.float64)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    n = len(args[0]) if args else 1
    return [np.full(n, float(o)) if np.ndim(o) == 0 else np.asarray(o) for o in outs]


# --- public API ------------------------------------------------------------------------------------

class Hasher:
    """Structural and functional digests for one (space, evaluator, probe seed), namespaces built once.

    ``space=None`` hashes plain Python callables.  The engine holds one; the module-level
    functions below build one per call.
    """

    def __init__(self, space: Any = None, evaluator: Any = None, seed: int | None = None):
        self.space, self.evaluator = space, evaluator
        self.seed = PROBE_SEED if seed is None else seed
        if space is None:
            self._sns = namespace("structural", "python-callable", evaluator=evaluator)
            self._fns = namespace("functional", "python-callable",
                                  LAMBDA_PROBE_SPEC.replace(f"seed={PROBE_SEED}", f"seed={self.seed}"),
                                  evaluator=evaluator)
        else:
            rep = _space_repr(space)
            self._sns = namespace("structural", rep, evaluator=evaluator)
            self._fns = namespace("functional", rep, f"{space.probe_spec};seed={self.seed}", space.probe_dtype,
                                  space.probe_device, space.quantize_bits, evaluator)

    def structural(self, genome: Any) -> str:
        if self.space is None:
            return mix(self._sns, _callable_key(genome))
        return mix(self._sns, self.space.structural_key(genome))

    def functional(self, genome: Any) -> str:
        if self.space is None:
            return mix(self._fns, quantize(_call_probe(genome, self.seed)))
        with np.errstate(all="ignore"):
            out = self.space.probe(genome, self.seed)
        return mix(self._fns, quantize(out, self.space.quantize_bits))


def structural_hash(obj: Any, space: Any = None, evaluator: Any = None) -> str:
    """Digest of what ``obj`` *is*: its canonical form, namespaced.  See the module docstring.

    ``obj``: a plain callable, a genome of a registered space, a Candidate, or text with
    ``space=<registered name>``.
    """
    space, genome = _resolve(obj, space)
    return Hasher(space, evaluator).structural(genome)


def functional_hash(obj: Any, space: Any = None, evaluator: Any = None, seed: int | None = None) -> str:
    """Digest of what ``obj`` *computes* on the fixed probe.  See the module docstring.

    ``obj``: a plain callable on numpy arrays, a genome of a registered space, a Candidate, or
    text with ``space=<registered name>``.  ``seed`` overrides the probe seed (for checking that
    a partition does not depend on it); it is part of the namespace.
    """
    space, genome = _resolve(obj, space)
    return Hasher(space, evaluator, seed).functional(genome)
