"""The WFCON-Net section of ``widefield3d demo`` (:func:`demo_section`), with the shipped model."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt

from widefield3d.analysis.metrics import rmse, ssim
from widefield3d.methods.wfcon import confocal, load, normalise
from widefield3d.sim.dataset import dataset_preset, simulate_field


def demo_section(report, figures_dir: str | Path, seed: int = 0, progress: bool = True,
                 model: str | Path = "wfcon-60x14-tissue") -> dict:
    """Add a WFCON-Net section to a :class:`widefield3d.report.Report`: a small simulated tissue stack,
    wide-field input / network output / confocal ground truth side by side (x-y plane and x-z section).

    Writes ``figures_dir/wfcon_sections.png``; returns the scores (RMSE, SSIM vs the confocal stack) and seconds.
    """
    t0 = time.perf_counter()
    m = load(model)
    p = dataset_preset("wfcon-60x14-tissue").model_copy(
        update={"field_px": 96, "sample_depth_um": 20.0, "z_range_um": (-6.0, 5.5)})
    acqs = simulate_field(p, 0, seed)
    wf = normalise(acqs["widefield"].noisy, m.config.data.norm_percentiles)
    gt = normalise(acqs["confocal"].noisy, m.config.data.norm_percentiles)
    out = confocal(acqs["widefield"].noisy, model=m, device="cpu", progress=progress).data
    scores = {"input RMSE": rmse(wf, gt), "output RMSE": rmse(out, gt),
              "input SSIM": ssim(wf, gt, data_range=1.0), "output SSIM": ssim(out, gt, data_range=1.0)}
    dz, dy, dx = acqs["widefield"].spacing_um
    nz, ny, nx = out.shape
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), gridspec_kw={"height_ratios": [ny * dy, nz * dz]})
    for col, (title, vol) in enumerate((("wide-field input", wf), ("WFCON-Net output", out),
                                        ("confocal (ground truth)", gt))):
        axes[0, col].imshow(vol[nz // 2], cmap="gray", vmin=0, vmax=1, extent=(0, nx * dx, ny * dy, 0))
        axes[0, col].set(title=f"{title}, x-y at the middle plane", xlabel="x (µm)", ylabel="y (µm)")
        axes[1, col].imshow(vol[:, ny // 2], cmap="gray", vmin=0, vmax=1, extent=(0, nx * dx, nz * dz, 0),
                            aspect="equal")
        axes[1, col].set(title="x-z section", xlabel="x (µm)", ylabel="z (µm)")
    fig.tight_layout()
    report.heading("WFCON-Net: wide-field stack to confocal-like stack")
    report.text(f"Model {m.path.name if m.path else model}: a {nz}-plane, {ny} x {nx} px simulated tissue stack "
                f"(60x/1.4 oil, 0.5 µm steps) with scattering haze; all panels on the normalised [0, 1] scale.")
    report.figure(fig, "Wide-field input, WFCON-Net output and confocal ground truth (x-y and x-z).",
                  Path(figures_dir) / "wfcon_sections.png")
    scores["seconds"] = time.perf_counter() - t0
    report.table([{k: float(v) for k, v in scores.items()}], "WFCON-Net on the demo stack (vs confocal, [0, 1])")
    return scores
