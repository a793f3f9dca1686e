"""Tests of widefield3d.io: round trips per format, metadata seen by tifffile/zarr/PIL alone, lazy reads,
bad inputs and atomic outputs."""

import json
import os
import warnings
import xml.etree.ElementTree as ElementTree

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image as PILImage

from widefield3d import io
from widefield3d.errors import InputError

SPACING = {"Z": 0.3, "Y": 0.065, "X": 0.07}
LAYOUTS = {  # axes -> shape; CYX is RGB (C=3); the singleton C checks that squeezed axes come back
    "YX": (6, 7),
    "ZYX": (3, 6, 7),
    "CZYX": (2, 3, 6, 7),
    "CZYX-1": (1, 3, 6, 7),
    "TCZYX": (2, 2, 3, 6, 7),
    "CYX": (3, 6, 7),
}
DTYPES = ["uint8", "uint16", "float32", "int16", "float64"]
LOSSLESS = [".ome.tif", ".tif", ".ome.zarr", ".zarr", ".npy"]


def make_image(layout, dtype, seed=0):
    axes, shape = layout.split("-")[0], LAYOUTS[layout]
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    rng = np.random.default_rng(seed)
    if info is None:
        data = (rng.standard_normal(shape) * 1e3).astype(dtype)
    else:
        data = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    names = [f"ch{i}" for i in range(shape[axes.index("C")])] if "C" in axes else None
    return io.Image(data, axes, SPACING, names)


def assert_same(read, image):
    assert read.axes == image.axes
    assert read.data.dtype == image.data.dtype
    np.testing.assert_array_equal(np.asarray(read.data), np.asarray(image.data))
    assert read.spacing_um == image.spacing_um
    assert read.channel_names == image.channel_names


# ---------------------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.filterwarnings("ignore:.*ImageJ cannot hold:UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("ext", LOSSLESS)
def test_lossless_round_trip(tmp_path, ext, layout, dtype):
    image = make_image(layout, dtype)
    path = io.write(tmp_path / f"image{ext}", image)
    assert_same(io.read(path), image)
    assert sorted(os.listdir(tmp_path)) == sorted([path.name] + ([path.name + ".json"] if ext == ".npy" else []))


@pytest.mark.parametrize("ext", [".ome.tif", ".tif", ".ome.zarr", ".npy"])
def test_lazy_read_is_dask_with_same_values(tmp_path, ext):
    image = make_image("CZYX", "uint16")
    path = io.write(tmp_path / f"image{ext}", image)
    lazy = io.read(path, lazy=True)
    assert isinstance(lazy.data, da.Array)
    assert (lazy.axes, lazy.spacing_um, lazy.channel_names) == (image.axes, image.spacing_um, image.channel_names)
    np.testing.assert_array_equal(lazy.data.compute(), image.data)


def test_lazy_read_does_not_load_pixels(tmp_path, monkeypatch):
    image = make_image("ZYX", "float32")
    zarr_path = io.write(tmp_path / "image.ome.zarr", image)
    for chunk in (p for p in (zarr_path / "s0").rglob("*") if p.is_file() and p.name != "zarr.json"):
        chunk.write_bytes(b"garbage")
    lazy = io.read(zarr_path, lazy=True)  # the damaged chunks are only decoded on compute
    assert lazy.data.shape == image.data.shape
    with pytest.raises(Exception, match=r"(?i)zstd|decompress"):
        lazy.data.compute()

    tiff_path = io.write(tmp_path / "image.tif", image)

    def refuse(*args, **kwargs):
        raise AssertionError("pixels were loaded")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", refuse)
    lazy = io.read(tiff_path, lazy=True)
    np.testing.assert_array_equal(lazy.data.compute(), image.data)
    with pytest.raises(AssertionError, match="pixels were loaded"):
        io.read(tiff_path)


def test_axes_are_returned_in_tczyx_order(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(4, 5, 3)  # YXC
    path = io.write(tmp_path / "rgb.ome.tif", io.Image(data, "YXC"))
    image = io.read(path)
    assert image.axes == "CYX"
    np.testing.assert_array_equal(image.data, np.moveaxis(data, -1, 0))


def smooth(shape, dtype):
    yy, xx = np.mgrid[0 : shape[-2], 0 : shape[-1]]
    plane = (yy * 3 + xx * 2).astype(np.float64)
    planes = [plane, plane[::-1], plane[:, ::-1]][: shape[0] if len(shape) == 3 else 1]
    data = np.stack(planes) if len(shape) == 3 else plane
    return (data * (np.iinfo(dtype).max / data.max())).astype(dtype)


@pytest.mark.parametrize(
    "axes,shape,dtype",
    [("YX", (20, 30), "uint8"), ("YX", (20, 30), "uint16"), ("CYX", (3, 20, 30), "uint8"),
     ("CYX", (1, 20, 30), "uint8"), ("ZYX", (1, 20, 30), "uint8")],
)
def test_png_round_trip_is_exact(tmp_path, axes, shape, dtype):
    data = smooth(shape[-3:] if len(shape) == 3 and shape[0] == 3 else shape[-2:], dtype).reshape(shape)
    names = ["red", "green", "blue"][: shape[0]] if "C" in axes else None
    image = io.Image(data, axes, SPACING, names)
    assert_same(io.read(io.write(tmp_path / "plane.png", image)), image)


@pytest.mark.parametrize("axes,shape", [("YX", (24, 32)), ("CYX", (3, 24, 32))])
def test_jpeg_round_trip_within_tolerance(tmp_path, axes, shape):
    data = smooth(shape, "uint8")
    image = io.Image(data, axes, {"Y": 0.5, "X": 0.4}, ["r", "g", "b"] if "C" in axes else None)
    read = io.read(io.write(tmp_path / "plane.jpg", image))
    assert read.axes == axes and read.data.dtype == np.uint8 and read.data.shape == shape
    assert np.abs(read.data.astype(int) - data).max() <= 6  # lossy, quality 95, no chroma subsampling
    assert read.spacing_um == image.spacing_um and read.channel_names == image.channel_names


def test_dask_image_streams_to_ome_zarr(tmp_path):
    data = da.from_array(make_image("CZYX", "float32").data, chunks=(1, 2, 3, 7))
    path = io.write(tmp_path / "big.ome.zarr", io.Image(data, "CZYX", SPACING))
    array = zarr.open_group(path, mode="r")["s0"]
    assert array.chunks == (1, 2, 3, 7)
    np.testing.assert_array_equal(array[...], data.compute())
    window = zarr.open_group(path).attrs["ome"]["omero"]["channels"][1]["window"]
    assert window["min"] == pytest.approx(float(data[1].min())) and window["max"] == pytest.approx(float(data[1].max()))


def test_create_ome_zarr_is_filled_chunk_by_chunk(tmp_path):
    path = tmp_path / "out.ome.zarr"
    array = io.create_ome_zarr(path, (2, 4, 8, 8), "float32", "CZYX", (1.5, 0.2, 0.2), chunks=(1, 2, 4, 4),
                               channel_names=["a", "b"])
    expected = np.arange(2 * 4 * 8 * 8, dtype=np.float32).reshape(2, 4, 8, 8)
    for y in (0, 4):
        array[:, :, y : y + 4] = expected[:, :, y : y + 4]
    image = io.read(path)
    np.testing.assert_array_equal(image.data, expected)
    assert (image.axes, image.spacing_zyx, image.channel_names) == ("CZYX", (1.5, 0.2, 0.2), ["a", "b"])


def test_create_ome_zarr_refuses_non_ngff_axes(tmp_path):
    with pytest.raises(InputError, match=r"out\.ome\.zarr.*TCZYX order"):
        io.create_ome_zarr(tmp_path / "out.ome.zarr", (4, 8, 2), "uint8", "YXC", None)


# ---------------------------------------------------------------------------------------------------------------
# the metadata seen by other readers


def test_ome_tiff_metadata_seen_by_tifffile(tmp_path):
    path = io.write(tmp_path / "a.ome.tif", make_image("CZYX", "uint16"))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and tif.series[0].axes == "CZYX"
        pixels = next(e for e in ElementTree.fromstring(tif.ome_metadata).iter() if e.tag.endswith("Pixels"))
    assert [float(pixels.get(f"PhysicalSize{a}")) for a in "ZYX"] == [0.3, 0.065, 0.07]
    assert {pixels.get(f"PhysicalSize{a}Unit") for a in "ZYX"} == {"µm"}
    assert [c.get("Name") for c in pixels if c.tag.endswith("Channel")] == ["ch0", "ch1"]


def test_imagej_metadata_seen_by_tifffile(tmp_path):
    path = io.write(tmp_path / "a.tif", make_image("CZYX", "uint16"))
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        x_resolution = tif.pages.first.tags["XResolution"].value
        y_resolution = tif.pages.first.tags["YResolution"].value
        assert tif.series[0].axes == "ZCYX"  # ImageJ hyperstack order
    assert meta["spacing"] == 0.3 and meta["unit"] == "micron"
    assert (meta["channels"], meta["slices"], meta["hyperstack"]) == (2, 3, True)
    assert x_resolution[1] / x_resolution[0] == pytest.approx(0.07, rel=1e-6)
    assert y_resolution[1] / y_resolution[0] == pytest.approx(0.065, rel=1e-6)
    assert meta["Labels"] == ["ch0", "ch1"] * 3


def test_imagej_unsupported_dtype_falls_back_to_ome_tiff(tmp_path):
    image = make_image("ZYX", "float64")
    with pytest.warns(UserWarning, match="ImageJ cannot hold float64"):
        path = io.write(tmp_path / "a.tif", image)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and not tif.is_imagej
    assert_same(io.read(path), image)


def test_ome_zarr_metadata_seen_by_zarr(tmp_path):
    path = io.write(tmp_path / "a.ome.zarr", make_image("TCZYX", "uint16"))
    ome = zarr.open_group(path, mode="r").attrs["ome"]
    assert ome["version"] == "0.5"
    multiscale = ome["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == list("tczyx")
    assert [a.get("unit") for a in multiscale["axes"]] == [None, None, "micrometer", "micrometer", "micrometer"]
    dataset = multiscale["datasets"][0]
    assert dataset["coordinateTransformations"][0] == {"type": "scale", "scale": [1.0, 1.0, 0.3, 0.065, 0.07]}
    assert [c["label"] for c in ome["omero"]["channels"]] == ["ch0", "ch1"]
    assert zarr.open_group(path, mode="r")[dataset["path"]].shape == (2, 2, 3, 6, 7)


def test_png_and_jpeg_carry_density_and_exact_spacing(tmp_path):
    data = smooth((20, 30), "uint8")
    image = io.Image(data, "YX", {"Y": 0.8, "X": 0.5})
    with PILImage.open(io.write(tmp_path / "a.png", image)) as png:
        assert png.info["dpi"] == pytest.approx((25400 / 0.5, 25400 / 0.8), rel=1e-6)
        assert json.loads(png.info["widefield3d"])["spacing_um"] == {"Y": 0.8, "X": 0.5}
    with PILImage.open(io.write(tmp_path / "a.jpg", image)) as jpeg:
        assert jpeg.info["dpi"] == (50800, 31750)
        assert json.loads(jpeg.info["comment"])["spacing_um"] == {"Y": 0.8, "X": 0.5}


def test_npy_sidecar(tmp_path):
    path = io.write(tmp_path / "a.npy", make_image("CZYX", "float32"))
    sidecar = json.loads((tmp_path / "a.npy.json").read_text())
    assert (sidecar["axes"], sidecar["spacing_um"], sidecar["channel_names"]) == ("CZYX", SPACING, ["ch0", "ch1"])
    assert np.load(path).shape == (2, 3, 6, 7)


# ---------------------------------------------------------------------------------------------------------------
# files written by other tools


def test_plain_tiffs_are_guessed_from_their_shape(tmp_path):
    plane = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    tifffile.imwrite(tmp_path / "p2.tif", plane, metadata=None)
    tifffile.imwrite(tmp_path / "p3.tif", np.stack([plane] * 5), metadata=None)
    rgb = np.stack([plane.astype(np.uint8)] * 3, axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", metadata=None)
    assert (io.read(tmp_path / "p2.tif").axes, io.read(tmp_path / "p3.tif").axes) == ("YX", "ZYX")
    image = io.read(tmp_path / "rgb.tif")
    assert image.axes == "CYX" and image.data.shape == (3, 20, 30)
    np.testing.assert_array_equal(image.data, np.moveaxis(rgb, -1, 0))
    assert image.spacing_um == {"Y": 1.0, "X": 1.0} and image.channel_names is None


def test_axes_argument_overrides_the_guess(tmp_path):
    stack = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    tifffile.imwrite(tmp_path / "p.tif", stack, photometric="minisblack", metadata=None)
    assert io.read(tmp_path / "p.tif").axes == "ZYX"
    image = io.read(tmp_path / "p.tif", axes="CYX")
    assert image.axes == "CYX" and image.data.shape == (3, 4, 5)
    with pytest.raises(InputError, match=r"p\.tif \(axes argument\): axes 'YX' name 2 dimensions"):
        io.read(tmp_path / "p.tif", axes="YX")


def test_plain_tiff_centimetre_resolution_gives_spacing(tmp_path):
    tifffile.imwrite(tmp_path / "p.tif", np.zeros((4, 5), np.uint8), resolution=(2e4, 4e4),
                     resolutionunit="CENTIMETER")
    assert io.read(tmp_path / "p.tif").spacing_um == {"Y": 0.25, "X": 0.5}


# ---------------------------------------------------------------------------------------------------------------
# the Image


def test_as_axes_inserts_removes_and_reorders():
    image = io.Image(np.arange(24).reshape(2, 3, 4), "ZYX", (2.0, 0.5, 0.25))
    czyx = image.as_axes("CZYX")
    assert czyx.data.shape == (1, 2, 3, 4) and czyx.spacing_zyx == (2.0, 0.5, 0.25)
    xyz = czyx.as_axes("XYZ")
    assert xyz.data.shape == (4, 3, 2)
    np.testing.assert_array_equal(xyz.data, image.data.transpose(2, 1, 0))
    assert image.transpose_to("YXZ").data.shape == (3, 4, 2)
    with pytest.raises(InputError, match="cannot drop axis Z of size 2"):
        image.as_axes("YX")
    with pytest.raises(InputError, match="not a reordering"):
        image.transpose_to("CZYX")


def test_spacing_defaults_and_tuple_form():
    image = io.Image(np.zeros((2, 3, 4)), "ZYX", {"X": 0.1})
    assert image.spacing_um == {"Z": 1.0, "Y": 1.0, "X": 0.1} and image.spacing_zyx == (1.0, 1.0, 0.1)
    assert io.Image(np.zeros((3, 4)), "YX", (5.0, 0.2, 0.1)).spacing_um == {"Y": 0.2, "X": 0.1}
    with pytest.raises(InputError, match="positive finite"):
        io.Image(np.zeros((3, 4)), "YX", {"X": -1.0})


@pytest.mark.parametrize(
    "axes,names,message",
    [("ZZX", None, "repeat 'Z'"), ("QYX", None, "contain 'Q'"), ("YX", None, "name 2 dimensions but the data have 3"),
     ("CYX", ["a"], "1 channel names for 2 channel"), ("", None, "non-empty string")],
)
def test_contradictory_axes_are_refused(axes, names, message):
    with pytest.raises(InputError, match=message):
        io.Image(np.zeros((2, 3, 4)), axes, None, names)


# ---------------------------------------------------------------------------------------------------------------
# bad inputs


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tif: file not found"):
        io.read(tmp_path / "nope.tif")


def test_unknown_extension(tmp_path):
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(InputError, match=r"a\.bmp: unknown image extension '\.bmp'; supported: .*\.ome\.zarr"):
        io.read(tmp_path / "a.bmp")
    with pytest.raises(InputError, match=r"b\.gif: unknown image extension"):
        io.write(tmp_path / "b.gif", io.Image(np.zeros((2, 2)), "YX"))


@pytest.mark.parametrize("ext", [".tif", ".ome.tif", ".png", ".jpg", ".npy"])
@pytest.mark.parametrize("damage", ["junk", "truncated"])
def test_corrupt_or_truncated_file(tmp_path, ext, damage):
    data = smooth((40, 50), "uint8")
    good = io.write(tmp_path / f"good{ext}", io.Image(np.stack([data] * 3) if "tif" in ext else data,
                                                      "ZYX" if "tif" in ext else "YX"))
    content = good.read_bytes()
    bad = tmp_path / f"bad{ext}"
    bad.write_bytes(b"this is not an image" if damage == "junk" else content[: len(content) * 3 // 4])
    with pytest.raises(InputError, match=rf"bad{ext}: corrupt or truncated") as caught:
        io.read(bad)
    assert "\n" not in str(caught.value)


def test_corrupt_ome_zarr(tmp_path):
    path = io.write(tmp_path / "a.ome.zarr", make_image("ZYX", "uint16"))
    for chunk in (p for p in (path / "s0").rglob("*") if p.is_file() and p.name != "zarr.json"):
        chunk.write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"a\.ome\.zarr: corrupt or truncated OME-Zarr file") as caught:
        io.read(path)
    assert caught.value.__cause__ is not None
    (tmp_path / "plain.zarr").mkdir()
    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(InputError, match=r"plain\.zarr: not an OME-Zarr image"):
        io.read(tmp_path / "plain.zarr")


@pytest.mark.parametrize("shape,message",
                         [((), "got 0-D"), ((1, 1, 1, 1, 2, 2), "expected a 1-D to 5-D array, got 6-D")])
def test_wrong_number_of_dimensions(tmp_path, shape, message):
    np.save(tmp_path / "a.npy", np.ones(shape, np.float32))
    with pytest.raises(InputError, match=rf"a\.npy: .*{message}"):
        io.read(tmp_path / "a.npy")


def test_require_ndim_names_the_argument():
    io.require_ndim(io.Image(np.zeros((3, 4)), "YX"), {2, 3}, "image")
    with pytest.raises(InputError, match=r"stack: expected a 2-D or 3-D array, got 4-D with shape \(1, 2, 3, 4\)"):
        io.require_ndim(np.zeros((1, 2, 3, 4)), {2, 3}, "stack")


def test_nan_and_inf(tmp_path):
    data = np.ones((4, 5), np.float32)
    data[1, 2], data[3, 3] = np.nan, np.inf
    np.save(tmp_path / "a.npy", data)
    with pytest.raises(InputError, match=r"a\.npy: contains 2 NaN/Inf values"):
        io.read(tmp_path / "a.npy")
    assert io.read(tmp_path / "a.npy", lazy=True).data.shape == (4, 5)  # lazy reads do not look at values
    with pytest.raises(InputError, match=r"b\.tif: contains 2 NaN/Inf values"):
        io.write(tmp_path / "b.tif", io.Image(data, "YX"))
    assert not (tmp_path / "b.tif").exists()


def test_nan_in_a_late_dask_chunk_leaves_no_zarr(tmp_path):
    data = np.zeros((4, 8, 8), np.float32)
    data[3, 7, 7] = np.nan
    with pytest.raises(InputError, match=r"c\.ome\.zarr: contains NaN/Inf values"):
        io.write(tmp_path / "c.ome.zarr", io.Image(da.from_array(data, chunks=(1, 8, 8)), "ZYX"))
    assert os.listdir(tmp_path) == []


def test_empty_array(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((0, 5), np.uint8))
    with pytest.raises(InputError, match=r"a\.npy: empty array \(shape \(0, 5\)"):
        io.read(tmp_path / "a.npy")
    with pytest.raises(InputError, match=r"b\.ome\.zarr: empty array"):
        io.write(tmp_path / "b.ome.zarr", io.Image(np.zeros((3, 0)), "YX"))


@pytest.mark.parametrize("dtype,message", [(object, "dtype object is not a real number"),
                                           ("U3", "dtype <U3 is not a real number"),
                                           (np.complex64, "dtype complex64 is not a real number"),
                                           (bool, "dtype bool is not supported")])
def test_non_numeric_dtype(tmp_path, dtype, message):
    with pytest.raises(InputError, match=rf"a\.tif: {message}"):
        io.write(tmp_path / "a.tif", io.Image(np.zeros((2, 3), dtype=dtype), "YX"))
    with pytest.raises(InputError, match=rf"weights: {message}"):
        io.check_array(np.zeros((2, 3), dtype=dtype), "weights")
    assert not (tmp_path / "a.tif").exists()


def test_formats_refuse_data_they_cannot_hold(tmp_path):
    with pytest.raises(InputError, match=r"a\.png: PNG holds one plane.*'ZYX' with shape \(2, 3, 4\)"):
        io.write(tmp_path / "a.png", io.Image(np.zeros((2, 3, 4), np.uint8), "ZYX"))
    with pytest.raises(InputError, match=r"a\.jpg: JPEG holds one plane.*dtype uint16"):
        io.write(tmp_path / "a.jpg", io.Image(np.zeros((3, 4), np.uint16), "YX"))
    with pytest.raises(InputError, match=r"a\.tif: an image needs Y and X axes"):
        io.write(tmp_path / "a.tif", io.Image(np.zeros((3, 4)), "ZX"))


# ---------------------------------------------------------------------------------------------------------------
# atomic output


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_output_leaves_nothing_when_the_body_raises(tmp_path, error):
    with pytest.raises(error), io.atomic_output(tmp_path / "out.bin") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith("out.bin")
        tmp.write_bytes(b"partial")
        raise error()
    assert os.listdir(tmp_path) == []


def test_atomic_output_zarr_directory_left_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), io.atomic_output(tmp_path / "out.ome.zarr") as tmp:
        io.create_ome_zarr(tmp, (4, 4), "uint8", "YX", None)[...] = 7
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_atomic_output_keeps_the_old_file_on_failure_and_replaces_it_on_success(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("old")
    with pytest.raises(ValueError), io.atomic_output(target) as tmp:
        tmp.write_text("new but broken")
        raise ValueError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["report.txt"]
    with io.atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["report.txt"]


def test_write_failure_keeps_the_old_image(tmp_path):
    old = make_image("ZYX", "uint16")
    path = io.write(tmp_path / "a.ome.zarr", old)
    broken = np.zeros((2, 3, 4), np.float32)
    broken[1, 1, 1] = np.inf
    with pytest.raises(InputError):
        io.write(path, io.Image(da.from_array(broken, chunks=1), "ZYX"))
    assert_same(io.read(path), old)
    assert os.listdir(tmp_path) == ["a.ome.zarr"]


def test_zarr_directory_is_replaced_whole(tmp_path):
    path = io.write(tmp_path / "a.zarr", make_image("TCZYX", "uint8"))
    new = make_image("YX", "float32", seed=1)
    io.write(path, new)
    assert_same(io.read(path), new)
    assert os.listdir(tmp_path) == ["a.zarr"]
    assert not (path / "s0" / "c" / "1").exists()  # no chunk of the old 5-D array is left inside


def test_atomic_output_body_that_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"), io.atomic_output(tmp_path / "x.txt"):
        pass
    assert os.listdir(tmp_path) == []


def test_half_written_ome_zarr_is_refused(tmp_path):
    """Zarr reads a chunk that is not stored as zeros; widefield3d's files store every chunk, so one missing is an
    interrupted write or copy (issue 14, item 5)."""
    data = np.zeros((4, 300, 300), np.float32)  # chunks of zeros are stored too
    data[0] = 1
    path = io.write(tmp_path / "a.ome.zarr", io.Image(data, "ZYX"))
    chunks = sorted(p for p in (path / "s0" / "c").rglob("*") if p.is_file())
    assert len(chunks) == 4
    np.testing.assert_array_equal(io.read(path).data, data)
    chunks[-1].unlink()
    for lazy in (False, True):
        with pytest.raises(InputError, match=r"a\.ome\.zarr: incomplete OME-Zarr \(1 of 4 chunks .* missing") as got:
            io.read(path, lazy=lazy)
        assert "\n" not in str(got.value)
    partial = io.create_ome_zarr(tmp_path / "b.ome.zarr", (2, 8, 8), "uint16", "ZYX", None, chunks=(1, 8, 8))
    partial[0] = 7
    with pytest.raises(InputError, match=r"b\.ome\.zarr: incomplete OME-Zarr \(1 of 2 chunks"):
        io.read(tmp_path / "b.ome.zarr")
    partial[1] = 0
    assert io.read(tmp_path / "b.ome.zarr").data.sum() == 7 * 64


def test_other_writers_missing_chunks_warn(tmp_path):
    """Another writer may leave out chunks of fill value (legal zarr): read, with a warning that says so."""
    path = io.write(tmp_path / "a.ome.zarr", io.Image(np.ones((2, 8, 8), np.uint8), "ZYX"), chunks=(1, 8, 8))
    group = zarr.open_group(path, mode="r+")
    del group.attrs["widefield3d"]
    next(p for p in (path / "s0" / "c").rglob("*") if p.is_file()).unlink()
    with pytest.warns(UserWarning, match=r"1 of 2 chunks of 's0' are missing and read as the fill value 0"):
        image = io.read(path)
    assert image.data.sum() == 64


def test_ome_xml_describing_fewer_planes_than_the_file_holds_is_refused(tmp_path):
    """OME SizeZ=5 over 13 pages used to give 5 planes without a word (issue 14, item 6)."""
    data = np.random.default_rng(0).random((13, 16, 16), dtype=np.float32)
    path = io.write(tmp_path / "z.ome.tif", io.Image(data, "ZYX"))
    assert io.read(path).data.shape == (13, 16, 16)
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    tifffile.tiffcomment(path, xml.replace('SizeZ="13"', 'SizeZ="5"').encode("utf-8"))
    with pytest.raises(InputError, match=r"z\.ome\.tif: contradictory OME-TIFF metadata \(the OME-XML describes 5 "
                                         r"planes, the file holds 13\)"):
        io.read(path)


def test_ome_axes_win_over_a_contradicting_record_with_a_warning(tmp_path):
    """docs/io.md: the standard fields win where another program changed them; the record no longer overrides
    the OME axes silently (issue 14, item 6)."""
    path = io.write(tmp_path / "c.ome.tif", io.Image(np.ones((3, 8, 8), np.float32), "CYX"))
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    assert io.read(path).axes == "CYX"
    tifffile.tiffcomment(path, xml.replace('SizeC="3"', 'SizeC="1"').replace('SizeZ="1"', 'SizeZ="3"')
                         .encode("utf-8"))
    with pytest.warns(UserWarning, match="record says axes 'CYX' but the file's metadata say 'ZYX'; using the file's"):
        image = io.read(path)
    assert image.axes == "ZYX" and image.data.shape == (3, 8, 8)


def test_killed_writers_temporaries_are_removed_by_the_next_write(tmp_path):
    """SIGKILL leaves the hidden temporary; the next write to the folder removes it (issue 14, item 7)."""
    import signal
    import subprocess
    import sys

    script = ("import os, signal, sys\nfrom widefield3d import io\n"
              "with io.atomic_output(sys.argv[1]) as tmp:\n"
              "    tmp.write_bytes(b'half of a file')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.ome.tif")], timeout=120)
    assert done.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".tmp-") and left[0].endswith("-a.ome.tif")
    io.write(tmp_path / "b.ome.tif", io.Image(np.ones((4, 4), np.uint8), "YX"))
    assert [p.name for p in tmp_path.iterdir()] == ["b.ome.tif"]


def test_stale_temporaries_only_ours_and_only_of_ended_processes(tmp_path):
    gone = 2**22 + 7  # above any pid_max: no such process
    host = io.atomic._HOST
    live = tmp_path / f".tmp-0123abcd.{host}.{os.getpid()}-live.tif"  # a write in progress
    stale_file = tmp_path / f".tmp-0123abcd.{host}.{gone}-a.tif"
    stale_dir = tmp_path / f".tmp-89abcdef.{host}.{gone}-b.ome.zarr"
    other_host = tmp_path / f".tmp-0123abcd.000000.{gone}-c.tif"  # perhaps alive on another machine
    not_ours = tmp_path / ".tmp-notes.txt"
    old_kept = tmp_path / f".old-0123abcd.{host}.{gone}-d.ome.zarr"  # its output was not renamed in: restore it
    old_done = tmp_path / f".old-0123abcd.{host}.{gone}-e.ome.zarr"  # the new output is in place: delete it
    for path in (live, stale_file, other_host, not_ours):
        path.write_bytes(b"x")
    for path in (stale_dir / "s0", old_kept / "s0", old_done, tmp_path / "e.ome.zarr"):
        path.mkdir(parents=True)
    cleaned = io.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in cleaned) == sorted(p.name for p in (stale_file, stale_dir, old_kept, old_done))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, other_host.name, not_ours.name, "d.ome.zarr", "e.ome.zarr"])
    assert (tmp_path / "d.ome.zarr" / "s0").is_dir()


def test_write_set_main_file_last(tmp_path, monkeypatch):
    """An interrupted set lacks its main file, so it cannot pass for a complete one (issue 14, item 7)."""
    image = io.Image(np.ones((2, 4, 4), np.float32), "ZYX")
    main, clean = tmp_path / "a.ome.tif", tmp_path / "a_clean.ome.tif"
    assert io.write_set([(main, image), (clean, image)]) == [main, clean]
    assert main.exists() and clean.exists()
    real_write = io.write

    def interrupted(path, img, **kwargs):
        if path == main:
            raise KeyboardInterrupt
        return real_write(path, img, **kwargs)

    monkeypatch.setattr(io, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.write_set([(main, image), (clean, image)])
    assert not main.exists() and clean.exists()
    monkeypatch.setattr(io, "write", real_write)
    with pytest.raises(InputError, match="NaN"):  # bad data: refused before the old set is touched
        io.write_set([(main, image), (clean, io.Image(np.full((2, 4, 4), np.nan, np.float32), "ZYX"))])
    assert clean.exists()


def test_missing_or_invalid_pixel_size_is_said_once(tmp_path):
    """Files without a pixel size used to be taken as 1 µm silently (issue 14, should fix)."""
    np.save(tmp_path / "raw.npy", np.ones((4, 6, 8), np.float32))
    with pytest.warns(UserWarning, match=r"raw\.npy: no pixel size for Z, Y, X in the file; taken as 1 µm"):
        assert io.read(tmp_path / "raw.npy").spacing_zyx == (1.0, 1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.read(tmp_path / "raw.npy", lazy=True)  # said once per file
        io.read(io.write(tmp_path / "ok.npy", io.Image(np.ones((2, 3)), "YX")))  # our files always carry it
    path = io.write(tmp_path / "nan.ome.tif", io.Image(np.ones((4, 4), np.float32), "YX", {"Y": 0.5, "X": 0.5}))
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    tifffile.tiffcomment(path, xml.replace('PhysicalSizeX="0.5"', 'PhysicalSizeX="NaN"').encode("utf-8"))
    with pytest.warns(UserWarning, match=r"nan\.ome\.tif: ignoring the pixel size X = nan"):
        image = io.read(path)
    assert image.spacing_um == {"Y": 0.5, "X": 0.5}  # the exact record still holds it


@pytest.mark.parametrize("name", ["a.ome.tif", "a.tif"])
def test_64_bit_integers_to_ome_tiff_are_one_line(tmp_path, name):
    with pytest.raises(InputError, match=r"a\.(ome\.)?tif: OME-TIFF cannot hold uint64"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        io.write(tmp_path / name, io.Image(np.ones((4, 4), np.uint64), "YX"))
    assert not list(tmp_path.iterdir())
    io.write(tmp_path / "a.ome.zarr", io.Image(np.ones((4, 4), np.uint64), "YX"))


@pytest.mark.parametrize("name", ["a.ome.tif", "a.tif", "a.ome.zarr", "a.npy"])
def test_images_larger_than_memory_are_refused_before_loading(tmp_path, monkeypatch, name):
    import widefield3d.memory

    path = io.write(tmp_path / name, io.Image(np.ones((4, 64, 64), np.float32), "ZYX"))
    monkeypatch.setattr(widefield3d.memory, "available_memory", lambda: 2**15)
    with pytest.raises(InputError, match=rf"{name}: too large to load \(6\.1e-05 GiB, 3\.05e-05 GiB"):
        io.read(path)
    assert io.read(path, lazy=True).data.shape == (4, 64, 64)


@pytest.mark.parametrize("old, new, message", [
    ('SizeZ="3"', 'SizeZ="1288490186"', r"describes 1288490186 planes, the file holds 3"),  # tifffile: 10 GB list
    ('SizeX="10"', 'SizeX="4294967297"', r"planes of 8 x 4294967297 pixels, the file holds 8 x 10"),
])
def test_ome_xml_claiming_huge_sizes_is_refused_before_tifffile_lists_them(tmp_path, old, new, message):
    """Found by tests/test_io_fuzz.py: both made tifffile allocate gigabytes (MemoryError)."""
    path = io.write(tmp_path / "a.ome.tif", io.Image(np.ones((3, 8, 10), np.uint16), "ZYX"))
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    tifffile.tiffcomment(path, xml.replace(old, new).encode("utf-8"))
    with pytest.raises(InputError, match=rf"a\.ome\.tif: .*{message}"):
        io.read(path)


def test_damaged_npy_header_is_one_line(tmp_path):
    """Found by tests/test_io_fuzz.py: numpy's header parser raised tokenize.TokenError."""
    path = io.write(tmp_path / "a.npy", io.Image(np.ones((3, 4), np.float32), "YX"))
    content = bytearray(path.read_bytes())
    content[content.index(b"}")] = ord("(")
    path.write_bytes(bytes(content))
    with pytest.raises(InputError, match=r"a\.npy: corrupt or truncated NPY file"):
        io.read(path)


def test_unreadable_file_is_not_called_corrupt(tmp_path, monkeypatch):
    path = io.write(tmp_path / "a.ome.tif", io.Image(np.ones((4, 4), np.uint8), "YX"))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tifffile.TiffFile, "__init__", refuse)
    with pytest.raises(InputError, match=r"a\.ome\.tif: cannot read it \(Permission denied\)$"):
        io.read(path)


def test_failed_dask_write_leaves_no_temporary_behind(tmp_path):
    """A NaN block stops the dask write while other chunk writers still run; they used to recreate part of the
    deleted temporary (9 runs in 40 left one). The write now waits for them before cleaning up."""
    broken = np.zeros((2, 3, 4), np.float32)
    broken[1, 1, 1] = np.inf
    for i in range(20):
        path = io.write(tmp_path / str(i) / "a.ome.zarr", io.Image(np.ones((2, 3, 4), np.uint16), "ZYX"))
        with pytest.raises(InputError, match="NaN/Inf"):
            io.write(path, io.Image(da.from_array(broken, chunks=1), "ZYX"))
        assert os.listdir(tmp_path / str(i)) == ["a.ome.zarr"]
