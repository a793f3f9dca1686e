"""Which neurons count as active, and how they are compared: variants of the last two steps of the activity
pipeline (issue 18), scored by the cluster ARI on several simulated videos.

Each video is simulated and analysed three ways exactly as in ``bench_activity.py`` (Deep-Z virtual stacks, raw
frames, scanned stacks); the traces of each analysis are cached (``--cache``, one ``.npz`` per seed and setting),
then every variant re-selects the active neurons and re-clusters them. Writes
``benchmarks/results/activity_variants.json`` and prints a Markdown table (mean ARI, then per seed).

    python benchmarks/activity_variants.py --field 128 --frames 32 --z-step 1.0 --seed 0 1 2 3 4 --cache /tmp/act
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from bench_activity import analyse_seed, video_arguments

from widefield3d.analysis.activity.clusters import similarity
from widefield3d.analysis.activity.scores import score_activity
from widefield3d.analysis.activity.traces import most_active
from widefield3d.methods.activity import ActivityConfig, cluster_active, paper_sigma
from widefield3d.methods.deepz import load


def frame_noise(ratio: np.ndarray) -> np.ndarray:
    """Robust per-neuron noise of ``dF/F0`` ``(N, T)``: 1.4826 MAD of the frame-to-frame differences / sqrt(2)."""
    d = np.diff(ratio, axis=1)
    return 1.4826 * np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1) / np.sqrt(2)


def correlation_similarity(ratio: np.ndarray, width: float = 0.5) -> np.ndarray:
    """``exp(-(1 - r_ij)^2 / width^2)`` of the Pearson correlation ``r_ij`` (ignores amplitude)."""
    return np.exp(-(1 - np.corrcoef(ratio)) ** 2 / width**2)


VARIANTS = {
    "paper: std(dF) > 0.1 F0, sigma 1.5 scaled": {},
    "sigma / 2": {"sigma_factor": 0.5},
    "threshold 0.15": {"threshold": 0.15},
    "noise-relative: std > 2.5 x frame noise": {"noise_factor": 2.5, "threshold": 0.0},
    "std > 0.1 F0 and > 2.5 x frame noise": {"noise_factor": 2.5},
    "correlation similarity": {"correlation": True},
}
"""Variant name -> changes from the paper's rule (threshold 0.1, sigma factor 1, no noise rule, Gaussian of the
dF/F0 distance)."""


def clusters_of(df, f0, *, threshold=0.1, noise_factor=None, sigma_factor=1.0, correlation=False) -> np.ndarray:
    """Cluster labels ``(N,)`` (0 = not active) under one variant."""
    ratio = df / f0[:, None]
    active = most_active(df, f0, threshold) if threshold > 0 else np.ones(len(df), bool)
    if noise_factor is not None:
        active &= ratio.std(axis=1) > noise_factor * frame_noise(ratio)
    return cluster_active(active, lambda: (correlation_similarity(ratio[active]) if correlation else
                                          similarity(df[active], f0[active], paper_sigma(df.shape[1]) * sigma_factor)),
                          None, ActivityConfig().max_clusters)[0]


def cached_traces(args, seed: int, model) -> dict:
    """``{analysis: arrays}`` of one video, from the cache or computed (minutes: the refocusing)."""
    model_key = Path(args.model).name + ("_calibrated" if args.calibrated else "")
    path = Path(args.cache) / f"activity_seed{seed}_f{args.field}_t{args.frames}_z{args.z_step}_{model_key}.npz"
    if not path.exists():
        sim, _, analyses = analyse_seed(args, seed, model)
        arrays = {"truth_centres": sim.centres_um, "truth_traces": sim.traces, "truth_clusters": sim.clusters}
        for name, (res, _, lateral) in analyses.items():
            arrays.update({f"{name}_centroids": res.centroids_um, f"{name}_f": res.f, f"{name}_df": res.df,
                           f"{name}_f0": res.f0, f"{name}_lateral": np.array(lateral)})
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
    with np.load(path) as data:
        return dict(data)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    video_arguments(parser)
    parser.add_argument("--cache", required=True, help="folder for the per-video traces (outside the repository)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "activity_variants.json"))
    args = parser.parse_args(argv)

    model = load(args.model)
    videos = {seed: cached_traces(args, seed, model) for seed in args.seed}
    analyses = ("deepz", "scanned", "2d_raw")
    ari = {name: {a: [] for a in analyses} for name in VARIANTS}
    for name, changes in VARIANTS.items():
        for v in videos.values():
            for a in analyses:
                labels = clusters_of(v[f"{a}_df"], v[f"{a}_f0"], **changes)
                scores = score_activity(v[f"{a}_centroids"], v[f"{a}_f"], labels, v["truth_centres"],
                                        v["truth_traces"], v["truth_clusters"], lateral_only=bool(v[f"{a}_lateral"]))
                ari[name][a].append(round(scores["ari"], 3))
    print(f"| variant | {' | '.join(analyses)} |\n|---|---|---|---|")
    for name in VARIANTS:
        print(f"| {name} | " + " | ".join(f"**{np.mean(ari[name][a]):.2f}** ("
                                          + " / ".join(f"{x:.2f}" for x in ari[name][a]) + ")"
                                          for a in analyses) + " |")
    record = {"command": "python benchmarks/activity_variants.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": time.strftime("%Y-%m-%d"), "model": args.model, "seeds": args.seed, "variants": VARIANTS,
              "ari_per_seed": ari,
              "ari_mean": {n: {a: round(float(np.mean(x)), 3) for a, x in v.items()} for n, v in ari.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
