"""Benchmark of Deep-Z / Deep-Z+ on held-out simulated fields (numbers for docs/deepz.md).

1. Refocusing accuracy per distance (-10 .. +10 µm): the plane at z = 0 of each held-out ``deepz-20x075`` stack is
   refocused to every plane of the stack; PSNR, SSIM, RMSE, MAE and Pearson against the mechanically scanned
   (noisy) plane, next to the identity baseline (the input copied to every plane). Intensities are in the
   training scale: every stack is normalised against its EDF image (as the training data), the model is given
   that normalisation and returns normalised values; PSNR/SSIM use the data range of the whole normalised stack.
2. Deep-Z+: the plane at z = 0 of each held-out ``deepzplus-63x14`` wide-field stack refocused over the stack's
   range, SSIM, RMSE and Pearson against the confocal planes (each normalised against its own EDF; the scanned,
   noisy ``confocal/`` stacks, or with ``--deepzplus-reference clean`` the simulator's noise-free
   ``confocal_clean/`` ones), next to the scanned wide-field planes, the identity baseline and a black image
   (all zeros: what SSIM gives for matching the dark background alone) against the same confocal planes.
3. Sinusoidal surfaces (paper Fig. S7): DPM = -5 + 4 sin(2 pi x / period) µm (depths -1 .. -9 µm); ground truth =
   the scanned stack linearly interpolated in z at each pixel's depth. For each period: SSIM and Pearson against
   that ground truth, and the artefact ratio = power of the error image (output - truth) at the DPM's frequency and
   its second harmonic along x, divided by the mean error power of the 3 frequency bins on either side (the local
floor; DC and the harmonics excluded). A period is "followed
   without artefacts" when its SSIM is within 0.02 of the longest period's and the artefact ratio is below 3.
4. Speed: a 41-plane virtual stack of a 512 x 512 image on CPU (default torch threads), seconds; the network FLOPs
   of that call counted by ``torch.utils.flop_counter`` (tiles with halos included) give GFLOP/s, next to the
   machine's float32 matrix-multiply rate (``torch.matmul`` of 2048 x 2048 matrices) measured in the same run.
5. Refocusing apart from denoising (issue 12; ``--measures`` or ``--quick``), measures of
   ``widefield3d.analysis.refocus_measures`` on held-out ``deepz-20x075`` fields (seed 9001, simulated once into
   ``--heldout``, by default under the system's temporary folder):

   * PSNR gain: the plane at z = 0 refocused to every plane (``--measures-normalisation``: ``edf``, the EDF
     normalisation of the stack, as the paper's training data; ``input``, the plane's own normalisation, as
     ``refocus`` normalises a single image; ``auto`` (default): the one the model was trained with); per |dz| >= 2 µm, PSNR of the virtual plane minus PSNR of the model's own dz = 0 output, both against
     the CLEAN scanned plane, after one least-squares gain/offset for the whole virtual stack (target: mean
     >= +3 dB, > 0 at every distance). A denoiser that ignores the DPM scores 0.
   * z-variation ratio: per-pixel std along z of the virtual stack over that of the clean stack (both in the
     training scale, 3 x 3 box-smoothed), median over the EDF's foreground mask (target 0.7 .. 1.3).
   * Bead depth: a plane of point beads (jittered grid, 42 px apart) at random depths within +-8 µm of focus,
     imaged once at the focal plane with PSFs computed by ``psfmodels`` directly (each bead at its own depth
     below the coverslip, 20 µm +- 8 µm, the stage at the on-axis focus of 20 µm; not ``optics.psf`` or
     ``sim.acquisition``) and the ``deepz-20x075`` camera (an in-focus bead's brightest pixel: 2000 expected
     photons). Deep-Z refocuses it to -10 .. +10 µm (0.5 µm steps; input-image normalisation, as for a single
     image); a bead's depth is the plane where the virtual stack peaks within 2 px of its position. Median
     |error| (target <= 1 µm) and the fraction of beads that peak at dz = 0.
   * References: the same measures of the noisy scanned stacks (what perfect refocusing with the camera's noise
     scores), and the classical depth of each bead from the single image by least-squares fit to our PSF library
     (``analysis.bead_depth``, -10 .. +10 µm in 0.25 µm steps): is the depth in the input at all?

   ``--quick``: one field (its 128 x 128 px holding the most foreground) and one 256 px plane of 36 beads;
   ``quick_measures(model_dir_or_name)`` returns its numbers for recipe search (no references).

Usage::

    python benchmarks/bench_deepz.py [--deepz-data DIR] [--deepzplus-data DIR] [--deepz-model deepz-20x075]
        [--deepzplus-model deepzplus-63x14-confocal] [--deepzplus-reference measured|clean] [--fields N]
        [--periods 2,4,8] [--skip-speed] [--out JSON] [--measures | --quick] [--heldout DIR] [--bead-planes N]
        [--measures-normalisation auto|edf|input] [--measures-out JSON]
    python benchmarks/bench_deepz.py --speed-only [--deepz-model M]   # CPU speed and memory per tiling

Parts 1, 3 and 4 need ``--deepz-data`` (held-out wide-field stacks), part 2 ``--deepzplus-data`` (held-out
``widefield/`` + ``confocal/`` stacks); they print tables and write ``benchmarks/results/deepz.json`` (or
``--out``). Part 5 writes ``benchmarks/results/deepz_measures.json`` (``--quick``: ``deepz_measures_quick.json``).
``--speed-only`` writes ``benchmarks/results/deepz_speed.json``.
From Python (``benchmarks/`` on ``sys.path``): ``from bench_deepz import quick_measures``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psfmodels
import torch

from widefield3d import io
from widefield3d.analysis import metrics
from widefield3d.analysis.bead_depth import PsfLibrary, bead_depths, psf_library
from widefield3d.analysis.refocus_measures import depth_errors, peak_depths, refocus_gain_db, z_variation_ratio
from widefield3d.methods import deepz
from widefield3d.methods.deepz_data import find_stacks
from widefield3d.optics.microscope import Microscope, preset
from widefield3d.optics.psf import psf_planes
from widefield3d.prep.edf import extended_depth_of_field
from widefield3d.prep.mask import foreground_mask
from widefield3d.prep.normalise import edf_normalisation, triangle_normalisation
from widefield3d.sim.camera import Camera, expose
from widefield3d.sim.dataset import dataset_preset, simulate_dataset
from widefield3d.zoo import model_label

RESULTS = Path(__file__).parent / "results" / "deepz.json"
MEASURES = Path(__file__).parent / "results" / "deepz_measures.json"
HELDOUT = Path(tempfile.gettempdir()) / "widefield3d-heldout" / "deepz-20x075-seed9001"
HELDOUT_SEED = 9001  # no shipped or recipe-search training run uses this seed
BEAD_SEED = 9101
BEAD_FINE = 4  # fine-grid samples per camera pixel side of the bead images
BEAD_PSF_RADIUS_PX = 35  # camera pixels of PSF kept around each bead (holds a bead 10 µm out of focus)
BEAD_SPACING_PX = 42  # grid pitch of the beads: a bead 8 µm out of focus spreads over a ~20 px radius
BEAD_MARGIN_PX = 23  # least distance of the grid from the image edge (a fitting window fits inside)
BEAD_MAX_DEPTH_UM = 8.0
CLASSICAL_WINDOW_PX = 41
QUICK = {"fields": 1, "crop_px": 128, "bead_planes": 1, "bead_px": 256}


def _stack(path: Path) -> tuple[np.ndarray, float, float]:
    image = io.read(path)
    dz, dy, _ = image.spacing_zyx
    return np.asarray(image.data, np.float32), dz, dy


def _normalised(stack: np.ndarray):
    norm, _ = edf_normalisation(stack)
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
                                progress=False).data
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


def deepzplus_accuracy(data: Path, model, fields: int, reference: str = "measured") -> dict:
    """Per-depth SSIM/RMSE/Pearson against the confocal planes (``reference``: ``"measured"`` = ``confocal/``,
    ``"clean"`` = ``confocal_clean/``): Deep-Z+, scanned wide-field, identity and a black image."""
    rows = {"deepzplus": [], "widefield": [], "identity": [], "black": []}
    z_rel = None
    for wf_path, conf_path in find_stacks(data, "confocal")[:fields]:
        wf_raw, dz, _ = _stack(wf_path)
        conf_raw, _, _ = _stack(conf_path if reference == "measured" else data / "confocal_clean" / conf_path.name)
        wf_norm, wf = _normalised(wf_raw)
        _, conf = _normalised(conf_raw)
        middle = len(wf) // 2
        z_rel = (np.arange(len(wf)) - middle) * dz
        keep = np.abs(z_rel) <= model.range_um + 1e-6
        virtual = deepz.refocus(wf_raw[middle], z_rel[keep], model=model, normalisation=wf_norm, denormalise=False,
                                progress=False).data
        r = float(conf.max() - conf.min())
        rows["deepzplus"].append([_row(v, c, r) for v, c in zip(virtual, conf[keep])])
        rows["widefield"].append([_row(w, c, r) for w, c in zip(wf[keep], conf[keep])])
        rows["identity"].append([_row(wf[middle], c, r) for c in conf[keep]])
        rows["black"].append([_row(np.zeros_like(c), c, r) for c in conf[keep]])  # Pearson: NaN (constant)
        z_rel = z_rel[keep]
    out = {"z_um": z_rel.tolist(), "fields": len(rows["deepzplus"]), "reference": reference}
    for name, per_field in rows.items():
        out[name] = {k: np.mean([[row[k] for row in f] for f in per_field], axis=0).tolist()
                     for k in ("ssim", "rmse", "pearson")}
        out[name]["ssim_per_field"] = np.mean([[row["ssim"] for row in f] for f in per_field], axis=1).tolist()
    out["summary"] = {f"{stat}_ssim_{k}": float(fn(out[k]["ssim"])) for k in rows
                      for stat, fn in (("mean", np.mean), ("min", np.min))}
    return out


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
                                denormalise=False, progress=False).data
            truth = deepz.sample_at_depth(stack, z_rel, surface)
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


def speed(model, size: int = 512, planes: int = 41, tile: int = deepz.TILE_PX, batch_size: int = 1) -> dict:
    """Seconds and GFLOP/s of a virtual stack (tiling window ``tile``, ``batch_size`` windows per pass; default:
    ``deepz.refocus``'s), and the matmul rate measured in the same run."""
    from unittest import mock

    from torch.utils.flop_counter import FlopCounterMode

    from widefield3d.nets.deepz import _ReplicateConv3x3

    rng = np.random.default_rng(0)
    image = rng.poisson(50, (size, size)).astype(np.float32)
    image[size // 4: size // 4 + 20, size // 3: size // 3 + 20] += 2000
    z = np.linspace(-10, 10, planes)
    tiling = {"tile": tile, "batch_size": batch_size}
    deepz.refocus(image, z[:2], model=model, progress=False, device="cpu", **tiling)  # warm-up
    # the network's own FLOPs: counted through nn.Conv2d's replicate-padded path, so that the border strips that
    # the inference path recomputes (nets.deepz._ReplicateConv3x3) do not count as work done
    with FlopCounterMode(display=False) as counter, \
            mock.patch.object(_ReplicateConv3x3, "forward", torch.nn.Conv2d.forward):
        deepz.refocus(image, z[:8], model=model, progress=False, device="cpu", planes_per_pass=8, **tiling)
    flops_per_8 = counter.get_total_flops()
    start = time.perf_counter()
    deepz.refocus(image, z, model=model, progress=False, device="cpu", planes_per_pass=8, **tiling)
    seconds = time.perf_counter() - start
    flops = flops_per_8 * planes / 8
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.matmul(a, b)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 3.0:
        torch.matmul(a, b)
        n += 1
    matmul = 2 * 2048**3 * n / (time.perf_counter() - start) / 1e9
    return {"image": [size, size], "planes": planes, **tiling, "seconds": seconds, "network_gflop": flops / 1e9,
            "gflops_per_s": flops / seconds / 1e9, "matmul_gflops_per_s": matmul,
            "fraction_of_matmul": flops / seconds / 1e9 / matmul, "torch_threads": torch.get_num_threads()}


# ------------------------------------------------------------------ 5. refocusing measures (issue 12)

def heldout_dataset(n: int, out_dir: Path = HELDOUT) -> Path:
    """``n`` held-out ``deepz-20x075`` fields (seed 9001, used by no training), simulated once into ``out_dir``."""
    return simulate_dataset("deepz-20x075", out_dir, n, seed=HELDOUT_SEED, progress=False)


def _expected_adu(photons: np.ndarray, camera: Camera) -> np.ndarray:
    """The mean camera counts (ADU) of an expected-photon image: the inverse of ``adu_to_photons``."""
    electrons = photons * camera.quantum_efficiency + camera.dark_current_e * camera.binning**2
    return (electrons / camera.gain_e_per_adu + camera.offset_adu).astype(np.float32)


def _densest_window(mask: np.ndarray, size: int, step: int = 8) -> tuple[slice, slice]:
    """The ``size`` x ``size`` window (on a ``step`` grid) that holds the most mask pixels."""
    best, where = -1, (0, 0)
    for y in range(0, mask.shape[0] - size + 1, step):
        for x in range(0, mask.shape[1] - size + 1, step):
            count = int(mask[y : y + size, x : x + size].sum())
            if count > best:
                best, where = count, (y, x)
    return slice(where[0], where[0] + size), slice(where[1], where[1] + size)


def field_measures(noisy_path: Path, clean_path: Path, model, camera: Camera, crop_px: int | None = None,
                   normalisation: str = "edf") -> dict:
    """PSNR gain over the model's dz = 0 output and z-variation ratio for one held-out field.

    The plane at z = 0 (the middle plane) is refocused to every plane of the stack, with the EDF normalisation of
    the noisy stack (as the paper's training data; ``normalisation="input"``: the plane's own, as ``refocus``
    normalises a single image). The clean stack is put into the same scale (expected camera counts,
    then that normalisation) for the z-variation ratio; the PSNR gain fits its own gain and offset. The same
    measures of the noisy scanned stack itself (``scanned``) show what a perfect but noisy refocusing scores.
    ``crop_px``: measure only the square of that size holding the most foreground.
    """
    raw, dz, _ = _stack(noisy_path)
    clean_photons, _, _ = _stack(clean_path)
    if crop_px is not None and crop_px < min(raw.shape[1:]):
        ys, xs = _densest_window(foreground_mask(extended_depth_of_field(raw)), crop_px)
        raw, clean_photons = raw[:, ys, xs], clean_photons[:, ys, xs]
    middle = len(raw) // 2
    norm, edf = edf_normalisation(raw)
    if normalisation == "input":
        norm = triangle_normalisation(raw[middle])
    z = np.round((np.arange(len(raw)) - middle) * dz, 6)
    keep = np.abs(z) <= model.range_um + 1e-6
    virtual = deepz.refocus(raw[middle], z[keep], model=model, normalisation=norm, denormalise=False,
                            progress=False).data
    clean = norm.apply(_expected_adu(clean_photons, camera))[keep]
    mask = foreground_mask(edf)
    out = refocus_gain_db(virtual, clean, z[keep])
    out["zvar_ratio"] = z_variation_ratio(virtual, clean, mask)
    scanned = norm.apply(raw[keep])
    scan = refocus_gain_db(scanned, clean, z[keep])
    out["scanned"] = {"gain_db": scan["gain_db"], "gain_db_mean": scan["gain_db_mean"],
                      "gain_db_min": scan["gain_db_min"], "zvar_ratio": z_variation_ratio(scanned, clean, mask)}
    out["field"] = noisy_path.name
    out["shape_yx"] = list(raw.shape[1:])
    return out


def _psfmodels_params(m: Microscope) -> dict:
    """Gibson-Lanni parameters of ``psfmodels`` for a microscope (design = actual immersion and coverslip)."""
    return dict(NA=m.na, ni=m.immersion_index, ni0=m.immersion_index, ns=m.sample_index, ng=m.coverslip_index,
                ng0=m.coverslip_index, tg=m.coverslip_thickness_um, tg0=m.coverslip_thickness_um,
                ti0=m.working_distance_um)


def stage_focus_um(m: Microscope) -> float:
    """Stage position (psfmodels' z) that focuses a point ``m.depth_um`` deep: the on-axis intensity maximum."""
    z = m.depth_um * m.immersion_index / m.sample_index + np.arange(-6.0, 6.0, 0.005)
    on_axis = psfmodels.make_psf(z, 1, dxy=0.01, pz=m.depth_um, wvl=m.emission_wavelength_um, oversample_factor=1,
                                 normalize=False, **_psfmodels_params(m))[:, 0, 0]
    return float(z[np.argmax(on_axis)])


def bead_image(centres_yx_px: np.ndarray, depths_um: np.ndarray, shape: tuple[int, int], m: Microscope,
               stage_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free image (one focal plane) of equally bright point beads, from ``psfmodels`` directly.

    Each bead's PSF is computed at its own depth (``m.depth_um`` + its depth offset, so the aberration of its
    depth is its own) with the stage at ``stage_um``, on a grid ``BEAD_FINE`` times finer than the camera, placed
    at the nearest fine pixel and summed onto camera pixels. Returns the image and the bead positions actually
    used (pixels, on the fine grid).
    """
    f = BEAD_FINE
    half = f * BEAD_PSF_RADIUS_PX
    canvas = np.zeros((shape[0] * f + 2 * half, shape[1] * f + 2 * half))
    placed = []
    for (y, x), d in zip(centres_yx_px, depths_um):
        psf = psfmodels.make_psf([stage_um], 2 * half + 1, dxy=m.pixel_um / f, pz=m.depth_um + float(d),
                                 wvl=m.emission_wavelength_um, oversample_factor=1, normalize=False,
                                 **_psfmodels_params(m))[0]
        iy, ix = (int(round((c + 0.5) * f - 0.5)) for c in (y, x))
        canvas[iy : iy + 2 * half + 1, ix : ix + 2 * half + 1] += psf
        placed.append(((iy + 0.5) / f - 0.5, (ix + 0.5) / f - 0.5))
    fine = canvas[half : half + shape[0] * f, half : half + shape[1] * f]
    return fine.reshape(shape[0], f, shape[1], f).sum(axis=(1, 3)), np.array(placed)


def bead_plane(seed: int, size_px: int, m: Microscope, camera: Camera) -> dict:
    """One camera image of beads on a jittered grid at random depths within +-BEAD_MAX_DEPTH_UM of focus.

    Beads sit ``BEAD_SPACING_PX`` apart with +-2 px of jitter (isolated: a bead 8 µm out of focus spreads over a
    ~20 px radius, so a neighbour barely reaches a bead's 41 px fitting window); all are equally bright, an
    in-focus bead's brightest pixel getting ``camera.photons`` expected photons. Returns the noisy ADU ``image``,
    the bead positions ``centres_yx_px`` (pixels) and ``depths_um`` (µm, + = deeper than focus), and the
    ``stage_um``, intensity ``reference`` and ``seed`` that :func:`scanned_bead_stack` reuses.
    """
    rng = np.random.default_rng(seed)
    margin = (size_px - BEAD_SPACING_PX * ((size_px - 2 * BEAD_MARGIN_PX) // BEAD_SPACING_PX)) / 2
    grid = np.arange(margin, size_px - margin + 1, BEAD_SPACING_PX)
    centres = np.array([(y, x) for y in grid for x in grid]) + rng.uniform(-2, 2, (len(grid) ** 2, 2))
    depths = rng.uniform(-BEAD_MAX_DEPTH_UM, BEAD_MAX_DEPTH_UM, len(centres))
    stage = stage_focus_um(m)
    clean, centres = bead_image(centres, depths, (size_px, size_px), m, stage)
    in_focus, _ = bead_image(np.array([[16.0, 16.0]]), np.zeros(1), (33, 33), m, stage)
    reference = float(in_focus.max())
    exposure = expose(clean, camera, rng, reference=reference)
    return {"image": exposure.adu.astype(np.float32), "centres_yx_px": centres, "depths_um": depths,
            "stage_um": stage, "reference": reference, "seed": seed}


def scanned_bead_stack(plane: dict, z_um: np.ndarray, m: Microscope, camera: Camera) -> np.ndarray:
    """The noisy z-stack a scan of the bead plane would record at focus offsets ``z_um`` (sample µm; ADU).

    The stage steps are sample steps divided by the axial scale at the imaged depth (stage focus of a point
    1 µm deeper minus that of ``m.depth_um``); every plane is exposed on the intensity scale of :func:`bead_plane`.
    """
    per_stage_um = stage_focus_um(m.with_(depth_um=m.depth_um + 1.0)) - plane["stage_um"]
    shape = plane["image"].shape
    clean = np.stack([bead_image(plane["centres_yx_px"], plane["depths_um"], shape, m,
                                 plane["stage_um"] + z * per_stage_um)[0] for z in z_um])
    exposure = expose(clean, camera, plane["seed"] + 1, reference=plane["reference"])
    return exposure.adu.astype(np.float32)


def classical_library(m: Microscope) -> PsfLibrary:
    """Shifted templates of the microscope's own PSF (``optics.psf``) for bead depths -10 .. +10 µm, 0.25 µm steps."""
    z = np.round(np.arange(-10.0, 10.0 + 1e-6, 0.25), 6)
    planes = psf_planes(m, -z, CLASSICAL_WINDOW_PX + 20, m.pixel_um)  # defocus = z_focus - z_bead
    return psf_library(planes, z, CLASSICAL_WINDOW_PX)


def model_bead_depths(model, image: np.ndarray, centres_yx_px: np.ndarray) -> np.ndarray:
    """Bead depths from a virtual stack (-10 .. +10 µm, 0.5 µm steps, within the model's range) of one image."""
    reach = min(10.0, model.range_um)
    z = np.round(np.arange(-reach, reach + 1e-6, 0.5), 6)
    virtual = deepz.refocus(image, z, model=model, denormalise=False, progress=False).data
    return peak_depths(virtual, z, centres_yx_px)


def measures(model, heldout: Path, *, fields: int, crop_px: int | None, bead_planes: int, bead_px: int,
             references: bool = True, normalisation: str = "auto") -> dict:
    """Refocusing measures of a Deep-Z model on held-out fields and bead planes (see the module docstring).

    ``references``: also the scanned stacks' scores and the classical PSF-library fit of the bead depths.
    ``normalisation`` of the fields: ``edf``, ``input`` or ``auto`` (the model's ``data.normalise_against``).
    """
    if normalisation == "auto":
        normalisation = model.config.data.normalise_against
    data = heldout_dataset(fields, heldout)
    camera = dataset_preset("deepz-20x075").camera
    m = preset("deepz-20x075")
    per_field = [field_measures(noisy, data / "widefield_clean" / noisy.name, model, camera, crop_px, normalisation)
                 for noisy, _ in find_stacks(data, "widefield")[:fields]]
    z = per_field[0]["z_um"]
    gain = np.mean([f["gain_db"] for f in per_field], axis=0)
    out = {"heldout": heldout.name, "heldout_seed": HELDOUT_SEED, "normalisation": normalisation, "fields": per_field,
           "gain_db_per_dz": dict(zip((f"{v:+.1f}" for v in z), gain.tolist())),
           "gain_db_mean": float(gain.mean()), "gain_db_min": float(gain.min()),
           "zvar_ratio": float(np.median([f["zvar_ratio"] for f in per_field]))}
    if references:
        out["scanned_gain_db_mean"] = float(np.mean([f["scanned"]["gain_db_mean"] for f in per_field]))
        out["scanned_zvar_ratio"] = float(np.median([f["scanned"]["zvar_ratio"] for f in per_field]))
    depths = {"true": [], "deepz": [], "classical": [], "scanned": []}
    library = classical_library(m) if references else None
    for i in range(bead_planes):
        plane = bead_plane(BEAD_SEED + i, bead_px, m, camera)
        centres = plane["centres_yx_px"]
        depths["true"].append(plane["depths_um"])
        depths["deepz"].append(model_bead_depths(model, plane["image"], centres))
        if references:
            depths["classical"].append(bead_depths(plane["image"], centres, library))
            scan_z = np.round(np.arange(-10.0, 10.0 + 1e-6, 0.5), 6)
            depths["scanned"].append(peak_depths(scanned_bead_stack(plane, scan_z, m, camera), scan_z, centres))
    true = np.concatenate(depths.pop("true"))
    out["beads"] = {"planes": bead_planes, "plane_px": bead_px, "true_um": true.tolist()}
    for name, found in depths.items():
        if found:
            out["beads"][f"{name}_um"] = np.concatenate(found).tolist()
            out["beads"][name] = depth_errors(np.concatenate(found), true)
    return out


def quick_measures(model_dir_or_name) -> dict:
    """The quick refocusing measures of a Deep-Z model (a shipped name or a model directory), for recipe search.

    One held-out field (its 128 x 128 px with the most foreground) and one 256 x 256 px plane of 36 beads; with a
    width-0.25 model about one CPU minute (2 min 8 s wall at nice 19 beside a training run, load average 5 on 2
    cores, 2026-11). The held-out field is simulated on the first call (~15 s) and reused. Returns ``gain_db_mean``, ``gain_db_per_dz``
    (dB per refocus distance, |dz| >= 2 µm), ``zvar_ratio``, ``bead_depth_median_err_um`` (µm) and
    ``bead_peak_at_zero_fraction``.
    """
    out = measures(deepz.load(model_dir_or_name), HELDOUT, **QUICK, references=False)
    return {"gain_db_mean": out["gain_db_mean"], "gain_db_per_dz": out["gain_db_per_dz"],
            "zvar_ratio": out["zvar_ratio"], "bead_depth_median_err_um": out["beads"]["deepz"]["median_abs_error_um"],
            "bead_peak_at_zero_fraction": out["beads"]["deepz"]["peak_at_zero_fraction"]}


def print_measures(res: dict) -> None:
    """Compact table of :func:`measures`."""
    print(f"\nrefocusing measures of {res['model']} ({len(res['fields'])} held-out field(s), "
          f"{res['beads']['planes']} bead plane(s) of {res['beads']['plane_px']} px)")
    whole = [k for k in res["gain_db_per_dz"] if float(k).is_integer()]  # 1 µm steps keep the table narrow
    print("PSNR gain (dB) over the model's dz = 0 output, against the clean planes, at dz (µm):")
    print(f"{'':<8}" + "".join(f"{float(k):>7.0f}" for k in whole))
    print(f"{'Deep-Z':<8}" + "".join(f"{res['gain_db_per_dz'][k]:>+7.2f}" for k in whole))
    if "scanned_gain_db_mean" in res:
        scanned = np.mean([f["scanned"]["gain_db"] for f in res["fields"]], axis=0)
        row = dict(zip(res["gain_db_per_dz"], scanned))
        print(f"{'scanned':<8}" + "".join(f"{row[k]:>+7.2f}" for k in whole))
    print(f"gain over dz=0 output: mean {res['gain_db_mean']:+.2f} dB, worst {res['gain_db_min']:+.2f} dB "
          f"(target >= +3, > 0 everywhere); z-variation ratio {res['zvar_ratio']:.3f} (target 0.7-1.3)")
    if "scanned_gain_db_mean" in res:
        print(f"the noisy scanned stack itself: gain mean {res['scanned_gain_db_mean']:+.2f} dB, z-variation ratio "
              f"{res['scanned_zvar_ratio']:.3f}")
    print(f"{'bead depth (+-8 um)':<30} {'n':>4} {'median |err| um':>16} {'within 1 um':>12} {'peak at 0':>10}")
    labels = {"deepz": "Deep-Z, peak plane (1 image)", "classical": "PSF-library fit (1 image)",
              "scanned": "scanned stack, peak plane"}
    for name, label in labels.items():
        if name in res["beads"]:
            b = res["beads"][name]
            print(f"{label:<30} {b['n'] - b['n_failed']:>4} {b['median_abs_error_um']:>16.2f} "
                  f"{b['fraction_within_1um']:>12.2f} {b['peak_at_zero_fraction']:>10.2f}")


def speed_in_subprocess(model: str, **kwargs) -> dict:
    """:func:`speed` in a fresh Python process, with that process's peak resident memory (``peak_rss_gb``)."""
    code = ("import json, resource, sys; from bench_deepz import speed; from widefield3d.methods import deepz; "
            f"out = speed(deepz.load({model!r}), **{kwargs!r}); "
            "out['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20; print(json.dumps(out))")
    paths = [str(Path(__file__).parent), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _speed_line(sp: dict) -> str:
    return (f"speed: {sp['planes']} planes of {sp['image']} (tile {sp['tile']} x {sp['batch_size']}) in "
            f"{sp['seconds']:.1f} s, peak {sp.get('peak_rss_gb', float('nan')):.1f} GB, "
            f"{sp['network_gflop']:.0f} GFLOP, {sp['gflops_per_s']:.1f} GFLOP/s = {100 * sp['fraction_of_matmul']:.0f}% "
            f"of matmul ({sp['matmul_gflops_per_s']:.1f} GFLOP/s, {sp['torch_threads']} threads)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deepz-data", type=Path)
    parser.add_argument("--deepzplus-data", type=Path)
    parser.add_argument("--deepz-model", default="deepz-20x075")
    parser.add_argument("--deepzplus-model", default="deepzplus-63x14-confocal")
    parser.add_argument("--deepzplus-reference", choices=("measured", "clean"), default="measured",
                        help="Deep-Z+ scored against the scanned confocal stacks or the noise-free ones")
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--periods", default="2,4,8,16,32,64")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--measures", action="store_true", help="part 5 on --fields whole held-out fields")
    parser.add_argument("--quick", action="store_true", help="part 5 on one 128 px field and one bead plane")
    parser.add_argument("--heldout", type=Path, default=HELDOUT, help="held-out stacks (simulated if missing)")
    parser.add_argument("--bead-planes", type=int, default=4)
    parser.add_argument("--measures-out", type=Path, help="JSON of part 5 (default results/deepz_measures[_quick].json)")
    parser.add_argument("--measures-normalisation", choices=("auto", "edf", "input"), default="auto",
                        help="fields of part 5 normalised against the stack's EDF or the input plane itself "
                             "(auto: as the model was trained)")
    parser.add_argument("--speed-only", action="store_true",
                        help="only the CPU speed and peak memory of --deepz-model per tiling (41 planes of 512 x 512 "
                             "and 8 of 1024 x 1024), each in a fresh process")
    args = parser.parse_args()

    stamp = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.processor() or
             platform.machine(), "cpus": torch.get_num_threads(), "load_average": list(os.getloadavg())}
    if args.speed_only:
        runs = [{"tile": 512, "batch_size": 2}, {"tile": 768, "batch_size": 1}, {"tile": 1024, "batch_size": 1}]
        runs += [{"size": 1024, "planes": 8, **r} for r in runs[:2]]  # memory and halo work on a larger image
        res = {**stamp, "model": model_label(args.deepz_model), "command": "python benchmarks/bench_deepz.py "
               + " ".join(sys.argv[1:]), "runs": [speed_in_subprocess(str(args.deepz_model), **r) for r in runs]}
        for sp in res["runs"]:
            print(_speed_line(sp))
        with io.atomic_output(RESULTS.with_name("deepz_speed.json")) as tmp:
            tmp.write_text(json.dumps(res, indent=1))
        print(f"wrote {RESULTS.with_name('deepz_speed.json')}")
        return
    if args.measures or args.quick:
        settings = QUICK if args.quick else {"fields": args.fields, "crop_px": None, "bead_planes": args.bead_planes,
                                              "bead_px": 256}
        res = {**stamp, "model": model_label(args.deepz_model), "settings": settings,
               **measures(deepz.load(args.deepz_model), args.heldout, **settings,
                          normalisation=args.measures_normalisation)}
        print_measures(res)
        path = args.measures_out or (MEASURES.with_name(MEASURES.stem + "_quick.json") if args.quick else MEASURES)
        with io.atomic_output(path) as tmp:
            tmp.write_text(json.dumps(res, indent=1))
        print(f"wrote {path}")
    if args.deepz_data is None and args.deepzplus_data is None:
        return
    result = dict(stamp)
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
        result["deepzplus"] = dp = deepzplus_accuracy(args.deepzplus_data, plus, args.fields, args.deepzplus_reference)
        print(f"\nDeep-Z+ ({args.deepzplus_model}) on {dp['fields']} held-out fields: SSIM / RMSE / Pearson vs "
              f"confocal ({args.deepzplus_reference})")
        for i, z in enumerate(dp["z_um"]):
            print(f"{z:+5.1f} | " + " | ".join(
                f"{name} {dp[key]['ssim'][i]:.3f} {dp[key]['rmse'][i]:.4f} {dp[key]['pearson'][i]:.3f}"
                for name, key in (("Deep-Z+", "deepzplus"), ("scanned WF", "widefield"), ("identity", "identity")))
                  + f" | black {dp['black']['ssim'][i]:.3f}")
        print(dp["summary"])
    if args.deepz_data is not None and not args.skip_speed:
        result["speed"] = sp = speed(model)
        print("\n" + _speed_line(sp))
    with io.atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
