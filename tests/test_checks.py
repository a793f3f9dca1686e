"""The checks every command runs before it computes (issue 14): output location, inputs kept, size of the work."""

import os

import numpy as np
import pytest

from widefield3d import checks
from widefield3d.checks import check_memory, check_output, check_planes, estimate_bytes, parse_range
from widefield3d.errors import InputError


def test_output_kinds(tmp_path):
    assert check_output(tmp_path / "a.ome.tif") == tmp_path / "a.ome.tif"
    check_output(tmp_path / "new" / "deeper" / "a.ome.zarr")  # missing folders are created later
    check_output(tmp_path / "m.csv", kind="csv")
    check_output(tmp_path / "model", kind="dir")
    with pytest.raises(InputError, match=r"-o .*a\.xyz: unknown image extension"):
        check_output(tmp_path / "a.xyz")
    with pytest.raises(InputError, match=r"--figure .*f\.jpg: must be a \.png file"):
        check_output(tmp_path / "f.jpg", kind="png", name="--figure")
    (tmp_path / "folder.tif").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        check_output(tmp_path / "folder.tif")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file; give a folder name"):
        check_output(tmp_path / "file", kind="dir")
    with pytest.raises(InputError, match=r"file is a file, not a folder"):
        check_output(tmp_path / "file" / "sub" / "a.ome.tif")


def test_output_is_never_an_input(tmp_path):
    source = tmp_path / "in.ome.tif"
    source.write_bytes(b"data")
    link = tmp_path / "link.ome.tif"
    link.symlink_to(source)
    for output in (source, link, tmp_path / "sub" / ".." / "in.ome.tif"):
        with pytest.raises(InputError, match="is the input"):
            check_output(output, inputs=[None, source])
    zarr_dir = tmp_path / "in.ome.zarr"
    (zarr_dir / "s0").mkdir(parents=True)
    with pytest.raises(InputError, match="holds the input"):
        check_output(zarr_dir, inputs=[zarr_dir / "s0"])
    check_output(tmp_path / "out.ome.tif", inputs=[source, zarr_dir])
    assert source.read_bytes() == b"data"


def test_unwritable_folder(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: p != tmp_path and real_access(p, mode, **kw))
    with pytest.raises(InputError, match="is not writable"):
        check_output(tmp_path / "a.ome.tif")


def test_memory_and_planes(monkeypatch):
    assert estimate_bytes((2, 3, 4)) == 96 and estimate_bytes((10,), itemsize=8, copies=2.5) == 200
    available = checks.available_memory()
    assert available is None or available > 0
    monkeypatch.setattr(checks, "available_memory", lambda: 2**30)
    check_memory(2**30, "--shape")
    with pytest.raises(InputError, match=r"--shape 1,2,3: needs about 2 GiB of memory but 1 GiB is available"):
        check_memory(2**31, "--shape 1,2,3")
    check_memory(2**31, "--shape", allow_large=True)
    monkeypatch.setattr(checks, "available_memory", lambda: None)  # unknown: no refusal
    check_memory(2**60, "--shape")
    check_planes(checks.MAX_PLANES, "--z")
    with pytest.raises(InputError, match="--allow-large"):
        check_planes(checks.MAX_PLANES + 1, "--z")
    check_planes(10**6, "--z", allow_large=True)


def test_pixel_mismatch_warning():
    assert not checks.warn_pixel_mismatch(0.34, 0.325, "a.tif", "m")  # within 10 %
    assert not checks.warn_pixel_mismatch(0.5, None, "a.tif", "m")  # the model does not know its pixel
    with pytest.warns(UserWarning, match=r"a\.tif: pixel size 0\.5 µm differs from the 0\.325 µm that m was "
                                         r"trained on by 54%"):
        assert checks.warn_pixel_mismatch(0.5, 0.325, "a.tif", "m")


def test_parse_range_is_inclusive():
    np.testing.assert_allclose(parse_range("-1:1:0.5"), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(parse_range("2.5"), [2.5])


@pytest.mark.parametrize("text", ["nan:1:1", "0:inf:1", "nan", "-inf", "1:nan:1", "0:1e308:1e-300"])
def test_parse_range_refuses_non_finite(text):
    with pytest.raises(InputError, match="--z"):
        parse_range(text)


def test_parse_range_caps_the_plane_count():
    with pytest.raises(InputError, match="200001 planes, more than 2000.*--allow-large"):
        parse_range("-10:10:0.0001")
    assert len(parse_range("0:1999:1")) == 2000
    with pytest.raises(InputError):
        parse_range("0:2000:1")
    assert len(parse_range("-10:10:0.0001", allow_large=True)) == 200001
