"""napari sample data made by the simulator (no downloads): each function returns napari layer data tuples of a
small simulated field, the measurement first and its ground truth beside it, with the physical scale in µm.

The fields are the demo's (:mod:`widefield3d.demo`), shrunk so that each takes a few seconds on a CPU.
"""

from __future__ import annotations

import numpy as np

from widefield3d import io
from widefield3d.napari.layers import LayerDataTuple, image_to_layer

SEED = 0


def worm() -> list[LayerDataTuple]:
    """A C. elegans-like worm under the Deep-Z 20x/0.75 microscope: one wide-field plane at the worm's middle
    (Deep-Z's input) and the mechanically scanned stack around it (-5 to +5 µm, 0.5 µm steps), 96 x 96 px."""
    from widefield3d.optics.microscope import preset
    from widefield3d.sim.acquisition import fluorescence_plane, fluorescence_stack
    from widefield3d.sim.camera import Camera
    from widefield3d.sim.samples import make_sample

    m, oversample, field_px = preset("deepz-20x075"), 2, 96
    fine = (0.5, m.pixel_um / oversample, m.pixel_um / oversample)
    sample = make_sample("worm", (40, field_px * oversample, field_px * oversample), fine, seed=SEED)
    centre = sample.density.shape[0] * fine[0] / 2
    camera = Camera(photons=2000.0)
    z = np.arange(-5.0, 5.0 + 0.25, 0.5)
    plane = fluorescence_plane(sample, m, centre, camera=camera, seed=SEED + 1).as_image("noisy")
    stack = fluorescence_stack(sample, m, centre + z, camera=camera, seed=SEED, progress=False).as_image("noisy")
    return [image_to_layer(stack, "worm scanned stack", origin_um=(float(z[0]), 0.0, 0.0), visible=False),
            image_to_layer(plane, "worm plane")]


def cytology() -> list[LayerDataTuple]:
    """An H&E cytology field under the MFPINet 20x/0.75 bright-field microscope: the low-resolution RGB input
    (the middle plane down-sampled x2 and blurred, as MFPINet's paper makes it) and the scanned 11-plane RGB focal
    stack at full resolution (its ground truth), 64 x 64 camera px."""
    from widefield3d.methods.mfpi import SCALE, degrade
    from widefield3d.sim.dataset import dataset_preset, simulate_field

    p = dataset_preset("mfpi-cytology-20x075").model_copy(update={"field_px": 64})
    field = simulate_field(p, 0, SEED)["brightfield"]
    stack = field.as_image("noisy")  # CZYX uint8
    planes = stack.data.shape[1]
    low = degrade(stack.data[:, planes // 2])
    dz, dy, dx = stack.spacing_zyx
    lowres = io.Image(np.clip(np.rint(low), 0, 255).astype(np.uint8), "CYX", (1.0, dy * SCALE, dx * SCALE),
                      stack.channel_names)
    return [image_to_layer(stack, "cytology scanned stack", origin_um=(-(planes // 2) * dz, 0.0, 0.0),
                           visible=False),
            image_to_layer(lowres, "cytology low-res input")]


def tissue() -> list[LayerDataTuple]:
    """Thick scattering tissue under the WFCON-Net 60x/1.4 oil microscope: the wide-field z-stack (24 planes,
    0.5 µm apart, 64 x 64 px) and the confocal stack of the same field (its ground truth)."""
    from widefield3d.sim.dataset import dataset_preset, simulate_field

    p = dataset_preset("wfcon-60x14-tissue").model_copy(
        update={"field_px": 64, "sample_depth_um": 20.0, "z_range_um": (-6.0, 5.5)})
    acqs = simulate_field(p, 0, SEED)
    return [image_to_layer(acqs["confocal"].as_image("noisy"), "tissue confocal stack", visible=False),
            image_to_layer(acqs["widefield"].as_image("noisy"), "tissue wide-field stack")]


def brightfield() -> list[LayerDataTuple]:
    """A cell-like transmittance volume (11 layers of 32 x 32 voxels, 0.92 µm, 1 µm apart) imaged with the
    bright-field ray model (NA 0.75, noise sigma 0.005): the focal stack (1 = nothing absorbed) and the volume
    (its ground truth)."""
    from widefield3d.optics.brightfield import brightfield_stack
    from widefield3d.sim.samples.transmittance import cell_volume

    spacing = (1.0, 0.92, 0.92)
    truth = cell_volume((11, 32, 32), SEED)
    clean = brightfield_stack(truth, na=0.75, xy_res_um=spacing[1], z_res_um=spacing[0], aperture_samples=25)
    noisy = clean + np.random.default_rng(SEED).normal(0, 0.005, clean.shape).astype(np.float32)
    return [image_to_layer(io.Image(truth, "ZYX", spacing), "cell transmittance (truth)", visible=False),
            image_to_layer(io.Image(noisy, "ZYX", spacing), "cell bright-field focal stack")]
