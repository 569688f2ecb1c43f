"""The verdict of a chip run: the chip beside its software reference, and what went wrong.

A chip's accuracy of 0.44 means nothing alone; beside the software predictor of the same
checkpoint (same S, same data, same seed) it says that the chip lost half of the model. This module
turns a chip's report and its reference's report into the ``reference`` and ``verdict`` sections
of the chip's report (docs/reports.md):

- the reference's headline metrics (:data:`HEADLINE`);
- the differences chip − software of each of them;
- one warning per problem: a layer whose realised posterior is "not realised" (the
  trustworthy-chip report, ``hardware.realised_posterior``), an accuracy or an AUROC MI far below
  the software's.

"Far below" is a drop larger than a practical margin (:data:`ACCURACY_DROP`,
:data:`AUROC_DROP`) *and* larger than :data:`Z` standard errors of the difference, so that a
small test set's noise raises no warning. The standard errors treat the two runs as independent
samples of their test sets: the binomial one for accuracy, Hanley & McNeil's (Radiology 143, 29,
1982) for an AUROC. Both runs see the same images, and their errors on them are positively
correlated, so the independent standard error of the difference is larger than the paired one:
the test is conservative (a small real drop on a small test set may go unflagged). Hanley &
McNeil's formula is itself an approximation (exact for exponentially distributed scores), so
"3 standard errors" is approximate too.

The reference of a checkpoint is cached (:func:`cached_reference`): a second chip run of the same
checkpoint, data, S and seed reuses it.
"""

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bayesim.atomic import write_json
from bayesim.data.sources import file_digest
from bayesim.provenance import code_digest
from bayesim.reports import HEADLINE, headline

ACCURACY_DROP = 0.02
"""Accuracy below the software's by more than this (absolute, 2 percentage points) and by more
than :data:`Z` standard errors raises a warning. The digital 4-bit baseline of the demo stays
within 0.3 pp of fp32 (docs/results/fp32_baseline.md), so 2 pp is a loss a user would not
accept without knowing."""

AUROC_DROP = 0.05
"""AUROC MI (clean vs OOD) below the software's by more than this and by more than :data:`Z`
standard errors raises a warning: the S = 10 / 30 / 100 spread of the guideline sweeps is 0.002 –
0.004 (docs/results/guidelines.md), so 0.05 is an uncertainty estimate that has changed."""

Z = 3.0
"""Standard errors a drop must exceed to be more than test-set noise (one-sided p ≈ 0.0013 for a
normal difference)."""

CACHE_ENV = "BAYESIM_CACHE"
REALISED_FAILS = "realised posterior fails"
"""The start of a verdict warning on a layer the chip does not realise (the machine already
warned of it when it compiled; bayesim.machine.machine)."""


SAME_CHECKPOINT = "the software predictor of the same checkpoint, same S, data and seed"


def reference_section(report: dict[str, Any], cached: bool,
                      note: str = SAME_CHECKPOINT) -> dict[str, Any]:
    """The ``reference`` section of a chip's report from the software reference's ``report``."""
    return {
        "note": note,
        "predictor": report["predictor"],
        "n_samples": report["n_samples"],
        "seed": report["seed"],
        "from_cache": cached,
        **headline(report),
        "n_clean": report["in_distribution"]["n"],
        "n_ood": report["uncertainty"]["subsets"].get("ood", {}).get("n"),
    }


def accuracy_se(p: float, n: int) -> float:
    """Binomial standard error of an accuracy ``p`` measured on ``n`` images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.inf


def auroc_se(a: float, n_negative: int, n_positive: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUROC ``a`` from ``n_negative`` negatives and
    ``n_positive`` positives."""
    if n_negative < 1 or n_positive < 1:
        return math.inf
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_positive - 1) * (q1 - a * a)
           + (n_negative - 1) * (q2 - a * a)) / (n_negative * n_positive)
    return math.sqrt(max(var, 0.0))


def verdict(chip: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The ``verdict`` section of the chip's ``report`` against its ``reference`` section."""
    ours = headline(chip)
    differences = {key: None if ours[key] is None or reference.get(key) is None
                   else ours[key] - reference[key] for key, _ in HEADLINE}
    warnings: list[str] = []
    problems: list[str] = []
    realised = (chip.get("hardware") or {}).get("realised_posterior") or {}
    failing = realised.get("not_realised", [])
    for line in failing:
        warnings.append(f"{REALISED_FAILS}: {line}")
    if failing:
        problems.append(f"the realised posterior fails in {len(failing)} of "
                        f"{len(realised['layers'])} layers")
    n = chip["in_distribution"]["n"]
    acc_se = math.hypot(accuracy_se(ours["accuracy"], n),
                        accuracy_se(reference["accuracy"], reference.get("n_clean") or n))
    drop = -differences["accuracy"]
    if drop > ACCURACY_DROP and drop > Z * acc_se:
        warnings.append(f"accuracy {ours['accuracy']:.3f} is {drop:.3f} below the software's "
                        f"{reference['accuracy']:.3f} (> {ACCURACY_DROP:g} and > {Z:g} standard "
                        f"errors, {acc_se:.3f})")
        problems.append(f"accuracy {drop:.3f} below software")
    auroc_drop_se = None
    if differences["auroc_epistemic"] is not None:
        n_ood = chip["uncertainty"]["subsets"]["ood"]["n"]
        auroc_drop_se = math.hypot(
            auroc_se(ours["auroc_epistemic"], n, n_ood),
            auroc_se(reference["auroc_epistemic"], reference.get("n_clean") or n,
                     reference.get("n_ood") or n_ood))
        drop = -differences["auroc_epistemic"]
        if drop > AUROC_DROP and drop > Z * auroc_drop_se:
            warnings.append(f"AUROC MI (clean vs OOD) {ours['auroc_epistemic']:.3f} is "
                            f"{drop:.3f} below the software's {reference['auroc_epistemic']:.3f} "
                            f"(> {AUROC_DROP:g} and > {Z:g} standard errors, "
                            f"{auroc_drop_se:.3f})")
            problems.append(f"AUROC MI {drop:.3f} below software")
    return {
        "status": "warning" if warnings else "ok",
        "summary": "; ".join(problems) if problems else (
            "every layer's realised posterior passes, accuracy and AUROC MI within the margins "
            "of the software reference"),
        "differences": differences,
        "standard_errors": {"accuracy": acc_se, "auroc_epistemic": auroc_drop_se},
        "thresholds": {"accuracy_drop": ACCURACY_DROP, "auroc_epistemic_drop": AUROC_DROP,
                       "z": Z},
        "warnings": warnings,
    }


def cache_dir() -> Path:
    """``$BAYESIM_CACHE``, else ``$XDG_CACHE_HOME/bayesim``, else ``~/.cache/bayesim``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bayesim"


def reference_key(checkpoint: str | os.PathLike[str], settings: dict[str, Any]) -> str:
    """SHA-256 of the checkpoint's bytes, the ``settings`` that decide its software evaluation
    (the data found, with the digests of a user's own files; eval; seed) and the code (every
    module of the package, bayesim.provenance.code_digest)."""
    key = {"checkpoint": file_digest(Path(checkpoint)), "settings": settings,
           "code": code_digest()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def cached_reference(checkpoint: str | os.PathLike[str], settings: dict[str, Any],
                     compute: Callable[[], dict[str, Any]],
                     note: str = SAME_CHECKPOINT) -> dict[str, Any]:
    """The ``reference`` section of a chip run of ``checkpoint``: from the cache
    (:func:`cache_dir`/references) when a run with the same checkpoint bytes and ``settings`` made
    it, else from ``compute()`` (the software report), then cached. A cache that cannot be read
    or written is skipped: the reference is then computed every time."""
    path = cache_dir() / "references" / f"{reference_key(checkpoint, settings)}.json"
    try:
        return {**json.loads(path.read_text()), "from_cache": True}
    except (OSError, ValueError):
        pass
    section = reference_section(compute(), cached=False, note=note)
    with contextlib.suppress(OSError):
        write_json(path, section)
    return section
