"""The MFPINet section of ``widefield3d demo`` (:func:`demo_section`), with the shipped model."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from widefield3d import io
from widefield3d.methods.mfpi import SCALE, bicubic_upsample, degrade, load, multifocal, plane_metrics
from widefield3d.report import Report
from widefield3d.sim.dataset import dataset_preset, simulate_field


def demo_section(report: Report, figures_dir, *, seed: int = 0, progress: bool = True,
                 model: str = "mfpi-cytology-20x075") -> list[dict]:
    """Add the MFPINet section to a demo report: one simulated cytology field, its low-resolution input, the
    N output planes beside the scanned ground truth, and per-plane PSNR against the bicubic baseline.

    Returns the per-plane rows (plane offset in µm, PSNR of MFPINet and of bicubic + copy of the middle plane).
    """
    t0 = time.perf_counter()
    figures = Path(figures_dir)
    m = load(model)
    cfg = m.config
    field = simulate_field(dataset_preset("mfpi-cytology-20x075"), 0, seed)["brightfield"]
    gt = field.noisy.astype(np.float32)  # (3, 11, Y, X): the mechanically scanned 8-bit stack
    lowres = degrade(gt[:, cfg.network.planes // 2], blur_size=cfg.data.blur_size, blur_sigma=cfg.data.blur_sigma)
    low_img = io.Image(np.clip(np.rint(lowres), 0, 255).astype(np.uint8), "CYX",
                       (1.0, field.spacing_um[1] * SCALE, field.spacing_um[2] * SCALE))
    pred = multifocal(low_img, model=m, device="cpu", progress=progress).data.astype(np.float32)
    bicubic = bicubic_upsample(low_img.data, gt.shape[-2:])
    ours = plane_metrics(pred, gt)
    base = plane_metrics(np.repeat(bicubic[:, None], cfg.network.planes, axis=1), gt)
    rows = [{"z (µm)": float(z), "PSNR MFPINet (dB)": a["psnr"], "PSNR bicubic (dB)": b["psnr"],
             "SSIM MFPINet": a["ssim"]} for z, a, b in zip(m.z_offsets_um, ours, base)]

    report.heading("MFPINet: all focal planes at 2x resolution from one low-resolution image")
    report.text(f"A simulated H&E cytology field (20x/0.75 bright-field, {cfg.network.planes} planes "
                f"{cfg.data.z_step_um:g} µm "
                f"apart). Input: the middle plane bicubic-down-sampled x2 and blurred (5x5 Gaussian, sigma 3), "
                f"{lowres.shape[-1]} x {lowres.shape[-2]} px. Model: {model} (width {cfg.network.width:g}"
                + (", global skip: a residual on the bicubic up-sampled input, not in the paper"
                   if cfg.network.global_skip else "") + ").")
    rgb = lambda a: np.clip(np.moveaxis(a, 0, -1) / 255.0, 0, 1)  # noqa: E731
    fig, ax = plt.subplots(figsize=(3.2, 3.2))
    ax.imshow(rgb(low_img.data.astype(np.float32)))
    ax.set(title="low-resolution input", xticks=[], yticks=[])
    report.figure(fig, "The single low-resolution RGB image MFPINet starts from.", figures / "mfpi_input.png")
    n = cfg.network.planes
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6))
    for z in range(n):
        axes[0, z].imshow(rgb(pred[:, z]))
        axes[0, z].set_title(f"{m.z_offsets_um[z]:+.1f} µm\n{ours[z]['psnr']:.1f} dB", fontsize=7)
        axes[1, z].imshow(rgb(gt[:, z]))
        for a in axes[:, z]:
            a.set(xticks=[], yticks=[])
    axes[0, 0].set_ylabel("MFPINet", fontsize=8)
    axes[1, 0].set_ylabel("scanned", fontsize=8)
    fig.tight_layout()
    report.figure(fig, "Top: the 11 planes MFPINet produces in one pass (PSNR vs the scan). Bottom: the "
                  "mechanically scanned ground truth.", figures / "mfpi_planes.png")
    report.table(rows, "Per-plane PSNR on the 8-bit scale; bicubic = the up-sampled input used for every plane.")
    report.text(f"MFPINet section in {time.perf_counter() - t0:.1f} s.")
    return rows
