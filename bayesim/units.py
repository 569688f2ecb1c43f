"""Times written in the unit a reader thinks in: 3600 s reads "1 h", 86400 s "1 day". One writer
for every axis, legend and table that shows a time (device cards, drift sweeps)."""

TIME_UNITS = (("year", 365.25 * 86400), ("month", 365.25 * 86400 / 12), ("week", 7 * 86400),
              ("day", 86400), ("h", 3600), ("min", 60), ("s", 1), ("ms", 1e-3))
"""The units a time is written in, largest first (a month is a twelfth of a Julian year)."""


def human_time(seconds: float) -> str:
    """``seconds`` in the largest unit of :data:`TIME_UNITS` it reaches: 3600 → "1 h", 86400 →
    "1 day", 3.156e7 → "1 year", 20 → "20 s"; plural words take an s."""
    if seconds <= 0:
        return "0 s"
    for name, size in TIME_UNITS:
        if seconds >= size * 0.999 or name == "ms":
            value = seconds / size
            text = f"{value:.3g}"
            plural = name in ("year", "month", "week", "day") and text != "1"
            return f"{text} {name}{'s' if plural else ''}"
    raise AssertionError("unreachable")
