"""Perceptual feature extractors and the perceptual (feature-space) loss.

WFCON-Net adds ``zeta * L_VGG`` to its generator loss: the distance between ImageNet VGG features of the output
and of the target (Johnson et al. 2016, the paper's ref. 39). ImageNet weights cannot be downloaded at run time,
so the extractor is pluggable:

- :class:`VGG16Features`: VGG-16's convolutional part built in plain torch (no torchvision), loaded from a
  LOCAL weights file: safetensors, or torchvision's ``vgg16-397923af.pth`` loaded with ``weights_only=True``
  (keys ``features.<i>.weight|bias``; docs/wfcon.md shows the conversion). 2D only; gray images are repeated
  to RGB and standardised with the ImageNet mean and std.
- :class:`DiscriminatorFeatures`: feature matching on the intermediate features of the GAN's own discriminator
  (Wang et al., pix2pixHD) -- no download, works in 2D and 3D. The default.

:func:`perceptual_loss` sends 3D volumes through a 2D extractor plane by plane.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from widefield3d.errors import InputError

__all__ = ["VGG16_LAYERS", "DiscriminatorFeatures", "VGG16Features", "load_state_dict_file", "perceptual_loss"]

_VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _vgg16_layer_names() -> dict[str, int]:
    """ReLU layer name (``relu<block>_<conv>``) -> index in torchvision's ``vgg16().features``."""
    names, index, block, conv = {}, 0, 1, 0
    for item in _VGG16_CONFIG:
        if item == "M":
            block, conv, index = block + 1, 0, index + 1
        else:
            conv += 1
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
    return names


VGG16_LAYERS = _vgg16_layer_names()
"""Usable feature layers of VGG-16 and their index in ``features`` (``relu2_2`` -> 8, ``relu5_3`` -> 29)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pth``/``.pt`` state dict read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file becomes one line
        raise InputError(f"{path}: not a readable safetensors or torch state-dict file "
                         f"({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: does not hold a state dict of tensors")
    return state


class VGG16Features(nn.Module):
    """VGG-16 convolutional features up to the deepest of ``layers``; parameters frozen.

    Parameters
    ----------
    layers : sequence of str
        Names from :data:`VGG16_LAYERS` whose outputs are returned (default ``("relu2_2",)``, as Johnson et al.
        for content).

    Input ``(B, 1 or 3, Y, X)`` with intensities on [0, 1]; output: one tensor per layer, in the order given.
    Weights are random until :meth:`load` (or :meth:`from_file`) fills them.
    """

    ndim = 2

    def __init__(self, layers: Sequence[str] = ("relu2_2",)):
        super().__init__()
        unknown = [name for name in layers if name not in VGG16_LAYERS]
        if not layers or unknown:
            raise InputError(f"VGG16Features: unknown layer(s) {unknown or list(layers)}; "
                             f"use {', '.join(VGG16_LAYERS)}")
        self.layers = tuple(layers)
        last = max(VGG16_LAYERS[name] for name in layers)
        modules: list[nn.Module] = []
        c_in = 3
        for item in _VGG16_CONFIG:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(c_in, item, 3, padding=1), nn.ReLU()]
                c_in = item
        self.features = nn.Sequential(*modules[: last + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path, layers: Sequence[str] = ("relu2_2",)) -> VGG16Features:
        """A VGG-16 extractor with weights from a local file (see :meth:`load`)."""
        return cls(layers).load(path)

    def load(self, path: str | Path) -> VGG16Features:
        """Fill the weights from ``path`` (safetensors or torchvision ``.pth``); keys ``features.<i>.weight|bias``.

        Keys beyond the layers in use (deeper convolutions, the classifier) are ignored; a missing or
        mis-shaped key raises :class:`~widefield3d.errors.InputError`.
        """
        state = load_state_dict_file(path)
        own = self.state_dict()
        wanted = [k for k in own if k.startswith("features.")]
        missing = [k for k in wanted if k not in state]
        if missing:
            raise InputError(f"{path}: not VGG-16 weights (missing {missing[0]!r}, {len(missing)} keys in all)")
        for key in wanted:
            if tuple(state[key].shape) != tuple(own[key].shape):
                raise InputError(f"{path}: {key} has shape {tuple(state[key].shape)}, "
                                 f"VGG-16 needs {tuple(own[key].shape)}")
        self.load_state_dict({**own, **{k: state[k].float() for k in wanted}})
        return self

    def train(self, mode: bool = True) -> VGG16Features:
        return super().train(False)  # frozen feature extractor: always in eval mode

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise InputError(f"VGG16Features: expected (B, 1 or 3, Y, X), got {tuple(x.shape)}")
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        wanted = {VGG16_LAYERS[name]: name for name in self.layers}
        out = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return [out[name] for name in self.layers]


class DiscriminatorFeatures(nn.Module):
    """Feature matching: the intermediate block outputs of a discriminator with a ``features(x)`` method.

    The discriminator is held by reference (it is trained by the GAN loop, not here) and is not registered as a
    sub-module, so it is saved and optimised once, with the GAN. ``blocks`` selects which block outputs are used
    (default: all).
    """

    def __init__(self, discriminator: nn.Module, blocks: Sequence[int] | None = None):
        super().__init__()
        if not hasattr(discriminator, "features"):
            raise InputError("DiscriminatorFeatures: the discriminator has no features(x) method")
        self.__dict__["discriminator"] = discriminator  # not a sub-module on purpose
        self.ndim = getattr(discriminator, "ndim", None)
        self.blocks = None if blocks is None else tuple(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.discriminator.features(x)
        return feats if self.blocks is None else [feats[i] for i in self.blocks]


def _as_planes(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, Z, Y, X) -> (B * Z, C, Y, X)``."""
    b, c, z, y, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * z, c, y, w)


def perceptual_loss(extractor: nn.Module, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the extractor's layers of the mean squared feature difference (Johnson et al. content loss).

    ``fake`` and ``target`` are ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``; volumes go plane by plane through an
    extractor whose ``ndim`` is 2. Target features carry no gradient. Float32 scalar.
    """
    if fake.shape != target.shape:
        raise InputError(f"perceptual_loss: shapes differ, {tuple(fake.shape)} vs {tuple(target.shape)}")
    if fake.ndim == 5 and getattr(extractor, "ndim", None) == 2:
        fake, target = _as_planes(fake), _as_planes(target)
    with torch.no_grad():
        target_feats = extractor(target)
    fake_feats = extractor(fake)
    terms = [torch.mean((f.float() - t.float()) ** 2) for f, t in zip(fake_feats, target_feats)]
    return torch.stack(terms).mean()
