"""Simulated training/evaluation datasets: many fields of view, each with its measurement and ground truth.

Layout of a dataset directory (OME-TIFF, physical spacing in the metadata)::

    dataset.json                 preset, seed, microscope, camera, one entry per field
    widefield/field_0000.ome.tif noisy camera counts (ZYX, uint16)      [fluorescence presets]
    widefield_clean/...          expected photons without noise (float32)
    confocal/, confocal_clean/   same fields seen by a confocal           [paired presets]
    brightfield/, brightfield_clean/  RGB focal planes (CZYX)            [bright-field presets]
    truth/field_0000.ome.tif     sample density on the camera grid at the same planes

Generation is resumable: fields whose files all exist are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.optics.microscope import Microscope, preset
from widefield3d.progress import progress_bar
from widefield3d.sim.acquisition import Acquisition, acquire
from widefield3d.sim.camera import Camera
from widefield3d.sim.samples import make_sample


class DatasetPreset(BaseModel):
    """How to simulate one kind of dataset (lengths in µm)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    microscope: str = Field(description="name of a microscope preset")
    kinds: tuple[str, ...] = Field(description="sample kinds, cycled over fields")
    modalities: tuple[str, ...] = ("widefield",)
    field_px: int = Field(256, ge=16, description="lateral size of a field in camera pixels")
    oversample: int = Field(2, ge=1, description="fine-grid pixels per camera pixel (lateral)")
    sample_depth_um: float = Field(30.0, gt=0, description="thickness of the simulated sample grid")
    sample_dz_um: float = Field(0.5, gt=0)
    z_range_um: tuple[float, float] = Field((-10.0, 10.0), description="stack range around the sample's middle")
    sample_options: dict = Field(default_factory=dict, description="keyword arguments of the sample generator")
    camera: Camera = Camera()
    scattering_length_um: float | None = Field(None, description="None: the sample's own (tissue carries one)")


DATASET_PRESETS: dict[str, DatasetPreset] = {
    "deepz-20x075": DatasetPreset(
        microscope="deepz-20x075", kinds=("worm", "beads"), sample_depth_um=30.0, sample_dz_um=0.5,
        z_range_um=(-10.0, 10.0), camera=Camera(photons=2000.0),
    ),
    "deepz-20x075-activity": DatasetPreset(
        microscope="deepz-20x075", kinds=("worm",), sample_depth_um=30.0, sample_dz_um=0.5,
        z_range_um=(-10.0, 10.0), camera=Camera(photons=2000.0),
        sample_options={"brightness_range": (0.3, 1.8), "autofluorescence": 0.02},
    ),
    "deepzplus-63x14": DatasetPreset(
        microscope="deepzplus-63x14", kinds=("filaments", "nuclei"), modalities=("widefield", "confocal"),
        sample_depth_um=8.0, sample_dz_um=0.2, z_range_um=(-3.0, 3.0), camera=Camera(photons=1500.0),
    ),
    "mfpi-cytology-20x075": DatasetPreset(
        microscope="mfpi-cytology-20x075", kinds=("cytology",), modalities=("brightfield",),
        sample_depth_um=36.0, sample_dz_um=0.9, z_range_um=(-13.5, 13.5), sample_options={"coverage": 0.9},
        camera=Camera(photons=5000.0, bit_depth=8, gain_e_per_adu=18.0, offset_adu=5.0, read_noise_e=3.0),
    ),
    "wfcon-60x14-tissue": DatasetPreset(
        microscope="wfcon-60x14", kinds=("tissue",), modalities=("widefield", "confocal"), field_px=256,
        sample_depth_um=44.0, sample_dz_um=0.5, z_range_um=(-20.0, 19.5), camera=Camera(photons=1000.0),
    ),
}
"""Named dataset presets. ``deepz-20x075-activity``: worm fields whose nuclei span the green channel of the
``worm-activity`` videos (baseline 0.3-0.6 times 1 + dF/F0 up to 3: brightness 0.3-1.8 over a 0.02 body glow),
for fine-tuning ``deepz-20x075`` towards calcium imaging (the ``deepz-20x075`` fields hold nuclei of 0.6-1)."""


def dataset_preset(name: str) -> DatasetPreset:
    """The dataset preset of that name (see ``DATASET_PRESETS``)."""
    try:
        return DATASET_PRESETS[name]
    except KeyError:
        raise InputError(f"unknown dataset preset {name!r}; choose one of: {', '.join(DATASET_PRESETS)}") from None


def stack_depths(p: DatasetPreset, microscope: Microscope) -> np.ndarray:
    """Focal depths (µm, in the sample grid's frame) of the stacks of a preset."""
    centre = p.sample_depth_um / 2
    lo, hi = p.z_range_um
    return centre + np.arange(lo, hi + microscope.z_step_um / 2, microscope.z_step_um)


def simulate_field(p: DatasetPreset, index: int, seed: int) -> dict[str, Acquisition]:
    """All modalities of one field of view; the same sample (ground truth) for every modality."""
    m = preset(p.microscope)
    shape = (int(round(p.sample_depth_um / p.sample_dz_um)), p.field_px * p.oversample, p.field_px * p.oversample)
    spacing = (p.sample_dz_um, m.pixel_um / p.oversample, m.pixel_um / p.oversample)
    sample = make_sample(p.kinds[index % len(p.kinds)], shape, spacing, seed=seed, **p.sample_options)
    z = stack_depths(p, m)
    out = {}
    for i, modality in enumerate(p.modalities):
        kwargs = dict(camera=p.camera, seed=seed * 7919 + i)
        if modality != "brightfield":
            kwargs["scattering_length_um"] = p.scattering_length_um
        out[modality] = acquire(sample, m.with_(modality=modality), z, **kwargs)
    return out


def simulate_dataset(name: str, out_dir, n: int, seed: int = 0, progress: bool = True) -> Path:
    """Write ``n`` simulated fields of the preset ``name`` into ``out_dir`` (see the module doc for the layout)."""
    p = dataset_preset(name)
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    fields = []
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task(f"simulating {name}", total=n)
        for i in range(n):
            field_seed = seed * 100003 + i
            stem = f"field_{i:04d}.ome.tif"
            folders = [*p.modalities, *(f"{mod}_clean" for mod in p.modalities), "truth"]
            files = {f: out / f / stem for f in folders}
            if not all(f.exists() for f in files.values()):
                acqs = simulate_field(p, i, field_seed)
                first = next(iter(acqs.values()))
                for mod, acq in acqs.items():
                    (out / mod).mkdir(parents=True, exist_ok=True)
                    (out / f"{mod}_clean").mkdir(parents=True, exist_ok=True)
                    io.write(files[mod], acq.as_image("noisy"))
                    io.write(files[f"{mod}_clean"], acq.as_image("clean"))
                (out / "truth").mkdir(parents=True, exist_ok=True)
                io.write(files["truth"], first.as_image("truth"))
            fields.append({"name": stem, "kind": p.kinds[i % len(p.kinds)], "seed": field_seed})
            bar.advance(task)
    manifest = {
        "preset": name, "seed": seed, "n": n, "definition": p.model_dump(),
        "microscope": preset(p.microscope).model_dump(), "z_um": stack_depths(p, preset(p.microscope)).tolist(),
        "fields": fields,
    }
    with io.atomic_output(out / "dataset.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return out
