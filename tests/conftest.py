"""Shared fixtures: tiny synthetic IDX data sets written on the fly (tests never need real data)."""

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from bayesim.data import sources
from bayesim.data.idx import write_idx
from bayesim.data.sources import SPLIT_FILES, DatasetInfo

torch.set_num_threads(1)


def synthetic_images(n: int, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28×28 uint8 images: class c is a bright bar at position 2c + 4 (rows for
    "digits", columns for "garments"), plus uniform noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        if kind == "digits":
            images[i, 2 * c + 4: 2 * c + 6, 4:24] = 255
        else:
            images[i, 4:24, 2 * c + 4: 2 * c + 6] = 255
    return images, labels.astype(np.uint8)


def write_dataset(directory: Path, kind: str, n_train: int = 300, n_test: int = 100,
                  compress: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = synthetic_images(n, kind, seed + (10 if kind == "digits" else 20))
        image_stem, label_stem = SPLIT_FILES[split]
        suffix = ".gz" if compress else ""
        write_idx(directory / f"{image_stem}{suffix}", images, compress=compress)
        write_idx(directory / f"{label_stem}{suffix}", labels, compress=compress)
    return directory


@pytest.fixture(autouse=True)
def reference_cache(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $BAYESIM_CACHE per test: the software references of chip runs never leak between
    tests or into the user's cache."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BAYESIM_CACHE", str(path))
    return path


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A $BAYESIM_DATA with synthetic mnist/ and fashion-mnist/ IDX directories."""
    root = tmp_path / "data"
    write_dataset(root / "mnist", "digits")
    write_dataset(root / "fashion-mnist", "garments", compress=False)
    monkeypatch.setenv("BAYESIM_DATA", str(root))
    return root


@pytest.fixture
def tiny_overrides(data_root: Path) -> list[str]:
    """Config overrides for a seconds-long end-to-end run on the synthetic data."""
    return [
        "model.arch='mlp'", "model.hidden=[32]", "train.epochs=2", "train.batch_size=64",
        "eval.n_samples=4", "eval.sample_chunk=3", "data.ambiguous_test_images=20",
        "quant.qat_epochs=1",
    ]


@pytest.fixture
def http_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", www
    finally:
        server.shutdown()
        server.server_close()


def serve_fake_release(www: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    write_dataset(www, "digits", n_train=20, n_test=10)
    md5 = {p.name: sources.md5_of(p) for p in www.glob("*.gz")}
    monkeypatch.setitem(sources.DATASETS, "mnist",
                        DatasetInfo("mnist", ("http://127.0.0.1:9/",), md5, 0.1307, 0.3081))
    return md5
