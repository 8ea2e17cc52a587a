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
# denom = sqrt(v) / sqrt(1-b2**t) + eps; p.addcdiv_(m, denom, value=-lr/(1-b1**t))
ADAM = """\
def train(w, g, m, v, lr, t):
  m = interp(g, m, 0.9)
  g2 = g * g
  v = interp(g2, v, 0.999)
  b1t = 0.9 ** t
  bc1 = 1.0 - b1t
  b2t = 0.999 ** t
  bc2 = 1.0 - b2t
  bc2_sqrt = bc2 ** 0.5
  step_size = lr / bc1
  root = sqrt(v)
  denom = root / bc2_sqrt
  denom = denom + 1e-08
  num = m * step_size
  update = num / denom
  return update, m, v
"""

# AdamW = Adam plus decoupled weight decay, torch order: p *= 1 - lr*wd first, then the Adam step.
ADAMW = """\
def train(w, g, m, v, lr, t):
  m = interp(g, m, 0.9)
  g2 = g * g
  v = interp(g2, v, 0.999)
  b1t = 0.9 ** t
  bc1 = 1.0 - b1t
  b2t = 0.999 ** t
  bc2 = 1.0 - b2t
  bc2_sqrt = bc2 ** 0.5
  step_size = lr / bc1
  root = sqrt(v)
  denom = root / bc2_sqrt
  denom = denom + 1e-08
  num = m * step_size
  adam = num / denom
  decay = lr * 0.01
  wd = w * decay
  update = adam + wd
  return update, m, v
"""

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

#: name -> canonical program text.
CLASSIC_PROGRAMS: dict[str, str] = {
    "sgd": SGD, "momentum": MOMENTUM, "adam": ADAM, "adamw": ADAMW, "lion": LION, "rmsprop": RMSPROP,
    "adagrad": ADAGRAD,
}
