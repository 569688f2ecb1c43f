"""Device measurements as `bayesim devices fit` reads them: a long-format CSV or Parquet table, one
row per measurement (docs/devices_fit.md).

Columns (a unit in brackets after the name, e.g. ``g[uS]``, or given by a flag):

- ``device``: the device's identifier (any text or number);
- ``g``: the measured conductance (achieved after programming, or a read), S, mS, uS or nS;
- ``g_target``: the programming target, same units (programming data; optional for reads);
- ``t``: time since programming, s, ms, us, min, h or day (drift traces);
- ``read``: the read index within a device (repeated reads; consecutive reads allow a lag-1
  correlation).

What a file holds decides what is fitted: several reads per device → read noise (and, with
``g_target``, the programming spread of the devices' means); one row per device with ``g_target``
→ programming noise; several times per device → drift. Every defect is a DataError naming the
column or the row and how to fix it, raised before anything is fitted.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesim.errors import DataError

CONDUCTANCE_UNITS = {"S": 1e6, "mS": 1e3, "uS": 1.0, "µS": 1.0, "nS": 1e-3}
"""Factor to µS."""
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0, "h": 3600.0,
              "day": 86400.0, "d": 86400.0}
"""Factor to s."""
REQUIRED = ("device", "g")
OPTIONAL = ("g_target", "t", "read")
_HEADER = re.compile(r"^\s*([A-Za-z_]+)\s*(?:\[\s*([^\]]*)\s*\])?\s*$")


@dataclass(frozen=True)
class Measurements:
    """The rows of a measurement file in µS and s, grouped by device (rows of one device are
    contiguous, in file order)."""

    path: Path
    device: np.ndarray
    """int, 0 … n_devices − 1 in order of first appearance."""
    names: list[str]
    g: np.ndarray
    """µS"""
    g_target: np.ndarray | None
    """µS"""
    t: np.ndarray | None
    """s"""
    read: np.ndarray | None

    @property
    def n_devices(self) -> int:
        return len(self.names)

    def per_device(self) -> np.ndarray:
        """Rows per device."""
        return np.bincount(self.device, minlength=self.n_devices)


def _table(path: Path) -> dict[str, list]:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pydict()
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    import csv

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # a spreadsheet's BOM
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty; give a header row and one row per "
                                f"measurement")
            if len(set(header)) < len(header):
                twice = next(name for name in header if header.count(name) > 1)
                raise DataError(f"{path}: column {twice!r} appears twice in the header; give "
                                f"each column once")
            columns: dict[str, list] = {name: [] for name in header}
            for number, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise DataError(f"{path}, line {number}: {len(row)} fields, the header has "
                                    f"{len(header)}")
                for name, value in zip(header, row, strict=True):
                    columns[name].append(value)
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text CSV file; give a CSV or a .parquet file") from None
    return columns


def read_measurements(path: str | os.PathLike[str], g_unit: str | None = None,
                      t_unit: str | None = None) -> Measurements:
    """Read and validate a measurement file (module docstring); units in the header win over
    ``g_unit``/``t_unit``, and a conductance or time column without either is refused."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"measurement file {path} not found")
    raw = _table(path)
    columns: dict[str, tuple[list, str | None]] = {}
    for header, values in raw.items():
        match = _HEADER.match(str(header))
        if match is None:
            raise DataError(f"{path}: column {header!r} is not NAME or NAME[UNIT]")
        name, unit = match.group(1).lower(), match.group(2)
        if name in columns:
            raise DataError(f"{path}: two columns are {name!r} (names are case-insensitive, "
                            f"units aside); give each column once")
        columns[name] = (values, unit)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise DataError(f"{path}: missing column {', '.join(repr(m) for m in missing)} (found "
                        f"{', '.join(raw) or 'none'}); give device, g[uS] and, for programming "
                        f"data, g_target[uS]")
    if not columns["g"][0]:
        raise DataError(f"{path} has no rows")

    def numbers(name: str, units: dict[str, float] | None, flag: str | None) -> np.ndarray:
        values, unit = columns[name]
        try:
            array = np.array([float(v) for v in values], dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(v for v in values if not _is_number(v))
            raise DataError(f"{path}: column {name}: {bad!r} is not a number") from None
        if units is None:
            bad = np.flatnonzero(~np.isfinite(array) | (array != np.round(array)))
            if bad.size:
                raise DataError(f"{path}: column {name}, data row {bad[0] + 1}: "
                                f"{values[bad[0]]!r} is not a whole number (a read index)")
            return array
        unit = unit or flag
        if unit is None:
            raise DataError(f"{path}: column {name} has no unit; write it in the header "
                            f"({name}[uS]) or give --{'g' if units is CONDUCTANCE_UNITS else 't'}"
                            f"-unit")
        if unit not in units:
            raise DataError(f"{path}: column {name}: unit {unit!r} is not one of "
                            f"{', '.join(units)}")
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise DataError(f"{path}: column {name}, data row {bad[0] + 1}: {values[bad[0]]!r} "
                            f"is not finite")
        return array * units[unit]

    g = numbers("g", CONDUCTANCE_UNITS, g_unit)
    target = numbers("g_target", CONDUCTANCE_UNITS, g_unit) if "g_target" in columns else None
    for name, array in (("g", g), ("g_target", target)):
        if array is not None and (array < 0).any():
            row = int(np.flatnonzero(array < 0)[0])
            raise DataError(f"{path}: column {name}, data row {row + 1}: {array[row]:g} µS is "
                            f"negative; a conductance is ≥ 0")
    t = numbers("t", TIME_UNITS, t_unit) if "t" in columns else None
    if t is not None and (t < 0).any():
        row = int(np.flatnonzero(t < 0)[0])
        raise DataError(f"{path}: column t, data row {row + 1}: negative time since programming")
    read = numbers("read", None, None) if "read" in columns else None

    labels = [str(v) for v in columns["device"][0]]
    index: dict[str, int] = {}
    device = np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64)
    order = np.argsort(device, kind="stable")  # each device's rows together, in file order
    device, g = device[order], g[order]
    target = None if target is None else target[order]
    t = None if t is None else t[order]
    read = None if read is None else read[order]
    data = Measurements(path, device, list(index), g, target, t, read)
    _check_traces(data)
    return data


def _is_number(value: object) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _check_traces(data: Measurements) -> None:
    """Times increase along every device's trace; a device has one target."""
    starts = np.r_[0, np.flatnonzero(np.diff(data.device)) + 1]
    ends = np.r_[starts[1:], data.device.size]
    for start, end in zip(starts, ends, strict=True):
        name = data.names[data.device[start]]
        if data.t is not None and end - start > 1 and (np.diff(data.t[start:end]) <= 0).any():
            raise DataError(f"{data.path}: device {name}: time is not increasing along its "
                            f"trace; give each device's rows in the order they were measured")
        if data.g_target is not None and np.ptp(data.g_target[start:end]) > 0:
            raise DataError(f"{data.path}: device {name} has more than one g_target; one "
                            f"device is programmed once per file")
