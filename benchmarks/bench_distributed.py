"""Throughput of block-wise inference on a dask.distributed LocalCluster (:mod:`widefield3d.distributed`).

A synthetic wide-field plane (``--size`` x ``--size`` float32 pixels of 0.325 µm: bright blobs on a noisy
background, written chunk by chunk as OME-Zarr) is refocused by a Deep-Z model (default the shipped
``deepz-20x075``) to one plane at ``--z`` µm with ``predict-distributed`` on a LocalCluster of 1, then 2, ...
worker processes on the loopback interface (``--workers``), each worker's torch with ``cores // workers``
threads. For each layout: the cluster's start time, then the run's wall time (model loading in the workers,
every block, pyramid levels) and Mpx/s; the speed-up is the ratio to the first layout, measured in the same run.
The outputs of all layouts must agree: the max abs difference is printed, relative to the output's range in the
JSON (blocks are computed identically; torch's float sums differ with its thread count, ~1e-6 relative). With
``--baseline`` the same plane is also refocused in one process by :func:`widefield3d.methods.deepz.refocus` (the
whole image in memory) and compared.

Usage::

    python benchmarks/bench_distributed.py [--size 8192] [--workers 1 2] [--block 2048] [--baseline]

Prints a table and writes ``benchmarks/results/distributed.json`` (no machine paths in it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from widefield3d import io, zoo
from widefield3d.distributed import predict_distributed

RESULTS = Path(__file__).parent / "results" / "distributed.json"
PIXEL_UM = 0.325
BAND = 1024


def write_plane(path: Path, size: int, seed: int = 0) -> None:
    """A synthetic wide-field plane as OME-Zarr, written one band of rows at a time (memory: one band)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    array = io.create_ome_zarr(path, (size, size), "float32", "YX", {"Y": PIXEL_UM, "X": PIXEL_UM})
    centres = rng.integers(0, size, (max(1, size * size // 20000), 2))  # blobs of 3 px sigma, 1 per 20000 px
    margin = 12
    for y0 in range(0, size, BAND):
        rows = min(BAND, size - y0)
        spikes = np.zeros((rows + 2 * margin, size))
        near = centres[(centres[:, 0] >= y0 - margin) & (centres[:, 0] < y0 + rows + margin)]
        np.add.at(spikes, (near[:, 0] - y0 + margin, near[:, 1]), 800 * 2 * np.pi * 9)
        band = 100 + 10 * rng.standard_normal((rows, size)) + gaussian_filter(spikes, 3)[margin:margin + rows]
        array[y0:y0 + rows] = band.astype(np.float32)


def run_layout(model: str, source: Path, output: Path, workers: int, block: int, z: float, device: str) -> dict:
    """Start a LocalCluster of ``workers`` processes, time one run of predict_distributed on it."""
    from distributed import Client, LocalCluster

    threads = max(1, (os.cpu_count() or 1) // workers)
    start = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
        started = time.perf_counter() - start
        start = time.perf_counter()
        predict_distributed(model, source, output, options={"z": z}, block=block, cluster=client,
                            torch_threads=threads, device=device, progress=False)
        wall = time.perf_counter() - start
    return {"workers": workers, "torch_threads_per_worker": threads, "cluster_start_s": round(started, 2),
            "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=8192, help="image side (px)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="LocalCluster layouts to time")
    parser.add_argument("--block", type=int, default=2048, help="block side (px)")
    parser.add_argument("--model", default="deepz-20x075", help="Deep-Z model name or directory")
    parser.add_argument("--z", type=float, default=2.0, help="refocus distance (µm)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--baseline", action="store_true", help="also refocus the whole plane in one process")
    parser.add_argument("--workdir", type=Path, default=None, help="where the zarr images go (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    result: dict = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "torch": torch.__version__,
        "command": shlex.join(["python", "benchmarks/bench_distributed.py", *sys.argv[1:]]),
        "image": [args.size, args.size], "pixel_um": PIXEL_UM, "model": zoo.model_label(args.model), "z_um": args.z,
        "block": args.block, "device": args.device,
    }
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        work = Path(workdir)
        source = work / "plane.ome.zarr"
        start = time.perf_counter()
        write_plane(source, args.size)
        result["input_write_s"] = round(time.perf_counter() - start, 1)
        runs, outputs = [], []
        for workers in args.workers:
            output = work / f"refocused-{workers}.ome.zarr"
            runs.append(run_layout(args.model, source, output, workers, args.block, args.z, args.device))
            outputs.append(output)
        first = io.read(outputs[0], lazy=True).data
        span = float((first.max() - first.min()).compute())
        for run, output in zip(runs, outputs):
            run["mpx_per_s"] = round(args.size**2 / 1e6 / run["wall_s"], 3)
            run["speedup_vs_first"] = round(runs[0]["wall_s"] / run["wall_s"], 2)
            run["max_abs_diff_vs_first"] = float(abs(io.read(output, lazy=True).data - first).max().compute())
            run["max_rel_diff_vs_first"] = run["max_abs_diff_vs_first"] / span
        result["runs"] = runs
        if args.baseline:
            from widefield3d.methods.deepz import refocus

            plane = np.asarray(io.read(source).data)
            start = time.perf_counter()
            whole = refocus(plane, args.z, model=args.model, device=args.device, progress=False)
            wall = time.perf_counter() - start
            difference = float(np.abs(whole.data - np.asarray(first)).max())
            result["baseline"] = {"what": "deepz.refocus on the whole plane in one process", "wall_s": round(wall, 2),
                                  "torch_threads": torch.get_num_threads(),
                                  "mpx_per_s": round(args.size**2 / 1e6 / wall, 3),
                                  "max_abs_diff_vs_first": difference, "max_rel_diff_vs_first": difference / span}

    print(f"predict-distributed, {args.size} x {args.size}, {result['model']}, block {args.block}, {args.device}")
    print(f"{'workers':>8}{'start s':>9}{'wall s':>9}{'Mpx/s':>8}{'speed-up':>10}{'max diff':>10}")
    for run in runs:
        print(f"{run['workers']:>8}{run['cluster_start_s']:>9.1f}{run['wall_s']:>9.1f}{run['mpx_per_s']:>8.3f}"
              f"{run['speedup_vs_first']:>10.2f}{run['max_abs_diff_vs_first']:>10.2g}")
    if args.baseline:
        b = result["baseline"]
        print(f"{'whole':>8}{'':>9}{b['wall_s']:>9.1f}{b['mpx_per_s']:>8.3f}{'':>10}{b['max_abs_diff_vs_first']:>10.2g}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
