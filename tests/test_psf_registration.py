"""PSF-based registration (WFCON-Net): the Chambolle-Pock solver, shift recovery on simulated pairs, the CLI."""

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import run

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.optics.microscope import preset
from widefield3d.prep.psf_registration import (
    _Convolution,
    _grad,
    _grad_adjoint,
    apply_shift,
    estimate_psf,
    objective,
    register_psf,
    register_xcorr,
)
from widefield3d.sim.acquisition import fluorescence_stack
from widefield3d.sim.camera import Camera, fourier_shift
from widefield3d.sim.samples import make_sample

SPACING = (0.5, 0.108, 0.108)



def gaussian_kernel(shape, centre, sigma):
    grids = np.indices(shape, dtype=np.float64)
    k = np.exp(-sum((g - c) ** 2 / (2 * s**2) for g, c, s in zip(grids, centre, sigma)))
    return (k / k.sum()).astype(np.float32)


@pytest.fixture(scope="module")
def random_volume():
    rng = np.random.default_rng(0)
    return ndimage.gaussian_filter(rng.random((20, 48, 48)), (0.7, 1.0, 1.0)).astype(np.float32) ** 4


@pytest.fixture(scope="module")
def tissue_pair():
    """Clean wide-field and confocal stacks of one thick-tissue field (wfcon-60x14, 0.5 µm steps), with haze."""
    m = preset("wfcon-60x14")
    sample = make_sample("tissue", (28, 96, 96), (0.5, m.pixel_um, m.pixel_um), seed=3, cell_diameter_um=4.0)
    z = 0.5 * np.arange(28)
    cam = Camera(photons=1e6)
    wf = fluorescence_stack(sample, m, z, camera=cam, oversample=1).clean
    cf = fluorescence_stack(sample, m.with_(modality="confocal"), z, camera=cam, oversample=1).clean
    return wf, cf


def cut(wf, cf, shift_zyx, size=(18, 64, 64), origin=(5, 16, 16)):
    """Confocal sub-stack at ``origin`` and the wide-field sub-stack whose content is ``shift`` voxels further on.

    The wide-field crop starts ``-shift`` away, so moving the confocal crop by ``+shift`` aligns it.
    Fractional lateral parts are applied by a Fourier shift of the whole wide-field field first.
    """
    dz, dy, dx = shift_zyx
    fy, fx = dy - np.floor(dy), dx - np.floor(dx)
    if fy or fx:
        wf = fourier_shift(wf, (fy, fx))
    start = [o - int(d) for o, d in zip(origin, (dz, np.floor(dy), np.floor(dx)))]
    c = cf[tuple(slice(o, o + s) for o, s in zip(origin, size))]
    w = wf[tuple(slice(o, o + s) for o, s in zip(start, size))]
    return w, c


def test_operators_are_adjoint(random_volume):
    rng = np.random.default_rng(1)
    conv = _Convolution(random_volume, (5, 9, 7))
    f = rng.random((5, 9, 7)).astype(np.float32)
    r = rng.random(conv.forward(f).shape).astype(np.float32)
    assert np.vdot(conv.forward(f), r) == pytest.approx(np.vdot(f, conv.adjoint(r)), rel=1e-4)
    p = rng.random(_grad(f).shape)
    assert np.vdot(_grad(f), p) == pytest.approx(np.vdot(f, _grad_adjoint(p)), rel=1e-5)
    delta = np.zeros((5, 9, 7), np.float32)
    delta[3, 4, 3] = 1  # one plane further in z: the valid output is x moved by +1 plane
    np.testing.assert_allclose(conv.forward(delta), random_volume[1:-3, 4:-4, 3:-3], atol=1e-5)


def test_solver_decreases_objective_and_recovers_gaussian_centre(random_volume):
    centre = (4.0, 8.0, 6.0)  # kernel box (7, 15, 15): centre (3, 7, 7), so the peak sits at +1, +1, -1
    f_true = gaussian_kernel((7, 15, 15), centre, (1.0, 1.5, 1.5))
    y = ndimage.convolve(random_volume, f_true, mode="wrap")  # y = f * x (centred kernel)
    history = []
    f = estimate_psf(random_volume, y, psf_shape=(7, 15, 15), lam=1e-4, iterations=150, history=history,
                     highpass_px=None)
    assert history[-1] < 0.1 * history[0]
    assert all(b <= a * (1 + 1e-3) for a, b in zip(history[10::10], history[20::10]))  # decreasing (checkpoints)
    assert np.unravel_index(np.argmax(f), f.shape) == tuple(int(c) for c in centre)
    shift = register_psf(y, random_volume, spacing_um=SPACING, psf_shape=(7, 15, 15), lam=1e-4, iterations=150,
                         highpass_px=None)
    np.testing.assert_allclose(shift.px, (1, 1, -1), atol=0.15)
    np.testing.assert_allclose(shift.um, np.array(shift.px) * SPACING, rtol=1e-6)
    assert objective(f, random_volume, y, lam=1e-4, highpass_px=None) == pytest.approx(history[-1], rel=1e-3)


def test_energy_term_enforces_unit_sum(random_volume):
    y = 3.0 * random_volume  # wide-field brighter: scaled to the confocal's mean inside, then sum f ~ 1 fits
    f_weak = estimate_psf(random_volume, y, psf_shape=(5, 9, 9), mu=0.0, lam=1.0, iterations=100, tol=0,
                          highpass_px=3.0)
    f_strong = estimate_psf(random_volume, y, psf_shape=(5, 9, 9), mu=1e5, lam=1.0, iterations=100, tol=0,
                            highpass_px=3.0)
    assert abs(f_strong.sum() - 1) < 0.01
    assert abs(f_strong.sum() - 1) < abs(f_weak.sum() - 1)
    history = []
    estimate_psf(random_volume, y, psf_shape=(5, 9, 9), iterations=100, tol=0.05, history=history)
    assert 10 <= len(history) < 100  # the relative-change test stops early


@pytest.mark.parametrize("shift", [(0, 0, 0), (2, -3, 4), (-1, 2.5, -1.4)])
def test_register_psf_recovers_shifts_in_simulated_tissue(tissue_pair, shift):
    wf, cf = tissue_pair
    w, c = cut(wf, cf, shift)
    rng = np.random.default_rng(7)
    w = rng.poisson(w / w.max() * 1e5).astype(np.float32)  # photon noise, 1e5 photons at the brightest voxel
    c = rng.poisson(c / c.max() * 1e5).astype(np.float32)
    found = register_psf(w, c, spacing_um=SPACING, psf_shape=(9, 21, 21))
    error = np.abs(np.array(found.px) - shift)
    assert error[0] <= 0.5 and error[1:].max() <= 1.0  # half a z-step; one pixel (0.11 µm) laterally


def test_apply_shift_moves_content(random_volume):
    moved = apply_shift(random_volume, (1, -2, 3))
    np.testing.assert_allclose(moved[2:-2, 4:-4, 4:-4], np.roll(random_volume, (1, -2, 3), (0, 1, 2))[2:-2, 4:-4, 4:-4],
                               atol=1e-6)
    half = apply_shift(random_volume, (0, 0.5, 0))
    np.testing.assert_allclose(half[:, 2:-2], 0.5 * (random_volume[:, 1:-3] + random_volume[:, 2:-2]), atol=1e-6)


def test_xcorr_baselines(tissue_pair, random_volume):
    rolled = np.roll(random_volume, (2, -3, 4), axis=(0, 1, 2))  # periodic: plain cross-correlation is exact
    found = register_xcorr(rolled, random_volume, spacing_um=SPACING)
    np.testing.assert_allclose(found.px, (2, -3, 4), atol=0.05)
    assert found.psf is None
    w, c = cut(*tissue_pair, (2, -3, 4.5))  # noise-free wide-field vs confocal crops: phase correlation is exact
    np.testing.assert_allclose(register_xcorr(w, c, spacing_um=SPACING, phase=True).px, (2, -3, 4.5), atol=0.15)


def test_bad_inputs_raise_one_line_errors(random_volume):
    with pytest.raises(InputError, match="same shape"):
        register_psf(random_volume, random_volume[:-1], spacing_um=SPACING)
    with pytest.raises(InputError, match="odd"):
        estimate_psf(random_volume, random_volume, psf_shape=(4, 9, 9))
    with pytest.raises(InputError, match="smaller than the stack"):
        estimate_psf(random_volume, random_volume, psf_shape=(21, 9, 9))
    with pytest.raises(InputError, match="spacing_um"):
        register_xcorr(random_volume, random_volume, spacing_um=(0.5, 0.1))
    with pytest.raises(InputError, match="non-constant"):
        estimate_psf(np.zeros_like(random_volume), random_volume, psf_shape=(5, 9, 9))


def test_cli_round_trip_and_errors(tissue_pair, tmp_path, capsys):
    w, c = cut(*tissue_pair, (1, 2, -3))
    wf_path, cf_path = tmp_path / "wf.ome.tif", tmp_path / "cf.ome.tif"
    io.write(wf_path, io.Image(w, axes="ZYX", spacing_um=SPACING))
    io.write(cf_path, io.Image(c, axes="ZYX", spacing_um=SPACING))
    out = tmp_path / "shift.json"
    assert run(["register", wf_path, cf_path, "-o", out, "--psf-shape", "9,21,21",
                "--no-progress"]) == 0
    record = json.loads(out.read_text())
    assert record["method"] == "psf" and record["parameters"]["psf_shape"] == [9, 21, 21]
    px = [record["shift_px"][a] for a in "zyx"]
    error = np.abs(np.array(px) - (1, 2, -3))
    assert error[0] <= 0.5 and error[1:].max() <= 1.0, px
    assert record["shift_um"]["y"] == pytest.approx(px[1] * SPACING[1])

    out_x = tmp_path / "shift_xcorr.json"
    assert run(["register", wf_path, cf_path, "-o", out_x, "--method", "phase"]) == 0
    assert json.loads(out_x.read_text())["method"] == "phase"

    capsys.readouterr()
    other = tmp_path / "other.ome.tif"
    io.write(other, io.Image(c[:-2], axes="ZYX", spacing_um=SPACING))
    assert run(["register", wf_path, other, "-o", tmp_path / "bad.json"]) == 2
    io.write(other, io.Image(c, axes="ZYX", spacing_um=(1.0, 0.108, 0.108)))
    assert run(["register", wf_path, other, "-o", tmp_path / "bad.json"]) == 2
    assert run(["register", wf_path, tmp_path / "missing.tif", "-o", tmp_path / "bad.json"]) == 2
    assert run(["register", wf_path, cf_path, "-o", tmp_path / "bad.json", "--method", "ssim"]) == 2
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert "same shape" in err and "spacing" in err and "missing.tif" in err and "--method" in err
    assert not (tmp_path / "bad.json").exists()


def test_phase_correlation_of_a_single_plane(tissue_pair, tmp_path):
    """Z = 1: the Hann window spans Y and X only (it was all zeros along z, and the shift a false -0.70 px; issue
    14, item 8)."""
    w, c = cut(*tissue_pair, (0, -3, 4.5), size=(1, 64, 64), origin=(9, 16, 16))
    assert w.shape == c.shape == (1, 64, 64)
    np.testing.assert_allclose(register_xcorr(w, c, spacing_um=SPACING, phase=True).px, (0, -3, 4.5), atol=0.15)
    np.testing.assert_allclose(register_xcorr(c, c, spacing_um=SPACING, phase=True).px, 0, atol=0.05)
    wf, cf, out = tmp_path / "wf.ome.tif", tmp_path / "cf.ome.tif", tmp_path / "shift.json"
    io.write(wf, io.Image(w.astype(np.float32), "ZYX", SPACING))
    io.write(cf, io.Image(c.astype(np.float32), "ZYX", SPACING))
    assert run(["register", wf, cf, "-o", out, "--method", "phase"]) == 0
    shift = json.loads(out.read_text())["shift_px"]
    np.testing.assert_allclose([shift["z"], shift["y"], shift["x"]], (0, -3, 4.5), atol=0.15)
