"""Bead FWHM analysis (Deep-Z Fig. 1/4 method) on simulated beads against the PSF it was imaged with."""

import csv

import numpy as np
import pytest

from widefield3d.analysis.beads import COLUMNS, detect_beads, fit_gaussian_2d, fwhm_histograms, measure_beads, summarise
from widefield3d.analysis.resolution import FWHM_PER_SIGMA, psf_fwhm
from widefield3d.cli import main
from widefield3d.errors import InputError
from widefield3d.io import Image, write
from widefield3d.optics.microscope import preset
from widefield3d.optics.psf import widefield_psf
from widefield3d.sim.acquisition import fluorescence_stack
from widefield3d.sim.samples import make_sample

MICROSCOPE = preset("deepz-20x075")
PIXEL = MICROSCOPE.pixel_um
BEAD_DIAMETER_UM = 0.3
Z_UM = np.arange(0.0, 10.01, 0.5)  # the bead layer lies on the middle plane, +-5 µm around it


@pytest.fixture(scope="module")
def bead_layer():
    sample = make_sample("tilted-beads", (21, 256, 256), (0.5, PIXEL / 2, PIXEL / 2), seed=3, angle_deg=0.0,
                         z0_um=5.0, n_beads=25, min_separation_um=6.0, diameter_um=BEAD_DIAMETER_UM)
    return fluorescence_stack(sample, MICROSCOPE, Z_UM, seed=3)


def test_gaussian_fit_recovers_a_known_gaussian():
    u, v = np.indices((30, 30), dtype=float)
    patch = 50 * np.exp(-((u - 14.3) ** 2) / (2 * 1.6**2) - ((v - 15.8) ** 2) / (2 * 2.4**2)) + 7
    params, r2 = fit_gaussian_2d(patch + np.random.default_rng(0).normal(0, 0.5, patch.shape))
    assert params[1:5] == pytest.approx([14.3, 15.8, 1.6, 2.4], abs=0.03)
    assert params[5] == pytest.approx(7, abs=0.1) and r2 > 0.99


def test_detection_keeps_isolated_beads_only():
    image = np.zeros((100, 100))
    for y, x in [(20, 20), (20, 28), (70, 70), (50, 20)]:  # the first two are a pair 8 px apart
        image[y, x] = 100.0
    found = {tuple(p) for p in detect_beads(image, window_px=20, smooth_px=1.5, min_area_px=1, threshold=5.0)}
    assert found == {(70, 70), (50, 20)}
    edge = np.zeros((100, 100))
    edge[3, 50] = 100.0  # its window would leave the image
    assert len(detect_beads(edge, window_px=20, smooth_px=1.5, min_area_px=1)) == 0


def test_lateral_and_axial_fwhm_match_the_psf(bead_layer):
    rows = measure_beads(bead_layer.noisy, bead_layer.spacing_um)
    stats = summarise(rows)
    assert stats["n_beads"] >= 8
    assert set(rows[0]) == set(COLUMNS)
    # lateral: the PSF's FWHM widened by the camera pixel (box, variance p^2/12) and the bead (sphere, r^2/5)
    fine = widefield_psf(MICROSCOPE, (21, 129, 129), (0.5, PIXEL / 10, PIXEL / 10))
    fwhm_z, fwhm_y, _ = psf_fwhm(fine, (0.5, PIXEL / 10, PIXEL / 10))
    expected = np.sqrt(fwhm_y**2 + FWHM_PER_SIGMA**2 * (PIXEL**2 / 12 + (BEAD_DIAMETER_UM / 2) ** 2 / 5))
    assert stats["fwhm_lateral_median_um"] == pytest.approx(expected, rel=0.12)
    # axial: the same x-z Gaussian fit applied to the noise-free PSF integrated onto camera pixels over the same
    # +-5 µm, averaged over 5 x 5 sub-pixel bead positions (the slice through the nearest row depends on them)
    psf = widefield_psf(MICROSCOPE, (21, 155, 155), (0.5, PIXEL / 5, PIXEL / 5))
    widths = []
    for oy in range(5):
        for ox in range(5):
            camera = psf[:, oy : oy + 150, ox : ox + 150].reshape(21, 30, 5, 30, 5).sum(axis=(2, 4))
            row = np.unravel_index(np.argmax(camera), camera.shape)[1]
            widths.append(FWHM_PER_SIGMA * fit_gaussian_2d(camera[:, row, :])[0][3] * 0.5)
    assert stats["fwhm_axial_median_um"] == pytest.approx(np.mean(widths), rel=0.1)
    assert stats["fwhm_axial_median_um"] > 2.5 * stats["fwhm_lateral_median_um"]
    z = np.array([r["z_um"] for r in rows])
    assert np.median(np.abs(z - 5.0)) < 0.25  # the fitted axial centres lie on the bead layer


def test_defocused_beads_are_wider(bead_layer):
    focused = summarise(measure_beads(bead_layer.noisy[10], bead_layer.spacing_um[1:]))
    defocused = summarise(measure_beads(bead_layer.noisy[16], bead_layer.spacing_um[1:]))  # 3 µm off focus
    assert np.isnan(focused["fwhm_axial_median_um"])
    assert defocused["fwhm_lateral_median_um"] > 2 * focused["fwhm_lateral_median_um"]


def test_beads_command_writes_csv_and_figure(bead_layer, tmp_path):
    stack = tmp_path / "beads.ome.tif"
    write(stack, Image(bead_layer.noisy, axes="ZYX", spacing_um=bead_layer.spacing_um))
    out = tmp_path / "fwhm.csv"
    main(["beads", str(stack), "-o", str(out), "--figure", str(tmp_path / "fwhm.png")])
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 8 and 0.3 < float(rows[0]["fwhm_lateral_um"]) < 0.8
    assert (tmp_path / "fwhm.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beads.ome.tif", "fwhm.csv", "fwhm.png"]
    with pytest.raises(SystemExit) as exc:
        main(["beads", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "x.csv")])
    assert exc.value.code == 2


@pytest.mark.parametrize("tail", [False, True])
def test_fwhm_histograms_take_log_bins_for_a_long_tail(tail, tmp_path, monkeypatch):
    import matplotlib.axes

    scales = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xscale", lambda ax, value, **kw: scales.append(value))
    rng = np.random.default_rng(0)
    sharp = [{"fwhm_lateral_um": w, "fwhm_axial_um": np.nan} for w in rng.normal(0.5, 0.02, 200)]
    wide = [{"fwhm_lateral_um": w, "fwhm_axial_um": np.nan} for w in rng.uniform(0.5, 6.0 if tail else 0.7, 200)]
    fwhm_histograms({"a": sharp, "b": wide}, tmp_path / "h.png", title="t")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert scales == (["log"] if tail else [])
    with pytest.raises(InputError):
        fwhm_histograms({"a": [{"fwhm_lateral_um": np.nan, "fwhm_axial_um": np.nan}]}, tmp_path / "e.png")


def test_measure_beads_rejects_bad_input():
    with pytest.raises(InputError):
        measure_beads(np.zeros((4, 4, 4, 4)), (1, 1, 1))
    with pytest.raises(InputError):
        measure_beads(np.zeros((40, 40)), (0.3, -1))
