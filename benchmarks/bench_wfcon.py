"""WFCON-Net studies on held-out simulated tissue (numbers for docs/wfcon.md).

1. Accuracy: the 3D network, its 2D version and Deep-Z+ (if its shipped model exists), against the confocal
   stack: RMSE and SSIM on the normalised [0, 1] scale, overall and per depth; the wide-field input as the
   identity baseline. Deep-Z+ (paper Fig. 6b) refocuses single wide-field planes: anchor planes every
   ``2 * range`` µm, each output plane refocused from its nearest anchor (within the model's trained range).
2. Sharpness per depth (paper Fig. 5b): signal (max) and background (min) patch sharpness of 32 x 32 patches
   for wide-field, confocal and the 3D output.
3. Fourier coverage (paper Fig. 6, last row): lateral/axial extents of the 3D amplitude spectrum and a figure of
   its central k_x-k_y and k_x-k_z sections.
4. z-subsampling (paper Fig. 9): the wide-field stack subsampled 1x / 2x / 4x, interpolated back, same model.
5. Loss ablation (paper Fig. 7): models trained with L1 only / L1 + GAN / L1 + GAN + perceptual at equal budget.
6. Speed (separate run, ``--speed``): voxels per second of ``confocal`` on a 64 x 512 x 512 stack on CPU, and the
   machine's float32 matrix-multiply rate (``torch.matmul`` of 2048 x 2048 matrices) measured in the same run.

Usage::

    python benchmarks/bench_wfcon.py --test DIR [--fields NAME ...] [--crop-yx N] [--model wfcon-60x14-tissue]
        [--model-2d DIR] [--deepz deepzplus-63x14-confocal] [--ablation L1=DIR L1+GAN=DIR L1+GAN+perceptual=DIR]
        [--out benchmarks/results/wfcon.json]
    python benchmarks/bench_wfcon.py --speed [--model wfcon-60x14-tissue] [--out benchmarks/results/wfcon_speed.json]
    python benchmarks/bench_wfcon.py --test DIR --accuracy-only [--model ...] [--model-2d DIR] [--deepz '']
        (part 1 only; writes benchmarks/results/wfcon_heldout.json)

Prints tables and writes the JSON (and, for the studies, ``benchmarks/results/wfcon_*.png``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from widefield3d import io  # noqa: E402
from widefield3d.analysis.metrics import evaluate  # noqa: E402
from widefield3d.analysis.sharpness import sharpness_per_depth  # noqa: E402
from widefield3d.analysis.spectra import amplitude_spectrum, fourier_coverage  # noqa: E402
from widefield3d.methods import wfcon  # noqa: E402
from widefield3d.zoo import model_label

RESULTS = Path(__file__).parent / "results"


def scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Volume RMSE, mean per-plane 2D SSIM (the paper's per-image SSIM) and the per-depth values."""
    rows = evaluate(pred, gt, data_range=1.0, per_plane=True)
    planes = rows[1:]
    return {"rmse": rows[0]["rmse"], "ssim": float(np.mean([r["ssim"] for r in planes])), "ssim_3d": rows[0]["ssim"],
            "rmse_per_depth": [r["rmse"] for r in planes], "ssim_per_depth": [r["ssim"] for r in planes]}


def deepz_plus(wf_raw: np.ndarray, dz: float, model_name: str, norm) -> np.ndarray | None:
    """Deep-Z+ confocal-like stack from single wide-field planes, or None if no such model is installed."""
    try:
        from widefield3d.methods import deepz

        model = deepz.load(model_name)
    except Exception as err:  # noqa: BLE001 - a missing model or module is reported, not fatal
        print(f"Deep-Z+ skipped: {err}", file=sys.stderr)
        return None
    n = wf_raw.shape[0]
    every = max(1, int(2 * model.range_um / dz))
    anchors = np.arange(every // 2, n, every)
    nearest = np.argmin(np.abs(np.arange(n)[:, None] - anchors[None, :]), axis=1)
    out = np.empty(wf_raw.shape, np.float32)
    for i, a in enumerate(anchors):
        planes = np.flatnonzero(nearest == i)
        z = [float((k - a) * dz) for k in planes]
        out[planes] = deepz.refocus(wf_raw[a].astype(np.float32), z, model=model, device="cpu",
                                   progress=False).data
    return wfcon.normalise(out, norm)


def run_model(model, wf_raw: np.ndarray) -> np.ndarray:
    return wfcon.confocal(wf_raw, model=model, device="cpu", progress=False).data


def accuracy(args, fields, models) -> dict:
    out = {}
    for name, (wf_raw, wf, gt, spacing) in fields.items():
        res = {"wide-field (identity)": scores(wf, gt)}
        preds = {}
        for label, model in models.items():
            t0 = time.perf_counter()
            preds[label] = run_model(model, wf_raw)
            res[label] = {**scores(preds[label], gt), "seconds": time.perf_counter() - t0}
        if args.deepz:
            dzp = deepz_plus(wf_raw, spacing[0], args.deepz, models["3D"].config.data.norm_percentiles)
            if dzp is not None:
                preds["Deep-Z+"] = dzp
                res["Deep-Z+"] = scores(dzp, gt)
        out[name] = {"scores": res, "preds": preds}
    return out


def mean_over_fields(acc: dict, key: str) -> dict:
    labels = next(iter(acc.values()))["scores"].keys()
    return {label: float(np.mean([f["scores"][label][key] for f in acc.values()])) for label in labels}


def per_depth_figure(acc: dict, fields: dict, path: Path) -> dict:
    first = next(iter(acc))
    wf_raw, wf, gt, spacing = fields[first]
    z = np.arange(gt.shape[0]) * spacing[0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for label, s in acc[first]["scores"].items():
        axes[0].plot(z, s["rmse_per_depth"], label=label)
        axes[1].plot(z, s["ssim_per_depth"], label=label)
    axes[0].set(xlabel="depth in stack (µm)", ylabel="RMSE ([0, 1] scale)", title=f"per-depth RMSE ({first})")
    axes[1].set(xlabel="depth in stack (µm)", ylabel="SSIM", title="per-depth SSIM")
    axes[0].legend(fontsize=8)
    sharp = {}
    for label, vol in (("wide-field", wf), ("confocal", gt), ("3D output", acc[first]["preds"]["3D"])):
        signal, background = sharpness_per_depth(vol, 32)
        sharp[label] = {"signal": signal.tolist(), "background": background.tolist()}
        line, = axes[2].plot(z, signal, label=f"{label} signal")
        axes[2].plot(z, background, "--", color=line.get_color(), label=f"{label} background")
    axes[2].set(xlabel="depth in stack (µm)", ylabel="mean |dI/dx| + |dI/dy| per patch", title="sharpness (Fig. 5b)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return sharp


def spectrum_figure(vols: dict, spacing, path: Path) -> dict:
    extents = {}
    fig, axes = plt.subplots(2, len(vols), figsize=(3.2 * len(vols), 6.2))
    for col, (label, vol) in enumerate(vols.items()):
        cov = fourier_coverage(vol, spacing)
        extents[label] = {"lateral_extent_per_um": cov.lateral_extent, "axial_extent_per_um": cov.axial_extent}
        amp, (kz, ky, kx) = amplitude_spectrum(vol, spacing)
        log = np.log10(amp / amp.max() + 1e-6)
        axes[0, col].imshow(log[len(kz) // 2], extent=(kx[0], kx[-1], ky[-1], ky[0]), vmin=-4, vmax=0, cmap="magma")
        axes[0, col].set(title=f"{label}\nlateral {cov.lateral_extent:.2f}/µm", xlabel="kx (1/µm)",
                         ylabel="ky (1/µm)")
        axes[1, col].imshow(log[:, len(ky) // 2], extent=(kx[0], kx[-1], kz[-1], kz[0]), vmin=-4, vmax=0,
                            cmap="magma", aspect="auto")
        axes[1, col].set(title=f"axial {cov.axial_extent:.2f}/µm", xlabel="kx (1/µm)", ylabel="kz (1/µm)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return extents


def z_subsampling(model, fields: dict) -> dict:
    out = {}
    for factor in (1, 2, 4):
        rm, ss = [], []
        for wf_raw, _, gt, spacing in fields.values():
            pred = wfcon.confocal(wf_raw[::factor], model=model, z_step_um=spacing[0] * factor, device="cpu",
                                  progress=False).data
            s = scores(pred, gt[: pred.shape[0]])
            rm.append(s["rmse"])
            ss.append(s["ssim"])
        out[f"{factor}x"] = {"rmse": float(np.mean(rm)), "ssim": float(np.mean(ss))}
    return out


def ablation(specs: list[str], fields: dict) -> dict:
    out = {}
    for spec in specs:
        label, directory = spec.split("=", 1)
        model = wfcon.load(directory)
        rm, ss, lat = [], [], []
        for wf_raw, _, gt, spacing in fields.values():
            pred = run_model(model, wf_raw)
            s = scores(pred, gt)
            rm.append(s["rmse"])
            ss.append(s["ssim"])
            lat.append(fourier_coverage(pred, spacing).lateral_extent)
        log = Path(directory) / "log.csv"
        iterations = int(np.loadtxt(log, delimiter=",", skiprows=1, usecols=0, ndmin=1)[-1]) if log.exists() else None
        out[label] = {"rmse": float(np.mean(rm)), "ssim": float(np.mean(ss)),
                      "lateral_extent_per_um": float(np.mean(lat)), "iterations": iterations}
    return out


def speed(model) -> dict:
    rng = np.random.default_rng(0)
    stack = rng.poisson(100.0, (64, 512, 512)).astype(np.uint16)
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        torch.matmul(a, b)
    gflops = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9
    t0 = time.perf_counter()
    wfcon.confocal(stack, model=model, device="cpu", progress=False)
    seconds = time.perf_counter() - t0
    return {"shape": list(stack.shape), "seconds": seconds, "voxels_per_second": stack.size / seconds,
            "matmul_gflops": gflops, "voxels_per_second_per_gflops": stack.size / seconds / gflops,
            "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, help="folder with widefield/ and confocal/ stacks")
    parser.add_argument("--fields", nargs="*", help="file names in the folder (default: all)")
    parser.add_argument("--crop-yx", type=int, help="use the central N x N pixels of every test field")
    parser.add_argument("--model", default="wfcon-60x14-tissue")
    parser.add_argument("--model-2d")
    parser.add_argument("--deepz", default="deepzplus-63x14-confocal", help="Deep-Z+ model name ('' to skip)")
    parser.add_argument("--ablation", nargs="*", default=[], help="LABEL=MODEL_DIR ...")
    parser.add_argument("--speed", action="store_true", help="only the speed measurement")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="only part 1 (RMSE / SSIM of --model, --model-2d, Deep-Z+), no figures or other studies")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.speed:
        result = {"date": datetime.date.today().isoformat(), "machine": platform.platform(), "cpus": os.cpu_count(),
                  "command": " ".join(sys.argv), "model": model_label(args.model), **speed(wfcon.load(args.model))}
        print(json.dumps(result, indent=1))
        write(result, args.out or RESULTS / "wfcon_speed.json")
        return
    if args.test is None:
        parser.error("--test DIR is needed for the studies (or --speed)")
    models = {"3D": wfcon.load(args.model)}
    if args.model_2d:
        models["2D"] = wfcon.load(args.model_2d)
    norm = models["3D"].config.data.norm_percentiles
    names = args.fields or sorted(p.name for p in (args.test / "widefield").iterdir())
    fields = {}
    for name in names:
        wf_img = io.read(args.test / "widefield" / name)
        wf_raw = np.asarray(wf_img.data)
        cf_raw = np.asarray(io.read(args.test / "confocal" / name).data)
        if args.crop_yx:
            y0, x0 = ((n - args.crop_yx) // 2 for n in wf_raw.shape[1:])
            box = (slice(None), slice(y0, y0 + args.crop_yx), slice(x0, x0 + args.crop_yx))
            wf_raw, cf_raw = wf_raw[box], cf_raw[box]
        gt = wfcon.normalise(cf_raw, norm)
        fields[name] = (wf_raw, wfcon.normalise(wf_raw, norm), gt, wf_img.spacing_zyx)

    result = {"date": datetime.date.today().isoformat(), "machine": platform.platform(),
              "cpus": os.cpu_count(), "command": " ".join(sys.argv).replace(str(args.test), args.test.name),
              "test_fields": names,
              "models": {k: model_label(m.path) for k, m in models.items()}}
    acc = accuracy(args, fields, models)
    result["rmse"] = mean_over_fields(acc, "rmse")
    result["ssim"] = mean_over_fields(acc, "ssim")
    result["ssim_3d"] = mean_over_fields(acc, "ssim_3d")
    if args.accuracy_only:
        result["per_field"] = {n: {k: {m: v[m] for m in ("rmse", "ssim", "ssim_3d")} for k, v in f["scores"].items()}
                               for n, f in acc.items()}
        for label in result["rmse"]:
            print(f"{label:24s} RMSE {result['rmse'][label]:.4f} SSIM {result['ssim'][label]:.4f} "
                  f"SSIM3D {result['ssim_3d'][label]:.4f}")
        write(result, args.out or RESULTS / "wfcon_heldout.json")
        return
    keys = ("rmse_per_depth", "ssim_per_depth")
    result["per_depth"] = {n: {k: {m: v[m] for m in keys} for k, v in f["scores"].items()} for n, f in acc.items()}
    result["sharpness"] = per_depth_figure(acc, fields, RESULTS / "wfcon_depth.png")
    first = next(iter(acc))
    wf_raw, wf, gt, spacing = fields[first]
    vols = {"wide-field": wf, **acc[first]["preds"], "confocal": gt}
    result["fourier_coverage"] = spectrum_figure(vols, spacing, RESULTS / "wfcon_spectra.png")
    result["z_subsampling"] = z_subsampling(models["3D"], fields)
    if args.ablation:
        result["ablation"] = ablation(args.ablation, fields)

    print(f"{'method':24s} {'RMSE':>8s} {'SSIM':>8s} {'SSIM3D':>8s}")
    for label in result["rmse"]:
        print(f"{label:24s} {result['rmse'][label]:8.4f} {result['ssim'][label]:8.4f} {result['ssim_3d'][label]:8.4f}")
    print("z-subsampling:", json.dumps(result["z_subsampling"]))
    print("Fourier coverage:", json.dumps(result["fourier_coverage"]))
    if "ablation" in result:
        print("ablation:", json.dumps(result["ablation"]))
    write(result, args.out or RESULTS / "wfcon.json")


def write(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
