"""numba kernels of the devices: writing (programming), drift exponents, drift, accumulated
noise and repeated reads of single devices (bayesim.devices.model).

Kernels work on flat float64 arrays of conductances (µS) and on per-device σ arrays that the device
model evaluated beforehand (bayesim.devices.laws); they know nothing of device cards. Every random
number comes from bayesim.rng at a counter coordinate fixed by *what* it is (element index,
sample index), so results are bit-identical for any thread count.
"""

import math

import numba

from bayesim.rng import normal_at, uniform_at, unit_noise


@numba.njit(cache=True, parallel=True)
def write_kernel(g_target, sigma, g_min, g_max, levels, d2d_rel, p_stuck_min, p_stuck_max,
                 shape, key_program, key_d2d, key_fault, out):
    """Program ``g_target`` (µS): quantize to the level grid, add programming noise of std
    ``sigma`` (per device), apply the device's window spread, clip to [g_min, g_max], then stuck-at
    faults. ``levels`` = 0 means an analog (continuous) target."""
    n = g_target.shape[0]
    span = g_max - g_min
    for i in numba.prange(n):
        g = g_target[i]
        if levels > 1:
            step = span / (levels - 1)
            g = g_min + round((g - g_min) / step) * step
        g = g + sigma[i] * unit_noise(shape, key_program[0], key_program[1], i, 0, 0, 0)
        if d2d_rel > 0.0:
            xi_d2d = normal_at(key_d2d[0], key_d2d[1], i, 0, 0, 0)
            g = g_min + (g - g_min) * (1.0 + d2d_rel * xi_d2d)
        g = min(max(g, g_min), g_max)
        if p_stuck_min > 0.0 or p_stuck_max > 0.0:
            u = uniform_at(key_fault[0], key_fault[1], i, 0, 0, 0)
            if u < p_stuck_min:
                g = g_min
            elif u < p_stuck_min + p_stuck_max:
                g = g_max
        out[i] = g


@numba.njit(cache=True, parallel=True)
def drift_nu_kernel(nu_mean, nu_std, key, out):
    """Per-device drift exponents ν = |μ_ν + σ_ν·ξ| (drawn once, at programming)."""
    for i in numba.prange(nu_mean.shape[0]):
        out[i] = abs(nu_mean[i] + nu_std[i] * normal_at(key[0], key[1], i, 0, 0, 0))


@numba.njit(cache=True, parallel=True)
def drift_kernel(g_prog, nu, t_over_t0, out):
    """G(t) = G_p·(t/t₀)^(−ν) for t/t₀ > 1 (G_p before t₀), with per-device ν."""
    log_ratio = math.log(t_over_t0) if t_over_t0 > 1.0 else 0.0
    for i in numba.prange(g_prog.shape[0]):
        out[i] = g_prog[i] * math.exp(-nu[i] * log_ratio)


@numba.njit(cache=True, parallel=True)
def gaussian_noise_clip_kernel(g, sigma, g_min, g_max, key, out):
    """``out = clip(g + σ·ξ, g_min, g_max)``, one draw per device (e.g. the accumulated 1/f
    noise at an inference time)."""
    for i in numba.prange(g.shape[0]):
        out[i] = min(max(g[i] + sigma[i] * normal_at(key[0], key[1], i, 0, 0, 0), g_min), g_max)


@numba.njit(cache=True, parallel=True)
def read_devices_kernel(g, sigma, shape, key, sample0, out):
    """``out[s, i]`` = g[i] + σ[i]·ξ: ``n_reads`` independent reads of every device, read ``s``
    being sample index ``sample0 + s`` of the stream."""
    n_reads, n = out.shape
    for s in numba.prange(n_reads):
        for i in range(n):
            out[s, i] = g[i] + sigma[i] * unit_noise(shape, key[0], key[1], i, 0, sample0 + s, 0)


@numba.njit(cache=True, parallel=True)
def uniform_interp(g, g0, step, values, out):
    """``out[i]``: ``values`` (given at g0, g0 + step, …) linearly interpolated at ``g[i]``, held
    at the end values outside (np.interp on a uniform grid, without its binary search)."""
    last = values.shape[0] - 1
    for i in numba.prange(g.shape[0]):
        u = (g[i] - g0) / step
        if u <= 0.0:
            out[i] = values[0]
        elif u >= last:
            out[i] = values[last]
        else:
            k = int(u)
            f = u - k
            out[i] = values[k] * (1.0 - f) + values[k + 1] * f
