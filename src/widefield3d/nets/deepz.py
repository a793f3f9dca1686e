"""The Deep-Z networks (Wu et al., Nature Methods 2019, Methods and Supplementary Fig. S8).

Generator: a residual U-Net with five levels (four 2x2 max-pools), the paper's channel counts, transposed
convolution up-sampling, concatenated skips and replicate padding; input ``(B, 2, Y, X)`` = image + DPM, output
``(B, 1, Y, X)``. Discriminator: six blocks of two 3x3 convolutions (the second with stride 2) with leaky ReLU
(slope 0.01), global average pooling, two fully connected layers and a sigmoid. A ``width`` multiplier scales
every channel count (1.0 = the paper) so that a CPU can train a smaller variant; the layout stays the same.

``conditioning="film"`` (a CPU-variant choice, not the paper) also gives the DPM to every block: the DPM channel,
average-pooled to the block's scale, drives a per-pixel feature-wise affine modulation ``f * (1 + gamma(d)) +
beta(d)`` (FiLM, Perez et al. 2018, applied per pixel so that surfaces still work), with ``gamma, beta`` from a
small 1x1-convolution network of ``d`` that starts at zero (the network starts as the paper's). In the paper the
network must learn to use a constant input channel through many layers; here depth conditions every scale.

No normalisation layers: the generator has a finite, exactly computable receptive field
(:attr:`DeepZGenerator.receptive_radius`), so tiled inference (:func:`widefield3d.tiling.predict_tiled`) equals
whole-image inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from widefield3d.errors import InputError

#: Down-sampling path (levels 1..5): first and second convolution of each block (paper: k1, k2).
DOWN_CHANNELS = ((25, 48), (72, 96), (144, 192), (288, 384), (576, 768))
#: Up-sampling path (levels 1..4): first and second convolution of each block (paper: k3, k4).
UP_CHANNELS = ((72, 48), (144, 96), (288, 192), (576, 384))
#: Discriminator blocks 1..6: first and second (stride-2) convolution (paper: i1, i2).
DISCRIMINATOR_CHANNELS = ((48, 96), (96, 192), (192, 384), (384, 768), (768, 1536), (1536, 3072))

LEAKY_SLOPE = 0.01


def scaled(channels: int, width: float) -> int:
    """A paper channel count times the width multiplier, at least 1."""
    return max(1, int(round(channels * width)))


def _check_width(name: str, width: float) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
        raise InputError(f"{name}: width={width!r} must be a number in (0, 4]")
    return float(width)


class _ReplicateConv3x3(nn.Conv2d):
    """3x3 convolution (padding 1, no dilation or groups) with replicate padding that, in inference, skips the
    padded copy of the input.

    PyTorch's ``padding_mode="replicate"`` copies the whole input into a padded tensor before an unpadded
    convolution (~13 % of Deep-Z inference on CPU). Without gradients this convolves with zero padding instead (no
    copy), then recomputes from thin replicate-padded strips only the output rows and columns whose window reaches
    the padding: the same result. With gradients enabled (training) it is ``nn.Conv2d``'s own path. Parameters and
    state dict are ``nn.Conv2d``'s.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if torch.is_grad_enabled() or h < 2 or w < 2:
            return super().forward(x)
        sy, sx = self.stride
        out = F.conv2d(x, self.weight, self.bias, self.stride, 1)
        # output row i reads input rows sy*i-1 .. sy*i+1: row 0 reads the top padding, the last row the bottom
        # padding when sy divides h - 1 (always for stride 1, for odd h with stride 2); columns alike
        out[..., :1, :] = self._strip(x[..., :2, :], (1, 1, 1, 0))
        if (h - 1) % sy == 0:
            out[..., -1:, :] = self._strip(x[..., -2:, :], (1, 1, 0, 1))
        out[..., :, :1] = self._strip(x[..., :, :2], (1, 0, 1, 1))
        if (w - 1) % sx == 0:
            out[..., :, -1:] = self._strip(x[..., :, -2:], (0, 1, 1, 1))
        return out

    def _strip(self, x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
        """The exact output of a strip of the input, replicate-padded by ``pad`` (left, right, top, bottom)."""
        return F.conv2d(F.pad(x, pad, mode="replicate"), self.weight, self.bias, self.stride)


def _conv3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with one pixel of replicate padding (the paper's choice for every block)."""
    return _ReplicateConv3x3(c_in, c_out, 3, stride=stride, padding=1, padding_mode="replicate")


PAPER_BIAS_INIT: float = 0.1
"""Initial value of every bias (paper Methods)."""


def _init(module: nn.Module, bias: float = PAPER_BIAS_INIT) -> None:
    """Xavier-initialised weights and constant biases (0.1 in the paper)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.constant_(m.bias, bias)


class _ResidualDown(nn.Module):
    """``x + ReLU(conv2(ReLU(conv1(x))))``; ``x`` is zero-padded along channels to the output's count (Eq. 1)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int):
        super().__init__()
        if c_out < c_in:
            raise InputError(f"residual block: {c_out} output channels < {c_in} input channels")
        self.conv1, self.conv2 = _conv3(c_in, c_mid), _conv3(c_mid, c_out)
        self.extra = c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv2(F.relu(self.conv1(x), inplace=True)))
        if torch.is_grad_enabled():  # autograd needs the ReLU's output unchanged
            return y + F.pad(x, (0, 0, 0, 0, 0, self.extra))
        y[:, : x.shape[1]] += x  # inference: the same sum without a zero-padded copy of x
        return y


class _Up(nn.Module):
    """``ReLU(conv4(ReLU(conv3(CAT(skip, up)))))`` (Eq. 2)."""

    def __init__(self, c_cat: int, c_mid: int, c_out: int):
        super().__init__()
        self.conv3, self.conv4 = _conv3(c_cat, c_mid), _conv3(c_mid, c_out)

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv4(F.relu(self.conv3(torch.cat([skip, up], dim=1)), inplace=True)), inplace=True)


class _DPMModulation(nn.Module):
    """Per-pixel FiLM of ``channels`` features by the DPM: ``f * (1 + gamma(d)) + beta(d)`` (1x1 convolutions;
    the last is zero-initialised so the modulation starts as the identity)."""

    HIDDEN = 16

    def __init__(self, channels: int):
        super().__init__()
        self.hidden = nn.Conv2d(1, self.HIDDEN, 1)
        self.out = nn.Conv2d(self.HIDDEN, 2 * channels, 1)

    def forward(self, features: torch.Tensor, dpm: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.out(F.relu(self.hidden(dpm), inplace=True)).chunk(2, dim=1)
        out = features * (1 + gamma)
        return out.add_(beta)


def _uniform(dpm: torch.Tensor) -> bool:
    """Whether every image of a ``(B, 1, Y, X)`` DPM batch has one value at all its pixels."""
    flat = dpm.flatten(1)
    return bool((flat == flat[:, :1]).all())


class DeepZGenerator(nn.Module):
    """Deep-Z generator: residual U-Net mapping image + DPM to the refocused image.

    Parameters
    ----------
    width : float
        Multiplier of every channel count; 1.0 gives the paper's network (48 ... 768 channels).
    in_channels : int
        2 in Deep-Z (fluorescence image, DPM); kept as a parameter for ablations.
    conditioning : {"input", "film"}
        ``"input"``: the DPM is the last input channel only (the paper); ``"film"``: it also modulates every block
        (see the module docstring; needs ``in_channels >= 2``, the DPM being the last channel).

    Shapes
    ------
    input ``(B, in_channels, Y, X)`` with ``Y, X`` multiples of :attr:`downsampling_factor` (16);
    output ``(B, 1, Y, X)``, float32.
    """

    ndim = 2
    levels = len(DOWN_CHANNELS)

    def __init__(self, width: float = 1.0, in_channels: int = 2, conditioning: str = "input"):
        super().__init__()
        self.width = _check_width("DeepZGenerator", width)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise InputError(f"DeepZGenerator: in_channels={in_channels!r} must be a positive integer")
        if conditioning not in ("input", "film") or (conditioning == "film" and in_channels < 2):
            raise InputError(f"DeepZGenerator: conditioning={conditioning!r} must be 'input' or 'film' (with the DPM "
                             "as the last of at least 2 input channels)")
        self.in_channels, self.conditioning = in_channels, conditioning
        down = [(scaled(a, width), scaled(b, width)) for a, b in DOWN_CHANNELS]
        up = [(scaled(a, width), scaled(b, width)) for a, b in UP_CHANNELS]
        c_prev, blocks = in_channels, []
        for c_mid, c_out in down:
            blocks.append(_ResidualDown(c_prev, c_mid, max(c_out, c_prev)))
            c_prev = max(c_out, c_prev)
        self.down = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2, stride=2)
        skips = [b.conv2.out_channels for b in blocks]
        # transposed convolution from level k+1 to level k keeps the channel count of level k's skip
        self.upconv = nn.ModuleList(
            nn.ConvTranspose2d(skips[k + 1] if k == len(up) - 1 else up[k + 1][1], skips[k], 2, stride=2)
            for k in range(len(up))
        )
        self.up = nn.ModuleList(_Up(2 * skips[k], up[k][0], up[k][1]) for k in range(len(up)))
        self.head = _conv3(up[0][1], 1)
        _init(self)
        if conditioning == "film":  # after _init: the zero start of the modulation must survive
            self.film_down = nn.ModuleList(_DPMModulation(c) for c in skips)
            self.film_up = nn.ModuleList(_DPMModulation(up[k][1]) for k in range(len(up)))
            for m in (*self.film_down, *self.film_up):
                nn.init.zeros_(m.out.weight)
                nn.init.zeros_(m.out.bias)

    @property
    def downsampling_factor(self) -> int:
        """Input sizes must be multiples of this (2**4 = 16 pixels)."""
        return 2 ** (self.levels - 1)

    @property
    def receptive_radius(self) -> int:
        """Upper bound, in input pixels, on how far an output pixel's inputs lie (108 for this layout).

        A 3x3 convolution on level ``l`` (pixel = ``2**l`` input pixels) adds ``2**l``; a 2x2 transposed
        convolution to level ``l`` adds ``2**l``; a concatenation takes the larger reach of its two inputs.
        """
        reach, skips = 0, []
        for level in range(self.levels):
            reach += 2 * 2**level
            skips.append(reach)
        for level in reversed(range(self.levels - 1)):
            reach = max(reach + 2**level, skips[level]) + 2 * 2**level
        return reach + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 2, Y, X)`` (image, DPM / range) to ``(B, 1, Y, X)``."""
        film = self.conditioning == "film"
        dpm = x[:, -1:]  # a view; only used with FiLM
        flat = film and _uniform(dpm)  # one DPM value per image: gamma and beta once per image, not per pixel
        skips, dpms = [], []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else self.pool(x))
            if film:
                dpm = dpm[..., :1, :1] if flat else dpm if level == 0 else F.avg_pool2d(dpm, 2)
                dpms.append(dpm)
                x = self.film_down[level](x, dpm)
            skips.append(x)
        for k in reversed(range(self.levels - 1)):
            x = self.up[k](skips[k], self.upconv[k](x))
            if film:
                x = self.film_up[k](x, dpms[k])
        return self.head(x)


class DeepZDiscriminator(nn.Module):
    """Deep-Z discriminator: six conv blocks, average pooling, FC + leaky ReLU, FC + sigmoid.

    Parameters
    ----------
    width : float
        Multiplier of every channel count and of the hidden FC size; 1.0 = the paper (3072).
    in_channels : int
        Channels of the judged image (1).
    bias_init : float
        Initial value of every bias (paper 0.1). On dim targets (EDF-normalised confocal planes average ~0.04) the
        paper's 0.1 swamps the input in the pooled features and the discriminator does not learn; 0 lets it.
    sigmoid : bool
        End with a sigmoid (the paper). Without it the score is unbounded, the usual least-squares GAN form: a
        sigmoid that saturates gives the generator no gradient (seen in a Deep-Z+ fine-tune, docs/deepz.md).

    Shapes
    ------
    input ``(B, in_channels, Y, X)`` with ``Y, X >= 64`` (six stride-2 convolutions); output ``(B,)`` in (0, 1)
    (any real value without the sigmoid).
    """

    def __init__(self, width: float = 1.0, in_channels: int = 1, bias_init: float = PAPER_BIAS_INIT,
                 sigmoid: bool = True):
        super().__init__()
        width = _check_width("DeepZDiscriminator", width)
        layers, c_prev = [], in_channels
        for c1, c2 in DISCRIMINATOR_CHANNELS:
            c1, c2 = scaled(c1, width), scaled(c2, width)
            layers += [_conv3(c_prev, c1), nn.LeakyReLU(LEAKY_SLOPE),
                       _conv3(c1, c2, stride=2), nn.LeakyReLU(LEAKY_SLOPE)]
            c_prev = c2
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(c_prev, c_prev), nn.LeakyReLU(LEAKY_SLOPE), nn.Linear(c_prev, 1),
            nn.Sigmoid() if sigmoid else nn.Identity()
        )
        _init(self, bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``(B, C, Y, X)`` images: how likely each is a real target (a probability with the sigmoid)."""
        return self.fc(self.features(x).mean(dim=(2, 3))).squeeze(1)
