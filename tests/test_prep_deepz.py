"""Deep-Z data preparation (widefield3d.prep) on simulated stacks with known truth."""

import importlib.util
import sys

import numpy as np
import pytest
from scipy import ndimage
from skimage.filters import threshold_triangle
from skimage.transform import ProjectiveTransform, warp

from widefield3d.errors import InputError
from widefield3d.optics.microscope import preset
from widefield3d.prep.align import align_stack, rigid_warp
from widefield3d.prep.cover import patch_cover
from widefield3d.prep.edf import extended_depth_of_field
from widefield3d.prep.focus import focus_curve, focus_zero, sharpest_plane
from widefield3d.prep.mask import foreground_mask
from widefield3d.prep.normalise import Normalisation, edf_normalisation, triangle_normalisation
from widefield3d.prep.projective import register_projective, register_translation, warp_projective
from widefield3d.sim.acquisition import fluorescence_stack
from widefield3d.sim.samples import make_sample

MICROSCOPE = preset("deepz-20x075")
FINE = (0.5, MICROSCOPE.pixel_um / 2, MICROSCOPE.pixel_um / 2)
BEAD_PLANE_UM = 5.2  # the bead layer lies between two planes of the stack
ALIGN_METHODS = ["rigid", pytest.param("stackreg", marks=pytest.mark.skipif(
    importlib.util.find_spec("pystackreg") is None,
    reason="pystackreg not installed (pip install widefield3d[stackreg])"))]


def _bead_layer_stack(z_um, seed=0):
    sample = make_sample("tilted-beads", (21, 256, 256), FINE, seed=seed, angle_deg=0.0, z0_um=BEAD_PLANE_UM,
                         n_beads=150)
    return fluorescence_stack(sample, MICROSCOPE, z_um, seed=seed).noisy.astype(np.float32)


@pytest.fixture(scope="module")
def layer():
    z = np.arange(1.0, 9.01, 0.5)
    return z, _bead_layer_stack(z)


def _compose(first, then):
    """(angle, dy, dx) of applying ``first`` then ``then`` (module convention of prep.align)."""
    a = np.radians(then[0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return first[0] + then[0], rot @ np.asarray(first[1:]) + np.asarray(then[1:])


@pytest.mark.parametrize("method", ALIGN_METHODS)
def test_align_stack_undoes_known_rotations_and_shifts(layer, method):
    _, stack = layer
    planes = stack[4:13]
    rng = np.random.default_rng(1)
    applied = np.column_stack([rng.uniform(-2, 2, 9), rng.uniform(-3, 3, (9, 2))])
    applied[4] = 0  # the middle plane is the reference
    moved = np.stack([rigid_warp(p, *t) for p, t in zip(planes, applied)])
    aligned, transforms = align_stack(moved, method=method)
    assert aligned.dtype == np.float32 and aligned.shape == moved.shape
    assert np.all(transforms[4] == 0)
    for k in range(9):
        angle, shift = _compose(applied[k], transforms[k])
        assert abs(angle) < 0.15, (k, angle)  # degrees; up to 2 degrees were applied
        assert np.hypot(*shift) < 0.1, (k, shift)  # pixels; up to 4 px were applied
    inner = np.s_[:, 20:-20, 20:-20]
    exact = []  # the best possible: undo each applied transform exactly (interpolation smooths the noise)
    for p, t in zip(moved, applied):
        a = np.radians(-t[0])
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        exact.append(rigid_warp(p, -t[0], *(-rot @ t[1:])))
    exact = np.stack(exact)

    def rms(x):
        return np.sqrt(np.mean((x[inner] - planes[inner]) ** 2))

    assert rms(aligned) < 1.1 * rms(exact) < 0.2 * rms(moved)


def test_edf_is_sharper_than_every_plane(layer):
    _, stack = layer
    edf = extended_depth_of_field(stack)
    assert edf.shape == stack.shape[1:] and edf.dtype == np.float32
    # beads on one layer: the EDF keeps the in-focus peaks (at least 95% of the best plane's maxima)
    assert edf.max() >= 0.95 * stack.max()
    assert edf.std() >= 0.95 * stack.reshape(len(stack), -1).std(axis=1).max()


def test_triangle_normalisation_saturates_one_percent_of_foreground(layer):
    _, stack = layer
    edf = extended_depth_of_field(stack)
    norm = triangle_normalisation(edf)
    foreground = edf > threshold_triangle(edf)
    assert norm.background == pytest.approx(edf[~foreground].mean())
    out = norm.apply(edf)
    assert out.dtype == np.float32
    assert np.mean(out[foreground] > 1) == pytest.approx(0.01, abs=0.002)
    assert abs(float(np.mean(out[~foreground]))) < 1e-4
    assert np.mean(triangle_normalisation(edf, 0.05).apply(edf)[foreground] > 1) == pytest.approx(0.05, abs=0.005)
    assert Normalisation(2.0, 4.0).apply(np.array([2, 6])).tolist() == [0.0, 1.0]
    with pytest.raises(InputError):
        triangle_normalisation(np.ones((8, 8)))


def test_edf_normalisation_is_the_triangle_normalisation_of_the_stacks_edf(layer):
    _, stack = layer
    norm, edf = edf_normalisation(stack, 0.02)
    assert np.array_equal(edf, extended_depth_of_field(stack))
    assert norm == triangle_normalisation(edf, 0.02)
    # a defocused plane's own normalisation is dimmer than the in-focus EDF's (the depth cue training sees)
    assert triangle_normalisation(stack[0]).scale < norm.scale


def test_foreground_mask_holds_every_bead(layer):
    _, stack = layer
    edf = extended_depth_of_field(stack)
    mask = foreground_mask(edf, dilation_px=3)
    peaks = (edf == ndimage.maximum_filter(edf, 7)) & (edf > edf.mean() + 8 * edf.std())
    assert peaks.sum() > 20
    assert mask[peaks].all()
    core = foreground_mask(edf, dilation_px=0)
    assert core.mean() < 0.4 and (core <= mask).all() and core.sum() < mask.sum()


def test_foreground_mask_grows_bright_seeds_into_touching_dim_signal_only():
    rng = np.random.default_rng(0)
    yy, xx = np.indices((200, 200))
    base = 100 + rng.normal(0, 1, (200, 200))
    base[(yy - 60) ** 2 + (xx - 60) ** 2 < 15**2] = 400
    touching = (np.abs(yy - 60) < 4) & (xx >= 60) & (xx < 120)  # a dim arm joined to the bright disc
    alone = (yy - 150) ** 2 + (xx - 150) ** 2 < 10**2  # the same dim level, isolated
    dim = 110.0
    for _ in range(5):  # dim level 80% of the way from the background to the triangle threshold it produces
        image = base.copy()
        image[touching & (image < dim)] = dim
        image[alone] = dim
        smooth = ndimage.gaussian_filter(image, 1.0)
        high = threshold_triangle(smooth)
        background = smooth[smooth <= high].mean()
        dim = background + 0.8 * (high - background)
    assert background + 0.6 * (high - background) < image[alone].min() < high  # between the two thresholds
    mask = foreground_mask(image, dilation_px=0)
    assert mask[(yy - 60) ** 2 + (xx - 60) ** 2 < 14**2].all()
    assert mask[touching & (xx > 80) & (xx < 115) & (np.abs(yy - 60) < 2)].all()
    assert not mask[alone].any()
    assert mask.mean() < 0.05


def test_patch_cover_covers_the_mask_with_fewer_patches_than_a_grid():
    rng = np.random.default_rng(0)
    mask = np.zeros((1000, 1200), dtype=bool)
    yy, xx = np.indices(mask.shape)
    for cy, cx, r in zip(rng.uniform(0, 1000, 12), rng.uniform(0, 1200, 12), rng.uniform(10, 60, 12)):
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    corners = patch_cover(mask, patch=256, overlap=0.05)
    covered = np.zeros_like(mask)
    for y0, x0 in corners:
        assert 0 <= y0 <= 1000 - 256 and 0 <= x0 <= 1200 - 256
        covered[y0 : y0 + 256, x0 : x0 + 256] = True
    assert not (mask & ~covered).any()
    grid = sum(mask[y : y + 256, x : x + 256].any() for y in range(0, 1000, 256) for x in range(0, 1200, 256))
    assert len(corners) < grid
    full = patch_cover(np.ones((512, 512), bool), patch=256)
    assert sorted(full) == [(0, 0), (0, 256), (256, 0), (256, 256)]  # a full field: the exact tiling, no overlap
    assert patch_cover(np.zeros((300, 300), bool), patch=256) == []
    spread = rng.random((600, 600)) < 0.01  # foreground everywhere: never more patches than the tiling
    spread_cover = patch_cover(spread, patch=128)
    assert len(spread_cover) <= 25
    hit = np.zeros_like(spread)
    for y0, x0 in spread_cover:
        hit[y0 : y0 + 128, x0 : x0 + 128] = True
    assert not (spread & ~hit).any()
    with pytest.raises(InputError):
        patch_cover(np.ones((100, 300), bool), patch=256)


def test_sharpest_plane_and_focus_zero_find_the_bead_layer(layer):
    z, stack = layer
    assert abs(z[sharpest_plane(stack)] - BEAD_PLANE_UM) <= 0.5
    curve = focus_curve(stack, extended_depth_of_field(stack))
    assert curve.shape == z.shape and np.all(curve <= 1)
    assert abs(focus_zero(stack, z) - BEAD_PLANE_UM) < 0.2  # 0.4 of the 0.5 µm step


def test_focus_zero_follows_a_known_offset_of_the_stack(layer):
    z, stack = layer
    offset = 0.3  # µm, not a multiple of the step
    shifted = _bead_layer_stack(z + offset)
    # the same sample imaged 0.3 µm deeper appears 0.3 µm shallower on the stack's own z axis
    difference = focus_zero(stack, z) - focus_zero(shifted, z)
    assert difference == pytest.approx(offset, abs=0.1)  # within 0.2 of the z step


def test_projective_registration_recovers_a_known_homography():
    sample = make_sample("nuclei", (9, 512, 512), (1.0, MICROSCOPE.pixel_um / 2, MICROSCOPE.pixel_um / 2), seed=0)
    fixed = fluorescence_stack(sample, MICROSCOPE, [4.0], seed=0).noisy[0].astype(np.float32)
    true = np.array([[1.02, 0.03, -6.0], [-0.02, 0.99, 4.0], [1e-5, -2e-5, 1.0]])  # fixed (x, y) -> moving (x, y)
    moving = warp(fixed, ProjectiveTransform(matrix=np.linalg.inv(true)), preserve_range=True)
    found = register_projective(moving, fixed)
    corners = np.array([[0, 0, 1], [255, 0, 1], [0, 255, 1], [255, 255, 1], [128, 128, 1]], float)

    def apply(h):
        p = corners @ h.T
        return p[:, :2] / p[:, 2:]

    assert np.abs(apply(found) - apply(true)).max() < 1.0  # pixels
    back = warp_projective(moving, found, fixed.shape)
    inner = np.s_[20:-20, 20:-20]
    assert np.corrcoef(back[inner].ravel(), fixed[inner].ravel())[0, 1] > 0.98
    stack = warp_projective(np.stack([moving, 2 * moving]), found, fixed.shape)
    assert stack.shape == (2, *fixed.shape) and np.allclose(stack[1], 2 * back, rtol=1e-5, atol=1e-3)
    with pytest.raises(InputError):
        register_projective(np.zeros((128, 128)), fixed[:128, :128])


def test_translation_registration_recovers_a_known_shift():
    sample = make_sample("filaments", (9, 256, 256), (1.0, MICROSCOPE.pixel_um / 2, MICROSCOPE.pixel_um / 2), seed=1)
    fixed = fluorescence_stack(sample, MICROSCOPE, [4.0], seed=0).noisy[0].astype(np.float32)
    moving = ndimage.shift(fixed, (2.4, -3.7), order=3, mode="nearest")  # rows down 2.4 px, columns left 3.7 px
    found = register_translation(moving, fixed)
    np.testing.assert_allclose(found[:2, :2], np.eye(2))
    assert found[0, 2] == pytest.approx(-3.7, abs=0.2) and found[1, 2] == pytest.approx(2.4, abs=0.2)  # (x, y) px
    back = warp_projective(moving, found, fixed.shape)
    inner = np.s_[10:-10, 10:-10]
    assert np.corrcoef(back[inner].ravel(), fixed[inner].ravel())[0, 1] > 0.98
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="do not correlate"):
        register_translation(rng.random((128, 128)), rng.random((128, 128)))
    with pytest.raises(InputError, match="equal image sizes"):
        register_translation(fixed[:64, :64], fixed)


@pytest.mark.parametrize("method", ALIGN_METHODS)
def test_align_stack_tolerates_featureless_planes(method):
    rng = np.random.default_rng(3)
    stack = np.zeros((5, 48, 48), np.float32)
    stack[2] = rng.random((48, 48))  # one textured plane, the others empty (a near-empty confocal stack)
    aligned, transforms = align_stack(stack, method=method)
    assert aligned.shape == stack.shape and np.isfinite(transforms).all()
    assert np.abs(transforms).max() < 1.0  # nothing to register: no spurious rotation or shift


def test_align_stack_refuses_unknown_or_missing_methods(monkeypatch):
    stack = np.zeros((3, 16, 16), np.float32)
    with pytest.raises(InputError, match=r"^method: must be one of 'rigid', 'stackreg', got 'turboreg'$"):
        align_stack(stack, method="turboreg")
    monkeypatch.setitem(sys.modules, "pystackreg", None)  # import pystackreg now raises ImportError
    with pytest.raises(InputError, match=r"^align method 'stackreg' needs pystackreg, which is not installed; "
                                         r"pip install widefield3d\[stackreg\]$"):
        align_stack(stack, method="stackreg")


def test_train_deepz_align_stackreg_without_pystackreg_fails_first(tmp_path, monkeypatch, capsys):
    from conftest import run

    from widefield3d.methods.deepz_data import DeepZDataConfig

    assert [DeepZDataConfig(align=a).align for a in (True, False, "stackreg")] == ["rigid", "none", "stackreg"]
    monkeypatch.setitem(sys.modules, "pystackreg", None)
    model = tmp_path / "model"
    assert run(["train", "deepz", "--data", tmp_path, "-o", model, "--align", "stackreg"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install widefield3d[stackreg]" in err
    assert not model.exists()
