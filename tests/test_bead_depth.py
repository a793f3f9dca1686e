"""Bead depth from one wide-field image by least-squares fit to a PSF library."""

import numpy as np
import pytest

from widefield3d.analysis.bead_depth import bead_depths, fit_bead_depth, psf_library
from widefield3d.errors import InputError
from widefield3d.optics.microscope import preset
from widefield3d.optics.psf import psf_planes
from widefield3d.sim.camera import fourier_shift

MICROSCOPE = preset("deepz-20x075")
WINDOW = 41
PHOTONS = 2000.0  # expected photons at the brightest pixel of an in-focus bead
BACKGROUND = 20.0  # photons per pixel


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("WIDEFIELD3D_CACHE", str(tmp_path_factory.mktemp("cache")))
    z = np.arange(-10.0, 10.001, 0.25)
    lib = psf_library(psf_planes(MICROSCOPE, -z, WINDOW + 20, MICROSCOPE.pixel_um), z, WINDOW)
    # beads off the library grid: planes at depths between the library's, focus-normalised like the library
    depths = np.array([-7.4, -3.1, -1.6, 1.35, 4.6, 8.1])
    beads = psf_planes(MICROSCOPE, np.concatenate([[0.0], -depths]), WINDOW + 20, MICROSCOPE.pixel_um)
    yield lib, depths, beads[1:] * (PHOTONS / beads[0].max())
    mp.undo()


def test_fit_recovers_the_depth_of_noisy_shifted_beads(library):
    lib, depths, beads = library
    rng = np.random.default_rng(1)
    half, c = WINDOW // 2, (WINDOW + 20) // 2
    for depth, bead in zip(depths, beads):
        shift = rng.uniform(-0.5, 0.5, 2)
        clean = np.clip(fourier_shift(bead, shift), 0, None)[c - half : c + half + 1, c - half : c + half + 1]
        noisy = rng.poisson(clean + BACKGROUND).astype(float)
        fit = fit_bead_depth(noisy, lib)
        assert abs(fit["z_um"] - depth) < 0.5, (depth, fit)
        assert fit["background"] == pytest.approx(BACKGROUND, abs=3)
        assert np.allclose(fit["shift_yx_px"], shift, atol=0.5)


def test_fit_tells_above_from_below_focus(library):
    lib, _, _ = library
    half, c = WINDOW // 2, (WINDOW + 20) // 2
    for depth in (-4.0, 4.0):
        k = int(np.argmin(np.abs(lib.z_um - depth)))
        plane = psf_planes(MICROSCOPE, [-depth], WINDOW + 20, MICROSCOPE.pixel_um)[0]
        window = plane[c - half : c + half + 1, c - half : c + half + 1] * 1e5 + 7
        assert fit_bead_depth(window, lib)["z_grid_um"] == lib.z_um[k]


def test_bead_depths_in_an_image_and_its_border(library):
    lib, depths, beads = library
    image = np.full((100, 140), BACKGROUND)
    c = (WINDOW + 20) // 2
    image[50 - c : 50 + c + 1, 40 - c : 40 + c + 1] += beads[1]
    image[50 - c : 50 + c + 1, 100 - c : 100 + c + 1] += beads[4]
    found = bead_depths(image, [(50, 40), (50, 100), (5, 70)], lib)
    assert found[:2] == pytest.approx(depths[[1, 4]], abs=0.2)
    assert np.isnan(found[2])  # its window leaves the image
    with pytest.raises(InputError, match="window"):
        fit_bead_depth(np.zeros((9, 9)), lib)


def test_library_checks_its_planes():
    with pytest.raises(InputError, match="planes"):
        psf_library(np.zeros((3, 41, 41)), [0, 1, 2], 41)  # no room for the shifts
    with pytest.raises(InputError, match="z_um"):
        psf_library(np.zeros((3, 45, 45)), [0, 2, 1], 41)
