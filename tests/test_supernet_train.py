"""Supernet training: seeded, checkpointed, and resumable after kill -9 with the same weights."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from automl.errors import ConfigError  # noqa: E402
from evaluators.supernet import data as sdata  # noqa: E402
from evaluators.supernet.trainer import CHECKPOINT, TrainConfig, load_checkpoint, train  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(channels=4, cells=1, epochs=3, batch_size=16, data="synthetic:64:20:8:0", seed=3)


def _train(folder, **kw):
    cfg = TrainConfig(**{**TINY, **kw})
    return train(folder, cfg, device="cpu", threads=1)


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = _train(tmp_path / "a", path_sampler="pada", data_sampler="pada")
    b = _train(tmp_path / "b", path_sampler="pada", data_sampler="pada")
    c = _train(tmp_path / "c", path_sampler="pada", data_sampler="pada", seed=4)
    assert a["weights_digest"] == b["weights_digest"] != c["weights_digest"]
    assert a["finished"] and len(a["history"]) == 3
    assert json.loads((tmp_path / "a" / "supernet.json").read_text())["weights_digest"] == a["weights_digest"]
    # PA&DA moved the op distribution away from uniform after epoch 1 (tau = 1/3)
    assert a["history"][-1]["op_probs"] != [0.2] * 5


@pytest.mark.parametrize("path,data", [("pada", "pada"), ("fairnas", "uniform"), ("class-uniform", "uniform")])
def test_resume_mid_epoch_equals_uninterrupted(tmp_path, path, data):
    full = _train(tmp_path / "full", path_sampler=path, data_sampler=data)
    part = train(tmp_path / "part", TrainConfig(**TINY, path_sampler=path, data_sampler=data), device="cpu",
                 threads=1, max_steps=5)  # 4 steps per epoch: stops inside epoch 1
    assert not part["finished"]
    ck = load_checkpoint(tmp_path / "part")
    assert (int(ck["state"]["epoch"]), int(ck["state"]["step"])) == (1, 1)
    rest = _train(tmp_path / "part", path_sampler=path, data_sampler=data)
    assert rest["weights_digest"] == full["weights_digest"]
    assert rest["history"] == full["history"]
    again = _train(tmp_path / "part", path_sampler=path, data_sampler=data)  # finished: nothing to do
    assert again == json.loads((tmp_path / "part" / "supernet.json").read_text()) and again["timing"]["steps"] > 0


def test_resume_with_another_config_is_refused(tmp_path):
    train(tmp_path / "r", TrainConfig(**TINY), device="cpu", threads=1, max_steps=2)
    with pytest.raises(ConfigError, match="another configuration"):
        _train(tmp_path / "r", lr=0.1)


def test_bad_options_are_typed_errors():
    with pytest.raises(ConfigError, match="path sampler"):
        TrainConfig(path_sampler="darts")
    with pytest.raises(ConfigError, match="data sampler"):
        TrainConfig(data_sampler="hard")
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)


CHILD = textwrap.dedent("""
    import sys, time
    from evaluators.supernet import trainer
    rule = trainer.STEP_RULES["accumulate"]
    def slow(*a):  # slow steps, so the parent can kill this process in the middle of the run
        time.sleep(0.25)
        return rule(*a)
    trainer.STEP_RULES["accumulate"] = slow
    cfg = trainer.TrainConfig(channels=4, cells=1, epochs=3, batch_size=16, data="synthetic:64:20:8:0", seed=3,
                              path_sampler="pada", data_sampler="pada")
    trainer.train(sys.argv[1], cfg, device="cpu", threads=1, checkpoint_every=1)
""")


def test_kill_9_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    folder = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        ck = folder / CHECKPOINT
        while time.monotonic() < deadline:  # wait until a mid-run checkpoint (epoch 1) exists
            if ck.exists():
                try:
                    if int(load_checkpoint(folder)["state"]["epoch"]) >= 1:
                        break
                except (RuntimeError, EOFError, OSError):
                    pass
            time.sleep(0.05)
        else:
            pytest.fail("the child never wrote a checkpoint")
        time.sleep(0.07)  # land somewhere inside a step or a checkpoint write
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL  # really killed, not finished
    state = load_checkpoint(folder)["state"]
    assert not bool(state["done"])
    resumed = _train(folder, path_sampler="pada", data_sampler="pada")
    full = _train(tmp_path / "full", path_sampler="pada", data_sampler="pada")
    assert resumed["weights_digest"] == full["weights_digest"]
    a = load_checkpoint(folder)["model"]
    b = load_checkpoint(tmp_path / "full")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_data_loading_errors_and_subsets(tmp_path):
    d = sdata.synthetic(n_train=50, n_test=20, size=8)
    sub = d.train_subset(3)
    assert len(sub.y_train) == 30 and np.all(np.bincount(sub.y_train) == 3)
    with pytest.raises(ConfigError):
        d.train_subset(100)
    np.savez(tmp_path / "bad.npz", x_train=d.x_train)
    with pytest.raises(sdata.DataError, match="missing"):
        sdata.load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "ok.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    back = sdata.load_cifar10(tmp_path / "ok.npz")
    assert np.array_equal(back.x_train, d.x_train)
    with pytest.raises(sdata.DataError, match="download"):
        sdata.load_cifar10(None, download=False, cache_dir=tmp_path / "empty")
    fake = tmp_path / "cifar-10-python.tar.gz"
    fake.write_bytes(b"not the real tarball")
    with pytest.raises(sdata.DataError, match="MD5"):
        sdata.load_cifar10(fake)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_train_resume_and_rank(tmp_path):
    from evaluators.supernet import rank

    full = train(tmp_path / "full", TrainConfig(**TINY, path_sampler="pada", data_sampler="pada"), device="cuda")
    train(tmp_path / "part", TrainConfig(**TINY, path_sampler="pada", data_sampler="pada"), device="cuda", max_steps=5)
    train(tmp_path / "part", TrainConfig(**TINY, path_sampler="pada", data_sampler="pada"), device="cuda")
    assert full["device"] == "cuda"
    a, b = load_checkpoint(tmp_path / "full")["model"], load_checkpoint(tmp_path / "part")["model"]
    # cuDNN is made deterministic; a few CUDA kernels (adaptive average pooling's backward) use atomics
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()) < 1e-4
    r = rank(tmp_path / "full", ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"],
             test_per_class=2, batch_size=20, device="cuda")
    assert r["fidelity"]["device"] == "cuda" and r["charged"] == 1
