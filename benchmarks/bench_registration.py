"""PSF-based registration (WFCON-Net) vs cross-correlation on simulated wide-field/confocal pairs with known shifts.

Usage: nice python benchmarks/bench_registration.py [--fields 2] [--pairs 8] [--photons inf,2000,500,200]
       [--psf-shape 15,21,21] [--name registration]
Prints a table and writes benchmarks/results/NAME.json and NAME.png (box plots of the errors).

Simulation: thick tissue (wfcon-60x14 preset: 60x/1.4 oil, 0.108 µm pixels, 0.5 µm steps, scattering haze), cells of
4 µm so that a 10 µm crop holds several; one confocal stack per field and wide-field stacks of the same field focused
0, 1/4 and 1/2 z-step deeper (sub-step axial offsets). Each pair crops a confocal sub-stack and a wide-field sub-stack
whose content sits a known (dz, dy, dx) away: an integer z offset plus the focus offset, and a lateral offset applied
by a Fourier shift (sub-pixel). Both crops get independent Poisson noise (``photons`` at the brightest voxel of each;
``inf``: noise-free). Methods: ``psf`` (register_psf, defaults lam=1, mu=10, 200 iterations), ``xcorr`` (plain
cross-correlation, the paper's baseline) and ``phase`` (phase correlation with a Hann window).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
FOCUS_OFFSETS = (0.0, 0.25, 0.5)  # wide-field focus deeper by this fraction of a z-step
CROP = (24, 96, 96)
METHODS = ("psf", "xcorr", "phase")


def simulate_field(seed: int, field_px: int, n_planes: int):
    """Confocal stack and wide-field stacks at each focus offset of one tissue field (clean photons, ZYX)."""
    from widefield3d.optics.microscope import preset
    from widefield3d.sim.acquisition import fluorescence_stack
    from widefield3d.sim.camera import Camera
    from widefield3d.sim.samples import make_sample

    m = preset("wfcon-60x14")
    sample = make_sample("tissue", (n_planes, field_px, field_px), (m.z_step_um, m.pixel_um, m.pixel_um), seed=seed,
                         cell_diameter_um=4.0)
    z = m.z_step_um * np.arange(n_planes)
    cam = Camera(photons=1e6)
    confocal = fluorescence_stack(sample, m.with_(modality="confocal"), z, camera=cam, oversample=1).clean
    widefield = {a: fluorescence_stack(sample, m, z + a * m.z_step_um, camera=cam, oversample=1).clean
                 for a in FOCUS_OFFSETS}
    return confocal, widefield, (m.z_step_um, m.pixel_um, m.pixel_um)


def make_pair(confocal, widefield, rng):
    """One cropped pair and its true shift (voxels; moving the confocal crop by it aligns the pair)."""
    from widefield3d.sim.camera import fourier_shift

    a = FOCUS_OFFSETS[rng.integers(len(FOCUS_OFFSETS))]
    dz = int(rng.integers(-3, 4))
    dy, dx = rng.uniform(-4, 4, size=2)
    wf = fourier_shift(widefield[a], (dy - np.floor(dy), dx - np.floor(dx)))
    nz, ny, nx = confocal.shape
    margin = 6
    z0 = int(rng.integers(4, nz - CROP[0] - 4 + 1))
    y0, x0 = (int(rng.integers(margin, n - c - margin + 1)) for n, c in zip((ny, nx), CROP[1:]))
    c = confocal[z0:z0 + CROP[0], y0:y0 + CROP[1], x0:x0 + CROP[2]]
    zs, ys, xs = z0 - dz, y0 - int(np.floor(dy)), x0 - int(np.floor(dx))
    w = wf[zs:zs + CROP[0], ys:ys + CROP[1], xs:xs + CROP[2]]
    return w, c, np.array([dz - a, dy, dx])


def add_noise(stack, photons, rng):
    if np.isinf(photons):
        return stack.astype(np.float32)
    return rng.poisson(np.clip(stack, 0, None) / stack.max() * photons).astype(np.float32)


def stats(errors: np.ndarray) -> dict:
    return {"median": float(np.median(errors)), "p90": float(np.percentile(errors, 90)), "max": float(errors.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", type=int, default=2, help="simulated tissue fields")
    parser.add_argument("--pairs", type=int, default=8, help="pairs per noise level")
    parser.add_argument("--photons", default="inf,2000,500,200", help="photons at the brightest voxel, per level")
    parser.add_argument("--field-px", type=int, default=128)
    parser.add_argument("--psf-shape", default="15,21,21")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="registration", help="stem of the result files")
    args = parser.parse_args()

    from widefield3d.prep.psf_registration import register_psf, register_xcorr

    levels = [float(p) for p in args.photons.split(",")]
    psf_shape = tuple(int(v) for v in args.psf_shape.split(","))
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    fields = [simulate_field(args.seed * 1000 + i, args.field_px, 48) for i in range(args.fields)]
    spacing = fields[0][2]
    t_sim = time.perf_counter() - t0
    print(f"simulated {args.fields} fields in {t_sim:.0f} s", flush=True)

    records = []
    timing = {m: 0.0 for m in METHODS}
    for photons in levels:
        for i in range(args.pairs):
            confocal, widefield, _ = fields[i % len(fields)]
            w, c, truth = make_pair(confocal, widefield, rng)
            w, c = add_noise(w, photons, rng), add_noise(c, photons, rng)
            for method in METHODS:
                t = time.perf_counter()
                if method == "psf":
                    found = register_psf(w, c, spacing_um=spacing, psf_shape=psf_shape)
                else:
                    found = register_xcorr(w, c, spacing_um=spacing, phase=method == "phase")
                timing[method] += time.perf_counter() - t
                records.append({"photons": photons, "method": method, "truth_px": truth.tolist(),
                                "found_px": list(found.px)})
        print(f"photons {photons:g}: done ({time.perf_counter() - t0:.0f} s)", flush=True)

    summary = {}
    header = f"{'photons':>8} {'method':>6} | " + " | ".join(f"{a} err med/p90/max ({u})" for a, u in
                                                              (("z", "steps"), ("y", "px"), ("x", "px")))
    print(header)
    for photons in levels:
        for method in METHODS:
            rows = [r for r in records if r["photons"] == photons and r["method"] == method]
            err = np.abs(np.array([r["found_px"] for r in rows]) - np.array([r["truth_px"] for r in rows]))
            entry = {}
            for k, axis in enumerate("zyx"):
                s_px = stats(err[:, k])
                entry[axis] = {"px": s_px, "um": {key: v * spacing[k] for key, v in s_px.items()}}
            summary.setdefault(f"{photons:g}", {})[method] = entry
            print(f"{photons:>8g} {method:>6} | " + " | ".join(
                f"{entry[a]['px']['median']:.2f}/{entry[a]['px']['p90']:.2f}/{entry[a]['px']['max']:.2f}"
                for a in "zyx"))
    target = {f"{p:g}": (summary[f"{p:g}"]["psf"]["z"]["px"]["median"] < summary[f"{p:g}"]["xcorr"]["z"]["px"]["median"]
                         and summary[f"{p:g}"]["psf"]["z"]["px"]["max"] <= 0.5) for p in levels}
    print("target (psf z error below xcorr's median and max <= 0.5 step):", target)

    result = {
        "benchmark": "PSF-based registration vs cross-correlation on simulated tissue pairs",
        "command": "nice python benchmarks/bench_registration.py " + " ".join(sys.argv[1:]),
        "date": dt.date.today().isoformat(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "fields": args.fields, "pairs_per_level": args.pairs, "crop": list(CROP), "psf_shape": list(psf_shape),
        "spacing_um": list(spacing), "focus_offsets_steps": list(FOCUS_OFFSETS),
        "seconds": {"simulation": t_sim, **{f"{m}_per_pair": timing[m] / (len(levels) * args.pairs) for m in METHODS}},
        "summary": summary, "target_met": target, "pairs": records,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(records, levels, RESULTS / f"{args.name}.png")
    print(f"wrote {RESULTS / args.name}.json and .png")


def plot(records, levels, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    colours = {"psf": "tab:orange", "xcorr": "tab:blue", "phase": "tab:green"}
    for k, (ax, axis, unit) in enumerate(zip(axes, "zyx", ("z-steps", "pixels", "pixels"))):
        for j, method in enumerate(METHODS):
            data = []
            for photons in levels:
                rows = [r for r in records if r["photons"] == photons and r["method"] == method]
                data.append([abs(r["found_px"][k] - r["truth_px"][k]) for r in rows])
            pos = np.arange(len(levels)) * (len(METHODS) + 1) + j
            bp = ax.boxplot(data, positions=pos, widths=0.8, patch_artist=True, showfliers=True)
            for box in bp["boxes"]:
                box.set_facecolor(colours[method])
            ax.plot([], [], color=colours[method], lw=6, label=method)
        ax.set_xticks(np.arange(len(levels)) * (len(METHODS) + 1) + 1)
        ax.set_xticklabels([f"{p:g}" for p in levels])
        ax.set_xlabel("photons at brightest voxel")
        ax.set_ylabel(f"|error| ({unit})")
        ax.set_title(f"{axis} error")
        if axis == "z":
            ax.axhline(0.5, color="k", ls="--", lw=0.8)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
