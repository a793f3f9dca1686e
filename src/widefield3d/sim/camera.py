"""Camera model: photons -> photoelectrons -> ADU, with shot, dark and read noise, binning and saturation.

Units are kept apart by name:

* **photons**: expected photons reaching a pixel (the clean image scaled to the photon budget);
* **electrons**: photoelectrons plus dark electrons plus read noise, i.e. the charge the ADC sees (float, since read
  noise is continuous); Poisson statistics hold for detected photons, so on a flat field
  ``var(electrons) = mean(electrons) + read noise^2`` and, in incident-photon units, ``var = mean / QE``;
* **ADU**: the digital numbers the camera writes (unsigned integers, offset added, clipped at ``2**bit_depth - 1``).

The chain is ``electrons = Poisson(QE * photons + dark) + Normal(0, read_noise)`` and
``ADU = clip(round(electrons / gain + offset), 0, 2**bit_depth - 1)``; :func:`adu_to_photons` inverts its mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from widefield3d.errors import InputError


class Camera(BaseModel):
    """A scientific camera (defaults: a typical sCMOS). Invalid values raise pydantic's ``ValidationError``.

    Binning: a CMOS sensor bins digitally, after each pixel has been read, so the read noise of the ``b x b`` pixels
    adds (``b * read_noise_e`` rms per binned pixel); a CCD bins charge on chip before the single read-out (one
    ``read_noise_e``). Either way the offset is added once per output pixel, and ``photons`` refers to the brightest
    *sensor* pixel before binning.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    photons: float = Field(1000.0, gt=0, description="expected photons at the brightest pixel of the clean image")
    quantum_efficiency: float = Field(0.8, gt=0, le=1, description="photoelectrons per incident photon")
    read_noise_e: float = Field(1.5, ge=0, description="Gaussian read noise, electrons rms per read")
    gain_e_per_adu: float = Field(0.5, gt=0, description="electrons per ADU")
    offset_adu: float = Field(100.0, ge=0, description="digital offset (bias) added to every output pixel, ADU")
    bit_depth: int = Field(16, ge=1, le=32, description="ADC bits; output saturates at 2**bit_depth - 1")
    binning: int = Field(1, ge=1, le=64, description="binning factor b: b x b sensor pixels summed per output pixel")
    dark_current_e: float = Field(0.0, ge=0, description="mean dark electrons per sensor pixel per exposure")
    sensor: Literal["cmos", "ccd"] = Field("cmos", description="binning after (cmos) or before (ccd) the read-out")

    @property
    def max_adu(self) -> int:
        """The saturation value, ``2**bit_depth - 1``."""
        return 2**self.bit_depth - 1

    @property
    def adu_dtype(self) -> type[np.unsignedinteger]:
        """Smallest unsigned integer type holding ``bit_depth`` bits."""
        return np.uint8 if self.bit_depth <= 8 else np.uint16 if self.bit_depth <= 16 else np.uint32

    @property
    def binned_read_noise_e(self) -> float:
        """Read noise of one output pixel, electrons rms (``b * read_noise_e`` for CMOS binning)."""
        return self.read_noise_e * (self.binning if self.sensor == "cmos" else 1)


@dataclass(frozen=True)
class Exposure:
    """One simulated exposure: the clean expectation beside the noisy measurement, in named units.

    Attributes
    ----------
    photons_expected : ndarray of float32
        Expected incident photons per output (binned) pixel: the noise-free ground truth.
    electrons : ndarray of float32
        Electrons read per output pixel (shot noise, dark and read noise included, before quantisation).
    adu : ndarray of unsigned int
        The digital image (offset added, rounded, clipped at ``camera.max_adu``).
    camera : Camera
        The camera that took it.
    """

    photons_expected: np.ndarray
    electrons: np.ndarray
    adu: np.ndarray
    camera: Camera

    @property
    def photons_measured(self) -> np.ndarray:
        """The noisy image converted back to photons, :func:`adu_to_photons` of ``adu`` (float32)."""
        return adu_to_photons(self.adu, self.camera)


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(f"rng must be a numpy Generator or an integer seed, got {type(rng).__name__}")


def _image(image, name: str, min_ndim: int = 2) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim < min_ndim or arr.size == 0:
        raise InputError(f"{name} must be a non-empty array with at least {min_ndim} axes (…, Y, X), got shape "
                         f"{arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise InputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _factor(factor, name: str, image: np.ndarray) -> int:
    if not (isinstance(factor, (int, np.integer)) and not isinstance(factor, bool) and factor >= 1):
        raise InputError(f"{name} must be a positive integer, got {factor!r}")
    if factor > min(image.shape[-2:]):
        raise InputError(f"{name}={factor} exceeds the image size {image.shape[-2:]} (Y, X)")
    return int(factor)


def bin_pixels(image, factor: int) -> np.ndarray:
    """Sum ``factor x factor`` blocks over the last two axes (a remainder of rows/columns is cropped).

    Floating-point input keeps its dtype; integer input is summed in 64 bits (no overflow).
    """
    arr = _image(image, "image")
    f = _factor(factor, "factor", arr)
    ny, nx = arr.shape[-2] // f, arr.shape[-1] // f
    blocks = arr[..., : ny * f, : nx * f].reshape(*arr.shape[:-2], ny, f, nx, f)
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else None
    return blocks.sum(axis=(-3, -1), dtype=dtype)


def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (``a = -0.5``, as in MATLAB's ``imresize``)."""
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


def _bicubic_matrix(n_in: int, factor: int) -> np.ndarray:
    """``(n_in // factor, n_in)`` weights of an antialiased bicubic reduction by ``factor`` (symmetric borders)."""
    n_out = n_in // factor
    centre = (np.arange(n_out) + 0.5) * factor - 0.5  # output pixel centres in input coordinates
    taps = np.arange(-2 * factor, 2 * factor + 2)
    src = np.floor(centre)[:, None].astype(int) + taps[None, :]
    w = _cubic((centre[:, None] - src) / factor)
    w /= w.sum(axis=1, keepdims=True)
    src = np.abs(src)  # symmetric (half-sample) reflection at both borders
    src = np.where(src >= n_in, 2 * n_in - 1 - src, src)
    src = np.clip(src, 0, n_in - 1)
    mat = np.zeros((n_out, n_in))
    np.add.at(mat, (np.repeat(np.arange(n_out), len(taps)), src.ravel()), w.ravel())
    return mat


def downsample(image, factor: int, method: Literal["area", "bicubic"] = "area") -> np.ndarray:
    """Reduce the last two axes by an integer ``factor`` (a remainder is cropped); float32 out.

    ``"area"`` averages ``factor x factor`` blocks (a camera with ``factor`` times larger pixels, in intensity per
    pixel area); ``"bicubic"`` is the antialiased bicubic reduction of MATLAB's ``imresize`` (Keys kernel stretched
    by ``factor``), the usual way low-resolution inputs of super-resolution methods are made.
    """
    arr = _image(image, "image").astype(np.float32, copy=False)
    f = _factor(factor, "factor", arr)
    if method == "area":
        return (bin_pixels(arr, f) / np.float32(f * f)).astype(np.float32)
    if method == "bicubic":
        ny, nx = (arr.shape[-2] // f) * f, (arr.shape[-1] // f) * f
        wy = _bicubic_matrix(ny, f).astype(np.float32)
        wx = _bicubic_matrix(nx, f).astype(np.float32)
        return np.matmul(np.matmul(wy, arr[..., :ny, :nx]), wx.T)
    raise InputError(f"method must be 'area' or 'bicubic', got {method!r}")


def expose(clean, camera: Camera, rng, *, reference: float | None = None) -> Exposure:
    """Simulate one exposure of a clean (noise-free) image, in arbitrary linear units.

    Parameters
    ----------
    clean : array_like, (..., Y, X)
        Non-negative expected intensity in arbitrary linear units (a stack is exposed as a whole).
    camera : Camera
        Photon budget, noise, gain, offset, bit depth and binning.
    rng : numpy.random.Generator or int
        Random generator (or seed).
    reference : float, optional
        The clean value that maps to ``camera.photons`` expected photons; default ``clean.max()`` (1 for an all-zero
        dark frame, which then holds only offset, dark and read noise). Pass the same reference to expose several
        images (planes, frames) on one intensity scale.

    Returns
    -------
    Exposure
        ``photons_expected`` (clean photons per output pixel), ``electrons`` and ``adu`` (noisy), binned by
        ``camera.binning`` over the last two axes.
    """
    if not isinstance(camera, Camera):
        raise InputError(f"camera must be a Camera, got {type(camera).__name__}")
    arr = _image(clean, "clean").astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError("clean image holds NaN or infinite values")
    if reference is None:
        peak = float(arr.max())
        if not peak > 0:  # a dark frame: no signal, only offset, dark and read noise
            peak = 1.0
    else:
        if not (isinstance(reference, (int, float, np.number)) and np.isfinite(reference) and reference > 0):
            raise InputError(f"reference must be a positive number (the clean value mapped to camera.photons), "
                             f"got {reference!r}")
        peak = float(reference)
    if arr.min() < -1e-6 * peak:
        raise InputError(f"clean image must be non-negative, its minimum is {arr.min():.3g}")
    gen = _generator(rng)
    b = camera.binning
    photons = np.clip(arr, 0, None) * (camera.photons / peak)
    if b > 1:
        _factor(b, "camera.binning", photons)
    detected = gen.poisson(photons * camera.quantum_efficiency + camera.dark_current_e).astype(np.float64)
    if camera.sensor == "ccd":  # charge binning, one read per output pixel
        electrons = bin_pixels(detected, b) if b > 1 else detected
        electrons += gen.normal(0.0, camera.read_noise_e, electrons.shape) if camera.read_noise_e else 0.0
    else:  # every pixel read, then digital summation
        if camera.read_noise_e:
            detected += gen.normal(0.0, camera.read_noise_e, detected.shape)
        electrons = bin_pixels(detected, b) if b > 1 else detected
    adu = np.clip(np.rint(electrons / camera.gain_e_per_adu + camera.offset_adu), 0, camera.max_adu)
    expected = bin_pixels(photons, b) if b > 1 else photons
    return Exposure(expected.astype(np.float32), electrons.astype(np.float32), adu.astype(camera.adu_dtype), camera)


def adu_to_electrons(adu, camera: Camera) -> np.ndarray:
    """Electrons from ADU: ``(adu - offset) * gain`` (float32). Saturated pixels stay at the saturation value."""
    arr = _image(adu, "adu", min_ndim=0)
    return ((arr.astype(np.float64) - camera.offset_adu) * camera.gain_e_per_adu).astype(np.float32)


def adu_to_photons(adu, camera: Camera) -> np.ndarray:
    """Incident photons from ADU, inverting the mean of the camera chain (float32).

    ``(adu - offset) * gain``, minus the mean dark electrons of the binned pixel, divided by the quantum efficiency.
    Its expectation equals ``Exposure.photons_expected`` for unsaturated pixels.
    """
    dark = camera.dark_current_e * camera.binning**2
    return ((adu_to_electrons(adu, camera) - np.float32(dark)) / np.float32(camera.quantum_efficiency)).astype(
        np.float32)


def fourier_shift(image, shift_yx) -> np.ndarray:
    """Shift the last two axes by ``shift_yx = (dy, dx)`` pixels (sub-pixel, circular: content wraps around).

    Positive shifts move the content towards larger indices. Uses the Fourier shift theorem (exact for
    band-limited periodic images); float32 out.
    """
    arr = _image(image, "image").astype(np.float32, copy=False)
    dy, dx = (float(s) for s in shift_yx)
    ky = np.fft.fftfreq(arr.shape[-2])[:, None]
    kx = np.fft.rfftfreq(arr.shape[-1])[None, :]
    phase = np.exp(-2j * np.pi * (ky * dy + kx * dx))
    return np.fft.irfft2(np.fft.rfft2(arr) * phase, s=arr.shape[-2:]).astype(np.float32)


def lateral_drift(stack, sigma_px: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Apply a random-walk lateral drift between the frames of ``stack`` (first axis = frames / time).

    Frame 0 stays in place; each next frame moves by a Gaussian step of ``sigma_px`` pixels rms per axis from the
    previous one, and is shifted with :func:`fourier_shift` over its last two axes (so a ``(T, Z, Y, X)`` stack
    moves whole z-stacks per time point). Content shifted out of the field re-enters on the other side; simulate a
    larger field and crop when that matters.

    Returns
    -------
    shifted : ndarray of float32
        The drifted stack, same shape.
    shifts : ndarray of float64, (n, 2)
        ``(dy, dx)`` pixels by which each frame's content moved relative to frame 0 (positive: towards larger index).
    """
    arr = _image(stack, "stack", min_ndim=3)
    if not (isinstance(sigma_px, (int, float, np.number)) and np.isfinite(sigma_px) and sigma_px >= 0):
        raise InputError(f"sigma_px must be a non-negative number of pixels, got {sigma_px!r}")
    gen = _generator(rng)
    steps = gen.normal(0.0, float(sigma_px), (arr.shape[0], 2))
    steps[0] = 0.0
    shifts = np.cumsum(steps, axis=0)
    shifted = np.stack([fourier_shift(frame, s) for frame, s in zip(arr, shifts)])
    return shifted, shifts
