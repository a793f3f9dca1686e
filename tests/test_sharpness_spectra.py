"""Patch gradient sharpness (WFCON-Net Fig. 5b) and Fourier coverage (Fig. 6-7) on inputs with known answers."""

import numpy as np
import pytest

from widefield3d.analysis.sharpness import patch_sharpness, sharpness_per_depth
from widefield3d.analysis.spectra import amplitude_spectrum, fourier_coverage
from widefield3d.errors import InputError


def test_patch_sharpness_of_ramps_and_checkerboards():
    x = np.arange(64, dtype=float)
    ramp = np.tile(3.0 * x, (64, 1))  # |dI/dx| = 3, |dI/dy| = 0
    s = patch_sharpness(ramp, 32)
    assert s.shape == (2, 2)
    np.testing.assert_allclose(s[:, 0], 3.0)  # every column has a right-hand neighbour
    np.testing.assert_allclose(s[:, 1], 3.0 * 31 / 32)  # the image's last column has none
    checker = np.indices((32, 32)).sum(0) % 2 * 5.0  # |dI/dx| = |dI/dy| = 5 except at the last row/column
    assert patch_sharpness(checker, 32)[0, 0] == pytest.approx(5 * 2 * 31 / 32)


def test_sharpness_per_depth_signal_is_max_background_is_min():
    stack = np.zeros((3, 64, 96))
    for z, amp in enumerate((1.0, 2.0, 4.0)):
        stack[z, :32, :32] = np.indices((32, 32)).sum(0) % 2 * amp  # one textured patch per plane
        stack[z, 32:, 32:] = 7.0  # constant patches: zero gradient
    signal, background = sharpness_per_depth(stack, 32)
    # textured patch: 31 of 32 differences per row and column are amp; at its border (next to zeros) half are
    np.testing.assert_allclose(signal, np.array([1.0, 2.0, 4.0]) * 2 * (31 * 32 + 16) / 1024)
    np.testing.assert_allclose(background, 0.0)
    with pytest.raises(InputError, match="smaller than one"):
        patch_sharpness(np.zeros((16, 16)), 32)
    with pytest.raises(InputError, match="3D"):
        sharpness_per_depth(np.zeros((64, 64)))


def _gaussian(shape, spacing, sigma_z, sigma_r):
    z, y, x = (np.arange(n) * d for n, d in zip(shape, spacing))
    cz, cy, cx = (n * d / 2 for n, d in zip(shape, spacing))
    return np.exp(-((z[:, None, None] - cz) ** 2 / (2 * sigma_z**2)
                    + ((y[None, :, None] - cy) ** 2 + (x[None, None, :] - cx) ** 2) / (2 * sigma_r**2)))


@pytest.mark.parametrize("threshold", [0.05, 0.2])
def test_fourier_coverage_of_a_gaussian_matches_theory(threshold):
    spacing = (0.5, 0.1, 0.1)
    sigma_z, sigma_r = 1.0, 0.3
    cov = fourier_coverage(_gaussian((32, 128, 128), spacing, sigma_z, sigma_r), spacing, threshold)
    # |FT| of a Gaussian of width sigma is exp(-2 pi^2 sigma^2 k^2): it falls to t at k = sqrt(ln(1/t) / 2) / (pi sigma)
    expect_r = np.sqrt(np.log(1 / threshold) / 2) / (np.pi * sigma_r)
    expect_z = np.sqrt(np.log(1 / threshold) / 2) / (np.pi * sigma_z)
    assert abs(cov.lateral_extent - expect_r) <= cov.k_lateral[1]  # within one frequency bin
    assert abs(cov.axial_extent - expect_z) <= cov.k_axial[1]
    assert cov.k_lateral[-1] == pytest.approx(5.0)  # lateral Nyquist 1 / (2 * 0.1 µm)


def test_sharper_stacks_cover_more_frequencies_and_axes_are_right():
    spacing = (0.5, 0.1, 0.1)
    narrow = fourier_coverage(_gaussian((32, 64, 64), spacing, 1.0, 0.2), spacing)
    wide = fourier_coverage(_gaussian((32, 64, 64), spacing, 2.0, 0.4), spacing)
    assert narrow.lateral_extent > 1.8 * wide.lateral_extent and narrow.axial_extent > 1.5 * wide.axial_extent
    # white noise lifts every frequency by the same floor, which is removed before thresholding
    noisy = _gaussian((32, 64, 64), spacing, 1.0, 0.2) + np.random.default_rng(1).normal(0, 0.02, (32, 64, 64))
    cov = fourier_coverage(noisy, spacing)
    assert abs(cov.lateral_extent - narrow.lateral_extent) <= 2 * cov.k_lateral[1] < cov.k_lateral[-1] / 4
    amp, (kz, ky, kx) = amplitude_spectrum(np.random.default_rng(0).random((8, 16, 32)), spacing)
    assert amp.shape == (8, 16, 32) and kz[4] == 0 and kx[-1] == pytest.approx(15 / (32 * 0.1))
    with pytest.raises(InputError, match="spacing_um"):
        amplitude_spectrum(np.ones((4, 4, 4)), (0.5, 0.1))
    with pytest.raises(InputError, match="threshold"):
        fourier_coverage(np.ones((4, 4, 4)), spacing, 1.5)
