"""Refocusing measures of issue 12: PSNR gain over the dz = 0 output, z-variation ratio, bead peak depths."""

import numpy as np
import pytest

from widefield3d.analysis.refocus_measures import (
    depth_errors,
    gain_offset,
    peak_depths,
    refocus_gain_db,
    z_variation_ratio,
)
from widefield3d.errors import InputError


def _clean_stack():
    z = np.arange(-4.0, 4.01, 0.5)
    yy, xx = np.mgrid[:32, :32]
    blobs = [(8, 8, -3.0), (20, 24, 2.5), (12, 26, 0.0)]
    stack = np.stack([sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * (1.5 + abs(zk - d)) ** 2))
                          / (1.5 + abs(zk - d)) ** 2 for y, x, d in blobs) for zk in z])
    return z, stack, blobs


def test_gain_is_zero_for_a_denoiser_and_positive_for_refocusing():
    z, clean, _ = _clean_stack()
    middle = len(z) // 2
    still = np.repeat(clean[middle : middle + 1], len(z), axis=0) * 3 + 1  # ignores the DPM, another scale
    res = refocus_gain_db(still, clean, z)
    assert res["gain_db"] == pytest.approx([0.0] * len(res["z_um"]), abs=1e-9)
    assert min(abs(np.array(res["z_um"]))) == 2.0
    noisy = clean + np.random.default_rng(0).normal(0, 0.01, clean.shape)
    good = refocus_gain_db(noisy, clean, z)
    assert good["gain_db_min"] > 3
    assert gain_offset(2 * clean + 5, clean) == pytest.approx((0.5, -2.5))
    with pytest.raises(InputError, match="plane at 0"):
        refocus_gain_db(clean, clean, z + 0.25)


def test_z_variation_ratio_and_peak_depths():
    z, clean, blobs = _clean_stack()
    mask = np.ones(clean.shape[1:], bool)
    mean = clean.mean(axis=0)
    assert z_variation_ratio(clean, clean, mask) == pytest.approx(1.0)
    assert z_variation_ratio(0.5 * (clean - mean) + mean, clean, mask) == pytest.approx(0.5)
    assert z_variation_ratio(np.repeat(mean[None], len(z), axis=0), clean, mask) == pytest.approx(0.0)
    found = peak_depths(clean, z, [(y + 0.4, x - 0.3) for y, x, _ in blobs])
    assert found.tolist() == [d for _, _, d in blobs]
    summary = depth_errors([0.0, 1.0, np.nan, -2.0], [0.5, 1.0, 3.0, 0.0])
    assert summary["n_failed"] == 1 and summary["median_abs_error_um"] == 0.5
    assert summary["peak_at_zero_fraction"] == pytest.approx(1 / 3)
    assert summary["fraction_within_1um"] == pytest.approx(2 / 3)
