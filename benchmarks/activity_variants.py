"""Variants of the activity pipeline's analysis steps (issue 18): which maxima count as neurons, which neurons count
as active and how they are compared, scored on several simulated videos.

Each video is simulated as in ``bench_activity.py``; its registered frames, their Deep-Z virtual stacks and its
registered scanned stacks are cached (``--cache``, one ``.npz`` per seed, setting and model, float16; ~6 min per
video, mostly the refocusing; another model reuses a cached video's frames and scanned stacks and only refocuses).
Then every variant runs the analysis (``analyse_activity`` without registration or refocusing) on the three inputs
(Deep-Z virtual stacks, raw frames, scanned stacks) and is scored against the truth.
Writes ``benchmarks/results/activity_variants.json`` and prints Markdown tables (mean ARI, precision and recall,
then ARI per seed).

    python benchmarks/activity_variants.py --field 128 --frames 32 --z-step 1.0 --seed 0 1 2 3 4 --cache /tmp/act
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from bench_activity import video_arguments

from widefield3d.analysis.activity.clusters import similarity
from widefield3d.analysis.activity.scores import score_activity
from widefield3d.analysis.activity.traces import most_active
from widefield3d.methods.activity import ActivityConfig, analyse_activity, cluster_active, paper_sigma, refocus_video
from widefield3d.methods.deepz import load
from widefield3d.prep.frame_registration import register_video
from widefield3d.sim.activity import activity_preset, simulate_worm_activity


def frame_noise(ratio: np.ndarray) -> np.ndarray:
    """Robust per-neuron noise of ``dF/F0`` ``(N, T)``: 1.4826 MAD of the frame-to-frame differences / sqrt(2)."""
    d = np.diff(ratio, axis=1)
    return 1.4826 * np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1) / np.sqrt(2)


def correlation_similarity(ratio: np.ndarray, width: float = 0.5) -> np.ndarray:
    """``exp(-(1 - r_ij)^2 / width^2)`` of the Pearson correlation ``r_ij`` (ignores amplitude)."""
    return np.exp(-(1 - np.corrcoef(ratio)) ** 2 / width**2)


PAPER_RULES = {"min_contrast": 0.0, "smooth_frames": 1}
"""The ``ActivityConfig`` fields whose defaults are ours, set to the paper's rules; each variant starts from these."""

VARIANTS = {
    "paper: std(dF) > 0.1 F0, sigma 1.5 scaled": {},
    "local contrast >= 0.2": {"config": {"min_contrast": 0.2}},
    "local contrast >= 0.3": {"config": {"min_contrast": 0.3}},
    "local contrast >= 0.4": {"config": {"min_contrast": 0.4}},
    "threshold 0.15": {"config": {"active_threshold": 0.15}},
    "local contrast >= 0.3, threshold 0.15": {"config": {"min_contrast": 0.3, "active_threshold": 0.15}},
    "sigma / 2": {"sigma_factor": 0.5},
    "std > 0.1 F0 and > 2.5 x frame noise": {"noise_factor": 2.5},
    "correlation similarity": {"correlation": True},
    "local contrast >= 0.3, sigma / 2": {"config": {"min_contrast": 0.3}, "sigma_factor": 0.5},
    "local contrast >= 0.3, correlation similarity": {"config": {"min_contrast": 0.3}, "correlation": True},
    "local contrast >= 0.3, 50 brightest voxels": {"config": {"min_contrast": 0.3, "n_brightest": 50}},
    "local contrast >= 0.3, 25 brightest voxels": {"config": {"min_contrast": 0.3, "n_brightest": 25}},
    "local contrast >= 0.3, F over 3 frames": {"config": {"min_contrast": 0.3, "smooth_frames": 3}},
    "local contrast >= 0.3, F over 5 frames": {"config": {"min_contrast": 0.3, "smooth_frames": 5}},
    "local contrast >= 0.3, F over 3 frames, threshold 0.15": {"config": {"min_contrast": 0.3, "smooth_frames": 3,
                                                                          "active_threshold": 0.15}},
    "local contrast >= 0.3, F over 3 frames, sigma / 2": {"config": {"min_contrast": 0.3, "smooth_frames": 3},
                                                           "sigma_factor": 0.5},
    "local contrast >= 0.3, F over 3 frames, correlation similarity": {
        "config": {"min_contrast": 0.3, "smooth_frames": 3}, "correlation": True},
    "local contrast >= 0.4, F over 3 frames": {"config": {"min_contrast": 0.4, "smooth_frames": 3}},
    "F over 3 frames": {"config": {"smooth_frames": 3}},
    "local contrast >= 0.3, F over 3 frames, 4 clusters (the truth's number: an oracle)": {
        "config": {"min_contrast": 0.3, "smooth_frames": 3, "n_clusters": 4}},
}
"""Variant name -> changes from the paper's rules (every local maximum above Otsu's threshold is a neuron, F of each
frame as it is, std(dF) > 0.1 F0, the paper's sigma): ``config`` (``ActivityConfig`` fields, e.g. ``min_contrast``,
the local contrast a maximum needs to count as a neuron, and ``smooth_frames``, F averaged over that many frames:
0.3 and 3 are the pipeline's defaults since 2026-12-02), and re-selection/re-clustering of the active neurons
(``sigma_factor``, ``noise_factor``: std also above this many times the frame noise, ``correlation``)."""


def clusters_of(df, f0, *, threshold=0.1, noise_factor=None, sigma_factor=1.0, correlation=False) -> np.ndarray:
    """Cluster labels ``(N,)`` (0 = not active) under one re-clustering variant."""
    ratio = df / f0[:, None]
    active = most_active(df, f0, threshold)
    if noise_factor is not None:
        active &= ratio.std(axis=1) > noise_factor * frame_noise(ratio)
    return cluster_active(active, lambda: (correlation_similarity(ratio[active]) if correlation else
                                          similarity(df[active], f0[active], paper_sigma(df.shape[1]) * sigma_factor)),
                          None, ActivityConfig().max_clusters)[0]


def cached_video(args, seed: int, model) -> dict:
    """One video's registered frames, Deep-Z stacks, registered scanned stacks and truth, from the cache or computed
    (as ``analyse_activity`` registers and refocuses them)."""
    model_key = Path(args.model).name + ("_calibrated" if args.calibrated else "")
    path = Path(args.cache) / (f"activity_stacks_seed{seed}_f{args.field}_t{args.frames}_z{args.z_step}_{model_key}_"
                               f"{args.normalisation}.npz")
    if not path.exists():
        other_models = sorted(path.parent.glob(path.name.replace(model_key, "*")))
        if other_models:  # the simulation and registration do not depend on the model
            with np.load(other_models[0]) as data:
                video = {k: v for k, v in data.items() if k != "stacks"}
        else:
            sim = simulate_worm_activity(activity_preset("worm-activity", field_px=args.field, n_frames=args.frames),
                                         seed=seed, scanned=True)
            video = {"video": register_video(sim.video, channel=ActivityConfig().red)[0],
                     "z": np.arange(-10.0, 10.0 + args.z_step / 2, args.z_step),
                     "scanned": register_video(sim.stacks, channel=ActivityConfig().red)[0].astype(np.float16),
                     "scanned_z": sim.z_um, "spacing": np.array(sim.spacing_um), "centres": sim.centres_um,
                     "traces": sim.traces, "clusters": sim.clusters}
        stacks = refocus_video(video["video"], video["z"], model=model, device=args.device, progress=False,
                               pixel_um=float(video["spacing"][2]), calibrated=args.calibrated,
                               normalisation=args.normalisation)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, stacks=stacks.astype(np.float16), **video)
    with np.load(path) as data:  # float32 once here, not per variant
        return {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in data.items()}


def analysis_inputs(v: dict) -> dict:
    """``{analysis: (TCZYX data, plane depths µm, (dz, dy, dx), lateral_only)}`` of one cached video."""
    _, dy, dx = (float(s) for s in v["spacing"])
    return {"deepz": (v["stacks"], v["z"], (float(np.diff(v["z"])[0]), dy, dx), False),
            "scanned": (v["scanned"], v["scanned_z"], (float(np.diff(v["scanned_z"])[0]), dy, dx), False),
            "2d_raw": (v["video"][:, :, None], np.zeros(1), (1.0, dy, dx), True)}


def score_variant(v: dict, analysis: str, variant: dict) -> dict:
    """Scores of one analysis of one cached video under one variant."""
    data, z, spacing, lateral = analysis_inputs(v)[analysis]
    config = ActivityConfig(register_frames=False, **{**PAPER_RULES, **variant.get("config", {})})
    res = analyse_activity(data, spacing, config, stack_z_um=z, progress=False)
    rule = {k: val for k, val in variant.items() if k != "config"}
    clusters = clusters_of(res.df, res.f0, **rule) if rule else res.clusters
    return score_activity(res.centroids_um, res.f, clusters, v["centres"], v["traces"], v["clusters"],
                          lateral_only=lateral)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    video_arguments(parser)
    parser.add_argument("--cache", required=True, help="folder for the per-video stacks (outside the repository)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "activity_variants.json"))
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="only the variants whose name contains a TEXT")
    args = parser.parse_args(argv)
    variants = {n: v for n, v in VARIANTS.items() if not args.only or any(t in n for t in args.only)}

    model = load(args.model)
    videos = {seed: cached_video(args, seed, model) for seed in args.seed}
    analyses = ("deepz", "scanned", "2d_raw")
    keys = ("ari", "precision", "recall", "trace_corr_median")
    scores = {name: {a: {k: [] for k in keys} for a in analyses} for name in variants}
    for name, variant in variants.items():
        for v in videos.values():
            for a in analyses:
                s = score_variant(v, a, variant)
                for k in keys:
                    scores[name][a][k].append(round(float(s[k]), 3))
        print(name, json.dumps({a: scores[name][a]["ari"] for a in analyses}), flush=True)
    print("\n| variant | " + " | ".join(f"{a}: ARI / precision / recall" for a in analyses) + " |\n|---|---|---|---|")
    for name in variants:
        print(f"| {name} | " + " | ".join(" / ".join(f"{np.mean(scores[name][a][k]):.2f}" for k in keys[:3])
                                          for a in analyses) + " |")
    print(f"\nARI per seed ({' / '.join(map(str, args.seed))})\n")
    print(f"| variant | {' | '.join(analyses)} |\n|---|---|---|---|")
    for name in variants:
        print(f"| {name} | " + " | ".join(" / ".join(f"{x:.2f}" for x in scores[name][a]["ari"]) for a in analyses)
              + " |")
    record = {"command": "python benchmarks/activity_variants.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": time.strftime("%Y-%m-%d"), "model": args.model, "normalisation": args.normalisation,
              "seeds": args.seed, "variants": variants, "per_seed": scores,
              "mean": {n: {a: {k: round(float(np.mean(x)), 3) for k, x in v.items()} for a, v in s.items()}
                       for n, s in scores.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
