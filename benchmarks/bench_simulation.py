"""Time to simulate a 41-plane 512 x 512 wide-field stack (Deep-Z preset, worm sample).

Usage: python benchmarks/bench_simulation.py [--repeats 3]
Prints a table and writes benchmarks/results/simulation.json. The PSF is timed cold (empty cache) and warm.
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
    args = parser.parse_args()
    os.environ["WIDEFIELD3D_CACHE"] = tempfile.mkdtemp(prefix="wf3d-bench-cache-")

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


if __name__ == "__main__":
    main()
