"""Neuron activity from a 2D video (Deep-Z Fig. 3): pipeline pieces on tiny synthetic data, the simulator's truth,
and the command line's bad-input paths."""

import numpy as np
import pytest

from conftest import run, write_tiny_deepz

from widefield3d import io
from widefield3d.analysis.activity.clusters import eigengap, laplacian_eigen, similarity, spectral_clusters
from widefield3d.analysis.activity.scores import adjusted_rand_index, match_neurons, pearson_rows
from widefield3d.analysis.activity.segment import find_centroids, local_contrast, watershed_masks
from widefield3d.analysis.activity.traces import brightest_mean, delta_f, most_active, smooth_in_time
from widefield3d.errors import InputError
from widefield3d.methods.activity import ActivityConfig, cluster_active
from widefield3d.methods.deepz_calibration import DepthCalibration, write_depth_calibration
from widefield3d.prep.frame_registration import register_video
from widefield3d.sim.camera import fourier_shift

SPACING = (0.5, 0.325, 0.325)


def test_similarity_is_the_papers_gaussian():
    df = np.array([[1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    f0 = np.array([2.0, 2.0, 1.0])
    s = similarity(df, f0, sigma=1.5)
    # rows 0 and 1 equal; row 0 vs 2: ||(0.5, -0.5, 0)||^2 = 0.5
    assert s[0, 1] == pytest.approx(1.0)
    assert s[0, 2] == pytest.approx(np.exp(-0.5 / 1.5**2))
    np.testing.assert_allclose(s, s.T)


def _blocks(sizes, inside=0.9, outside=0.01, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    s = np.where(truth[:, None] == truth[None], inside, outside) + rng.uniform(0, 0.02, (len(truth),) * 2)
    return (s + s.T) / 2, truth


def test_eigengap_counts_the_blocks_and_spectral_clustering_finds_them():
    s, truth = _blocks((12, 8, 5))
    lam, _ = laplacian_eigen(s)
    assert lam[0] == pytest.approx(0, abs=1e-9)
    assert eigengap(lam) == 3
    labels, k, _ = spectral_clusters(s)
    assert k == 3
    assert adjusted_rand_index(labels, truth) == pytest.approx(1.0)
    assert np.bincount(labels)[1:].tolist() == [12, 8, 5]  # numbered by decreasing size



def test_cluster_active_labels_only_active_neurons():
    s, truth = _blocks((6, 4))
    active = np.zeros(13, bool)
    active[[0, 2, 3, 4, 5, 6, 7, 8, 9, 11]] = True
    calls = []
    labels, k, eigenvalues = cluster_active(active, lambda: calls.append(1) or s, None, 10)
    assert k == 2 and len(eigenvalues) == 10 and calls == [1]
    assert (labels[~active] == 0).all()
    assert adjusted_rand_index(labels[active], truth) == pytest.approx(1.0)
    one = np.zeros(5, bool)
    one[3] = True
    labels, k, _ = cluster_active(one, lambda: calls.append(2) or s, None, 10)  # one active neuron: cluster 1
    assert labels.tolist() == [0, 0, 0, 1, 0] and k == 1 and calls == [1]
    labels, k, _ = cluster_active(np.zeros(5, bool), lambda: s, None, 10)
    assert labels.tolist() == [0] * 5 and k == 0

@pytest.mark.parametrize("z_um", [(1.0, 0.0), (0.0, 1.0, 3.0), (), (0.0, float("nan"))])
def test_config_refuses_depths_without_one_spacing(z_um):
    assert ActivityConfig(z_um=(-1.0, -0.5, 0.0)).z_um == (-1.0, -0.5, 0.0)
    with pytest.raises(ValueError, match="increasing, evenly spaced"):
        ActivityConfig(z_um=z_um)


def test_adjusted_rand_index_known_values():
    assert adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)  # scikit-learn's doc example
    assert adjusted_rand_index([0, 0, 0, 0], [0, 1, 2, 3]) == pytest.approx(0.0)


def test_f_is_the_mean_of_the_100_brightest_voxels():
    labels = np.zeros((2, 20, 20), np.int32)
    labels[0, :10, :15] = 1  # 150 voxels
    labels[1, :4, :5] = 2  # 20 voxels: fewer than 100, all are used
    stacks = np.zeros((3,) + labels.shape, np.float32)
    for t in range(3):
        stacks[t][labels == 1] = np.random.default_rng(t).permutation(150) + 10 * t
        stacks[t][labels == 2] = 5.0 * (t + 1)
    f = brightest_mean(stacks, labels, 100)
    np.testing.assert_allclose(f[0], np.arange(50, 150).mean() + 10 * np.arange(3))
    np.testing.assert_allclose(f[1], [5.0, 10.0, 15.0])
    df, f0 = delta_f(f)
    np.testing.assert_allclose(f0, [109.5, 10.0])
    np.testing.assert_allclose(df.sum(axis=1), 0, atol=1e-9)
    assert most_active(df, f0, 0.1).tolist() == [False, True]  # std 8.2 < 11; std 4.1 > 1.0


def _two_blobs():
    zz, yy, xx = np.meshgrid(*(np.arange(n) * s for n, s in zip((15, 32, 32), SPACING)), indexing="ij")
    centres = [(3.0, 4.0, 4.0), (4.5, 6.5, 6.8)]
    volume = sum(np.exp(-((zz - z) ** 2 / (2 * 0.8**2) + ((yy - y) ** 2 + (xx - x) ** 2) / (2 * 0.5**2)))
                 for z, y, x in centres)
    return volume.astype(np.float32), np.array(centres)


def test_centroids_are_local_maxima_and_watershed_grows_one_mask_each():
    volume, centres = _two_blobs()
    peaks = find_centroids(volume, SPACING)
    found = peaks * np.array(SPACING)
    assert len(peaks) == 2
    assert len(match_neurons(found, centres, 0.4)) == 2
    labels = watershed_masks(volume, peaks, SPACING, max_radius_um=2.0)
    assert set(np.unique(labels)) == {0, 1, 2}
    for i, p in enumerate(peaks):
        assert labels[tuple(p)] == i + 1
        voxels = np.argwhere(labels == i + 1) * np.array(SPACING)
        assert np.linalg.norm(voxels - p * np.array(SPACING), axis=1).max() <= 2.0 + 1e-9


def test_smoothing_in_time_damps_frame_noise_and_keeps_slow_activity():
    rng = np.random.default_rng(0)
    t = np.arange(400)
    slow = 1 + 0.5 * (t >= 200)  # a step: activity much slower than a frame
    f = np.stack([slow + rng.normal(0, 0.04, t.size) for _ in range(50)])
    smoothed = smooth_in_time(f, 3)
    away_from_step = np.abs(t - 199.5) > 3
    noise = (smoothed - slow)[:, away_from_step].std(axis=1)
    np.testing.assert_allclose(np.median(noise), 0.04 / np.sqrt(3), rtol=0.1)  # white noise: 1 / sqrt(3)
    np.testing.assert_allclose(smoothed[:, [100, 300]].mean(axis=0), [1.0, 1.5], atol=0.01)
    np.testing.assert_array_equal(smooth_in_time(f, 1), f)
    with pytest.raises(InputError, match="frames"):
        smooth_in_time(f, 0)


def test_local_contrast_keeps_blobs_and_drops_a_faint_maximum_on_a_glow():
    volume, centres = _two_blobs()
    glow = volume + 0.5  # a uniform haze: the blobs stand 1 above a background of 0.5
    peaks = find_centroids(glow, SPACING, threshold=0.6)
    contrast = local_contrast(glow, peaks, SPACING)
    np.testing.assert_allclose(contrast, 1 - 0.5 / 1.5, atol=0.02)  # background: the haze; peak: blob + haze
    bump = glow.copy()
    bump[2, 3, 3] += 0.1  # a weak maximum on the haze, far from both blobs
    faint = find_centroids(bump, SPACING, threshold=0.55)
    assert len(faint) == 3
    kept = find_centroids(bump, SPACING, threshold=0.55, min_contrast=0.2)
    assert sorted(map(tuple, kept)) == sorted(map(tuple, peaks))


def test_match_neurons_lateral_only_and_pearson():
    truth = np.array([[5.0, 1.0, 1.0], [-5.0, 10.0, 10.0]])
    det = np.array([[0.0, 1.5, 1.0]])
    assert len(match_neurons(det, truth, 2.0)) == 0  # 5 µm off in z
    assert match_neurons(det, truth, 2.0, lateral_only=True).tolist() == [[0, 0]]
    x = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    r = pearson_rows(x, np.array([[2.0, 4.0, 6.5], [0.0, 1.0, 2.0]]))
    assert r[0] > 0.99 and np.isnan(r[1])


def test_registration_recovers_a_translation():
    rng = np.random.default_rng(3)
    frame = np.zeros((96, 96), np.float32)
    for y, x in rng.uniform(10, 86, (40, 2)):
        yy, xx = np.mgrid[:96, :96]
        frame += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5**2))
    shift = (2.3, -1.7)
    video = np.stack([np.stack([frame, frame]), np.stack([fourier_shift(frame, shift)] * 2)])
    registered, h, _ = register_video(video)
    x_mov, y_mov, w = h[1] @ np.array([40.0, 50.0, 1.0])
    assert x_mov / w - 40 == pytest.approx(shift[1], abs=0.15)
    assert y_mov / w - 50 == pytest.approx(shift[0], abs=0.15)
    core = (slice(8, -8), slice(8, -8))
    assert np.abs(registered[1, 1][core] - frame[core]).max() < 0.1 * frame.max()


@pytest.mark.slow
def test_simulated_truth_is_consistent():
    from scipy import ndimage

    from widefield3d.sim.activity import PATTERNS, activity_preset, simulate_worm_activity

    sim = simulate_worm_activity(activity_preset("worm-activity", field_px=32, margin_px=4, n_frames=4,
                                                                keep_fraction=1.0), seed=0,
                                 progress=False)
    n = len(sim.centres_um)
    assert sim.video.shape == (4, 2, 32, 32) and sim.video.dtype == np.uint16
    assert sim.traces.shape == (n, 4) and sim.clusters.shape == (n,)
    assert set(np.unique(sim.clusters)) <= set(range(len(PATTERNS) + 1))
    np.testing.assert_allclose(sim.warps[0], np.eye(3))
    silent = sim.clusters == 0
    assert np.abs(sim.traces[silent] - 1).max() < 0.25  # only the small individual fluctuation
    assert np.all(np.abs(sim.centres_um[:, 0]) <= 10)
    ids = np.unique(sim.labels)[1:]
    com = np.array(ndimage.center_of_mass(sim.labels > 0, sim.labels, ids)) * np.array(sim.spacing_um)
    com[:, 0] += sim.z_um[0]
    inner = np.all((com[:, 1:] > 2) & (com[:, 1:] < 32 * 0.325 - 2), axis=1)  # not cut by the field's edge
    assert inner.sum() >= 3
    assert np.median(np.linalg.norm(com[inner] - sim.centres_um[ids[inner] - 1], axis=1)) < 0.3


@pytest.fixture
def tiny_video(tmp_path):
    rng = np.random.default_rng(0)
    data = (100 + 50 * rng.random((4, 2, 32, 32))).astype(np.uint16)
    path = tmp_path / "video.ome.tif"
    io.write(path, io.Image(data, "TCYX", {"Y": 0.325, "X": 0.325}))
    return path


def test_cli_refuses_bad_input_with_one_line(tmp_path, tiny_video, capsys):
    out = tmp_path / "out"
    zyx = tmp_path / "stack.ome.tif"
    io.write(zyx, io.Image(np.ones((3, 16, 16), np.float32), "ZYX"))
    model = write_tiny_deepz(tmp_path / "tiny")
    calibrated = write_tiny_deepz(tmp_path / "calibrated")  # focuses every depth 1 µm further
    write_depth_calibration(calibrated, DepthCalibration(depth_um=(-5.0, 5.0), dpm_um=(-4.0, 6.0), n_beads=0))
    cases = [
        ([tmp_path / "missing.tif"], "missing.tif"),
        ([zyx], "needs a two-channel video"),
        ([tiny_video, "--green", "1", "--red", "1"], "must be different channels"),
        ([tiny_video, "--red", "5"], "has 2 channels"),
        ([tiny_video, "--z-step", "0"], "--z-step"),
        ([tiny_video, "--min-contrast", "1.5"], "--min-contrast"),
        ([tiny_video, "--smooth-frames", "0"], "--smooth-frames"),
        ([tiny_video, "--model", model, "--z-range", "-12", "10"], "beyond the model's trained range"),
        ([tiny_video, "--model", model, "--calibrated"], "has no depth calibration"),
        ([tiny_video, "--model", calibrated, "--calibrated", "--z-range", "-1", "9.5"], "beyond the model's trained"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert run(["activity", *args, "-o", out]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not out.exists()  # nothing written


def test_cli_writes_all_outputs(tmp_path, tiny_video):
    model = write_tiny_deepz(tmp_path / "tiny")
    out = tmp_path / "out"
    assert run(["activity", tiny_video, "-o", out, "--model", model, "--z-range", "-1", "1", "--z-step", "1",
                "--no-progress"]) == 0
    labels = io.read(out / "labels.ome.tif")
    assert labels.axes == "ZYX" and labels.data.shape == (3, 32, 32)
    assert labels.spacing_zyx == pytest.approx((1.0, 0.325, 0.325))
    rows = (out / "traces.csv").read_text().splitlines()
    assert len(rows) == 1 + int(labels.data.max())
    assert rows[0].startswith("neuron,z_um,y_um,x_um,active,cluster,F0")
    assert (out / "activity.png").stat().st_size > 10_000
    calibrated = write_tiny_deepz(tmp_path / "calibrated")
    write_depth_calibration(calibrated, DepthCalibration(depth_um=(-5.0, 5.0), dpm_um=(-4.0, 6.0), n_beads=0))
    assert run(["activity", tiny_video, "-o", tmp_path / "cal", "--model", calibrated, "--calibrated", "--z-range",
                "-1", "1", "--z-step", "1", "--no-progress"]) == 0
    assert io.read(tmp_path / "cal" / "labels.ome.tif").data.shape == (3, 32, 32)


def test_video_normalisation_uses_one_scale_for_all_frames(tmp_path):
    """normalisation='video': every frame of a channel is refocused with the median frame's normalisation (per-frame
    normalisation rescales each frame by its own statistics)."""
    from widefield3d.methods.activity import refocus_video
    from widefield3d.methods.deepz import load, reference_normalisation, refocus

    model = load(write_tiny_deepz(tmp_path / "tiny"))
    rng = np.random.default_rng(1)
    frame = (100 + 400 * rng.random((24, 24)) ** 8).astype(np.float32)
    video = np.stack([frame, 100 + 2 * (frame - 100), frame])[:, None]  # (T, C=1, Y, X)
    z = [-1.0, 1.0]
    out = refocus_video(video, z, model=model, progress=False, device="cpu", normalisation="video")
    norm = reference_normalisation(np.median(video[:, 0], axis=0), model)
    expected = refocus(video[1, 0], z, model=model, normalisation=norm, progress=False, device="cpu").data
    np.testing.assert_allclose(out[1, 0], expected, rtol=1e-5, atol=1e-4)
    per_frame = refocus_video(video, z, model=model, progress=False, device="cpu")
    assert not np.allclose(per_frame[1, 0], out[1, 0], rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(out[0], out[2])  # equal frames, equal outputs
