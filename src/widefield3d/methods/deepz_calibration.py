"""Depth calibration of a Deep-Z model: which DPM brings an object at a given depth into focus.

A Deep-Z network trained with a pixel loss refocuses slightly short of the requested distance (regression toward
the input plane: ``deepz-20x075`` brings beads 2-8 µm below focus into focus ~0.5-1 µm early, docs/deepz.md). A
calibration measured on beads at known depths undoes such a systematic error: ``dpm(depth)`` is the DPM at which
beads at ``depth`` peak, so ``refocus(..., calibrated=True)`` feeds ``dpm(z)`` instead of ``z``, and
``depth(dpm)`` turns the DPM of a bead's peak into its depth. Not in the paper; fitted from beads that no test
uses (``benchmarks/deepz_calibrate.py``) and saved beside the weights as ``depth_calibration.json``.

The map is piecewise linear between knots and continues with slope 1 (a constant offset) beyond them; it must be
strictly increasing, so that every depth has one DPM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from widefield3d.errors import InputError

FILE: Final = "depth_calibration.json"


class DepthCalibration(BaseModel):
    """A strictly increasing map from object depth to the DPM that focuses it (both µm, + = deeper)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    depth_um: tuple[float, ...] = Field(min_length=2, description="knot depths, strictly increasing (µm)")
    dpm_um: tuple[float, ...] = Field(min_length=2, description="the DPM that focuses each knot depth (µm)")
    n_beads: int = Field(ge=0, description="beads the knots were fitted on")
    fitted_on: str = Field("", description="what the calibration was measured on")

    @model_validator(mode="after")
    def _increasing(self) -> DepthCalibration:
        depth, dpm = np.asarray(self.depth_um), np.asarray(self.dpm_um)
        if depth.shape != dpm.shape:
            raise ValueError(f"depth_um has {depth.size} knots but dpm_um {dpm.size}")
        if not (np.all(np.isfinite(depth)) and np.all(np.isfinite(dpm))):
            raise ValueError("knots must be finite")
        if np.any(np.diff(depth) <= 0) or np.any(np.diff(dpm) <= 0):
            raise ValueError("depth_um and dpm_um must both be strictly increasing (one DPM per depth)")
        return self

    def dpm(self, depth_um) -> np.ndarray:
        """The DPM (µm) that focuses objects at ``depth_um`` (any shape)."""
        return _piecewise(depth_um, self.depth_um, self.dpm_um)

    def depth(self, dpm_um) -> np.ndarray:
        """The depth (µm) of objects that come into focus at ``dpm_um``: the inverse of :meth:`dpm`."""
        return _piecewise(dpm_um, self.dpm_um, self.depth_um)


def _piecewise(x, knots_x, knots_y) -> np.ndarray:
    """Linear between knots, slope 1 beyond them (float64)."""
    x = np.asarray(x, np.float64)
    kx, ky = np.asarray(knots_x), np.asarray(knots_y)
    y = np.interp(x, kx, ky)
    y = np.where(x < kx[0], x + (ky[0] - kx[0]), y)
    return np.where(x > kx[-1], x + (ky[-1] - kx[-1]), y)


def fit_depth_calibration(true_um, peak_um, *, knot_step_um: float = 1.0, min_beads: int = 5,
                          anchor_focus: bool = True, fitted_on: str = "") -> DepthCalibration:
    """Fit a calibration from beads at known depths ``true_um`` whose refocused peaks lie at DPMs ``peak_um``.

    Knots every ``knot_step_um`` over the beads' depth range; at each, the median of ``peak - true`` over the beads
    within one knot step (knots with fewer than ``min_beads`` beads are dropped). ``anchor_focus``: the knot at
    depth 0 is DPM 0 (at DPM 0 the network reproduces its input, whose in-focus objects are in focus; a median
    over beads within ±1 step would mix the two sides of focus, where the errors often differ in sign).
    """
    true, peak = np.asarray(true_um, np.float64).ravel(), np.asarray(peak_um, np.float64).ravel()
    ok = np.isfinite(true) & np.isfinite(peak)
    if true.shape != peak.shape or ok.sum() < 2 * min_beads:
        raise InputError(f"depth calibration: needs matching depths and peaks of at least {2 * min_beads} beads, "
                         f"got {ok.sum()} of {true.size} / {peak.size}")
    true, peak = true[ok], peak[ok]
    knots = np.arange(np.ceil(true.min() / knot_step_um), np.floor(true.max() / knot_step_um) + 1) * knot_step_um
    depth, dpm = [], []
    if anchor_focus:
        knots = np.union1d(knots, [0.0])
    for k in knots:
        near = np.abs(true - k) <= knot_step_um
        if anchor_focus and k == 0:
            depth.append(0.0)
            dpm.append(0.0)
        elif near.sum() >= min_beads:
            depth.append(float(k))
            dpm.append(float(k + np.median(peak[near] - true[near])))
    try:
        return DepthCalibration(depth_um=tuple(depth), dpm_um=tuple(dpm), n_beads=int(true.size), fitted_on=fitted_on)
    except ValueError as err:
        raise InputError(f"depth calibration: {err} (knots {depth}, DPMs {np.round(dpm, 2).tolist()})") from None


def read_depth_calibration(model_dir: str | Path) -> DepthCalibration | None:
    """The calibration saved in a model directory, or None if it has none."""
    path = Path(model_dir) / FILE
    if not path.is_file():
        return None
    try:
        return DepthCalibration.model_validate_json(path.read_text())
    except ValueError as err:
        raise InputError(f"{path}: not a valid depth calibration ({err})") from None


def write_depth_calibration(model_dir: str | Path, calibration: DepthCalibration) -> Path:
    """Save ``calibration`` as ``model_dir/depth_calibration.json`` (atomically)."""
    from widefield3d.io import atomic_output

    path = Path(model_dir) / FILE
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(calibration.model_dump(mode="json"), indent=1) + "\n")
    return path
