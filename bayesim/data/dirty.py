"""Dirty-MNIST-style benchmarks: clean + ambiguous in-distribution data, and an OOD data set.

Two benchmarks (DDU protocol: Mukhoti et al., CVPR 2023, arXiv 2102.11582):

* ``dirty-mnist``: MNIST + ambiguous digits; OOD = Fashion-MNIST test.
* ``dirty-fashion``: Fashion-MNIST + ambiguous garments; OOD = MNIST test.

Ambiguous data is either the real Ambiguous-MNIST release (``amnist_samples.pt`` of shape
``(N, 1, 28, 28)`` in [0, 1] and ``amnist_labels.pt`` of shape ``(N, 10)``, loaded with
``torch.load(weights_only=True)`` and shape-checked; first half of the images for training, second
half for testing, as ddu_dirty_mnist does) or a **proxy**: convex blends ``α·x_a + (1−α)·x_b`` of
two images of different classes from the same split, ``α ~ U(0.3, 0.7)``, each labelled 10 times by
sampling class a with probability α and class b otherwise. The training set holds each ambiguous
image once per label (10 copies with their sampled labels), so splitting happens per image, i.e. in
multiples of 10 flattened examples. Test-time ambiguous images are de-duplicated (one per image).

All images of a benchmark, OOD included, are normalised with the in-distribution data set's pixel
mean and std (DDU's choice: a deployed model does not know that an input is OOD).
Every split is a deterministic function of the seed.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from bayesim.data.own import BLEND_ALPHA_RANGE, own_subsets
from bayesim.data.sources import DATASETS, ImageSet, load_split, locate
from bayesim.errors import ConfigError, DataError
from bayesim.schema import StrictModel
from bayesim.seeding import derive_seed

N_CLASSES = 10
LABELS_PER_AMBIGUOUS_IMAGE = 10

BENCHMARKS: dict[str, tuple[str, str]] = {
    "dirty-mnist": ("mnist", "fashion-mnist"),
    "dirty-fashion": ("fashion-mnist", "mnist"),
}


class DataConfig(StrictModel):
    """Which benchmark to build and from which files."""

    benchmark: Literal["dirty-mnist", "dirty-fashion"] = "dirty-mnist"
    mnist_dir: Path | None = None
    """Directory with the four MNIST IDX files; default: the search order of data/sources.py."""
    fashion_dir: Path | None = None
    """Directory with the four Fashion-MNIST IDX files; default: the search order."""
    ambiguous_dir: Path | None = None
    """Directory with the real Ambiguous-MNIST ``.pt`` files (dirty-mnist only); default: proxy."""
    train_limit: int | None = Field(default=None, ge=10)
    """Use at most this many clean training images (a seeded random subset); default: all."""
    ambiguous_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    """Ambiguous *images* per clean training image; 0.1 gives DDU's 6,000 per 60,000, i.e. equal
    numbers of clean and flattened ambiguous training examples."""
    ambiguous_test_images: int = Field(default=1000, ge=10)
    """Number of ambiguous test images built by the proxy."""
    test_limit: int | None = Field(default=None, ge=10)
    """Use at most this many clean test images; default: all."""
    ood_limit: int | None = Field(default=None, ge=10)
    """Use at most this many OOD test images; default: all."""
    file: Path | None = None
    """Your own data instead of the benchmark: an .npz or a directory of IDX test files
    (bayesim.data.own; ``--data FILE``)."""
    file_mean: float = 0.0
    """Own data: inputs are used as (x − file_mean)/file_std (default: as given)."""
    file_std: float = Field(default=1.0, gt=0)
    n_classes: int = Field(default=N_CLASSES, ge=2)
    """Own data: labels must lie in [0, n_classes)."""


@dataclass
class Subset:
    """Normalised float32 images ``[N, 1, 28, 28]`` and int64 labels ``[N]``."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Benchmark:
    """Training data and the three evaluation subsets ``clean``, ``ambiguous``, ``ood``."""

    name: str
    train: Subset
    test: dict[str, Subset]
    info: dict = field(default_factory=dict)
    n_classes: int = N_CLASSES


def _normalise(images01: np.ndarray, mean: float, std: float) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images01, dtype=np.float32))
    return ((x - mean) / std).reshape(-1, 1, 28, 28)


def _subsample(data: ImageSet, limit: int | None, rng: np.random.Generator) -> ImageSet:
    if limit is None or limit >= len(data):
        return data
    index = np.sort(rng.permutation(len(data))[:limit])
    return ImageSet(data.images[index], data.labels[index], data.source + f" (subset of {limit})")


def blend_proxy(
    data: ImageSet, n_images: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Build ``n_images`` ambiguous images by blending pairs of different classes.

    Returns:
        images in [0, 1] as float32 ``[n, 28, 28]`` and sampled labels as int64 ``[n, 10]``.
    """
    labels = data.labels
    by_class = [np.flatnonzero(labels == c) for c in range(N_CLASSES)]
    present = [c for c in range(N_CLASSES) if by_class[c].size]
    if len(present) < 2:
        raise DataError("the ambiguous proxy needs images of at least two classes")
    present_arr = np.array(present)
    ia = rng.integers(0, len(labels), size=n_images)
    ca = labels[ia]
    # partner class: uniform over the other present classes
    pos_a = np.searchsorted(present_arr, ca)
    shift = rng.integers(1, len(present), size=n_images)
    cb = present_arr[(pos_a + shift) % len(present)]
    ib = np.array([by_class[c][rng.integers(0, by_class[c].size)] for c in cb], dtype=np.int64)
    alpha = rng.uniform(*BLEND_ALPHA_RANGE, size=n_images).astype(np.float32)
    a = data.images[ia].astype(np.float32) / 255.0
    b = data.images[ib].astype(np.float32) / 255.0
    images = alpha[:, None, None] * a + (1.0 - alpha[:, None, None]) * b
    take_a = rng.random((n_images, LABELS_PER_AMBIGUOUS_IMAGE)) < alpha[:, None]
    sampled = np.where(take_a, ca[:, None], cb[:, None]).astype(np.int64)
    return images.astype(np.float32), sampled


def load_real_ambiguous(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate the real Ambiguous-MNIST files (never unpickles arbitrary objects)."""
    directory = Path(directory).expanduser()
    paths = [directory / "amnist_samples.pt", directory / "amnist_labels.pt"]
    for p in paths:
        if not p.is_file():
            raise DataError(f"{p} not found; data.ambiguous_dir must hold amnist_samples.pt and "
                            f"amnist_labels.pt")
    try:
        samples = torch.load(paths[0], weights_only=True, map_location="cpu")
        labels = torch.load(paths[1], weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises several types for a bad or unsafe file
        raise DataError(f"cannot load Ambiguous-MNIST from {directory}: {exc}") from None
    if not (isinstance(samples, torch.Tensor) and samples.is_floating_point()
            and samples.ndim == 4 and tuple(samples.shape[1:]) == (1, 28, 28)):
        raise DataError(f"{paths[0]}: expected a float tensor of shape (N, 1, 28, 28)")
    if not (isinstance(labels, torch.Tensor) and not labels.is_floating_point()
            and tuple(labels.shape) == (samples.shape[0], LABELS_PER_AMBIGUOUS_IMAGE)):
        raise DataError(f"{paths[1]}: expected an integer tensor of shape ({samples.shape[0]}, 10)")
    if samples.shape[0] < 2:
        raise DataError(f"{paths[0]}: needs at least 2 images (half train, half test)")
    if float(samples.min()) < 0.0 or float(samples.max()) > 1.0:
        raise DataError(f"{paths[0]}: pixel values must lie in [0, 1]")
    if int(labels.min()) < 0 or int(labels.max()) >= N_CLASSES:
        raise DataError(f"{paths[1]}: labels must lie in [0, {N_CLASSES - 1}]")
    return samples[:, 0].numpy().astype(np.float32), labels.numpy().astype(np.int64)


def _flatten(images01: np.ndarray, sampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each ambiguous image once per sampled label (the DDU "flattened" training set)."""
    reps = sampled.shape[1]
    return np.repeat(images01, reps, axis=0), sampled.reshape(-1)


def build_benchmark(config: DataConfig, seed: int) -> Benchmark:
    """Assemble the benchmark described by ``config``; deterministic given ``seed``."""
    if config.file is not None:
        return own_benchmark(config, seed)
    id_name, ood_name = BENCHMARKS[config.benchmark]
    dirs = {"mnist": config.mnist_dir, "fashion-mnist": config.fashion_dir}
    id_loc = locate(id_name, dirs[id_name])
    ood_loc = locate(ood_name, dirs[ood_name])
    stats = DATASETS[id_name]

    def rng(*keys: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed(seed, "data", *keys))

    train = _subsample(load_split(id_loc, "train"), config.train_limit, rng("train-subset"))
    test = _subsample(load_split(id_loc, "test"), config.test_limit, rng("test-subset"))
    ood = _subsample(load_split(ood_loc, "test"), config.ood_limit, rng("ood-subset"))

    n_amb_train = int(round(config.ambiguous_fraction * len(train)))
    if config.ambiguous_dir is not None:
        if config.benchmark != "dirty-mnist":
            raise DataError("data.ambiguous_dir holds Ambiguous-MNIST digits and only fits "
                            "benchmark 'dirty-mnist'; remove it or switch the benchmark")
        amb_images, amb_labels = load_real_ambiguous(config.ambiguous_dir)
        half = amb_images.shape[0] // 2
        amb_train = (amb_images[:half][:n_amb_train], amb_labels[:half][:n_amb_train])
        amb_test = (amb_images[half:], amb_labels[half:])
        ambiguous_kind = f"real Ambiguous-MNIST from {config.ambiguous_dir}"
    else:
        amb_train = blend_proxy(train, n_amb_train, rng("ambiguous", "train")) if n_amb_train else (
            np.zeros((0, 28, 28), np.float32), np.zeros((0, 10), np.int64))
        amb_test = blend_proxy(test, config.ambiguous_test_images, rng("ambiguous", "test"))
        ambiguous_kind = (f"proxy: blends of two {id_name} images of different classes, "
                          f"alpha ~ U{BLEND_ALPHA_RANGE}, 10 sampled labels per image")

    flat_x, flat_y = _flatten(*amb_train)
    train_x = torch.cat([_normalise(train.images / 255.0, stats.mean, stats.std),
                         _normalise(flat_x, stats.mean, stats.std)])
    train_y = torch.cat([torch.from_numpy(train.labels), torch.from_numpy(flat_y)])
    subsets = {
        "clean": Subset(_normalise(test.images / 255.0, stats.mean, stats.std),
                        torch.from_numpy(test.labels)),
        # de-duplicated: one entry per ambiguous image, labelled with its first sampled label
        "ambiguous": Subset(_normalise(amb_test[0], stats.mean, stats.std),
                            torch.from_numpy(amb_test[1][:, 0].copy())),
        "ood": Subset(_normalise(ood.images / 255.0, stats.mean, stats.std),
                      torch.from_numpy(ood.labels)),
    }
    info = {
        "benchmark": config.benchmark,
        "in_distribution": train.source,
        "in_distribution_test": test.source,
        "ood": ood.source,
        "ambiguous": ambiguous_kind,
        "normalisation": {"mean": stats.mean, "std": stats.std, "from": id_name},
        "sizes": {
            "train_clean": len(train),
            "train_ambiguous_images": int(amb_train[0].shape[0]),
            "train_total": int(train_y.shape[0]),
            **{f"test_{k}": len(v) for k, v in subsets.items()},
        },
    }
    return Benchmark(config.benchmark, Subset(train_x, train_y), subsets, info)


def own_benchmark(config: DataConfig, seed: int) -> Benchmark:
    """The benchmark of ``config.file`` (bayesim.data.own)."""
    if config.file is None:
        raise ConfigError("own_benchmark needs data.file (an .npz or a directory of IDX files)")
    subsets, train, info = own_subsets(Path(config.file), config.n_classes, config.file_mean,
                                       config.file_std, config.ambiguous_test_images,
                                       np.random.default_rng(derive_seed(seed, "data", "own")))
    return Benchmark("own data", Subset(*train),
                     {k: Subset(*v) for k, v in subsets.items()}, info, config.n_classes)
