"""Tiled inference of image-to-image networks on inputs of any size, with bounded memory.

Geometry (per spatial axis, in input pixels; ``d`` = divisor, ``h`` = halo, ``b`` = blend):

* The image is virtually extended by reflection (numpy ``mode="reflect"``, repeated for short axes). The
  low-side extension ``P = ceil(h / d) * d`` is a multiple of ``d``, so every tile window starts on the
  network's pooling grid of the image.
* Tile ``k`` feeds the network the window ``[k*s - P, k*s - P + T)`` and keeps the output of
  ``[k*s, k*s + s + b)``: at least ``h`` pixels of context remain on both sides. The tile count follows
  from the largest step ``s`` (a multiple of ``d``, ``>= b``) with ``P + s + b + h <= tile``; then ``s`` is
  reduced to the smallest such multiple that still covers the axis with that count, and ``T <= tile`` to
  the smallest multiple of ``d`` with ``P + s + b + h <= T``.
* Neighbouring kept regions overlap by exactly ``b`` pixels, where they are cross-faded with raised-cosine
  weights that sum to one; the weights are separable over axes. An axis that fits into one window
  (``P + N + h <= T``) gets a single, shorter window and no blending.

Hence, if ``h`` is at least the network's receptive radius, each output pixel is computed from exactly
the input it would see in whole-image inference on the reflection-padded image (padded by ``P`` and
enough at the far side), so tiled and whole-image outputs agree to float precision; with a smaller
halo the errors are cross-faded instead of producing seams.

With ``border="zeros"`` the reflected context is hidden from the network instead: before every convolution
wider than one pixel, the feature voxels of a window that lie outside the image (extended to a multiple of
``d``, by reflection) are set to zero, which is what that convolution's own zero padding supplies at the
border of one pass over the unpadded image. Windows start on the pooling grid, so no pooling cell straddles
the border, and with ``h`` at least the receptive radius tiles then agree with one plain pass of the network
over the image (a multiple of ``d``).

Memory: tiles are processed in strips along the first spatial axis that needs more than one tile, and each
strip in blocks of at most ``column_tiles`` tiles along the second such axis (default: as many as keep the
float32 output block within ``BLOCK_BYTES``, 256 MiB). For each block the input band
(window rows x the block's windows x full padded extent of any other axis) is read once from the source
(numpy, zarr or dask; the source is never materialised whole), the blended output of the block is
accumulated, its finished part is written to ``out``, the ``b`` columns shared with the next block are
carried to it and the ``b`` rows shared with the next strip go into a carry line (``b`` output rows of the
full width). Peak memory is about one input band and one output block (both bounded by ``column_tiles``,
not by the image width), the carry line, and one batch of tiles with the network's activations. Blocking
does not change the result: each output pixel receives the same tile contributions in the same order
(bit-equal when the batches hold the same tiles).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from widefield3d.device import resolve_device
from widefield3d.errors import InputError
from widefield3d.progress import progress_bar

__all__ = ["frozen_norms", "image_norm_statistics", "predict_tiled", "round_up"]

IntOrTuple = int | tuple[int, ...]
Border = Literal["reflect", "zeros"]


@dataclass(frozen=True)
class _AxisPlan:
    """Tiling of one spatial axis; lengths in input pixels unless stated."""

    size: int  # image extent N
    window: int  # network input length T per tile (multiple of the divisor)
    step: int  # distance s between neighbouring windows (multiple of the divisor)
    blend: int  # overlap b of neighbouring kept regions (0 for a single tile)
    pad: int  # context P before the first image pixel (multiple of the divisor)
    count: int  # number of tiles
    scale: int  # output pixels per input pixel

    def start(self, k: int) -> int:
        """First image pixel (may be negative: reflected) of window ``k``."""
        return k * self.step - self.pad

    def kept(self, k: int) -> tuple[int, int]:
        """Image pixels ``[lo, hi)`` whose output tile ``k`` contributes."""
        lo = k * self.step
        return lo, min(self.size, lo + self.step + self.blend)

    @property
    def padded(self) -> int:
        """Length of the virtually padded extent covered by all windows."""
        return (self.count - 1) * self.step + self.window

    @property
    def strip(self) -> int:
        """Output pixels held for one strip along this axis."""
        return min(self.size, self.step + self.blend) * self.scale

    def weights(self, k: int) -> np.ndarray:
        """Blending weights (float32, output pixels) over the kept region of tile ``k``."""
        lo, hi = self.kept(k)
        w = np.ones((hi - lo) * self.scale, np.float32)
        n = self.blend * self.scale
        if n:
            ramp = np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2
            if k > 0:
                w[:n] = ramp
            if k < self.count - 1:
                w[self.step * self.scale : self.step * self.scale + n] = ramp[::-1]
        return w


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value`` (pixels)."""
    return -(-value // multiple) * multiple


def _plan_axis(name: str, size: int, tile: int, halo: int, blend: int, divisor: int, scale: int) -> _AxisPlan:
    if tile < divisor:
        raise InputError(f"predict_tiled: tile={tile} along {name} is smaller than the network divisor {divisor}")
    tile -= tile % divisor
    pad = round_up(halo, divisor)
    single = round_up(pad + size + halo, divisor)
    if single <= tile:
        return _AxisPlan(size, single, single, 0, pad, 1, scale)
    step = (tile - pad - blend - halo) // divisor * divisor
    if step < max(divisor, blend):
        need = round_up(pad + blend + halo + round_up(max(divisor, blend), divisor), divisor)
        raise InputError(
            f"predict_tiled: tile={tile} along {name} is too small for halo={halo}, blend={blend} and "
            f"divisor={divisor}; use tile >= {need}, a smaller halo or a smaller blend"
        )
    count = math.ceil((size - blend) / step)
    step = round_up(max(math.ceil((size - blend) / count), blend), divisor)  # same count, less padding
    count = math.ceil((size - blend) / step)
    return _AxisPlan(size, round_up(pad + step + blend + halo, divisor), step, blend, pad, count, scale)


def _per_axis(name: str, value, ndim: int, minimum: int) -> tuple[int, ...]:
    values = (value,) * ndim if not isinstance(value, (tuple, list)) else tuple(value)
    if len(values) != ndim or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in values
    ):
        raise InputError(f"predict_tiled: {name}={value!r} must be an integer >= {minimum} or {ndim} of them")
    return tuple(int(v) for v in values)


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Map pixel indices outside ``[0, size)`` by (repeated) reflection, like ``np.pad(mode="reflect")``."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index < size, index, period - index)


def _read(image, ranges: list[np.ndarray]) -> np.ndarray:
    """Read ``image[:, ranges...]`` (reflected pixel indices per axis) as float32, touching only its bounding box."""
    ranges = [_reflect(r, n) for r, n in zip(ranges, image.shape[1:])]
    box = tuple(slice(int(r.min()), int(r.max()) + 1) for r in ranges)
    raw = np.asarray(image[(slice(None), *box)])
    local = [r - b.start for r, b in zip(ranges, box)]
    if any(not np.array_equal(r, np.arange(len(r))) for r in local):
        raw = raw[(slice(None),) + np.ix_(*local)]
    return raw.astype(np.float32, copy=False)


def _along(axis: int, index: slice, ndim: int) -> tuple[slice, ...]:
    """Index of a channel-first array selecting ``index`` along spatial ``axis``."""
    key = [slice(None)] * (ndim + 1)
    key[1 + axis] = index
    return tuple(key)


def _check_image(model: nn.Module, image) -> int:
    """Validate the model and image; return the number of spatial axes."""
    if not isinstance(model, nn.Module):
        raise InputError(f"predict_tiled: model must be a torch.nn.Module, got {type(model).__name__}")
    if not all(hasattr(image, a) for a in ("shape", "dtype", "__getitem__")):
        raise InputError(f"predict_tiled: image must be a numpy, zarr or dask array, got {type(image).__name__}")
    shape, dtype = tuple(image.shape), np.dtype(image.dtype)
    if dtype.kind not in "uif":
        raise InputError(f"predict_tiled: image dtype {dtype} is not numeric (integer or float)")
    ndim = getattr(model, "ndim", len(shape) - 1)
    if len(shape) - 1 != ndim or ndim not in (2, 3):
        axes = "C" + "ZYX"[-ndim:] if ndim in (2, 3) else "CYX or CZYX"
        raise InputError(f"predict_tiled: image shape {shape} does not match the {axes} axes the model expects")
    if min(shape) < 1:
        raise InputError(f"predict_tiled: image shape {shape} has an empty axis")
    in_channels = getattr(model, "in_channels", shape[0])
    if shape[0] != in_channels:
        raise InputError(f"predict_tiled: image has {shape[0]} channels (axis 0) but the model takes {in_channels}")
    return ndim


def _geometry(
    model: nn.Module, image, tile, halo, divisor
) -> tuple[int, str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Validated ``(ndim, axis names, tile, halo, divisor)``, per spatial axis, with the model's defaults."""
    ndim = _check_image(model, image)
    if divisor is None:
        divisor = getattr(model, "downsampling_factor", 1)
    divisor = _per_axis("divisor", divisor, ndim, 1)
    tile = _per_axis("tile", tile, ndim, 1)
    if halo is None:
        halo = getattr(model, "receptive_radius", None)
        halo = tuple(t // 8 for t in tile) if halo is None else halo
    halo = _per_axis("halo", halo, ndim, 0)
    return ndim, "ZYX"[-ndim:], tile, halo, divisor


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class _ZeroBorder:
    """Forward pre-hooks that make a batch of tile windows see the image border as one pass over the image does.

    Before every convolution wider than one pixel, the feature voxels of each window that lie outside the image
    are set to zero: what the convolution's zero padding supplies at the border of one pass over the image.
    The image counts as extended (by reflection) to ``extent``, a multiple of the divisor per axis, so that
    the windows (which start on the pooling grid) never have a pooling cell across the border. Call
    :meth:`place` with the windows' first image pixels before each forward pass.
    """

    def __init__(self, model: nn.Module, plans: list[_AxisPlan], divisor: tuple[int, ...], where: str):
        self.extent = [round_up(p.size, d) for p, d in zip(plans, divisor)]  # input pixels per axis
        self.window = [p.window for p in plans]  # input pixels per axis
        self.starts = np.zeros((0, len(plans)), int)
        self.masks: dict[tuple[int, ...], torch.Tensor | None] = {}
        self.convs = [m for m in model.modules() if isinstance(m, _CONVS) and max(m.kernel_size) > 1]
        for m in self.convs:
            if m.padding_mode != "zeros":
                raise InputError(f"{where}: border='zeros' needs zero-padded convolutions, the model has "
                                 f"padding_mode={m.padding_mode!r}")

    def place(self, starts: list[tuple[int, ...]]) -> None:
        """Set the first image pixel (per axis; negative: outside) of each window of the next batch."""
        self.starts = np.asarray(starts, int).reshape(len(starts), len(self.window))
        self.masks = {}

    def _mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """``(B, 1, *S)`` 0/1 mask of the feature voxels inside the image, None if all are."""
        shape = tuple(x.shape[2:])
        if shape not in self.masks:
            inside = []
            for i, n in enumerate(shape):
                f = self.window[i] // n  # input pixels per feature voxel
                if f * n != self.window[i]:
                    raise InputError(f"predict_tiled: border='zeros' needs feature maps that divide the window "
                                     f"({self.window[i]} px), got {n}")
                first = self.starts[:, i, None] + f * np.arange(n)
                view = (len(first),) + tuple(n if j == i else 1 for j in range(len(shape)))
                inside.append(((first >= 0) & (first + f <= self.extent[i])).reshape(view))
            mask = functools.reduce(np.logical_and, inside)
            self.masks[shape] = None if mask.all() else torch.from_numpy(mask[:, None]).to(x.device, x.dtype)
        return self.masks[shape]

    def _hook(self, module: nn.Module, args: tuple) -> tuple | None:
        mask = self._mask(args[0])
        return None if mask is None else (args[0] * mask, *args[1:])

    @contextlib.contextmanager
    def hooked(self):
        """Within the block, the model's convolutions see zeros outside the image."""
        handles = [m.register_forward_pre_hook(self._hook) for m in self.convs]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()


def _border(model: nn.Module, plans: list[_AxisPlan], divisor: tuple[int, ...], border: str, where: str):
    """The :class:`_ZeroBorder` for ``border="zeros"``, None for ``"reflect"``."""
    if border == "reflect":
        return None
    if border == "zeros":
        return _ZeroBorder(model, plans, divisor, where)
    raise InputError(f"{where}: border={border!r} must be 'reflect' or 'zeros'")


def predict_tiled(
    model: nn.Module,
    image,
    *,
    tile: IntOrTuple = 512,
    halo: IntOrTuple | None = None,
    blend: IntOrTuple = 32,
    divisor: IntOrTuple | None = None,
    scale: IntOrTuple = 1,
    out_channels: int | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    out=None,
    progress: bool = True,
    amp: bool = False,
    column_tiles: int | None = None,
    border: Border = "reflect",
):
    """Run an image-to-image network over an image of any size, tile by tile, with seamless blending.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, C_in, *S)`` to ``(B, C_out, *(S * scale))`` (float32). Set to ``eval()`` and moved to
        ``device`` (its training flag is restored afterwards). Optional attributes used when present:
        ``ndim``, ``in_channels``, ``downsampling_factor``, ``receptive_radius``.
    image : array-like
        Channel-first ``(C, Y, X)`` for a 2D model or ``(C, Z, Y, X)`` for a 3D model; numpy, zarr.Array or
        dask array of any integer/float dtype, fed to the network as float32 values without normalisation.
        Read band by band; a zarr or dask input is never loaded whole.
    tile : int or tuple of int
        Largest network input window per tile, in input pixels (per spatial axis if a tuple). Windows are
        multiples of ``divisor`` and shrunk to the smallest size that keeps the number of tiles.
    halo : int or tuple of int, optional
        Context, in input pixels, kept around each tile's retained output and discarded. Default: the
        model's ``receptive_radius`` if it has one (tiled output then equals whole-image output to float
        precision), else ``tile // 8``.
    blend : int or tuple of int
        Overlap, in input pixels, of neighbouring tiles' retained regions, cross-faded with raised-cosine
        weights that sum to one.
    divisor : int or tuple of int, optional
        Network input sizes must be multiples of this; default ``model.downsampling_factor`` or 1.
    scale : int or tuple of int
        Output pixels per input pixel. An int scales the lateral axes (Y, X) only: in 3D, Z is unchanged.
        A tuple gives one factor per spatial axis.
    out_channels : int, optional
        Expected output channels; default ``out.shape[0]`` if ``out`` is given, else what the network returns.
    batch_size : int
        Tiles per forward pass.
    device : {"cpu", "cuda", "cuda:N", "auto"} or torch.device
        Where the network runs; "auto" picks CUDA when available.
    out : writable array-like, optional
        ``(C_out, *(spatial * scale))`` target (numpy or zarr.Array), written strip by strip; values are
        cast by its own assignment. Default: a new float32 numpy array.
    progress : bool
        Show a rich progress bar over tiles.
    amp : bool
        Run the network under float16 autocast on CUDA (ignored on CPU).
    column_tiles : int, optional
        Most tiles along the second tiled axis (X for a 2D image) processed together within a strip: the input
        band and the output buffer span at most ``column_tiles`` tiles, not the whole width. Default: as many as
        keep the float32 output block within 256 MiB (at least one; 16 when the output channels are unknown
        before the first tile). The result does not depend on it.
    border : {"reflect", "zeros"}
        What the network sees beyond the image: its reflection ("reflect"), or zeros before every convolution,
        as its zero padding gives in one pass over the unpadded image ("zeros"; the model's convolutions must
        zero-pad, and the image is extended to a multiple of ``divisor`` by reflection). With ``halo`` at
        least the receptive radius, "zeros" equals one plain forward pass over an image whose sizes are
        multiples of ``divisor``.

    Returns
    -------
    numpy.ndarray or the given ``out``
        ``(C_out, *(spatial * scale))``.

    Raises
    ------
    InputError
        Inconsistent image, model, geometry, device or ``out``.
    """
    ndim, names, tile, halo, divisor = _geometry(model, image, tile, halo, divisor)
    blend = _per_axis("blend", blend, ndim, 0)
    if isinstance(scale, (int, np.integer)):
        scale = (1,) * (ndim - 2) + (scale, scale)
    scale = _per_axis("scale", scale, ndim, 1)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"predict_tiled: batch_size={batch_size!r} must be a positive integer")
    if column_tiles is not None and (not isinstance(column_tiles, int) or column_tiles < 1):
        raise InputError(f"predict_tiled: column_tiles={column_tiles!r} must be a positive integer")
    plans = [
        _plan_axis(names[i], image.shape[1 + i], tile[i], halo[i], blend[i], divisor[i], scale[i]) for i in range(ndim)
    ]
    out_spatial = tuple(p.size * p.scale for p in plans)
    if out is not None:
        shape = tuple(getattr(out, "shape", ()))
        if not hasattr(out, "__setitem__") or len(shape) != ndim + 1 or shape[1:] != out_spatial:
            raise InputError(
                f"predict_tiled: out must be a writable array of shape (C_out, {', '.join(map(str, out_spatial))}), "
                f"got {getattr(out, 'shape', type(out).__name__)}"
            )
        if out_channels is not None and out.shape[0] != out_channels:
            raise InputError(f"predict_tiled: out has {out.shape[0]} channels but out_channels={out_channels}")
        out_channels = out.shape[0]
    dev = resolve_device(device, "predict_tiled")
    zero_border = _border(model, plans, divisor, border, "predict_tiled")

    was_training = model.training
    model.eval().to(dev)
    try:
        with (torch.inference_mode(),
              zero_border.hooked() if zero_border else contextlib.nullcontext(),
              progress_bar("tiles", "bar", "count", "elapsed", "remaining", enabled=progress, transient=False) as bar):
            task = bar.add_task("tiles", total=math.prod(p.count for p in plans))
            advance = functools.partial(bar.advance, task)
            return _run(model, image, plans, dev, amp, batch_size, out, out_channels, advance, column_tiles,
                        zero_border)
    finally:
        model.train(was_training)


def _run(model, image, plans, dev, amp, batch_size, out, out_channels, advance, column_tiles, zero_border):
    """Strip-wise, block-wise tiled inference; see the module docstring for the geometry."""
    ndim = len(plans)
    tiled = [i for i, p in enumerate(plans) if p.count > 1] or [0]
    axis = tiled[0]  # strips along this axis
    col = tiled[1] if len(tiled) > 1 else None  # column blocks along this one
    strip = plans[axis]
    carry = None  # output rows shared with the next strip, full extent: (C_out, blend*scale, ...)
    if col is not None and column_tiles is None:
        column_tiles = _column_tiles(plans, axis, col, out_channels or getattr(model, "out_channels", None))
    blocks = [None] if col is None else [range(j, min(j + column_tiles, plans[col].count))
                                         for j in range(0, plans[col].count, column_tiles)]
    for k in range(strip.count):
        left = None  # output columns shared with the next block of this strip
        for block in blocks:
            # image pixel of the block's first kept pixel per axis, and its kept extent
            first = [k * strip.step if i == axis else block[0] * p.step if i == col else 0 for i, p in enumerate(plans)]
            size = [min(p.size - f, (len(block) if i == col else 1) * p.step + p.blend) if i in (axis, col) else p.size
                    for i, (p, f) in enumerate(zip(plans, first))]
            # input band: the block's windows along axis and col, the whole padded extent along the others
            origin = [f - p.pad for f, p in zip(first, plans)]
            extent = [p.window + (len(block) - 1) * p.step if i == col else p.window if i == axis else p.padded
                      for i, p in enumerate(plans)]
            band = _read(image, [np.arange(o, o + n) for o, n in zip(origin, extent)])
            tiles = list(itertools.product(*([k] if i == axis else block if i == col else range(p.count)
                                             for i, p in enumerate(plans))))
            acc = None
            for start in range(0, len(tiles), batch_size):
                batch = tiles[start : start + batch_size]
                windows = np.stack([band[_window(plans, t, origin)] for t in batch])
                if zero_border:
                    zero_border.place([tuple(p.start(k) for p, k in zip(plans, t)) for t in batch])
                y = _forward(model, windows, dev, amp)
                if acc is None:
                    out_channels = _check_output(y, windows.shape, plans, out_channels)
                    if out is None:
                        out = np.empty((out_channels, *(p.size * p.scale for p in plans)), np.float32)
                    acc = np.zeros((out_channels, *(n * p.scale for n, p in zip(size, plans))), np.float32)
                    if carry is None:
                        carry = np.zeros((out_channels, *(p.blend * p.scale if i == axis else p.size * p.scale
                                                          for i, p in enumerate(plans))), np.float32)
                    # contributions of earlier tiles: the previous strip's (rows), the previous block's (columns)
                    skip = 0 if left is None else left.shape[1 + col]
                    cols = _along(col, slice(skip, None), ndim) if col is not None else (slice(None),) * (ndim + 1)
                    rows = slice(0, strip.blend * strip.scale)
                    dst = list(cols)
                    dst[1 + axis] = rows
                    src = [slice(None)] + [slice(f * p.scale + skip, (f + n) * p.scale) if i == col else slice(None)
                                           for i, (p, f, n) in enumerate(zip(plans, first, size))]
                    acc[tuple(dst)] = carry[tuple(src)]
                    if left is not None:
                        acc[_along(col, slice(0, skip), ndim)] += left
                for t, y_tile in zip(batch, y):
                    _accumulate(acc, y_tile, t, plans, first)
                advance(len(batch))
            # finished: all but the blend rows/columns shared with the next strip/block
            last = {axis: k == strip.count - 1, col: col is None or block[-1] == plans[col].count - 1}
            done = [(n if last.get(i, True) else n - p.blend) * p.scale for i, (p, n) in enumerate(zip(plans, size))]
            finished = (slice(None), *(slice(0, d) for d in done))
            out[(slice(None), *(slice(f * p.scale, f * p.scale + d) for f, p, d in zip(first, plans, done)))] = \
                acc[finished]
            if col is not None and done[col] < acc.shape[1 + col]:
                left = acc[_along(col, slice(done[col], None), ndim)].copy()
            if done[axis] < acc.shape[1 + axis]:
                dst = [slice(None)] + [slice(f * p.scale, f * p.scale + d) if i == col else slice(None)
                                       for i, (p, f, d) in enumerate(zip(plans, first, done))]
                carry[tuple(dst)] = acc[(slice(None), *(slice(d, None) if i == axis else slice(0, d) if i == col
                                                        else slice(None) for i, d in enumerate(done)))]
    return out


BLOCK_BYTES = 256 << 20
"""Default size (bytes) of the float32 output block of one column block of :func:`predict_tiled`."""


def _column_tiles(plans: list[_AxisPlan], axis: int, col: int, out_channels: int | None) -> int:
    """Tiles per column block that keep the float32 output block within :data:`BLOCK_BYTES` (at least one);
    16 when the output channel count is not known yet."""
    if out_channels is None:
        return 16
    rest = 4 * out_channels * math.prod(p.strip if i == axis else p.size * p.scale
                                        for i, p in enumerate(plans) if i != col)  # bytes per output column
    c = plans[col]
    return max(1, (BLOCK_BYTES // rest // c.scale - c.blend) // c.step)


def _window(plans: list[_AxisPlan], tile: tuple[int, ...], origin: list[int]) -> tuple[slice, ...]:
    """Index of tile ``tile``'s network input window in a band whose first pixel is image pixel ``origin``."""
    return (slice(None), *(slice(p.start(k) - o, p.start(k) - o + p.window) for p, k, o in zip(plans, tile, origin)))


def _forward(model: nn.Module, windows: np.ndarray, dev: torch.device, amp: bool) -> np.ndarray:
    x = torch.from_numpy(windows).to(dev)
    # channels-last convolutions are 1.5-3x faster on CPU (oneDNN) and suit tensor cores on CUDA
    x = x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)
    autocast = torch.autocast("cuda", dtype=torch.float16) if amp and dev.type == "cuda" else contextlib.nullcontext()
    with autocast:
        y = model(x)
    if not isinstance(y, torch.Tensor):
        raise InputError(f"predict_tiled: the model returned {type(y).__name__}, not a tensor")
    return y.float().cpu().numpy()


def _check_output(y: np.ndarray, in_shape: tuple[int, ...], plans: list[_AxisPlan], out_channels: int | None) -> int:
    """Check the first network output against the tiling geometry; return its channel count."""
    expected = tuple(p.window * p.scale for p in plans)
    if y.ndim != len(plans) + 2 or y.shape[2:] != expected:
        raise InputError(
            f"predict_tiled: the model maps a {in_shape[2:]} tile to {tuple(y.shape[2:])}, expected {expected} "
            f"for scale={tuple(p.scale for p in plans)}; pass the model's up-scaling as scale="
        )
    if out_channels is not None and y.shape[1] != out_channels:
        raise InputError(f"predict_tiled: the model returns {y.shape[1]} channels but {out_channels} are expected")
    return y.shape[1]


def _accumulate(acc: np.ndarray, y_tile: np.ndarray, tile: tuple[int, ...], plans: list[_AxisPlan],
                first: list[int]) -> None:
    """Add the weighted kept region of one tile's output ``(C_out, *window*scale)`` into the block buffer, whose
    first pixel is image pixel ``first``."""
    src, dst, weight = [slice(None)], [slice(None)], None
    for i, p in enumerate(plans):
        lo, hi = p.kept(tile[i])
        n = (hi - lo) * p.scale
        src.append(slice(p.pad * p.scale, p.pad * p.scale + n))
        start = (lo - first[i]) * p.scale
        dst.append(slice(start, start + n))
        w = p.weights(tile[i]).reshape((-1,) + (1,) * (len(plans) - 1 - i))
        weight = w if weight is None else weight * w
    acc[tuple(dst)] += y_tile[tuple(src)] * weight


# ---------------------------------------------------------------------------------------------------------------
# instance normalisation with statistics of the whole image


class _Recorded(Exception):
    """Raised by the recording normalisation to end a statistics pass early."""


_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def image_norm_statistics(
    model: nn.Module,
    image,
    *,
    tile: IntOrTuple = 512,
    halo: IntOrTuple | None = None,
    divisor: IntOrTuple | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    border: Border = "reflect",
    cache_bytes: int = 1 << 30,
) -> dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance that each instance norm of ``model`` sees over the whole image, tile by tile.

    A whole-image pass normalises every ``nn.InstanceNorm*d`` layer with the statistics of its input over the
    image; tiles normalise with their own, so tiled outputs differ. This computes the whole-image statistics
    with bounded memory: one tiled pass per instance norm, in the order the network runs them, each with the
    norms before it frozen (:func:`frozen_norms`) and stopped at the norm being measured. Tiles count only the
    feature voxels whose first input pixel lies in their kept region (no blend overlap), so every voxel of
    the image counts once; with ``halo >=`` the receptive radius the result equals the statistics of one
    pass over the image (padded as ``border`` says), taken over the image's voxels. An image that fits into one
    window takes one pass.

    A pass repeats all of the previous pass up to the norm it stopped at (same input, same frozen norms), so
    the outputs of the modules with parameters that completed there (the outermost ones: whole blocks, or
    the convolutions of the block that was stopped) are kept per tile and returned instead of recomputed, up
    to ``cache_bytes``; beyond it they are recomputed. The statistics are the same either way (bit-equal on
    deterministic devices); the cache saves most of the network work of the passes after the first. (Modules
    must not modify a kept output in place later in the pass; models with ``inplace=True`` modules get no cache.)

    Parameters are those of :func:`predict_tiled` (sizes in input pixels; use the same ``tile``, ``halo``,
    ``divisor`` and ``border`` there); ``image`` is ``(C, *spatial)``. ``cache_bytes`` bounds the kept module
    outputs (bytes, on ``device``; 0 recomputes every pass in full).

    Returns
    -------
    dict
        ``{norm module: (mean, variance)}``, float32 tensors of shape ``(C,)`` on ``device``; pass to
        :func:`frozen_norms`.
    """
    ndim, names, tile, halo, divisor = _geometry(model, image, tile, halo, divisor)
    plans = [_plan_axis(names[i], image.shape[1 + i], tile[i], halo[i], 0, divisor[i], 1) for i in range(ndim)]
    dev = resolve_device(device, "image_norm_statistics")
    zero_border = _border(model, plans, divisor, border, "image_norm_statistics")
    tiles = list(itertools.product(*(range(p.count) for p in plans)))
    single = len(tiles) == 1  # one window: each norm's statistics are final when it runs, so one pass measures all
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    norms = [m for m in model.modules() if isinstance(m, _INSTANCE_NORMS)]
    replay = _Replay(model, cache_bytes if not single else 0)
    was_training = model.training
    model.eval().to(dev)
    try:
        with torch.inference_mode(), zero_border.hooked() if zero_border else contextlib.nullcontext():
            while len(stats) < len(norms):
                sums: dict = {}

                def record(sums, module, tiles_batch, x):
                    total = sums.setdefault(module, [0, 0.0, 0.0])
                    for t, xt in zip(tiles_batch, x.double()):
                        keep = [slice(-(-p.pad * xt.shape[i + 1] // p.window),
                                      -(-(p.pad + p.kept(t[i])[1] - p.kept(t[i])[0]) * xt.shape[i + 1] // p.window))
                                for i, p in enumerate(plans)]
                        v = xt[(slice(None), *keep)].flatten(1)
                        total[0] += v.shape[1]
                        total[1] = total[1] + v.sum(1)
                        total[2] = total[2] + (v * v).sum(1)
                    if not single:
                        raise _Recorded
                    stats[module] = _mean_variance(*total)
                    return _frozen_norm(module, *stats[module], x)

                for first in range(0, len(tiles), batch_size):
                    batch = tiles[first : first + batch_size]
                    windows = np.stack([_read(image, [np.arange(p.start(k), p.start(k) + p.window)
                                                      for p, k in zip(plans, t)]) for t in batch])
                    if zero_border:
                        zero_border.place([tuple(p.start(k) for p, k in zip(plans, t)) for t in batch])
                    x = torch.from_numpy(windows).to(dev)
                    hooks = {m: functools.partial(record, sums, m, batch) for m in norms if m not in stats}
                    with _patched(_frozen_forwards(stats) | hooks | replay.forwards(first)):
                        try:
                            model(x)
                        except _Recorded:
                            pass
                replay.end_pass()
                if not sums:
                    break  # the remaining norms are never run
                if not single:
                    (module, total), = sums.items()
                    stats[module] = _mean_variance(*total)
    finally:
        model.train(was_training)
    return stats


class _Replay:
    """Keeps, per tile batch, the outputs of the modules with parameters that completed in one statistics pass
    and returns them in the next, which runs the same computation up to the point where the previous one
    stopped (same input, the same norms frozen with the same statistics).

    A module call is identified by the batch, the module and the how-manieth call of that module it is within
    the forward pass (the call order is the same in every pass). Only outermost completed calls are kept (a
    completed block, not its convolutions), and only up to ``budget`` bytes; anything not kept is recomputed.
    Kept outputs must not be changed in place later in the forward pass; a model with ``inplace=True``
    modules (e.g. ``nn.ReLU(inplace=True)``) is therefore recomputed in full.
    """

    def __init__(self, model: nn.Module, budget: int):
        if any(getattr(m, "inplace", False) for m in model.modules()):
            budget = 0
        self.budget = budget
        self.modules = [m for m in model.modules() if m is not model and not isinstance(m, _INSTANCE_NORMS)
                        and next(m.parameters(), None) is not None] if budget > 0 else []
        self.kept: dict[tuple, torch.Tensor] = {}  # outputs of the previous pass
        self.done: dict[tuple, tuple[torch.Tensor, tuple | None]] = {}  # this pass: key -> (output, caller key)

    def forwards(self, batch: int) -> dict:
        """Replacement forwards for the modules, for the forward pass of tile batch ``batch``."""
        calls: dict[nn.Module, int] = {}
        stack: list[tuple] = []

        def forward(module, original, *args, **kwargs):
            calls[module] = n = calls.get(module, -1) + 1
            key, caller = (batch, id(module), n), stack[-1] if stack else None
            if key in self.kept:
                y = self.kept[key]
            else:
                stack.append(key)
                try:
                    y = original(*args, **kwargs)
                finally:
                    stack.pop()
            if isinstance(y, torch.Tensor):
                self.done[key] = (y, caller)
            return y

        return {m: functools.partial(forward, m, functools.partial(type(m).forward, m)) for m in self.modules}

    def end_pass(self) -> None:
        """Keep the outermost completed calls of the pass just run (within the budget) for the next one."""
        self.kept, used = {}, 0
        for key, (y, caller) in self.done.items():
            if caller not in self.done and used + y.nbytes <= self.budget:
                self.kept[key] = y
                used += y.nbytes
        self.done = {}


def _mean_variance(count: int, total: torch.Tensor, squares: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel float32 mean and (biased) variance from a voxel count and float64 sums of values and squares."""
    mean = total / count
    return mean.float(), (squares / count - mean * mean).clamp_min(0).float()


def _frozen_norm(module: nn.InstanceNorm1d | nn.InstanceNorm2d | nn.InstanceNorm3d, mean: torch.Tensor,
                 var: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Instance norm ``module`` applied with the given per-channel mean and variance (float32 out)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x.float() - mean.view(shape)) * torch.rsqrt(var.view(shape) + module.eps)
    if not module.affine:
        return y
    return y * module.get_parameter("weight").view(shape) + module.get_parameter("bias").view(shape)


@contextlib.contextmanager
def _patched(forwards: dict):
    """Replace ``module.forward`` by the given callables within the block."""
    try:
        for module, forward in forwards.items():
            module.forward = forward
        yield
    finally:
        for module in forwards:
            module.__dict__.pop("forward", None)


def _frozen_forwards(stats: dict) -> dict:
    return {m: functools.partial(_frozen_norm, m, *s) for m, s in stats.items()}


def frozen_norms(stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]):
    """Context manager: each instance norm in ``stats`` normalises with its given ``(mean, variance)`` per channel
    (e.g. from :func:`image_norm_statistics`) instead of its input's own, so that its output no longer depends
    on the tile; its affine weights and ``eps`` apply as usual. The modules are restored on exit."""
    return _patched(_frozen_forwards(stats))
