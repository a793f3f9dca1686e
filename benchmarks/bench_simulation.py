"""Time to simulate a 41-plane 512 x 512 wide-field stack (Deep-Z preset, worm sample), or one training field of
a dataset preset (``--preset``, e.g. ``wfcon-60x14-tissue``: 80 planes of wide-field and confocal, each
``--field-px`` camera pixels square; 256 is the preset's own field).

Usage: python benchmarks/bench_simulation.py [--repeats 3]
       python benchmarks/bench_simulation.py --preset wfcon-60x14-tissue --field-px 64 [--repeats 3]
Prints a table and writes benchmarks/results/simulation.json (simulation_<preset>_<field>.json with --preset).
The PSF is timed cold (empty cache) and warm.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512, help="camera pixels per side")
    parser.add_argument("--preset", default=None, help="time one field of this dataset preset instead")
    parser.add_argument("--field-px", type=int, default=None, help="field size (camera px) for --preset")
    parser.add_argument("--label", default="", help="name of the code version timed (e.g. before/after a change); "
                        "added to the result file name")
    parser.add_argument("--cache-dir", default=None, help="PSF cache to use (default: a new, empty one); a filled "
                        "cache makes every run warm")
    args = parser.parse_args()
    os.environ["WIDEFIELD3D_CACHE"] = args.cache_dir or tempfile.mkdtemp(prefix="wf3d-bench-cache-")
    if args.preset:
        preset_field(args)
        return

    from widefield3d.optics.microscope import preset
    from widefield3d.sim.acquisition import fluorescence_stack
    from widefield3d.sim.camera import Camera
    from widefield3d.sim.samples import make_sample

    m = preset("deepz-20x075")
    k = 2
    spacing = (0.5, m.pixel_um / k, m.pixel_um / k)
    t = time.perf_counter()
    sample = make_sample("worm", (60, args.size * k, args.size * k), spacing, seed=0)
    t_sample = time.perf_counter() - t
    z = 15.0 + np.arange(-10.0, 10.25, 0.5)
    assert len(z) == 41
    timings = []
    for i in range(args.repeats + 1):  # the first run fills the PSF cache (cold)
        t = time.perf_counter()
        acq = fluorescence_stack(sample, m, z, camera=Camera(photons=2000), seed=i)
        timings.append(time.perf_counter() - t)
    result = {
        "benchmark": "simulate 41-plane wide-field stack",
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, {platform.system()}",
        "python": sys.version.split()[0],
        "command": "python benchmarks/bench_simulation.py " + " ".join(sys.argv[1:]),
        "stack_shape": list(acq.noisy.shape),
        "sample_grid": list(sample.density.shape),
        "sample_generation_s": round(t_sample, 2),
        "cold_cache_s": round(timings[0], 2),
        "warm_cache_median_s": round(statistics.median(timings[1:]), 2),
        "warm_cache_runs_s": [round(x, 2) for x in timings[1:]],
    }
    print(f"{'measure':<34}{'value':>12}")
    for key in ("stack_shape", "sample_grid", "sample_generation_s", "cold_cache_s", "warm_cache_median_s"):
        print(f"{key:<34}{str(result[key]):>12}")
    out = Path(__file__).parent / "results" / "simulation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def preset_field(args) -> None:
    """Cold (empty PSF cache) and warm times of ``simulate_field`` for one field of a dataset preset."""
    from widefield3d.sim.dataset import dataset_preset, simulate_field

    p = dataset_preset(args.preset)
    if args.field_px:
        p = p.model_copy(update={"field_px": args.field_px})
    timings = []
    for _ in range(args.repeats + 1):  # the first run fills the PSF cache (cold, unless --cache-dir is filled)
        t = time.perf_counter()
        acqs = simulate_field(p, 0, 0)
        timings.append(time.perf_counter() - t)
    result = {
        "benchmark": f"simulate one {args.preset} field",
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, {platform.system()}",
        "python": sys.version.split()[0],
        "command": "python benchmarks/bench_simulation.py "
        + " ".join("DIR" if args.cache_dir and a == args.cache_dir else a for a in sys.argv[1:]),
        "label": args.label,
        "field_px": p.field_px,
        "stacks": {name: list(a.noisy.shape) for name, a in acqs.items()},
        "cold_cache_s": round(timings[0], 2),
        "warm_cache_median_s": round(statistics.median(timings[1:]), 2) if args.repeats else None,
        "warm_cache_runs_s": [round(x, 2) for x in timings[1:]],
    }
    for key in ("stacks", "cold_cache_s", "warm_cache_median_s"):
        print(f"{key:<24}{result[key]}")
    suffix = f"_{args.label}" if args.label else ""
    out = Path(__file__).parent / "results" / f"simulation_{args.preset}_{p.field_px}{suffix}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
