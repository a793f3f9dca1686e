"""MFPINet (Ma et al.): one low-resolution 2D image in, all N focal planes at 2x lateral resolution out.

Generator (paper Fig. 1a, equations 1-6), with ``w = width`` (64 in the paper)::

    f1 = P(Conv_w(x))                                 pre-processing, level 0 (input grid)
    f2 = REM(f1), f3 = REM(f2)                        REM = AvgPool2(RB(RB(.)))      levels 1, 2
    f4 = SCL(REM(f3))                                 SCL = Conv_w(Conv_2w(Conv_2w(.)))   level 3
    g  = RDM(RDM(RDM(f4, f3), f2), f1)                RDM(d, s) = RB(RB(CAT(NI(d), s)))
    y  = Tanh(Conv_{C*N}(PS(Conv_4w(g))))             SRR: pixel shuffle x2 (post-sampling)

With ``global_skip`` (not in the paper; a config choice, measured in ``docs/mfpi.md``) the last convolution
predicts a residual on the bicubic up-sampling of the input, copied to every plane, and Tanh becomes a clamp::

    y  = clamp(Bicubic2(x) + Conv_{C*N}(PS(Conv_4w(g))), -1, 1)      the residual convolution starts at zero

(the clamp only in evaluation mode: in training it would stop the gradients of saturated pixels)

so the untrained network is the bicubic baseline (the "global residual" of VDSR/EDSR the paper cites).

``RB`` is a residual block of four 3x3 convolutions (PReLU between them) plus an identity skip (a 1x1
projection where the channel count changes, i.e. in the first block of each RDM after the concatenation);
``P`` is PReLU, ``NI`` nearest-neighbour up-sampling by 2, ``CAT`` channel concatenation. No batch
normalisation. Every convolution is 3x3 except the 1x1 projections.

Output channel ``k = c * N + z`` holds colour channel ``c`` of focal plane ``z``, so ``y.reshape(B, C, N, 2H, 2W)``
is the ``CZYX`` stack.

Discriminator (Fig. 1b, "a simple classification network"): the N focal planes stacked into channels
(``H x W x (N*C)``), 2D convolutions, a sigmoid probability. The paper gives no layer list; we use the
SRGAN discriminator layout (which the paper compares against) without batch normalisation.
"""

from __future__ import annotations

import torch
from torch import nn

from widefield3d.errors import InputError


def _conv(c_in: int, c_out: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)


def _channels(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


class ResidualBlock(nn.Module):
    """Four 3x3 convolutions with PReLU between them, plus an identity (or 1x1-projected) skip."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv(c_in, c_out), nn.PReLU(), _conv(c_out, c_out), nn.PReLU(),
            _conv(c_out, c_out), nn.PReLU(), _conv(c_out, c_out),
        )
        self.skip = nn.Identity() if c_in == c_out else _conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class EncodingModule(nn.Module):
    """REM (eq. 3): two residual blocks, then 2x2 average pooling."""

    def __init__(self, c: int):
        super().__init__()
        self.blocks = nn.Sequential(ResidualBlock(c, c), ResidualBlock(c, c))
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(x))


class DecodingModule(nn.Module):
    """RDM (eq. 5): nearest up-sampling of the deeper features, concatenation with the skip, two residual blocks."""

    def __init__(self, c_deep: int, c_skip: int, c_out: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.blocks = nn.Sequential(ResidualBlock(c_deep + c_skip, c_out), ResidualBlock(c_out, c_out))

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.blocks(torch.cat([self.up(deep), skip], dim=1))


class MFPIGenerator(nn.Module):
    """MFPINet generator: ``(B, C, H, W)`` low-resolution image -> ``(B, C*N, 2H, 2W)`` focal planes in [-1, 1].

    Parameters
    ----------
    planes : int
        Number N of focal planes produced (paper: 11).
    channels : int
        Colour channels C of input and of each output plane (paper: 3, sRGB).
    width : float
        Channel multiplier; 1.0 is the paper's network (64 feature channels, SCL 128-128-64, SRR 256).
    global_skip : bool
        Predict a residual on the bicubic up-sampled input (zero at initialisation) instead of the planes
        themselves through Tanh. False is the paper's network.

    Notes
    -----
    ``H`` and ``W`` must be multiples of :attr:`downsampling_factor` (8). Inputs and outputs are normalised
    intensities in [-1, 1].
    """

    ndim = 2
    scale = 2
    downsampling_factor = 8

    def __init__(self, planes: int = 11, channels: int = 3, width: float = 1.0, global_skip: bool = False):
        super().__init__()
        for name, value in (("planes", planes), ("channels", channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"MFPIGenerator: {name}={value!r} must be a positive integer")
        if not width > 0:
            raise InputError(f"MFPIGenerator: width={width!r} must be positive")
        self.planes, self.channels, self.width = planes, channels, float(width)
        self.global_skip = bool(global_skip)
        self.in_channels = channels
        self.out_channels = channels * planes
        w, w2, w4 = _channels(64, width), _channels(128, width), _channels(256, width)
        self.head = nn.Sequential(_conv(channels, w), nn.PReLU())
        self.encoders = nn.ModuleList(EncodingModule(w) for _ in range(3))
        self.scl = nn.Sequential(_conv(w, w2), nn.PReLU(), _conv(w2, w2), nn.PReLU(), _conv(w2, w), nn.PReLU())
        self.decoders = nn.ModuleList(DecodingModule(w, w, w) for _ in range(3))
        output = _conv(w4 // 4, self.out_channels)
        if self.global_skip:
            for parameter in output.parameters():  # weight and bias
                nn.init.zeros_(parameter)
        self.srr = nn.Sequential(_conv(w, w4), nn.PixelShuffle(2), output,
                                 *(() if self.global_skip else (nn.Tanh(),)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.head(x)]  # f1
        for encoder in self.encoders[:2]:
            features.append(encoder(features[-1]))  # f2, f3
        deep = self.scl(self.encoders[2](features[-1]))  # f4
        for decoder, skip in zip(self.decoders, reversed(features)):
            deep = decoder(deep, skip)
        if not self.global_skip:
            return self.srr(deep)
        up = nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        y = up.repeat_interleave(self.planes, dim=1) + self.srr(deep)
        return y if self.training else y.clamp(-1.0, 1.0)  # a clamp in training would stop gradients

    @property
    def receptive_radius(self) -> int:
        """How far (input pixels) the inputs of an output pixel lie from its source pixel ``q // 2``: 146.

        Counting as for :class:`widefield3d.nets.unet.UNet`: a 3x3 convolution on level ``l`` (``2**l``
        input pixels per feature pixel) adds ``2**l``, average pooling adds nothing beyond the enlarged
        footprint, nearest up-sampling to level ``l`` adds ``2**l``, a concatenation takes the larger reach,
        and the last convolution on the 2x output grid adds one input pixel.
        """
        per_block = 4  # 3x3 convolutions per residual block
        reach = 1  # head
        skips = [reach]
        for level in range(3):
            reach += 2 * per_block * 2**level
            skips.append(reach)
        reach += 3 * 2**3  # SCL on level 3
        for level in (2, 1, 0):
            reach = max(reach + 2**level, skips[level]) + 2 * per_block * 2**level
        return reach + 1 + 1  # SRR: Conv on level 0, then the output convolution after the pixel shuffle


class MFPIDiscriminator(nn.Module):
    """Classifier of whole focal stacks: ``(B, N*C, H, W)`` -> ``(B, 1)`` probability of being real.

    SRGAN layout without batch normalisation: Conv_w + LeakyReLU(0.2); seven 3x3 convolutions alternating
    stride 2 and 1 with ``w, 2w, 2w, 4w, 4w, 8w, 8w`` channels, each + LeakyReLU; global average pooling;
    dense ``16w`` + LeakyReLU; dense 1; sigmoid. ``w = 64 * width``.
    """

    def __init__(self, in_channels: int, width: float = 1.0):
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise InputError(f"MFPIDiscriminator: in_channels={in_channels!r} must be a positive integer")
        w = _channels(64, width)
        layers: list[nn.Module] = [_conv(in_channels, w), nn.LeakyReLU(0.2)]
        c = w
        for i, mult in enumerate((1, 2, 2, 4, 4, 8, 8)):
            layers += [nn.Conv2d(c, w * mult, 3, stride=2 if i % 2 == 0 else 1, padding=1), nn.LeakyReLU(0.2)]
            c = w * mult
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 16 * w), nn.LeakyReLU(0.2), nn.Linear(16 * w, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
