"""Simulated samples: shapes, determinism, partial volume, geometry of the bead surfaces, worm and tissue."""

import numpy as np
import pytest
from scipy import ndimage

from widefield3d.errors import InputError
from widefield3d.sim.samples import (
    RUIFROK_HE,
    SAMPLE_KINDS,
    Sample,
    beads,
    curved_beads,
    cytology,
    filaments,
    make_sample,
    nuclei,
    tilted_beads,
    tissue,
    worm,
)

SMALL = (24, 96, 96)
SPACING = (0.5, 0.325, 0.325)


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_every_kind_generates_deterministically(kind):
    s = make_sample(kind, SMALL, SPACING, seed=3)
    again = make_sample(kind, SMALL, SPACING, seed=3)
    other = make_sample(kind, SMALL, SPACING, seed=4)
    assert isinstance(s, Sample) and s.kind == kind
    expected_shape = (2, *SMALL) if kind == "cytology" else SMALL
    assert s.density.shape == expected_shape and s.density.dtype == np.float32
    assert np.all(np.isfinite(s.density)) and s.density.min() >= 0
    assert 0.05 < s.density.max() < 5  # peak near 1
    assert s.spacing_um == SPACING
    assert s.extent_um == pytest.approx((12.0, 31.2, 31.2))
    np.testing.assert_array_equal(s.density, again.density)
    assert not np.array_equal(s.density, other.density)


def _bead_centroids(sample):
    """Intensity-weighted centroids (µm) of the connected beads of a sample."""
    labels, n = ndimage.label(sample.density > 0)
    com = np.array(ndimage.center_of_mass(sample.density, labels, np.arange(1, n + 1)))
    return com * np.asarray(sample.spacing_um)


def _reference_bead(centre_um, diameter_um, shape, spacing, n=24):
    """Slow, obviously correct partial volume: fraction of n^3 points of each voxel inside the sphere, sum 1."""
    sp = np.asarray(spacing)
    out = np.zeros(shape)
    lo = np.maximum(np.floor((centre_um - diameter_um) / sp + 0.5).astype(int), 0)
    hi = np.minimum(np.floor((centre_um + diameter_um) / sp + 0.5).astype(int), np.array(shape) - 1)
    for voxel in np.ndindex(*(hi - lo + 1)):
        k = lo + np.array(voxel)
        g = [(v + (np.arange(n) + 0.5) / n - 0.5) * d - c for v, d, c in zip(k, sp, centre_um)]
        r2 = g[0][:, None, None] ** 2 + g[1][None, :, None] ** 2 + g[2][None, None, :] ** 2
        out[tuple(k)] = np.mean(r2 <= (diameter_um / 2) ** 2)
    return out / out.sum()


@pytest.mark.parametrize("diameter", [0.2, 0.3, 0.6])
def test_bead_partial_volume_is_independent_of_subvoxel_position(diameter):
    sums = []
    for seed in range(8):  # one bead per seed, at a random sub-voxel position
        s = beads((12, 16, 16), SPACING, n_beads=1, diameter_um=diameter, seed=seed)
        sums.append(s.density.sum())
        ours = s.density / s.density.sum()
        ref = _reference_bead(s.centres_um[0], diameter, s.density.shape, SPACING)
        assert np.abs(ours - ref).max() < 0.02  # each voxel holds its share of the sphere
        index = np.indices(ours.shape).reshape(3, -1)
        np.testing.assert_allclose(index @ ours.ravel(), index @ ref.ravel(), atol=0.02)  # same centroid (voxels)
    sums = np.array(sums)
    assert np.ptp(sums) / sums.mean() < 0.02
    # a sub-voxel bead is a point source of unit signal; a larger one has unit concentration
    assert sums.mean() == pytest.approx(max(1.0, np.pi / 6 * diameter**3 / np.prod(SPACING)), rel=1e-4)


def test_large_bead_has_partial_volume_of_a_sphere():
    s = beads((16, 24, 24), (0.25, 0.25, 0.25), n_beads=1, diameter_um=2.0, seed=2)
    voxel_volume = 0.25**3
    sphere = np.pi / 6 * 2.0**3 / voxel_volume
    assert s.density.sum() == pytest.approx(sphere, rel=1e-4)  # unit concentration
    assert s.density.max() == pytest.approx(1.0, abs=0.02)
    assert np.count_nonzero(s.density > 0.5) == pytest.approx(sphere, rel=0.05)


def test_bead_count_follows_density():
    s = beads((40, 200, 200), SPACING, density_per_1000um3=2.0, seed=1)
    volume = 20 * 65 * 65
    assert len(s.centres_um) == round(2.0 * volume / 1000)
    assert len(_bead_centroids(s)) == len(s.centres_um)  # separated beads stay apart


@pytest.mark.parametrize("angle, axis", [(15.0, "x"), (-25.0, "y")])
def test_tilted_beads_lie_on_the_plane(angle, axis):
    s = tilted_beads((48, 160, 160), SPACING, angle_deg=angle, axis=axis, density_per_100um2=3.0, seed=5)
    c = _bead_centroids(s)
    assert len(c) > 50
    design = np.column_stack([np.ones(len(c)), c[:, 1], c[:, 2]])
    (z0, gy, gx), *_ = np.linalg.lstsq(design, c[:, 0], rcond=None)
    along, across = (gy, gx) if axis == "x" else (gx, gy)
    assert np.degrees(np.arctan(along)) == pytest.approx(angle, abs=1.0)
    assert abs(np.degrees(np.arctan(across))) < 1.0
    # the stored surface is the same plane
    yy, xx = np.mgrid[0:160, 0:160] * 0.325
    np.testing.assert_allclose(s.surface_um, z0 + gy * yy + gx * xx, atol=0.1)
    assert s.surface_um[80, 80] == pytest.approx(47 * 0.5 / 2, abs=0.2)  # through the centre


@pytest.mark.parametrize("bulge", ["toward", "away"])
def test_curved_beads_lie_on_the_cylinder(bulge):
    s = curved_beads((64, 160, 256), SPACING, radius_um=50.0, axis="y", bulge=bulge, density_per_100um2=3.0, seed=6)
    c = _bead_centroids(s)
    assert len(c) > 50
    z, x = c[:, 0], c[:, 2]
    # algebraic circle fit in the (x, z) plane: x^2 + z^2 + a x + b z + d = 0
    (a, b, d), *_ = np.linalg.lstsq(np.column_stack([x, z, np.ones_like(x)]), -(x**2 + z**2), rcond=None)
    xc, zc = -a / 2, -b / 2
    radius = np.sqrt(xc**2 + zc**2 - d)
    assert radius == pytest.approx(50.0, rel=0.05)
    assert xc == pytest.approx(255 * 0.325 / 2, abs=1.0)
    apex = np.nanmin(s.surface_um) if bulge == "toward" else np.nanmax(s.surface_um)
    assert zc == pytest.approx(apex + (50.0 if bulge == "toward" else -50.0), abs=2.5)  # centre beyond the apex


def test_worm_holds_150_to_300_nuclei_spread_over_depth():
    for seed in (0, 1):
        s = worm((48, 400, 400), SPACING, seed=seed)
        c = s.centres_um
        assert 150 <= len(c) <= 300
        assert np.ptp(c[:, 0]) > 12 and c[:, 0].std() > 3  # nuclei at many depths of the ~20 µm body
        at_centres = s.density[tuple(np.rint(c / np.asarray(SPACING)).astype(int).T)]
        assert np.median(at_centres) > 0.5  # nuclei are drawn where reported
        body = (s.density > 0.02) & (s.density < 0.06)  # the faint autofluorescent body
        z_body = np.nonzero(body.any(axis=(1, 2)))[0] * SPACING[0]
        assert np.ptp(z_body) == pytest.approx(20.0, abs=2.0)  # ~20 µm thick
    small = worm((48, 100, 100), SPACING, seed=0)
    assert len(small.centres_um) < 150  # fewer nuclei when less body fits in the field


def test_worm_nucleus_brightness_follows_brightness_range():
    """The deepz-20x075-activity preset's worms: nuclei as bright as the activity videos' green channel."""
    grid = (48, 160, 160)
    for brightness in ((0.6, 1.0), (1.2, 1.8)):
        s = worm(grid, SPACING, brightness_range=brightness, seed=3)
        at_centres = s.density[tuple(np.rint(s.centres_um / np.asarray(SPACING)).astype(int).T)]
        assert brightness[0] - 0.05 < np.median(at_centres) < brightness[1]
    with pytest.raises(InputError, match="brightness_range"):
        worm(grid, SPACING, brightness_range=(0.0, 1.0))


def test_nuclei_sizes():
    s = nuclei((40, 160, 160), SPACING, n_nuclei=12, seed=2)
    labels, n = ndimage.label(s.density > 0.25)
    assert n == 12
    volumes = ndimage.sum_labels(np.ones_like(s.density), labels, np.arange(1, n + 1)) * np.prod(SPACING)
    assert np.pi / 6 * 3.0**3 * 0.7 < volumes.min() and volumes.max() < np.pi / 6 * 8.0**3 * 1.3


def test_filaments_are_line_integrals_in_a_slab():
    s = filaments((20, 320, 320), (0.5, 1.0, 1.0), n_filaments=60, length_range_um=(5.0, 5.0),
                  z_excursion_um=0.3, seed=4)
    length = s.density.sum() * 1.0  # density is length per voxel / dx
    assert 0.9 * 60 * 5.0 < length <= 60 * 5.0 * 1.001
    profile = s.density.sum(axis=(1, 2))
    z = np.arange(20) * 0.5
    assert profile[np.abs(z - 4.75) <= 1.5 + 1.0].sum() > 0.98 * profile.sum()  # 3 µm slab + excursions


def test_tissue_fills_40_um_of_depth():
    s = tissue((100, 64, 64), (0.6, 0.5, 0.5), seed=1)
    profile = s.density.mean(axis=(1, 2))
    filled = np.count_nonzero(profile > 0.5 * profile.max()) * 0.6
    assert filled == pytest.approx(40.0, abs=4.0)
    assert s.scattering_length_um == 100.0
    inside = s.density[40:60]
    assert np.count_nonzero(inside > 0.1) / inside.size > 0.5  # densely packed cells
    assert np.count_nonzero(s.density > 0.6) > 0  # bright nuclei


def test_cytology_stains():
    s = cytology((80, 160, 160), (0.5, 0.325, 0.325), seed=2)
    assert s.channel_names == ["hematoxylin", "eosin"]
    np.testing.assert_allclose(s.absorbance_rgb, RUIFROK_HE, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(s.absorbance_rgb, axis=1), 1.0, rtol=1e-6)
    hema, eosin = s.density
    # nuclei sit inside cells: where hematoxylin is strong, the voxel belongs to a stained cell body
    assert eosin[hema > 0.3].mean() > 0 and np.count_nonzero(hema > 0.3) > 0
    stained_z = np.nonzero((hema + eosin).max(axis=(1, 2)) > 0.1)[0] * 0.5
    assert 20 < np.ptp(stained_z) < 40  # spread over ~30 µm of depth


def test_make_sample_passes_keywords_and_rejects_bad_input():
    s = make_sample("tilted-beads", SMALL, SPACING, seed=1, angle_deg=5.0, axis="y")
    assert np.ptp(s.surface_um[:, 0]) < 1e-5 and np.ptp(s.surface_um[0]) > 0
    bad = [
        lambda: make_sample("spheres", SMALL, SPACING),
        lambda: make_sample("beads", SMALL, SPACING, diameter=0.2),
        lambda: beads((24, 96), SPACING),
        lambda: beads((24, 0, 96), SPACING),
        lambda: beads((24, 96.5, 96), SPACING),
        lambda: beads(SMALL, (0.5, -0.1, 0.1)),
        lambda: beads(SMALL, SPACING, diameter_um=0),
        lambda: beads(SMALL, SPACING, n_beads=10_000, min_separation_um=2.0),
        lambda: tilted_beads(SMALL, SPACING, angle_deg=95.0),
        lambda: tilted_beads(SMALL, SPACING, axis="z"),
        lambda: curved_beads(SMALL, SPACING, radius_um=-5.0),
        lambda: nuclei(SMALL, SPACING, diameter_range_um=(8.0, 3.0)),
        lambda: tissue(SMALL, SPACING, nucleus_fraction=1.5),
        lambda: cytology(SMALL, SPACING, cluster_fraction=2.0),
    ]
    for call in bad:
        with pytest.raises(InputError):
            call()
