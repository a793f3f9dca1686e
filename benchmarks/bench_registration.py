"""PSF-based registration (WFCON-Net) vs cross-correlation on simulated wide-field/confocal pairs with known shifts;
with ``--align-stack``, plane alignment of a z-stack (Deep-Z preparation): ours vs pystackreg.

Usage: nice python benchmarks/bench_registration.py [--fields 2] [--pairs 8] [--photons inf,2000,500,200]
       [--psf-shape 15,21,21] [--name registration]
       nice -n 19 python benchmarks/bench_registration.py --align-stack [--repeats 5] [--plane-px 128]
Prints a table and writes benchmarks/results/NAME.json and NAME.png (box plots of the errors); ``--align-stack``
writes NAME.json only (default name ``registration_align``).

Plane alignment (``--align-stack``): a bead layer (deepz-20x075 preset, 150 beads per 128 px field, Poisson noise)
imaged at 17 planes 0.5 µm apart; every plane but the middle one is rotated by up to 2 degrees and shifted by up to
3 px (a new draw per repeat), then :func:`widefield3d.prep.align.align_stack` with ``method="rigid"`` (ours) and
``method="stackreg"`` (pystackreg) undoes it. Residual per plane: the angle and the shift left after composing the
applied and the found transform. Timings alternate the two methods within each repeat; medians over repeats.

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


def bead_layer_stack(seed: int, plane_px: int) -> np.ndarray:
    """A noisy wide-field stack of one bead layer (deepz-20x075, 17 planes 0.5 µm apart, the layer between two)."""
    from widefield3d.optics.microscope import preset
    from widefield3d.sim.acquisition import fluorescence_stack
    from widefield3d.sim.samples import make_sample

    m = preset("deepz-20x075")
    fine = (0.5, m.pixel_um / 2, m.pixel_um / 2)
    sample = make_sample("tilted-beads", (21, 2 * plane_px, 2 * plane_px), fine, seed=seed, angle_deg=0.0,
                         z0_um=5.2, n_beads=round(150 * (plane_px / 128) ** 2))
    return fluorescence_stack(sample, m, np.arange(1.0, 9.01, 0.5), seed=seed).noisy.astype(np.float32)


def residuals(applied: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per plane: |angle| (deg) and |shift| (px) left after applying ``applied`` then ``found``
    (convention of :mod:`widefield3d.prep.align`)."""
    a = np.radians(found[:, 0])
    rot = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], -2)
    shift = np.einsum("kij,kj->ki", rot, applied[:, 1:]) + found[:, 1:]
    return np.abs(applied[:, 0] + found[:, 0]), np.hypot(shift[:, 0], shift[:, 1])


def align_benchmark(args) -> None:
    """Plane alignment of a z-stack with known rigid motions: ours vs pystackreg (residual, seconds)."""
    from widefield3d.prep.align import align_stack, rigid_warp

    methods = ("rigid", "stackreg")
    stack = bead_layer_stack(args.seed, args.plane_px)
    mid = len(stack) // 2
    seconds = {m: [] for m in methods}
    angle = {m: [] for m in methods}
    shift = {m: [] for m in methods}
    for r in range(args.repeats):
        rng = np.random.default_rng(args.seed + 1 + r)
        applied = np.column_stack([rng.uniform(-2, 2, len(stack)), rng.uniform(-3, 3, (len(stack), 2))])
        applied[mid] = 0
        moved = np.stack([rigid_warp(p, *t) for p, t in zip(stack, applied)])
        for method in methods if r % 2 == 0 else methods[::-1]:
            start = time.perf_counter()
            _, found = align_stack(moved, method=method)
            seconds[method].append(time.perf_counter() - start)
            angle_err, shift_err = residuals(applied, found)
            angle[method].extend(angle_err.tolist())
            shift[method].extend(shift_err.tolist())
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{m} {seconds[m][-1]:.2f} s" for m in methods),
              flush=True)
    summary = {m: {"seconds_median": float(np.median(seconds[m])), "seconds": seconds[m],
                   "angle_error_deg": stats(np.array(angle[m])), "shift_error_px": stats(np.array(shift[m]))}
               for m in methods}
    ratio = summary["rigid"]["seconds_median"] / summary["stackreg"]["seconds_median"]
    print(f"{'method':>8} | median s | shift err med/p90/max (px) | angle err med/p90/max (deg)")
    for m in methods:
        e, g = summary[m]["shift_error_px"], summary[m]["angle_error_deg"]
        print(f"{m:>8} | {summary[m]['seconds_median']:8.2f} | {e['median']:.3f}/{e['p90']:.3f}/{e['max']:.3f}"
              f"               | {g['median']:.3f}/{g['p90']:.3f}/{g['max']:.3f}")
    print(f"stackreg is {ratio:.2f}x as fast as rigid (median over {args.repeats} repeats)")
    result = {
        "benchmark": "z-stack plane alignment: ours (rigid) vs pystackreg (stackreg), known rigid motions",
        "command": "nice -n 19 python benchmarks/bench_registration.py " + " ".join(sys.argv[1:]),
        "date": dt.date.today().isoformat(), "machine": platform.platform(), "cpus": os.cpu_count(),
        "planes": len(stack), "plane_px": args.plane_px, "repeats": args.repeats,
        "applied": "rotation U(-2, 2) deg, shift U(-3, 3) px per axis, all planes but the middle",
        "summary": summary, "speed_ratio_rigid_over_stackreg": ratio,
    }
    RESULTS.mkdir(exist_ok=True)
    name = args.name if args.name != "registration" else "registration_align"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS / name}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", type=int, default=2, help="simulated tissue fields")
    parser.add_argument("--pairs", type=int, default=8, help="pairs per noise level")
    parser.add_argument("--photons", default="inf,2000,500,200", help="photons at the brightest voxel, per level")
    parser.add_argument("--field-px", type=int, default=128)
    parser.add_argument("--psf-shape", default="15,21,21")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="registration", help="stem of the result files")
    parser.add_argument("--align-stack", action="store_true", help="benchmark plane alignment instead (see above)")
    parser.add_argument("--repeats", type=int, default=5, help="--align-stack: random motions drawn and timed")
    parser.add_argument("--plane-px", type=int, default=128, help="--align-stack: side of the planes")
    args = parser.parse_args()
    if args.align_stack:
        align_benchmark(args)
        return

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
