"""Tests of the optional bioio back-end of widefield3d.io.read: our OME-TIFF / OME-Zarr outputs read back through
bioio-ome-tiff / bioio-ome-zarr (axes, spacing in µm, channel names, data), units, routing of vendor extensions,
and the one-line errors when bioio or a plugin is missing (monkeypatched, so they run without bioio)."""

import importlib.util

import dask.array as da
import numpy as np
import pytest
import tifffile

from conftest import run

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.io import vendor


def _needs(plugin):
    return pytest.mark.skipif(importlib.util.find_spec(plugin.replace("-", "_")) is None,
                              reason=f"{plugin} not installed (pip install widefield3d[vendor])")


PLUGIN_OF = {".ome.tif": "bioio-ome-tiff", ".ome.zarr": "bioio-ome-zarr"}
SPACING = {"Z": 0.3, "Y": 0.065, "X": 0.07}


def _image(axes, shape, dtype="uint16", names=True):
    data = np.random.default_rng(1).integers(0, 4000, shape).astype(dtype)
    n_channels = shape[axes.index("C")] if "C" in axes else 1
    return io.Image(data, axes, SPACING, [f"ch{i}" for i in range(n_channels)] if names and "C" in axes else None)


@pytest.mark.parametrize("ext", [pytest.param(e, marks=_needs(p)) for e, p in PLUGIN_OF.items()])
@pytest.mark.parametrize("axes, shape, dtype", [("CZYX", (2, 3, 6, 7), "uint16"), ("ZYX", (4, 6, 7), "float32"),
                                                ("TCZYX", (2, 3, 2, 6, 7), "uint8")])
def test_bioio_reads_our_outputs_back(tmp_path, ext, axes, shape, dtype):
    written = _image(axes, shape, dtype)
    path = io.write(tmp_path / f"a{ext}", written)
    back = io.read(path, reader="bioio")
    assert back.axes == axes
    assert back.data.dtype == written.data.dtype
    np.testing.assert_array_equal(back.data, written.data)
    assert back.spacing_um == pytest.approx(written.spacing_um, rel=1e-12)
    assert back.channel_names == written.channel_names  # names kept; bioio's made-up ones (ZYX) are dropped


@pytest.mark.parametrize("ext", [pytest.param(e, marks=_needs(p)) for e, p in PLUGIN_OF.items()])
def test_bioio_lazy_read_is_dask_with_the_same_values(tmp_path, ext):
    written = _image("CZYX", (2, 3, 6, 7))
    back = io.read(io.write(tmp_path / f"a{ext}", written), reader="bioio", lazy=True)
    assert isinstance(back.data, da.Array) and back.axes == "CZYX"
    np.testing.assert_array_equal(back.data.compute(), written.data)


@_needs("bioio-ome-tiff")
def test_bioio_singletons_come_back_from_our_record_in_ome_tiff(tmp_path):
    written = _image("CZYX", (1, 3, 6, 7))  # bioio drops C=1; the record in the OME-XML restores it
    back = io.read(io.write(tmp_path / "a.ome.tif", written), reader="bioio")
    assert back.axes == "CZYX" and back.data.shape == (1, 3, 6, 7) and back.channel_names == ["ch0"]


@_needs("bioio-ome-zarr")
def test_bioio_drops_singletons_without_a_record(tmp_path):
    back = io.read(io.write(tmp_path / "a.ome.zarr", _image("CZYX", (1, 3, 6, 7), names=False)), reader="bioio")
    assert back.axes == "ZYX" and back.data.shape == (3, 6, 7)


@_needs("bioio-ome-tiff")
def test_bioio_converts_ome_units_to_um(tmp_path):
    path = tmp_path / "nm.ome.tif"
    data = np.arange(2 * 5 * 6, dtype=np.uint16).reshape(2, 5, 6)
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 65.0, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 70.0,
        "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.0005, "PhysicalSizeZUnit": "mm"})
    back = io.read(path, reader="bioio")
    assert back.axes == "ZYX"
    assert back.spacing_um == pytest.approx({"Z": 0.5, "Y": 0.070, "X": 0.065}, rel=1e-9)


@_needs("bioio-czi")
def test_auto_reads_czi_through_bioio(tmp_path):
    path = tmp_path / "damaged.czi"
    path.write_bytes(b"not a czi file" * 64)
    with pytest.raises(InputError, match=r"damaged\.czi: bioio-czi cannot read it \(.*\)$"):
        io.read(path)


def test_builtin_reader_refuses_vendor_extensions(tmp_path):
    path = tmp_path / "a.nd2"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(InputError, match=r"a\.nd2: unknown image extension '\.nd2'"):
        io.read(path, reader="builtin")
    with pytest.raises(InputError, match=r"reader: must be one of 'auto', 'builtin', 'bioio', got 'BioIO'"):
        io.read(path, reader="BioIO")


def _without(monkeypatch, *modules):
    """Make ``modules`` look uninstalled to :mod:`widefield3d.io.vendor`."""
    real = importlib.util.find_spec
    monkeypatch.setattr(vendor.importlib.util, "find_spec",
                        lambda name, *a: None if name in modules else real(name, *a))


@pytest.mark.parametrize("missing, words", [
    (("bioio",), "needs the optional package bioio, which is not installed; pip install widefield3d[vendor]"),
    (("bioio_lif",), "needs the bioio plugin bioio-lif, which is not installed; pip install widefield3d[vendor]"),
])
def test_missing_bioio_is_one_line_naming_what_to_install(tmp_path, monkeypatch, missing, words):
    path = tmp_path / "scan.lif"
    path.write_bytes(b"\0" * 64)
    _without(monkeypatch, *missing)
    with pytest.raises(InputError) as err:
        io.read(path)
    assert str(err.value) == f"{path}: reading it {words}"


def test_missing_bioio_fails_the_cli_with_exit_2(tmp_path, monkeypatch, capsys):
    path = tmp_path / "scan.czi"
    path.write_bytes(b"\0" * 64)
    _without(monkeypatch, "bioio")
    assert run(["info", path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install widefield3d[vendor]" in err
