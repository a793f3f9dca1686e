"""Where the frame-to-frame noise of the activity traces comes from (issue 18), on the cached videos of
``activity_variants.py``.

1. For every video: the median over neurons of the frame noise of ``F(t)`` (1.4826 MAD of the frame-to-frame
   differences / sqrt(2), relative to ``F0``), in the calcium (green) channel over the silent neurons and in the
   nuclear (red) channel, constant in the truth, over all neurons; for Deep-Z's virtual stacks, the scanned stacks
   and the raw frames (2D). Neurons and masks are each analysis's own (``analyse_activity``, no smoothing in time).
2. For every video, with the pipeline's defaults: the fraction of the matched silent neurons that pass the
   activity threshold, and of the matched active ones that do not.
3. For the first video: the red channel's median frame refocused again with only one source of change between
   frames: photon noise drawn from the variance-mean line of the registered frames, or the sub-pixel interpolation
   of a registration (a random shift and back, bilinear), or both; the relative std of ``F(t)`` in Deep-Z's masks.

Writes ``benchmarks/results/activity_trace_noise.json`` and prints Markdown tables.

    python benchmarks/activity_trace_noise.py --field 128 --frames 32 --z-step 1.0 --seed 0 1 2 --cache /tmp/act
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from activity_variants import analysis_inputs, cached_video, frame_noise
from bench_activity import video_arguments
from scipy import ndimage

from widefield3d.analysis.activity.scores import match_neurons
from widefield3d.analysis.activity.traces import brightest_mean, delta_f, most_active, smooth_in_time
from widefield3d.methods.activity import ActivityConfig, analyse_activity
from widefield3d.methods.deepz import load, refocus

ANALYSES = ("deepz", "scanned", "2d_raw")
MEASURES = ("green_silent", "red", "silent_found_active", "active_missed")
"""Frame noise of F / F0 (green: silent neurons; red: all), then the activity selection's two errors."""


def trace_measures(v: dict, analysis: str) -> dict:
    """One analysis of one video (segmented once): the median relative frame noise of ``F(t)`` without smoothing in
    time, green over the matched silent neurons and red over all neurons; then, with the default smoothing in time,
    the matched silent neurons found active and the matched active neurons not found active."""
    data, z, spacing, lateral = analysis_inputs(v)[analysis]
    config = ActivityConfig(register_frames=False, smooth_frames=1)
    res = analyse_activity(data, spacing, config, stack_z_um=z, progress=False)
    red = brightest_mean(data[:, config.red], res.labels, config.n_brightest) - np.percentile(res.median_red, 1)
    matched = match_neurons(res.centroids_um, v["centres"], lateral_only=lateral)
    silent = v["clusters"][matched[:, 1]] == 0
    df, f0 = delta_f(smooth_in_time(res.f, ActivityConfig().smooth_frames))
    found = most_active(df, f0, config.active_threshold)[matched[:, 0]]
    return {"green_silent": float(np.median(frame_noise((res.df / res.f0[:, None])[matched[silent, 0]]))),
            "red": float(np.median(frame_noise(red / red.mean(axis=1, keepdims=True) - 1))),
            "silent_found_active": float(found[silent].mean()) if silent.any() else float("nan"),
            "active_missed": float(1 - found[~silent].mean()) if (~silent).any() else float("nan")}


def noise_sources(v: dict, model, n_frames: int, seed: int = 0) -> dict:
    """Relative std of Deep-Z's ``F(t)`` (red channel, its own masks) when frames differ by one source only."""
    rng = np.random.default_rng(seed)
    data, z, spacing, _ = analysis_inputs(v)["deepz"]
    labels = analyse_activity(data, spacing, ActivityConfig(register_frames=False), stack_z_um=z,
                              progress=False).labels
    frames = v["video"][:, 1].astype(np.float32)
    median = np.median(frames, axis=0)
    # photon noise: variance = a * mean + b, fitted on ten brightness bins of the registered frames
    inner = (slice(None), slice(8, -8), slice(8, -8))
    residual, mean = (frames - median)[inner], median[inner[1:]]
    bins = np.digitize(mean, np.quantile(mean, np.linspace(0, 1, 11))[1:-1])
    a, b = np.polyfit([mean[bins == k].mean() for k in range(10)],
                      [residual[:, bins == k].var() for k in range(10)], 1)
    noise = rng.normal(size=(n_frames, *median.shape)).astype(np.float32) * np.sqrt(np.maximum(a * median + b, 0))
    shifts = rng.uniform(-0.5, 0.5, (n_frames, 2))
    interpolated = np.stack([ndimage.shift(ndimage.shift(median, s, order=1, mode="nearest"), -s, order=1,
                                           mode="nearest") for s in shifts])
    sets = {"registered frames (as recorded)": frames[:n_frames], "median + photon noise": median + noise,
            "median, sub-pixel interpolation only": interpolated,
            "median + photon noise + interpolation": interpolated + noise}
    out = {}
    for name, series in sets.items():
        stacks = refocus(series, list(z), model=model, progress=False, axes="TYX", pixel_um=spacing[2]).data
        f = brightest_mean(stacks, labels, ActivityConfig().n_brightest)
        out[name] = float(np.median(f.std(axis=1) / f.mean(axis=1)))
        print(f"{name}: {out[name]:.4f}", flush=True)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    video_arguments(parser)
    parser.add_argument("--cache", required=True, help="folder of activity_variants.py's per-video stacks")
    parser.add_argument("--source-frames", type=int, default=12, help="frames per set of the noise-source test")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "activity_trace_noise.json"))
    args = parser.parse_args(argv)

    model = load(args.model)
    per_seed, first = {}, None
    for seed in args.seed:
        v = cached_video(args, seed, model)
        first = v if first is None else first  # the noise-source test's video, read once
        per_seed[seed] = {a: trace_measures(v, a) for a in ANALYSES}
        print(seed, json.dumps(per_seed[seed]), flush=True)
    sources = noise_sources(first, model, args.source_frames)
    print("\n| mean over videos | " + " | ".join(ANALYSES) + " |\n|---|---|---|---|")
    for channel in MEASURES:
        print(f"| {channel} | " + " | ".join(f"{np.mean([s[a][channel] for s in per_seed.values()]):.3f}"
                                               for a in ANALYSES) + " |")
    record = {"command": "python benchmarks/activity_trace_noise.py " + " ".join(sys.argv[1:] if argv is None
                                                                                 else argv),
              "date": time.strftime("%Y-%m-%d"), "model": args.model, "seeds": args.seed, "per_seed": per_seed,
              "mean": {a: {c: round(float(np.mean([s[a][c] for s in per_seed.values()])), 4)
                           for c in MEASURES} for a in ANALYSES},
              "sources_seed": args.seed[0], "sources_relative_std": sources}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
