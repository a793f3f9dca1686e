"""The networks as a bioimage.io package runs them: one whole tensor in, the method's prediction out.

widefield3d's predict functions feed a network the image virtually extended by reflection (numpy ``"reflect"``)
on its pooling grid and keep the middle (:mod:`widefield3d.tiling`). A bioimage.io tool instead hands the network
the tensor it has, of any allowed size. Each class here subclasses a network of :mod:`widefield3d.nets`, so its
state dict is the network's own (the package's ``pytorch_state_dict`` weights are ``weights.safetensors``
re-saved), and wraps its ``forward`` with the same geometry as one tile of :func:`widefield3d.tiling.predict_tiled`:

- each spatial axis of ``n`` pixels is extended by reflection to ``[-P, T - P)``, with ``P = ceil(h / d) * d`` and
  ``T = ceil((P + n + h) / d) * d`` (``h`` the context in input pixels, ``d`` the network's divisor);
- the network runs on the extended tensor and the output of ``[0, n)`` (times the output scale) is returned.

So a package's output on a whole image equals widefield3d's prediction to float precision, for any input size.
With no context (``h = 0``, WFCON-Net: ``confocal`` is one plain pass of the generator, zeros beyond the border)
the extension only rounds the size up to the divisor, and the instance norms take their statistics over the
image's voxels only (:class:`MaskedInstanceNorm`), as :func:`widefield3d.tiling.image_norm_statistics` does. The
geometry lives in TorchScript-compatible functions, so :func:`torchscript` builds the same computation around a
traced network: the ``torchscript`` weights run with torch alone, without widefield3d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from widefield3d.errors import InputError
from widefield3d.nets.deepz import DeepZGenerator
from widefield3d.nets.mfpi import MFPIGenerator
from widefield3d.nets.wfcon import WFConGenerator

__all__ = ["DeepZPackaged", "MFPIPackaged", "MaskedInstanceNorm", "WFConPackaged", "torchscript"]


# ---------------------------------------------------------------------------------------------------------------
# geometry (TorchScript-compatible: typed, no closures)


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def reflect_indices(n: int, low: int, total: int, device: torch.device) -> torch.Tensor:
    """Indices ``-low .. total - low - 1`` mapped into ``[0, n)`` by repeated reflection (numpy ``"reflect"``)."""
    index = torch.arange(-low, total - low, device=device)
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = torch.remainder(index, period)
    return torch.where(index < n, index, period - index)


def extend(x: torch.Tensor, context: list[int], divisor: list[int]) -> tuple[torch.Tensor, list[int]]:
    """Reflect-extend the last ``len(context)`` axes of ``x`` as one tile of ``predict_tiled`` does; also return
    the low-side extension ``P`` of each axis (input pixels)."""
    nd = len(context)
    lows: list[int] = []
    for i in range(nd):
        axis = x.dim() - nd + i
        n = x.shape[axis]
        low = _round_up(context[i], divisor[i])
        total = _round_up(low + n + context[i], divisor[i])
        x = x.index_select(axis, reflect_indices(n, low, total, x.device))
        lows.append(low)
    return x, lows


def region_mask(extended: torch.Tensor, lows: list[int], sizes: list[int]) -> torch.Tensor:
    """``(1, 1, *spatial)`` float mask of the extended tensor: 1 on the image's pixels, 0 on the reflected ones."""
    nd = len(lows)
    mask = torch.ones([1, 1] + [1] * nd, dtype=extended.dtype, device=extended.device)
    for i in range(nd):
        total = extended.shape[extended.dim() - nd + i]
        index = torch.arange(total, device=extended.device)
        inside = ((index >= lows[i]) & (index < lows[i] + sizes[i])).to(extended.dtype)
        shape = [1, 1] + [1] * nd
        shape[2 + i] = total
        mask = mask * inside.reshape(shape)
    return mask


def crop(y: torch.Tensor, lows: list[int], sizes: list[int], scale: list[int]) -> torch.Tensor:
    """The image's part of the network's output: ``[P, P + n)`` of each spatial axis, times its output scale."""
    nd = len(lows)
    for i in range(nd):
        axis = y.dim() - nd + i
        y = y.narrow(axis, lows[i] * scale[i], sizes[i] * scale[i])
    return y


def _sizes(x: torch.Tensor, nd: int) -> list[int]:
    return [x.shape[x.dim() - nd + i] for i in range(nd)]


# ---------------------------------------------------------------------------------------------------------------
# masked instance norm (WFCON-Net)


class _Region:
    """Holder of the current region mask, shared by a network's :class:`MaskedInstanceNorm` layers (a plain
    object, not a module, so it adds nothing to the state dict)."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None


class MaskedInstanceNorm(nn.Module):
    """Instance norm with statistics over the voxels marked by a region mask (all voxels without one).

    The mask (``(1, 1, *spatial)`` on the input grid, see :func:`region_mask`) is max-pooled to the features'
    grid: a feature voxel counts if its first input pixel lies in the image, as in
    :func:`widefield3d.tiling.image_norm_statistics`. ``weight`` and ``bias`` are those of ``nn.InstanceNorm*d``
    with ``affine=True`` (same state-dict keys). Variance: the population variance, as the frozen norms use.
    """

    _region: _Region

    def __init__(self, num_features: int, eps: float, region: _Region):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        object.__setattr__(self, "_region", region)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = list(range(2, x.dim()))
        mask = self._region.mask
        if mask is None:
            mask = torch.ones_like(x[:1, :1])
        elif x.dim() == 5:
            mask = F.adaptive_max_pool3d(mask, x.shape[2:])
        else:
            mask = F.adaptive_max_pool2d(mask, x.shape[2:])
        count = mask.sum(dim=dims, keepdim=True)
        mean = (x * mask).sum(dim=dims, keepdim=True) / count
        var = ((x - mean) ** 2 * mask).sum(dim=dims, keepdim=True) / count
        shape = [1, -1] + [1] * len(dims)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)


# ---------------------------------------------------------------------------------------------------------------
# the packaged networks (pytorch_state_dict architectures)


def _per_axis(name: str, value, ndim: int) -> list[int]:
    values = [value] * ndim if isinstance(value, int) else list(value)
    if len(values) != ndim or not all(isinstance(v, int) and v >= 0 for v in values):
        raise InputError(f"{name}={value!r} must be a non-negative integer or {ndim} of them")
    return values


class DeepZPackaged(DeepZGenerator):
    """Deep-Z generator refocusing one image onto fixed planes: ``(B, 1, Y, X) -> (B, 1, Z, Y, X)``.

    Each output plane is the generator applied to the image with a constant DPM of that plane's distance (the
    "constant-DPM" package of docs/bioimageio.md), the planes batched through one pass.

    Parameters
    ----------
    width, conditioning
        As :class:`widefield3d.nets.deepz.DeepZGenerator`.
    z_um : list of float
        Refocus distances ``z_target - z_input`` of the output planes, µm (+ = deeper).
    range_um : float
        The model's trained range; the DPM channel holds ``z / range_um``, as in training.
    context : int
        Reflected context per side, input pixels (widefield3d uses the receptive radius).

    Values: the image normalised as in training (the package's preprocessing), the output on the same scale.
    """

    dpm: torch.Tensor

    def __init__(self, width: float = 1.0, conditioning: str = "input", z_um: list[float] | None = None,
                 range_um: float = 10.0, context: int = 108):
        super().__init__(width=width, conditioning=conditioning)
        if not z_um or not range_um > 0:
            raise InputError(f"DeepZPackaged: needs refocus distances z_um and a positive range_um, got {z_um!r}, "
                             f"{range_um!r}")
        self.context = _per_axis("context", context, 2)
        self.z_um, self.range_um = [float(z) for z in z_um], float(range_um)
        self.register_buffer("dpm", torch.tensor(self.z_um) / self.range_um, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = with_dpm_planes(image, self.dpm)
        sizes = _sizes(x, 2)
        extended, lows = extend(x, self.context, [self.downsampling_factor] * 2)
        return planes_to_stack(crop(self.core(extended, None), lows, sizes, [1, 1]), image.shape[0])

    def core(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The generator on an extended tensor (``mask`` unused; what :func:`torchscript` traces)."""
        return DeepZGenerator.forward(self, x)


def with_dpm_planes(image: torch.Tensor, dpm: torch.Tensor) -> torch.Tensor:
    """``(B, 1, Y, X)`` and ``Z`` DPM values -> ``(B * Z, 2, Y, X)``: the image with each constant DPM channel."""
    b, n = image.shape[0], dpm.shape[0]
    images = image.unsqueeze(1).expand(b, n, 1, image.shape[2], image.shape[3])
    planes = dpm.to(device=image.device, dtype=image.dtype).view(1, n, 1, 1, 1)
    planes = planes.expand(b, n, 1, image.shape[2], image.shape[3])
    return torch.cat([images, planes], dim=2).reshape(b * n, 2, image.shape[2], image.shape[3])


def planes_to_stack(y: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B * Z, 1, Y, X)`` -> ``(B, 1, Z, Y, X)``."""
    return y.reshape(batch, y.shape[0] // batch, y.shape[2], y.shape[3]).unsqueeze(1)


class MFPIPackaged(MFPIGenerator):
    """MFPINet generator returning the focal stack as its own axis: ``(B, C, Y, X) -> (B, C, N, 2Y, 2X)``.

    Parameters
    ----------
    planes, channels, width, global_skip
        As :class:`widefield3d.nets.mfpi.MFPIGenerator`.
    context : int
        Reflected context per side, input pixels (widefield3d uses the receptive radius).

    Values: the network's [-1, 1] scale (the package's pre- and postprocessing map intensities to it and back).
    """

    def __init__(self, planes: int = 11, channels: int = 3, width: float = 1.0, context: int = 146,
                 global_skip: bool = False):
        super().__init__(planes=planes, channels=channels, width=width, global_skip=global_skip)
        self.context = _per_axis("context", context, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = _sizes(x, 2)
        extended, lows = extend(x, self.context, [self.downsampling_factor] * 2)
        y = crop(self.core(extended, None), lows, sizes, [self.scale, self.scale])
        return y.reshape(y.shape[0], self.channels, self.planes, y.shape[2], y.shape[3])

    def core(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The generator on an extended tensor (``mask`` unused; what :func:`torchscript` traces)."""
        return MFPIGenerator.forward(self, x)


class WFConPackaged(WFConGenerator):
    """WFCON-Net generator on ``(B, 1, Z, Y, X)`` stacks, its instance norms restricted to the stack's voxels.

    Parameters
    ----------
    ndim, width_multiplier, depth, pool_z_levels
        As :class:`widefield3d.nets.wfcon.WFConGenerator`; ``ndim=2`` runs the 2D network plane by plane.
    context : (int, int, int)
        Reflected context per side, input pixels along Z, Y, X (widefield3d uses the config's ``halo_zyx``; Z is
        ignored for ``ndim=2``).

    Values: the normalised [0, 1] scale of training (the package's preprocessing normalises the stack).
    """

    def __init__(self, ndim: int = 3, width_multiplier: float = 1.0, depth: int = 4, pool_z_levels: int = 2,
                 context: tuple[int, int, int] | list[int] = (8, 32, 32)):
        super().__init__(ndim=ndim, width_multiplier=width_multiplier, depth=depth, pool_z_levels=pool_z_levels)
        self.context = _per_axis("context", context, 3)[3 - ndim:]
        self.region = _Region()
        for block in self.modules():
            norm = getattr(block, "norm", None)
            if isinstance(norm, (nn.InstanceNorm2d, nn.InstanceNorm3d)):
                block.norm = MaskedInstanceNorm(norm.num_features, norm.eps, self.region)

    def core(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The generator on an extended tensor, norms restricted to ``mask`` (what :func:`torchscript` traces)."""
        self.region.mask = mask
        try:
            return WFConGenerator.forward(self, x)
        finally:
            self.region.mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, nz = x.shape[0], x.shape[1], x.shape[2]
        if self.ndim == 2:  # plane by plane: Z joins the batch
            x = x.transpose(1, 2).reshape(b * nz, c, x.shape[3], x.shape[4])
        sizes = _sizes(x, self.ndim)
        extended, lows = extend(x, self.context, list(self.downsampling_factor))
        y = crop(self.core(extended, region_mask(extended, lows, sizes)), lows, sizes, [1] * self.ndim)
        if self.ndim == 2:
            y = y.reshape(b, nz, y.shape[1], y.shape[2], y.shape[3]).transpose(1, 2)
        return y


# ---------------------------------------------------------------------------------------------------------------
# torchscript


class _Core(nn.Module):
    """The network on an extended tensor and its region mask: the part :func:`torchscript` traces."""

    def __init__(self, packaged: DeepZPackaged | MFPIPackaged | WFConPackaged):
        super().__init__()
        self.packaged = packaged

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.packaged.core(x, mask)


class _Scripted(nn.Module):
    """The geometry of the packaged classes in TorchScript around a traced network (see :func:`torchscript`)."""

    def __init__(self, core, context: list[int], divisor: list[int], scale: list[int], planes: int,
                 fold_z: bool, dpm: torch.Tensor):
        super().__init__()
        self.core = core
        self.context, self.divisor, self.scale = context, divisor, scale
        self.planes, self.fold_z = planes, fold_z
        self.with_dpm = dpm.numel() > 0
        self.dpm: torch.Tensor  # a buffer, moved with the module (for mypy: TorchScript takes no class annotation)
        self.register_buffer("dpm", dpm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, nz = x.shape[0], x.shape[1], x.shape[2]
        if self.with_dpm:  # Deep-Z: one pass per refocus plane, batched
            x = with_dpm_planes(x, self.dpm)
        if self.fold_z:  # a 2D network over a stack: Z joins the batch
            x = x.transpose(1, 2).reshape(b * nz, c, x.shape[3], x.shape[4])
        nd = len(self.context)
        sizes = _sizes(x, nd)
        extended, lows = extend(x, self.context, self.divisor)
        y = crop(self.core(extended, region_mask(extended, lows, sizes)), lows, sizes, self.scale)
        if self.with_dpm:
            y = planes_to_stack(y, b)
        if self.fold_z:
            y = y.reshape(b, nz, y.shape[1], y.shape[2], y.shape[3]).transpose(1, 2)
        if self.planes > 0:  # MFPINet: channel c * N + z -> (channel, z)
            y = y.reshape(y.shape[0], y.shape[1] // self.planes, self.planes, y.shape[2], y.shape[3])
        return y


def torchscript(packaged: nn.Module, example: torch.Tensor):
    """A ``torch.jit.ScriptModule`` computing ``packaged`` (one of the classes above) with torch alone.

    The network is traced on the extended ``example`` (a package input ``(B, C, *spatial)``); the geometry
    around it is scripted, so the module takes inputs of any size.
    """
    packaged = packaged.eval()
    dpm = torch.zeros(0)
    if isinstance(packaged, DeepZPackaged):
        settings = (packaged.context, [packaged.downsampling_factor] * 2, [1, 1], 0, False)
        dpm = packaged.dpm.clone()
        example = with_dpm_planes(example, dpm[:1])
    elif isinstance(packaged, MFPIPackaged):
        settings = (packaged.context, [packaged.downsampling_factor] * 2, [packaged.scale] * 2, packaged.planes,
                    False)
    elif isinstance(packaged, WFConPackaged):
        settings = (packaged.context, list(packaged.downsampling_factor), [1] * packaged.ndim, 0,
                    packaged.ndim == 2)
    else:
        raise InputError(f"torchscript: {type(packaged).__name__} is not a packaged network")
    context, divisor = settings[0], settings[1]
    nd = len(context)
    if settings[4]:
        b, c, nz = example.shape[:3]
        example = example.transpose(1, 2).reshape(b * nz, c, *example.shape[3:])
    extended, lows = extend(example, context, divisor)
    mask = region_mask(extended, lows, _sizes(example, nd))
    with torch.no_grad():
        traced = torch.jit.trace(_Core(packaged), (extended, mask), check_trace=False)
    return torch.jit.script(_Scripted(traced, *settings, dpm))
