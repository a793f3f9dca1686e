import csv
import math

import numpy as np
import pytest
from rich.table import Table
from skimage.metrics import structural_similarity

from widefield3d.analysis import metrics
from widefield3d.analysis.metrics import evaluate, format_table, mae, mse, pearson, psnr, rmse, ssim, write_metrics_csv
from widefield3d.errors import InputError


@pytest.fixture
def volume_pair():
    rng = np.random.default_rng(0)
    gt = rng.random((6, 20, 24)).astype(np.float32)
    pred = gt + 0.1 * rng.standard_normal(gt.shape).astype(np.float32)
    return pred, gt


def test_errors_hand_computed():
    pred = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    gt = np.zeros((2, 2))
    assert mse(pred, gt) == pytest.approx(3.5)
    assert rmse(pred, gt) == pytest.approx(math.sqrt(3.5))
    assert mae(pred, gt) == pytest.approx(1.5)


def test_psnr_of_known_mse():
    gt = np.zeros((8, 8))
    gt[0, 0] = 2.0  # gt range 2
    pred = gt + 0.1  # mse 0.01
    assert psnr(pred, gt, data_range=1.0) == pytest.approx(20.0)
    assert psnr(pred, gt, data_range="gt") == pytest.approx(10 * math.log10(4 / 0.01))
    assert psnr(gt, gt, data_range=1.0) == math.inf


def test_pearson_linear_maps():
    gt = np.random.default_rng(1).random((5, 7))
    assert pearson(3 * gt + 2, gt) == pytest.approx(1.0)
    assert pearson(-gt, gt) == pytest.approx(-1.0)
    assert math.isnan(pearson(np.ones_like(gt), gt))


def test_ssim_identical_and_noisy(volume_pair):
    pred, gt = volume_pair
    assert ssim(gt[0], gt[0], data_range=1.0) == pytest.approx(1.0)
    assert ssim(gt, gt, data_range=1.0) == pytest.approx(1.0)
    s3 = ssim(pred, gt, data_range=1.0)
    assert 0.3 < s3 < 0.99
    assert s3 == pytest.approx(structural_similarity(pred.astype(float), gt.astype(float), data_range=1.0, win_size=5))


def test_ssim_per_plane_is_mean_of_2d(volume_pair):
    pred, gt = volume_pair
    expected = np.mean([structural_similarity(p, g, data_range=1.0)
                        for p, g in zip(pred.astype(float), gt.astype(float))])
    assert ssim(pred, gt, data_range=1.0, per_plane=True) == pytest.approx(expected)
    expected_x = np.mean([structural_similarity(pred[..., i].astype(float), gt[..., i].astype(float), data_range=1.0,
                                                win_size=5) for i in range(gt.shape[2])])
    assert ssim(pred, gt, data_range=1.0, per_plane=True, plane_axis=-1) == pytest.approx(expected_x)


def test_ssim_rgb_channel_axis():
    rng = np.random.default_rng(2)
    gt = rng.random((16, 16, 3))
    pred = gt.copy()
    pred[..., 1] += 0.2 * rng.standard_normal((16, 16))
    per_channel = [structural_similarity(pred[..., c], gt[..., c], data_range=1.0) for c in range(3)]
    assert ssim(pred, gt, data_range=1.0, channel_axis=-1) == pytest.approx(np.mean(per_channel))
    assert per_channel[0] == pytest.approx(1.0) and per_channel[1] < 0.9


def test_evaluate_rows(volume_pair):
    pred, gt = volume_pair
    rows = evaluate(pred, gt, data_range="gt", per_plane=True)
    assert len(rows) == 1 + gt.shape[0]
    assert list(rows[0]) == ["plane", "mse", "rmse", "mae", "psnr", "ssim", "pearson"]
    assert rows[0]["plane"] == "all" and [r["plane"] for r in rows[1:]] == list(range(6))
    r = float(gt.max() - gt.min())
    assert rows[0]["mse"] == pytest.approx(mse(pred, gt))
    assert rows[0]["psnr"] == pytest.approx(psnr(pred, gt, r))
    assert rows[0]["ssim"] == pytest.approx(ssim(pred, gt, r))
    assert rows[0]["pearson"] == pytest.approx(pearson(pred, gt))
    plane3 = rows[1 + 3]
    assert plane3["mae"] == pytest.approx(mae(pred[3], gt[3]))
    assert plane3["psnr"] == pytest.approx(psnr(pred[3], gt[3], r))  # whole-volume range used per plane
    assert plane3["ssim"] == pytest.approx(ssim(pred[3], gt[3], r))
    assert len(evaluate(pred, gt, data_range=1.0)) == 1


def test_evaluate_per_plane_with_channels():
    rng = np.random.default_rng(3)
    gt = rng.random((3, 4, 12, 12))  # C Z Y X
    pred = gt + 0.05 * rng.standard_normal(gt.shape)
    rows = evaluate(pred, gt, data_range=1.0, per_plane=True, plane_axis=1, channel_axis=0)
    assert len(rows) == 5
    assert rows[2]["ssim"] == pytest.approx(ssim(pred[:, 1], gt[:, 1], 1.0, channel_axis=0))


def test_csv_roundtrip(tmp_path, volume_pair):
    pred, gt = volume_pair
    rows = evaluate(pred, gt, data_range=1.0, per_plane=True)
    rows.append({"plane": "identical", "psnr": math.inf})
    out = write_metrics_csv(rows, tmp_path / "m.csv")
    with open(out, newline="") as f:
        back = list(csv.DictReader(f))
    assert len(back) == len(rows)
    assert back[0]["plane"] == "all" and back[2]["plane"] == "1"
    assert float(back[2]["ssim"]) == rows[2]["ssim"]  # full precision
    assert float(back[-1]["psnr"]) == math.inf and back[-1]["mse"] == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_csv_failure_leaves_no_file(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(metrics.os, "replace", fail)
    with pytest.raises(OSError):
        write_metrics_csv([{"plane": "all", "mse": 1.0}], tmp_path / "m.csv")
    assert list(tmp_path.iterdir()) == []


def test_format_table(volume_pair):
    pred, gt = volume_pair
    rows = evaluate(pred, gt, data_range=1.0, per_plane=True)
    table = format_table(rows, title="scores")
    assert isinstance(table, Table)
    assert table.row_count == 7
    assert [c.header for c in table.columns] == ["plane", "mse", "rmse", "mae", "psnr", "ssim", "pearson"]
    assert list(table.columns[4].cells)[0] == f"{rows[0]['psnr']:.4g}"


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda a: psnr(a, a, None), "data_range: must be given explicitly"),
        (lambda a: ssim(a, a, None), "data_range: must be given explicitly"),
        (lambda a: psnr(a, a, "max"), "data_range: the only accepted string"),
        (lambda a: psnr(a, a, -1.0), "data_range: must be a positive"),
        (lambda a: psnr(a, np.zeros_like(a), "gt"), "gt is constant"),
        (lambda a: mse(a, a[:-1]), "pred and gt: shapes differ"),
        (lambda a: mse(a, np.where(a > 0.5, np.nan, a)), "gt: contains NaN"),
        (lambda a: mae(np.array([]), np.array([])), "pred: is empty"),
        (lambda a: mse(a.astype(str), a), "pred: must be a real numeric array"),
        (lambda a: ssim(a[:2], a[:2], 1.0), "SSIM needs every spatial axis >= 3"),
        (lambda a: ssim(a, a, 1.0, win_size=4), "win_size: must be odd"),
        (lambda a: evaluate(a, a, data_range=1.0, per_plane=True), "per_plane: needs a 3D volume"),
        (lambda a: evaluate(a[None, None], a[None, None], data_range=1.0, per_plane=True, channel_axis=0),
         "plane_axis and channel_axis"),
    ],
)
def test_input_errors(call, needle):
    a = np.random.default_rng(4).random((9, 9))
    with pytest.raises(InputError, match=needle) as info:
        call(a)
    assert "\n" not in str(info.value)


def test_csv_errors(tmp_path):
    with pytest.raises(InputError, match="rows: no rows"):
        write_metrics_csv([], tmp_path / "m.csv")
    with pytest.raises(InputError, match="does not exist"):
        write_metrics_csv([{"a": 1}], tmp_path / "missing" / "m.csv")
