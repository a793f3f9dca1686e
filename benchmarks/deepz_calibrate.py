"""Fit a Deep-Z model's depth calibration on simulated beads and check it on held-out beads and the Fig. 4 surfaces.

    python benchmarks/deepz_calibrate.py --model deepz-20x075                 # fit and check, write nothing
    python benchmarks/deepz_calibrate.py --model deepz-20x075 --write MODEL_DIR   # also save depth_calibration.json

Calibration beads: ``--planes`` planes of 36 beads at random depths within ±8 µm (``bench_deepz.bead_plane``, PSFs
from ``psfmodels`` directly), seeds 9501.. (no test and no training uses them). Each plane is refocused over ±10 µm in
0.5 µm steps, each bead's depth taken as the plane of its maximum, and the map fitted by
:func:`widefield3d.methods.deepz_calibration.fit_depth_calibration`. Checks, on data the fit never saw: the bead
depth test of ``bench_deepz --measures`` (its 4 planes, seeds 9101..; the peaks' DPMs turned into depths by the
calibration), and the Fig. 4 tilted plane and cylinder of ``deepz_beads.py`` refocused with ``calibrated=True``.
Writes ``benchmarks/results/deepz_calibration.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import bench_deepz
import deepz_beads
import numpy as np

from widefield3d.analysis.refocus_measures import depth_errors
from widefield3d.methods import deepz
from widefield3d.methods.deepz_calibration import fit_depth_calibration, write_depth_calibration
from widefield3d.optics.microscope import preset
from widefield3d.sim.dataset import dataset_preset
from widefield3d.zoo import model_label

CALIBRATION_SEED = 9501
RESULTS = Path(__file__).parent / "results"


def bead_peaks(model, seeds, size_px: int, microscope, camera) -> tuple[np.ndarray, np.ndarray]:
    """True depths and the DPMs of the refocused peaks (µm) of the beads of one plane per seed."""
    true, peak = [], []
    for seed in seeds:
        plane = bench_deepz.bead_plane(seed, size_px, microscope, camera)
        true.append(plane["depths_um"])
        peak.append(bench_deepz.model_bead_depths(model, plane["image"], plane["centres_yx_px"]))
        print(f"beads of seed {seed}: {len(plane['depths_um'])}", file=sys.stderr, flush=True)
    return np.concatenate(true), np.concatenate(peak)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepz-20x075", help="Deep-Z model name or directory")
    parser.add_argument("--planes", type=int, default=4, help="calibration bead planes (36 beads each)")
    parser.add_argument("--write", type=Path, metavar="MODEL_DIR", help="save the calibration into this model folder")
    parser.add_argument("--surface-px", type=int, default=1024, help="side of the Fig. 4 fields, camera pixels")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = deepz.load(args.model)
    microscope, camera = preset("deepz-20x075"), dataset_preset("deepz-20x075").camera
    seeds = range(CALIBRATION_SEED, CALIBRATION_SEED + args.planes)
    true, peak = bead_peaks(model, seeds, 256, microscope, camera)
    calibration = fit_depth_calibration(
        true, peak, fitted_on=f"{len(true)} simulated beads ({args.planes} planes of benchmarks/bench_deepz.py "
        f"bead_plane, seeds {seeds.start}-{seeds.stop - 1}, depths within +-8 µm), refocused over +-10 µm in 0.5 µm "
        f"steps by {model_label(model.path)}")
    test_true, test_peak = bead_peaks(model, range(bench_deepz.BEAD_SEED, bench_deepz.BEAD_SEED + 4), 256, microscope,
                                      camera)
    result = {
        "command": "python benchmarks/deepz_calibrate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "model": model_label(model.path),
        "calibration": calibration.model_dump(mode="json"),
        "calibration_beads": {"raw": depth_errors(peak, true),
                              "calibrated": depth_errors(calibration.depth(peak), true)},
        "test_beads": {"raw": depth_errors(test_peak, test_true),
                       "calibrated": depth_errors(calibration.depth(test_peak), test_true),
                       "median_signed_error_um": {"raw": float(np.median(test_peak - test_true)),
                                                  "calibrated": float(np.median(calibration.depth(test_peak)
                                                                                - test_true))}},
    }
    calibrated = deepz.DeepZModel(model.generator, model.config, model.path, calibration)
    surfaces = argparse.Namespace(surface_px=args.surface_px, seed=0, device=args.device, name="deepz_calibration")
    result["fig4"] = deepz_beads.fig4(calibrated, surfaces, camera, microscope, vias=("dpm", "calibrated"))
    result["seconds"] = time.perf_counter() - start
    if args.write:
        print(f"wrote {write_depth_calibration(args.write, calibration)}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "deepz_calibration.json"
    out.write_text(json.dumps(deepz_beads.json_safe(result), indent=1) + "\n")
    signed = result["test_beads"]["median_signed_error_um"]
    for name in ("raw", "calibrated"):
        t = result["test_beads"][name]
        print(f"test beads, {name:<10}: median |error| {t['median_abs_error_um']:.2f} µm, within 1 µm "
              f"{t['fraction_within_1um']:.2f}, median signed {signed[name]:+.2f} µm")
    for kind, entry in result["fig4"].items():
        for key in ("raw", "deepz", "deepz_calibrated"):
            print(deepz_beads.summary_row(f"Fig.4 {kind} {key}", entry.get(key), axial=False))
        for depth in entry["raw_by_depth"]:
            cells = [entry[f"{key}_by_depth"].get(depth, {}) for key in ("raw", "deepz", "deepz_calibrated")]
            print(f"  surface depth {depth} µm: lateral FWHM median " + " / ".join(
                f"{c.get('fwhm_lateral_median_um', float('nan')):.3f}" for c in cells) + f" (raw / Deep-Z / "
                f"calibrated, {cells[0].get('n', 0)} raw beads)")
    print(f"wrote {out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
