"""The shipped learned models do their jobs on simulated data they never saw (quality regressions, not timings).

The full held-out measures live in ``benchmarks/`` (numbers in each model README); these are small, fast versions
of them that a model which does not work fails.
"""

import numpy as np

from widefield3d.analysis.refocus_measures import peak_depths
from widefield3d.methods import deepz
from widefield3d.optics.microscope import preset
from widefield3d.sim.acquisition import fluorescence_plane
from widefield3d.sim.dataset import dataset_preset
from widefield3d.sim.samples import make_sample


def test_shipped_deepz_finds_bead_depths_from_one_image():
    """14 beads on a plane tilted so that they lie -6 .. +6 µm from the focal plane, imaged once; the shipped
    Deep-Z model refocuses the image to -8 .. +8 µm and each bead's virtual stack must peak at its depth (issue
    target: median |error| <= 1 µm; a model that only denoises peaks at 0 for every bead: median ~3 µm)."""
    m, camera = preset("deepz-20x075"), dataset_preset("deepz-20x075").camera
    px, oversample = 96, 2
    fine = m.pixel_um / oversample
    angle = float(np.degrees(np.arctan(12.0 / (px * m.pixel_um))))  # 12 µm of depth across the field
    sample = make_sample("tilted-beads", (int(np.ceil(14.0 / m.z_step_um)) + 1, px * oversample, px * oversample),
                         (m.z_step_um, fine, fine), seed=3, angle_deg=angle, axis="y", n_beads=14,
                         min_separation_um=6.0)
    focus = float(sample.surface_um.mean())
    image = fluorescence_plane(sample, m, focus, camera=camera, seed=3).noisy.astype(np.float32)
    z = np.round(np.arange(-8.0, 8.0 + 1e-6, 0.5), 6)
    model = deepz.load("deepz-20x075")
    virtual = deepz.refocus(image, z, model=model, progress=False, denormalise=False).data
    true = sample.centres_um[:, 0] - focus
    found = peak_depths(virtual, z, sample.centres_um[:, 1:] / m.pixel_um)
    assert np.ptp(true) > 10
    assert np.median(np.abs(found - true)) <= 1.0
    assert np.corrcoef(found, true)[0, 1] > 0.9
    # through its depth calibration (fitted on other beads) the planes stay at the depths asked for; the shipped
    # model is nearly unbiased (144 held-out beads: 0.20 µm raw, 0.17 µm calibrated), so on these 14 beads the
    # calibration need not improve, but it must not move them off
    calibrated = deepz.refocus(image, z, model=model, progress=False, denormalise=False, calibrated=True).data
    found_calibrated = peak_depths(calibrated, z, sample.centres_um[:, 1:] / m.pixel_um)
    assert np.median(np.abs(found_calibrated - true)) <= 0.5
