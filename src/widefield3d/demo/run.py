"""The main job (`widefield3d demo`): simulate a worm, image it, report what a wide-field microscope sees, and
run every method on simulated data with the shipped models.

Writes into the output directory: the single wide-field plane (the input of every refocusing method), the
mechanically scanned stack (+-10 µm, 0.5 µm steps) with its noise-free version and ground truth, the PSF,
and ``report.html`` with figures (input, x-z / y-z sections of the stack, PSF profiles), followed by one section
per method (``METHODS``): Deep-Z refocuses the single plane into a virtual stack beside the scanned one, MFPINet
rebuilds 11 focal planes of a cytology field at 2x, WFCON-Net turns a tissue stack confocal-like, and the
bright-field volume reconstruction recovers a cell-like volume from its focal stack.
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from widefield3d import io
from widefield3d.analysis.resolution import axial_asymmetry, fwhm_1d
from widefield3d.errors import InputError
from widefield3d.optics.microscope import Microscope, preset
from widefield3d.optics.psf import widefield_psf
from widefield3d.report import Report
from widefield3d.sim.acquisition import fluorescence_plane, fluorescence_stack
from widefield3d.sim.camera import Camera
from widefield3d.sim.samples import make_sample


def _sections_figure(stack: np.ndarray, spacing, z_um: np.ndarray) -> plt.Figure:
    dz, dy, dx = spacing
    nz, ny, nx = stack.shape
    y0, x0 = ny // 2, nx // 2
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.5))
    extent_x = (0, nx * dx, z_um[-1] - z_um[nz // 2], z_um[0] - z_um[nz // 2])
    axes[0].imshow(stack[:, y0, :], cmap="gray", extent=extent_x, aspect="equal")
    axes[0].set(title=f"x-z section at y = {y0 * dy:.1f} µm", xlabel="x (µm)", ylabel="z (µm)")
    extent_y = (0, ny * dy, extent_x[2], extent_x[3])
    axes[1].imshow(stack[:, :, x0], cmap="gray", extent=extent_y, aspect="equal")
    axes[1].set(title=f"y-z section at x = {x0 * dx:.1f} µm", xlabel="y (µm)", ylabel="z (µm)")
    fig.tight_layout()
    return fig


def _psf_figure(psf: np.ndarray, spacing, m: Microscope) -> tuple[plt.Figure, dict]:
    dz, dxy, _ = spacing
    nz, n, _ = psf.shape
    c = n // 2
    axial = psf[:, c, c] / psf[:, c, c].max()
    lateral = psf[nz // 2, c] / psf[nz // 2, c].max()
    z = (np.arange(nz) - nz // 2) * dz
    r = (np.arange(n) - c) * dxy
    stats = {
        "lateral FWHM (µm)": fwhm_1d(psf[nz // 2, c], dxy),
        "0.51 λ/NA (µm)": m.lateral_resolution_um,
        "axial FWHM (µm)": fwhm_1d(psf[:, c, c], dz),
        "axial asymmetry A": axial_asymmetry(psf, spacing),
    }
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].imshow(np.log10(psf[:, c, :] / psf.max() + 1e-4), cmap="magma", aspect="equal",
                   extent=(r[0], r[-1], z[-1], z[0]))
    axes[0].set(title="PSF x-z (log10)", xlabel="x (µm)", ylabel="defocus z (µm)")
    axes[1].plot(z, axial, label="axial (through centre)")
    axes[1].plot(-z, axial, "--", alpha=0.6, label="mirrored: shows the asymmetry")
    axes[1].set(xlabel="defocus z (µm, + = deeper)", ylabel="normalised intensity", title="axial profile")
    axes[1].legend(fontsize=8)
    axes[2].plot(r, lateral)
    axes[2].axhline(0.5, color="gray", lw=0.5)
    axes[2].set(xlim=(-2, 2), xlabel="x (µm)", title=f"lateral profile, FWHM {stats['lateral FWHM (µm)']:.3f} µm")
    fig.tight_layout()
    return fig, stats


METHODS = ("deepz", "mfpi", "wfcon", "volume", "activity")


def run_demo(out_dir: str | Path = "demo-output", *, seed: int = 0, field_px: int = 256, progress: bool = True,
             methods: tuple[str, ...] = METHODS) -> Path:
    """Run the demo and return the path of the report (``field_px`` camera pixels per side; ``methods`` picks
    the method sections, a subset of ``METHODS``)."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise InputError(f"demo: unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    m = preset("deepz-20x075")
    k = 2
    fine = (0.5, m.pixel_um / k, m.pixel_um / k)
    sample = make_sample("worm", (60, field_px * k, field_px * k), fine, seed=seed)
    centre = sample.density.shape[0] * fine[0] / 2
    z = centre + np.arange(-10.0, 10.0 + 0.25, 0.5)
    camera = Camera(photons=2000.0)
    stack = fluorescence_stack(sample, m, z, camera=camera, seed=seed, progress=progress)
    plane = fluorescence_plane(sample, m, centre, camera=camera, seed=seed + 1)
    psf_spacing = (0.25, m.pixel_um / k, m.pixel_um / k)
    psf = widefield_psf(m, (81, 65, 65), psf_spacing)

    io.write(out / "input_plane.ome.tif", plane.as_image("noisy"))
    io.write(out / "scanned_stack.ome.tif", stack.as_image("noisy"))
    io.write(out / "scanned_stack_clean.ome.tif", stack.as_image("clean"))
    io.write(out / "truth.ome.tif", stack.as_image("truth"))
    io.write(out / "psf.ome.tif", io.Image(psf, axes="ZYX", spacing_um=psf_spacing))

    report = Report("widefield3d demo: a simulated C. elegans-like worm under a 20x/0.75 air objective")
    report.text(
        f"Microscope preset deepz-20x075: NA {m.na}, {m.magnification:g}x, pixel {m.pixel_um:.3f} µm, "
        f"imaging {m.depth_um:g} µm into a sample of index {m.sample_index}. Camera: {camera.photons:g} photons at "
        f"the brightest pixel, read noise {camera.read_noise_e} e-. Stack: {len(z)} planes, "
        f"{z[0] - centre:+.1f} to {z[-1] - centre:+.1f} µm around the middle of the worm."
    )
    report.heading("Input: one wide-field image")
    fig, ax = plt.subplots(figsize=(6, 6))
    ny, nx = plane.noisy.shape
    ax.imshow(plane.noisy, cmap="gray", extent=(0, nx * m.pixel_um, ny * m.pixel_um, 0))
    ax.set(xlabel="x (µm)", ylabel="y (µm)", title="wide-field plane at the worm's middle (camera counts)")
    report.figure(fig, "The single 2D image that refocusing methods start from.", figures / "input_plane.png")
    report.heading("Mechanically scanned stack")
    report.figure(_sections_figure(stack.noisy.astype(np.float32), stack.spacing_um, z),
                  "x-z and y-z sections of the scanned stack (what Deep-Z learns to reproduce).",
                  figures / "stack_sections.png")
    report.figure(_sections_figure(stack.truth, stack.spacing_um, z),
                  "The same sections of the ground-truth density.", figures / "truth_sections.png")
    report.heading("Point spread function")
    fig, stats = _psf_figure(psf, psf_spacing, m)
    report.figure(fig, "Vectorial Gibson-Lanni PSF at 20 µm depth: the air/water mismatch makes it asymmetric.",
                  figures / "psf_profiles.png")
    report.table([{k_: v for k_, v in stats.items()}], "PSF measures (asymmetry: analysis.resolution.axial_asymmetry)")
    report.text(f"Simulated in {time.perf_counter() - t0:.1f} s.")
    _method_sections(report, out, figures, methods, stack, plane, z - centre, seed, progress)
    report.text(f"Demo finished in {time.perf_counter() - t0:.1f} s.")
    return report.write(out / "report.html")


def _method_sections(report, out, figures, methods, stack, plane, dz_um, seed, progress) -> None:
    """One report section per method, each with its shipped model (imports are deferred: they load torch)."""
    if "deepz" in methods:
        from widefield3d.demo import deepz

        deepz.demo_section(report, out, stack.as_image("noisy"), plane.as_image("noisy"), dz_um, progress=progress)
    if "mfpi" in methods:
        from widefield3d.demo import mfpi

        mfpi.demo_section(report, figures, seed=seed, progress=progress)
    if "wfcon" in methods:
        from widefield3d.demo import wfcon

        wfcon.demo_section(report, figures, seed=seed, progress=progress)
    if "volume" in methods:
        from widefield3d.demo import volume

        volume.demo_section(report, figures, seed=seed, progress=progress)
    if "activity" in methods:
        from widefield3d.demo import activity

        activity.demo_section(report, out, seed=seed, progress=progress)
