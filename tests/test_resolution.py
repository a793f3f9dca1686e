import numpy as np
import pytest

from widefield3d.analysis.resolution import (
    FWHM_PER_SIGMA,
    axial_asymmetry,
    axial_centroid_shift,
    bead_fwhm,
    fwhm_1d,
    gaussian_fit_fwhm,
    psf_fwhm,
)
from widefield3d.errors import InputError


def gaussian_3d(shape, centre, sigma_vox):
    grids = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    return np.exp(-sum((g - c) ** 2 / (2 * s**2) for g, c, s in zip(grids, centre, sigma_vox)))


def test_fwhm_constant_matches_theory():
    assert FWHM_PER_SIGMA == pytest.approx(2.35482, abs=1e-5)


def test_fwhm_1d_triangle_exact():
    assert fwhm_1d([0, 1, 2, 3, 2, 1, 0], spacing=0.5) == pytest.approx(1.5)


@pytest.mark.parametrize("offset", [0.0, 0.3, 0.5])
def test_fwhm_1d_coarse_gaussian_within_1_percent(offset):
    sigma = 2.5  # samples: FWHM about 5.9 samples
    x = np.arange(31)
    profile = np.exp(-((x - 15 - offset) ** 2) / (2 * sigma**2))
    expected = FWHM_PER_SIGMA * sigma * 0.2
    assert fwhm_1d(profile, spacing=0.2) == pytest.approx(expected, rel=0.01)


def test_fwhm_1d_baseline():
    x = np.arange(41)
    profile = 10.0 + np.exp(-((x - 20) ** 2) / (2 * 3.0**2))
    assert fwhm_1d(profile, baseline="min") == pytest.approx(FWHM_PER_SIGMA * 3.0, rel=0.01)
    assert fwhm_1d(profile, baseline=10.0) == pytest.approx(FWHM_PER_SIGMA * 3.0, rel=0.01)
    with pytest.raises(InputError, match="left of the peak"):
        fwhm_1d(profile)  # with baseline 0 the profile never falls to half maximum


def test_gaussian_fit_at_one_sample_per_sigma():
    x = np.arange(15)
    profile = 5.0 * np.exp(-((x - 7.4) ** 2) / 2.0) + 1.0
    assert gaussian_fit_fwhm(profile, spacing=0.1) == pytest.approx(FWHM_PER_SIGMA * 0.1, rel=0.01)
    # linear interpolation is biased at this sampling; the fit is not
    assert abs(fwhm_1d(profile, 0.1, baseline="min") / (FWHM_PER_SIGMA * 0.1) - 1) > 0.02


def test_gaussian_fit_noisy():
    rng = np.random.default_rng(0)
    x = np.arange(41)
    profile = 100 * np.exp(-((x - 19.6) ** 2) / (2 * 3.0**2)) + 5 + rng.normal(0, 3, x.size)
    assert gaussian_fit_fwhm(profile) == pytest.approx(FWHM_PER_SIGMA * 3.0, rel=0.05)


@pytest.mark.parametrize(
    ("profile", "needle"),
    [
        ([1, 2, 3, 2, 1.6], "right of the peak"),
        (np.zeros(7), "does not rise above the baseline"),
        ([[0, 1, 0]], "profile: must be 1D"),
        ([0, 1], "at least 3 samples"),
    ],
)
def test_fwhm_1d_errors(profile, needle):
    with pytest.raises(InputError, match=needle):
        fwhm_1d(profile)


def test_psf_fwhm_anisotropic():
    spacing = (0.3, 0.1, 0.08)
    sigma_vox = (3.0, 2.0, 2.5)
    psf = gaussian_3d((33, 31, 35), (16.3, 15.6, 17.2), sigma_vox)
    expected = [FWHM_PER_SIGMA * s * d for s, d in zip(sigma_vox, spacing)]
    fz, fy, fx = psf_fwhm(psf, spacing)
    assert (fz, fy, fx) == pytest.approx(expected, rel=0.01)
    assert fz > 4 * fy  # the axial width is the long one
    assert psf_fwhm(psf[16], spacing[1:]) == pytest.approx(expected[1:], rel=0.01)
    with pytest.raises(InputError, match="spacing_um: needs 3 values"):
        psf_fwhm(psf, (0.1, 0.1))


def test_bead_fwhm_three_beads():
    rng = np.random.default_rng(1)
    spacing = (0.25, 0.1, 0.1)
    sigma_vox = (2.5, 1.5, 1.5)
    centres = [(10, 15, 20), (20, 45, 40), (30, 20, 50)]
    stack = sum(a * gaussian_3d((40, 64, 64), c, sigma_vox) for a, c in zip((1.0, 0.8, 0.6), centres))
    stack = stack + rng.normal(0, 0.01, stack.shape)
    rows = bead_fwhm(stack, spacing, window_um=(4.0, 1.6, 1.6))
    assert len(rows) == 3
    assert sorted((r["z"], r["y"], r["x"]) for r in rows) == centres
    fwhm_z, fwhm_xy = FWHM_PER_SIGMA * 2.5 * 0.25, FWHM_PER_SIGMA * 1.5 * 0.1
    for r in rows:
        assert r["fwhm_z_um"] == pytest.approx(fwhm_z, rel=0.05)
        assert r["fwhm_y_um"] == pytest.approx(fwhm_xy, rel=0.05)
        assert r["fwhm_lateral_um"] == pytest.approx(fwhm_xy, rel=0.05)
    given = bead_fwhm(stack, spacing, window_um=(4.0, 1.6, 1.6), centres=centres[:1], fit="linear")
    assert len(given) == 1 and given[0]["fwhm_x_um"] == pytest.approx(fwhm_xy, rel=0.05)
    with pytest.raises(InputError, match="centres: a centre lies outside"):
        bead_fwhm(stack, spacing, window_um=2.0, centres=[(40, 0, 0)])


def skewed_psf(sigma_below, sigma_above, z0=20.0, nz=41):
    """Axial two-sided Gaussian (width sigma_below towards the objective) times a lateral Gaussian."""
    z = np.arange(nz, dtype=float)
    axial = np.exp(-((z - z0) ** 2) / (2 * np.where(z < z0, sigma_below, sigma_above) ** 2))
    lateral = gaussian_3d((1, 9, 9), (0, 4, 4), (1, 1.5, 1.5))
    return axial[:, None, None] * lateral


def test_axial_asymmetry_symmetric_is_zero():
    psf = skewed_psf(3.0, 3.0)
    assert axial_asymmetry(psf, (0.2, 0.1, 0.1)) < 1e-6
    assert abs(axial_centroid_shift(psf, (0.2, 0.1, 0.1))) < 1e-6


def test_axial_asymmetry_skewed():
    spacing = (0.2, 0.1, 0.1)
    deep_tail = skewed_psf(1.5, 5.0)
    a = axial_asymmetry(deep_tail, spacing)
    assert 0.2 < a < 1.0
    shift = axial_centroid_shift(deep_tail, spacing)
    assert shift > 0.2  # µm, light spread to larger z
    flipped = deep_tail[::-1]
    assert axial_asymmetry(flipped, spacing) == pytest.approx(a)
    assert axial_centroid_shift(flipped, spacing) == pytest.approx(-shift)
    # a wider window takes in more of the long tail
    assert axial_asymmetry(deep_tail, spacing, window_um=3.0) > axial_asymmetry(deep_tail, spacing, window_um=1.0)


def test_axial_asymmetry_peak_at_edge():
    with pytest.raises(InputError, match="too close to the first or last plane"):
        axial_asymmetry(skewed_psf(2.0, 2.0, z0=0.0), (0.2, 0.1, 0.1), window_um=2.0)
