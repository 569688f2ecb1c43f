"""The last step before a report is written: its provenance stamped in, its floats rounded.

Every float of a report is written with :data:`SIGNIFICANT` significant digits, whatever section
it comes from, so that a report reads consistently and does not pretend to a precision that no
Monte-Carlo estimate in it has (docs/reports.md). Integers, strings and None pass unchanged.
"""

import datetime
import math
from typing import Any

from bayesim.provenance import provenance

REPORT_NAME = "report.json"
SCORES_NAME = "scores.npz"
"""The two files of a run directory: the report and the per-example scores (PE, EE, MI per
subset, the clean split's confidence and correctness, and a chip's σ pairs)."""

SIGNIFICANT = 6
"""Significant digits of every float in report.json. The finest quantities a report compares
are probabilities and W₂ distances whose Monte-Carlo standard errors are ≥ 1e-4 at the test
sets' sizes, so six digits keep two guard digits below any difference that means something."""


def rounded(value: Any, digits: int = SIGNIFICANT) -> Any:
    """``value`` with every float (in any dict or list inside it) rounded to ``digits``
    significant digits; NaN and ±inf unchanged."""
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def finished(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` rounded (:func:`rounded`) with its ``provenance`` section: the bayesim version,
    the git commit and whether the checkout had uncommitted changes (None outside a git
    checkout), and when it was written (UTC, ISO 8601)."""
    stamp = {**provenance(),
             "written_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    return rounded({**report, "provenance": stamp})
