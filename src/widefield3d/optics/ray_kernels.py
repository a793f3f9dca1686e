"""Compiled CPU kernels of the bright-field ray model (numba), forward and adjoint.

The volume's log-transmittance is zero-padded laterally by ``pad`` pixels and flattened. A tap table (from
:class:`widefield3d.optics.brightfield.RayTaps`) lists, ray after ray and along each ray in depth order, the layer
offset ``delta``, the padded row/column offsets ``row``/``col`` of the voxel and the path length ``length``;
:func:`tap_offsets` turns it, per focus plane, into each ray's in-volume tap range and each tap's flat offset. The
output is cut into spans of ``ROWS_PER_SPAN`` image rows; a span's rows are one contiguous run of padded positions
(row stride = padded width), so every tap of a ray is one shifted multiply-add over the whole span (a vectorised loop
in L1 cache; the padding between rows is computed and ignored). Per span and ray the kernel exponentiates and averages
over rays: the same arithmetic as the shifted-layer sum of the torch path, without writing any per-ray intermediate to
memory. Spans are spread over numba's threads; the adjoint gives each thread a private gradient buffer and sums them
at the end.

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


ROWS_PER_SPAN = 8
"""Output rows handled together: the taps' shifted reads cover ``ROWS_PER_SPAN`` padded rows in one contiguous pass."""


@njit(cache=True)
def tap_offsets(starts, delta, row, col, first, step, n_focus, n_layers, hp, wp):
    """Per focus ``f``: the in-volume taps ``[ranges[f, j, 0], ranges[f, j, 1])`` of every ray ``j`` and every tap's
    flat offset ``offset[f, m]`` into the padded volume (for output row 0, column 0)."""
    n_rays = starts.size - 1
    ranges = np.empty((n_focus, n_rays, 2), np.int64)
    offset = np.empty((n_focus, delta.size), np.int64)
    for f in range(n_focus):
        s = first + f * step
        for j in range(n_rays):
            m0, m1 = starts[j], starts[j + 1]
            while m0 < m1 and s + delta[m0] < 0:
                m0 += 1
            while m1 > m0 and s + delta[m1 - 1] >= n_layers:
                m1 -= 1
            ranges[f, j, 0], ranges[f, j, 1] = m0, m1
        for m in range(delta.size):
            offset[f, m] = ((s + delta[m]) * hp + row[m]) * wp + col[m]
    return ranges, offset


@njit(fastmath=True, inline="always")
def _ray_log_span(flat, acc, offset, length, m0, m1, base, n):
    """``acc[i] = sum_m length[m] * flat[base + offset[m] + i]`` for ``i < n``, taps ``m0 <= m < m1``: the ray's
    log-transmission over ``n`` consecutive padded positions (4 taps per pass; the first pass also takes the 0-3
    left over and writes instead of adding)."""
    extra = (m1 - m0) % 4
    if extra == 0 and m1 > m0:
        extra = 4
    m = m0
    b0 = np.uint64(base + offset[m]) if extra > 0 else np.uint64(0)
    b1 = np.uint64(base + offset[m + 1]) if extra > 1 else np.uint64(0)
    b2 = np.uint64(base + offset[m + 2]) if extra > 2 else np.uint64(0)
    w0 = length[m] if extra > 0 else length.dtype.type(0)
    w1 = length[m + 1] if extra > 1 else length.dtype.type(0)
    w2 = length[m + 2] if extra > 2 else length.dtype.type(0)
    if extra == 0:
        acc[:n] = 0
    elif extra == 1:
        for i in range(n):
            acc[i] = w0 * flat[b0 + np.uint64(i)]
    elif extra == 2:
        for i in range(n):
            u = np.uint64(i)
            acc[i] = w0 * flat[b0 + u] + w1 * flat[b1 + u]
    elif extra == 3:
        for i in range(n):
            u = np.uint64(i)
            acc[i] = w0 * flat[b0 + u] + w1 * flat[b1 + u] + w2 * flat[b2 + u]
    else:
        b3 = np.uint64(base + offset[m + 3])
        w3 = length[m + 3]
        for i in range(n):
            u = np.uint64(i)
            acc[i] = w0 * flat[b0 + u] + w1 * flat[b1 + u] + w2 * flat[b2 + u] + w3 * flat[b3 + u]
    m += extra
    while m + 4 <= m1:
        b0, b1 = np.uint64(base + offset[m]), np.uint64(base + offset[m + 1])
        b2, b3 = np.uint64(base + offset[m + 2]), np.uint64(base + offset[m + 3])
        w0, w1, w2, w3 = length[m], length[m + 1], length[m + 2], length[m + 3]
        for i in range(n):
            u = np.uint64(i)
            acc[i] += w0 * flat[b0 + u] + w1 * flat[b1 + u] + w2 * flat[b2 + u] + w3 * flat[b3 + u]
        m += 4


@njit(inline="always")
def _span(k, height, width, wp):
    """Rows ``y0 .. y0 + rows - 1`` of span ``k`` and its length ``n`` in padded positions (row stride ``wp``)."""
    y0 = k * ROWS_PER_SPAN
    rows = min(ROWS_PER_SPAN, height - y0)
    return y0, rows, (rows - 1) * wp + width


@njit(parallel=True, fastmath=True, cache=True)
def render_rows(padded, ranges, offset, length, out):
    """``out[f, y, x]`` = mean over rays of ``exp(log-transmission)`` (taps of focus ``f`` from :func:`tap_offsets`)."""
    _, hp, wp = padded.shape
    n_focus, height, width = out.shape
    flat = padded.ravel()
    n_rays = ranges.shape[1]
    n_spans = (height + ROWS_PER_SPAN - 1) // ROWS_PER_SPAN
    scale = out.dtype.type(1.0 / n_rays)
    for fk in prange(n_focus * n_spans):
        f = fk // n_spans
        y0, rows, n = _span(fk - f * n_spans, height, width, wp)
        acc = np.empty(ROWS_PER_SPAN * wp, out.dtype)
        total = np.zeros((ROWS_PER_SPAN, width), out.dtype)
        for j in range(n_rays):
            _ray_log_span(flat, acc, offset[f], length, ranges[f, j, 0], ranges[f, j, 1], y0 * wp, n)
            for r in range(rows):
                for x in range(width):
                    total[r, x] += _exp(acc[r * wp + x])
        for r in range(rows):
            for x in range(width):
                out[f, y0 + r, x] = total[r, x] * scale


@njit(parallel=True, fastmath=True, cache=True)
def render_rows_adjoint(padded, grad_out, ranges, offset, length, grad_padded):
    """Gradient of ``sum(grad_out * render_rows(padded))`` with respect to ``padded``, written to ``grad_padded``.

    ``grad_padded`` has shape ``(n_chunks, *padded.shape)``: chunk ``c`` of the output spans adds into its own
    buffer; the caller sums them (no write conflicts between threads).
    """
    _, hp, wp = padded.shape
    n_focus, height, width = grad_out.shape
    n_chunks = grad_padded.shape[0]
    flat = padded.ravel()
    n_rays = ranges.shape[1]
    n_spans = (height + ROWS_PER_SPAN - 1) // ROWS_PER_SPAN
    scale = grad_out.dtype.type(1.0 / n_rays)
    n_work = n_focus * n_spans
    for c in prange(n_chunks):
        grad = grad_padded[c].ravel()
        acc = np.empty(ROWS_PER_SPAN * wp, grad_out.dtype)
        for fk in range(c * n_work // n_chunks, (c + 1) * n_work // n_chunks):
            f = fk // n_spans
            y0, rows, n = _span(fk - f * n_spans, height, width, wp)
            for j in range(n_rays):
                m0, m1 = ranges[f, j, 0], ranges[f, j, 1]
                _ray_log_span(flat, acc, offset[f], length, m0, m1, y0 * wp, n)
                for r in range(rows):
                    for x in range(width):
                        acc[r * wp + x] = _exp(acc[r * wp + x]) * grad_out[f, y0 + r, x] * scale
                    if r + 1 < rows:
                        acc[r * wp + width:(r + 1) * wp] = 0  # the padding between rows: no output there
                for m in range(m0, m1):
                    b = np.uint64(y0 * wp + offset[f, m])
                    w = length[m]
                    for i in range(n):
                        grad[b + np.uint64(i)] += w * acc[i]


def n_chunks(n_rows: int) -> int:
    """Gradient buffers for the adjoint: one per numba thread, at most one per output span of rows."""
    return max(1, min(numba.get_num_threads(), n_rows))
