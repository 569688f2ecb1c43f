"""Your own data: ``data.file`` (``--data FILE``) — an ``.npz`` or a directory of IDX files — in
place of a built-in benchmark.

An ``.npz`` holds ``x_test`` ``[N, …]`` (float, or uint8 scaled by 1/255) and ``y_test`` ``[N]``
(integer labels in [0, ``data.n_classes``)), and optionally ``x_ood`` and ``x_ambiguous`` (same
per-example shape) and ``x_train``/``y_train`` (the chip's calibration inputs). It is read with
``allow_pickle=False``. A directory holds the standard ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte`` (optionally ``.gz``). ``[N, H, W]`` images get a channel axis. Inputs
are used as given, then ``(x − data.file_mean)/data.file_std`` (0 and 1 by default: normalise
them the way the model was trained). Without ``x_ambiguous`` the ambiguous set is the proxy of
docs/data.md: blends of two test inputs of different labels, α ~ U(0.3, 0.7); without ``x_ood`` the
report has no OOD subset and its epistemic AUROCs are null.
"""

import zipfile
from pathlib import Path

import numpy as np
import torch

from bayesim.data.idx import read_images, read_labels
from bayesim.data.sources import _idx_file, file_digest, tree_digest
from bayesim.errors import DataError

KEYS = ("x_test", "y_test", "x_ood", "x_ambiguous", "x_train", "y_train")
BLEND_ALPHA_RANGE = (0.3, 0.7)  # docs/data.md: the blend proxy's α range (dirty.py too)


def _inputs(name: str, x: np.ndarray, path: Path, example: tuple[int, ...] | None
            ) -> np.ndarray:
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif x.dtype.kind != "f":
        raise DataError(f"{path}: {name} has dtype {x.dtype}; inputs must be float or uint8")
    if x.ndim < 2 or x.shape[0] == 0:
        raise DataError(f"{path}: {name} must have shape [N, …] with N ≥ 1, got {x.shape}")
    if x.ndim == 3:
        x = x[:, None]  # [N, H, W] images: one channel
    if example is not None and tuple(x.shape[1:]) != example:
        raise DataError(f"{path}: {name} has examples of shape {tuple(x.shape[1:])}, x_test "
                        f"{example}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: {name} has NaN or Inf values")
    return x


def _labels(name: str, y: np.ndarray, n: int, n_classes: int, path: Path) -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: {name} has dtype {y.dtype}; labels must be integers")
    if y.shape != (n,):
        raise DataError(f"{path}: {name} has shape {y.shape}, expected ({n},) (one label per "
                        f"input)")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{path}: {name} has labels in [{y.min()}, {y.max()}], outside "
                        f"[0, {n_classes - 1}]; set data.n_classes if the model has more classes")
    return y.astype(np.int64)


def read_own(path: Path, n_classes: int) -> dict[str, np.ndarray]:
    """The validated arrays of ``path`` (module docstring), inputs float32, labels int64."""
    if path.is_dir():
        images = _idx_file(path, "t10k-images-idx3-ubyte")
        labels = _idx_file(path, "t10k-labels-idx1-ubyte")
        if images is None or labels is None:
            raise DataError(f"{path} has no t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
                            f"(IDX); give those or an .npz with x_test and y_test")
        raw = {"x_test": read_images(images), "y_test": read_labels(labels, n_classes)}
    elif path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{path} is not a readable .npz without pickled objects "
                            f"({exc})") from None
    else:
        raise DataError(f"data file {path} not found")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise DataError(f"{path}: unknown array {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    for key in ("x_test", "y_test"):
        if key not in raw:
            raise DataError(f"{path} has no {key}")
    if ("x_train" in raw) != ("y_train" in raw):
        raise DataError(f"{path}: x_train and y_train go together")
    x = _inputs("x_test", raw["x_test"], path, None)
    out = {"x_test": x, "y_test": _labels("y_test", raw["y_test"], x.shape[0], n_classes, path)}
    for key in ("x_ood", "x_ambiguous", "x_train"):
        if key in raw:
            out[key] = _inputs(key, raw[key], path, tuple(x.shape[1:]))
    if "y_train" in raw:
        out["y_train"] = _labels("y_train", raw["y_train"], out["x_train"].shape[0], n_classes,
                                 path)
    return out


def blend_inputs(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` blends α·a + (1−α)·b of two inputs of different labels (α ~ U(0.3, 0.7)), labelled
    with a's label: the ambiguous proxy on any data."""
    if len(np.unique(y)) < 2:
        raise DataError("the ambiguous proxy needs test inputs of at least two labels; give "
                        "x_ambiguous")
    a = rng.integers(0, len(y), size=n)
    b = rng.integers(0, len(y), size=n)
    clash = y[a] == y[b]
    while clash.any():  # redraw partners of the same label
        b[clash] = rng.integers(0, len(y), size=int(clash.sum()))
        clash = y[a] == y[b]
    alpha = rng.uniform(*BLEND_ALPHA_RANGE, size=n).astype(np.float32)
    shape = (n,) + (1,) * (x.ndim - 1)
    return alpha.reshape(shape) * x[a] + (1 - alpha.reshape(shape)) * x[b], y[a]


def own_subsets(path: Path, n_classes: int, mean: float, std: float, n_ambiguous: int,
                rng: np.random.Generator) -> tuple[dict, tuple, dict]:
    """(test subsets, (train x, train y), info) of the data at ``path``."""
    arrays = read_own(path, n_classes)

    def norm(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((a - mean) / std).float()

    x, y = arrays["x_test"], arrays["y_test"]
    subsets = {"clean": (norm(x), torch.from_numpy(y))}
    if "x_ambiguous" in arrays:
        amb = arrays["x_ambiguous"]
        subsets["ambiguous"] = (norm(amb), torch.zeros(len(amb), dtype=torch.int64))
        ambiguous = f"x_ambiguous of {path}"
    else:
        amb_x, amb_y = blend_inputs(x, y, n_ambiguous, rng)
        subsets["ambiguous"] = (norm(amb_x), torch.from_numpy(amb_y))
        ambiguous = (f"proxy: blends of two test inputs of different labels, alpha ~ "
                     f"U{BLEND_ALPHA_RANGE}")
    if "x_ood" in arrays:
        subsets["ood"] = (norm(arrays["x_ood"]), torch.zeros(len(arrays["x_ood"]),
                                                             dtype=torch.int64))
    train = (norm(arrays["x_train"]), torch.from_numpy(arrays["y_train"])) \
        if "x_train" in arrays else (norm(x), torch.from_numpy(y))
    info = {
        "benchmark": "own data",
        "file": str(path),
        "sha256": file_digest(path) if path.is_file() else tree_digest(path),
        "in_distribution": f"x_test of {path}",
        "ood": f"x_ood of {path}" if "x_ood" in arrays else None,
        "ambiguous": ambiguous,
        "normalisation": {"mean": mean, "std": std, "from": "data.file_mean/file_std on the "
                          "inputs as given (uint8 scaled by 1/255 first)"},
        "train": f"x_train of {path}" if "x_train" in arrays else None,
        "calibration_inputs": "x_train" if "x_train" in arrays else "x_test (no x_train given)",
        "sizes": {f"test_{k}": int(v[0].shape[0]) for k, v in subsets.items()},
    }
    return subsets, train, info
