"""Lateral and axial Fourier coverage of a 3D stack (WFCON-Net paper, Fig. 6-7: "enhancement of the Fourier
coverage").

The stack's mean is removed, a separable Hann window suppresses the edge discontinuities, and the amplitude of
its 3D Fourier transform is averaged over shells: the *lateral profile* ``A(k_r)`` averages over all ``k_z`` and
over the annulus of lateral frequency ``k_r = sqrt(k_x^2 + k_y^2)``; the *axial profile* ``A(|k_z|)`` averages
over all lateral frequencies. Each profile is rescaled so that its minimum (the flat floor that camera noise
sets, which would otherwise cover every frequency) is 0 and its maximum over the non-zero frequencies is 1;
the *extent* is the highest frequency (cycles/µm) at which the rescaled profile still reaches ``threshold``,
the 1D summary of the spectrum's isosurface that the paper plots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from widefield3d.analysis.metrics import as_finite_array
from widefield3d.errors import InputError

__all__ = ["FourierCoverage", "amplitude_spectrum", "fourier_coverage"]


def amplitude_spectrum(stack, spacing_um) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Centred amplitude ``|FFT|`` of the mean-free, Hann-windowed ZYX stack and its frequency axes.

    Returns
    -------
    amplitude : numpy.ndarray
        ``(Z, Y, X)`` float64, zero frequency at index ``n // 2`` of every axis (``numpy.fft.fftshift``).
    (kz, ky, kx) : tuple of numpy.ndarray
        Frequencies of the axes in cycles/µm.
    """
    vol = as_finite_array("amplitude_spectrum: stack", stack, ndim=3)
    spacing = tuple(float(s) for s in spacing_um)
    if len(spacing) != 3 or not all(s > 0 for s in spacing):
        raise InputError(f"amplitude_spectrum: spacing_um={spacing_um!r} must be three positive lengths (dz, dy, dx)")
    vol = vol - vol.mean()
    for axis, n in enumerate(vol.shape):
        shape = [1, 1, 1]
        shape[axis] = n
        vol = vol * (np.hanning(n) if n > 2 else np.ones(n)).reshape(shape)
    amplitude = np.abs(np.fft.fftshift(np.fft.fftn(vol)))
    kz, ky, kx = (np.fft.fftshift(np.fft.fftfreq(n, d)) for n, d in zip(vol.shape, spacing))
    return amplitude, (kz, ky, kx)


@dataclass
class FourierCoverage:
    """Shell-averaged amplitude profiles (normalised to 1) and their extents at the threshold, in cycles/µm."""

    k_lateral: np.ndarray
    lateral_profile: np.ndarray
    k_axial: np.ndarray
    axial_profile: np.ndarray
    lateral_extent: float
    axial_extent: float
    threshold: float


def _above_floor(profile: np.ndarray) -> np.ndarray:
    """``(profile - min) / (max over k > 0 - min)``: 1 at the strongest non-zero frequency, 0 at the noise floor."""
    floor = profile.min()
    span = profile[1:].max() - floor if profile.size > 1 else 0.0
    return (profile - floor) / span if span > 0 else np.zeros_like(profile)


def _extent(k: np.ndarray, profile: np.ndarray, threshold: float) -> float:
    above = np.nonzero(profile >= threshold)[0]
    return float(k[above[-1]]) if above.size else 0.0


def fourier_coverage(stack, spacing_um, threshold: float = 0.05) -> FourierCoverage:
    """Lateral and axial Fourier coverage of a ZYX stack (see the module docstring).

    Parameters
    ----------
    stack : array_like
        ZYX stack, any real dtype.
    spacing_um : (dz, dy, dx)
        Voxel size in µm.
    threshold : float
        Fraction of the profile's maximum that defines the extent, in (0, 1).

    Returns
    -------
    FourierCoverage
        Profiles on lateral bins of width ``1 / (max(Y, X) * dx)`` up to the lateral Nyquist frequency and on the
        non-negative axial frequencies; extents in cycles/µm.
    """
    if not 0 < threshold < 1:
        raise InputError(f"fourier_coverage: threshold={threshold!r} must be in (0, 1)")
    amplitude, (kz, ky, kx) = amplitude_spectrum(stack, spacing_um)
    kr = np.hypot(ky[:, None], kx[None, :])
    step = max(ky[1] - ky[0] if ky.size > 1 else 0, kx[1] - kx[0] if kx.size > 1 else 0)
    if step == 0:
        raise InputError("fourier_coverage: the stack needs at least 2 pixels along Y or X")
    nyquist = min(np.abs(k).max() for k in (ky, kx) if k.size > 1)
    bins = np.rint(kr / step).astype(int)
    n_bins = int(np.floor(nyquist / step)) + 1
    lateral_amp = amplitude.mean(axis=0)
    sums = np.bincount(bins.ravel(), lateral_amp.ravel(), minlength=n_bins)[:n_bins]
    counts = np.bincount(bins.ravel(), minlength=n_bins)[:n_bins]
    lateral = sums / np.maximum(counts, 1)
    k_lat = np.arange(n_bins) * step
    z_amp = amplitude.mean(axis=(1, 2))
    centre = len(kz) // 2
    axial = 0.5 * (z_amp[centre:] + z_amp[centre - np.arange(len(kz) - centre)])  # average of +k_z and -k_z
    k_ax = np.abs(kz[centre:])
    lateral, axial = _above_floor(lateral), _above_floor(axial)
    return FourierCoverage(k_lat, lateral, k_ax, axial, _extent(k_lat[1:], lateral[1:], threshold),
                           _extent(k_ax[1:], axial[1:], threshold), threshold)
