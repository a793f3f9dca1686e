"""Neuron activity from a 2D video (Deep-Z Fig. 3, issue 18) against the simulator's truth.

Simulates a ``worm-activity`` video (and each frame's mechanically scanned stack), then runs the activity pipeline
three ways: Deep-Z virtual stacks of every frame, the 2D analysis of the raw frames (no refocusing; the paper's
comparison), and the scanned stacks (the upper bound). Scores: detection precision/recall (a centroid within 2 µm
of a true nucleus, one-to-one; laterally for the 2D analysis), median Pearson r of the recovered F(t) and the true
trace over detected neurons active in the truth, adjusted Rand index of the clusters over detected neurons (silent
/ not active = its own class), and frames per second of each analysis. Writes ``benchmarks/results/activity.json``.

    python benchmarks/bench_activity.py --field 64 --frames 8 --z-step 1.0 [--seed 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from widefield3d.analysis.activity.scores import score_activity
from widefield3d.methods.activity import ActivityConfig, analyse_activity, paper_sigma
from widefield3d.methods.deepz import load
from widefield3d.sim.activity import activity_preset, simulate_worm_activity

TARGETS = {"recall_ratio_deepz_over_2d": 1.4, "trace_corr_median": 0.8, "ari": 0.7}


def analyse_seed(args, seed: int, model) -> tuple:
    """Simulate the video of ``seed`` and run the three analyses: ``(sim, simulate_s, {name: (result, seconds,
    lateral_only)})``."""
    t0 = time.perf_counter()
    sim = simulate_worm_activity(activity_preset("worm-activity", field_px=args.field, n_frames=args.frames),
                                 seed=seed, scanned=True)
    simulate_s = time.perf_counter() - t0
    z = tuple(np.arange(-10.0, 10.0 + args.z_step / 2, args.z_step).tolist())
    runs = {"deepz": (sim.video, ActivityConfig(z_um=z, calibrated=args.calibrated,
                                                normalisation=args.normalisation), False, None),
            "2d_raw": (sim.video, ActivityConfig(refocus=False), True, None),
            "scanned": (sim.stacks, ActivityConfig(), False, sim.z_um)}
    analyses = {}
    for name, (data, config, lateral, stack_z) in runs.items():
        t0 = time.perf_counter()
        res = analyse_activity(data, sim.spacing_um, config, model=model, device=args.device, stack_z_um=stack_z)
        analyses[name] = (res, time.perf_counter() - t0, lateral)
    return sim, simulate_s, analyses


def one_seed(args, seed: int, model) -> dict:
    """The three analyses of one simulated video (``seed``) and their scores."""
    sim, simulate_s, analyses = analyse_seed(args, seed, model)
    results = {}
    for name, (res, seconds, lateral) in analyses.items():
        scores = score_activity(res.centroids_um, res.f, res.clusters, sim.centres_um, sim.traces, sim.clusters,
                                lateral_only=lateral)
        results[name] = {**scores, "active_found": int(res.active.sum()), "clusters_found": res.n_clusters,
                         "seconds": round(seconds, 2), "frames_per_s": round(args.frames / seconds, 4),
                         "seconds_per_step": {k: round(v, 2) for k, v in res.seconds.items()},
                         "registration_translation_frames": len(res.failed_frames)}
        print(f"seed {seed}", name, json.dumps({k: v for k, v in results[name].items() if k != "seconds_per_step"}),
              flush=True)
    size = {"field_px": args.field, "frames": args.frames, "z_step_um": args.z_step,
            "planes": len(analyses["deepz"][0].z_um), "pixel_um": sim.spacing_um[1],
            "neurons_truth": len(sim.centres_um), "active_truth": int((sim.clusters > 0).sum()),
            "clusters_truth": int(sim.clusters.max())}
    return {"seed": seed, "size": size, "simulate_s": round(simulate_s, 1), "results": results}


def _vs_targets(results: dict) -> dict:
    dz, d2 = results["deepz"], results["2d_raw"]
    ratio = dz["recall"] / d2["recall"] if d2["recall"] else float("inf")
    return {"recall_ratio_deepz_over_2d": round(ratio, 3), "trace_corr_median_deepz": dz["trace_corr_median"],
            "ari_deepz": dz["ari"]}


def video_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that define the simulated videos and the analyses (shared with ``activity_variants.py``)."""
    parser.add_argument("--field", type=int, default=64, help="field size, camera pixels")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--z-step", type=float, default=0.5, help="refocus step, µm (paper 0.5)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="simulation seed(s); with several, each video is scored and the means reported")
    parser.add_argument("--model", default="deepz-20x075")
    parser.add_argument("--calibrated", action="store_true", help="Deep-Z through the model's depth calibration")
    parser.add_argument("--normalisation", choices=("frame", "video"), default="frame",
                        help="Deep-Z input: each frame against itself (paper) or against the median frame")
    parser.add_argument("--device", default="auto")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    video_arguments(parser)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "activity.json"))
    args = parser.parse_args(argv)

    model = load(args.model)
    videos = [one_seed(args, seed, model) for seed in args.seed]
    record = {
        "command": "python benchmarks/bench_activity.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d"),
        "model": args.model, "similarity_sigma": round(paper_sigma(args.frames), 4),
        **videos[0],
        "targets": TARGETS,
        "vs_targets": _vs_targets(videos[0]["results"]),
    }
    if len(videos) > 1:
        record["per_seed"] = [{**v, "vs_targets": _vs_targets(v["results"])} for v in videos]
        keys = ("precision", "recall", "trace_corr_median", "ari")
        record["mean_over_seeds"] = {name: {k: round(float(np.mean([v["results"][name][k] for v in videos])), 3)
                                            for k in keys} for name in videos[0]["results"]}
        record["vs_targets_mean"] = _vs_targets(record["mean_over_seeds"])
        print("mean over seeds", json.dumps(record["mean_over_seeds"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record.get("vs_targets_mean", record["vs_targets"])))
    return record


if __name__ == "__main__":
    main()
