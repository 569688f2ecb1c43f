import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bayesim.data.idx import read_idx, read_images, read_labels, write_idx
from bayesim.errors import DataError


def raw_idx(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_images_and_labels(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    write_idx(tmp_path / "i", images, compress=compress)
    write_idx(tmp_path / "l", labels, compress=compress)
    assert (tmp_path / "i").read_bytes()[:2] == (b"\x1f\x8b" if compress else b"\x00\x00")
    np.testing.assert_array_equal(read_images(tmp_path / "i"), images)
    np.testing.assert_array_equal(read_labels(tmp_path / "l"), labels)


def test_gzip_is_detected_by_magic_not_by_name(tmp_path: Path) -> None:
    data = raw_idx(0x08, (3,), bytes([1, 2, 3]))
    (tmp_path / "plain.gz").write_bytes(data)  # misleading name, raw content
    (tmp_path / "packed.bin").write_bytes(gzip.compress(data))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), [1, 2, 3])
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.bin"), [1, 2, 3])


def test_multibyte_types_are_big_endian(tmp_path: Path) -> None:
    values = np.array([1.5, -2.25, 1e6], dtype=">f4")
    (tmp_path / "f").write_bytes(raw_idx(0x0D, (3,), values.tobytes()))
    out = read_idx(tmp_path / "f", expect_dtype=None)
    assert out.dtype == np.float32 and out.dtype.byteorder in "=<|"
    np.testing.assert_array_equal(out, [1.5, -2.25, 1e6])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x00", "wrong magic number"),
        (raw_idx(0x07, (1,), b"\x00"), "wrong magic number"),  # unknown type code
        (raw_idx(0x0C, (1,), b"\x00" * 4), "element type int32"),  # valid IDX, not uint8
        (raw_idx(0x08, (5,), b"\x00" * 3), "truncated"),
        (raw_idx(0x08, (2,), b"\x00" * 3), "trailing bytes"),
        (raw_idx(0x08, (2_000_000,), b""), "cap"),
        (b"\x00\x00", "too short"),
        (struct.pack(">HBB", 0, 8, 3) + b"\x00\x00", "truncated IDX header"),
    ],
)
def test_malformed_files_are_rejected(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_image_shape_and_dimension_checks(tmp_path: Path) -> None:
    write_idx(tmp_path / "small", np.zeros((2, 20, 20), np.uint8))
    with pytest.raises(DataError, match=r"shape \(20, 20\)"):
        read_images(tmp_path / "small")
    write_idx(tmp_path / "flat", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="1 dimensions, expected 3"):
        read_images(tmp_path / "flat")


def test_label_range_is_checked(tmp_path: Path) -> None:
    write_idx(tmp_path / "l", np.array([0, 9, 10, 3], np.uint8))
    with pytest.raises(DataError, match="label 10 at index 2 is out of range"):
        read_labels(tmp_path / "l")


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    write_idx(tmp_path / "full", np.zeros((50, 28, 28), np.uint8))
    data = (tmp_path / "full").read_bytes()
    (tmp_path / "cut").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        read_images(tmp_path / "cut")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "nope")


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(0, 5), st.integers(1, 4), st.integers(1, 4))),
       st.booleans())
def test_round_trip_property(tmp_path_factory, array: np.ndarray, compress: bool) -> None:
    path = tmp_path_factory.mktemp("idx") / "a"
    write_idx(path, array, compress=compress)
    np.testing.assert_array_equal(read_idx(path, expect_dtype="u1"), array)
