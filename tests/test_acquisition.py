"""Image formation against physics: energy through focus, sectioning, haze, surfaces, bright-field."""

import numpy as np
import pytest

from widefield3d.errors import InputError
from widefield3d.optics.microscope import Microscope, preset
from widefield3d.sim.acquisition import brightfield_stack, fluorescence_plane, fluorescence_stack, fluorescence_surface
from widefield3d.sim.camera import Camera
from widefield3d.sim.samples import Sample, make_sample

AIR = Microscope(na=0.75, magnification=20, immersion_index=1.0, sample_index=1.33, depth_um=0.0, z_step_um=0.5)
OIL = Microscope(na=1.4, magnification=63, immersion_index=1.515, sample_index=1.515, working_distance_um=150,
                 depth_um=0.0, z_step_um=0.2)
NOISELESS = Camera(photons=1e4, read_noise_e=0.0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEFIELD3D_CACHE", str(tmp_path / "cache"))


def sheet(shape, spacing, plane):
    density = np.zeros(shape, np.float32)
    density[plane] = 1.0
    return Sample(density, spacing, kind="sheet")


def test_widefield_sheet_is_constant_through_focus():
    spacing = (0.5, AIR.pixel_um / 2, AIR.pixel_um / 2)
    s = sheet((21, 200, 200), spacing, 10)
    z = 5.0 + np.arange(-4.0, 4.01, 1.0)
    acq = fluorescence_stack(s, AIR, z, camera=NOISELESS)
    centre = acq.clean[:, 40:60, 40:60].mean(axis=(1, 2))
    assert centre.max() / centre.min() - 1 < 0.02, centre
    assert acq.truth[4, 50, 50] == pytest.approx(1.0) and acq.truth[0, 50, 50] == 0


def test_confocal_rejects_out_of_focus_light():
    spacing = (0.1, OIL.pixel_um / 2, OIL.pixel_um / 2)
    s = sheet((31, 256, 256), spacing, 15)
    z = 1.5 + np.arange(-1.4, 1.41, 0.2)
    wf = fluorescence_stack(s, OIL, z, camera=NOISELESS).clean[:, 60:68, 60:68].mean(axis=(1, 2))
    confocal = OIL.with_(modality="confocal")
    cf = fluorescence_stack(s, confocal, z, camera=NOISELESS).clean[:, 60:68, 60:68].mean(axis=(1, 2))
    assert wf.min() / wf.max() > 0.95, wf
    assert cf[0] / cf.max() < 0.2 and cf[-1] / cf.max() < 0.2, cf


def test_scattering_adds_haze_in_widefield_that_confocal_rejects():
    m = preset("wfcon-60x14").with_(depth_um=0.0)
    spacing = (0.5, m.pixel_um / 2, m.pixel_um / 2)
    density = np.zeros((40, 192, 192), np.float32)
    density[20, 90:102, 90:102] = 1.0  # a bright patch 10 µm deep, focused on
    s = Sample(density, spacing, kind="patch")

    def background_over_peak(modality, ls):
        clean = fluorescence_stack(s, m.with_(modality=modality), [10.0], camera=NOISELESS,
                                   scattering_length_um=ls).clean[0]
        return clean[:8, :8].mean() / clean.max()

    clear, hazy = background_over_peak("widefield", None), background_over_peak("widefield", 10.0)
    confocal = background_over_peak("confocal", 10.0)
    assert hazy > 3 * clear, (clear, hazy)
    assert confocal < 0.2 * hazy, (confocal, hazy)


def test_flat_surface_equals_single_plane_and_tilt_changes_focus():
    spacing = (0.5, AIR.pixel_um / 2, AIR.pixel_um / 2)
    s = make_sample("beads", (20, 96, 96), spacing, seed=3)
    plane = fluorescence_plane(s, AIR, 5.0, camera=NOISELESS)
    flat = fluorescence_surface(s, AIR, np.full((48, 48), 5.0), camera=NOISELESS)
    np.testing.assert_allclose(flat.clean, plane.clean, rtol=1e-4, atol=1e-3 * plane.clean.max())
    tilted = fluorescence_surface(s, AIR, 5.0 + np.linspace(-3, 3, 48)[None, :].repeat(48, 0), camera=NOISELESS)
    assert np.abs(tilted.clean - plane.clean).max() > 0.05 * plane.clean.max()


def test_brightfield_rgb_stack_of_stained_cells():
    m = preset("mfpi-cytology-20x075")
    spacing = (0.9, m.pixel_um / 2, m.pixel_um / 2)
    s = make_sample("cytology", (30, 200, 200), spacing, seed=1)
    acq = brightfield_stack(s, m, [13.5 - 2.7, 13.5, 13.5 + 2.7], camera=NOISELESS)
    assert acq.axes == "CZYX" and acq.clean.shape == (3, 3, 100, 100)
    assert acq.channel_names == ["R", "G", "B"]
    frac = acq.clean / acq.clean.max()
    assert frac.min() < 0.9  # stains absorb
    # stained tissue absorbs green more than red (eosin/hematoxylin): transmitted G < R where absorbing
    absorbing = frac[0] < 0.95
    assert frac[1][absorbing].mean() < frac[0][absorbing].mean()


def test_noise_is_independent_of_ground_truth_and_clean():
    spacing = (0.5, AIR.pixel_um / 2, AIR.pixel_um / 2)
    s = make_sample("beads", (12, 64, 64), spacing, seed=0)
    a = fluorescence_stack(s, AIR, [3.0], seed=1)
    b = fluorescence_stack(s, AIR, [3.0], seed=2)
    np.testing.assert_array_equal(a.clean, b.clean)
    assert not np.array_equal(a.noisy, b.noisy)
    assert a.noisy.dtype == np.uint16


def test_acquisition_input_errors():
    s = make_sample("beads", (8, 64, 64), (0.5, 0.1, 0.1), seed=0)
    with pytest.raises(InputError, match="divided by an integer"):
        fluorescence_stack(s, AIR, [1.0])
    good = make_sample("beads", (8, 64, 64), (0.5, AIR.pixel_um / 2, AIR.pixel_um / 2), seed=0)
    with pytest.raises(InputError, match="finite"):
        fluorescence_stack(good, AIR, [np.nan])
    with pytest.raises(InputError, match="stained"):
        brightfield_stack(good, AIR, [1.0])


def test_binning_gives_low_resolution_images_with_matching_truth():
    spacing = (0.5, AIR.pixel_um / 2, AIR.pixel_um / 2)
    s = make_sample("beads", (12, 64, 64), spacing, seed=0)
    full = fluorescence_stack(s, AIR, [3.0], camera=NOISELESS)
    binned = fluorescence_stack(s, AIR, [3.0], camera=NOISELESS.model_copy(update={"binning": 2}))
    assert binned.noisy.shape == binned.truth.shape == (1, 16, 16)
    assert binned.spacing_um[2] == pytest.approx(2 * AIR.pixel_um)
    np.testing.assert_allclose(binned.truth, full.truth.reshape(1, 16, 2, 16, 2).mean(axis=(2, 4)), rtol=1e-5)


def test_lateral_drift_moves_frames_and_records_shifts():
    spacing = (0.5, AIR.pixel_um / 2, AIR.pixel_um / 2)
    s = make_sample("beads", (12, 64, 64), spacing, seed=0)
    still = fluorescence_stack(s, AIR, [2.0, 3.0, 4.0], camera=NOISELESS)
    drifting = fluorescence_stack(s, AIR, [2.0, 3.0, 4.0], camera=NOISELESS, drift_px=1.0, seed=4)
    assert drifting.drift_px.shape == (3, 2) and still.drift_px is None
    moved = np.abs(drifting.drift_px).max(axis=1) > 0.05
    for i in np.flatnonzero(moved):
        assert np.abs(drifting.clean[i] - still.clean[i]).max() > 0.01 * still.clean.max()
    np.testing.assert_array_equal(drifting.truth, still.truth)  # the ground truth does not drift
