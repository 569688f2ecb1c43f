"""A safe reader and a writer for LeCun's IDX format (MNIST, Fashion-MNIST).

Layout (big-endian): two zero bytes, a type code, the number of dimensions d, d uint32 sizes, then
the row-major payload. Images are ``0x00000803`` (uint8, N×28×28), labels ``0x00000801`` (uint8, N).
The reader follows the checklist of docs/data.md ("The IDX format and the safe reader"): gzip is
recognised by its magic bytes (``1f 8b``) rather than the file name; the header is validated before
anything is allocated; the payload size is capped; a short payload (truncation) and extra bytes
(trailing garbage) are both errors; labels are range-checked. It returns read-only-safe copies as
numpy arrays.
"""

import gzip
import io
import os
import struct
from pathlib import Path

import numpy as np

from bayesim.atomic import write_bytes
from bayesim.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# type code → big-endian numpy dtype
IDX_TYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_CODE_OF_DTYPE = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}

MAX_ITEMS = 1_000_000
"""Cap on the first dimension (examples); MNIST-like files have at most 70,000."""

MAX_PAYLOAD_BYTES = 1 << 30
"""Cap on the payload of one file (1 GiB), checked from the header before any allocation."""


def _open(path: Path) -> io.BufferedIOBase:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def read_idx(
    path: str | os.PathLike[str],
    *,
    expect_ndim: int | None = None,
    expect_dtype: str | None = "u1",
    item_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a numpy array with native byte order.

    Args:
        path: the file.
        expect_ndim: required number of dimensions (1 for labels, 3 for images), or None.
        expect_dtype: required element type as a numpy kind code (``"u1"`` for MNIST-like data), or
            None to accept every IDX type.
        item_shape: required shape of one item (``(28, 28)`` for images), or None.

    Raises:
        DataError: the file is missing, not IDX, of an unexpected type or shape, too large,
            truncated, or followed by extra bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file not found: {path}")
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path}: file is too short to be IDX (needs a 4-byte header)")
            zero, code, ndim = struct.unpack(">HBB", head)
            if zero != 0 or code not in IDX_TYPES:
                magic = int.from_bytes(head, "big")
                raise DataError(
                    f"{path}: wrong magic number 0x{magic:08x}; IDX files start with 00 00, a type "
                    f"code (0x08 = uint8 …) and the number of dimensions (e.g. 0x00000803 images)"
                )
            if ndim == 0 or ndim > 4:
                raise DataError(f"{path}: IDX header declares {ndim} dimensions; expected 1 to 4")
            if expect_ndim is not None and ndim != expect_ndim:
                raise DataError(f"{path}: has {ndim} dimensions, expected {expect_ndim}")
            dtype = np.dtype(IDX_TYPES[code])
            if expect_dtype is not None and dtype.newbyteorder("=") != np.dtype(expect_dtype):
                raise DataError(
                    f"{path}: element type {dtype.name} (code 0x{code:02x}); expected "
                    f"{np.dtype(expect_dtype).name}"
                )
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", dims_raw)
            if dims[0] > MAX_ITEMS:
                raise DataError(f"{path}: header declares {dims[0]} items; the cap is {MAX_ITEMS}")
            if item_shape is not None and tuple(dims[1:]) != tuple(item_shape):
                raise DataError(f"{path}: items have shape {dims[1:]}, expected {item_shape}")
            n_bytes = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
            if n_bytes > MAX_PAYLOAD_BYTES:
                raise DataError(f"{path}: header declares {n_bytes} bytes of data; cap is 1 GiB")
            payload = f.read(n_bytes + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(payload) < n_bytes:
        raise DataError(
            f"{path}: truncated: header declares {n_bytes} data bytes, file has {len(payload)}"
        )
    if len(payload) > n_bytes:
        raise DataError(
            f"{path}: trailing bytes after the {n_bytes} data bytes the header declares")
    array = np.frombuffer(payload, dtype=dtype).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an MNIST-like image file: uint8, shape ``[N, 28, 28]``."""
    return read_idx(path, expect_ndim=3, expect_dtype="u1", item_shape=(28, 28))


def read_labels(path: str | os.PathLike[str], n_classes: int = 10) -> np.ndarray:
    """Read an MNIST-like label file: uint8 in ``[0, n_classes)``, shape ``[N]``."""
    labels = read_idx(path, expect_ndim=1, expect_dtype="u1")
    if labels.size and int(labels.max()) >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise DataError(
            f"{path}: label {int(labels[bad])} at index {bad} is out of range; labels must lie in "
            f"[0, {n_classes - 1}]"
        )
    return labels


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool = True) -> None:
    """Write ``array`` as an IDX file (gzip-compressed if ``compress``), e.g. for test fixtures."""
    array = np.asarray(array)
    code = _CODE_OF_DTYPE.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}")
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(IDX_TYPES[code], copy=False).tobytes()
    if compress:
        data = gzip.compress(data, mtime=0)
    write_bytes(path, data)
