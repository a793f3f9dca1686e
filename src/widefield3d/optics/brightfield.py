"""Yamaguchi's bright-field ray model: a focal stack from a volume of voxel transmittances.

The sample is a grid of ``L`` layers (``z_res_um`` apart) of ``H x W`` voxels (``xy_res_um`` wide), each with a
transmittance ``alpha`` in [0, 1]. For focus on layer ``s``, the pixel ``(y, x)`` collects ``N_r`` rays that all pass
through its focal point (the centre of voxel ``(s, y, x)``) and fill the objective's cone; ray ``j`` keeps the fraction
``prod_i alpha_i ** d_ji`` of its light, where ``d_ji`` is its length inside voxel ``i``, and the pixel is the mean over
rays (Azevedo et al. 2024, eq. 1-2, after Yamaguchi et al. 2020):

    I(s, y, x) = (1 / N_r) * sum_j exp( sum_i d_ji * log(alpha_i) )

Choices where the papers are silent (see docs/volume.md):

- Rays sample the pupil on a square ``n x n`` grid over ``[-1, 1]^2`` (points inside the unit disc kept, equal weight).
  A pupil point ``(p, q)`` is a ray of direction sine ``NA * (p, q)`` in a medium of index 1 (an aplanatic pupil), so
  its slopes are ``tan = NA * (p, q) / sqrt(1 - NA^2 (p^2 + q^2))``; the rim ray has
  ``tan(theta_max) = NA / sqrt(1 - NA^2)``.
- ``d_ji`` is measured in units of the layer spacing: a ray along the optical axis is attenuated by exactly ``alpha``
  per voxel, an oblique one by ``alpha ** (1 / cos(theta))``.
- Space outside the volume (laterally, and above/below it) is fully transparent.

The lengths are exact (voxel traversal: the ray is cut at every layer, row and column boundary). Because every pixel's
rays are the same up to an integer shift, the model is ``N_r`` sparse 3D kernels; :class:`BrightfieldRenderer` computes
it as, per ray, a sum of shifted log-transmittance layers followed by ``exp``, and its backward pass is the adjoint of
the same shifts (recomputed, so memory stays at one ray's layers). Two engines do this: on CPU the compiled row kernels
of :mod:`widefield3d.optics.ray_kernels` (numba; every ray's sum stays in cache), on CUDA (or on request) whole-layer
shifted additions in torch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from widefield3d.errors import InputError

RayModel = Literal["exact", "paper"]
"""``"exact"``: aplanatic pupil grid with its rim, lengths in layer spacings (our reference). ``"paper"``: the authors'
ray set (cell-centred grid, uniform in slope), lengths in µm (see :func:`pupil_slopes`, docs/volume.md)."""


def pupil_slopes(na: float = 0.75, aperture_samples: int = 25, model: RayModel = "exact") -> np.ndarray:
    """Ray slopes ``(tan_y, tan_x)`` of the pupil samples, shape ``(N_r, 2)`` (dimensionless, µm per µm of depth).

    ``"exact"``: ``aperture_samples`` points per side of a square grid over ``[-1, 1]^2`` (rim included); those inside
    the unit disc are direction sines ``NA (p, q)`` (aplanatic pupil, medium index 1). ``"paper"`` (the authors'
    code): the cell centres ``(i + 1/2) / n * 2 - 1`` of an ``n x n`` grid, kept inside the unit disc, are slopes
    ``tan(theta_max) (p, q)`` with ``tan(theta_max) = NA / sqrt(1 - NA^2)`` (uniform on a plane across the cone).
    """
    na = _check_na(na)
    n = _check_samples(aperture_samples)
    ray_model = _check_model(model)
    if ray_model == "paper":
        grid = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    else:
        grid = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    q, p = np.meshgrid(grid, grid, indexing="ij")
    inside = q**2 + p**2 <= 1.0 + 1e-12
    pupil = np.stack([q[inside], p[inside]], axis=1)
    if ray_model == "paper":
        return pupil * (na / np.sqrt(1.0 - na**2))
    sines = na * pupil
    return sines / np.sqrt(1.0 - np.sum(sines**2, axis=1, keepdims=True))


@dataclass(frozen=True)
class RayTaps:
    """Exact path lengths of every pupil ray through a focal point, relative to it.

    Tap ``m`` says: ray ``ray[m]`` runs ``length[m]`` (in layer spacings) through the voxel ``delta[m]`` layers below
    and ``(dy[m], dx[m])`` pixels beside the focal voxel. Layers ``delta`` cover ``-(L-1) .. L-1`` so that a focus on
    any layer of an ``L``-layer volume finds all its taps.
    """

    slopes: np.ndarray  # (N_r, 2) tan_y, tan_x
    ray: np.ndarray
    delta: np.ndarray
    dy: np.ndarray
    dx: np.ndarray
    length: np.ndarray

    @property
    def n_rays(self) -> int:
        return len(self.slopes)


def _traverse(tan_y: float, tan_x: float, n_layers: int, dz: float,
              dxy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut the ray through the origin (the focal point, centre of voxel (0, 0, 0)) at every voxel boundary.

    Returns ``delta, dy, dx, length`` of the voxels it crosses between depths ``-(L - 1/2) dz`` and ``(L - 1/2) dz``.
    """
    z_lo, z_hi = -(n_layers - 0.5) * dz, (n_layers - 0.5) * dz
    cuts = [dz * (np.arange(-(n_layers - 1), n_layers + 1) - 0.5)]
    for tan in (tan_y, tan_x):
        if tan != 0.0:
            reach = int(np.ceil(abs(tan) * z_hi / dxy)) + 1
            z = (np.arange(-reach, reach + 1) + 0.5) * dxy / tan
            cuts.append(z[(z > z_lo) & (z < z_hi)])
    z = np.unique(np.concatenate(cuts))
    mid = 0.5 * (z[1:] + z[:-1])
    secant = np.sqrt(1.0 + tan_y**2 + tan_x**2)
    length = np.diff(z) * secant / dz
    keep = np.diff(z) > 1e-12 * dz
    delta = np.floor(mid / dz + 0.5).astype(np.int64)
    dy = np.floor(tan_y * mid / dxy + 0.5).astype(np.int64)
    dx = np.floor(tan_x * mid / dxy + 0.5).astype(np.int64)
    return delta[keep], dy[keep], dx[keep], length[keep]


@functools.lru_cache(maxsize=32)
def ray_taps(n_layers: int, na: float = 0.75, xy_res_um: float = 0.92, z_res_um: float = 1.0,
             aperture_samples: int = 25, model: RayModel = "exact") -> RayTaps:
    """The exact voxel path lengths ``d_ji`` of all pupil rays (see :class:`RayTaps`); cached.

    ``model="exact"``: lengths in layer spacings; ``"paper"``: the authors' ray set, lengths in µm.
    """
    if not isinstance(n_layers, (int, np.integer)) or n_layers < 1:
        raise InputError(f"brightfield: the volume needs at least one layer, got {n_layers!r}")
    dxy, dz = _positive("xy_res_um", xy_res_um), _positive("z_res_um", z_res_um)
    slopes = pupil_slopes(na, aperture_samples, model)
    unit = dz if model == "paper" else 1.0
    parts = [(j, *_traverse(float(ty), float(tx), int(n_layers), dz, dxy)) for j, (ty, tx) in enumerate(slopes)]
    return RayTaps(
        slopes=slopes,
        ray=np.concatenate([np.full(len(p[1]), p[0]) for p in parts]),
        delta=np.concatenate([p[1] for p in parts]),
        dy=np.concatenate([p[2] for p in parts]),
        dx=np.concatenate([p[3] for p in parts]),
        length=np.concatenate([p[4] for p in parts]) * unit,
    )


def _positive(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"brightfield: {name}={value!r} must be a positive number (µm)") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"brightfield: {name}={value!r} must be a positive number (µm)")
    return value


def _check_na(na) -> float:
    try:
        na = float(na)
    except (TypeError, ValueError):
        raise InputError(f"brightfield: na={na!r} must be a number in [0, 1) (medium index 1)") from None
    if not 0.0 <= na < 1.0:
        raise InputError(f"brightfield: na={na!r} must be in [0, 1) (the medium has index 1)")
    return na


def _check_model(model) -> str:
    if model not in ("exact", "paper"):
        raise InputError(f"brightfield: model={model!r} must be 'exact' or 'paper'")
    return model


def _check_samples(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"brightfield: aperture_samples={n!r} must be a positive integer")
    return int(n)


def _focus_range(focus_layers: Sequence[int] | None, n_layers: int) -> tuple[int, int, int]:
    """``(first, step, count)`` of evenly spaced focus layers inside the volume."""
    if focus_layers is None:
        return 0, 1, n_layers
    layers = [int(s) for s in focus_layers]
    if not layers or any(s < 0 or s >= n_layers for s in layers):
        raise InputError(f"brightfield: focus_layers={list(focus_layers)!r} must be layer indices in 0..{n_layers - 1}")
    step = layers[1] - layers[0] if len(layers) > 1 else 1
    if step < 1 or layers != list(range(layers[0], layers[0] + step * len(layers), step)):
        raise InputError(f"brightfield: focus_layers={layers!r} must be increasing and evenly spaced")
    return layers[0], step, len(layers)


@dataclass(frozen=True)
class _Plan:
    """Per ray, the shifted-layer additions ``(f0, f1, k0, k1, y0, x0, weight)`` for one volume depth and focus set.

    Output planes ``f0:f1`` get ``weight *`` source layers ``k0:k1:step`` taken at offset ``(y0, x0)`` of the
    laterally zero-padded (by ``pad``) log-transmittance.
    """

    rays: tuple[tuple[tuple[int, int, int, int, int, int, float], ...], ...]
    pad: int
    step: int
    n_focus: int


def _lateral_reach(taps: RayTaps) -> int:
    """Largest lateral tap offset (pixels): the zero padding both engines put around the volume."""
    return int(max(np.abs(taps.dy).max(initial=0), np.abs(taps.dx).max(initial=0)))


def _plan(taps: RayTaps, n_layers: int, first: int, step: int, n_focus: int) -> _Plan:
    pad = _lateral_reach(taps)
    rays: list[list] = [[] for _ in range(taps.n_rays)]
    for j, d, dy, dx, w in zip(taps.ray.tolist(), taps.delta.tolist(), taps.dy.tolist(), taps.dx.tolist(),
                               taps.length.tolist()):
        # focus f sits on layer first + f * step and reads layer k = first + f * step + d, which must be in 0..L-1
        f0 = max(0, -((first + d) // step))
        f1 = min(n_focus, (n_layers - 1 - first - d) // step + 1)
        if f1 <= f0:
            continue
        k0 = first + f0 * step + d
        rays[j].append((f0, f1, k0, k0 + (f1 - f0 - 1) * step + 1, pad + dy, pad + dx, w))
    return _Plan(tuple(tuple(r) for r in rays), pad, step, n_focus)


def _ray_log_sum(plan_ray, padded: torch.Tensor, out: torch.Tensor, step: int) -> torch.Tensor:
    """``out[f] = sum over the ray's taps of weight * padded[k, y0:y0+H, x0:x0+W]`` (log of the ray's transmission)."""
    h, w = out.shape[-2:]
    out.zero_()
    for f0, f1, k0, k1, y0, x0, weight in plan_ray:
        out[f0:f1].add_(padded[k0:k1:step, y0:y0 + h, x0:x0 + w], alpha=weight)
    return out


class _RenderLogTorch(torch.autograd.Function):
    """Focal stack from log-transmittance ``(L, H, W)`` by whole-layer shifted additions (any device); the backward
    pass recomputes each ray (low memory)."""

    @staticmethod
    def forward(ctx, log_t: torch.Tensor, plan: _Plan) -> torch.Tensor:
        ctx.plan = plan
        ctx.save_for_backward(log_t)
        padded = nn.functional.pad(log_t, (plan.pad,) * 4)
        _, h, w = log_t.shape
        stack = log_t.new_zeros((plan.n_focus, h, w))
        ray = log_t.new_empty((plan.n_focus, h, w))
        for plan_ray in plan.rays:
            stack.add_(_ray_log_sum(plan_ray, padded, ray, plan.step).exp_())
        return stack.div_(len(plan.rays))

    @staticmethod
    def backward(ctx, grad_stack: torch.Tensor):
        (log_t,) = ctx.saved_tensors
        plan = ctx.plan
        padded = nn.functional.pad(log_t, (plan.pad,) * 4)
        grad_padded = torch.zeros_like(padded)
        _, h, w = log_t.shape
        ray = log_t.new_empty((plan.n_focus, h, w))
        g = grad_stack / len(plan.rays)
        for plan_ray in plan.rays:
            weighted = _ray_log_sum(plan_ray, padded, ray, plan.step).exp_().mul_(g)
            for f0, f1, k0, k1, y0, x0, weight in plan_ray:
                grad_padded[k0:k1:plan.step, y0:y0 + h, x0:x0 + w].add_(weighted[f0:f1], alpha=weight)
        p = plan.pad
        return grad_padded[:, p:p + h, p:p + w], None


@dataclass(frozen=True)
class _TapTable:
    """The taps as flat arrays for :mod:`widefield3d.optics.ray_kernels`, two rays at a time: pair ``j`` (rays ``2 j``
    and ``2 j + 1``) owns entries ``starts[j]:starts[j+1]``, one per voxel that either ray crosses, sorted by depth,
    with both path lengths ``length[m]`` (0 for a ray that misses it); ``row``/``col`` are offsets into the laterally
    padded volume."""

    starts: np.ndarray
    delta: np.ndarray
    row: np.ndarray
    col: np.ndarray
    length: np.ndarray
    n_rays: int
    pad: int
    first: int
    step: int
    n_focus: int

    @classmethod
    def build(cls, taps: RayTaps, pad: int, first: int, step: int, n_focus: int) -> _TapTable:
        keys, tap = np.unique(np.stack([taps.ray // 2, taps.delta, taps.dy, taps.dx], axis=1), axis=0,
                              return_inverse=True)
        length = np.zeros((len(keys), 2))
        length[tap.ravel(), taps.ray % 2] = taps.length  # a straight ray crosses each voxel at most once
        starts = np.searchsorted(keys[:, 0], np.arange((taps.n_rays + 1) // 2 + 1)).astype(np.int64)
        return cls(starts, keys[:, 1].astype(np.int64), (keys[:, 2] + pad).astype(np.int64),
                   (keys[:, 3] + pad).astype(np.int64), length, taps.n_rays, pad, first, step, n_focus)

    def pad_volume(self, log_t: np.ndarray) -> np.ndarray:
        """The kernels' zero-padded layout of ``(L, H, W)``: ``pad`` zeros before every row (the row stride
        ``W + pad`` makes them the right margin of the row above too), ``pad`` zero rows above, ``pad + 1`` below."""
        return np.pad(log_t, ((0, 0), (self.pad, self.pad + 1), (self.pad, 0)))

    def arrays(self, padded_shape: tuple[int, int, int], dtype) -> tuple:
        """``(ranges, offset, length, n_rays)`` for :mod:`widefield3d.optics.ray_kernels` and a padded volume's
        shape."""
        from widefield3d.optics import ray_kernels

        n_layers, hp, wp = padded_shape
        ranges, offset = ray_kernels.tap_offsets(self.starts, self.delta, self.row, self.col, self.first, self.step,
                                                 self.n_focus, n_layers, hp, wp)
        return ranges, offset, self.length.astype(dtype, copy=False), self.n_rays


class _RenderLogKernel(torch.autograd.Function):
    """Focal stack from log-transmittance ``(L, H, W)`` on CPU with the compiled row kernels (forward and adjoint)."""

    @staticmethod
    def forward(ctx, log_t: torch.Tensor, table: _TapTable) -> torch.Tensor:
        from widefield3d.optics import ray_kernels

        padded = table.pad_volume(log_t.detach().numpy())
        arrays = table.arrays(padded.shape, padded.dtype)
        ctx.table, ctx.padded, ctx.arrays, ctx.shape = table, padded, arrays, log_t.shape
        out = np.empty((table.n_focus, *log_t.shape[1:]), padded.dtype)
        ray_kernels.render_rows(padded, *arrays, out)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_stack: torch.Tensor):
        from widefield3d.optics import ray_kernels

        table, padded = ctx.table, ctx.padded
        grad_out = np.ascontiguousarray(grad_stack.detach().numpy(), dtype=padded.dtype)
        spans = -(-grad_out.shape[1] // ray_kernels.ROWS_PER_SPAN) * grad_out.shape[0]
        grad = np.zeros((ray_kernels.n_chunks(spans), *padded.shape), padded.dtype)
        ray_kernels.render_rows_adjoint(padded, grad_out, *ctx.arrays, grad)
        p, (_, h, w) = table.pad, ctx.shape
        return torch.from_numpy(np.ascontiguousarray(grad.sum(axis=0)[:, p:p + h, p:p + w])), None


class BrightfieldRenderer(nn.Module):
    """Differentiable Yamaguchi renderer: transmittance ``(..., L, H, W)`` -> focal stack ``(..., F, H, W)``.

    Parameters
    ----------
    n_layers : int
        Layers ``L`` of the volumes it renders.
    na : float
        Numerical aperture of the objective (medium index 1), in [0, 1).
    xy_res_um, z_res_um : float
        Voxel width and layer spacing (µm).
    aperture_samples : int
        Pupil grid points per side (rays: those inside the disc).
    focus_layers : sequence of int, optional
        Increasing, evenly spaced layers to focus on; default every layer (``F = L``).
    engine : {"auto", "kernel", "torch"}
        ``"kernel"``: the compiled CPU row kernels (CPU tensors only); ``"torch"``: shifted whole-layer additions
        (any device); ``"auto"``: the kernels on CPU, torch elsewhere.
    model : {"exact", "paper"}
        Ray set and length unit (:data:`RayModel`): ``"exact"`` (default, the tested reference) or ``"paper"`` (the
        authors' code: 489 rays for the 25 x 25 grid at NA 0.75, lengths in µm).

    Notes
    -----
    Works on CPU and CUDA, float32 or float64 (the input's). Transmittance is clamped to the smallest positive
    float before the logarithm, so a zero voxel renders as opaque with a finite gradient.
    """

    def __init__(self, n_layers: int, na: float = 0.75, xy_res_um: float = 0.92, z_res_um: float = 1.0,
                 aperture_samples: int = 25, focus_layers: Sequence[int] | None = None,
                 engine: Literal["auto", "kernel", "torch"] = "auto", model: RayModel = "exact"):
        super().__init__()
        if engine not in ("auto", "kernel", "torch"):
            raise InputError(f"BrightfieldRenderer: engine={engine!r} must be 'auto', 'kernel' or 'torch'")
        self.taps = ray_taps(n_layers, na, xy_res_um, z_res_um, aperture_samples, _check_model(model))
        self.n_layers = n_layers
        self.engine = engine
        focus = _focus_range(focus_layers, n_layers)
        self.focus = focus
        self.table = _TapTable.build(self.taps, _lateral_reach(self.taps), *focus)

    @functools.cached_property
    def plan(self) -> _Plan:
        """The torch engine's per-ray shifted-layer additions (built on first use: a Python loop over the taps)."""
        return _plan(self.taps, self.n_layers, *self.focus)

    @property
    def n_rays(self) -> int:
        return self.taps.n_rays

    def render_log(self, log_t: torch.Tensor) -> torch.Tensor:
        """Focal stack from log-transmittance (``<= 0``) of shape ``(..., L, H, W)``."""
        if log_t.ndim < 3 or log_t.shape[-3] != self.n_layers:
            raise InputError(f"BrightfieldRenderer: expected (..., {self.n_layers}, H, W), got {tuple(log_t.shape)}")
        compiled = log_t.device.type == "cpu" and log_t.dtype in (torch.float32, torch.float64)
        if self.engine == "kernel" and not compiled:
            raise InputError(f"BrightfieldRenderer: engine='kernel' needs float32/float64 CPU tensors, got "
                             f"{log_t.dtype} on {log_t.device}")
        flat = log_t.reshape(-1, *log_t.shape[-3:]).contiguous()
        if self.engine == "torch" or (self.engine == "auto" and not compiled):
            out = [_RenderLogTorch.apply(v, self.plan) for v in flat]
        else:
            out = [_RenderLogKernel.apply(v, self.table) for v in flat]
        return torch.stack(out).reshape(*log_t.shape[:-3], *out[0].shape)

    def forward(self, transmittance: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(transmittance.dtype).tiny
        return self.render_log(torch.log(transmittance.clamp(min=tiny)))


def brightfield_stack(transmittance, na: float = 0.75, xy_res_um: float = 0.92, z_res_um: float = 1.0,
                      aperture_samples: int = 25, focus_layers: Sequence[int] | None = None,
                      model: RayModel = "exact") -> np.ndarray:
    """Bright-field focal stack of a transmittance volume (Yamaguchi's ray model).

    Parameters
    ----------
    transmittance : array_like, shape (L, H, W)
        Voxel transmittance in [0, 1] (ZYX; layer spacing ``z_res_um``, pixels ``xy_res_um``).
    na : float
        Numerical aperture (medium index 1).
    xy_res_um, z_res_um : float
        Lateral pixel and layer spacing, µm.
    aperture_samples : int
        Pupil grid points per side (25 in the paper: the rays are the grid points inside the disc).
    focus_layers : sequence of int, optional
        Layers focused on (evenly spaced); default all ``L``.
    model : {"exact", "paper"}
        ``"exact"`` (default): aplanatic pupil, lengths in layer spacings; ``"paper"``: the authors' ray set and µm
        lengths (docs/volume.md compares the two).

    Returns
    -------
    numpy.ndarray, shape (F, H, W)
        Transmitted intensity in [0, 1] (1 = nothing absorbed), float64 for float64 input, else float32.
    """
    volume = np.asarray(transmittance)
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise InputError(f"brightfield_stack: expected a ZYX volume, got shape {volume.shape}")
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        raise InputError(f"brightfield_stack: transmittance must be real numbers, got dtype {volume.dtype}")
    if not np.all(np.isfinite(volume)) or volume.min() < 0 or volume.max() > 1:
        raise InputError("brightfield_stack: transmittance values must be finite and in [0, 1]")
    dtype = torch.float64 if volume.dtype == np.float64 else torch.float32
    renderer = BrightfieldRenderer(volume.shape[0], na, xy_res_um, z_res_um, aperture_samples, focus_layers,
                                   model=model)
    with torch.no_grad():
        return renderer(torch.as_tensor(volume, dtype=dtype)).numpy()
