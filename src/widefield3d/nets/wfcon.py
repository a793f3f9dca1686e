"""WFCON-Net (Optica 2021): a 3D U-Net generator with residual, instance-normalised blocks, and its discriminator.

Generator (paper Fig. 2b and Methods): an input block, then an encoder of four down-sampling blocks
(max-pooling, two 3-wide convolutions, instance normalisation, ReLU), and a symmetric decoder in which each
max-pooling is replaced by nearest-neighbour up-sampling followed by a stride-1 convolution; the decoder
concatenates the encoder features of the same level (U-Net skips). Every convolution block carries a residual
mapping ``y = P(x) + ReLU(IN(conv2(ReLU(conv1(x)))))``, with ``P`` the identity, or a 1-wide convolution
where the channel count changes. The paper lists one instance normalisation and two ReLUs per block but not
their order; it is placed after the second convolution (choice, see docs/wfcon.md). A 1-wide convolution
maps the first level's features to the output. ``ndim=2`` gives the paper's "2D WFCON-Net": the same design
with 2D convolutions, applied plane by plane.

Pooling is anisotropic in 3D: the paper's 12-plane training crops cannot be halved four times, and its
voxels are 0.5 µm deep but 0.108 µm wide, so Z is pooled only at the first ``pool_z_levels`` (default 2)
levels; the input's sizes must be multiples of :attr:`WFConGenerator.downsampling_factor` (4, 16, 16).

Instance normalisation makes every output voxel depend on statistics of the whole input, so tiles normalised
by their own statistics differ from one whole-volume pass; inference therefore freezes the norms to the whole
volume's statistics (:func:`widefield3d.tiling.image_norm_statistics`, :func:`widefield3d.tiling.frozen_norms`)
and hides the tiles' context beyond the volume from the convolutions (``border="zeros"``).
:attr:`WFConGenerator.receptive_radius` gives the convolutional reach, the halo that makes tiles exact.

Discriminator: "the 3D version of that in Deep-Z+" (Deep-Z Methods): six blocks
``z -> LReLU(conv_2(LReLU(conv_1(z))))`` with 3-wide kernels, replicate padding, leaky-ReLU slope 0.01, the
second convolution of stride 2; channels 48..1536 / 96..3072 (times ``width_multiplier``); global average
pooling; a fully connected layer of the same width with leaky ReLU and a final one to a sigmoid score.
Xavier-initialised weights, biases 0.1. :meth:`WFConDiscriminator.features` exposes the block outputs for
feature-matching perceptual losses (:mod:`widefield3d.nets.features`).
"""

from __future__ import annotations

import torch
from torch import nn

from widefield3d.errors import InputError

__all__ = ["ResidualBlock", "WFConDiscriminator", "WFConGenerator"]

GENERATOR_BASE_WIDTH = 32
"""Channels of the generator's first level at ``width_multiplier=1`` (paper silent; 3D U-Net of Çiçek et al.)."""
DISCRIMINATOR_CHANNELS = ((48, 96), (96, 192), (192, 384), (384, 768), (768, 1536), (1536, 3072))
"""Deep-Z discriminator channels (first, second convolution) of its six blocks at ``width_multiplier=1``."""


def _conv(ndim: int, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding_mode: str = "zeros") -> nn.Module:
    conv = nn.Conv2d if ndim == 2 else nn.Conv3d
    return conv(c_in, c_out, kernel, stride=stride, padding=kernel // 2, padding_mode=padding_mode)


def _check_ndim(name: str, ndim) -> None:
    if ndim not in (2, 3):
        raise InputError(f"{name}: ndim={ndim!r} must be 2 or 3")


def _scaled(channels: int, multiplier: float) -> int:
    return max(1, int(round(channels * multiplier)))


class ResidualBlock(nn.Module):
    """``y = P(x) + ReLU(IN(conv2(ReLU(conv1(x)))))``: two 3-wide convolutions with one instance norm.

    ``P`` is the identity when ``c_in == c_out``, else a 1-wide convolution. Spatial shape unchanged.
    """

    def __init__(self, ndim: int, c_in: int, c_out: int):
        super().__init__()
        norm = nn.InstanceNorm2d if ndim == 2 else nn.InstanceNorm3d
        self.conv1 = _conv(ndim, c_in, c_out)
        self.conv2 = _conv(ndim, c_out, c_out)
        self.norm = norm(c_out, affine=True)
        self.relu = nn.ReLU()
        self.skip = nn.Identity() if c_in == c_out else _conv(ndim, c_in, c_out, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.relu(self.norm(self.conv2(self.relu(self.conv1(x)))))


class WFConGenerator(nn.Module):
    """WFCON-Net generator (see the module docstring).

    Parameters
    ----------
    ndim : {2, 3}
        3: ``(B, C, Z, Y, X)`` volumes (the paper's network); 2: ``(B, C, Y, X)`` planes (its 2D version).
    in_channels, out_channels : int
        Channels of the input (wide-field) and output (confocal-like) images.
    width_multiplier : float
        Scales every channel count; level ``l`` has ``round(32 * width_multiplier) * 2**l`` channels.
    depth : int
        Number of down-sampling blocks (paper: 4).
    pool_z_levels : int
        3D only: how many of the first down-sampling blocks also pool Z (the others pool Y and X only).

    Shapes
    ------
    input ``(B, in_channels, *S)`` with ``S`` a multiple of :attr:`downsampling_factor`; output
    ``(B, out_channels, *S)``, float32, unbounded (trained towards [0, 1]).
    """

    def __init__(self, ndim: int = 3, in_channels: int = 1, out_channels: int = 1, width_multiplier: float = 1.0,
                 depth: int = 4, pool_z_levels: int = 2):
        super().__init__()
        _check_ndim("WFConGenerator", ndim)
        if not (isinstance(depth, int) and depth >= 1):
            raise InputError(f"WFConGenerator: depth={depth!r} must be a positive integer")
        if not (isinstance(pool_z_levels, int) and 0 <= pool_z_levels <= depth):
            raise InputError(f"WFConGenerator: pool_z_levels={pool_z_levels!r} must be an integer in [0, {depth}]")
        if not width_multiplier > 0:
            raise InputError(f"WFConGenerator: width_multiplier={width_multiplier!r} must be positive")
        self.ndim, self.in_channels, self.out_channels, self.depth = ndim, in_channels, out_channels, depth
        self.pool_z_levels = pool_z_levels if ndim == 3 else 0
        base = _scaled(GENERATOR_BASE_WIDTH, width_multiplier)
        ch = [base * 2**level for level in range(depth + 1)]
        pool = nn.MaxPool2d if ndim == 2 else nn.MaxPool3d
        self.factors = [self._factor(level) for level in range(depth)]  # pooling of block level -> level + 1
        self.inc = ResidualBlock(ndim, in_channels, ch[0])
        self.pools = nn.ModuleList(pool(f) for f in self.factors)
        self.down = nn.ModuleList(ResidualBlock(ndim, ch[level], ch[level + 1]) for level in range(depth))
        self.upsamples = nn.ModuleList(nn.Upsample(scale_factor=f, mode="nearest") for f in self.factors)
        self.up_convs = nn.ModuleList(_conv(ndim, ch[level + 1], ch[level]) for level in range(depth))
        self.up = nn.ModuleList(ResidualBlock(ndim, 2 * ch[level], ch[level]) for level in range(depth))
        self.head = _conv(ndim, ch[0], out_channels, kernel=1)

    def _factor(self, level: int) -> tuple[int, ...]:
        lateral = (2, 2)
        return lateral if self.ndim == 2 else (2 if level < self.pool_z_levels else 1, *lateral)

    def _scales(self) -> list[tuple[int, ...]]:
        """Input pixels per feature pixel on each level, per spatial axis."""
        scales = [(1,) * self.ndim]
        for f in self.factors:
            scales.append(tuple(s * k for s, k in zip(scales[-1], f)))
        return scales

    @property
    def downsampling_factor(self) -> tuple[int, ...]:
        """Input sizes must be multiples of these, per spatial axis (3D: (Z, Y, X) = (4, 16, 16) by default)."""
        return self._scales()[-1]

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        """Convolutional reach, in input pixels per spatial axis, of an output pixel (instance norm aside).

        Counted as in :attr:`widefield3d.nets.unet.UNet.receptive_radius`: a 3-wide convolution on a level of
        scale ``s`` adds ``s``; pooling adds nothing beyond the enlarged footprint; nearest up-sampling from
        scale ``s'`` to ``s`` adds ``s' - s``; a skip concatenation takes the larger reach.
        """
        scales = self._scales()
        radius = []
        for axis in range(self.ndim):
            s = [sc[axis] for sc in scales]
            reach = 2 * s[0]
            skips = [reach]
            for level in range(1, self.depth + 1):
                reach += 2 * s[level]
                skips.append(reach)
            for level in reversed(range(self.depth)):
                reach = reach + (s[level + 1] - s[level]) + s[level]
                reach = max(reach, skips[level]) + 2 * s[level]
            radius.append(reach)
        return tuple(radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *S) -> (B, out_channels, *S)``; ``S`` a multiple of :attr:`downsampling_factor`."""
        if x.ndim != self.ndim + 2:
            raise InputError(f"WFConGenerator: expected a {self.ndim + 2}-D batch, got shape {tuple(x.shape)}")
        bad = [n for n, d in zip(x.shape[2:], self.downsampling_factor) if n % d]
        if bad:
            raise InputError(f"WFConGenerator: spatial shape {tuple(x.shape[2:])} is not a multiple of "
                             f"{self.downsampling_factor}")
        x = self.inc(x)
        skips = [x]
        for pool, block in zip(self.pools, self.down):
            x = block(pool(x))
            skips.append(x)
        skips.pop()
        for level in reversed(range(self.depth)):
            x = self.up_convs[level](self.upsamples[level](x))
            x = self.up[level](torch.cat([x, skips[level]], dim=1))
        return self.head(x)


class WFConDiscriminator(nn.Module):
    """Deep-Z(+) discriminator in 2D or 3D, returning a probability per sample (see the module docstring).

    Parameters
    ----------
    ndim : {2, 3}
    in_channels : int
    width_multiplier : float
        Scales every channel count (1: Deep-Z's 48 ... 3072).

    Shapes
    ------
    input ``(B, in_channels, *S)`` of any spatial size; output ``(B, 1)`` in (0, 1).
    """

    def __init__(self, ndim: int = 3, in_channels: int = 1, width_multiplier: float = 1.0):
        super().__init__()
        _check_ndim("WFConDiscriminator", ndim)
        if not width_multiplier > 0:
            raise InputError(f"WFConDiscriminator: width_multiplier={width_multiplier!r} must be positive")
        self.ndim = ndim
        blocks = []
        c_prev = in_channels
        for c1, c2 in DISCRIMINATOR_CHANNELS:
            c1, c2 = _scaled(c1, width_multiplier), _scaled(c2, width_multiplier)
            blocks.append(nn.Sequential(
                _conv(ndim, c_prev, c1, padding_mode="replicate"), nn.LeakyReLU(0.01),
                _conv(ndim, c1, c2, stride=2, padding_mode="replicate"), nn.LeakyReLU(0.01),
            ))
            c_prev = c2
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Sequential(nn.Linear(c_prev, c_prev), nn.LeakyReLU(0.01), nn.Linear(c_prev, 1), nn.Sigmoid())
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the six convolution blocks (coarser and wider at each block)."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)[-1]
        return self.fc(z.mean(dim=tuple(range(2, z.ndim))))
