"""Camera model: photon statistics, saturation, binning, downsampling, drift, input errors."""

import numpy as np
import pydantic
import pytest
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from widefield3d.errors import InputError
from widefield3d.sim.camera import (
    Camera,
    adu_to_electrons,
    adu_to_photons,
    bin_pixels,
    downsample,
    expose,
    fourier_shift,
    lateral_drift,
)

FLAT = np.full((256, 256), 3.7, dtype=np.float32)  # arbitrary units: scaled to camera.photons


def test_flat_field_is_poisson_without_read_noise():
    cam = Camera(photons=500.0, read_noise_e=0.0)
    shot = expose(FLAT, cam, np.random.default_rng(1))
    np.testing.assert_allclose(shot.photons_expected, 500.0, rtol=1e-6)
    electrons = adu_to_electrons(shot.adu, cam)
    assert electrons.var() / electrons.mean() == pytest.approx(1.0, rel=0.05)  # detected photons are Poisson
    photons = adu_to_photons(shot.adu, cam)
    assert photons.mean() == pytest.approx(500.0, rel=0.01)
    # in incident-photon units the variance is mean / QE (QE thins the Poisson stream)
    assert photons.var() / photons.mean() == pytest.approx(1 / cam.quantum_efficiency, rel=0.05)


@pytest.mark.parametrize("sensor", ["cmos", "ccd"])
@pytest.mark.parametrize("binning", [1, 2])
def test_flat_field_with_read_noise_and_dark(sensor, binning):
    cam = Camera(photons=300.0, read_noise_e=4.0, dark_current_e=2.0, binning=binning, sensor=sensor)
    shot = expose(FLAT, cam, 7)
    assert shot.adu.shape == (256 // binning, 256 // binning)
    electrons = adu_to_electrons(shot.adu, cam)
    read_var = (4.0 * binning if sensor == "cmos" else 4.0) ** 2
    assert cam.binned_read_noise_e**2 == pytest.approx(read_var)
    assert (electrons.var() - read_var) / electrons.mean() == pytest.approx(1.0, rel=0.05)
    assert shot.photons_measured.mean() == pytest.approx(300.0 * binning**2, rel=0.01)
    np.testing.assert_allclose(shot.photons_expected, 300.0 * binning**2, rtol=1e-5)


def test_brightest_pixel_gets_the_photon_budget_and_clean_is_kept():
    clean = np.zeros((3, 40, 50))
    clean[1, 10:20, 10:20] = 2.0
    clean[2, 30, 40] = 8.0
    shot = expose(clean, Camera(photons=1234.0), 0)
    assert shot.photons_expected.dtype == np.float32
    assert shot.photons_expected.max() == pytest.approx(1234.0)
    assert shot.photons_expected[1, 15, 15] == pytest.approx(1234.0 / 4)
    # a shared reference puts separately exposed images on one scale
    half = expose(clean * 0.5, Camera(photons=1234.0), 0, reference=8.0)
    assert half.photons_expected.max() == pytest.approx(617.0)


@pytest.mark.parametrize("bits, dtype", [(16, np.uint16), (12, np.uint16), (8, np.uint8)])
def test_saturation(bits, dtype):
    cam = Camera(photons=1e7, bit_depth=bits)
    clean = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    adu = expose(clean, cam, 3).adu
    assert adu.dtype == dtype
    assert adu.max() == 2**bits - 1
    assert (adu == 2**bits - 1).mean() > 0.5
    assert adu.min() >= cam.offset_adu - 10  # dark corner stays near the offset


def test_bin_pixels_sums_blocks_and_crops():
    img = np.arange(2 * 7 * 9, dtype=np.float32).reshape(2, 7, 9)
    out = bin_pixels(img, 3)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    assert out[1, 1, 2] == img[1, 3:6, 6:9].sum()
    assert out.sum() == img[:, :6, :9].sum()
    ints = np.full((4, 4), 60000, dtype=np.uint16)
    assert bin_pixels(ints, 2)[0, 0] == 240000  # no uint16 overflow


def test_downsample_area_and_bicubic():
    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)
    ramp = 0.5 * yy + 0.25 * xx + 3
    area = downsample(ramp, 4, "area")
    bicubic = downsample(ramp, 4, "bicubic")
    assert area.shape == bicubic.shape == (16, 24)
    # the cubic kernel reproduces a linear ramp: away from the borders both equal the block mean
    np.testing.assert_allclose(bicubic[2:-2, 2:-2], area[2:-2, 2:-2], rtol=1e-4)
    np.testing.assert_allclose(area[0, 0], ramp[:4, :4].mean(), rtol=1e-6)
    np.testing.assert_allclose(downsample(np.full((3, 50, 50), 2.0), 3, "bicubic"), 2.0, rtol=1e-5)
    # antialiasing: a pixel-scale checkerboard (above the new Nyquist) averages out
    checker = ((yy + xx) % 2).astype(np.float32)
    assert np.ptp(downsample(checker, 2, "bicubic")[2:-2, 2:-2]) < 1e-3


def _smooth_image(seed, shape=(96, 96)):
    return ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 3, mode="wrap").astype(np.float32)


def test_fourier_shift_matches_integer_roll():
    img = _smooth_image(0)
    np.testing.assert_allclose(fourier_shift(img, (3, -5)), np.roll(img, (3, -5), axis=(0, 1)), atol=1e-5)


def test_lateral_drift_is_recovered_by_registration():
    img = _smooth_image(1)
    stack = np.stack([img] * 6)
    drifted, shifts = lateral_drift(stack, 1.5, np.random.default_rng(5))
    assert drifted.shape == stack.shape and shifts.shape == (6, 2)
    np.testing.assert_array_equal(shifts[0], 0.0)
    assert np.abs(shifts[1:]).max() > 0.5  # it does drift
    for frame, true in zip(drifted, shifts):
        found, _, _ = phase_cross_correlation(img, frame, upsample_factor=100)
        np.testing.assert_allclose(found, -true, atol=0.1)  # shift that registers frame back onto img


def test_lateral_drift_moves_whole_stacks_per_frame():
    vol = np.stack([_smooth_image(2), _smooth_image(3)])  # (Z, Y, X)
    drifted, shifts = lateral_drift(np.stack([vol, vol, vol]), 2.0, 11)
    for t in range(3):
        for z in range(2):
            np.testing.assert_allclose(drifted[t, z], fourier_shift(vol[z], shifts[t]), atol=1e-6)


def test_bad_inputs():
    with pytest.raises(pydantic.ValidationError):
        Camera(quantum_efficiency=1.5)
    with pytest.raises(pydantic.ValidationError):
        Camera(bit_depth=0)
    with pytest.raises(pydantic.ValidationError):
        Camera(photons=-1)
    with pytest.raises(pydantic.ValidationError):
        Camera(gain=2.0)  # unknown field (typo of gain_e_per_adu)
    cam = Camera()
    with pytest.raises(InputError, match="non-negative"):
        expose(np.array([[1.0, -1.0]]), cam, 0)
    with pytest.raises(InputError, match="NaN"):
        expose(np.array([[1.0, np.nan]]), cam, 0)
    dark = expose(np.zeros((64, 64)), Camera(read_noise_e=0.0), 0)  # a dark frame is the offset, not an error
    assert dark.photons_expected.max() == 0 and np.all(dark.adu == Camera().offset_adu)
    with pytest.raises(InputError, match="axes"):
        expose(np.ones(5), cam, 0)
    with pytest.raises(InputError, match="rng"):
        expose(np.ones((4, 4)), cam, "seed")
    with pytest.raises(InputError, match="binning"):
        expose(np.ones((4, 4)), Camera(binning=8), 0)
    with pytest.raises(InputError, match="factor"):
        bin_pixels(np.ones((4, 4)), 0)
    with pytest.raises(InputError, match="method"):
        downsample(np.ones((4, 4)), 2, "nearest")
    with pytest.raises(InputError, match="sigma_px"):
        lateral_drift(np.ones((3, 4, 4)), -1.0, 0)
    with pytest.raises(InputError, match="stack"):
        lateral_drift(np.ones((4, 4)), 1.0, 0)
