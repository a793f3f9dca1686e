"""Simulated neuron activity video of a worm (Deep-Z Fig. 3): two channels at one focal plane, with ground truth.

The sample is the ``worm`` of :mod:`widefield3d.sim.samples.nuclei`: nuclei at random depths inside a 20 µm body.
Every nucleus is seen in two fluorescence channels:

* **red** (nuclear marker, e.g. Texas Red): constant brightness, the body's faint autofluorescence beneath;
* **green** (calcium indicator, e.g. GCaMP/FITC): brightness ``g_i * a_i(t)`` with the neuron's calcium trace
  ``a_i(t) = 1 + A_i p_c(t) + noise``, ``p_c`` the pattern of its cluster ``c`` (:data:`PATTERNS`: periodic spikes
  like the defecation-cycle cells, a rise and an anti-correlated fall like the paper's motor-neuron clusters C2/C3,
  a slow oscillation) or 0 for silent neurons.

Each frame images both channels at one fixed focal plane (the middle of the worm) with the wide-field model of
:mod:`widefield3d.sim.acquisition`; optionally also the mechanically scanned stack (the upper bound a scanning
microscope reaches, at the cost of one exposure per plane). The body moves slowly between frames: a small
projective warp (drift, rotation, scale, perspective) of the images, frame 0 unmoved. Camera noise is added per
frame with one intensity scale per channel (:func:`widefield3d.sim.camera.expose` with a shared reference).

Ground truth, in the coordinates of frame 0 (which registration maps every frame onto): nucleus centres (µm; z
relative to the focal plane, + = deeper), a label volume on the camera grid at the stack planes (-10 .. +10 µm),
the traces ``a_i(t)``, cluster labels (0 = silent, 1.. = :data:`PATTERNS` order) and the per-frame warps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial import cKDTree
from skimage.transform import ProjectiveTransform, warp

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.optics.microscope import preset
from widefield3d.optics.psf import psf_planes
from widefield3d.progress import progress_bar
from widefield3d.sim.acquisition import convolve_planes, psf_size
from widefield3d.sim.camera import Camera, expose
from widefield3d.sim.samples.geometry import random_ellipsoids, render_ellipsoids
from widefield3d.sim.samples.nuclei import worm

PATTERNS = ("spikes", "rise", "fall", "oscillation")
"""Activity patterns of the clusters, in label order (cluster label = index + 1; 0 = silent)."""

CHANNELS = ("green", "red")
"""Channel order of the video: green = calcium activity, red = nuclei."""


class WormActivityConfig(BaseModel):
    """How to simulate a worm activity video (lengths in µm, times in s). Defaults match ``deepz-20x075``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    microscope: str = Field("deepz-20x075", description="microscope preset (that of the Deep-Z model to apply)")
    field_px: int = Field(128, ge=32, description="lateral size of the video in camera pixels")
    margin_px: int = Field(12, ge=0, description="extra simulated border, cropped after the motion warp")
    oversample: int = Field(2, ge=1, description="fine-grid pixels per camera pixel (lateral)")
    sample_depth_um: float = Field(30.0, gt=0, description="z extent of the sample grid; the focal plane is its middle")
    sample_dz_um: float = Field(0.5, gt=0)
    n_frames: int = Field(20, ge=4)
    frame_interval_s: float = Field(1 / 3.6, gt=0, description="paper: ~3.6 Hz")
    n_nuclei: int | None = Field(None, ge=1, description="None: the worm generator's own density")
    keep_fraction: float = Field(0.5, gt=0, le=1, description="fraction of the worm's nuclei kept (at random): "
                                 "the full density packs nuclei closer than wide-field axial resolution")
    nucleus_diameter_um: tuple[float, float] = (2.0, 3.0)
    cluster_fractions: tuple[float, ...] = Field(
        (0.1, 0.15, 0.15, 0.15), description="fraction of neurons in each cluster of PATTERNS; the rest are silent")
    amplitude_range: tuple[float, float] = Field((1.0, 2.0), description="A_i: peak dF/F0 of the pattern")
    trace_noise: float = Field(0.04, ge=0, description="rms of each neuron's own smooth fluctuation (dF/F0)")
    green_brightness: tuple[float, float] = Field((0.3, 0.6), description="g_i, baseline green brightness")
    green_autofluorescence: float = Field(0.02, ge=0, description="body glow in the green channel")
    drift_px: float = Field(0.4, ge=0, description="rms step of the random-walk drift per frame, camera pixels")
    rotation_deg: float = Field(0.6, ge=0, description="amplitude of the slow body rotation")
    scale: float = Field(0.006, ge=0, description="amplitude of the slow relative scale change (breathing)")
    perspective: float = Field(2e-5, ge=0, description="amplitude of the projective terms, 1/pixel")
    z_range_um: tuple[float, float] = Field((-10.0, 10.0), description="scanned-stack range around the focal plane")
    camera: Camera = Camera(photons=2000.0)


ACTIVITY_PRESETS: dict[str, WormActivityConfig] = {"worm-activity": WormActivityConfig()}
"""Named activity-video presets (``worm-activity``: the ``deepz-20x075`` microscope, 20 frames of 128 px)."""


def activity_preset(name: str, **changes) -> WormActivityConfig:
    """The preset ``name`` with ``changes`` applied (validated)."""
    if name not in ACTIVITY_PRESETS:
        raise InputError(f"unknown activity preset {name!r}; choose one of: {', '.join(ACTIVITY_PRESETS)}")
    return WormActivityConfig.model_validate({**ACTIVITY_PRESETS[name].model_dump(), **changes})


@dataclass
class WormActivity:
    """A simulated activity video and its ground truth.

    Attributes
    ----------
    video : ndarray of uint16, ``(T, C, Y, X)``
        Camera counts, channels :data:`CHANNELS`, at the focal plane.
    stacks : ndarray of uint16, ``(T, C, Z, Y, X)`` or None
        The mechanically scanned stacks (one per frame), if simulated.
    spacing_um : tuple
        ``(dz, dy, dx)`` of the stacks and the video (µm).
    z_um : ndarray
        ``(Z,)`` stack planes relative to the focal plane (µm, + = deeper).
    times_s : ndarray
        ``(T,)`` frame times (s).
    centres_um : ndarray
        ``(N, 3)`` nucleus centres ``(z, y, x)`` in frame 0's coordinates: z relative to the focal plane, y and x
        from the first pixel's centre (µm).
    labels : ndarray of int32, ``(Z, Y, X)``
        Nucleus ``i`` is label ``i + 1`` where it fills more than half of a camera voxel; 0 elsewhere.
    traces : ndarray, ``(N, T)``
        ``a_i(t)``: green brightness relative to the neuron's baseline (1 = rest).
    clusters : ndarray of int, ``(N,)``
        0 = silent, ``k`` = pattern ``PATTERNS[k - 1]``.
    warps : ndarray, ``(T, 3, 3)``
        Homography of each frame: frame pixel ``(x, y, 1)`` -> frame 0 pixel (frame 0: identity).
    """

    video: np.ndarray
    stacks: np.ndarray | None
    spacing_um: tuple[float, float, float]
    z_um: np.ndarray
    times_s: np.ndarray
    centres_um: np.ndarray
    labels: np.ndarray
    traces: np.ndarray
    clusters: np.ndarray
    warps: np.ndarray
    config: WormActivityConfig


def cluster_pattern(kind: str, u: np.ndarray) -> np.ndarray:
    """Activity pattern ``p(u)`` in [0, 1] at fractions ``u`` in [0, 1) of the recording.

    ``spikes``: three fast rises with exponential decay, evenly spaced (periodic, like the defecation cycle);
    ``rise``/``fall``: a step up/down at 40% of the recording (anti-correlated pair); ``oscillation``: two slow
    periods of a raised cosine.
    """
    if kind == "spikes":
        p = np.zeros_like(u)
        for onset in (0.12, 0.45, 0.78):
            after = u - onset
            p = np.maximum(p, np.where(after >= 0, np.exp(-after / 0.06), 0.0))
        return p
    if kind == "rise":
        return 1 / (1 + np.exp(-(u - 0.4) / 0.04))
    if kind == "fall":
        return 1 - 1 / (1 + np.exp(-(u - 0.4) / 0.04))
    if kind == "oscillation":
        return 0.5 - 0.5 * np.cos(2 * np.pi * 2 * u)
    raise InputError(f"activity pattern must be one of {', '.join(PATTERNS)}; got {kind!r}")


def calcium_traces(n: int, n_frames: int, config: WormActivityConfig, rng) -> tuple[np.ndarray, np.ndarray]:
    """Traces ``a_i(t)`` ``(n, T)`` and cluster labels ``(n,)`` (0 = silent), neurons assigned at random."""
    fractions = np.asarray(config.cluster_fractions, float)
    if len(fractions) != len(PATTERNS) or np.any(fractions < 0) or fractions.sum() > 1:
        raise InputError(f"cluster_fractions: {len(PATTERNS)} non-negative fractions summing to <= 1 "
                         f"({', '.join(PATTERNS)}); got {tuple(fractions)}")
    counts = np.rint(fractions * n).astype(int)
    clusters = np.zeros(n, int)
    clusters[: counts.sum()] = np.repeat(np.arange(1, len(PATTERNS) + 1), counts)[:n]
    clusters = rng.permutation(clusters)
    u = np.arange(n_frames) / n_frames
    lo, hi = config.amplitude_range
    amplitude = rng.uniform(lo, hi, n)
    base = np.stack([np.zeros_like(u)] + [cluster_pattern(k, u) for k in PATTERNS])
    # each neuron's own slow fluctuation: white noise smoothed over ~2 frames
    jitter = rng.normal(0, 1, (n, n_frames + 4))
    jitter = (jitter[:, :-4] + jitter[:, 1:-3] + jitter[:, 2:-2] + jitter[:, 3:-1] + jitter[:, 4:]) / np.sqrt(5)
    traces = 1 + amplitude[:, None] * base[clusters] + config.trace_noise * jitter
    return np.clip(traces, 0.05, None), clusters


def body_warps(n_frames: int, shape_yx: tuple[int, int], config: WormActivityConfig, rng) -> np.ndarray:
    """``(T, 3, 3)`` homographies (frame pixel ``(x, y)`` -> frame 0 pixel), slow and smooth, frame 0 = identity.

    Random-walk drift (``drift_px`` rms per frame), a slow rotation and scale oscillation about the field centre
    and small perspective terms: the slight body motion that the paper removed by projective registration.
    """
    steps = rng.normal(0, config.drift_px, (n_frames, 2))
    steps[0] = 0
    drift = np.cumsum(steps, axis=0)
    phase = rng.uniform(0, 2 * np.pi, 4)
    u = np.arange(n_frames) / n_frames
    wave = [np.sin(2 * np.pi * u * f + p) - np.sin(p) for f, p in zip((0.7, 0.5, 0.9, 0.6), phase)]
    angle = np.radians(config.rotation_deg) * wave[0]
    scale = 1 + config.scale * wave[1]
    cy, cx = (shape_yx[0] - 1) / 2, (shape_yx[1] - 1) / 2
    warps = np.empty((n_frames, 3, 3))
    for t in range(n_frames):
        c, s = scale[t] * np.cos(angle[t]), scale[t] * np.sin(angle[t])
        centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
        linear = np.array([[c, -s, 0], [s, c, 0],
                           [config.perspective * wave[2][t], config.perspective * wave[3][t], 1]])
        back = np.array([[1, 0, cx + drift[t, 1]], [0, 1, cy + drift[t, 0]], [0, 0, 1]])
        h = back @ linear @ centre
        warps[t] = h / h[2, 2]
    return warps


class _Imager:
    """Wide-field images of densities on the sample grid at fixed focal depths (PSF planes computed once)."""

    def __init__(self, microscope, spacing_um, shape, z_out):
        self.m, self.sp, self.z_out = microscope, spacing_um, np.asarray(z_out, float)
        self.z_in = np.arange(shape[0]) * spacing_um[0]
        self.size = psf_size(float(np.max(np.abs(self.z_out[:, None] - self.z_in[None]))), microscope,
                             spacing_um[2], max(shape[1:]))  # the size rule of the acquisition model
        self.k = int(round(microscope.pixel_um / spacing_um[2]))
        self._psfs: dict[float, np.ndarray] = {}

    def _planes(self, offsets):
        missing = [o for o in offsets if round(float(o), 6) not in self._psfs]
        if missing:
            for o, p in zip(missing, psf_planes(self.m, np.asarray(missing), self.size, self.sp[2], oversample=3)):
                self._psfs[round(float(o), 6)] = p
        return np.stack([self._psfs[round(float(o), 6)] for o in offsets])

    def image(self, density: np.ndarray) -> np.ndarray:
        """Expected intensity ``(len(z_out), Y, X)`` on camera pixels (sum over each pixel's fine pixels)."""
        fine = np.clip(convolve_planes(density, self.z_in, self.z_out, self._planes, self.size), 0, None)
        nz, ny, nx = fine.shape
        k = self.k
        return fine[:, : ny // k * k, : nx // k * k].reshape(nz, ny // k, k, nx // k, k).sum(axis=(2, 4))


def _nucleus_owner(unit: np.ndarray, sp: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Label volume (int32, nucleus ``i`` = ``i + 1``) of the voxels where ``unit`` > 1e-3: the nearest centre."""
    owner = np.zeros(unit.shape, np.int32)
    idx = np.nonzero(unit > 1e-3)
    if len(centres):
        _, nearest = cKDTree(centres).query(np.stack(idx, axis=1) * sp)
        owner[idx] = nearest + 1
    return owner


def simulate_worm_activity(config: WormActivityConfig | None = None, *, seed: int = 0, scanned: bool = False,
                           progress: bool = True) -> WormActivity:
    """Simulate a two-channel activity video (and, with ``scanned``, each frame's scanned stack) with its truth.

    Parameters
    ----------
    config : WormActivityConfig, optional
        Default: the ``worm-activity`` preset.
    seed : int
        Seeds the worm, the traces, the motion and the camera noise.
    scanned : bool
        Also simulate the mechanically scanned stack of every frame (``z_range_um`` in the microscope's z steps).
    progress : bool

    Returns
    -------
    WormActivity
    """
    config = config or ACTIVITY_PRESETS["worm-activity"]
    m = preset(config.microscope)
    rng = np.random.default_rng(seed)
    n_px = config.field_px + 2 * config.margin_px
    k = config.oversample
    shape = (int(round(config.sample_depth_um / config.sample_dz_um)), n_px * k, n_px * k)
    sp = np.array([config.sample_dz_um, m.pixel_um / k, m.pixel_um / k])
    worm_seed = int(rng.integers(2**31))
    body = worm(shape, tuple(sp), n_nuclei=0, seed=worm_seed).density  # same body curve as the next call
    centres = worm(shape, tuple(sp), n_nuclei=config.n_nuclei, nucleus_diameter_um=config.nucleus_diameter_um,
                   seed=worm_seed).centres_um
    assert centres is not None  # a worm always has its centres
    centres = centres[rng.random(len(centres)) < config.keep_fraction]
    semi, rot = random_ellipsoids(rng, len(centres), config.nucleus_diameter_um)
    unit = np.zeros(shape, np.float32)
    render_ellipsoids(unit, sp, centres, semi, rot, np.ones(len(centres)), 0.3)
    owner = _nucleus_owner(unit, sp, centres)
    red_brightness = np.concatenate([[0.0], rng.uniform(0.6, 1.0, len(centres))]).astype(np.float32)
    green_brightness = np.concatenate([[0.0], rng.uniform(*config.green_brightness, len(centres))])
    traces, clusters = calcium_traces(len(centres), config.n_frames, config, rng)
    warps = body_warps(config.n_frames, (n_px, n_px), config, rng)

    focus = (shape[0] - 1) * sp[0] / 2
    z_rel = np.arange(config.z_range_um[0], config.z_range_um[1] + m.z_step_um / 2, m.z_step_um)
    z_out = focus + (z_rel if scanned else np.array([0.0]))
    i0 = int(np.argmin(np.abs(z_out - focus)))
    imager = _Imager(m, sp, shape, z_out)
    crop = (slice(None), slice(config.margin_px, config.margin_px + config.field_px),
            slice(config.margin_px, config.margin_px + config.field_px))

    # The body's motion is part of the forward model, so sim warps with skimage itself: the one wrapper,
    # prep.projective.warp_projective, is a layer above sim, and no module of sim/optics/io warps. Same resampling
    # (bilinear, 0 outside, matrix maps output (x, y) to input), so a registered frame lands on frame 0's grid.
    def moved(images, t):
        transform = ProjectiveTransform(matrix=np.asarray(warps[t], np.float64))
        planes = np.stack([warp(p.astype(np.float32), transform, order=1, preserve_range=True) for p in images])
        return np.clip(planes, 0, None)[crop]

    red = imager.image(np.maximum(body, unit * red_brightness[owner]))
    green_body = body * np.float32(config.green_autofluorescence / max(float(body.max()), 1e-12))
    clean = np.empty((config.n_frames, 2, len(z_out), config.field_px, config.field_px), np.float32)
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("simulating worm activity", total=config.n_frames)
        for t in range(config.n_frames):
            value = (green_brightness * np.concatenate([[0.0], traces[:, t]])).astype(np.float32)
            clean[t, 0] = moved(imager.image(np.maximum(green_body, unit * value[owner])), t)
            clean[t, 1] = moved(red, t)
            bar.advance(task)
    # the camera: one intensity scale per channel for the whole recording (what the focal plane saw)
    video = np.empty((config.n_frames, 2, config.field_px, config.field_px), config.camera.adu_dtype)
    stacks = np.empty(clean.shape, config.camera.adu_dtype) if scanned else None
    for c in range(2):
        reference = float(clean[:, c, i0].max())
        for t in range(config.n_frames):
            video[t, c] = expose(clean[t, c, i0], config.camera, rng, reference=reference).adu
            if stacks is not None:
                stacks[t, c] = expose(clean[t, c], config.camera, rng, reference=reference).adu

    # truth on the camera grid, in frame 0's (cropped) coordinates
    planes = np.rint((focus + z_rel) / sp[0]).astype(int)
    inside = (planes >= 0) & (planes < shape[0])
    labels = np.zeros((len(z_rel), config.field_px, config.field_px), np.int32)
    filled = unit[planes[inside]].reshape(inside.sum(), n_px, k, n_px, k).mean(axis=(2, 4)) > 0.5
    owners = owner[planes[inside]][:, ::k, ::k][:, : n_px, : n_px]
    labels[inside] = np.where(filled, owners, 0)[crop]
    truth_centres = centres - np.array([focus, config.margin_px * m.pixel_um + (k - 1) / 2 * sp[1],
                                        config.margin_px * m.pixel_um + (k - 1) / 2 * sp[2]])
    return WormActivity(video=video, stacks=stacks, spacing_um=(m.z_step_um, m.pixel_um, m.pixel_um), z_um=z_rel,
                        times_s=np.arange(config.n_frames) * config.frame_interval_s, centres_um=truth_centres,
                        labels=labels, traces=traces.astype(np.float32), clusters=clusters, warps=warps,
                        config=config)


def write_worm_activity(sim: WormActivity, out_dir: str | Path) -> Path:
    """Write the video, the scanned stacks (if any) and the truth beside them into ``out_dir``.

    Files: ``video.ome.tif`` (TCYX), ``scanned.ome.tif`` (TCZYX), ``truth_labels.ome.tif`` (ZYX),
    ``truth.json`` (centres µm, traces, clusters, frame times, warps, the configuration).
    """
    out = Path(out_dir)
    dz, dy, dx = sim.spacing_um
    spacing = {"Z": dz, "Y": dy, "X": dx}
    outputs = [(out / "video.ome.tif", io.Image(sim.video, "TCYX", {"Y": dy, "X": dx}, list(CHANNELS)))]
    if sim.stacks is not None:
        outputs.append((out / "scanned.ome.tif", io.Image(sim.stacks, "TCZYX", spacing, list(CHANNELS))))
    outputs.append((out / "truth_labels.ome.tif", io.Image(sim.labels, "ZYX", spacing)))
    io.write_set(outputs)
    truth = {"centres_um": sim.centres_um.round(4).tolist(), "axes_centres": "zyx, z relative to the focal plane",
             "z_um": sim.z_um.tolist(), "times_s": sim.times_s.tolist(), "traces": sim.traces.round(5).tolist(),
             "clusters": sim.clusters.tolist(), "patterns": ["silent", *PATTERNS], "warps": sim.warps.tolist(),
             "channels": list(CHANNELS), "config": sim.config.model_dump(mode="json")}
    with io.atomic_output(out / "truth.json") as tmp:
        tmp.write_text(json.dumps(truth))
    return out
