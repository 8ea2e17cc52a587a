"""Classic optimizers as program text (canonical form: one op per line).

Each follows the operation order of its torch.optim / lion-pytorch counterpart closely enough
that float64 runs agree to ~1e-15 per step (tests/test_optim.py holds them to 1e-12 after 300
steps): SGD, momentum = torch.optim.SGD(momentum=0.9), adam = torch.optim.Adam(),
adamw = torch.optim.AdamW(weight_decay=0.01), lion = lion_pytorch.Lion(betas=(0.9, 0.99),
weight_decay=0.01), rmsprop = torch.optim.RMSprop(alpha=0.99, eps=1e-8), adagrad =
torch.optim.Adagrad(eps=1e-10).  The learning rate is always the ``lr`` input.
"""
from __future__ import annotations

SGD = """\
def train(w, g, m, v, lr):
  update = g * lr
  return update, m, v
"""

MOMENTUM = """\
def train(w, g, m, v, lr):
  m = m * 0.9
  m = m + g
  update = m * lr
  return update, m, v
"""

# torch: exp_avg.lerp_(g, 1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2);
# denom = sqrt(v) / sqrt(1-b2**t) + eps; p.addcdiv_(m, denom, value=-lr/(1-b1**t)).
# AdamW adds decoupled weight decay in torch's order: p *= 1 - lr*wd first, then the Adam step.
def adam_text(beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-08, weight_decay: float = 0.0,
              lr_scale: float | None = None) -> str:
    """Adam (``weight_decay=0``) or AdamW as program text, written in torch's operation order so
    float64 results agree with ``torch.optim.Adam``/``AdamW``.  ``lr_scale`` multiplies the
    learning-rate input first (for tuning a base learning rate as a constant)."""
    b1, b2, lr = repr(float(beta1)), repr(float(beta2)), "lr"
    lines = ["def train(w, g, m, v, lr, t):", f"  m = interp(g, m, {b1})", "  g2 = g * g",
             f"  v = interp(g2, v, {b2})", f"  b1t = {b1} ** t", "  bc1 = 1.0 - b1t", f"  b2t = {b2} ** t",
             "  bc2 = 1.0 - b2t", "  bc2_sqrt = bc2 ** 0.5"]
    if lr_scale is not None:
        lines.append(f"  lr2 = lr * {float(lr_scale)!r}")
        lr = "lr2"
    lines += [f"  step_size = {lr} / bc1", "  root = sqrt(v)", "  denom = root / bc2_sqrt",
              f"  denom = denom + {float(eps)!r}", "  num = m * step_size"]
    if weight_decay:
        lines += ["  adam = num / denom", f"  decay = {lr} * {float(weight_decay)!r}", "  wd = w * decay",
                  "  update = adam + wd"]
    else:
        lines.append("  update = num / denom")
    return "\n".join(lines + ["  return update, m, v", ""])


ADAM = adam_text()
ADAMW = adam_text(weight_decay=0.01)

# lion-pytorch: p *= 1 - lr*wd; p -= lr * sign(b1*m + (1-b1)*g); m = b2*m + (1-b2)*g
LION = """\
def train(w, g, m, v, lr):
  c = interp(g, m, 0.9)
  update = sign(c)
  m = interp(g, m, 0.99)
  wd = w * 0.01
  update = update + wd
  update = update * lr
  return update, m, v
"""

RMSPROP = """\
def train(w, g, m, v, lr):
  g2 = g * g
  v = interp(g2, v, 0.99)
  root = sqrt(v)
  denom = root + 1e-08
  num = g * lr
  update = num / denom
  return update, m, v
"""

ADAGRAD = """\
def train(w, g, m, v, lr):
  g2 = g * g
  v = v + g2
  root = sqrt(v)
  denom = root + 1e-10
  num = g * lr
  update = num / denom
  return update, m, v
"""

#: name -> the conventional names of its tunable constants ((name, value) pairs): ProgramOptimizer
#: offers them as per-group hyper-parameters (``{"params": no_decay, "weight_decay": 0.0}``).
CLASSIC_CONSTANT_NAMES: dict[str, tuple[tuple[str, float], ...]] = {
    "momentum": (("momentum", 0.9),),
    "adam": (("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-08)),
    "adamw": (("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-08), ("weight_decay", 0.01)),
    "lion": (("beta1", 0.9), ("beta2", 0.99), ("weight_decay", 0.01)),
    "rmsprop": (("alpha", 0.99), ("eps", 1e-08)),
    "adagrad": (("eps", 1e-10),),
}

#: name -> canonical program text.
CLASSIC_PROGRAMS: dict[str, str] = {
    "sgd": SGD, "momentum": MOMENTUM, "adam": ADAM, "adamw": ADAMW, "lion": LION, "rmsprop": RMSPROP,
    "adagrad": ADAGRAD,
}
