"""`widefield3d activity VIDEO -o OUTDIR`: 3D neuron activity from a two-channel wide-field video (Deep-Z Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.errors import InputError
from widefield3d.verbs._common import console


def _z_planes(z_range: tuple[float, float], z_step: float):
    import math

    import numpy as np

    from widefield3d.checks import check_planes

    lo, hi = z_range
    if not (math.isfinite(lo) and math.isfinite(hi) and hi >= lo):
        raise InputError(f"--z-range: expected two finite depths LOW HIGH with HIGH >= LOW (µm), got {lo} {hi}")
    if not (math.isfinite(z_step) and z_step > 0):
        raise InputError(f"--z-step: must be a positive number of µm, got {z_step}")
    n = math.floor((hi - lo) / z_step + 1e-9) + 1
    check_planes(n, f"--z-range {lo:g} {hi:g} --z-step {z_step:g}")
    return lo + z_step * np.arange(n)


def activity_cmd(
    video: Annotated[Path, typer.Argument(help="two-channel video: TCYX frames at one focal plane (or TCZYX "
                                               "scanned stacks, analysed without refocusing)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output folder")],
    model: Annotated[str, typer.Option(help="Deep-Z model (name or folder) that refocuses the frames")
                     ] = "deepz-20x075",
    z_range: Annotated[tuple[float, float], typer.Option(help="refocus range LOW HIGH (µm, + = deeper)")
                       ] = (-10.0, 10.0),
    z_step: Annotated[float, typer.Option(help="refocus step (µm)")] = 0.5,
    no_refocus: Annotated[bool, typer.Option("--no-refocus", help="2D analysis of the raw frames (no depth)")
                          ] = False,
    calibrated: Annotated[bool, typer.Option("--calibrated", help="refocus through the model's depth calibration "
                                             "(not in the paper)")] = False,
    normalise_video: Annotated[bool, typer.Option(
        "--normalise-video", help="normalise every frame against the channel's median frame instead of itself "
                                  "(not in the paper: one intensity scale over time)")] = False,
    green: Annotated[int, typer.Option(help="index of the activity (calcium) channel")] = 0,
    red: Annotated[int, typer.Option(help="index of the nuclear channel")] = 1,
    no_register: Annotated[bool, typer.Option("--no-register", help="skip the frame-to-frame registration")
                           ] = False,
    min_contrast: Annotated[float, typer.Option(
        help="a neuron's lowest local contrast in the nuclear channel, 1 - background / peak (not in the paper; 0: "
             "every local maximum above Otsu's threshold)")] = 0.3,
    n_brightest: Annotated[int, typer.Option(help="F = mean of this many brightest voxels per mask")] = 100,
    smooth_frames: Annotated[int, typer.Option(
        help="average F over this many frames before dF (not in the paper: damps the frame-to-frame noise of "
             "Deep-Z's virtual stacks; 1: none)")] = 3,
    active_threshold: Annotated[float, typer.Option(help="active neuron: std(dF) > THRESHOLD * F0")] = 0.1,
    sigma: Annotated[Optional[float], typer.Option(
        help="similarity width (default: the paper's 1.5 at 126 frames, scaled by sqrt(T/126))")] = None,
    clusters: Annotated[Optional[int], typer.Option(help="number of clusters (default: eigen-gap)")] = None,
    frame_interval: Annotated[float, typer.Option(help="seconds between frames (time axis of the outputs)")
                              ] = 1 / 3.6,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Neuron positions, masks, activity traces and clusters from a two-channel wide-field video.

    Registers the frames (projective, on the nuclear channel), refocuses every frame of both channels with Deep-Z
    into a virtual stack, finds neurons as local maxima of the nuclear channel's median over time, segments them
    by a 3D watershed, measures F(t) in the activity channel, and clusters the active neurons' dF/F0 spectrally.
    Writes OUTDIR/traces.csv, labels.ome.tif, activity.png and summary.json.
    """
    import math

    import numpy as np
    import pydantic

    from widefield3d import io
    from widefield3d.checks import check_output, naming_files

    check_output(output, kind="dir", inputs=[video])
    for name, value in (("--frame-interval", frame_interval), ("--active-threshold", active_threshold)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{name}: must be a positive number, got {value}")
    z_um = _z_planes(z_range, z_step)
    header = io.read(video, lazy=True)
    axes, shape = header.axes, tuple(header.data.shape)
    if axes not in ("TCYX", "TCZYX"):
        raise InputError(f"{video}: needs a two-channel video TCYX (or scanned stacks TCZYX), got axes {axes} "
                         f"shape {shape}")
    sizes = dict(zip(axes, shape))
    if sizes["T"] < 3:
        raise InputError(f"{video}: needs at least 3 frames, got {sizes['T']}")
    for flag, index in (("--green", green), ("--red", red)):
        if not 0 <= index < sizes["C"]:
            raise InputError(f"{flag} {index}: {video} has {sizes['C']} channels")
    if green == red:
        raise InputError(f"--green and --red: must be different channels, both are {green}")
    from widefield3d.demo.activity import activity_figure
    from widefield3d.methods.activity import ActivityConfig, analyse_activity, write_activity

    try:
        config = ActivityConfig(green=green, red=red, register_frames=not no_register, refocus=not no_refocus,
                                calibrated=calibrated, z_um=tuple(z_um.tolist()), n_brightest=n_brightest,
                                min_contrast=min_contrast, smooth_frames=smooth_frames,
                                normalisation="video" if normalise_video else "frame",
                                active_threshold=active_threshold, sigma=sigma, n_clusters=clusters)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        raise InputError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    loaded = None
    refocusing = config.refocus and "Z" not in axes
    if refocusing:
        from widefield3d.checks import warn_pixel_mismatch
        from widefield3d.methods.deepz import dpm_of_depths, load

        loaded = load(model)
        reach = float(np.max(np.abs(dpm_of_depths(loaded, z_um[[0, -1]], calibrated))))
        if reach > loaded.range_um + 1e-6:
            raise InputError(f"--z-range {z_range[0]:g} {z_range[1]:g}: beyond the model's trained range "
                             f"+-{loaded.range_um:g} µm")
        warn_pixel_mismatch(header.spacing_um.get("X", 1.0), loaded.pixel_um, video, Path(str(loaded.path)).name)
    data = np.asarray(io.read(video).data)
    with naming_files({"video": video}):
        result = analyse_activity(data, header.spacing_zyx, config, model=loaded, device=device, progress=progress)
    times = np.arange(sizes["T"]) * frame_interval
    record = {"input": video.name, "model": Path(str(loaded.path)).name if loaded is not None else None,
              "refocused": refocusing}
    write_activity(result, output, times_s=times, record=record, figure=activity_figure)
    console.print(f"wrote {output}/traces.csv, labels.ome.tif, activity.png, summary.json: {len(result.f)} neurons, "
                  f"{int(result.active.sum())} active in {result.n_clusters} clusters", highlight=False)


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``activity`` command to the main app."""
    app.command("activity")(activity_cmd)


def simulate_activity_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="output folder")],
    preset: Annotated[str, typer.Option(help="activity preset")] = "worm-activity",
    frames: Annotated[Optional[int], typer.Option(help="number of frames (default: the preset's)")] = None,
    field: Annotated[Optional[int], typer.Option(help="field size in camera pixels (default: the preset's)")] = None,
    scanned: Annotated[bool, typer.Option("--scanned", help="also simulate each frame's scanned stack")] = False,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Simulate a two-channel worm activity video (green = calcium, red = nuclei) with its ground truth."""
    import pydantic

    from widefield3d.checks import check_output
    from widefield3d.sim.activity import activity_preset, simulate_worm_activity, write_worm_activity

    check_output(output, kind="dir")
    changes = {k: v for k, v in (("n_frames", frames), ("field_px", field)) if v is not None}
    try:
        config = activity_preset(preset, **changes)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        flag = {"n_frames": "--frames", "field_px": "--field"}.get(str(first["loc"][0]), str(first["loc"][0]))
        raise InputError(f"{flag}: {first['msg']}") from None
    sim = simulate_worm_activity(config, seed=seed, scanned=scanned)
    write_worm_activity(sim, output)
    console.print(f"wrote {output}/video.ome.tif{' + scanned.ome.tif' if scanned else ''}, truth: "
                  f"{len(sim.centres_um)} neurons, {int((sim.clusters > 0).sum())} active", highlight=False)
