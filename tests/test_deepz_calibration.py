"""Depth calibration of Deep-Z models: fitting from beads, the map and its inverse, saving and reading."""

import numpy as np
import pytest

from widefield3d.errors import InputError
from widefield3d.methods.deepz_calibration import (
    DepthCalibration,
    fit_depth_calibration,
    read_depth_calibration,
    write_depth_calibration,
)


def test_fit_recovers_a_systematic_error():
    """Beads that peak 0.8 µm short below focus and 0.4 µm short above: the fitted map feeds the DPM where they
    peak, and its inverse returns their depths."""
    rng = np.random.default_rng(0)
    true = rng.uniform(-8, 8, 400)
    bias = np.where(true < 0, 0.8, -0.4) * np.minimum(np.abs(true), 1.0)  # continuous, zero at focus
    peak = np.round((true + bias + rng.normal(0, 0.1, true.size)) * 2) / 2  # 0.5 µm planes
    cal = fit_depth_calibration(true, peak, fitted_on="synthetic")
    assert cal.n_beads == 400 and cal.fitted_on == "synthetic"
    assert cal.dpm(0.0) == 0.0  # anchored: the input plane's objects are in focus at DPM 0
    inner = np.abs(true) <= 7
    assert np.median(np.abs(cal.dpm(true[inner]) - (true[inner] + bias[inner]))) < 0.1
    assert np.median(np.abs(cal.depth(peak) - true)) < np.median(np.abs(peak - true)) / 2
    np.testing.assert_allclose(cal.depth(cal.dpm(np.linspace(-12, 12, 49))), np.linspace(-12, 12, 49), atol=1e-9)
    far = cal.depth_um[-1] + 3.0  # beyond the knots: slope 1
    assert cal.dpm(far) == pytest.approx(far + cal.dpm_um[-1] - cal.depth_um[-1])


def test_bad_calibrations_are_refused(tmp_path):
    with pytest.raises(ValueError, match="strictly increasing"):
        DepthCalibration(depth_um=(-1.0, 0.0, 1.0), dpm_um=(0.0, -0.5, 1.0), n_beads=3)
    with pytest.raises(InputError, match="at least 10 beads"):
        fit_depth_calibration([0.0, 1.0], [0.0, 1.0])
    true = np.repeat(np.arange(-3.0, 4.0), 10)
    peak = -true  # focuses the wrong way round: no DPM per depth
    with pytest.raises(InputError, match="strictly increasing"):
        fit_depth_calibration(true, peak)
    (tmp_path / "depth_calibration.json").write_text('{"depth_um": [1, 0]}')
    with pytest.raises(InputError, match="not a valid depth calibration"):
        read_depth_calibration(tmp_path)


def test_saved_calibration_round_trips(tmp_path):
    assert read_depth_calibration(tmp_path) is None
    cal = DepthCalibration(depth_um=(-2.0, 0.0, 2.0), dpm_um=(-1.5, 0.1, 1.8), n_beads=7, fitted_on="beads")
    write_depth_calibration(tmp_path, cal)
    assert read_depth_calibration(tmp_path) == cal
