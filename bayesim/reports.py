"""The last step before a report is written: its provenance stamped in, its floats rounded.

Every measured float of a report is written with :data:`SIGNIFICANT` significant digits, whatever
section it comes from, so that a report reads consistently and does not pretend to a precision
that no Monte-Carlo estimate in it has (docs/reports.md). The inputs the run was given stay as
given (:data:`AS_GIVEN`: the configs, the data's description, the provenance), and integers,
strings and None pass unchanged.
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


AS_GIVEN = ("config", "predictor", "periphery", "data", "provenance")
"""Keys whose values are inputs, not measurements: never rounded (a drift_time of 31557601 s
stays 31557601)."""


def rounded(value: Any, digits: int = SIGNIFICANT) -> Any:
    """``value`` with every float (in any dict or list inside it, except under the keys of
    :data:`AS_GIVEN`) rounded to ``digits`` significant digits; NaN and ±inf unchanged."""
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: v if k in AS_GIVEN else rounded(v, digits) for k, v in value.items()}
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
