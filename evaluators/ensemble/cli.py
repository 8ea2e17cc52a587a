"""``automl ensemble train|search|retrain``: NEAS from the command line (see docs/ensembles.md)."""
from __future__ import annotations

import argparse
import json
import sys

from evaluators.supernet.cli import ActionCommand

EPILOG = """examples:
  automl ensemble train --out runs/neas --data /path/cifar10_uint8.npz --channels 8 --cells 1 \\
      --epochs 10 --train-per-class 500 --k 2 --shrink-every 3 --shrink-drop 1 --lam 1.0
  automl ensemble search runs/neas --macs-budget 6e6 --budget 100 --val-per-class 50 --out runs/neas-search
  automl ensemble search runs/neas --k 1 --macs-budget 6e6 --budget 100 --out runs/neas-single
  automl ensemble search runs/neas --k 1 --macs-floor 5.4e6 --macs-budget 6e6 --budget 100 --out runs/neas-single-eq
  automl ensemble retrain runs/neas "split=1 ; shared: ... ; member: ... ; member: ..." --epochs 10
  # NEAS's own setting: OFA MobileNetV3 layers (k {3,5,7} x e {4,6} + skip), splits 16 or 20 of 20
  automl ensemble train --base ofa-mbv3 --out runs/neas-ofa --data /path/cifar10_uint8.npz \\
      --epochs 5 --train-per-class 200 --k 2 --splits 16,20 --batch-size 64
  automl ensemble search runs/neas-ofa --macs-budget 2e7 --splits 16 --distinct --budget 50 --out runs/neas-ofa-k2
"""


DESCRIPTION = ("NEAS: one-shot ensemble architecture search (K-path supernet with diversity-guided search-space "
               "shrinking, then evolution of ensembles under a MACs budget).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``train``/``search``/``retrain`` actions, on ``p`` (the ``automl ensemble`` subparser)."""
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    t = sub.add_parser("train", help="train (or resume) a K-path ensemble supernet; kill it and rerun to resume")
    t.add_argument("--out", required=True)
    t.add_argument("--base", default="nb201-stages", choices=["nb201-stages", "ofa-mbv3"],
                   help="layer-wise base: NB201 with one genotype per stage (3 layers, sized by --channels/--cells) "
                        "or OFA MobileNetV3 per block slot (20 layers, sized by --width/--resolution/--kernels/"
                        "--expansions)")
    t.add_argument("--k", type=int, default=2, help="ensemble members per step (default 2)")
    t.add_argument("--splits", help="allowed split points, comma-separated (default all of 0..L)")
    t.add_argument("--shrink-every", type=int, default=0, help="shrink every T epochs (0: never)")
    t.add_argument("--shrink-drop", type=int, default=1, help="ops dropped per decision at each shrink")
    t.add_argument("--lam", type=float, default=1.0, help="score = potential + lam * diversity")
    t.add_argument("--score", default="potential+diversity", help="operator score: potential+diversity, potential")
    t.add_argument("--score-samples", type=int, default=32, help="ensembles sampled to score the ops")
    t.add_argument("--probe-images", type=int, default=500, help="fixed training images the ops are scored on")
    t.add_argument("--channels", type=int, default=8, help="nb201-stages: channels of stage 0")
    t.add_argument("--cells", type=int, default=1, help="nb201-stages: cells per stage")
    t.add_argument("--width", type=float, default=1.0, help="ofa-mbv3: width multiplier (1.0 or 1.2)")
    t.add_argument("--resolution", type=int, default=32, help="ofa-mbv3: input size the MACs are counted at")
    t.add_argument("--kernels", default="3,5,7", help="ofa-mbv3: depthwise kernels (subset of 3,5,7)")
    t.add_argument("--expansions", default="4,6", help="ofa-mbv3: expansion ratios (subset of 3,4,6)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=0.05)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", default="cifar10", help="as `automl supernet train --data`")
    t.add_argument("--train-per-class", type=int, help="first K training images of each class")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int)
    t.add_argument("--checkpoint-every", type=int, default=0)
    t.add_argument("--quiet", action="store_true")

    s = sub.add_parser("search", help="evolve ensembles (or single networks: --k 1) on a trained supernet")
    s.add_argument("checkpoint")
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--k", type=int, help="members (default: the supernet's k; 1: single networks)")
    s.add_argument("--macs-budget", type=float, help="multiply-accumulates allowed (shared trunk counted once)")
    s.add_argument("--macs-floor", type=float,
                   help="at least this many multiply-accumulates (with --macs-budget: a MACs window, e.g. a single "
                   "network at the MACs of a found ensemble)")
    s.add_argument("--strategy", default="evolution")
    s.add_argument("--budget", type=int, default=200, help="charged evaluations")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--full-space", action="store_true", help="ignore the shrinking (search every op)")
    s.add_argument("--splits", help="only these split points, comma-separated (default: the supernet's)")
    s.add_argument("--distinct", action="store_true", help="leave out ensembles whose members are all equal")
    s.add_argument("--heldout", default="val", help="val (training images after --train-per-class) or test")
    s.add_argument("--val-per-class", type=int, default=100)
    s.add_argument("--batch-size", type=int, default=500)
    s.add_argument("--device", default="cpu")

    r = sub.add_parser("retrain", help="train one ensemble from scratch and report its test top-1")
    r.add_argument("checkpoint", help="the supernet whose space and data the ensemble comes from")
    r.add_argument("ensemble", help="ensemble text (as `search` prints it)")
    r.add_argument("--epochs", type=int, default=10)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--train-per-class", type=int, help="default: the supernet's")
    r.add_argument("--test-per-class", type=int, help="default: the whole test set")
    r.add_argument("--device", default="auto")


def _ints(text: str, flag: str) -> list[int]:
    from automl.errors import ConfigError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, got {text!r}") from None


def _train(a) -> int:
    from .api import train_supernet

    splits = None if a.splits is None else _ints(a.splits, "--splits")
    sizes: dict = {}
    if a.base == "ofa-mbv3":
        sizes = {"base_options": {"width": a.width, "resolution": a.resolution,
                                  "kernels": _ints(a.kernels, "--kernels"),
                                  "expansions": _ints(a.expansions, "--expansions")}}
    s = train_supernet(a.out, base=a.base, **sizes, k=a.k, splits=splits, shrink_every=a.shrink_every,
                       shrink_drop=a.shrink_drop, lam=a.lam, score=a.score, score_samples=a.score_samples,
                       probe_images=a.probe_images,
                       channels=a.channels, cells=a.cells, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                       seed=a.seed, data=a.data, train_per_class=a.train_per_class, device=a.device,
                       threads=a.threads, checkpoint_every=a.checkpoint_every, progress=not a.quiet)
    last = s["history"][-1] if s["history"] else {}
    print(f"ensemble supernet {s['checkpoint']}: {s['epochs_done']} epochs on {s['device']}, "
          f"weights {s['weights_digest']}")
    if last:
        print(f"last epoch: train loss {last['train_loss']:.4f}, ensemble train top-1 {last['train_acc']:.2f}%, "
              f"alive ops {last.get('alive_ops')}")
    return 0


def _search(a) -> int:
    from .api import search

    s = search(a.checkpoint, a.out, k=a.k, macs_budget=a.macs_budget, macs_floor=a.macs_floor, strategy=a.strategy,
               budget=a.budget, seed=a.seed, shrunk=not a.full_space, heldout=a.heldout, val_per_class=a.val_per_class,
               batch_size=a.batch_size, device=a.device, distinct=a.distinct,
               splits=None if a.splits is None else _ints(a.splits, "--splits"))
    print(f"run {s['run_dir']}: {s['charged_evaluations']} charged evaluations, {s['candidates']} candidates")
    b = s["best_feasible"]
    if b is None:
        print("no candidate within the MACs budget" + (" and floor" if a.macs_floor is not None else ""))
        return 1
    o = b["objectives"]
    print(f"best: {o['ensemble_accuracy']:.2f}% on the supernet, {o['macs'] / 1e6:.3f} MMACs\n  {b['candidate']}")
    return 0


def _retrain(a) -> int:
    from automl.registry import get_space
    from evaluators.supernet import data as _data
    from evaluators.supernet.trainer import load_checkpoint

    from .api import ensemble_space, shrunk_space_options
    from .evaluate import retrain

    ck = load_checkpoint(a.checkpoint)
    opts = shrunk_space_options(a.checkpoint, shrunk=False)
    name = ensemble_space(a.checkpoint)
    space = get_space(name, base=opts["base"], base_options=opts["base_options"])
    g = space.from_text(a.ensemble)
    k = len(g.branches)
    space = get_space(name, base=opts["base"], base_options=opts["base_options"], k=k)
    r = retrain(g, space, _data.resolve(ck["config"]["data"]), epochs=a.epochs, seed=a.seed,
                train_per_class=a.train_per_class or ck["config"].get("train_per_class"),
                test_per_class=a.test_per_class, device=a.device)
    print(json.dumps(r))
    return 0


class EnsembleCommand(ActionCommand):
    """``automl ensemble train|search|retrain``."""

    name, description, epilog = "ensemble", DESCRIPTION, EPILOG
    build = staticmethod(add_arguments)
    actions = {"train": _train, "search": _search, "retrain": _retrain}


main = EnsembleCommand.main


if __name__ == "__main__":
    sys.exit(main())
