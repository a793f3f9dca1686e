"""The neuron-activity figure (Deep-Z Fig. 3) and the activity section of ``widefield3d demo``."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

CLUSTER_COLOURS = ("#1f77b4", "#17becf", "#e6c619", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#2ca02c")
"""Cluster colours (the paper's C1 blue, C2 cyan, C3 yellow first); inactive neurons are grey."""


def _colour(k: int) -> str:
    return "#b0b0b0" if k == 0 else CLUSTER_COLOURS[(k - 1) % len(CLUSTER_COLOURS)]


def activity_figure(result, times_s) -> plt.Figure:
    """A figure like Deep-Z Fig. 3 from an :class:`~widefield3d.analysis.activity.ActivityResult`.

    (a) maximum projection over z of the time-median volume (red: nuclei, green: activity) with the active neurons
    circled in their cluster's colour; (b) the neurons in 3D coloured by cluster (grey: not active); (c) dF/F0 of
    the active neurons as a heat map, ordered by cluster; (d) the mean dF/F0 of each cluster over time.
    """
    times = np.asarray(times_s, float)
    fig = plt.figure(figsize=(13, 8.5))
    grid = fig.add_gridspec(2, 3, width_ratios=(1.1, 1.1, 1.3))
    ax = fig.add_subplot(grid[0, 0])
    red, green = result.median_red.max(axis=0), result.median_green.max(axis=0)

    def unit(a):
        lo, hi = np.percentile(a, [1, 99.7])
        return np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)

    rgb = np.stack([unit(red), unit(green), np.zeros_like(red)], axis=-1)
    ny, nx = red.shape
    dy, dx = result.spacing_um[1:]
    ax.imshow(rgb, extent=(0, nx * dx, ny * dy, 0))
    for (_, y, x), k in zip(result.centroids_um, result.clusters):
        if k:
            ax.add_patch(plt.Circle((x, y), 1.6, fill=False, color=_colour(k), lw=1.2))
    ax.set(title=f"(a) median over time, max over z: {len(result.f)} neurons, {int(result.active.sum())} active",
           xlabel="x (µm)", ylabel="y (µm)")
    ax.title.set_fontsize(9)
    ax3 = fig.add_subplot(grid[0, 1], projection="3d")
    c = result.centroids_um
    ax3.scatter(c[:, 2], c[:, 1], c[:, 0], c=[_colour(k) for k in result.clusters], s=14, depthshade=False)
    ax3.set(xlabel="x (µm)", ylabel="y (µm)", zlabel="z (µm)", title="(b) neurons in 3D, coloured by cluster")
    ax3.title.set_fontsize(9)
    ax3.invert_zaxis()
    axh = fig.add_subplot(grid[:, 2])
    order = np.flatnonzero(result.active)
    order = order[np.lexsort((order, result.clusters[order]))]
    ratio = result.df / np.where(result.f0 == 0, np.nan, result.f0)[:, None]
    if len(order):
        lim = float(np.nanpercentile(np.abs(ratio[order]), 99)) or 1.0
        axh.imshow(ratio[order], aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim,
                   extent=(times[0], times[-1], len(order), 0), interpolation="nearest")
        edges = np.flatnonzero(np.diff(result.clusters[order])) + 1
        for e in edges:
            axh.axhline(float(e), color="k", lw=0.8)
        for k in range(1, result.n_clusters + 1):
            rows = np.flatnonzero(result.clusters[order] == k)
            if len(rows):
                axh.text(times[0] - 0.02 * (times[-1] - times[0] + 1e-9), rows.mean() + 0.5, f"C{k}",
                         color=_colour(k), ha="right", va="center", fontsize=9, fontweight="bold")
    axh.set(title=f"(c) dF/F0 of the {len(order)} active neurons, {result.n_clusters} clusters",
            xlabel="time (s)", ylabel="neuron (ordered by cluster)")
    axh.title.set_fontsize(9)
    axt = fig.add_subplot(grid[1, :2])
    for k in range(1, result.n_clusters + 1):
        members = result.clusters == k
        axt.plot(times, np.nanmean(ratio[members], axis=0), color=_colour(k), lw=2,
                 label=f"C{k} mean ({int(members.sum())} neurons)")
        first = np.flatnonzero(members)[:2]
        for i in first:
            axt.plot(times, ratio[i], color=_colour(k), lw=0.7, alpha=0.6)
    axt.set(xlabel="time (s)", ylabel="dF/F0", title="(d) activity per cluster (thin: two member neurons)")
    axt.title.set_fontsize(9)
    if result.n_clusters:
        axt.legend(fontsize=8, ncol=min(4, result.n_clusters))
    fig.tight_layout()
    return fig


def demo_section(report, out_dir: str | Path, *, seed: int = 0, n_frames: int = 6, field_px: int = 64,
                 model: str = "deepz-20x075", z_step_um: float = 2.5, progress: bool = True) -> dict:
    """Add the neuron-activity section: simulate a small worm activity video, run the pipeline with Deep-Z and the
    2D analysis of the raw frames, and score both against the truth.

    The demo is small (6 frames of 64 px and a 2.5 µm refocus step, 9 planes: 108 Deep-Z planes, each padded by
    the network's 108 px receptive radius) so that it stays within a few minutes of CPU;
    ``widefield3d activity`` uses the paper's 0.5 µm step.

    Returns
    -------
    dict
        Scores (``deepz``, ``2d``: see :func:`widefield3d.analysis.activity.scores.score_activity`) and seconds.
    """
    from widefield3d.analysis.activity.scores import score_activity
    from widefield3d.methods.activity import ActivityConfig, analyse_activity, paper_sigma, write_activity
    from widefield3d.methods.deepz import load
    from widefield3d.sim.activity import activity_preset, simulate_worm_activity

    out = Path(out_dir)
    t0 = time.perf_counter()
    sim = simulate_worm_activity(activity_preset("worm-activity", field_px=field_px, n_frames=n_frames), seed=seed,
                                 progress=progress)
    t_sim = time.perf_counter() - t0
    z = tuple(np.arange(-10.0, 10.0 + z_step_um / 2, z_step_um).tolist())
    loaded = load(model)
    rows, results = [], {}
    for name, cfg in (("Deep-Z", ActivityConfig(z_um=z)), ("2D (raw frames)", ActivityConfig(refocus=False))):
        t0 = time.perf_counter()
        res = analyse_activity(sim.video, sim.spacing_um, cfg, model=loaded, progress=progress)
        seconds = time.perf_counter() - t0
        s = score_activity(res.centroids_um, res.f, res.clusters, sim.centres_um, sim.traces, sim.clusters,
                           lateral_only=not cfg.refocus)
        results[name] = {**s, "seconds": seconds, "result": res}
        rows.append({"analysis": name, "neurons found": s["detected"], "recall": s["recall"],
                     "precision": s["precision"], "median trace r": s["trace_corr_median"], "ARI": s["ari"],
                     "clusters": res.n_clusters, "seconds": seconds})
    write_activity(results["Deep-Z"]["result"], out / "activity", times_s=sim.times_s, figure=activity_figure)
    report.heading("Neuron activity in 3D from a 2D video (Deep-Z Fig. 3)")
    report.text(f"A simulated worm ({len(sim.centres_um)} nuclei, {int((sim.clusters > 0).sum())} active in "
                f"{int(sim.clusters.max())} clusters) filmed at one focal plane: {n_frames} frames of "
                f"{field_px}x{field_px} px, green = calcium activity, red = nuclei, slight body motion "
                f"(simulated in {t_sim:.1f} s). Every frame of both channels is refocused by {model} to "
                f"{len(z)} planes ({z[0]:+g} .. {z[-1]:+g} µm); neurons are the local maxima of the red "
                f"channel's median over time that stand out from their surroundings (local contrast >= "
                f"{ActivityConfig().min_contrast:g}), masks a 3D watershed, F the mean of the 100 brightest green "
                f"voxels averaged over {ActivityConfig().smooth_frames} frames, clusters from the eigen-gap of "
                f"the similarity of dF/F0 (sigma {paper_sigma(n_frames):.2f}: the paper's 1.5 at 126 frames, scaled "
                f"by sqrt(frames / 126)). A detection counts within 2 µm of a true nucleus "
                f"(laterally for the 2D analysis).")
    report.table(rows, "Against the simulator's truth (trace r: median Pearson r over detected active neurons; "
                       "ARI: clusters of the detected neurons, silent = its own class)")
    report.figure(activity_figure(results["Deep-Z"]["result"], sim.times_s),
                  "Deep-Z activity figure: (a) time-median, max over z; (b) neurons in 3D; (c) dF/F0 heat map "
                  "ordered by cluster; (d) cluster means.", out / "figures" / "activity.png")
    return {k: {kk: vv for kk, vv in v.items() if kk != "result"} for k, v in results.items()} | {"simulate_s": t_sim}
