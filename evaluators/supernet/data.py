"""Image data for supernet training and ranking: CIFAR-10 (download with checksum into a cache
directory, or a local file through ``data=PATH``) and a small generated set for tests.

Arrays are uint8 ``N x H x W x 3`` images and uint8 labels, in the data set's official order.
Nothing here imports torch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import xxhash

from automl.errors import AutoMLError, ConfigError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TAR = "cifar-10-python.tar.gz"
CIFAR10_NPZ = "cifar10_uint8.npz"
#: per-channel mean and std of the CIFAR-10 training images (0..1 scale)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class DataError(AutoMLError, OSError):
    """Data that is missing, corrupt or not in the expected layout."""


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Train and test images (uint8, N x H x W x 3) and labels; ``name`` says where they came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = 10
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD

    def __post_init__(self) -> None:
        for x, y, part in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
                raise DataError(f"{self.name}: {part} images must be uint8 N x H x W x 3, got {x.dtype} {x.shape}")
            if len(y) != len(x):
                raise DataError(f"{self.name}: {len(x)} {part} images but {len(y)} labels")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise DataError(f"{self.name}: {part} labels outside 0..{self.num_classes - 1}")

    def train_subset(self, per_class: int | None) -> "ImageData":
        """The first ``per_class`` training images of each class, in official order (None: all)."""
        if per_class is None:
            return self
        idx = stratified_first(self.y_train, per_class, self.num_classes)
        return dataclasses.replace(self, name=f"{self.name}[train:first {per_class}/class]",
                                   x_train=self.x_train[idx], y_train=self.y_train[idx])

    def test_subset(self, per_class: int | None) -> tuple[np.ndarray, np.ndarray]:
        if per_class is None:
            return self.x_test, self.y_test
        idx = stratified_first(self.y_test, per_class, self.num_classes)
        return self.x_test[idx], self.y_test[idx]


def stratified_first(y: np.ndarray, per_class: int, num_classes: int = 10) -> np.ndarray:
    """Indices of the first ``per_class`` examples of each class, sorted (a fixed stratified subset)."""
    if per_class < 1:
        raise ConfigError(f"per-class count must be >= 1, got {per_class}")
    y = np.asarray(y)
    parts = []
    for c in range(num_classes):
        where = np.flatnonzero(y == c)
        if len(where) < per_class:
            raise ConfigError(f"class {c} has {len(where)} examples, fewer than the {per_class} asked for")
        parts.append(where[:per_class])
    return np.sort(np.concatenate(parts))


def digest(*arrays: np.ndarray) -> str:
    """xxh3-128 of the arrays' shapes, dtypes and bytes (identity of a data set in a fidelity)."""
    h = xxhash.xxh3_128()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$AUTOML_DATA`` or ``~/.cache/automl``."""
    return Path(os.environ.get("AUTOML_DATA") or Path.home() / ".cache" / "automl")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_cifar10(cache_dir: str | os.PathLike | None = None) -> Path:
    """Download ``cifar-10-python.tar.gz`` into ``cache_dir/cifar10`` (kept if it is already there
    with the right MD5) and convert it to ``cifar10_uint8.npz`` beside it; return the npz path."""
    d = Path(cache_dir or default_cache_dir()) / "cifar10"
    d.mkdir(parents=True, exist_ok=True)
    npz, tar = d / CIFAR10_NPZ, d / CIFAR10_TAR
    if npz.exists():
        return npz
    if not tar.exists() or _md5(tar) != CIFAR10_MD5:
        part = tar.with_suffix(".part")
        try:
            urllib.request.urlretrieve(CIFAR10_URL, part)
        except OSError as exc:
            raise DataError(f"could not download {CIFAR10_URL}: {exc}; download it by hand into {d} "
                            "or pass data=PATH") from None
        got = _md5(part)
        if got != CIFAR10_MD5:
            part.unlink()
            raise DataError(f"{CIFAR10_URL}: MD5 {got}, expected {CIFAR10_MD5} (corrupt download)")
        os.replace(part, tar)
    arrays = _read_cifar10_tar(tar)
    tmp = d / (CIFAR10_NPZ + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, npz)
    return npz


def _read_cifar10_tar(tar_path: Path) -> dict[str, np.ndarray]:
    """The official python tarball -> uint8 arrays.  Its batches are Python pickles; they are read
    only after the tarball's MD5 matched the published one (the data set's own format)."""
    if _md5(tar_path) != CIFAR10_MD5:
        raise DataError(f"{tar_path}: MD5 does not match the published CIFAR-10 tarball; refusing to unpickle it")
    batches: dict[str, dict] = {}
    with tarfile.open(tar_path, "r:gz") as tf:
        for m in tf.getmembers():
            base = m.name.rsplit("/", 1)[-1]
            if base.startswith("data_batch_") or base == "test_batch":
                batches[base] = pickle.load(io.BytesIO(tf.extractfile(m).read()), encoding="bytes")

    def stack(names):
        x = np.concatenate([batches[n][b"data"] for n in names]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.concatenate([np.asarray(batches[n][b"labels"]) for n in names]).astype(np.uint8)
        return np.ascontiguousarray(x, dtype=np.uint8), y

    x_train, y_train = stack([f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = stack(["test_batch"])
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def load_npz(path: str | os.PathLike, name: str = "cifar10") -> ImageData:
    """An npz with ``x_train, y_train, x_test, y_test`` (uint8, images N x H x W x 3)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {p}")
    with np.load(p) as z:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
        if missing:
            raise DataError(f"{p}: missing array(s) {', '.join(missing)} (expected x_train, y_train, x_test, y_test)")
        return ImageData(name, z["x_train"], z["y_train"].astype(np.uint8), z["x_test"], z["y_test"].astype(np.uint8))


def load_cifar10(data: str | os.PathLike | None = None, download: bool = False,
                 cache_dir: str | os.PathLike | None = None) -> ImageData:
    """CIFAR-10 from ``data`` (an npz, the official tarball, or a folder holding either), else from
    the cache directory; ``download=True`` fetches it there when missing (MD5-checked)."""
    if data is not None:
        p = Path(data)
        if p.is_dir():
            for cand in (p / CIFAR10_NPZ, p / "cifar10" / CIFAR10_NPZ, p / CIFAR10_TAR):
                if cand.exists():
                    p = cand
                    break
            else:
                raise DataError(f"{p}: no {CIFAR10_NPZ} or {CIFAR10_TAR} in this folder")
        if p.name.endswith(".tar.gz"):
            a = _read_cifar10_tar(p)
            return ImageData("cifar10", a["x_train"], a["y_train"], a["x_test"], a["y_test"])
        return load_npz(p, "cifar10")
    cached = Path(cache_dir or default_cache_dir()) / "cifar10" / CIFAR10_NPZ
    if cached.exists():
        return load_npz(cached, "cifar10")
    if not download:
        raise DataError(f"CIFAR-10 is not in {cached.parent}; pass data=PATH (an npz or the official tarball) "
                        "or download=True (--download) to fetch it")
    return load_npz(download_cifar10(cache_dir), "cifar10")


def synthetic(n_train: int = 256, n_test: int = 128, size: int = 8, num_classes: int = 10,
              seed: int = 0) -> ImageData:
    """A small learnable image set for tests: each class is a fixed random template plus noise."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(40, 215, size=(num_classes, size, size, 3))

    def make(n):
        y = np.arange(n) % num_classes
        rng.shuffle(y)
        x = templates[y] + rng.normal(0, 40, size=(n, size, size, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.uint8)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return ImageData(f"synthetic(n={n_train}/{n_test},size={size},seed={seed})", x_train, y_train, x_test, y_test,
                     num_classes=num_classes, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def resolve(data: str | None, download: bool = False, cache_dir: str | None = None) -> ImageData:
    """``data``: a path, ``"cifar10"`` (cache directory / download), or ``"synthetic"`` /
    ``"synthetic:N_TRAIN:N_TEST:SIZE:SEED"`` (the generated test set)."""
    if data is None or data == "cifar10":
        return load_cifar10(None, download, cache_dir)
    if data.startswith("synthetic"):
        parts = data.split(":")[1:]
        try:
            vals = [int(v) for v in parts]
        except ValueError:
            raise ConfigError(f"bad synthetic data spec {data!r}; expected synthetic[:N_TRAIN:N_TEST:SIZE:SEED]") from None
        keys = ("n_train", "n_test", "size", "seed")
        return synthetic(**dict(zip(keys, vals)))
    return load_cifar10(data, download, cache_dir)
