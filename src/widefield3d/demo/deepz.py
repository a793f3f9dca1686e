"""The Deep-Z section of ``widefield3d demo`` (:func:`demo_section`), with the shipped model."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from widefield3d import io
from widefield3d.analysis.metrics import ssim
from widefield3d.methods.deepz import load, refocus


def demo_section(report, out_dir: str | Path, stack_image, plane_image, z_um, progress: bool = True,
                 model: str = "deepz-20x075") -> dict:
    """Add a Deep-Z section to the demo report: the single plane refocused into a virtual stack.

    Parameters
    ----------
    report : widefield3d.report.Report
    out_dir : path
        Receives ``deepz_virtual_stack.ome.tif`` and ``figures/deepz_*.png``.
    stack_image : widefield3d.io.Image or ndarray
        The mechanically scanned ``(Z, Y, X)`` stack (camera counts).
    plane_image : widefield3d.io.Image or ndarray
        The single ``(Y, X)`` wide-field plane (same camera), focused at ``z_um == 0``.
    z_um : array_like
        ``(Z,)`` depth of each scanned plane relative to the single plane, µm.
    progress : bool
    model : str
        Model name or directory.

    Returns
    -------
    dict
        ``{"z_um", "ssim_deepz", "ssim_identity", "ssim_own_z0", "seconds"}`` per-depth SSIM against the scanned
        stack (``ssim_own_z0``: the model's own output nearest z = 0 copied to every plane, i.e. what denoising
        alone gives).
    """
    out_dir = Path(out_dir)
    stack = np.asarray(stack_image.data if isinstance(stack_image, io.Image) else stack_image, np.float32)
    plane = plane_image if isinstance(plane_image, io.Image) else io.Image(np.asarray(plane_image), "YX")
    z_um = np.asarray(z_um, np.float64)
    loaded = load(model)
    t0 = time.perf_counter()
    virtual = refocus(plane, z_um, model=loaded, progress=progress, allow_extrapolation=True).data
    seconds = time.perf_counter() - t0
    spacing = (float(np.diff(z_um).mean()) if len(z_um) > 1 else 1.0, *plane.spacing_zyx[1:])
    io.write(out_dir / "deepz_virtual_stack.ome.tif", io.Image(virtual, "ZYX", spacing))
    r = float(stack.max() - stack.min())
    identity = np.asarray(plane.data, np.float32)
    ssim_dz = [ssim(v, s, data_range=r) for v, s in zip(virtual, stack)]
    ssim_id = [ssim(identity, s, data_range=r) for s in stack]
    own_z0 = virtual[int(np.argmin(np.abs(z_um)))]
    ssim_own = [ssim(own_z0, s, data_range=r) for s in stack]

    report.heading("Deep-Z: the single plane refocused into a virtual stack")
    report.text(f"Model {model} ({loaded.config.description or 'see its README'}); {len(z_um)} planes from "
                f"{z_um[0]:+.1f} to {z_um[-1]:+.1f} µm in {seconds:.1f} s on this machine. Trained range "
                f"+-{loaded.range_um:g} µm. The scanned stack needed {len(z_um)} exposures; Deep-Z used one.")
    y0 = stack.shape[1] // 2
    extent = (0, stack.shape[2] * spacing[2], z_um[-1], z_um[0])
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    lo, hi = np.percentile(stack[:, y0], [0.5, 99.8])
    for ax, data, title in ((axes[0], stack, "mechanically scanned"), (axes[1], virtual, "Deep-Z virtual stack")):
        ax.imshow(data[:, y0], cmap="gray", extent=extent, aspect="auto", vmin=lo, vmax=hi)
        ax.set(title=f"{title}: x-z section at y = {y0 * spacing[1]:.1f} µm", xlabel="x (µm)", ylabel="z (µm)")
    fig.tight_layout()
    report.figure(fig, "x-z sections: scanned stack (41 exposures) and Deep-Z output from the single plane.",
                  out_dir / "figures" / "deepz_sections.png")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(z_um, ssim_dz, "o-", ms=3, label=f"Deep-Z (mean {np.mean(ssim_dz):.3f})")
    ax.plot(z_um, ssim_id, "s--", ms=3, label=f"input copied to every plane (mean {np.mean(ssim_id):.3f})")
    ax.plot(z_um, ssim_own, "^:", ms=3, label=f"Deep-Z's own z = 0 output copied (mean {np.mean(ssim_own):.3f})")
    ax.set(xlabel="refocus distance z (µm)", ylabel="SSIM vs scanned plane", title="per-depth SSIM")
    ax.legend(fontsize=8)
    fig.tight_layout()
    report.figure(fig, "SSIM of each virtual plane against the scanned plane at the same depth (data range of the "
                       "scanned stack), next to two baselines: the input copied to every plane, and the model's "
                       "own z = 0 output copied (a model that only denoises scores this curve).",
                  out_dir / "figures" / "deepz_ssim.png")
    return {"z_um": z_um.tolist(), "ssim_deepz": ssim_dz, "ssim_identity": ssim_id, "ssim_own_z0": ssim_own,
            "seconds": seconds}
