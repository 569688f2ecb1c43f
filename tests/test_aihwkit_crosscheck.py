"""Cross-check of the pcm_ibm_2020 card against aihwkit's PCMLikeNoiseModel on the same targets.

aihwkit (installed with --no-deps, see the Makefile) draws from torch's global RNG; we seed it and
compare distributions by two-sample KS tests and moments with tolerances from the sample sizes.
Targets stay ≥ 4σ below g_max: aihwkit clips only at 0, bayesim at [g_min, g_max].
"""

import math

import numpy as np
import pytest

from bayesim.devices.presets import load_preset
from tests.statcheck import assert_moments, assert_same_distribution

torch = pytest.importorskip("torch")
aihwkit_noise = pytest.importorskip("aihwkit.inference.noise.pcm")

N = 100_000
TARGETS = (2.5, 10.0, 18.0)  # µS on the 25 µS scale
Z = 5.0


def _aihwkit_model():
    return aihwkit_noise.PCMLikeNoiseModel()


def _compare(ours: np.ndarray, theirs: np.ndarray, label: str) -> None:
    assert_same_distribution(ours, theirs, label)
    sd = 0.5 * (ours.std() + theirs.std())
    se_mean = sd * math.sqrt(2.0 / ours.size)
    se_std = sd * math.sqrt(1.0 / ours.size)  # two samples, each σ/sqrt(2n)
    assert abs(ours.mean() - theirs.mean()) <= Z * se_mean, label
    assert abs(ours.std() - theirs.std()) <= Z * se_std, label


@pytest.mark.parametrize("target", TARGETS)
def test_programming_noise_agrees_with_aihwkit(target: float) -> None:
    torch.manual_seed(0)
    theirs = _aihwkit_model().apply_programming_noise_to_conductance(
        torch.full((N,), target)).double().numpy()
    ours = load_preset("pcm_ibm_2020").program(np.full(N, target), seed=0)
    _compare(ours, theirs, f"programming @ {target} µS")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("t_inference", [0.0, 3600.0, 86_400.0 * 30])
def test_drift_plus_read_agrees_with_aihwkit(target: float, t_inference: float) -> None:
    """From the same programmed conductances: ν drawn per device, power-law drift and the
    accumulated 1/f read noise at t_inference (aihwkit's apply_drift_noise_to_conductance)."""
    torch.manual_seed(1)
    g_prog = torch.full((N,), target)
    model = _aihwkit_model()
    nu_theirs = model.generate_drift_coefficients(g_prog)
    theirs = model.apply_drift_noise_to_conductance(g_prog, nu_theirs, t_inference)
    card = load_preset("pcm_ibm_2020")
    g = np.full(N, target)
    nu_ours = card.drift_exponents(g, seed=1)
    ours = card.at_time(g, nu_ours, t_inference, seed=1)
    _compare(nu_ours, nu_theirs.double().numpy(), f"ν @ {target} µS")
    _compare(ours, theirs.double().numpy(), f"G(t = {t_inference} s) @ {target} µS")


def test_accumulated_noise_sigma_matches_aihwkit_without_drift() -> None:
    """With ν = 0 the drifted conductance is the programmed one plus 1/f noise only: compare the
    standard deviation with the card's σ formula at several conductances."""
    torch.manual_seed(2)
    model = _aihwkit_model()
    card = load_preset("pcm_ibm_2020")
    for target in TARGETS:
        g_prog = torch.full((N,), target)
        theirs = model.apply_drift_noise_to_conductance(g_prog, torch.zeros(N), 100.0)
        sigma = float(card.sigma_accumulated(np.array([target]), 100.0)[0])
        assert_moments(theirs.double().numpy(), target, sigma, label=f"aihwkit 1/f @ {target}")
