"""Point spread functions of wide-field and confocal fluorescence microscopes.

The wide-field PSF is the vectorial Gibson-Lanni model of ``psfmodels`` (Aguet et al. 2009), which holds the
depth-dependent spherical aberration of a refractive-index mismatch between immersion and sample: the source
of the asymmetry about focus that Deep-Z uses to tell up from down. The model is evaluated on a laterally
oversampled grid and integrated over each pixel (``oversample``). Its axial axis is *sample-space defocus*
``z_focus - z_source`` (µm, positive = focal plane deeper than the source): the stage positions of
psfmodels are mapped to sample space with the focal shift measured numerically at ``microscope.depth_um``.

Every PSF is normalised so that its in-focus plane sums to 1 (the collected energy of a point), so that
convolving a density with it gives images in the density's units per voxel. Results are cached on disk
(``$WIDEFIELD3D_CACHE`` or ``~/.cache/widefield3d``) under a hash of all parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import psfmodels
from scipy import fft as sfft

from widefield3d.errors import InputError
from widefield3d.optics.microscope import Microscope

CACHE_VERSION = 1


def cache_dir() -> Path:
    """Directory of the on-disk PSF cache."""
    root = os.environ.get("WIDEFIELD3D_CACHE") or Path.home() / ".cache" / "widefield3d"
    return Path(root) / "psf"


def _gibson_lanni_params(m: Microscope) -> dict:
    return dict(
        NA=m.na, ni=m.immersion_index, ni0=m.immersion_index, ns=m.sample_index,
        ng=m.coverslip_index, ng0=m.coverslip_index, tg=m.coverslip_thickness_um,
        tg0=m.coverslip_thickness_um, ti0=m.working_distance_um,
    )


def _axial_peak(m: Microscope, wavelength_um: float, depth_um: float) -> float:
    """Stage position (µm) at which a point at ``depth_um`` below the coverslip is brightest on axis."""
    params = _gibson_lanni_params(m)
    guess = depth_um * m.immersion_index / m.sample_index
    half = 0.6 * depth_um + 4.0 * wavelength_um / (1 - np.sqrt(1 - (m.na / m.immersion_index) ** 2))
    for step in (0.05 * half, 0.01 * half):
        z = np.arange(guess - half, guess + half + step / 2, step)
        on_axis = psfmodels.make_psf(z, 3, dxy=0.01, pz=depth_um, wvl=wavelength_um, oversample_factor=1,
                                     normalize=False, **params)[:, 1, 1]
        i = int(np.argmax(on_axis))
        if 0 < i < len(z) - 1:  # parabolic refinement through the three best samples
            a, b, c = on_axis[i - 1 : i + 2]
            denom = a - 2 * b + c
            guess = z[i] + (0.5 * step * (a - c) / denom if denom != 0 else 0.0)
        else:
            guess = z[i]
        half = 3 * step
    return float(guess)


def focal_shift(m: Microscope, wavelength_um: float | None = None) -> tuple[float, float]:
    """Stage focus of the imaged depth and the axial scale (sample µm per stage µm) at that depth.

    Returns ``(z_stage_focus, scale)``; ``scale`` is close to ``sample_index / immersion_index`` for small NA.
    """
    wvl = wavelength_um or m.emission_wavelength_um
    dz = 1.0
    z0 = _axial_peak(m, wvl, m.depth_um)
    z1 = _axial_peak(m, wvl, m.depth_um + dz)
    return z0, dz / (z1 - z0)


def _key(kind: str, **fields) -> str:
    blob = json.dumps({"kind": kind, "v": CACHE_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cached(key: str, compute, use_cache: bool) -> np.ndarray:
    path = cache_dir() / f"{key}.npy"
    if use_cache and path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache entry is recomputed
    result = compute()
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, result, allow_pickle=False)
        os.replace(tmp, path)
    return result


def _check_shape(shape_zyx, spacing_um) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    try:
        shape = tuple(int(s) for s in shape_zyx)
        spacing = tuple(float(s) for s in spacing_um)
    except (TypeError, ValueError):
        raise InputError(f"PSF shape {shape_zyx!r} and spacing {spacing_um!r} must be numbers") from None
    if len(shape) != 3 or len(spacing) != 3:
        raise InputError(f"PSF shape and spacing need three values (Z, Y, X), got {shape} and {spacing}")
    if any(s < 1 or s % 2 == 0 for s in shape):
        raise InputError(f"PSF shape {shape} must be odd and positive on every axis (the source sits in the centre)")
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise InputError(f"PSF spacing {spacing} must be positive (µm)")
    return shape, spacing


def widefield_planes(
    microscope: Microscope,
    defocus_um,
    size_yx: int,
    dxy_um: float,
    *,
    wavelength_um: float | None = None,
    oversample: int = 3,
    use_cache: bool = True,
) -> np.ndarray:
    """Wide-field PSF planes at arbitrary sample-space defocus values.

    Parameters
    ----------
    defocus_um : 1D sequence, ``z_focus - z_source`` in µm (positive: focal plane deeper than the point).
    size_yx : odd lateral size in pixels (square planes); the point is at the centre pixel.
    dxy_um : pixel size in the sample (µm).
    wavelength_um : emission wavelength (default: the microscope's).
    oversample : lateral sub-samples per pixel side used to integrate the PSF over each pixel.

    Returns
    -------
    float32 array (len(defocus), size, size), scaled so that the in-focus plane would sum to 1.
    """
    defocus = np.atleast_1d(np.asarray(defocus_um, dtype=np.float64))
    wvl = float(wavelength_um or microscope.emission_wavelength_um)
    if defocus.ndim != 1 or defocus.size == 0 or not np.all(np.isfinite(defocus)):
        raise InputError("PSF defocus values must be a non-empty 1D list of finite numbers (µm)")
    if size_yx < 1 or size_yx % 2 == 0:
        raise InputError(f"PSF lateral size {size_yx} must be odd and positive (the source sits in the centre)")
    if not np.isfinite(dxy_um) or dxy_um <= 0:
        raise InputError(f"PSF pixel size {dxy_um} must be positive (µm)")
    if oversample < 1:
        raise InputError(f"oversample must be >= 1, got {oversample}")
    key = _key("widefield", m=microscope.model_dump(), defocus=np.round(defocus, 6).tolist(), n=int(size_yx),
               dxy=float(dxy_um), wvl=wvl, os=int(oversample))

    def compute() -> np.ndarray:
        z_focus, scale = focal_shift(microscope, wvl)
        stage = z_focus + np.concatenate([[0.0], defocus]) / scale
        psf = psfmodels.make_psf(stage, int(size_yx), dxy=float(dxy_um), pz=microscope.depth_um, wvl=wvl,
                                 oversample_factor=int(oversample), normalize=False,
                                 **_gibson_lanni_params(microscope))
        psf = np.clip(psf, 0, None)
        return (psf[1:] / psf[0].sum()).astype(np.float32)

    return _cached(key, compute, use_cache)


def _axial_grid(shape_zyx, spacing_um) -> tuple[np.ndarray, int, float]:
    shape, spacing = _check_shape(shape_zyx, spacing_um)
    if shape[1] != shape[2] or spacing[1] != spacing[2]:
        raise InputError(f"PSF planes must be square with square pixels, got shape {shape} spacing {spacing}")
    return (np.arange(shape[0]) - shape[0] // 2) * spacing[0], shape[1], spacing[1]


def widefield_psf(microscope: Microscope, shape_zyx, spacing_um, **kwargs) -> np.ndarray:
    """Vectorial wide-field PSF (Z, Y, X), odd sizes, point source in the centre voxel, centre plane sums to 1.

    ``spacing_um`` is (dz, dy, dx) in µm, ``dz`` being sample-space defocus; keyword arguments as
    :func:`widefield_planes`.
    """
    return widefield_planes(microscope, *_axial_grid(shape_zyx, spacing_um), **kwargs)


def pinhole_disc(diameter_um: float, size: int, spacing_um: float, supersample: int = 8) -> np.ndarray:
    """Area-weighted disc of a pinhole projected into the sample, (size, size), normalised to sum 1."""
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    r = ((np.arange(size) - size // 2)[:, None] + sub[None, :]).ravel() * spacing_um
    inside = (r[:, None] ** 2 + r[None, :] ** 2) <= (diameter_um / 2) ** 2
    disc = inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))
    if disc.sum() == 0:  # pinhole smaller than a pixel: the centre pixel passes
        disc[size // 2, size // 2] = 1.0
    return disc / disc.sum()


def confocal_planes(
    microscope: Microscope, defocus_um, size_yx: int, dxy_um: float, *, oversample: int = 3, use_cache: bool = True
) -> np.ndarray:
    """Confocal PSF planes: excitation PSF x (emission PSF convolved laterally with the pinhole).

    The pinhole diameter is ``microscope.pinhole_au`` Airy units (1 AU = 1.22 λ_em / NA in the sample).
    Scaled so that the in-focus plane would sum to 1. Returns float32 (len(defocus), size, size). Cached on
    disk like the wide-field planes; the emission planes are the wide-field microscope's own (one cache entry
    for both modalities), the in-focus planes a separate one-plane entry.
    """
    defocus = np.atleast_1d(np.asarray(defocus_um, dtype=np.float64))
    key = _key("confocal", m=microscope.model_dump(), defocus=np.round(defocus, 6).tolist(), n=int(size_yx),
               dxy=float(dxy_um), os=int(oversample))

    def compute() -> np.ndarray:
        planes: dict[str, Any] = dict(size_yx=size_yx, dxy_um=dxy_um, oversample=oversample, use_cache=use_cache)
        em, ex = (np.concatenate([widefield_planes(microscope, [0.0], wavelength_um=wvl, **planes),
                                  widefield_planes(microscope, defocus, wavelength_um=wvl, **planes)])
                  for wvl in (None, microscope.excitation_wavelength_um))
        disc = pinhole_disc(microscope.pinhole_au * microscope.airy_unit_um, size_yx, dxy_um)
        detected = sfft.irfft2(sfft.rfft2(em, workers=-1) * sfft.rfft2(sfft.ifftshift(disc)), s=em.shape[1:],
                               workers=-1)
        psf = np.clip(ex / ex[0].max() * detected, 0, None)
        return (psf[1:] / psf[0].sum()).astype(np.float32)

    return _cached(key, compute, use_cache)


def confocal_psf(microscope: Microscope, shape_zyx, spacing_um, **kwargs) -> np.ndarray:
    """Confocal PSF (Z, Y, X), odd sizes, centred, centre plane sums to 1; see :func:`confocal_planes`."""
    return confocal_planes(microscope, *_axial_grid(shape_zyx, spacing_um), **kwargs)


def psf_planes(microscope: Microscope, defocus_um, size_yx: int, dxy_um: float, **kwargs) -> np.ndarray:
    """PSF planes of the microscope's fluorescence modality (wide-field or confocal)."""
    if microscope.modality == "confocal":
        return confocal_planes(microscope, defocus_um, size_yx, dxy_um, **kwargs)
    if microscope.modality == "widefield":
        return widefield_planes(microscope, defocus_um, size_yx, dxy_um, **kwargs)
    raise InputError(f"modality {microscope.modality!r} has no fluorescence PSF; use widefield or confocal")


def psf(microscope: Microscope, shape_zyx, spacing_um, **kwargs) -> np.ndarray:
    """The (Z, Y, X) PSF of the microscope's fluorescence modality (wide-field or confocal)."""
    return psf_planes(microscope, *_axial_grid(shape_zyx, spacing_um), **kwargs)
