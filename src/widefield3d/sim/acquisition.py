"""Image formation: turn a sample (3D density on a fine grid) into what a microscope records.

Fluorescence (wide-field or confocal): the image of the focal plane at depth ``z`` is the sum over the
sample's planes ``z'`` of that plane convolved with the PSF at defocus ``z - z'`` (a depth-invariant 3D
convolution, with the PSF of the microscope's ``depth_um``). It is computed on the sample's fine lateral grid,
then integrated onto camera pixels (sum over ``k x k`` fine pixels, ``k = pixel / fine spacing``), then turned
into photons and camera counts by :mod:`widefield3d.sim.camera`.

Thick scattering samples (``scattering_length_um``): light emitted at depth ``d`` below the sample's top
reaches the objective unscattered with probability ``exp(-d / ls)``; the rest arrives as a haze, a Gaussian
blur whose width grows with depth (``sigma = 0.5 d``), the same on every focal plane. A confocal pinhole
passes the ballistic light attenuated on both the excitation and emission paths (``exp(-2 d / ls)``) and only
the fraction of the haze that falls into the pinhole.

Bright-field (RGB, absorbing stains): Beer-Lambert in the log domain. For each colour the optical density of
every plane is blurred by the defocus PSF at that colour's wavelength (an incoherent model, valid for a
condenser aperture matched to the objective), summed over depth, and transmitted intensity is
``10 ** (-OD)``. The exact ray model of Yamaguchi lives in ``optics.brightfield`` (volume reconstruction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.progress import track
from scipy import fft as sfft

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.optics.microscope import Microscope
from widefield3d.optics.psf import psf_planes, widefield_planes
from widefield3d.sim.camera import Camera, expose, lateral_drift
from widefield3d.sim.samples import Sample

RGB_WAVELENGTHS_UM = (0.61, 0.54, 0.465)
"""Centre wavelengths of the red, green and blue channels of a colour camera (µm)."""


@dataclass
class Acquisition:
    """A simulated measurement with its ground truth, on the camera grid.

    ``noisy`` is what the camera records (ADU, integer), ``clean`` the expected photon counts without
    noise, ``truth`` the sample density resampled onto the same pixels and planes. Axes are ``ZYX``
    (fluorescence stacks), ``YX`` (one plane or surface) or ``CZYX`` (bright-field RGB).
    """

    noisy: np.ndarray
    clean: np.ndarray
    truth: np.ndarray
    axes: str
    spacing_um: tuple[float, float, float]
    z_um: np.ndarray
    microscope: Microscope
    camera: Camera
    channel_names: list[str] | None = None
    drift_px: np.ndarray | None = None

    def as_image(self, which: str = "noisy") -> io.Image:
        """One of ``noisy``, ``clean`` or ``truth`` as an :class:`io.Image` with axes, spacing and channels."""
        if which not in ("noisy", "clean", "truth"):
            raise InputError(f"acquisition has noisy, clean and truth images, not {which!r}")
        return io.Image(getattr(self, which), axes=self.axes, spacing_um=self.spacing_um,
                        channel_names=self.channel_names)


def _oversampling(sample: Sample, m: Microscope) -> int:
    dy, dx = sample.spacing_um[1:]
    if abs(dy - dx) > 1e-9 * dx:
        raise InputError(f"sample pixels must be square, got dy={dy} dx={dx} µm")
    k = m.pixel_um / dx
    if round(k) < 1 or abs(k - round(k)) > 1e-3:
        raise InputError(
            f"sample lateral spacing {dx:g} µm must be the camera pixel {m.pixel_um:g} µm divided by an integer"
        )
    return int(round(k))


def _bin(image: np.ndarray, k: int) -> np.ndarray:
    """Sum k x k blocks over the last two axes (integration onto camera pixels)."""
    if k == 1:
        return image
    *lead, ny, nx = image.shape
    ny, nx = ny // k * k, nx // k * k
    return image[..., :ny, :nx].reshape(*lead, ny // k, k, nx // k, k).sum(axis=(-3, -1))


def psf_size(max_defocus_um: float, m: Microscope, dxy: float, field_px: int) -> int:
    """Odd lateral PSF size (pixels) holding the defocused cone (with margin), at most about the field.

    Parameters
    ----------
    max_defocus_um : float
        Largest ``|z_out - z_in|`` the PSF will be evaluated at (µm).
    m : Microscope
        NA, sample index and emission wavelength set the cone's angle and the in-focus spot.
    dxy : float
        Lateral pixel of the grid the PSF is sampled on (µm).
    field_px : int
        Largest lateral side of the field (pixels): the half-size is capped at it.

    Returns
    -------
    int
        ``2 * half + 1``, the side of the square PSF plane.
    """
    sin_t = min(m.na / m.sample_index, 0.95)
    radius_um = 1.3 * abs(max_defocus_um) * sin_t / np.sqrt(1 - sin_t**2) + 6 * m.emission_wavelength_um / m.na
    half = int(np.ceil(radius_um / dxy))
    half = min(half, field_px)
    return 2 * half + 1


def _sample_z(sample: Sample) -> np.ndarray:
    return np.arange(sample.density.shape[-3]) * sample.spacing_um[0]


def _planes_by_offset(z_out: np.ndarray, z_in: np.ndarray) -> dict[float, list[tuple[int, int]]]:
    groups: dict[float, list[tuple[int, int]]] = {}
    for k, zo in enumerate(z_out):
        for j, zi in enumerate(z_in):
            groups.setdefault(round(float(zo - zi), 6), []).append((k, j))
    return groups


def _grid_positions(z_in: np.ndarray, z_out: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """``(dz, a, b)`` with ``z_in = z_in[0] + a dz`` and ``z_out = z_in[0] + b dz`` (integer ``a``, ``b``) when
    both depth lists lie on one uniform grid of step ``dz`` (µm), else None."""
    if len(z_in) < 2:
        return None
    dz = float(z_in[1] - z_in[0])
    if dz <= 0:
        return None
    pos_in, pos_out = (z_in - z_in[0]) / dz, (z_out - z_in[0]) / dz
    a, b = np.rint(pos_in).astype(int), np.rint(pos_out).astype(int)
    if np.abs(pos_in - a).max() > 1e-6 or np.abs(pos_out - b).max() > 1e-6:
        return None
    return dz, a, b


def convolve_planes(
    volume: np.ndarray,
    z_in: np.ndarray,
    z_out: np.ndarray,
    planes_at,
    psf_size: int,
    weights: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Images at focal depths ``z_out`` of a (Z, Y, X) volume with planes at ``z_in`` (µm).

    ``planes_at(offsets) -> (n, psf_size, psf_size)`` gives the PSF at defocus ``z_out - z_in``; the
    sum over input planes is done in the Fourier domain with linear (zero-padded) convolution.
    ``weights`` (per input plane) scale each plane's contribution. ``progress`` shows a bar.
    Returns float32 (len(z_out), Y, X).

    When ``z_in`` and ``z_out`` lie on one uniform grid (a stack of the sample's own step), the sum over input
    planes is a convolution along z too, done per lateral frequency by FFT along z (cost ``O(Z log Z)`` per
    frequency instead of ``len(z_out) * len(z_in)`` products); other depths take the sum pair by pair.
    """
    nz, ny, nx = volume.shape
    z_in, z_out = np.asarray(z_in, np.float64), np.asarray(z_out, np.float64)
    shape = (sfft.next_fast_len(ny + psf_size - 1, real=True), sfft.next_fast_len(nx + psf_size - 1, real=True))
    live = np.array([j for j in range(nz) if volume[j].any()], int)
    if not live.size:
        return np.zeros((len(z_out), ny, nx), dtype=np.float32)
    spectra = sfft.rfft2(volume[live].astype(np.float32, copy=False), s=shape, workers=-1)
    if weights is not None:
        spectra *= np.asarray(weights, np.float32)[live, None, None]
    grid = _grid_positions(z_in, z_out)
    if grid is not None:
        out = _sum_over_depth_by_fft(spectra, live, grid, planes_at, shape, progress)
    else:
        out = _sum_over_depth_by_pairs(spectra, z_in[live], z_out, planes_at, shape, progress)
    images = sfft.irfft2(out, s=shape, workers=-1)
    c = psf_size // 2
    return np.ascontiguousarray(images[:, c : c + ny, c : c + nx], dtype=np.float32)


def _sum_over_depth_by_fft(spectra, live, grid, planes_at, shape, progress: bool) -> np.ndarray:
    """``out[k] = sum_j spectra[j] * OTF(z_out[k] - z_in[j])`` for depths on one grid: a linear convolution along
    z per lateral frequency. The OTFs span every grid offset between the stacks (independent of which sample
    planes are empty, so the PSF cache serves every field of a preset)."""
    dz, a, b = grid
    lo = int(b.min() - a.max())  # smallest offset, in grid steps
    n_off = int(b.max() - a.min()) - lo + 1
    psfs = planes_at(np.round((lo + np.arange(n_off)) * dz, 6))
    otfs = sfft.rfft2(psfs, s=shape, workers=-1).astype(np.complex64, copy=False)
    del psfs
    # out[k] = sum_a S[a] O[b_k - lo - a]: every index b_k - lo - a lies in [0, n_off), so a cyclic
    # convolution of length >= n_off along z is exact for the needed outputs
    length = sfft.next_fast_len(n_off)
    a_live, need = a[live] - a.min(), b - lo - a.min()
    out = np.empty((len(b), *spectra.shape[1:]), np.complex64)
    rows = max(1, (64 << 20) // (8 * length * spectra.shape[2]))  # about 64 MB of complex64 per z-transform
    for r in track(range(0, spectra.shape[1], rows), description="imaging", disable=not progress, transient=True):
        block = np.zeros((length, min(rows, spectra.shape[1] - r), spectra.shape[2]), np.complex64)
        block[a_live] = spectra[:, r : r + rows]
        product = sfft.fft(block, axis=0, workers=-1)
        product *= sfft.fft(otfs[:, r : r + rows], n=length, axis=0, workers=-1)
        out[:, r : r + rows] = sfft.ifft(product, axis=0, workers=-1)[need]
    return out


def _sum_over_depth_by_pairs(spectra, z_in, z_out, planes_at, shape, progress: bool) -> np.ndarray:
    """``out[k] = sum_j spectra[j] * OTF(z_out[k] - z_in[j])`` pair by pair (any depths), one OTF per offset."""
    out = np.zeros((len(z_out), shape[0], shape[1] // 2 + 1), dtype=np.complex64)
    groups = _planes_by_offset(z_out, z_in)
    offsets = np.array(sorted(groups))
    psfs = planes_at(offsets)
    for offset, psf in track(zip(offsets, psfs), total=len(offsets), description="imaging", disable=not progress,
                             transient=True):
        otf = sfft.rfft2(psf, s=shape, workers=-1).astype(np.complex64)
        for k, j in groups[float(offset)]:
            out[k] += spectra[j] * otf
    return out


def _gaussian_cyclic(sigma_px: float, n: int, length: int, truncate: float = 3.0) -> np.ndarray:
    """The kernel of ``scipy.ndimage.gaussian_filter`` (sum 1 over ``|t| <= int(truncate * sigma + 0.5)`` px),
    restricted to the taps ``|t| < n`` that reach an ``n``-px signal and placed cyclically on ``length`` px.
    With ``length >= n + min(radius, n - 1)``, cyclic convolution with the zero-padded signal gives the filter
    with ``mode="constant"`` on the first ``n`` outputs."""
    radius = int(truncate * sigma_px + 0.5)
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (t / sigma_px) ** 2)
    kernel /= kernel.sum()
    keep = np.abs(t) < n
    cyclic = np.zeros(length)
    np.add.at(cyclic, t[keep] % length, kernel[keep])
    return cyclic


def _haze(volume: np.ndarray, depth_um: np.ndarray, scattered: np.ndarray, dxy: float) -> np.ndarray:
    """Scattered light: each plane's scattered fraction blurred by a Gaussian of sigma 0.5 x depth, summed.

    The blur is ``scipy.ndimage.gaussian_filter(mode="constant", truncate=3)`` of each plane, done as one sum
    of spectra times separable Gaussian transfer functions and a single inverse FFT, so its cost does not grow
    with sigma (hundreds of fine pixels deep in tissue)."""
    nz, ny, nx = volume.shape
    planes = [j for j in range(nz) if scattered[j] > 0 and volume[j].any()]
    if not planes:
        return np.zeros((ny, nx), dtype=np.float32)
    sigmas = [max(0.5 * depth_um[j] / dxy, 0.5) for j in planes]
    radius = max(int(3.0 * s + 0.5) for s in sigmas)
    shape = (sfft.next_fast_len(ny + min(radius, ny - 1), real=True),
             sfft.next_fast_len(nx + min(radius, nx - 1), real=True))
    total = np.zeros((shape[0], shape[1] // 2 + 1), np.complex128)
    for j, sigma in zip(planes, sigmas):
        ky = sfft.fft(_gaussian_cyclic(sigma, ny, shape[0])).real  # symmetric kernels: real transfer functions
        kx = sfft.rfft(_gaussian_cyclic(sigma, nx, shape[1])).real
        total += sfft.rfft2(volume[j], s=shape, workers=-1) * (scattered[j] * ky[:, None] * kx[None, :])
    return np.ascontiguousarray(sfft.irfft2(total, s=shape, workers=-1)[:ny, :nx], dtype=np.float32)


def _validate_z(z_um, name: str = "z") -> np.ndarray:
    z = np.atleast_1d(np.asarray(z_um, dtype=np.float64))
    if z.ndim != 1 or z.size == 0 or not np.all(np.isfinite(z)):
        raise InputError(f"{name}: focal positions must be a non-empty list of finite depths in µm")
    return z


def _truth_at(sample_volume: np.ndarray, z_in: np.ndarray, z_out: np.ndarray, k: int) -> np.ndarray:
    """Sample density averaged onto camera pixels and linearly interpolated to depths ``z_out``."""
    binned = _bin(sample_volume, k) / (k * k)
    pos = np.interp(z_out, z_in, np.arange(len(z_in)), left=-1, right=len(z_in))
    out = np.zeros((len(z_out),) + binned.shape[1:], dtype=np.float32)
    for i, p in enumerate(pos):
        if 0 <= p <= len(z_in) - 1:
            lo = int(np.floor(p))
            hi = min(lo + 1, len(z_in) - 1)
            w = p - lo
            out[i] = (1 - w) * binned[lo] + w * binned[hi]
    return out


def _fluorescence_clean(
    sample: Sample, m: Microscope, z_out: np.ndarray, scattering_length_um: float | None, oversample: int,
    progress: bool = False,
) -> np.ndarray:
    if sample.density.ndim != 3:
        raise InputError(f"sample {sample.kind!r} is not a fluorescence density (Z, Y, X); got {sample.density.shape}")
    z_in = _sample_z(sample)
    dxy = sample.spacing_um[2]
    max_defocus = float(np.max(np.abs(z_out[:, None] - z_in[None, :])))
    size = psf_size(max_defocus, m, dxy, max(sample.density.shape[1:]))
    confocal = m.modality == "confocal"

    def planes_at(offsets):
        return psf_planes(m, offsets, size, dxy, oversample=oversample)

    weights = None
    haze = None
    if scattering_length_um is None:
        scattering_length_um = sample.scattering_length_um
    if scattering_length_um is not None and not np.isinf(scattering_length_um):
        if scattering_length_um <= 0:
            raise InputError(f"scattering length must be positive, got {scattering_length_um} µm")
        ballistic = np.exp(-z_in / scattering_length_um)
        scattered = 1 - ballistic
        weights = ballistic
        if confocal:  # both paths attenuate; the pinhole passes the haze that falls into its area
            weights = ballistic**2
            pinhole_area = np.pi * (m.pinhole_au * m.airy_unit_um / 2) ** 2
            scattered = scattered * np.minimum(1.0, pinhole_area / (2 * np.pi * np.maximum(0.5 * z_in, dxy) ** 2))
        haze = _haze(sample.density, z_in, scattered, dxy)
    images = convolve_planes(sample.density, z_in, z_out, planes_at, size, weights, progress)
    if haze is not None:
        images += haze[None]
    return np.clip(images, 0, None)


def _per_output_pixel(truth: np.ndarray, camera: Camera) -> np.ndarray:
    """Ground truth averaged onto the camera's output pixels (binning x binning sensor pixels)."""
    b = camera.binning
    return (_bin(truth, b) / (b * b) if b > 1 else truth).astype(np.float32)


def _spacing(dz: float, m: Microscope, camera: Camera) -> tuple[float, float, float]:
    """(dz, dy, dx) of the recorded image in µm: the object pixel times the binning."""
    return (float(dz), m.pixel_um * camera.binning, m.pixel_um * camera.binning)


def fluorescence_stack(
    sample: Sample,
    microscope: Microscope,
    z_um,
    *,
    camera: Camera | None = None,
    seed: int = 0,
    scattering_length_um: float | None = None,
    drift_px: float | None = None,
    oversample: int = 3,
    progress: bool = False,
) -> Acquisition:
    """Wide-field or confocal z-stack (by ``microscope.modality``) at focal depths ``z_um``.

    ``z_um`` are depths in the sample's frame (µm from its first plane). ``drift_px`` is the rms lateral step
    of a random-walk drift between frames (camera pixels). ``scattering_length_um`` defaults to the sample's
    own (thick tissue carries one); ``float("inf")`` switches scattering off. Returns an :class:`Acquisition`
    with ``ZYX`` axes.
    """
    z = _validate_z(z_um)
    camera = camera or Camera()
    rng = np.random.default_rng(seed)
    k = _oversampling(sample, microscope)
    clean = _bin(_fluorescence_clean(sample, microscope, z, scattering_length_um, oversample, progress), k)
    shifts = None
    if drift_px:
        clean, shifts = lateral_drift(clean, drift_px, rng)
        clean = np.clip(clean, 0, None)  # sub-pixel Fourier shifts ring slightly below zero
    exposure = expose(clean, camera, rng)
    truth = _per_output_pixel(_truth_at(sample.density, _sample_z(sample), z, k), camera)
    step = float(np.median(np.diff(z))) if z.size > 1 else microscope.z_step_um
    return Acquisition(
        noisy=exposure.adu, clean=exposure.photons_expected, truth=truth,
        axes="ZYX", spacing_um=_spacing(step, microscope, camera), z_um=z,
        microscope=microscope, camera=camera, drift_px=shifts,
    )


def fluorescence_plane(sample: Sample, microscope: Microscope, z_um: float, **kwargs) -> Acquisition:
    """One focal plane at depth ``z_um`` (µm); axes ``YX``. Keyword arguments as :func:`fluorescence_stack`."""
    stack = fluorescence_stack(sample, microscope, [float(z_um)], **kwargs)
    stack.noisy, stack.clean, stack.truth = stack.noisy[0], stack.clean[0], stack.truth[0]
    stack.axes = "YX"
    return stack


def fluorescence_surface(
    sample: Sample,
    microscope: Microscope,
    surface_um: np.ndarray,
    *,
    camera: Camera | None = None,
    seed: int = 0,
    z_sampling_um: float = 0.1,
    oversample: int = 3,
) -> Acquisition:
    """Image focused on a surface ``z(y, x)`` (µm, one value per camera pixel); axes ``YX``.

    Computed as a fine stack over the surface's depth range (``z_sampling_um`` apart) interpolated
    linearly per pixel; the error of that interpolation is far below the axial resolution.
    """
    surface = np.asarray(surface_um, dtype=np.float64)
    k = _oversampling(sample, microscope)
    expected = tuple(s // k for s in sample.density.shape[-2:])
    if surface.shape != expected or not np.all(np.isfinite(surface)):
        raise InputError(f"surface must be finite with one depth per camera pixel, shape {expected}; "
                         f"got {surface.shape}")
    lo, hi = float(surface.min()), float(surface.max())
    z = np.arange(lo, hi + z_sampling_um, z_sampling_um) if hi > lo else np.array([lo])
    camera = camera or Camera()
    rng = np.random.default_rng(seed)
    clean_stack = _bin(_fluorescence_clean(sample, microscope, z, None, oversample), k)
    truth_stack = _truth_at(sample.density, _sample_z(sample), z, k)
    pos = np.clip((surface - lo) / z_sampling_um, 0, len(z) - 1)
    lo_i = np.floor(pos).astype(int)
    hi_i = np.minimum(lo_i + 1, len(z) - 1)
    w = (pos - lo_i).astype(np.float32)
    yy, xx = np.indices(surface.shape)

    def pick(stack):
        return (1 - w) * stack[lo_i, yy, xx] + w * stack[hi_i, yy, xx]

    exposure = expose(pick(clean_stack), camera, rng)
    return Acquisition(
        noisy=exposure.adu, clean=exposure.photons_expected, truth=_per_output_pixel(pick(truth_stack), camera),
        axes="YX", spacing_um=_spacing(microscope.z_step_um, microscope, camera), z_um=surface.astype(np.float32),
        microscope=microscope, camera=camera,
    )


def brightfield_stack(
    sample: Sample,
    microscope: Microscope,
    z_um,
    *,
    camera: Camera | None = None,
    seed: int = 0,
    od_per_um: float = 0.15,
    oversample: int = 3,
) -> Acquisition:
    """RGB bright-field focal planes of an absorbing stained sample; axes ``CZYX`` (C = R, G, B).

    ``sample.density`` holds stain concentrations (S, Z, Y, X) and ``sample.absorbance_rgb`` (S, 3) their
    optical densities per unit concentration; ``od_per_um`` converts concentration x path length (µm) to
    optical density. ``clean`` is the transmitted fraction times the photon budget per colour; ``truth`` is
    the per-colour optical density per µm of each plane (C, Z, Y, X) on camera pixels.
    """
    if sample.density.ndim != 4 or sample.absorbance_rgb is None:
        raise InputError(f"bright-field needs a stained sample (stains, Z, Y, X) with absorbance; got {sample.kind!r}")
    z = _validate_z(z_um)
    camera = camera or Camera()
    rng = np.random.default_rng(seed)
    k = _oversampling(sample, microscope)
    z_in = _sample_z(sample)
    dxy = sample.spacing_um[2]
    absorb = np.asarray(sample.absorbance_rgb, dtype=np.float32)
    size = psf_size(float(np.max(np.abs(z[:, None] - z_in[None, :]))), microscope, dxy,
                     max(sample.density.shape[-2:]))
    transmitted, truth = [], []
    for c, wvl in enumerate(RGB_WAVELENGTHS_UM):
        od = np.tensordot(absorb[:, c], sample.density, axes=(0, 0)) * (od_per_um * sample.spacing_um[0])

        def planes_at(offsets, wvl=wvl):
            return widefield_planes(microscope, offsets, size, dxy, wavelength_um=wvl, oversample=oversample)

        blurred = convolve_planes(od.astype(np.float32), z_in, z, planes_at, size)
        transmitted.append(_bin(10.0 ** (-np.clip(blurred, 0, None)), k) / (k * k))
        truth.append(_truth_at(od / sample.spacing_um[0], z_in, z, k))
    clean_fraction = np.stack(transmitted)
    exposure = expose(clean_fraction / clean_fraction.max(), camera, rng)
    step = float(np.median(np.diff(z))) if z.size > 1 else microscope.z_step_um
    return Acquisition(
        noisy=exposure.adu, clean=exposure.photons_expected, truth=_per_output_pixel(np.stack(truth), camera),
        axes="CZYX", spacing_um=_spacing(step, microscope, camera), z_um=z, microscope=microscope, camera=camera,
        channel_names=["R", "G", "B"],
    )


def acquire(sample: Sample, microscope: Microscope, z_um, **kwargs) -> Acquisition:
    """A stack of the microscope's modality: fluorescence (wide-field/confocal) or bright-field RGB."""
    if microscope.modality == "brightfield":
        return brightfield_stack(sample, microscope, z_um, **kwargs)
    return fluorescence_stack(sample, microscope, z_um, **kwargs)
