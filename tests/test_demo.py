"""The main job on a small field: every promised output exists, with physical metadata and real figures."""

import pytest

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.demo import run_demo


def test_demo_writes_images_and_report(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEFIELD3D_CACHE", str(tmp_path / "cache"))
    report = run_demo(tmp_path / "out", field_px=64, progress=False, methods=())
    out = tmp_path / "out"
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 4
    assert "axial asymmetry" in html
    stack = io.read(out / "scanned_stack.ome.tif")
    plane = io.read(out / "input_plane.ome.tif")
    assert stack.axes == "ZYX" and stack.data.shape == (41, 64, 64)
    assert plane.axes == "YX" and plane.data.shape == (64, 64)
    assert stack.spacing_um["Z"] == pytest.approx(0.5) and stack.spacing_um["X"] == pytest.approx(0.325)
    truth = io.read(out / "truth.ome.tif").data
    assert truth.max() > 0  # the worm is in the field
    for name in ("input_plane", "stack_sections", "truth_sections", "psf_profiles"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000


def test_demo_method_sections_use_the_shipped_models(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEFIELD3D_CACHE", str(tmp_path / "cache"))
    report = run_demo(tmp_path / "out", field_px=64, progress=False, methods=("deepz", "mfpi", "wfcon"))
    out = tmp_path / "out"
    html = report.read_text()
    assert html.count("data:image/png;base64,") > 4 + 3
    for heading in ("Deep-Z", "MFPINet", "WFCON-Net"):
        assert f"<h2>{heading}" in html
    virtual = io.read(out / "deepz_virtual_stack.ome.tif")
    assert virtual.axes == "ZYX" and virtual.data.shape == (41, 64, 64)
    for name in ("deepz_sections", "mfpi_planes", "wfcon_sections"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000


def test_demo_refuses_an_unknown_method(tmp_path):
    with pytest.raises(InputError, match="unknown method"):
        run_demo(tmp_path / "out", field_px=64, progress=False, methods=("deepz", "nope"))
    assert not (tmp_path / "out").exists()
