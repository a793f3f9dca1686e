"""Measure the simulator's physics against theory (the numbers quoted in docs/simulator.md).

Usage: python benchmarks/physics_checks.py   -> prints a table, writes benchmarks/results/physics.json
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from widefield3d.analysis.resolution import axial_asymmetry, axial_centroid_shift, fwhm_1d
from widefield3d.optics.microscope import Microscope, preset
from widefield3d.optics.psf import confocal_psf, focal_shift, widefield_planes, widefield_psf
from widefield3d.sim.camera import Camera, adu_to_electrons, expose

AIR = Microscope(na=0.75, immersion_index=1.0, sample_index=1.33, depth_um=0.0, emission_wavelength_um=0.52)
OIL = Microscope(na=1.4, immersion_index=1.515, sample_index=1.515, working_distance_um=150, depth_um=0.0,
                 emission_wavelength_um=0.52, magnification=63)


def lateral_ratio(m: Microscope) -> float:
    plane = widefield_planes(m, [0.0], 151, 0.01)[0]
    return fwhm_1d(plane[75], 0.01) / (0.51 * m.emission_wavelength_um / m.na)


def main() -> None:
    rows = {}
    rows["lateral FWHM / (0.51 λ/NA), NA 0.75 air"] = lateral_ratio(AIR)
    rows["lateral FWHM / (0.51 λ/NA), NA 1.4 oil"] = lateral_ratio(OIL)
    wf = widefield_psf(AIR, (21, 301, 301), (0.5, 0.1, 0.1)).sum(axis=(1, 2))
    rows["wide-field energy max/min - 1 over ±5 µm (NA 0.75)"] = float(wf.max() / wf.min() - 1)
    conf = OIL.with_(modality="confocal")
    c = confocal_psf(conf, (61, 201, 201), (0.05, 0.03, 0.03))
    fz = fwhm_1d(c[:, 100, 100], 0.05)
    sheet = c.sum(axis=(1, 2)) / c.sum(axis=(1, 2)).max()
    rows["confocal axial FWHM (µm), NA 1.4, 1 AU"] = fz
    rows["confocal sheet intensity at 3 axial FWHM (fraction of peak)"] = float(
        np.interp(3 * fz, np.arange(31) * 0.05, sheet[30:]))
    deep = preset("deepz-20x075")
    spacing = (0.25, 0.1625, 0.1625)
    for d in (0.0, 10.0, 20.0, 40.0):
        p = widefield_psf(deep.with_(depth_um=d), (81, 65, 65), spacing)
        rows[f"axial asymmetry A, deepz-20x075 at {d:g} µm depth"] = axial_asymmetry(p, spacing)
        rows[f"axial centroid shift (µm), deepz-20x075 at {d:g} µm depth"] = axial_centroid_shift(p, spacing)
    for name in ("deepz-20x075", "wfcon-60x14"):
        rows[f"focal shift scale (sample µm per stage µm), {name}"] = focal_shift(preset(name))[1]
    cam = Camera(photons=1000, read_noise_e=0.0)
    e = adu_to_electrons(expose(np.ones((512, 512)), cam, 0).adu, cam)
    rows["flat field var/mean (detected photons)"] = float(e.var() / e.mean())
    width = max(len(k) for k in rows)
    for k, v in rows.items():
        print(f"{k:<{width}}  {v:.4f}")
    out = Path(__file__).parent / "results" / "physics.json"
    out.write_text(json.dumps({"date": dt.date.today().isoformat(), "command": "python benchmarks/physics_checks.py",
                               "values": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
