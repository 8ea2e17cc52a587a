"""``automl supernet train|rank|search``: one-shot NAS from the command line (see docs/supernets.md)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from automl.errors import AutoMLError

EPILOG = """examples:
  automl supernet train --out runs/sn --data /path/cifar10_uint8.npz --path pada --data-sampler pada \\
      --channels 8 --cells 1 --epochs 5 --train-per-class 1000
  automl supernet train --out runs/sn --download --epochs 250         # PA&DA's protocol, CIFAR-10 fetched
  automl supernet rank runs/sn --test-per-class 100 --out runs/sn/ranking.json
  automl supernet search runs/sn --strategy evolution --budget 200 --out runs/sn-search
"""


DESCRIPTION = ("One-shot NAS: train a weight-sharing supernet with a path sampler and a data sampler, then "
               "rank or search subnets with it through the equivalence cache.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``train``/``rank``/``search`` actions, on ``p`` (the ``automl supernet`` subparser)."""
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    t = sub.add_parser("train", help="train (or resume) a supernet; kill it any time and run the same command again")
    t.add_argument("--out", required=True, help="folder of the checkpoint (supernet.pt) and summary (supernet.json)")
    t.add_argument("--space", default="nb201")
    t.add_argument("--channels", type=int, default=16, help="C (default 16)")
    t.add_argument("--cells", type=int, default=5, help="N searchable cells per stage (default 5)")
    t.add_argument("--path", dest="path_sampler", default="spos", help="spos, fairnas, pada, class-uniform")
    t.add_argument("--data-sampler", default="uniform", help="uniform, pada")
    t.add_argument("--epochs", type=int, default=250)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=0.05)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=2.5e-4)
    t.add_argument("--grad-clip", type=float, default=5.0)
    t.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", default="cifar10", help="CIFAR-10 as an npz (uint8 N x32x32x3, keys x_train y_train "
                   "x_test y_test), the official tarball, a folder with either; 'cifar10' (the cache folder, "
                   "$AUTOML_DATA or ~/.cache/automl); or synthetic[:N_TRAIN:N_TEST:SIZE:SEED]")
    t.add_argument("--download", action="store_true", help="download CIFAR-10 into the cache folder (MD5-checked)")
    t.add_argument("--cache-dir", help="data cache folder (default $AUTOML_DATA or ~/.cache/automl)")
    t.add_argument("--train-per-class", type=int, help="train on the first K images of each class only")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps (0: epoch ends)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("rank", help="score cells with a trained supernet (charged once per functional class)")
    r.add_argument("checkpoint", help="supernet.pt or its folder")
    r.add_argument("--cells", default="all", help="'all' (every cell of the space) or a file of cell texts, one a line")
    r.add_argument("--data", help="held-out data (default: the data the supernet was trained on)")
    r.add_argument("--test-per-class", type=int, default=100, help="first K test images per class (default 100)")
    r.add_argument("--batch-size", type=int, default=500, help="evaluation batch (BN uses its statistics)")
    r.add_argument("--device", default="cpu")
    r.add_argument("--threads", type=int)
    r.add_argument("--cache", help="sqlite cache file to reuse across calls (default: in memory)")
    r.add_argument("--top", type=int, default=5, help="print the best K cells (default 5)")
    r.add_argument("--out", help="write scores, Kendall tau and counts as JSON")
    r.add_argument("--quiet", action="store_true")

    s = sub.add_parser("search", help="search subnets on the supernet with any strategy of the engine")
    s.add_argument("checkpoint")
    s.add_argument("--strategy", default="evolution")
    s.add_argument("--budget", type=int, default=200, help="charged evaluations")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--test-per-class", type=int, default=100)
    s.add_argument("--batch-size", type=int, default=500)
    s.add_argument("--device", default="cpu")


def _train(a) -> int:
    from . import data as _data
    from .trainer import TrainConfig, train

    data = a.data
    if a.download:
        data = str(_data.download_cifar10(a.cache_dir))
    elif data == "cifar10" and a.cache_dir:
        from pathlib import Path

        data = str(Path(a.cache_dir) / "cifar10" / _data.CIFAR10_NPZ)
    cfg = TrainConfig(space=a.space, channels=a.channels, cells=a.cells, path_sampler=a.path_sampler,
                      data_sampler=a.data_sampler, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                      momentum=a.momentum, weight_decay=a.weight_decay, grad_clip=a.grad_clip,
                      augment=not a.no_augment, seed=a.seed, data=data, train_per_class=a.train_per_class)
    s = train(a.out, cfg, device=a.device, checkpoint_every=a.checkpoint_every, progress=not a.quiet,
              threads=a.threads)
    last = s["history"][-1] if s["history"] else {}
    print(f"supernet {s['checkpoint']}: {s['epochs_done']}/{cfg.epochs} epochs on {s['device']}, "
          f"weights {s['weights_digest']}")
    if last:
        print(f"last epoch: train loss {last['train_loss']:.4f}, train top-1 {last['train_acc']:.2f}%, "
              f"op probabilities {last['op_probs']}")
    return 0


def _read_cells(spec: str):
    if spec == "all":
        return None
    with open(spec, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _rank(a) -> int:
    from evaluators.tabular.tables import nb201_table

    from .ranking import kendall_tau, rank

    r = rank(a.checkpoint, _read_cells(a.cells), cache=a.cache, progress=not a.quiet, data=a.data,
             test_per_class=a.test_per_class, batch_size=a.batch_size, device=a.device, threads=a.threads)
    tau = kendall_tau(r["scores"]) if len(r["scores"]) > 1 else None
    table = nb201_table()
    print(f"ranked {r['cells']} cells with {r['charged']} charged evaluations ({r['classes']} functional classes)")
    if tau is not None:
        print(f"Kendall tau-b vs NB201 CIFAR-10 test accuracy: {tau:.4f}")
    best = sorted(r["scores"].items(), key=lambda kv: -kv[1])[:a.top]
    for text, score in best:
        print(f"  supernet {score:6.2f}%  NB201 {table.acc[table.row(text), 0]:6.2f}%  {text}")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({"kendall_tau": tau, **r}, f, indent=1)
        print(f"wrote {a.out}")
    return 0


def _search(a) -> int:
    import os

    from automl.api import search
    from evaluators.tabular.tables import nb201_table

    summary = search(space="nb201", evaluator="supernet", strategy=a.strategy, budget=a.budget, seed=a.seed,
                     out=a.out, evaluator_options={"checkpoint": os.path.abspath(a.checkpoint),
                                                   "test_per_class": a.test_per_class,
                                                   "batch_size": a.batch_size, "device": a.device})
    b = summary["best"]
    print(f"run {summary['run_dir']}: {summary['charged_evaluations']} charged evaluations, "
          f"{summary['candidates']} candidates")
    if b:
        table = nb201_table()
        print(f"best on the supernet: {b['value']:.2f}%  NB201 CIFAR-10 test accuracy "
              f"{table.acc[table.row(b['candidate']), 0]:.2f}%  {b['candidate']}")
    return 0


class ActionCommand:
    """An ``automl NAME ACTION ...`` plugin subcommand (registered with
    ``automl.registry.register_command``): ``build(parser)`` adds the actions as subparsers with
    ``dest="action"``; ``actions`` maps each to a function of the parsed arguments.  Errors of
    the project exit 2 with a message, Ctrl-C exits 130 with the resume hint."""

    name = ""
    description = ""
    epilog = ""
    actions: dict[str, Callable[[argparse.Namespace], int]] = {}

    @classmethod
    def build(cls, p: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        p.description, p.epilog = cls.description, cls.epilog
        cls.build(p)

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog=f"automl {cls.name}", formatter_class=argparse.RawDescriptionHelpFormatter)
        cls.add_arguments(p)
        return p

    @classmethod
    def run(cls, a: argparse.Namespace) -> int:
        if a.action is None:
            cls.parser().print_help()
            return 2
        try:
            return int(cls.actions[a.action](a))
        except AutoMLError as exc:
            print(f"automl {cls.name} {a.action}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
            return 130

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> int:
        return cls.run(cls.parser().parse_args(argv))


class SupernetCommand(ActionCommand):
    """``automl supernet train|rank|search``."""

    name, description, epilog = "supernet", DESCRIPTION, EPILOG
    build = staticmethod(add_arguments)
    actions = {"train": _train, "rank": _rank, "search": _search}


main = SupernetCommand.main


if __name__ == "__main__":
    sys.exit(main())
