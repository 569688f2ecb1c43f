"""What the chip realises, measured from its own states and draws.

:func:`weight_draws` returns weight-space draws of one layer exactly as the chip realises them:
draw i is Monte-Carlo sample i's weights — the state sample i reads (M1/M4: the one programmed
state; M2: sample i's fresh programming; M3: the copy sample i reads; M0: an exact draw) plus one
read of its devices (the per-read variance; on the explicit path one draw per device in the card's
shape). The periphery's output noise and converters act on outputs, not weights, and are not in
them.

:func:`realised_posterior` gives, per weight, the realised mean m and std s of those draws:

==== =====================================================================================
M0   exact: (μ, σ)
M1   exact: the programmed state W and its per-read std, m = W, s = sqrt(V) (the frozen
M4   programming error and drift stay in m: a bias no number of reads averages away)
M3   exact: the uniform mixture of the R copies, m = mean_r W_r, s² = var_r W_r + mean_r V_r
     (the copies are read equally often in every complete block of R samples and in
     expectation otherwise, schemes.Copies.state_of; a run with S < R reads fewer copies)
M2   measured: ``hardware.realised_draws`` fresh programmings, m and s their mean and std
     (with standard errors)
==== =====================================================================================

and compares N(m, s²) with the target N(μ, σ²) weight by weight: the bias |m − μ|/σ, the ratio
s/σ, and the 2-Wasserstein distance W₂ = sqrt((m − μ)² + (s − σ)²) in units of σ. Layers are
summarised apart; the chip's headline is its **worst layer**, never an average weighted by weight
count. For M2 and M3 the same summary of as many exact draws of N(μ, σ²) is given beside it
(``exact_draws``): what a perfect chip with that many programmings or copies would show.
"""

import dataclasses
from typing import Any

import numpy as np

from bayesim.crossbar.mapping import SIGMA_TOLERANCE, feasibility_report, relative_error
from bayesim.machine.chip import AnalogLayer, Chip, State
from bayesim.rng import Stream, draw, stream_key, sub_seed

VERDICTS = ((0.25, "realised"), (0.5, "approximate"), (np.inf, "not realised"))
"""A layer's verdict by its median W₂/σ: the realised distribution of a typical weight lies
within a quarter of its target σ of N(μ, σ²), within half of it, or further — then its samples
are not the posterior's (a deficit alone costs at most one σ: a std at half its target is
W₂ = σ/2). For reference, the population mean and std of 8 exact draws are W₂ ≈ 0.4 σ away."""


@dataclasses.dataclass
class Realised:
    """Per-weight realised mean and std of one layer (weight units, [out, in] float64)."""

    mean: np.ndarray
    std: np.ndarray
    how: str
    mean_se: np.ndarray | None = None
    """Standard errors of a measured mean and std (None when exact)."""
    std_se: np.ndarray | None = None
    n_draws: int | None = None
    """Programmings or copies behind the numbers (M2, M3)."""


def weight_draws(chip: Chip, layer: AnalogLayer, n: int, read_seed: int) -> np.ndarray:
    """``[n, out, in]`` float32 draws of ``layer``'s weights as the chip realises them (module
    docstring); draw i is Monte-Carlo sample i of ``read_seed``."""
    if n < 1:
        raise ValueError(f"the number of draws must be ≥ 1, got {n}")
    out = np.empty((n, *layer.shape), dtype=np.float32)
    for i in range(n):
        state = chip.sample_state(layer, i, read_seed, count=False)
        out[i] = state.w + _read_noise(chip, layer, state, read_seed, i)
    return out


def _read_noise(chip: Chip, layer: AnalogLayer, state: State, read_seed: int,
                sample: int) -> np.ndarray:
    """One read's noise of every weight of ``state`` (weight units): Gaussian with the per-read
    variance, or one draw per device in the card's shape on the explicit path."""
    key = stream_key(read_seed, Stream.REALISED, layer.index)
    size = layer.mu.size
    var = chip.read_variance(layer, state)
    if state.device_sigma is not None and chip.device is not None and \
            chip.device.read_shape == "laplace":
        devices = np.square(state.device_sigma.astype(np.float64)).sum(axis=0)
        extra = np.where(var > devices * (1 + 1e-5), var - devices, 0.0)
        # the explicit path draws every device, and the periphery's weight noise, in the shape
        sigma = np.concatenate([state.device_sigma.astype(np.float64), np.sqrt(extra)[None]])
        k = sigma.shape[0]
        xi = draw(key, k * size, "laplace", sample=sample).reshape(k, *layer.shape)
        return (sigma * xi / np.sqrt(2.0)).sum(axis=0)  # unit-variance Laplace draws
    return np.sqrt(var) * draw(key, size, sample=sample).reshape(layer.shape)


def realised_posterior(chip: Chip, layer: AnalogLayer) -> Realised:
    """The realised per-weight mean and std of ``layer`` (module docstring)."""
    kind = chip.scheme.realised
    if kind == "exact":
        return Realised(layer.mu.copy(), layer.sigma.copy(), "exact: the target itself")
    if kind == "state":
        state = layer.states[0]
        return Realised(state.w.astype(np.float64), np.sqrt(chip.read_variance(layer, state)),
                        "exact: the programmed state and its per-read variance")
    if kind == "copies":
        w = np.stack([s.w.astype(np.float64) for s in layer.states])
        var = np.stack([chip.read_variance(layer, s) for s in layer.states])
        return Realised(w.mean(0), np.sqrt(w.var(0) + var.mean(0)),
                        "exact: the R programmed copies, read equally often",
                        n_draws=len(layer.states))
    return _measured_reprogramming(chip, layer)


def _measured_reprogramming(chip: Chip, layer: AnalogLayer) -> Realised:
    """M2: moments of ``realised_draws`` fresh programmings of the layer (on the chip's own
    devices), their per-read variance added; standard errors from the sample moments."""
    k = chip.hw.realised_draws
    shift = layer.mu
    sums = [np.zeros(layer.shape) for _ in range(4)]
    read_var = np.zeros(layer.shape)
    for i in range(k):
        seed = sub_seed(chip.hw.chip_seed, Stream.REALISED, i)
        state = chip.program(layer, seed, frozen_seed=chip.hw.chip_seed, count=False)
        d = state.w.astype(np.float64) - shift
        power = np.ones_like(d)
        for p in range(4):
            power = power * d
            sums[p] += power
        read_var += chip.read_variance(layer, state)
    m1, m2, m3, m4 = (x / k for x in sums)
    between = np.maximum(m2 - m1 * m1, 0.0)
    var = between + read_var / k
    std = np.sqrt(var)
    central4 = m4 - 4 * m3 * m1 + 6 * m2 * m1 ** 2 - 3 * m1 ** 4
    var_se = np.sqrt(np.maximum(central4 - between ** 2, 0.0) / k)
    with np.errstate(divide="ignore", invalid="ignore"):
        std_se = np.where(std > 0, var_se / (2 * std), 0.0)
    return Realised(shift + m1, std, f"measured: {k} fresh programmings",
                    mean_se=np.sqrt(between / k), std_se=std_se, n_draws=k)


def draws_within(draws: np.ndarray, realised: Realised, z: float = 3.0) -> tuple[int, int]:
    """How many weights of ``draws[n, out, in]`` have a draw mean and a draw std within ``z``
    standard errors of ``realised``'s mean and std: the draws' errors are s/√n for the mean and,
    for the std, the delta method with the draws' own fourth moment, sqrt((m₄ − s⁴)/n)/(2s) (so
    mixtures and Laplace reads are judged by their own kurtosis); a measured report adds its
    own. Returns (means within, stds within)."""
    d = draws.astype(np.float64)
    n = d.shape[0]
    m, s = d.mean(0), d.std(0)
    m4 = np.mean((d - m) ** 4, axis=0)
    mean_se = 0.0 if realised.mean_se is None else realised.mean_se
    std_se = 0.0 if realised.std_se is None else realised.std_se
    se_m = np.sqrt(s ** 2 / n + np.square(mean_se))
    se_s = np.sqrt(np.maximum(m4 - s ** 4, 0) / n) / (2 * np.maximum(s, 1e-300))
    se_s = np.sqrt(se_s ** 2 + np.square(std_se))
    # float32 draws: allow their rounding on top
    ok_m = np.abs(m - realised.mean) <= z * se_m + 1e-7 * np.abs(realised.mean) + 1e-9
    ok_s = np.abs(s - realised.std) <= z * se_s + 1e-6 * realised.std + 1e-9
    return int(ok_m.sum()), int(ok_s.sum())


def distance_summary(mu: np.ndarray, sigma: np.ndarray, mean: np.ndarray,
                     std: np.ndarray) -> dict[str, Any]:
    """How far N(mean, std²) is from N(μ, σ²), weight by weight, summarised: the bias |m − μ|/σ,
    the ratio s/σ, W₂/σ, the layer's pooled sqrt(Σ W₂² / Σ σ²), the fraction of σ realised within
    ±10 % and the verdict (:data:`VERDICTS`)."""
    mu, sigma = mu.reshape(-1), sigma.reshape(-1)
    mean, std = mean.reshape(-1), std.reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(sigma > 0, sigma, np.nan)
        bias = np.abs(mean - mu) / scale
        ratio = std / scale
        w2_sq = np.square(mean - mu) + np.square(std - sigma)
        w2 = np.sqrt(w2_sq) / scale
    total = float(np.sum(np.square(sigma)))
    median_w2 = float(np.nanmedian(w2)) if np.isfinite(w2).any() else float("nan")
    feas = feasibility_report(sigma, std)
    return {
        "n_weights": int(mu.size),
        "bias_median": _q(bias, 0.5), "bias_p90": _q(bias, 0.9),
        "std_ratio_median": _q(ratio, 0.5), "std_ratio_p10": _q(ratio, 0.1),
        "std_ratio_p90": _q(ratio, 0.9),
        "w2_median": median_w2, "w2_p90": _q(w2, 0.9),
        "w2_pooled": float(np.sqrt(np.sum(w2_sq) / total)) if total > 0 else None,
        "fraction_sigma_within": feas["fraction_feasible"],
        "fraction_deficit": feas["fraction_deficit"],
        "fraction_excess": feas["fraction_excess"],
        "verdict": (next(label for limit, label in VERDICTS if median_w2 <= limit)
                    if np.isfinite(median_w2) else "undefined (no σ > 0)"),
    }


def _q(values: np.ndarray, q: float) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.quantile(finite, q)) if finite.size else None


def exact_draws_summary(layer: AnalogLayer, n_draws: int, seed: int) -> dict[str, Any]:
    """:func:`distance_summary` of ``n_draws`` exact draws of N(μ, σ²) per weight (population
    mean and std of the draws): what a perfect chip with that many programmings or copies shows."""
    key = stream_key(seed, Stream.REALISED, layer.index, 1)
    z = np.stack([draw(key, layer.mu.size, sample=i) for i in range(n_draws)])
    w = layer.mu.reshape(1, -1) + layer.sigma.reshape(1, -1) * z
    return distance_summary(layer.mu, layer.sigma, w.mean(0), w.std(0))


def layer_report(chip: Chip, layer: AnalogLayer, realised: Realised) -> dict[str, Any]:
    """The realised posterior ``realised`` of one layer against its target, with its α and why
    it falls short where it does."""
    report: dict[str, Any] = {"layer": layer.index, "path": layer.path, "kind": layer.kind,
                              "shape": list(layer.shape), "how": realised.how}
    if layer.pairs is not None:
        report.update(alpha_summary(layer.pairs.alpha))
    report.update(distance_summary(layer.mu, layer.sigma, realised.mean, realised.std))
    if realised.mean_se is not None:
        report["standard_error_median"] = {
            "mean": float(np.median(realised.mean_se / np.maximum(layer.sigma, 1e-300))),
            "std": float(np.median(realised.std_se / np.maximum(layer.sigma, 1e-300)))}
    if realised.n_draws is not None:
        report["exact_draws"] = exact_draws_summary(layer, realised.n_draws, chip.hw.chip_seed)
    if layer.pairs is not None:
        nominal = feasibility_report(layer.sigma, layer.pairs.sigma_realised)
        report["nominal_fraction_sigma_within"] = nominal["fraction_feasible"]
        referred = np.sqrt(chip.periphery_referred(layer.index, layer.shape[1])) / \
            np.broadcast_to(np.asarray(layer.pairs.alpha, dtype=np.float64), layer.shape)
        report["periphery_referred_over_sigma_median"] = float(np.median(
            referred / np.maximum(layer.sigma, 1e-300)))
        widened = np.sqrt(np.square(realised.std) + np.square(referred))
        wide = distance_summary(layer.mu, layer.sigma, realised.mean, widened)
        report["with_periphery"] = {
            "note": "proxy: s widened by the periphery's output noise and ADC step per read "
                    "referred to the weights with the calibration rows' mean square "
                    "(Chip.periphery_referred), the frame the 'distance' α minimises; the "
                    "numbers above are the devices' alone",
            **{k: wide[k] for k in ("w2_median", "std_ratio_median", "fraction_sigma_within",
                                    "verdict")}}
    report["why"] = _why(chip, layer, realised, report)
    return report


def _why(chip: Chip, layer: AnalogLayer, realised: Realised, report: dict[str, Any]) -> str:
    """One sentence on what keeps a layer from its target, or '' when it is realised."""
    if report["verdict"] == "realised":
        return ""
    mu, sigma = layer.mu.reshape(-1), layer.sigma.reshape(-1)
    bias = np.abs(realised.mean.reshape(-1) - mu)
    spread = np.abs(realised.std.reshape(-1) - sigma)
    reasons = []
    if np.sum(bias ** 2) > np.sum(spread ** 2):
        median = report["bias_median"]
        reasons.append(f"the distance is dominated by {chip.scheme.frozen_error}" + (
            "" if median is None else f" (median bias {median:.2g} σ)"))
    else:
        rel = relative_error(sigma, realised.std.reshape(-1))
        excess, deficit = float(np.mean(rel > SIGMA_TOLERANCE)), \
            float(np.mean(rel < -SIGMA_TOLERANCE))
        if excess >= deficit:
            reasons.append(f"{excess:.0%} of the weights get more spread than σ (the devices' "
                           f"noise floor at this α lies above their σ)")
        else:
            reasons.append(f"{deficit:.0%} of the weights get less spread than σ (the noise "
                           f"at this α cannot reach their σ within the conductance window)")
    return "; ".join(reasons)


def alpha_summary(alpha: float | np.ndarray) -> dict[str, Any]:
    if np.ndim(alpha) == 0:
        return {"alpha_uS_per_unit": float(alpha)}
    values = np.asarray(alpha).reshape(-1)
    return {"alpha_uS_per_unit": float(np.median(values)), "alpha_scope": "column",
            "alpha_min": float(values.min()), "alpha_max": float(values.max())}


def chip_report(chip: Chip, realised: list[Realised]) -> dict[str, Any]:
    """Every layer's realised posterior (``realised``, one per layer), the worst layer as the
    headline, and the pooled numbers (labelled as such)."""
    layers = [layer_report(chip, layer, r) for layer, r in zip(chip.layers, realised, strict=True)]
    worst = max(layers, key=lambda r: (np.nan_to_num(r["w2_median"], nan=-np.inf)))
    pooled_mu = np.concatenate([layer.mu.reshape(-1) for layer in chip.layers])
    pooled_sigma = np.concatenate([layer.sigma.reshape(-1) for layer in chip.layers])
    pooled = distance_summary(pooled_mu, pooled_sigma,
                              np.concatenate([r.mean.reshape(-1) for r in realised]),
                              np.concatenate([r.std.reshape(-1) for r in realised]))
    return {"mapping": chip.scheme.name,  # the scheme's description is hardware.scheme
            "how": realised[0].how,
            "worst_layer": worst["layer"], "verdict": worst["verdict"],
            "w2_median_worst": worst["w2_median"],
            "w2_median_worst_with_periphery": max(
                (r["with_periphery"]["w2_median"] for r in layers if "with_periphery" in r),
                default=None),
            "fraction_sigma_within_worst": min(r["fraction_sigma_within"] for r in layers),
            "layers": layers,
            "pooled": {"note": "all weights of the chip together (weighted by weight count: a "
                               "large layer hides a small one)", **pooled},
            "not_realised": [f"layer {r['layer']} ({r['path']}: {r['kind']} {r['shape'][0]}×"
                             f"{r['shape'][1]}): median W₂ {r['w2_median']:.2g} σ — {r['why']}"
                             for r in layers if r["verdict"] == "not realised"]}
