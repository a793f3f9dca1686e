"""Physics of the PSF models against theory: resolution, energy, sectioning, asymmetry."""

import numpy as np
import pytest

from widefield3d.analysis.resolution import axial_asymmetry, fwhm_1d
from widefield3d.errors import InputError
from widefield3d.optics.microscope import PRESETS, Microscope, preset
from widefield3d.optics.psf import confocal_psf, focal_shift, widefield_planes, widefield_psf

AIR_075 = Microscope(na=0.75, immersion_index=1.0, sample_index=1.33, depth_um=0.0, emission_wavelength_um=0.52)
OIL_14 = Microscope(na=1.4, immersion_index=1.515, sample_index=1.515, working_distance_um=150, depth_um=0.0,
                    emission_wavelength_um=0.52, magnification=63)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEFIELD3D_CACHE", str(tmp_path / "cache"))


def lateral_fwhm(m: Microscope) -> float:
    plane = widefield_planes(m, [0.0], 151, 0.01)[0]
    return fwhm_1d(plane[75], 0.01)


def test_lateral_fwhm_air_075_within_10_percent_of_theory():
    ratio = lateral_fwhm(AIR_075) / (0.51 * 0.52 / 0.75)
    assert 0.9 <= ratio <= 1.1, ratio


def test_lateral_fwhm_oil_14_is_widened_by_vectorial_effects():
    ratio = lateral_fwhm(OIL_14) / (0.51 * 0.52 / 1.4)
    assert 1.0 <= ratio <= 1.15, ratio


def test_widefield_energy_is_constant_through_focus():
    """A thin sheet images to the sum of a PSF plane: constant through focus in wide-field."""
    psf = widefield_psf(AIR_075, (21, 301, 301), (0.5, 0.1, 0.1))
    per_plane = psf.sum(axis=(1, 2))
    assert per_plane.max() / per_plane.min() - 1 < 0.02, per_plane


def test_confocal_sheet_intensity_falls_within_three_axial_fwhm():
    m = OIL_14.with_(modality="confocal", pinhole_au=1.0, excitation_wavelength_um=0.488)
    psf = confocal_psf(m, (61, 201, 201), (0.05, 0.03, 0.03))
    fwhm_z = fwhm_1d(psf[:, 100, 100], 0.05)
    per_plane = psf.sum(axis=(1, 2)) / psf.sum(axis=(1, 2)).max()
    beyond = np.abs(np.arange(61) - 30) * 0.05 >= 3 * fwhm_z
    assert 0.3 < fwhm_z < 1.0, fwhm_z  # NA 1.4 confocal: ~0.5-0.7 µm
    assert beyond.any() and per_plane[beyond].max() < 0.2, per_plane


def test_index_mismatch_makes_psf_asymmetric_about_focus():
    """Asymmetry A (analysis.resolution.axial_asymmetry) is 0 at the coverslip and grows with depth."""
    deep = preset("deepz-20x075")  # air objective into water, 20 µm deep
    spacing = (0.25, 0.1625, 0.1625)
    a = [axial_asymmetry(widefield_psf(deep.with_(depth_um=d), (81, 65, 65), spacing), spacing) for d in (0, 10, 20)]
    assert a[0] < 0.005, a
    assert a[1] > 0.03 and a[2] > 0.07, a
    assert a[0] < a[1] < a[2], a


def test_focal_shift_has_no_scale_without_mismatch():
    z0, scale = focal_shift(OIL_14)
    assert abs(z0) < 0.05 and abs(scale - 1.0) < 0.02, (z0, scale)


def test_psf_is_cached_on_disk(tmp_path):
    first = widefield_psf(AIR_075, (5, 31, 31), (0.5, 0.1, 0.1))
    cached = list((tmp_path / "cache" / "psf").glob("*.npy"))
    assert len(cached) == 1
    np.testing.assert_array_equal(first, widefield_psf(AIR_075, (5, 31, 31), (0.5, 0.1, 0.1)))


def test_presets_match_the_papers():
    assert preset("deepz-20x075").pixel_um == pytest.approx(0.325)
    assert preset("mfpi-cytology-20x075").pixel_um == pytest.approx(0.243)
    assert preset("mfpi-cytology-20x075").z_step_um == pytest.approx(2.7)
    assert preset("wfcon-60x14").pixel_um == pytest.approx(0.1083, abs=1e-4)
    assert preset("deepzplus-63x14").na == 1.4
    assert set(PRESETS) >= {"deepz-20x075", "deepzplus-63x14", "mfpi-cytology-20x075", "wfcon-60x14"}


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: widefield_psf(AIR_075, (4, 31, 31), (0.5, 0.1, 0.1)), "odd"),
        (lambda: widefield_psf(AIR_075, (5, 31, 31), (0.5, -0.1, -0.1)), "positive"),
        (lambda: widefield_planes(AIR_075, [np.nan], 31, 0.1), "finite"),
        (lambda: preset("nope"), "unknown microscope preset"),
        (lambda: AIR_075.with_(na=1.2), "immersion"),
    ],
)
def test_bad_optics_input_is_one_clear_error(call, words):
    with pytest.raises(InputError, match=words):
        call()
