"""Compiled CPU kernels of the bright-field ray model (numba), forward and adjoint.

The volume's log-transmittance is zero-padded by ``pad`` pixels and flattened with a row stride of ``width + pad``:
each row is ``pad`` zeros followed by its ``width`` voxels, so the zeros between two rows serve as the right margin of
the one and the left margin of the next (a lateral read at most ``pad`` beyond the right edge wraps into them); the
layer has ``pad`` zero rows above and ``pad + 1`` below. A tap table (built by
:class:`widefield3d.optics.brightfield._TapTable`) handles the rays two at a time: per pair, in depth order, every
voxel that either ray crosses, with its layer offset ``delta``, padded row/column offsets ``row``/``col`` and the two
path lengths ``length[m, 0]``, ``length[m, 1]`` (0 where a ray misses the voxel; an odd last ray has an empty partner).
:func:`tap_offsets` turns it, per focus plane, into each pair's in-volume tap range and each tap's flat offset. The
output is cut into spans of ``ROWS_PER_SPAN`` image rows; a span's rows are one contiguous run of padded positions, so
every tap is one shifted multiply-add over the whole span (a vectorised loop; the padding between rows is computed and
ignored). A tap's value is loaded once for both rays of the pair (adjacent pupil samples share about two thirds of
their voxels, so a pair has about a third fewer taps than its two rays), four taps per pass, the first pass writing
instead of adding. Per span and pair the kernel exponentiates and averages over rays: the same arithmetic as the
shifted-layer sum of the torch path, without writing any per-ray intermediate to memory. Spans are spread over numba's
threads; the adjoint gives each thread a private gradient buffer and sums them at the end.

float32 uses a vectorisable ``exp``: ``2 ** n * p(f)`` with ``y = x log2(e)`` rounded to float32, ``n = round(y)``,
``f = y - n`` and a degree-5 minimax polynomial ``p(f) ~ 2 ** f``. Against float64 ``exp`` of the same float32 input its
absolute error is below 1.4e-7 for every ``x <= 0`` (a transmission in [0, 1]; 8-bit steps are 1/255); its relative
error is below 2.1e-7 on [-1, 0] and grows with ``|x|`` from the rounding of ``y`` (6.2e-7 at -10, 4e-6 at -87, the
size of the error one float32 rounding of ``x`` itself causes). float64 uses ``math.exp``.
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


@intrinsic
def _rint(typingctx, x):
    """Round a float32 to the nearest integer (``llvm.rint``: one vectorisable instruction)."""

    def codegen(context, builder, signature, args):
        return builder.call(builder.module.declare_intrinsic("llvm.rint", [ir.FloatType()]), args)

    return types.float32(types.float32), codegen


@njit(fastmath=True, inline="always")
def _exp32(x):
    y = min(max(x * np.float32(_LOG2E), np.float32(-126.0)), np.float32(127.0))
    n = _rint(y)
    f = y - n  # exp(x) = 2 ** n * 2 ** f with |f| <= 1/2; p(f) ~ 2 ** f (minimax for the relative error)
    p = np.float32(1.3264727e-3)
    p = p * f + np.float32(9.671513e-3)
    p = p * f + np.float32(5.5507336e-2)
    p = p * f + np.float32(2.4022242e-1)
    p = p * f + np.float32(6.931470e-1)
    p = p * f + np.float32(1.0)
    return p * _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))


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
    """Per focus ``f``: the in-volume taps ``[ranges[f, j, 0], ranges[f, j, 1])`` of every pair ``j`` of rays and
    every tap's flat offset ``offset[f, m]`` into the padded volume (for output row 0, column 0)."""
    n_pairs = starts.size - 1
    ranges = np.empty((n_focus, n_pairs, 2), np.int64)
    offset = np.empty((n_focus, delta.size), np.int64)
    for f in range(n_focus):
        s = first + f * step
        for j in range(n_pairs):
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
def _pair_log_span(flat, acc, offset, length, m0, m1, base, n):
    """``acc[r, i] = sum_m length[m, r] * flat[base + offset[m] + i]`` for ``i < n``, taps ``m0 <= m < m1``: the
    log-transmission of both rays ``r`` of a pair over ``n`` consecutive padded positions (4 taps per pass; the first
    pass takes the 1-4 left over and writes instead of adding)."""
    if m1 == m0:
        acc[:, :n] = 0
        return
    lead = (m1 - m0 - 1) % 4 + 1
    b0 = np.uint64(base + offset[m0])  # taps beyond ``lead`` repeat tap 0 as placeholders; their loop ignores them
    b1 = np.uint64(base + offset[m0 + 1]) if lead > 1 else b0
    b2 = np.uint64(base + offset[m0 + 2]) if lead > 2 else b0
    b3 = np.uint64(base + offset[m0 + 3]) if lead > 3 else b0
    a0, c0 = length[m0, 0], length[m0, 1]
    a1, c1 = (length[m0 + 1, 0], length[m0 + 1, 1]) if lead > 1 else (a0, c0)
    a2, c2 = (length[m0 + 2, 0], length[m0 + 2, 1]) if lead > 2 else (a0, c0)
    a3, c3 = (length[m0 + 3, 0], length[m0 + 3, 1]) if lead > 3 else (a0, c0)
    if lead == 1:
        for i in range(n):
            v0 = flat[b0 + np.uint64(i)]
            acc[0, i] = a0 * v0
            acc[1, i] = c0 * v0
    elif lead == 2:
        for i in range(n):
            u = np.uint64(i)
            v0, v1 = flat[b0 + u], flat[b1 + u]
            acc[0, i] = a0 * v0 + a1 * v1
            acc[1, i] = c0 * v0 + c1 * v1
    elif lead == 3:
        for i in range(n):
            u = np.uint64(i)
            v0, v1, v2 = flat[b0 + u], flat[b1 + u], flat[b2 + u]
            acc[0, i] = a0 * v0 + a1 * v1 + a2 * v2
            acc[1, i] = c0 * v0 + c1 * v1 + c2 * v2
    else:
        for i in range(n):
            u = np.uint64(i)
            v0, v1, v2, v3 = flat[b0 + u], flat[b1 + u], flat[b2 + u], flat[b3 + u]
            acc[0, i] = a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
            acc[1, i] = c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3
    for m in range(m0 + lead, m1, 4):
        b0, b1 = np.uint64(base + offset[m]), np.uint64(base + offset[m + 1])
        b2, b3 = np.uint64(base + offset[m + 2]), np.uint64(base + offset[m + 3])
        a0, a1, a2, a3 = length[m, 0], length[m + 1, 0], length[m + 2, 0], length[m + 3, 0]
        c0, c1, c2, c3 = length[m, 1], length[m + 1, 1], length[m + 2, 1], length[m + 3, 1]
        for i in range(n):
            u = np.uint64(i)
            v0, v1, v2, v3 = flat[b0 + u], flat[b1 + u], flat[b2 + u], flat[b3 + u]
            acc[0, i] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
            acc[1, i] += c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3


@njit(inline="always")
def _span(k, height, width, wp):
    """Rows ``y0 .. y0 + rows - 1`` of span ``k`` and its length ``n`` in padded positions (row stride ``wp``)."""
    y0 = k * ROWS_PER_SPAN
    rows = min(ROWS_PER_SPAN, height - y0)
    return y0, rows, (rows - 1) * wp + width


@njit(parallel=True, fastmath=True, cache=True)
def render_rows(padded, ranges, offset, length, n_rays, out):
    """``out[f, y, x]`` = mean over the ``n_rays`` rays of ``exp(log-transmission)`` (taps of focus ``f`` from
    :func:`tap_offsets`; pair ``j`` holds rays ``2 j`` and ``2 j + 1``)."""
    _, hp, wp = padded.shape
    n_focus, height, width = out.shape
    flat = padded.ravel()
    n_pairs = ranges.shape[1]
    n_spans = (height + ROWS_PER_SPAN - 1) // ROWS_PER_SPAN
    scale = out.dtype.type(1.0 / n_rays)
    for fk in prange(n_focus * n_spans):
        f = fk // n_spans
        y0, rows, n = _span(fk - f * n_spans, height, width, wp)
        acc = np.empty((2, ROWS_PER_SPAN * wp), out.dtype)
        total = np.zeros((ROWS_PER_SPAN, width), out.dtype)
        for j in range(n_pairs):
            _pair_log_span(flat, acc, offset[f], length, ranges[f, j, 0], ranges[f, j, 1], y0 * wp, n)
            if 2 * j + 1 < n_rays:
                for r in range(rows):
                    for x in range(width):
                        total[r, x] += _exp(acc[0, r * wp + x]) + _exp(acc[1, r * wp + x])
            else:  # the odd last ray has no partner
                for r in range(rows):
                    for x in range(width):
                        total[r, x] += _exp(acc[0, r * wp + x])
        for r in range(rows):
            for x in range(width):
                out[f, y0 + r, x] = total[r, x] * scale


@njit(parallel=True, fastmath=True, cache=True)
def render_rows_adjoint(padded, grad_out, ranges, offset, length, n_rays, grad_padded):
    """Gradient of ``sum(grad_out * render_rows(padded))`` with respect to ``padded``, written to ``grad_padded``.

    ``grad_padded`` has shape ``(n_chunks, *padded.shape)``: chunk ``c`` of the output spans adds into its own
    buffer; the caller sums them (no write conflicts between threads). A missing partner ray has zero path lengths, so
    it adds nothing.
    """
    _, hp, wp = padded.shape
    n_focus, height, width = grad_out.shape
    n_chunks = grad_padded.shape[0]
    flat = padded.ravel()
    n_pairs = ranges.shape[1]
    n_spans = (height + ROWS_PER_SPAN - 1) // ROWS_PER_SPAN
    scale = grad_out.dtype.type(1.0 / n_rays)
    n_work = n_focus * n_spans
    for c in prange(n_chunks):
        grad = grad_padded[c].ravel()
        acc = np.empty((2, ROWS_PER_SPAN * wp), grad_out.dtype)
        for fk in range(c * n_work // n_chunks, (c + 1) * n_work // n_chunks):
            f = fk // n_spans
            y0, rows, n = _span(fk - f * n_spans, height, width, wp)
            for j in range(n_pairs):
                m0, m1 = ranges[f, j, 0], ranges[f, j, 1]
                _pair_log_span(flat, acc, offset[f], length, m0, m1, y0 * wp, n)
                for r in range(rows):
                    for x in range(width):
                        g = grad_out[f, y0 + r, x] * scale
                        acc[0, r * wp + x] = _exp(acc[0, r * wp + x]) * g
                        acc[1, r * wp + x] = _exp(acc[1, r * wp + x]) * g
                    if r + 1 < rows:
                        acc[:, r * wp + width:(r + 1) * wp] = 0  # the padding between rows: no output there
                for m in range(m0, m1):
                    b = np.uint64(y0 * wp + offset[f, m])
                    w0, w1 = length[m, 0], length[m, 1]
                    for i in range(n):
                        grad[b + np.uint64(i)] += w0 * acc[0, i] + w1 * acc[1, i]


def n_chunks(n_rows: int) -> int:
    """Gradient buffers for the adjoint: one per numba thread, at most one per output span of rows."""
    return max(1, min(numba.get_num_threads(), n_rows))
