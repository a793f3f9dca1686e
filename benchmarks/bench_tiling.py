"""Benchmark of tiled inference (:func:`widefield3d.tiling.predict_tiled`).

1. Throughput of a random-weight 2D U-Net (depth 3, width 16) on a 2048 x 2048 image: one whole-image
   forward pass versus tiled inference (tile 512, default halo = receptive radius, blend 32; tile 1024 for
   comparison), interleaved in the same run, medians over the repeats, both with channels-last input; the
   overhead is ``t_tiled / t_whole - 1``. "network px" is the
   number of pixels fed to the network divided by the image's (halo and blend recomputation).
2. Peak memory and wall time of tiled inference of a cheap U-Net (depth 2, width 8) on a 16384 x 16384
   uint16 zarr image (written chunk-wise, never held in RAM), output to a float32 zarr array on disk. It runs
   in a subprocess; its peak resident set size is the child's own ``VmHWM`` (after ``exec``), cross-checked
   with ``getrusage(RUSAGE_CHILDREN).ru_maxrss``, which also counts the parent's pages at ``fork`` and is
   therefore measured first, while the parent is small. A 512 x 512 patch of the result is checked against
   untiled inference.

3. ``--whole-slide``: peak memory of ``multifocal`` (MFPINet, 11 planes x RGB at 2x, through
   :func:`widefield3d.methods.mfpi.multifocal`) from a uint8 RGB OME-Zarr to an OME-Zarr, in a subprocess
   (VmHWM, sampled every few seconds too, so a run stopped by ``--ws-timeout`` still reports its peak so far):
   (a) MFPINet at the paper's width (random weights; the memory does not depend on them) on the full
   20,000 px width and a reduced height (``--ws-height``, default 384: two strips of full 512 px windows):
   with column blocks the buffers do not grow with the width (except a ``blend``-row carry line) nor with the
   height (strips are written and freed), so one or two strips at the full width hold the whole-slide peak;
   (b) an identity-like stand-in network (each plane = the nearest 2x up-sampling of its colour; no weights,
   MFPINet's halo and windows) on the full 20,000 x 20,000 slide (``--ws-standin-height``), for the I/O and
   blending path. The input is written band by band, never held whole.

Usage::

    python benchmarks/bench_tiling.py [--repeats 3] [--memory-size 16384] [--workdir DIR]
    python benchmarks/bench_tiling.py --whole-slide [--ws-width 20000] [--ws-height 384]
        [--ws-standin-height 20000] [--ws-timeout 3600] [--workdir DIR]

Prints a table and writes ``benchmarks/results/tiling.json`` (``tiling_whole_slide.json`` with
``--whole-slide``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from widefield3d.nets.unet import UNet
from widefield3d.tiling import predict_tiled

RESULTS = Path(__file__).parent / "results" / "tiling.json"
WHOLE_SLIDE_RESULTS = Path(__file__).parent / "results" / "tiling_whole_slide.json"
CHUNK = 1024


def _memory_net() -> UNet:
    torch.manual_seed(0)
    return UNet(1, 1, ndim=2, depth=2, width=8)


def _vm_hwm_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def throughput(size: int, tiles: list[int], repeats: int) -> dict:
    torch.manual_seed(0)
    net = UNet(1, 1, ndim=2, depth=3, width=16).eval()
    image = np.random.default_rng(0).normal(size=(1, size, size)).astype(np.float32)
    fed = []
    net.register_forward_pre_hook(lambda module, args: fed.append(args[0][:, 0].numel()))

    def whole():  # channels-last input, as predict_tiled feeds its tiles
        with torch.inference_mode():
            net(torch.from_numpy(image[None]).contiguous(memory_format=torch.channels_last))

    runs = {"whole": whole} | {
        f"tiled {t}": (lambda t=t: predict_tiled(net, image, tile=t, progress=False)) for t in tiles
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    pixels_fed: dict[str, int] = {}
    for name, run in runs.items():  # warm-up
        fed.clear()
        run()
        pixels_fed[name] = sum(fed)
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {
        "image": [size, size],
        "network": "UNet(1, 1, ndim=2, depth=3, width=16)",
        "receptive_radius": net.receptive_radius,
        "torch_threads": torch.get_num_threads(),
        "repeats": repeats,
        "runs": {
            name: {
                "times_s": [round(t, 3) for t in times[name]],
                "median_s": round(medians[name], 3),
                "mpx_per_s": round(size * size / 1e6 / medians[name], 3),
                "overhead_pct": round(100 * (medians[name] / medians["whole"] - 1), 1),
                "network_px_ratio": round(pixels_fed[name] / size**2, 3),
            }
            for name in runs
        },
    }


def _write_input(path: Path, size: int) -> None:
    """A uint16 (1, size, size) zarr image, written one band of chunks at a time."""
    array = zarr.create_array(store=path, shape=(1, size, size), dtype="uint16", chunks=(1, CHUNK, CHUNK))
    rng = np.random.default_rng(1)
    x = np.arange(size)
    for y0 in range(0, size, CHUNK):
        y = np.arange(y0, min(y0 + CHUNK, size))[:, None]
        signal = 1000 + 800 * np.sin(x / 97.0) * np.cos(y / 131.0)
        array[0, y0 : y0 + len(y)] = rng.poisson(signal).astype(np.uint16)


def _memory_child(source: str, target: str, tile: int) -> None:
    """Run in the subprocess: tiled inference zarr -> zarr; print timings and peak RSS as JSON."""
    baseline = _vm_hwm_mb()
    image = zarr.open_array(source, mode="r")
    out = zarr.create_array(store=target, shape=image.shape, dtype="float32", chunks=(1, CHUNK, CHUNK))
    start = time.perf_counter()
    predict_tiled(_memory_net(), image, tile=tile, out=out, progress=False)
    print(json.dumps({"wall_s": time.perf_counter() - start, "vm_hwm_mb": _vm_hwm_mb(), "baseline_mb": baseline}))


def _check_patch(source: Path, target: Path, y0: int, x0: int, n: int) -> float:
    """Max |tiled - untiled| on an n x n patch, untiled run on the patch with 64 px of real context around it."""
    net = _memory_net().eval()
    context = 64  # >= receptive radius 23, multiple of the divisor 4
    patch = zarr.open_array(source)[:, y0 - context : y0 + n + context, x0 - context : x0 + n + context]
    with torch.inference_mode():
        expected = net(torch.from_numpy(patch.astype(np.float32)[None]))[0, :, context:-context, context:-context]
    got = zarr.open_array(target)[:, y0 : y0 + n, x0 : x0 + n]
    return float(np.abs(got - expected.numpy()).max())


def memory(size: int, tile: int, workdir: Path) -> dict:
    source, target = workdir / "input.zarr", workdir / "output.zarr"
    start = time.perf_counter()
    _write_input(source, size)
    write_s = time.perf_counter() - start
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(source), str(target), str(tile)],
        capture_output=True, text=True, check=True,
    )
    report = json.loads(child.stdout.strip().splitlines()[-1])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    return {
        "image": [size, size],
        "input": f"zarr uint16, chunks {CHUNK} x {CHUNK}",
        "output": f"zarr float32, chunks {CHUNK} x {CHUNK}",
        "network": "UNet(1, 1, ndim=2, depth=2, width=8)",
        "tile": tile,
        "input_write_s": round(write_s, 1),
        "wall_s": round(report["wall_s"], 1),
        "mpx_per_s": round(size * size / 1e6 / report["wall_s"], 3),
        "peak_rss_mb": round(report["vm_hwm_mb"], 1),
        "ru_maxrss_children_mb": round(peak_mb, 1),
        "child_rss_after_imports_mb": round(report["baseline_mb"], 1),
        "input_bytes_mb": round(size * size * 2 / 2**20, 1),
        "output_bytes_mb": round(size * size * 4 / 2**20, 1),
        "max_abs_diff_vs_untiled_patch": _check_patch(source, target, size // 8 * 4, size // 12 * 4,
                                                      min(512, size // 4)),
    }


# ------------------------------------------------------------------------------------------- whole slide


class _StandIn(torch.nn.Module):
    """Identity-like stand-in for MFPINet: plane ``n`` of colour ``c`` is the nearest 2x up-sampling of input
    colour ``c`` (output channel ``c * planes + n``, as MFPINet's); no weights. It declares MFPINet's
    ``receptive_radius`` and ``downsampling_factor`` so that the tiling (halo, windows, blocks, carry line) is
    MFPINet's."""

    def __init__(self, channels: int, planes: int, receptive_radius: int, downsampling_factor: int):
        super().__init__()
        self.in_channels, self.out_channels, self.planes = channels, channels * planes, planes
        self.receptive_radius, self.downsampling_factor = receptive_radius, downsampling_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        return up.repeat_interleave(self.planes, dim=1)


def _write_rgb(path: Path, height: int, width: int) -> None:
    """A smooth uint8 RGB OME-Zarr (3, height, width), written one band of rows at a time."""
    from widefield3d import io

    array = io.create_ome_zarr(path, (3, height, width), np.uint8, "CYX", {"Y": 0.5, "X": 0.5})
    x = np.arange(width)
    for y0 in range(0, height, CHUNK):
        y = np.arange(y0, min(y0 + CHUNK, height))[:, None]
        band = [128 + 100 * np.sin(x / (53.0 + 17 * c)) * np.cos(y / (71.0 + 13 * c)) for c in range(3)]
        array[:, y0 : y0 + len(y)] = np.stack(band).astype(np.uint8)


def _whole_slide_child(kind: str, source: str, target: str, batch_size: int | None = None) -> None:
    """Run in the subprocess: ``multifocal`` zarr -> zarr; print JSON lines (VmHWM samples, then the result)."""
    from widefield3d.methods import mfpi

    baseline = _vm_hwm_mb()
    shipped = mfpi.load("mfpi-cytology-20x075").config
    config = shipped.model_copy(update={"network": shipped.network.model_copy(update={"width": 1.0})})
    generator = mfpi.build_networks(config)[0].eval()
    if kind == "standin":
        generator = _StandIn(config.network.channels, config.network.planes, generator.receptive_radius,
                             generator.downsampling_factor)
    model = mfpi.MFPIModel(generator=generator, config=config)
    tiles = [0]
    generator.register_forward_hook(lambda module, args, out: tiles.__setitem__(0, tiles[0] + len(args[0])))
    start = time.perf_counter()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(5.0):
            print(json.dumps({"t_s": round(time.perf_counter() - start, 1), "tiles": tiles[0],
                              "vm_hwm_mb": round(_vm_hwm_mb(), 1)}), flush=True)

    threading.Thread(target=sample, daemon=True).start()
    mfpi.multifocal(source, model=model, device="cpu", out=target, progress=False, batch_size=batch_size)
    stop.set()
    print(json.dumps({"done": True, "wall_s": round(time.perf_counter() - start, 1), "tiles": tiles[0],
                      "vm_hwm_mb": round(_vm_hwm_mb(), 1), "baseline_mb": round(baseline, 1),
                      "generator_parameters": sum(p.numel() for p in generator.parameters()),
                      "receptive_radius": generator.receptive_radius}), flush=True)


def _whole_slide_run(kind: str, height: int, width: int, workdir: Path, timeout: float,
                     batch_size: int | None = None) -> dict:
    """One whole-slide run in a child process; its peak RSS (VmHWM) and, when it finished, a check of the output."""
    import shutil

    source, target = workdir / f"{kind}_in.ome.zarr", workdir / f"{kind}_out.ome.zarr"
    start = time.perf_counter()
    _write_rgb(source, height, width)
    write_s = time.perf_counter() - start
    lines = []
    try:
        batch = ["--ws-batch", str(batch_size)] if batch_size is not None else []
        child = subprocess.run([sys.executable, __file__, "--ws-child", kind, str(source), str(target), *batch],
                               capture_output=True, text=True, timeout=timeout, check=True)
        lines = child.stdout.strip().splitlines()
    except subprocess.TimeoutExpired as stopped:
        out = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
        lines = out.strip().splitlines()
    reports = [json.loads(line) for line in lines if line.startswith("{")]
    last = reports[-1] if reports else {}
    result = {
        "network": "MFPIGenerator(11, 3, width=1.0), random weights" if kind == "mfpinet"
        else "identity-like stand-in (nearest 2x per plane), MFPINet's halo and windows",
        "input": f"OME-Zarr uint8 (3, {height}, {width}), written band by band",
        "batch_size": batch_size if batch_size is not None else "multifocal's default (1 on the CPU)",
        "output": f"OME-Zarr uint8 (3, 11, {2 * height}, {2 * width})",
        "input_write_s": round(write_s, 1),
        "finished": bool(last.get("done")),
        "timeout_s": timeout,
        "wall_s": last.get("wall_s", last.get("t_s")),
        "tiles_done": last.get("tiles"),
        "peak_rss_mb": max((r["vm_hwm_mb"] for r in reports), default=None),
        "child_rss_after_imports_mb": last.get("baseline_mb"),
    }
    if result["finished"] and kind == "standin":  # exact: blending weights sum to one, rounding to uint8
        from widefield3d import io

        y0, x0, n = height // 3, width // 3, min(128, height // 3, width // 3)  # a patch inside, in input px
        got = np.asarray(io.read(target, lazy=True).data[:, :, 2 * y0 : 2 * (y0 + n), 2 * x0 : 2 * (x0 + n)])
        rgb = np.asarray(io.read(source, lazy=True).data[:, y0 : y0 + n, x0 : x0 + n])
        expected = np.repeat(np.repeat(rgb, 2, axis=1), 2, axis=2)[:, None]
        result["max_abs_diff_vs_upsampled_input"] = int(np.abs(got.astype(int) - expected).max())
    shutil.rmtree(source, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    return result


def _run_header() -> dict:
    """Date, machine, torch version and command line of this run (the head of every result file)."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "torch": torch.__version__,
        "command": shlex.join(["python", *sys.argv]),
    }


def whole_slide(args) -> None:
    result = {**_run_header(), "target_peak_mb": 4096}
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        for kind, height in (("standin", args.ws_standin_height), ("mfpinet", args.ws_height)):
            if height > 0:
                r = result[kind] = _whole_slide_run(kind, height, args.ws_width, Path(workdir), args.ws_timeout,
                                                    args.ws_batch)
                print(f"{kind}: {r['input']} -> {r['output']}: peak RSS {r['peak_rss_mb']} MB, "
                      f"{'finished' if r['finished'] else 'stopped'} after {r['wall_s']} s, {r['tiles_done']} tiles",
                      flush=True)
    args.ws_out.parent.mkdir(parents=True, exist_ok=True)
    args.ws_out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.ws_out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=2048, help="throughput image side (px)")
    parser.add_argument("--memory-size", type=int, default=16384, help="memory-run image side (px)")
    parser.add_argument("--memory-tile", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None, help="where the big zarr arrays go (default: a temp dir)")
    parser.add_argument("--whole-slide", action="store_true", help="multifocal whole-slide peak memory (part 3)")
    parser.add_argument("--ws-width", type=int, default=20000, help="whole-slide input width (px)")
    parser.add_argument("--ws-height", type=int, default=384, help="height for paper-width MFPINet (px; 0: skip)")
    parser.add_argument("--ws-standin-height", type=int, default=20000, help="height for the stand-in (px; 0: skip)")
    parser.add_argument("--ws-timeout", type=float, default=3600, help="seconds per whole-slide run")
    parser.add_argument("--child", nargs=3, metavar=("SOURCE", "TARGET", "TILE"), help=argparse.SUPPRESS)
    parser.add_argument("--ws-out", type=Path, default=WHOLE_SLIDE_RESULTS, help="result JSON of --whole-slide")
    parser.add_argument("--ws-batch", type=int, default=None,
                        help="tiles per network call (multifocal batch_size; default: multifocal's own)")
    parser.add_argument("--ws-child", nargs=3, metavar=("KIND", "SOURCE", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _memory_child(args.child[0], args.child[1], int(args.child[2]))
        return
    if args.ws_child:
        _whole_slide_child(*args.ws_child, batch_size=args.ws_batch)
        return
    if args.whole_slide:
        whole_slide(args)
        return

    result = _run_header()
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:  # first: see memory()
        memory_result = memory(args.memory_size, args.memory_tile, Path(workdir))
    result["throughput"] = throughput(args.size, [512, 1024], args.repeats)
    result["memory"] = m = memory_result
    print(f"Throughput, {args.size} x {args.size}, {result['throughput']['network']}, "
          f"{result['throughput']['torch_threads']} threads, median of {args.repeats}")
    print(f"{'run':<12}{'median s':>10}{'Mpx/s':>9}{'overhead %':>12}{'network px':>12}")
    for name, run in result["throughput"]["runs"].items():
        print(f"{name:<12}{run['median_s']:>10.2f}{run['mpx_per_s']:>9.3f}{run['overhead_pct']:>12.1f}"
              f"{run['network_px_ratio']:>12.2f}")

    side = args.memory_size
    print(f"\nMemory, {side} x {side} uint16 zarr -> float32 zarr, {m['network']}, tile {m['tile']}")
    print(f"wall {m['wall_s']:.1f} s ({m['mpx_per_s']:.2f} Mpx/s), peak RSS {m['peak_rss_mb']:.0f} MB "
          f"(ru_maxrss {m['ru_maxrss_children_mb']:.0f} MB, {m['child_rss_after_imports_mb']:.0f} MB after imports; "
          f"input {m['input_bytes_mb']:.0f} MB, output {m['output_bytes_mb']:.0f} MB), "
          f"max |tiled - untiled| on a patch {m['max_abs_diff_vs_untiled_patch']:.2e}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
