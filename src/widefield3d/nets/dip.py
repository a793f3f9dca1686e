"""The Deep Image Prior network for volumes: a 3D U-Net with concatenated skips and a sigmoid output.

Azevedo et al. (2024) use a 3D U-Net (their supplement) that maps a fixed random volume to a transmittance
volume. A bright-field focal stack has few layers (11 in the paper) and many pixels, so this network down-samples
laterally only (2 x 2 max-pool per level, 3 x 3 x 3 convolutions throughout); inputs of any lateral size are padded
(edge replication) to a multiple of ``2 ** (levels - 1)`` and the output is cropped back. Every convolution is
followed by batch normalisation and a LeakyReLU (the units of Ulyanov et al.'s skip network); without normalisation
the L1 fit drove the sigmoid into saturation at 1.0 (zero gradient) in our runs. The output bias starts at
``logit(0.85)``, the middle of the transmittance range [0.7, 1] of the paper's volumes.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class DipNetConfig(BaseModel):
    """Size of the DIP U-Net.

    Attributes
    ----------
    in_channels : int
        Channels of the fixed random input volume.
    channels : tuple of int
        Feature channels per level, finest first; each further level halves Y and X.
    negative_slope : float
        Slope of the LeakyReLU activations.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_channels: int = Field(1, ge=1)
    channels: tuple[int, ...] = Field((8, 16, 32, 64), min_length=1)
    negative_slope: float = Field(0.2, ge=0.0, lt=1.0)


class _DepthLastConv3d(nn.Conv3d):
    """A 3 x 3 x 3 convolution with ``(out, in, kz, ky, kx)`` weights applied to ``(B, C, Y, X, Z)`` input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv3d(x, self.weight.permute(0, 1, 3, 4, 2), self.bias, padding=self.padding)


def _conv(c_in: int, c_out: int, slope: float) -> list[nn.Module]:
    """3 x 3 x 3 convolution, batch normalisation, LeakyReLU (the unit of Ulyanov's skip network)."""
    return [_DepthLastConv3d(c_in, c_out, 3, padding=1), nn.BatchNorm3d(c_out), nn.LeakyReLU(slope, inplace=True)]


def _block(c_in: int, c_out: int, slope: float) -> nn.Sequential:
    return nn.Sequential(*_conv(c_in, c_out, slope), *_conv(c_out, c_out, slope))


class DipUNet(nn.Module):
    """``(B, in_channels, Z, Y, X)`` -> transmittance ``(B, 1, Z, Y, X)`` in (0, 1)."""

    def __init__(self, config: DipNetConfig | None = None):
        super().__init__()
        self.config = config = config or DipNetConfig()
        ch, slope = config.channels, config.negative_slope
        self.down = nn.ModuleList(_block(config.in_channels if i == 0 else ch[i - 1], ch[i], slope)
                                  for i in range(len(ch)))
        self.pool = nn.MaxPool3d((2, 2, 1))  # Y and X of the depth-last layout
        self.up = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=(2, 2, 1), mode="nearest"),
                                              *_conv(ch[i + 1], ch[i], slope))
                                for i in range(len(ch) - 1))
        self.merge = nn.ModuleList(_block(2 * ch[i], ch[i], slope) for i in range(len(ch) - 1))
        self.head = nn.Conv3d(ch[0], 1, 1)
        nn.init.constant_(self.head.bias, math.log(0.85 / 0.15))  # output starts mid-range of [0.7, 1]

    @property
    def lateral_multiple(self) -> int:
        return 2 ** (len(self.config.channels) - 1)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the sigmoid; ``logsigmoid(logits)`` is the log-transmittance without rounding to 0."""
        h, w = x.shape[-2:]
        m = self.lateral_multiple
        pad_y, pad_x = -h % m, -w % m
        x = x.permute(0, 1, 3, 4, 2)  # (B, C, Y, X, Z)
        if pad_y or pad_x:
            x = nn.functional.pad(x, (0, 0, 0, pad_x, 0, pad_y), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(len(self.merge))):
            x = self.merge[i](torch.cat([self.up[i](x), skips.pop()], dim=1))
        return self.head(x).permute(0, 1, 4, 2, 3)[..., :h, :w]
