import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bayesim.data.dirty import DataConfig, blend_proxy, build_benchmark, load_real_ambiguous
from bayesim.data.sources import ImageSet
from bayesim.errors import DataError


def test_benchmark_sizes_and_normalisation(data_root: Path) -> None:
    b = build_benchmark(DataConfig(ambiguous_test_images=40), seed=0)
    sizes = b.info["sizes"]
    assert sizes["train_clean"] == 300 and sizes["train_ambiguous_images"] == 30
    assert sizes["train_total"] == 300 + 30 * 10  # each ambiguous image once per sampled label
    assert (len(b.test["clean"]), len(b.test["ambiguous"]), len(b.test["ood"])) == (100, 40, 100)
    assert b.train.x.shape[1:] == (1, 28, 28) and b.train.x.dtype == torch.float32
    # OOD normalised with in-distribution (MNIST) statistics
    assert b.info["normalisation"] == {"mean": 0.1307, "std": 0.3081, "from": "mnist"}
    raw_max = (255 / 255 - 0.1307) / 0.3081
    assert math.isclose(float(b.test["ood"].x.max()), raw_max, rel_tol=1e-5)
    assert "proxy" in b.info["ambiguous"]


def test_flattened_ambiguous_copies_stay_together(data_root: Path) -> None:
    b = build_benchmark(DataConfig(), seed=0)
    amb = b.train.x[300:].reshape(30, 10, -1)
    assert torch.equal(amb, amb[:, :1].expand_as(amb))  # 10 consecutive copies per image


def test_splits_are_deterministic_given_the_seed(data_root: Path) -> None:
    cfg = DataConfig(train_limit=100, ood_limit=50)
    a, b, c = (build_benchmark(cfg, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert torch.equal(a.test["ambiguous"].x, b.test["ambiguous"].x)
    assert not torch.equal(a.train.x, c.train.x)


def test_dirty_fashion_swaps_roles(data_root: Path) -> None:
    b = build_benchmark(DataConfig(benchmark="dirty-fashion"), seed=0)
    assert b.info["normalisation"]["from"] == "fashion-mnist"
    assert "fashion-mnist" in b.info["in_distribution"] and "mnist" in b.info["ood"]


def test_blend_proxy_statistics() -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 10
    images = np.zeros((200, 28, 28), np.uint8)
    images[:, 0, 0] = 255 * (labels % 2)  # pixel (0,0) encodes class parity
    images[:, 1, 0] = labels * 20
    n = 4000
    out, sampled = blend_proxy(ImageSet(images, labels, "t"), n, rng)
    assert out.shape == (n, 28, 28) and sampled.shape == (n, 10)
    assert out.min() >= 0 and out.max() <= 1
    # every image's labels come from at most two classes
    assert all(len(set(row)) <= 2 for row in sampled[:200])
    # pixel (0, 0) is 1 for odd and 0 for even classes, so where the pair's parities differ it
    # equals alpha or 1 - alpha: both lie in [0.3, 0.7] and are uniform there (mean 0.5,
    # std 0.4/sqrt(12)); tolerance of 5 standard errors
    v = out[:, 0, 0]
    informative = v[(v > 0) & (v < 1)]
    assert informative.size > 1000
    assert informative.min() >= 0.3 - 1e-6 and informative.max() <= 0.7 + 1e-6
    se = (0.4 / math.sqrt(12)) / math.sqrt(informative.size)
    assert abs(informative.mean() - 0.5) < 5 * se
    assert abs(informative.std() - 0.4 / math.sqrt(12)) < 0.01


def test_blend_proxy_label_frequencies_follow_alpha() -> None:
    rng = np.random.default_rng(1)
    labels = np.array([0] * 50 + [1] * 50)
    images = np.zeros((100, 28, 28), np.uint8)
    images[labels == 0] = 255  # pixel value = alpha if a is class 0, 1 - alpha otherwise
    out, sampled = blend_proxy(ImageSet(images, labels, "t"), 5000, rng)
    p_class0 = out[:, 0, 0].astype(np.float64)  # probability that a label is class 0
    freq0 = (sampled == 0).mean(1)
    # E[freq0 | image] = p_class0, Var = p(1-p)/10: standardised residuals have mean 0, var 1
    z = (freq0 - p_class0) / np.sqrt(p_class0 * (1 - p_class0) / 10)
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    assert abs(z.var() - 1) < 0.1


def test_real_ambiguous_files(tmp_path: Path, data_root: Path) -> None:
    torch.save(torch.rand(8, 1, 28, 28), tmp_path / "amnist_samples.pt")
    torch.save(torch.randint(0, 10, (8, 10)), tmp_path / "amnist_labels.pt")
    images, labels = load_real_ambiguous(tmp_path)
    assert images.shape == (8, 28, 28) and labels.shape == (8, 10)
    b = build_benchmark(DataConfig(ambiguous_dir=tmp_path), seed=0)
    assert len(b.test["ambiguous"]) == 4 and "real Ambiguous-MNIST" in b.info["ambiguous"]
    with pytest.raises(DataError, match="only fits benchmark 'dirty-mnist'"):
        build_benchmark(DataConfig(benchmark="dirty-fashion", ambiguous_dir=tmp_path), seed=0)


@pytest.mark.parametrize(
    ("samples", "labels", "message"),
    [
        (torch.rand(8, 28, 28), torch.randint(0, 10, (8, 10)), "shape \\(N, 1, 28, 28\\)"),
        (torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8, 3)), "integer tensor of shape"),
        (torch.rand(8, 1, 28, 28) * 3, torch.randint(0, 10, (8, 10)), "must lie in \\[0, 1\\]"),
        (torch.rand(8, 1, 28, 28), torch.randint(10, 12, (8, 10)), "labels must lie"),
    ],
)
def test_real_ambiguous_validation(tmp_path: Path, samples, labels, message) -> None:
    torch.save(samples, tmp_path / "amnist_samples.pt")
    torch.save(labels, tmp_path / "amnist_labels.pt")
    with pytest.raises(DataError, match=message):
        load_real_ambiguous(tmp_path)


class NotATensor:
    pass


def test_real_ambiguous_refuses_pickled_objects(tmp_path: Path) -> None:
    torch.save({"x": NotATensor()}, tmp_path / "amnist_samples.pt")
    torch.save(torch.zeros(1, 10, dtype=torch.long), tmp_path / "amnist_labels.pt")
    with pytest.raises(DataError, match="cannot load Ambiguous-MNIST"):
        load_real_ambiguous(tmp_path)
