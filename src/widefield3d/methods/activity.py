"""The activity pipeline of Deep-Z Fig. 3 end to end: register, refocus, segment, measure, cluster.

:func:`analyse_activity` runs :mod:`~widefield3d.prep.frame_registration` and the steps of
:mod:`~widefield3d.analysis.activity` on a two-channel video (or on scanned stacks) and returns an
:class:`ActivityResult`; :func:`write_activity` writes its files.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from widefield3d import io
from widefield3d.analysis.activity.clusters import similarity, spectral_clusters
from widefield3d.analysis.activity.segment import find_centroids, median_projection, smooth, watershed_masks
from widefield3d.analysis.activity.traces import brightest_mean, delta_f, most_active, smooth_in_time
from widefield3d.errors import InputError
from widefield3d.prep.frame_registration import register_video


class ActivityConfig(BaseModel):
    """Settings of the activity pipeline (paper values where it gives them; lengths in µm)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    green: int = Field(0, ge=0, description="channel index of the activity (calcium) channel")
    red: int = Field(1, ge=0, description="channel index of the nuclear channel")
    register_frames: bool = Field(True, description="projective frame-to-frame registration on the nuclear channel")
    z_um: tuple[float, ...] = Field(tuple(np.arange(-10.0, 10.25, 0.5).tolist()),
                                    description="refocus distances (paper: -10 .. 10 µm, 0.5 µm steps)")
    refocus: bool = Field(True, description="False: analyse the raw planes (2D analysis, or stacks as given)")
    calibrated: bool = Field(False, description="refocus through the model's depth calibration (ours, not in the "
                                                "paper; methods/deepz_calibration.py)")
    normalisation: Literal["frame", "video"] = Field(
        "frame", description="refocus each frame normalised against itself (the paper's rule for single images), or "
                             "every frame of a channel against its median frame (ours: one intensity scale in time)")
    min_distance_um: tuple[float, float] = Field((2.0, 1.2), description="(axial, lateral) local-maximum radius")
    min_contrast: float = Field(0.3, ge=0, lt=1, description="a centroid's lowest local contrast, 1 - background / "
                                "peak (background: 20th percentile within +-4 µm axially, +-3 µm laterally; ours; "
                                "0: every maximum above Otsu's threshold)")
    max_radius_um: float = Field(2.5, gt=0, description="largest distance of a mask voxel from its centroid")
    smooth_um: tuple[float, float] = Field((0.5, 0.3), description="(axial, lateral) Gaussian sigma before segmenting")
    n_brightest: int = Field(100, ge=1, description="F_i(t) = mean of this many brightest voxels (paper: 100)")
    smooth_frames: int = Field(3, ge=1, description="F_i(t) averaged over this many frames before dF (ours, "
                                                    "against Deep-Z's frame-to-frame noise; 1: none, the paper)")
    background: float | None = Field(None, description="subtracted from the green channel before F; None: its "
                                                       "1st percentile over the median volume")
    active_threshold: float = Field(0.1, gt=0, description="active: std(dF) > threshold * F0")
    sigma: float | None = Field(None, gt=0, description="width of the similarity; None: the paper's 1.5 at its 126 "
                                                       "frames, scaled by sqrt(T / 126) (||.||^2 grows with T)")
    n_clusters: int | None = Field(None, ge=1, description="None: the eigen-gap heuristic")
    max_clusters: int = Field(8, ge=1)

    @field_validator("z_um")
    @classmethod
    def _even_increasing(cls, z: tuple[float, ...]) -> tuple[float, ...]:
        """The refocus depths form an evenly spaced, increasing grid: the 3D analysis needs one z spacing."""
        steps = np.diff(np.asarray(z, float))
        uneven = steps.size > 0 and float(steps.max() - steps.min()) > 1e-6 * max(1.0, float(steps.max()))
        if not z or not np.all(np.isfinite(z)) or np.any(steps <= 0) or uneven:
            raise ValueError(f"expected finite, increasing, evenly spaced depths (µm), got {list(z)}")
        return z


@dataclass
class ActivityResult:
    """What the pipeline found. Neuron ``i`` is label ``i + 1`` in ``labels``.

    ``centroids_um``: ``(N, 3)`` ``(z, y, x)`` µm (z relative to the focal plane, 0 in a 2D analysis); ``f``,
    ``df``: ``(N, T)``; ``f0``: ``(N,)``; ``active``: ``(N,)`` bool; ``clusters``: ``(N,)`` (0 = not active,
    1.. by decreasing size); ``eigenvalues`` of the Laplacian of the active neurons' similarity; ``seconds``: time
    per step; ``median_red``/``median_green``: the time-median volumes.
    """

    centroids_um: np.ndarray
    labels: np.ndarray
    spacing_um: tuple[float, float, float]
    z_um: np.ndarray
    f: np.ndarray
    f0: np.ndarray
    df: np.ndarray
    active: np.ndarray
    clusters: np.ndarray
    n_clusters: int
    eigenvalues: np.ndarray
    median_red: np.ndarray
    median_green: np.ndarray
    failed_frames: list[int] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


PAPER_FRAMES = 126
"""Frames of the paper's recording (~35 s at ~3.6 Hz), for which it chose sigma = 1.5."""


def paper_sigma(n_frames: int) -> float:
    """The similarity width for ``n_frames``: 1.5 (paper) at 126 frames, scaled by ``sqrt(n_frames / 126)``.

    ``||dF_i/F0_i - dF_j/F0_j||^2`` sums over frames, so the same activity over fewer frames gives smaller
    distances; scaling sigma keeps the similarity of two given activity patterns independent of the length.
    """
    return 1.5 * float(np.sqrt(n_frames / PAPER_FRAMES))


def refocus_video(video: np.ndarray, z_um, *, model, device: str = "auto", progress: bool = True,
                  pixel_um: float | None = None, calibrated: bool = False,
                  normalisation: Literal["frame", "video"] = "frame") -> np.ndarray:
    """Deep-Z virtual stacks of every frame and channel: ``(T, C, Y, X)`` -> ``(T, C, Z, Y, X)`` float32.

    Each channel's frames go through :func:`widefield3d.methods.deepz.refocus` (tiled, all planes of a group in one
    batch), each frame normalised on its own (``normalisation="frame"``) or every frame against the channel's
    median frame (``"video"``), and mapped back to its units; ``calibrated``: through the model's depth calibration.
    """
    from widefield3d.methods.deepz import DeepZModel, load, reference_normalisation, refocus

    model = model if isinstance(model, DeepZModel) else load(model)
    video = np.asarray(video)
    out = np.empty((video.shape[0], video.shape[1], len(z_um), *video.shape[2:]), np.float32)
    for c in range(video.shape[1]):
        norm = (reference_normalisation(np.median(video[:, c], axis=0), model) if normalisation == "video"
                else None)
        out[:, c] = refocus(video[:, c], list(z_um), model=model, device=device, progress=progress, axes="TYX",
                            pixel_um=pixel_um, calibrated=calibrated, normalisation=norm).data
    return out


def cluster_active(active: np.ndarray, similarity_of_active: Callable[[], np.ndarray], n_clusters: int | None,
                   max_clusters: int) -> tuple[np.ndarray, int, np.ndarray]:
    """Spectral clusters of the active neurons: labels ``(N,)`` (0 = not active), their number and the eigenvalues.

    ``similarity_of_active()`` returns the similarity matrix of the active neurons; it is called only when at least
    two are active (one active neuron is cluster 1; none, no cluster)."""
    clusters = np.zeros(len(active), int)
    if active.sum() >= 2:
        clusters[active], n, eigenvalues = spectral_clusters(similarity_of_active(), n_clusters,
                                                             max_clusters=max_clusters)
        return clusters, n, eigenvalues
    clusters[active] = 1
    return clusters, int(active.sum()), np.zeros(0)


def analyse_activity(video: np.ndarray, spacing_um, config: ActivityConfig | None = None, *, model=None,
                     device: str = "auto", progress: bool = True, stack_z_um=None) -> ActivityResult:
    """Neuron positions, masks, activity traces and clusters from a two-channel video.

    Parameters
    ----------
    video : ndarray
        ``(T, C, Y, X)`` frames at one focal plane, or ``(T, C, Z, Y, X)`` stacks (scanned: not refocused).
    spacing_um : (dz, dy, dx)
        µm; dz is replaced by the refocus step when refocusing.
    config : ActivityConfig
    model : str or DeepZModel
        Deep-Z model for refocusing (needed when ``config.refocus`` and the input has no Z).
    stack_z_um : array_like, optional
        Depths (µm, relative to the focal plane) of the planes of a stack input; default centred on 0.

    Returns
    -------
    ActivityResult
    """
    config = config or ActivityConfig()
    video = np.asarray(video)
    if video.ndim not in (4, 5) or video.shape[0] < 3:
        raise InputError(f"activity: expected (T, C, Y, X) or (T, C, Z, Y, X) with T >= 3 frames, got {video.shape}")
    n_c = video.shape[1]
    if max(config.green, config.red) >= n_c or config.green == config.red:
        raise InputError(f"activity: green channel {config.green} and red channel {config.red} must be two "
                         f"different channels of the {n_c}")
    seconds = {}
    t0 = time.perf_counter()
    failed: list[int] = []
    if config.register_frames:
        video, _, failed = register_video(video, channel=config.red)
    seconds["register"] = time.perf_counter() - t0
    dz, dy, dx = (float(s) for s in spacing_um)
    t0 = time.perf_counter()
    if video.ndim == 4 and config.refocus:
        if model is None:
            raise InputError("activity: refocusing needs a Deep-Z model (or refocus=False)")
        z = np.asarray(config.z_um, float)
        stacks = refocus_video(video, z, model=model, device=device, progress=progress, pixel_um=dx,
                               calibrated=config.calibrated, normalisation=config.normalisation)
        dz = float(np.diff(z).mean()) if len(z) > 1 else 1.0
    elif video.ndim == 4:
        stacks, z = video[:, :, None].astype(np.float32), np.zeros(1)
    else:
        stacks = video.astype(np.float32)
        nz = stacks.shape[2]
        z = (np.asarray(stack_z_um, float) if stack_z_um is not None else (np.arange(nz) - (nz - 1) / 2) * dz)
    seconds["refocus"] = time.perf_counter() - t0
    spacing = (dz, dy, dx)

    t0 = time.perf_counter()
    red = median_projection(stacks[:, config.red])
    green_median = median_projection(stacks[:, config.green])
    red_smoothed = smooth(red, spacing, config.smooth_um)
    peaks = find_centroids(red_smoothed, spacing, min_distance_um=config.min_distance_um,
                           min_contrast=config.min_contrast)
    labels = watershed_masks(red_smoothed, peaks, spacing, max_radius_um=config.max_radius_um)
    seconds["segment"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    background = (float(np.percentile(green_median, 1)) if config.background is None else config.background)
    f = smooth_in_time(brightest_mean(stacks[:, config.green], labels, config.n_brightest) - background,
                       config.smooth_frames)
    df, f0 = delta_f(f)
    active = most_active(df, f0, config.active_threshold)
    sigma = config.sigma or paper_sigma(df.shape[1])
    clusters, n_clusters, eigenvalues = cluster_active(
        active, lambda: similarity(df[active], f0[active], sigma), config.n_clusters, config.max_clusters)
    seconds["traces_clusters"] = time.perf_counter() - t0
    centroids_um = np.column_stack([z[peaks[:, 0]], peaks[:, 1] * dy, peaks[:, 2] * dx]) if len(peaks) else \
        np.zeros((0, 3))
    return ActivityResult(centroids_um=centroids_um, labels=labels, spacing_um=spacing, z_um=z, f=f, f0=f0, df=df,
                          active=active, clusters=clusters, n_clusters=n_clusters, eigenvalues=eigenvalues,
                          median_red=red, median_green=green_median, failed_frames=failed, seconds=seconds)


def write_activity(result: ActivityResult, out_dir, *, times_s=None, figure=None,
                   record: dict | None = None) -> list[Path]:
    """Write ``labels.ome.tif`` (ZYX, spacing), ``activity.png`` (with ``figure(result, times_s)`` -> a matplotlib
    figure, e.g. :func:`widefield3d.demo.activity.activity_figure`), ``summary.json`` and, last,
    ``traces.csv`` (one row per neuron: position µm, active, cluster, F0, then dF/F0 per frame).

    Every file is written atomically; ``traces.csv`` is removed first and written last, so a folder without it
    holds an interrupted run.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    traces_path = out / "traces.csv"
    io.remove_path(traces_path)
    n_t = result.f.shape[1] if result.f.ndim == 2 else 0
    times = np.arange(n_t, dtype=float) if times_s is None else np.asarray(times_s, float)
    written = [io.write(out / "labels.ome.tif", io.Image(result.labels, "ZYX", result.spacing_um))]
    if figure is not None:
        fig = figure(result, times)
        with io.atomic_output(out / "activity.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        import matplotlib.pyplot as plt

        plt.close(fig)
        written.append(out / "activity.png")
    summary = {"neurons": int(len(result.f)), "active": int(result.active.sum()), "clusters": result.n_clusters,
               "cluster_sizes": np.bincount(result.clusters, minlength=result.n_clusters + 1)[1:].tolist(),
               "eigenvalues": np.round(result.eigenvalues[:12], 5).tolist(), "z_um": [float(result.z_um[0]),
               float(result.z_um[-1])], "spacing_um": list(result.spacing_um),
               "failed_registration_frames": result.failed_frames,
               "seconds": {k: round(v, 2) for k, v in result.seconds.items()}, **(record or {})}
    with io.atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    written.append(out / "summary.json")
    with io.atomic_output(traces_path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["neuron", "z_um", "y_um", "x_um", "active", "cluster", "F0",
                    *(f"dF/F0 t={t:.3f}" for t in times)])
        ratio = result.df / np.where(result.f0 == 0, np.nan, result.f0)[:, None]
        for i, (c, a, k, f0, r) in enumerate(zip(result.centroids_um, result.active, result.clusters, result.f0,
                                                  ratio)):
            w.writerow([i + 1, *(f"{v:.3f}" for v in c), int(a), int(k), f"{f0:.4g}", *(f"{v:.5f}" for v in r)])
    written.append(traces_path)
    return written
