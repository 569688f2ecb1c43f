"""Statistical assertions with tolerances derived from the sample size.

Z = 5 standard errors: a correct implementation fails a single check with probability ≈ 6e-7, and
since every test uses fixed seeds the outcome is deterministic anyway.
"""

import math

import numpy as np
from scipy import stats

Z = 5.0
KS_ALPHA = 1e-3


def assert_moments(x: np.ndarray, mean: float, std: float, kurtosis: float = 3.0,
                   label: str = "") -> None:
    """Sample mean and std of ``x`` match (mean, std): standard errors σ/√n for the mean and
    σ·sqrt((κ − 1)/(4n)) for the standard deviation (κ the distribution's kurtosis)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    se_mean = std / math.sqrt(n)
    se_std = std * math.sqrt((kurtosis - 1.0) / (4.0 * n))
    assert abs(x.mean() - mean) <= Z * se_mean + 1e-12, \
        f"{label} mean {x.mean():.6g} vs {mean:.6g} (tolerance {Z * se_mean:.3g}, n = {n})"
    assert abs(x.std() - std) <= Z * se_std + 1e-12, \
        f"{label} std {x.std():.6g} vs {std:.6g} (tolerance {Z * se_std:.3g}, n = {n})"


def assert_ks(x: np.ndarray, dist: str, *args: float, label: str = "") -> None:
    """One-sample Kolmogorov–Smirnov test of ``x`` against a scipy distribution."""
    p = stats.kstest(np.asarray(x).ravel(), dist, args=args).pvalue
    assert p > KS_ALPHA, f"{label} KS p = {p:.3g} against {dist}{args}"


def assert_same_distribution(a: np.ndarray, b: np.ndarray, label: str = "") -> None:
    p = stats.ks_2samp(np.asarray(a).ravel(), np.asarray(b).ravel()).pvalue
    assert p > KS_ALPHA, f"{label} two-sample KS p = {p:.3g}"
