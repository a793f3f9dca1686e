"""Deep-Z bead analyses of the paper's Fig. 1 and Fig. 4 on simulated beads, through `widefield3d.refocus`.

(a) Fig. 1: 300 nm beads on a flat coverslip. One plane (the in-focus one) is refocused by Deep-Z to a virtual
    stack over -10..+10 µm (0.5 µm steps, 41 planes); the mechanically scanned stack over the same planes is the
    reference. Lateral and axial FWHM of every isolated bead (widefield3d.analysis.beads, the paper's 2D Gaussian
    fits) from both; histograms and medians; n >= 300 beads over several fields.
(b) Fig. 4: beads on a plane tilted by 1.5 degrees and on a cylinder of 7.2 mm diameter (the paper's glass
    tube). One image is recorded at the middle focal plane; Deep-Z refocuses it onto the true surface
    (DPM = surface z - focal plane, per pixel). Lateral FWHM of the beads in the raw and the refocused image.
    The image is normalised against itself (the paper's test-time rule) or, for the "reference" rows, against an
    in-focus image of another bead slide at the same exposure (`refocus --reference`; docs/deepz.md,
    "Normalisation").

(c) Accuracy of the preparation layer on the same kind of data (widefield3d.prep): rigid alignment of a stack
    with known rotations/shifts, SSIM focus zero of a bead layer between planes, triangle normalisation, patch
    cover vs a grid, projective registration of a known homography, and the bead FWHM against the PSF.

The scanned/raw halves need no model, so the script runs (and reports them) even before a Deep-Z model exists;
the Deep-Z columns are then marked pending.

    OMP_NUM_THREADS=2 nice python benchmarks/deepz_beads.py [--model deepz-20x075] [--fields 4] [--quick]
        [--only fig4] [--name NAME]

Prints a table and writes benchmarks/results/deepz_beads.json, deepz_beads_fig1.png, deepz_beads_fig4_tilted.png
and deepz_beads_fig4_curved.png (histograms), deepz_beads_fig4_{tilted,curved}_by_depth.png (median width per 1 µm
of surface depth; ``--replot`` redraws these from the JSON alone) (--quick: the same under deepz_beads_quick*, a
smoke run).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from widefield3d.analysis.beads import fwhm_histograms, measure_beads, summarise
from widefield3d.errors import InputError
from widefield3d.io import atomic_output
from widefield3d.optics.microscope import preset
from widefield3d.sim.acquisition import fluorescence_plane, fluorescence_stack
from widefield3d.sim.dataset import dataset_preset
from widefield3d.sim.samples import make_sample
from widefield3d.zoo import model_label

RESULTS = Path(__file__).parent / "results"
MICROSCOPE = "deepz-20x075"  # the paper's 20x/0.75 NA, 0.325 µm pixels, 0.5 µm steps
OVERSAMPLE = 2  # fine-grid pixels per camera pixel
BEADS_PER_100UM2 = 1.0  # bead density on the surface: most beads stay isolated within the 30 px window
TILT_DEG = 1.5
CYLINDER_RADIUS_UM = 3600.0  # 7.2 mm diameter glass tube


def camera_surface(surface_fine: np.ndarray) -> np.ndarray:
    """Sample surface (fine grid) averaged onto camera pixels."""
    ny, nx = (n // OVERSAMPLE for n in surface_fine.shape)
    s = surface_fine[: ny * OVERSAMPLE, : nx * OVERSAMPLE]
    return s.reshape(ny, OVERSAMPLE, nx, OVERSAMPLE).mean(axis=(1, 3))


def _load_model(name: str):
    from widefield3d.methods.deepz import load

    try:
        return load(name)
    except (InputError, FileNotFoundError, ImportError) as err:
        print(f"Deep-Z model {name!r} not available ({err}); Deep-Z results are pending", file=sys.stderr)
        return None


def fig1(model, args, camera, microscope) -> dict:
    """Virtual stack from one plane vs the scanned stack, beads on a flat coverslip."""
    from widefield3d.methods.deepz import refocus

    dz = microscope.z_step_um
    offsets = np.round(np.arange(-10.0, 10.0 + dz / 2, dz), 6)
    fine = microscope.pixel_um / OVERSAMPLE
    scanned_rows, deepz_rows, seconds = [], [], 0.0
    for field in range(args.fields):
        sample = make_sample("tilted-beads", (3, args.field_px * OVERSAMPLE, args.field_px * OVERSAMPLE),
                             (dz, fine, fine), seed=args.seed + field, angle_deg=0.0, z0_um=dz,
                             density_per_100um2=BEADS_PER_100UM2)
        stack = fluorescence_stack(sample, microscope, dz + offsets, camera=camera, seed=args.seed + field)
        scanned = stack.noisy.astype(np.float32)
        scanned_rows += measure_beads(scanned, stack.spacing_um)
        if model is not None:
            start = time.perf_counter()
            virtual = refocus(scanned[len(offsets) // 2], offsets, model=model, device=args.device,
                               progress=False).data
            seconds += time.perf_counter() - start
            deepz_rows += measure_beads(virtual, stack.spacing_um)
        print(f"fig1 field {field + 1}/{args.fields}: {len(scanned_rows)} scanned beads so far", file=sys.stderr)
    tables = {"scanned (41 images)": scanned_rows}
    if model is not None:
        tables["Deep-Z (1 image)"] = deepz_rows
    fwhm_histograms(tables, RESULTS / f"{args.name}_fig1.png", title="Fig. 1: virtual vs scanned stack")
    return {"scanned": summarise(scanned_rows), "deepz": summarise(deepz_rows) if model is not None else None,
            "fields": args.fields, "field_px": args.field_px, "refocus_seconds": seconds if model is not None else None}


def surface_sample(kind: str, args, microscope):
    """The Fig. 4 bead sample of ``kind`` (tilted plane or cylinder) on the fine grid, with its surface depth (µm)."""
    dz = microscope.z_step_um
    n = args.surface_px * OVERSAMPLE
    fine = microscope.pixel_um / OVERSAMPLE
    half_span = args.surface_px * microscope.pixel_um / 2
    if kind == "tilted-beads":
        sag = np.tan(np.radians(TILT_DEG)) * 2 * half_span
        options = {"angle_deg": TILT_DEG, "axis": "x"}
    else:
        sag = CYLINDER_RADIUS_UM - np.sqrt(CYLINDER_RADIUS_UM**2 - half_span**2)
        options = {"radius_um": CYLINDER_RADIUS_UM, "axis": "y", "bulge": "toward"}
    nz = int(np.ceil((sag + 2.0) / dz)) + 1
    return make_sample(kind, (nz, n, n), (dz, fine, fine), seed=args.seed, density_per_100um2=BEADS_PER_100UM2,
                       **options)


VIAS = {"dpm": ("deepz", "Deep-Z onto the surface"), "planes": ("deepz_planes", "Deep-Z, flat planes interpolated"),
        "calibrated": ("deepz_calibrated", "Deep-Z onto the surface, depth-calibrated"),
        "reference": ("deepz_reference", "Deep-Z onto the surface, in-focus reference")}
"""Ways onto a surface: the paper's (the DPM map into the network), flat planes interpolated, the DPM map through
the model's depth calibration (only for a model that has one), and the DPM map with the image normalised against an
in-focus bead image (:func:`reference_image`) instead of itself."""


def reference_image(args, camera, microscope) -> np.ndarray:
    """An in-focus image of another slide of beads (flat, same density and exposure): what a user records once to
    normalise against (``refocus --reference``)."""
    dz, n = microscope.z_step_um, args.surface_px * OVERSAMPLE
    fine = microscope.pixel_um / OVERSAMPLE
    sample = make_sample("tilted-beads", (3, n, n), (dz, fine, fine), seed=args.seed + 1000, angle_deg=0.0, z0_um=dz,
                         density_per_100um2=BEADS_PER_100UM2)
    return fluorescence_plane(sample, microscope, dz, camera=camera, seed=args.seed + 1000).noisy.astype(np.float32)


def _width_by_depth(rows, surface_um: np.ndarray, spacing_um) -> dict[str, dict]:
    """Median lateral FWHM (µm) and bead count per 1 µm bin of the surface's depth (from focus) at each bead.

    Keyed by the bin's label (``"-5..-4"``, the rows of the tables); each value carries its bounds as ``depth_um``.
    """
    iy = [min(int(r["y_um"] / spacing_um[0]), surface_um.shape[0] - 1) for r in rows]
    ix = [min(int(r["x_um"] / spacing_um[1]), surface_um.shape[1] - 1) for r in rows]
    depth = surface_um[iy, ix] if rows else np.zeros(0)
    width = np.array([r["fwhm_lateral_um"] for r in rows], dtype=np.float64)
    out = {}
    for lo in np.arange(np.floor(depth.min()), np.ceil(depth.max())) if rows else []:
        sel = (depth >= lo) & (depth < lo + 1) & np.isfinite(width)
        if sel.any():
            out[f"{lo:+.0f}..{lo + 1:+.0f}"] = {"depth_um": [float(lo), float(lo + 1)], "n": int(sel.sum()),
                                                "fwhm_lateral_median_um": float(np.median(width[sel]))}
    return out


def _surface_name(kind: str) -> str:
    return f"{TILT_DEG} deg tilt" if kind == "tilted-beads" else "7.2 mm cylinder"


def depth_profile_figure(entry: dict, path: Path, title: str, in_focus_um: float | None = None) -> None:
    """PNG of the median lateral FWHM per 1 µm of surface depth (a Fig. 4 entry's ``*_by_depth``), one line per
    image (raw, Deep-Z and its variants), with the in-focus width and the target (in focus + 15 %) if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels = {"raw": "raw image", **{key: label for key, label in VIAS.values()}}
    fig, ax = plt.subplots(figsize=(8.6, 3.6))
    for key, label in labels.items():
        by_depth = entry.get(f"{key}_by_depth") or {}
        if by_depth:
            centre = [float(np.mean(v["depth_um"])) for v in by_depth.values()]
            ax.plot(centre, [v["fwhm_lateral_median_um"] for v in by_depth.values()], "o-", ms=3, label=label)
    if in_focus_um is not None:
        ax.axhline(in_focus_um, color="k", lw=0.8, ls=":", label=f"in-focus beads ({in_focus_um:.2f} µm)")
        ax.axhline(1.15 * in_focus_um, color="k", lw=0.8, ls="--", label="target (in focus + 15 %)")
    ax.set_yscale("log")
    ticks = [0.4, 0.5, 0.6, 0.8, 1, 1.5, 2, 3, 4, 6, 8]
    low, high = ax.get_ylim()
    ax.set_yticks([t for t in ticks if low <= t <= high], [f"{t:g}" for t in ticks if low <= t <= high])
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("surface depth relative to the focal plane (µm, 1 µm bins)")
    ax.set_ylabel("lateral FWHM median (µm)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _depth_profiles(results: dict, name: str) -> None:
    in_focus = (results.get("prep") or {}).get("beads_vs_psf", {}).get("lateral_median_um")
    for kind, entry in results["fig4"].items():
        depth_profile_figure(entry, RESULTS / f"{name}_fig4_{kind.split('-')[0]}_by_depth.png",
                             f"Fig. 4: {_surface_name(kind)}, width per surface depth", in_focus)


def fig4(model, args, camera, microscope, *, kinds=("tilted-beads", "curved-beads"), vias=tuple(VIAS)) -> dict:
    """Raw image at the middle focal plane vs Deep-Z refocused onto the true surface."""
    from widefield3d.methods.deepz import reference_normalisation, refocus

    if model is None or model.depth_calibration is None:
        vias = tuple(v for v in vias if v != "calibrated")
    reference = (reference_normalisation(reference_image(args, camera, microscope), model)
                 if model is not None and "reference" in vias else None)
    out = {}
    for kind in kinds:
        tables = {}
        sample = surface_sample(kind, args, microscope)
        surface = camera_surface(sample.surface_um)
        focus = float(0.5 * (surface.min() + surface.max()))
        raw = fluorescence_plane(sample, microscope, focus, camera=camera, seed=args.seed)
        image = raw.noisy.astype(np.float32)
        dpm = (surface - focus).astype(np.float32)
        raw_rows = measure_beads(image, raw.spacing_um[1:])
        entry = {"raw": summarise(raw_rows), "dpm_range_um": [float(dpm.min()), float(dpm.max())],
                 "field_px": args.surface_px, "deepz": None,
                 "raw_by_depth": _width_by_depth(raw_rows, dpm, raw.spacing_um[1:])}
        tables["raw"] = raw_rows
        if model is not None:
            for via in vias:
                key, label = VIAS[via]
                start = time.perf_counter()
                refocused = refocus(image, model=model, dpm=dpm, pixel_um=raw.spacing_um[2], device=args.device,
                                    progress=False, surface_via="planes" if via == "planes" else "dpm",
                                    calibrated=via == "calibrated",
                                    normalisation=reference if via == "reference" else None).data
                entry[f"{key}_seconds"] = time.perf_counter() - start
                rows = measure_beads(refocused, raw.spacing_um[1:])
                entry[key] = summarise(rows)
                entry[f"{key}_by_depth"] = _width_by_depth(rows, dpm, raw.spacing_um[1:])
                tables[label] = rows
        out[kind] = entry
        fwhm_histograms(tables, RESULTS / f"{args.name}_fig4_{kind.split('-')[0]}.png",
                        title=f"Fig. 4: {_surface_name(kind)}")
        print(f"fig4 {kind}: {len(raw_rows)} raw beads, DPM {dpm.min():+.2f}..{dpm.max():+.2f} µm", file=sys.stderr)
    return out


def prep_checks(args, camera, microscope) -> dict:
    """Accuracy of widefield3d.prep on simulated bead data with known truth (no model needed)."""
    from skimage.filters import threshold_triangle
    from skimage.transform import ProjectiveTransform, warp

    from widefield3d.analysis.resolution import FWHM_PER_SIGMA, psf_fwhm
    from widefield3d.optics.psf import widefield_psf
    from widefield3d.prep.align import align_stack, rigid_warp
    from widefield3d.prep.cover import patch_cover
    from widefield3d.prep.edf import extended_depth_of_field
    from widefield3d.prep.focus import focus_zero
    from widefield3d.prep.mask import foreground_mask
    from widefield3d.prep.normalise import triangle_normalisation
    from widefield3d.prep.projective import register_projective

    dz, pixel = microscope.z_step_um, microscope.pixel_um
    fine = (dz, pixel / OVERSAMPLE, pixel / OVERSAMPLE)
    z0 = 10.2  # between two planes
    sample = make_sample("tilted-beads", (41, 512, 512), fine, seed=args.seed, angle_deg=0.0, z0_um=z0,
                         density_per_100um2=BEADS_PER_100UM2)
    z = np.arange(0.0, 20.0 + dz / 2, dz)
    stack = fluorescence_stack(sample, microscope, z, camera=camera, seed=args.seed).noisy.astype(np.float32)
    out: dict = {}
    # alignment: rotations up to 2 degrees, shifts up to 3 px on every plane but the middle one of 21
    rng = np.random.default_rng(args.seed)
    planes = stack[10:31]
    applied = np.column_stack([rng.uniform(-2, 2, len(planes)), rng.uniform(-3, 3, (len(planes), 2))])
    applied[len(planes) // 2] = 0
    moved = np.stack([rigid_warp(p, *t) for p, t in zip(planes, applied)])
    start = time.perf_counter()
    _, found = align_stack(moved)
    seconds = time.perf_counter() - start
    angle_err, shift_err = [], []
    for t, f in zip(applied, found):
        a = np.radians(f[0])
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        angle_err.append(abs(t[0] + f[0]))
        shift_err.append(float(np.hypot(*(rot @ t[1:] + f[1:]))))
    out["align"] = {"planes": len(planes), "plane_px": planes.shape[1], "max_angle_error_deg": max(angle_err),
                    "max_shift_error_px": max(shift_err), "seconds": seconds}
    # focus zero: layer at z0 (between planes), and the same layer imaged 0.3 µm deeper
    shifted = fluorescence_stack(sample, microscope, z + 0.3, camera=camera, seed=args.seed).noisy.astype(np.float32)
    out["focus_zero"] = {"true_um": z0, "found_um": focus_zero(stack, z),
                         "offset_true_um": 0.3, "offset_found_um": focus_zero(stack, z) - focus_zero(shifted, z)}
    # normalisation and cover
    edf = extended_depth_of_field(stack)
    norm = triangle_normalisation(edf)
    fg = edf > threshold_triangle(edf)
    mask = foreground_mask(edf)
    corners = patch_cover(mask, patch=64)
    grid = sum(mask[y:y + 64, x:x + 64].any() for y in range(0, 256, 64) for x in range(0, 256, 64))
    out["normalise"] = {"saturated_foreground_fraction": float(np.mean(norm.apply(edf)[fg] > 1))}
    out["cover"] = {"mask_fraction": float(mask.mean()), "patch": 64, "cover_patches": len(corners),
                    "grid_patches_touching_mask": int(grid)}
    # projective registration of a known homography (nuclei image)
    nuclei = make_sample("nuclei", (9, 512, 512), (1.0, pixel / 2, pixel / 2), seed=args.seed)
    fixed = fluorescence_stack(nuclei, microscope, [4.0], camera=camera, seed=args.seed).noisy[0].astype(np.float32)
    true = np.array([[1.02, 0.03, -6.0], [-0.02, 0.99, 4.0], [1e-5, -2e-5, 1.0]])
    moving = warp(fixed, ProjectiveTransform(matrix=np.linalg.inv(true)), preserve_range=True)
    start = time.perf_counter()
    found_h = register_projective(moving, fixed)
    seconds = time.perf_counter() - start
    pts = np.array([[0, 0, 1], [255, 0, 1], [0, 255, 1], [255, 255, 1]], float)
    a, b = pts @ true.T, pts @ found_h.T
    out["projective"] = {"max_corner_error_px": float(np.abs(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:]).max()),
                         "seconds": seconds}
    # beads against the PSF
    at_layer = make_sample("tilted-beads", (41, 512, 512), fine, seed=args.seed, angle_deg=0.0, z0_um=10.0,
                           density_per_100um2=BEADS_PER_100UM2)
    beads = summarise(measure_beads(fluorescence_stack(at_layer, microscope, z, camera=camera, seed=args.seed).noisy,
                                    (dz, pixel, pixel)))
    psf = widefield_psf(microscope, (41, 129, 129), (dz, pixel / 10, pixel / 10))
    fwhm_z, fwhm_y, _ = psf_fwhm(psf, (dz, pixel / 10, pixel / 10))
    expected = float(np.sqrt(fwhm_y**2 + FWHM_PER_SIGMA**2 * (pixel**2 / 12 + 0.15**2 / 5)))
    out["beads_vs_psf"] = {"n_beads": beads["n_beads"], "lateral_median_um": beads["fwhm_lateral_median_um"],
                           "psf_lateral_fwhm_um": fwhm_y, "expected_lateral_um": expected,
                           "axial_median_um": beads["fwhm_axial_median_um"], "psf_axial_fwhm_um": fwhm_z}
    return out


def summary_row(name: str, s: dict | None, axial: bool = True) -> str:
    if s is None:
        return f"{name:<30} {'pending (no model)':>40}"
    ax = f"{s['fwhm_axial_median_um']:>8.3f}" if axial and s["n_fwhm_axial"] else f"{'-':>8}"
    return f"{name:<30} {s['n_beads']:>6d} {s['fwhm_lateral_median_um']:>8.3f} {s['fwhm_lateral_std_um']:>8.3f} {ax}"


def json_safe(value):
    """NaN/inf -> None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepz-20x075", help="Deep-Z model name or directory")
    parser.add_argument("--fields", type=int, default=4, help="fields of view for Fig. 1 (beads pooled)")
    parser.add_argument("--field-px", type=int, default=512, help="side of a Fig. 1 field, camera pixels")
    parser.add_argument("--surface-px", type=int, default=1024, help="side of the Fig. 4 fields, camera pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-model", action="store_true", help="only the scanned / raw halves")
    parser.add_argument("--quick", action="store_true", help="1 small field each (a smoke run, too few beads)")
    parser.add_argument("--only", choices=("fig4",), help="only the Fig. 4 surfaces")
    parser.add_argument("--name", help="stem of the result files (default deepz_beads[_quick])")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw the per-depth Fig. 4 figures from the existing NAME.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.fields, args.field_px, args.surface_px = 1, 256, 512
    args.name = args.name or ("deepz_beads_quick" if args.quick else "deepz_beads")
    if args.replot:
        _depth_profiles(json.loads((RESULTS / f"{args.name}.json").read_text()), args.name)
        return
    microscope = preset(MICROSCOPE)
    camera = dataset_preset("deepz-20x075").camera
    model = None if args.no_model else _load_model(args.model)
    start = time.perf_counter()
    results = {
        "command": "python benchmarks/deepz_beads.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(), "processor": platform.processor(),
        "model": None if model is None else model_label(model.path), "microscope": MICROSCOPE,
        "camera_photons": camera.photons, "beads_per_100um2": BEADS_PER_100UM2,
        "prep": None if args.only else prep_checks(args, camera, microscope),
        "fig1": None if args.only else fig1(model, args, camera, microscope),
        "fig4": fig4(model, args, camera, microscope),
    }
    results["seconds"] = time.perf_counter() - start
    RESULTS.mkdir(exist_ok=True)
    with atomic_output(RESULTS / f"{args.name}.json") as tmp:
        tmp.write_text(json.dumps(json_safe(results), indent=2, allow_nan=False))
    _depth_profiles(results, args.name)
    print(f"{'':<30} {'beads':>6} {'lat med':>8} {'lat std':>8} {'ax med':>8}   (FWHM, µm)")
    if results["fig1"] is not None:
        print(summary_row("Fig.1 scanned stack", results["fig1"]["scanned"]))
        print(summary_row("Fig.1 Deep-Z virtual stack", results["fig1"]["deepz"]))
    for kind, entry in results["fig4"].items():
        print(summary_row(f"Fig.4 {kind} raw", entry["raw"], axial=False))
        print(summary_row(f"Fig.4 {kind} Deep-Z", entry["deepz"], axial=False))
        print(summary_row(f"Fig.4 {kind} Deep-Z planes", entry.get("deepz_planes"), axial=False))
        print(summary_row(f"Fig.4 {kind} Deep-Z calibrated", entry.get("deepz_calibrated"), axial=False))
        print(summary_row(f"Fig.4 {kind} Deep-Z reference", entry.get("deepz_reference"), axial=False))
    if results["prep"] is not None:
        print(json.dumps(results["prep"], indent=1))
    print(f"wrote {RESULTS / (args.name + '.json')} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
