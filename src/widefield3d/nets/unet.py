"""A plain, generic 2D/3D U-Net: the baseline generator and the reference network of the tiling engine.

Conv-ReLU blocks, max-pool down, transposed-convolution up, concatenated skips, and an optional
pixel-shuffle head that up-samples the output for super-resolution. No normalisation layers, so the
network is shift-equivariant (for shifts by multiples of ``downsampling_factor``) and has a finite,
exactly computable receptive field (:attr:`UNet.receptive_radius`), which is what makes tiled
inference (:func:`widefield3d.tiling.predict_tiled`) equal to whole-image inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from widefield3d.errors import InputError


def _conv(ndim: int, c_in: int, c_out: int, kernel: int) -> nn.Module:
    conv = nn.Conv2d if ndim == 2 else nn.Conv3d
    return conv(c_in, c_out, kernel_size=kernel, padding=kernel // 2)


def _block(ndim: int, c_in: int, c_out: int) -> nn.Sequential:
    """Two 3-wide convolutions, each followed by ReLU; spatial shape unchanged."""
    return nn.Sequential(
        _conv(ndim, c_in, c_out, 3), nn.ReLU(inplace=True), _conv(ndim, c_out, c_out, 3), nn.ReLU(inplace=True)
    )


def _conv_reach(module: nn.Module) -> int:
    """Sum over the (odd, 'same'-padded) convolutions in ``module`` of their half-width, in pixels of their grid."""
    return sum(
        max(m.kernel_size) // 2 for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))
    )


class PixelShuffle(nn.Module):
    """N-D pixel shuffle with per-axis factors: ``(B, C * prod(f), *S) -> (B, C, *(S * f))``.

    For 2D with equal factors the channel order equals :class:`torch.nn.PixelShuffle`.
    """

    def __init__(self, factors: Sequence[int]):
        super().__init__()
        self.factors = tuple(int(f) for f in factors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.factors)
        b, c, *spatial = x.shape
        c_out = c // math.prod(self.factors)
        x = x.reshape(b, c_out, *self.factors, *spatial)
        # (B, C, f1..fn, S1..Sn) -> (B, C, S1, f1, ..., Sn, fn)
        order = [0, 1] + [i for k in range(n) for i in (2 + n + k, 2 + k)]
        x = x.permute(*order)
        return x.reshape(b, c_out, *(s * f for s, f in zip(spatial, self.factors)))


class UNet(nn.Module):
    """Generic U-Net for 2D or 3D images.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output.
    ndim : {2, 3}
        Spatial dimensionality: 2 for ``(B, C, Y, X)``, 3 for ``(B, C, Z, Y, X)``.
    depth : int
        Number of 2x max-pool down-sampling steps (>= 1); the input's spatial sizes must be multiples
        of ``2**depth`` (:attr:`downsampling_factor`).
    width : int
        Channels of the first level; level ``l`` has ``width * 2**l`` channels.
    upscale : int or sequence of int
        Output up-sampling factor, realised by a 3-wide convolution and a pixel shuffle. An int
        scales the lateral axes (Y, X) only, Z is unchanged in 3D; a sequence gives one factor per
        spatial axis. 1 (default) means no up-sampling head (a 1-wide output convolution).

    Shapes
    ------
    input ``(B, in_channels, *S)`` with every ``S_i % 2**depth == 0``;
    output ``(B, out_channels, *(S_i * upscale_i))``, float32.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ndim: int = 2,
        depth: int = 3,
        width: int = 16,
        upscale: int | Sequence[int] = 1,
    ):
        super().__init__()
        if ndim not in (2, 3):
            raise InputError(f"UNet: ndim={ndim!r} must be 2 or 3")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("depth", depth),
                            ("width", width)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"UNet: {name}={value!r} must be a positive integer")
        if isinstance(upscale, int):
            factors = (1,) * (ndim - 2) + (upscale, upscale)
        else:
            factors = tuple(upscale)
        if len(factors) != ndim or not all(isinstance(f, int) and f >= 1 for f in factors):
            raise InputError(f"UNet: upscale={upscale!r} must be a positive int or {ndim} positive ints")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.ndim = ndim
        self.depth = depth
        self.upscale = factors

        channels = [width * 2**level for level in range(depth + 1)]
        pool = nn.MaxPool2d if ndim == 2 else nn.MaxPool3d
        up = nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d
        self.down = nn.ModuleList(
            _block(ndim, in_channels if level == 0 else channels[level - 1], channels[level]) for level in range(depth)
        )
        self.pool = pool(2)
        self.bottom = _block(ndim, channels[depth - 1], channels[depth])
        self.up = nn.ModuleList(up(channels[level + 1], channels[level], 2, stride=2) for level in range(depth))
        self.merge = nn.ModuleList(_block(ndim, 2 * channels[level], channels[level]) for level in range(depth))
        if factors == (1,) * ndim:
            self.head = _conv(ndim, channels[0], out_channels, 1)
        else:
            self.head = nn.Sequential(
                _conv(ndim, channels[0], out_channels * math.prod(factors), 3), PixelShuffle(factors)
            )

    @property
    def downsampling_factor(self) -> int:
        """Input sizes must be multiples of this (``2**depth``), in pixels along every spatial axis."""
        return 2**self.depth

    @property
    def receptive_radius(self) -> int:
        """Upper bound, in input pixels, of how far from an output pixel's source pixel its inputs lie.

        Output pixel ``q`` (source input pixel ``q // upscale``) depends only on input pixels within
        this distance of it along each axis. Computed from the layers: a feature pixel on level ``l``
        stands for a ``2**l`` wide footprint of input pixels; a 'same' convolution of half-width ``k``
        on that level adds ``k * 2**l``, a 2x max-pool adds nothing beyond the enlarged footprint, and
        a stride-2 transposed convolution to level ``l`` adds ``2**l`` (a fine pixel sees the whole
        coarse footprint); a skip concatenation takes the larger of the two reaches.
        """
        reach = 0
        skips = []
        for level, block in enumerate(self.down):
            reach += _conv_reach(block) * 2**level
            skips.append(reach)
        reach += _conv_reach(self.bottom) * 2**self.depth
        for level in reversed(range(self.depth)):
            reach = max(reach + 2**level, skips[level]) + _conv_reach(self.merge[level]) * 2**level
        return reach + _conv_reach(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *S)`` to ``(B, out_channels, *(S * upscale))``; see the class docstring."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for level in reversed(range(self.depth)):
            x = self.merge[level](torch.cat([self.up[level](x), skips[level]], dim=1))
        return self.head(x)
