"""Compiled CPU kernels of the bright-field ray model (numba), forward and adjoint.

The volume's log-transmittance is zero-padded laterally by ``pad`` pixels and flattened. A tap table (from
:class:`widefield3d.optics.brightfield.RayTaps`) lists, ray after ray and along each ray in depth order, the layer
offset ``delta``, the padded row/column offsets ``row``/``col`` of the voxel and the path length ``length``. For every
output row (focus ``f``, image row ``y``) and ray, the kernel adds the ray's in-volume taps as whole shifted image
rows (a vectorised multiply-add in L1 cache), exponentiates and averages over rays: the same arithmetic as the
shifted-layer sum of the torch path, without writing any per-ray intermediate to memory. Rows are spread over
numba's threads; the adjoint gives each thread a private gradient buffer and sums them at the end.

float32 uses a vectorisable ``exp`` (Cody-Waite reduction, degree-6 polynomial, relative error < 2e-7); float64 uses
``math.exp``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

_LOG2E = 1.4426950408889634


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32 as float32 (to build ``2 ** n`` from its exponent bits)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@njit(fastmath=True, inline="always")
def _exp32(x):
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    y = x * np.float32(_LOG2E)
    n = np.int32(y + np.float32(0.5)) if y >= 0 else np.int32(y - np.float32(0.5))
    fn = np.float32(n)
    r = x - fn * np.float32(0.693359375) + fn * np.float32(2.12194440e-4)  # x - n ln 2, in two parts
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    return p * _float32_from_bits((n + np.int32(127)) << np.int32(23))


def _exp(x):
    return math.exp(x)


@overload(_exp, inline="always")
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    return lambda x: math.exp(x)


@njit(inline="always")
def _ray_range(starts, delta, j, s, n_layers):
    """Taps ``[m0, m1)`` of ray ``j`` that fall inside the volume for a focus on layer ``s`` (taps are depth-sorted)."""
    m0, m1 = starts[j], starts[j + 1]
    while m0 < m1 and s + delta[m0] < 0:
        m0 += 1
    while m1 > m0 and s + delta[m1 - 1] >= n_layers:
        m1 -= 1
    return m0, m1


@njit(fastmath=True, inline="always")
def _ray_log_row(flat, acc, starts, delta, row, col, length, j, s, y, n_layers, hp, wp):
    """``acc[x]`` = log-transmission of ray ``j`` through focal point ``(s, y, x)`` (4 taps per pass over the row)."""
    width = acc.size
    acc[:] = 0
    m0, m1 = _ray_range(starts, delta, j, s, n_layers)
    m = m0
    while m + 4 <= m1:
        b0 = np.uint64(((s + delta[m]) * hp + y + row[m]) * wp + col[m])
        b1 = np.uint64(((s + delta[m + 1]) * hp + y + row[m + 1]) * wp + col[m + 1])
        b2 = np.uint64(((s + delta[m + 2]) * hp + y + row[m + 2]) * wp + col[m + 2])
        b3 = np.uint64(((s + delta[m + 3]) * hp + y + row[m + 3]) * wp + col[m + 3])
        w0, w1, w2, w3 = length[m], length[m + 1], length[m + 2], length[m + 3]
        for x in range(width):
            u = np.uint64(x)
            acc[x] += w0 * flat[b0 + u] + w1 * flat[b1 + u] + w2 * flat[b2 + u] + w3 * flat[b3 + u]
        m += 4
    while m < m1:
        b0 = np.uint64(((s + delta[m]) * hp + y + row[m]) * wp + col[m])
        w0 = length[m]
        for x in range(width):
            acc[x] += w0 * flat[b0 + np.uint64(x)]
        m += 1
    return m0, m1


@njit(parallel=True, fastmath=True, cache=True)
def render_rows(padded, starts, delta, row, col, length, first, step, out):
    """``out[f, y, x]`` = mean over rays of ``exp(log-transmission)``, focus ``f`` on layer ``first + f * step``."""
    n_layers, hp, wp = padded.shape
    n_focus, height, width = out.shape
    flat = padded.ravel()
    n_rays = starts.size - 1
    scale = out.dtype.type(1.0 / n_rays)
    for fy in prange(n_focus * height):
        f = fy // height
        y = fy - f * height
        s = first + f * step
        acc = np.empty(width, out.dtype)
        total = np.zeros(width, out.dtype)
        for j in range(n_rays):
            _ray_log_row(flat, acc, starts, delta, row, col, length, j, s, y, n_layers, hp, wp)
            for x in range(width):
                total[x] += _exp(acc[x])
        for x in range(width):
            out[f, y, x] = total[x] * scale


@njit(parallel=True, fastmath=True, cache=True)
def render_rows_adjoint(padded, grad_out, starts, delta, row, col, length, first, step, grad_padded):
    """Gradient of ``sum(grad_out * render_rows(padded))`` with respect to ``padded``, written to ``grad_padded``.

    ``grad_padded`` has shape ``(n_chunks, *padded.shape)``: chunk ``c`` of the output rows adds into its own
    buffer; the caller sums them (no write conflicts between threads).
    """
    n_layers, hp, wp = padded.shape
    n_focus, height, width = grad_out.shape
    n_chunks = grad_padded.shape[0]
    flat = padded.ravel()
    n_rays = starts.size - 1
    scale = grad_out.dtype.type(1.0 / n_rays)
    n_rows = n_focus * height
    for c in prange(n_chunks):
        grad = grad_padded[c].ravel()
        acc = np.empty(width, grad_out.dtype)
        for fy in range(c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks):
            f = fy // height
            y = fy - f * height
            s = first + f * step
            for j in range(n_rays):
                m0, m1 = _ray_log_row(flat, acc, starts, delta, row, col, length, j, s, y, n_layers, hp, wp)
                for x in range(width):
                    acc[x] = _exp(acc[x]) * grad_out[f, y, x] * scale
                for m in range(m0, m1):
                    base = np.uint64(((s + delta[m]) * hp + y + row[m]) * wp + col[m])
                    w = length[m]
                    for x in range(width):
                        grad[base + np.uint64(x)] += w * acc[x]


def n_chunks(n_rows: int) -> int:
    """Gradient buffers for the adjoint: one per numba thread, at most one per output row."""
    return max(1, min(numba.get_num_threads(), n_rows))
