"""The unified hash: structural and functional digests for every representation.

Functional digest (what a candidate computes)
  1. run the candidate on a fixed, seeded probe (``SearchSpace.probe`` or, for a plain Python
     callable, :func:`probe_inputs`).  The probe covers the *evaluator's* domain: an evaluator may
     declare one with ``Evaluator.probe_domain()`` (symbolic regression: its data points;
     optimizer proxy: step horizon, lr range, gradient/weight magnitudes) and a space whose
     ``probe`` takes a ``domain`` keyword builds its probe from it (``domain=None``: the space's
     documented default).  Probe math is deterministic (:mod:`automl.probe_math`), so digests
     do not depend on the CPU's SIMD level;
  2. quantize every output with :func:`quantize`: float64; values whose magnitude is below
     ``FLUSH`` (2**-40) times the largest finite magnitude of their row (the last axis: the
     output's scale) become +0.0; -0.0 becomes +0.0; round to nearest keeping ``bits`` (default
     24) of the 52 mantissa bits (the carry may move into the exponent, so 0.9999999999999999
     and 1.0 agree); explicit tokens for NaN (any payload), +inf, -inf;
  3. mix the shapes and quantized words with xxh3-128, prefixed by a namespace.  When every
     output value is NaN the structural key is mixed in too: two candidates that are NaN on the
     whole probe are not thereby "equal" (they merge only if they are structurally equal).

Structural digest (what a candidate is): the space's canonical form (``structural_key``),
mixed with xxh3-128 under the same kind of namespace.

Namespace = schema version, digest kind, representation (space name + version), probe spec,
probe seed, the evaluator's probe domain, probe dtype and device class, quantization, evaluator
name + version + fidelity.  The structural -> functional alias table is keyed by
:meth:`Hasher.alias_key`, which carries the full *functional* namespace, so a run with another
probe seed, spec, bits or domain never reuses another run's aliases.  Digests are stable across
processes, runs, thread counts, SIMD levels and PYTHONHASHSEED: no Python ``hash()``, no object
ids.  What the hash promises per space: docs/hashing.md.
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Sequence

import numpy as np
import xxhash

from . import probe_math
from .errors import ConfigError

SCHEMA_VERSION = 2  # v2: evaluator probe domains, relative flush, +0.0, deterministic probe math
DEFAULT_BITS = 24
FLUSH = 2.0**-40  # relative to the row's largest finite magnitude
PROBE_SEED = 20231
LAMBDA_PROBE_N = 64
LAMBDA_PROBE_SPEC = f"lambda:x~U(-3,3)x{LAMBDA_PROBE_N} per argument;seed={PROBE_SEED}"

_DBL_MAX = np.finfo(np.float64).max
_NAN_TOKEN = np.uint64(0x7FF8_0000_0000_0001)
_POS_INF = np.uint64(0x7FF0_0000_0000_0000)
_NEG_INF = np.uint64(0xFFF0_0000_0000_0000)


def _row_max(x: np.ndarray) -> np.ndarray:
    """x.max(axis=1, keepdims=True) for a 2-d array; short rows (the programs probe's rows of 8)
    through a transposed copy, ~10x faster than numpy's per-row reduction."""
    if x.shape[1] <= 64:
        return np.ascontiguousarray(x.T).max(axis=0)[:, None]
    return x.max(axis=1, keepdims=True)


_QUANTIZER: Any = None  # automl._probe_math_jit.quantize_rows once loaded, False when unavailable


def _compiled_quantizer() -> Any:
    """The compiled quantizer when the probe math runs compiled (``probe_math.compiled()``), else
    None; both give the same bytes (tests/test_probe_jit.py)."""
    global _QUANTIZER
    if not probe_math.compiled():
        return None
    if _QUANTIZER is None:
        try:
            from ._probe_math_jit import quantize_rows
        except (ImportError, RuntimeError):  # numba missing or without a cache directory: numpy
            _QUANTIZER = False
        else:
            _QUANTIZER = quantize_rows
    return _QUANTIZER or None


def _quantize(outputs: Sequence[Any] | np.ndarray, bits: int, flush: float) -> tuple[bytes, bool]:
    """(quantized bytes, True when every value of every output is NaN)."""
    if not 1 <= bits <= 52:
        raise ConfigError(f"quantize bits must be in 1..{52}, got {bits}")
    if isinstance(outputs, np.ndarray) or np.isscalar(outputs):
        outputs = [outputs]
    half = np.uint64(1 << (52 - bits - 1)) if bits < 52 else np.uint64(0)
    mask = ~np.uint64((1 << (52 - bits)) - 1)
    parts: list[bytes] = []
    all_nan = True
    jit = _compiled_quantizer()
    for out in outputs:
        a = np.asarray(out, dtype=np.float64)
        parts.append(b"S" + repr(a.shape).encode())
        if a.size == 0:
            continue
        if jit is not None:  # the same words in one compiled pass
            words, every_nan = jit(np.ascontiguousarray(a).reshape(-1), a.shape[-1] if a.ndim else 1, half, mask,
                                   flush)
            all_nan = all_nan and every_nan
            parts.append(words.tobytes())
            continue
        rows = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
        mag = np.abs(rows)
        scale = _row_max(mag)  # NaN or inf in a row make its scale NaN or inf
        if scale.max() <= _DBL_MAX:  # the common case (no NaN, no inf): no tokens needed
            # relative flush, and -0.0 -> +0.0 (the += 0.0)
            scale *= flush
            q = np.where(mag < scale, 0.0, rows).reshape(-1)
            q += 0.0
            q = q.view(np.uint64)
            q += half
            q &= mask
            all_nan = False
        else:
            flat = rows.reshape(-1)
            finite = mag.reshape(-1) <= _DBL_MAX
            scale = _row_max(np.where(finite.reshape(mag.shape), mag, 0.0))
            q = np.where(mag < scale * flush, 0.0, rows).reshape(-1) + 0.0
            nan = np.isnan(flat)
            all_nan = all_nan and bool(nan.all())
            w = q.view(np.uint64)
            q = np.where(finite, (w + half) & mask, w)
            q[nan] = _NAN_TOKEN
            q[flat == np.inf] = _POS_INF
            q[flat == -np.inf] = _NEG_INF
        parts.append(q.astype("<u8", copy=False).tobytes())
    return b"|".join(parts), all_nan


def quantize(outputs: Sequence[Any] | np.ndarray, bits: int = DEFAULT_BITS, flush: float = FLUSH) -> bytes:
    """Quantize probe outputs into bytes (see the module docstring for the exact rule)."""
    return _quantize(outputs, bits, flush)[0]


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


def probe_domain(evaluator: Any) -> dict[str, Any] | None:
    """The evaluator's declared probe domain (``Evaluator.probe_domain()``), or None."""
    fn = getattr(evaluator, "probe_domain", None)
    dom = fn() if callable(fn) else None
    if dom is not None and not isinstance(dom, dict):
        raise ConfigError(f"{getattr(evaluator, 'name', evaluator)!r}.probe_domain() must return a dict or None, "
                          f"got {type(dom).__name__}")
    return dom


def namespace(kind: str, representation: str, probe_spec: str = "", dtype: str = "float64",
              device: str = "cpu", bits: int = DEFAULT_BITS, evaluator: Any = None,
              domain: dict[str, Any] | None = None) -> str:
    """The namespace string prefixed to every digest (documented in the module docstring)."""
    dom = "default" if domain is None else mix(_canonical_json(domain))
    return (f"automl-hash/v{SCHEMA_VERSION};{kind};repr={representation};probe={probe_spec};domain={dom};"
            f"dtype={dtype};device={device};bits={bits};{evaluator_namespace(evaluator)}")


# --- resolving what is being hashed -------------------------------------------------------------

def _resolve(obj: Any, space: Any) -> tuple[Any, Any]:
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


def _n_args(fn: Callable[..., Any]) -> int:
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


def _callable_key(fn: Callable[..., Any]) -> bytes:
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn).encode()
    key = _code_key(code)
    for cell in getattr(fn, "__closure__", None) or ():
        key += b"\x01" + repr(cell.cell_contents).encode()
    return key


def _call_probe(fn: Callable[..., Any], seed: int) -> list[np.ndarray]:
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
        self.domain = probe_domain(evaluator)
        self._probe_kw: dict[str, Any] = {}
        if space is None:
            self._sns = namespace("structural", "python-callable", evaluator=evaluator)
            self._fns = namespace("functional", "python-callable",
                                  LAMBDA_PROBE_SPEC.replace(f"seed={PROBE_SEED}", f"seed={self.seed}"),
                                  evaluator=evaluator, domain=self.domain)
        else:
            rep = _space_repr(space)
            if self.domain is not None and _takes_domain(space.probe):
                self._probe_kw = {"domain": self.domain}
            self._sns = namespace("structural", rep, evaluator=evaluator)
            self._fns = namespace("functional", rep, f"{space.probe_spec};seed={self.seed}", space.probe_dtype,
                                  space.probe_device, space.quantize_bits, evaluator, self.domain)
        self._alias_ns = "alias;" + self._fns

    def structural(self, genome: Any) -> str:
        if self.space is None:
            return mix(self._sns, _callable_key(genome))
        return mix(self._sns, self.space.structural_key(genome))

    def functional(self, genome: Any) -> str:
        if self.space is None:
            q, all_nan = _quantize(_call_probe(genome, self.seed), DEFAULT_BITS, FLUSH)
        else:
            with np.errstate(all="ignore"):
                out = self.space.probe(genome, self.seed, **self._probe_kw)
            q, all_nan = _quantize(out, self.space.quantize_bits, FLUSH)
        if all_nan:  # NaN on the whole probe says nothing about what it computes elsewhere
            key = _callable_key(genome) if self.space is None else self.space.structural_key(genome)
            return mix(self._fns, q, b"all-nan", key)
        return mix(self._fns, q)

    def alias_key(self, structural: str) -> str:
        """Key of the structural -> functional alias table: the structural digest under the full
        functional namespace (probe spec, seed, domain, bits, evaluator), so aliases recorded
        under another probe are never reused."""
        return mix(self._alias_ns, structural)


def _takes_domain(fn: Callable[..., Any]) -> bool:
    try:
        return "domain" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


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
