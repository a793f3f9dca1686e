"""Benchmark of Deep-Z / Deep-Z+ on held-out simulated fields (numbers for docs/deepz.md).

1. Refocusing accuracy per distance (-10 .. +10 µm): the plane at z = 0 of each held-out ``deepz-20x075`` stack is
   refocused to every plane of the stack; PSNR, SSIM, RMSE, MAE and Pearson against the mechanically scanned
   (noisy) plane, next to the identity baseline (the input copied to every plane). Intensities are in the
   training scale: every stack is normalised against its EDF image (as the training data), the model is given
   that normalisation and returns normalised values; PSNR/SSIM use the data range of the whole normalised stack.
2. Deep-Z+: the plane at z = 0 of each held-out ``deepzplus-63x14`` wide-field stack refocused over the stack's
   range, SSIM and RMSE against the confocal planes (each normalised against its own EDF), next to the scanned
   wide-field planes and the identity baseline against the same confocal planes.
3. Sinusoidal surfaces (paper Fig. S7): DPM = -5 + 4 sin(2 pi x / period) µm (depths -1 .. -9 µm); ground truth =
   the scanned stack linearly interpolated in z at each pixel's depth. For each period: SSIM and Pearson against
   that ground truth, and the artefact ratio = power of the error image (output - truth) at the DPM's frequency and
   its second harmonic along x, divided by the mean error power of the 3 frequency bins on either side (the local
floor; DC and the harmonics excluded). A period is "followed
   without artefacts" when its SSIM is within 0.02 of the longest period's and the artefact ratio is below 3.
4. Speed: a 41-plane virtual stack of a 512 x 512 image on CPU (default torch threads), seconds; the network FLOPs
   of that call counted by ``torch.utils.flop_counter`` (tiles with halos included) give GFLOP/s, next to the
   machine's float32 matrix-multiply rate (``torch.matmul`` of 2048 x 2048 matrices) measured in the same run.

Usage::

    python benchmarks/bench_deepz.py [--deepz-data DIR] [--deepzplus-data DIR] [--deepz-model deepz-20x075]
        [--deepzplus-model deepzplus-63x14-confocal] [--fields N] [--periods 2,4,8] [--skip-speed] [--out JSON]

Parts 1, 3 and 4 need ``--deepz-data`` (held-out wide-field stacks), part 2 ``--deepzplus-data`` (held-out
``widefield/`` + ``confocal/`` stacks). Prints tables and writes ``benchmarks/results/deepz.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from widefield3d import io
from widefield3d.analysis import metrics
from widefield3d.methods import deepz
from widefield3d.methods.deepz_data import find_stacks
from widefield3d.prep.edf import extended_depth_of_field
from widefield3d.prep.normalise import triangle_normalisation

RESULTS = Path(__file__).parent / "results" / "deepz.json"


def _stack(path: Path) -> tuple[np.ndarray, float, float]:
    image = io.read(path)
    dz, dy, _ = image.spacing_zyx
    return np.asarray(image.data, np.float32), dz, dy


def _normalised(stack: np.ndarray):
    norm = triangle_normalisation(extended_depth_of_field(stack))
    return norm, norm.apply(stack)


def _row(pred: np.ndarray, gt: np.ndarray, data_range: float) -> dict:
    return {"psnr": metrics.psnr(pred, gt, data_range), "ssim": metrics.ssim(pred, gt, data_range),
            "rmse": metrics.rmse(pred, gt), "mae": metrics.mae(pred, gt), "pearson": metrics.pearson(pred, gt)}


def refocus_accuracy(data: Path, model, fields: int) -> dict:
    """Per-distance metrics of Deep-Z and of the identity baseline, averaged over held-out fields."""
    per_field = {"deepz": [], "identity": []}
    z_rel = None
    for path, _ in find_stacks(data, "widefield")[:fields]:
        raw, dz, _ = _stack(path)
        norm, stack = _normalised(raw)
        middle = len(stack) // 2
        z_rel = (np.arange(len(stack)) - middle) * dz
        virtual = deepz.refocus(raw[middle], z_rel, model=model, normalisation=norm, denormalise=False,
                                progress=False)
        r = float(stack.max() - stack.min())
        per_field["deepz"].append([_row(v, s, r) for v, s in zip(virtual, stack)])
        per_field["identity"].append([_row(stack[middle], s, r) for s in stack])
    out = {"z_um": z_rel.tolist(), "fields": len(per_field["deepz"])}
    for name, rows in per_field.items():
        out[name] = {k: np.mean([[row[k] for row in field] for field in rows], axis=0).tolist() for k in rows[0][0]}
    far = np.abs(z_rel) >= 2.0
    out["summary"] = {
        "mean_ssim_deepz": float(np.mean(out["deepz"]["ssim"])),
        "mean_ssim_identity": float(np.mean(out["identity"]["ssim"])),
        "psnr_gain_db_min_far": float(np.min(np.subtract(out["deepz"]["psnr"], out["identity"]["psnr"])[far])),
        "psnr_gain_db_mean_far": float(np.mean(np.subtract(out["deepz"]["psnr"], out["identity"]["psnr"])[far])),
    }
    return out


def deepzplus_accuracy(data: Path, model, fields: int) -> dict:
    """Per-depth SSIM/RMSE against the confocal planes: Deep-Z+, scanned wide-field, identity."""
    rows = {"deepzplus": [], "widefield": [], "identity": []}
    z_rel = None
    for wf_path, conf_path in find_stacks(data, "confocal")[:fields]:
        wf_raw, dz, _ = _stack(wf_path)
        conf_raw, _, _ = _stack(conf_path)
        wf_norm, wf = _normalised(wf_raw)
        _, conf = _normalised(conf_raw)
        middle = len(wf) // 2
        z_rel = (np.arange(len(wf)) - middle) * dz
        keep = np.abs(z_rel) <= model.range_um + 1e-6
        virtual = deepz.refocus(wf_raw[middle], z_rel[keep], model=model, normalisation=wf_norm, denormalise=False,
                                progress=False)
        r = float(conf.max() - conf.min())
        rows["deepzplus"].append([_row(v, c, r) for v, c in zip(virtual, conf[keep])])
        rows["widefield"].append([_row(w, c, r) for w, c in zip(wf[keep], conf[keep])])
        rows["identity"].append([_row(wf[middle], c, r) for c in conf[keep]])
        z_rel = z_rel[keep]
    out = {"z_um": z_rel.tolist(), "fields": len(rows["deepzplus"])}
    for name, per_field in rows.items():
        out[name] = {k: np.mean([[row[k] for row in f] for f in per_field], axis=0).tolist() for k in ("ssim", "rmse")}
    out["summary"] = {f"mean_ssim_{k}": float(np.mean(out[k]["ssim"])) for k in rows}
    return out


def _interpolated_surface(stack: np.ndarray, z_rel: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """The stack sampled at depth ``surface[y, x]`` (µm) at each pixel, linear in z."""
    pos = np.interp(surface, z_rel, np.arange(len(z_rel)))
    lo = np.clip(np.floor(pos).astype(int), 0, len(z_rel) - 2)
    w = (pos - lo).astype(np.float32)
    yy, xx = np.indices(surface.shape)
    return (1 - w) * stack[lo, yy, xx] + w * stack[lo + 1, yy, xx]


def sinusoid_limit(data: Path, model, periods_um, fields: int) -> dict:
    """SSIM, Pearson and artefact ratio per sinusoid period (see the module docstring)."""
    results = {p: {"ssim": [], "pearson": [], "artefact_ratio": []} for p in periods_um}
    for path, _ in find_stacks(data, "widefield")[:fields]:
        raw, dz, dy = _stack(path)
        norm, stack = _normalised(raw)
        middle = len(stack) // 2
        z_rel = (np.arange(len(stack)) - middle) * dz
        r = float(stack.max() - stack.min())
        nx = stack.shape[2]
        freqs = np.fft.rfftfreq(nx, d=dy)
        for period in periods_um:
            surface = -5.0 + deepz.surface_dpm(stack.shape[1:], dy, sinusoid=(period, 4.0))
            out = deepz.refocus(raw[middle], -5.0, sinusoid=(period, 4.0), model=model, normalisation=norm,
                                denormalise=False, progress=False)
            truth = _interpolated_surface(stack, z_rel, surface)
            power = (np.abs(np.fft.rfft(out - truth, axis=1)) ** 2).mean(axis=0)
            bins = {int(np.argmin(np.abs(freqs - h / period))) for h in (1, 2) if h / period < freqs[-1]} - {0}
            ratios = []
            for b in bins:  # spur over the local floor: the mean of the 3 bins on each side (no DC, no harmonic)
                floor = [k for k in range(b - 3, b + 4) if 0 < k < len(power) and k not in bins]
                ratios.append(power[b] / np.mean(power[floor]))
            results[period]["ssim"].append(metrics.ssim(out, truth, r))
            results[period]["pearson"].append(metrics.pearson(out, truth))
            results[period]["artefact_ratio"].append(float(max(ratios)) if ratios else float("nan"))
    table = {str(p): {k: float(np.mean(v)) for k, v in res.items()} for p, res in results.items()}
    longest = table[str(max(periods_um))]["ssim"]
    ok = [p for p in periods_um if table[str(p)]["ssim"] >= longest - 0.02 and table[str(p)]["artefact_ratio"] < 3]
    # the shortest period from which every longer period is also followed
    followed = None
    for p in sorted(periods_um, reverse=True):
        if p not in ok:
            break
        followed = p
    return {"periods_um": list(periods_um), "per_period": table, "shortest_followed_um": followed}


def speed(model, size: int = 512, planes: int = 41) -> dict:
    """Seconds and GFLOP/s of a virtual stack, and the matmul rate measured in the same run."""
    from torch.utils.flop_counter import FlopCounterMode

    rng = np.random.default_rng(0)
    image = rng.poisson(50, (size, size)).astype(np.float32)
    image[size // 4: size // 4 + 20, size // 3: size // 3 + 20] += 2000
    z = np.linspace(-10, 10, planes)
    deepz.refocus(image, z[:2], model=model, progress=False, device="cpu")  # warm-up
    with FlopCounterMode(display=False) as counter:
        deepz.refocus(image, z[:8], model=model, progress=False, device="cpu", planes_per_pass=8)
    flops_per_8 = counter.get_total_flops()
    start = time.perf_counter()
    deepz.refocus(image, z, model=model, progress=False, device="cpu", planes_per_pass=8)
    seconds = time.perf_counter() - start
    flops = flops_per_8 * planes / 8
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.matmul(a, b)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 3.0:
        torch.matmul(a, b)
        n += 1
    matmul = 2 * 2048**3 * n / (time.perf_counter() - start) / 1e9
    return {"image": [size, size], "planes": planes, "seconds": seconds, "network_gflop": flops / 1e9,
            "gflops_per_s": flops / seconds / 1e9, "matmul_gflops_per_s": matmul,
            "fraction_of_matmul": flops / seconds / 1e9 / matmul, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deepz-data", type=Path)
    parser.add_argument("--deepzplus-data", type=Path)
    parser.add_argument("--deepz-model", default="deepz-20x075")
    parser.add_argument("--deepzplus-model", default="deepzplus-63x14-confocal")
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--periods", default="2,4,8,16,32,64")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.processor() or
              platform.machine(), "cpus": torch.get_num_threads(), "load_average": list(os.getloadavg())}
    if args.deepz_data is not None:
        model = deepz.load(args.deepz_model)
        result["deepz_model"] = args.deepz_model
        result["refocus"] = acc = refocus_accuracy(args.deepz_data, model, args.fields)
        print(f"\nDeep-Z ({args.deepz_model}) on {acc['fields']} held-out fields, per refocus distance")
        head = f"{'PSNR':>6} {'SSIM':>6} {'RMSE':>7} {'MAE':>7} {'r':>6}"
        print(f"{'dz um':>6} | {head} | identity: {head}")
        for i, z in enumerate(acc["z_um"]):
            d, b = ({k: acc[name][k][i] for k in acc[name]} for name in ("deepz", "identity"))
            cells = [f"{r['psnr']:6.2f} {r['ssim']:6.3f} {r['rmse']:7.4f} {r['mae']:7.4f} {r['pearson']:6.3f}"
                     for r in (d, b)]
            print(f"{z:+6.1f} | {cells[0]} |           {cells[1]}")
        print(acc["summary"])
        periods = [float(p) for p in args.periods.split(",")]
        result["sinusoid"] = sin = sinusoid_limit(args.deepz_data, model, periods, min(args.fields, 2))
        print("\nsinusoidal surfaces (-1 .. -9 µm): period um, SSIM, Pearson, artefact ratio")
        for p in periods:
            row = sin["per_period"][str(p)]
            print(f"{p:6.1f} {row['ssim']:6.3f} {row['pearson']:6.3f} {row['artefact_ratio']:8.2f}")
        print(f"shortest period followed without artefacts: {sin['shortest_followed_um']} µm")
    if args.deepzplus_data is not None:
        plus = deepz.load(args.deepzplus_model)
        result["deepzplus"] = dp = deepzplus_accuracy(args.deepzplus_data, plus, args.fields)
        print(f"\nDeep-Z+ ({args.deepzplus_model}) on {dp['fields']} held-out fields: SSIM / RMSE vs confocal")
        for i, z in enumerate(dp["z_um"]):
            print(f"{z:+5.1f} | Deep-Z+ {dp['deepzplus']['ssim'][i]:.3f} {dp['deepzplus']['rmse'][i]:.4f} | "
                  f"scanned WF {dp['widefield']['ssim'][i]:.3f} {dp['widefield']['rmse'][i]:.4f} | "
                  f"identity {dp['identity']['ssim'][i]:.3f} {dp['identity']['rmse'][i]:.4f}")
        print(dp["summary"])
    if args.deepz_data is not None and not args.skip_speed:
        result["speed"] = sp = speed(model)
        print(f"\nspeed: {sp['planes']} planes of {sp['image']} in {sp['seconds']:.1f} s, {sp['network_gflop']:.0f} "
              f"GFLOP, {sp['gflops_per_s']:.1f} GFLOP/s = {100 * sp['fraction_of_matmul']:.0f}% of matmul "
              f"({sp['matmul_gflops_per_s']:.1f} GFLOP/s, {sp['torch_threads']} threads)")
    with io.atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
