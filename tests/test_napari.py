"""The napari plugin: manifest, sample data, the four widgets (shapes, scale in µm, results), reader/writer.

GUI tests need a display: ``xvfb-run -a`` (``make test`` uses it when installed). Set
``WIDEFIELD3D_WRITE_DOCS_FIGURES=1`` to rewrite ``docs/napari_refocus.png`` from the screenshot test.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="the napari plugin needs the extra: pip install 'widefield3d[napari]'")
pytest.importorskip("pytestqt", reason="the napari GUI tests need pytest-qt: pip install 'widefield3d[napari]'")

import npe2  # noqa: E402

from widefield3d import io  # noqa: E402
from widefield3d.methods.deepz import refocus as refocus_api  # noqa: E402
from widefield3d.napari import sample_data  # noqa: E402
from widefield3d.napari.files import read_layers  # noqa: E402
from widefield3d.napari.layers import image_to_layer, layer_image, layer_to_image  # noqa: E402

PLUGIN = "widefield3d"
DOCS_PNG = Path(__file__).parents[1] / "docs" / "napari_refocus.png"
WORM_PIXEL_UM = 0.325  # the deepz-20x075 microscope preset's camera pixel
NO_DISPLAY = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
needs_display = pytest.mark.skipif(
    NO_DISPLAY, reason="no display for Qt: run the GUI tests under `xvfb-run -a` (Debian package xvfb)")
"""Marks a GUI test: skipped at collection, before any fixture starts Qt (which aborts the process without a
display; a skip inside a fixture comes too late, as pytest-qt may have created its QApplication first)."""
TIMEOUT_MS = 240_000  # generous: CI machines may be slow and busy


@pytest.fixture(scope="module")
def worm_layers():
    return sample_data.worm()


@pytest.fixture
def viewer(make_napari_viewer):
    """A napari viewer (pytest-qt's ``make_napari_viewer``); tests using it are marked :data:`needs_display`."""
    return make_napari_viewer()


def _dock(viewer, name: str):
    """The plugin's widget ``name`` docked as napari opens it from the Plugins menu (through the manifest)."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def _run(widget, qtbot) -> str:
    """Run the widget, wait for its worker, return the status line."""
    widget.run()
    assert not widget.run_button.enabled, widget.status.value  # started (a bad setting would not disable it)
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=TIMEOUT_MS)
    assert not widget.status.value.startswith("error"), widget.status.value
    return widget.status.value


def test_manifest_validates():
    manifest = npe2.PluginManifest.from_distribution(PLUGIN)
    manifest.validate_imports()  # every python_name resolves
    contributions = manifest.contributions
    assert len(contributions.widgets) == 4 and len(contributions.sample_data) == 4
    assert contributions.readers[0].filename_patterns == ["*.ome.tif", "*.ome.tiff"]
    assert ".ome.zarr" in contributions.writers[0].filename_extensions
    assert not manifest.display_name.endswith(")")


def test_sample_data_have_physical_scale(worm_layers):
    (stack, stack_kw, _), (plane, plane_kw, _) = worm_layers
    assert stack.shape == (21, 96, 96) and plane.shape == (96, 96)
    assert stack_kw["scale"] == pytest.approx([0.5, WORM_PIXEL_UM, WORM_PIXEL_UM])
    assert stack_kw["translate"][0] == -5.0  # planes from -5 to +5 µm around the wide-field plane
    low, low_kw, _ = sample_data.cytology()[1]
    assert low.shape == (32, 32, 3) and low.dtype == np.uint8 and low_kw["rgb"]


@needs_display
def test_refocus_widget_dpm_layer_equals_plane(viewer, qtbot, worm_layers):
    """A constant DPM layer of 2 µm refocuses as the plane z = 2 µm; a tilted plane keeps the image's shape."""
    data, kwargs, _ = worm_layers[1]
    layer = viewer.add_image(data, **kwargs)
    viewer.add_image(np.full(data.shape, 2.0, np.float32), name="dpm 2 um")
    widget = _dock(viewer, "Refocus - Deep-Z")
    widget.image.value = layer
    widget.z.value = 2.0
    _run(widget, qtbot)
    plane = viewer.layers[-1]
    assert plane.data.shape == data.shape and tuple(plane.scale) == pytest.approx((WORM_PIXEL_UM,) * 2)
    widget.z.value = 0.0
    widget.surface.value = "DPM layer"
    widget.dpm.value = viewer.layers["dpm 2 um"]
    _run(widget, qtbot)
    np.testing.assert_allclose(viewer.layers[-1].data, plane.data, rtol=1e-4, atol=1e-3 * plane.data.max())
    widget.surface.value = "tilted plane"
    widget.tilt.value = 10.0
    _run(widget, qtbot)
    tilted = viewer.layers[-1]
    assert tilted.name.endswith("(tilted plane)") and tilted.data.shape == data.shape
    assert np.abs(tilted.data - plane.data).mean() > 1e-3 * plane.data.mean()
    widget.surface_via.value = "flat planes"  # the same tilt through flat planes, interpolated per pixel
    _run(widget, qtbot)
    via_planes = viewer.layers[-1].data
    assert via_planes.shape == data.shape and not np.allclose(via_planes, tilted.data)
    np.testing.assert_allclose(via_planes, refocus_api(layer_to_image(layer), model=widget.model.value,
                                                       tilt_deg=10.0, surface_via="planes", progress=False).data,
                               rtol=1e-4, atol=1e-3 * plane.data.max())
    widget.surface_via.value = "DPM (paper)"
    widget.calibrated.value = True  # through the shipped model's depth calibration
    _run(widget, qtbot)
    assert viewer.layers[-1].name.endswith("(tilted plane), calibrated")
    np.testing.assert_allclose(viewer.layers[-1].data, refocus_api(layer_to_image(layer), model=widget.model.value,
                                                                   tilt_deg=10.0, calibrated=True,
                                                                   progress=False).data,
                               rtol=1e-4, atol=1e-3 * plane.data.max())


@needs_display
def test_refocus_virtual_stack_screenshot(viewer, qtbot):
    """Worm sample -> virtual stack -2..+2 µm in 1 µm steps: 5 planes with scale (1, 0.325, 0.325) µm starting
    at z = -2 µm; the viewer (sample data, widget, result) is drawn into docs/napari_refocus.png on request."""
    viewer.open_sample(PLUGIN, "worm")
    widget = _dock(viewer, "Refocus - Deep-Z")
    widget.image.value = viewer.layers["worm plane"]
    widget.stack.value = True
    widget.z_from.value, widget.z_to.value, widget.z_step.value = -2.0, 2.0, 1.0
    assert _run(widget, qtbot).startswith("5 plane(s)")
    stack = viewer.layers[-1]
    assert stack.data.shape == (5, 96, 96)
    assert tuple(stack.scale) == pytest.approx((1.0, WORM_PIXEL_UM, WORM_PIXEL_UM))
    assert tuple(stack.translate) == pytest.approx((-2.0, 0.0, 0.0))
    # the plane at z = +1 µm of the stack is the scanned stack's plane there, better than the input plane is
    truth = viewer.layers["worm scanned stack"].data[12].astype(np.float32)  # -5 + 12 * 0.5 = +1 µm
    source = viewer.layers["worm plane"].data.astype(np.float32)
    assert np.corrcoef(stack.data[3].ravel(), truth.ravel())[0, 1] > np.corrcoef(source.ravel(), truth.ravel())[0, 1]
    viewer.window.resize(1400, 760)
    viewer.reset_view()
    viewer.dims.set_point(0, 1.0)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    assert shot.ndim == 3 and shot.shape[2] == 4 and shot[..., :3].std() > 5  # drawn, not blank
    if os.environ.get("WIDEFIELD3D_WRITE_DOCS_FIGURES") == "1":
        from PIL import Image

        Image.fromarray(shot).save(DOCS_PNG)


@needs_display
def test_multifocal_widget_rgb_planes(viewer, qtbot):
    data, kwargs, _ = sample_data.cytology()[1]  # 32 x 32 RGB, 0.486 µm pixels
    viewer.add_image(data, **kwargs)
    widget = _dock(viewer, "Multi-focal - MFPINet")
    _run(widget, qtbot)
    planes = viewer.layers[-1]
    assert planes.rgb and planes.data.shape == (11, 64, 64, 3) and planes.data.dtype == np.uint8
    dz = planes.scale[0]
    assert tuple(planes.scale[1:]) == pytest.approx((kwargs["scale"][0] / 2,) * 2)
    assert planes.translate[0] == pytest.approx(-5 * dz)  # 11 planes centred on the input plane


@needs_display
def test_confocal_widget_keeps_stack_geometry(viewer, qtbot):
    data, kwargs, _ = sample_data.tissue()[1]  # 24 planes 0.5 µm apart, 64 x 64
    viewer.add_image(data, **kwargs)
    widget = _dock(viewer, "Confocal-like - WFCON-Net")
    _run(widget, qtbot)
    out = viewer.layers[-1]
    assert out.data.shape == data.shape and tuple(out.scale) == pytest.approx(kwargs["scale"])
    assert 0.0 <= out.data.min() and out.data.max() <= 1.0 and out.data.std() > 0.01


@needs_display
def test_reconstruct_widget_progress_and_stop(viewer, qtbot):
    """50 iterative steps fill the progress bar and give a volume of the stack's shape and scale; Stop ends a
    100,000-step run after a few steps with the volume reached so far. (DIP runs the same loop; one of its steps
    costs seconds of CPU even on this stack, so only its settings are checked here.)"""
    data, kwargs, _ = sample_data.brightfield()[1]  # 11 x 32 x 32, (1, 0.92, 0.92) µm
    layer = viewer.add_image(data, **kwargs)
    widget = _dock(viewer, "Reconstruct - bright-field volume")
    widget.stack.value = layer
    widget.solver.value, widget.steps.value, widget.early_stop.value = "iterative", 50, False
    assert _run(widget, qtbot).startswith("done after 50 steps")
    volume = viewer.layers[-1]
    assert widget.progress.value == 50
    assert volume.data.shape == data.shape and tuple(volume.scale) == pytest.approx((1.0, 0.92, 0.92))
    assert 0.0 <= volume.data.min() and volume.data.max() <= 1.0 and volume.data.mean() < 0.99  # it absorbs

    widget.solver.value, widget.start.value = "dip", "ellipsoid-fit"
    config = widget.config((1.0, 0.92, 0.92))
    assert (config.solver, config.pretrained, config.steps, config.z_res_um) == ("dip", "ellipsoid-fit", 50, 1.0)
    assert widget.config((1.0, 1.0, 1.0)).xy_res_um == 0.92  # scale 1 = unknown: the paper's voxel width

    widget.solver.value, widget.steps.value = "iterative", 100_000
    widget.run()
    qtbot.waitUntil(lambda: widget.progress.value >= 3, timeout=TIMEOUT_MS)
    assert widget.stop_button.enabled
    widget.stop()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=TIMEOUT_MS)
    assert widget.status.value.startswith("stopped after"), widget.status.value
    steps = int(widget.status.value.split()[2])
    assert 3 <= steps < 100_000 and viewer.layers[-1].data.shape == data.shape
    assert not widget.stop_button.enabled


@needs_display
def test_widget_reports_bad_setting(viewer):
    widget = _dock(viewer, "Confocal-like - WFCON-Net")
    widget.run()  # no z-stack layer open
    assert widget.status.value == "error: z-stack: open or choose a layer first"
    assert widget.run_button.enabled


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_writer_reader_round_trip_keeps_scale(tmp_path, suffix):
    """npe2's writer and (for OME-TIFF) reader: data, scale (µm), axes and channel names survive."""
    npe2.PluginManager.instance().discover()  # as napari does at start-up (no viewer here: no display needed)
    stack = io.Image(np.random.default_rng(0).random((2, 5, 16, 12), np.float32), "CZYX", (0.5, 0.2, 0.25),
                     ["dapi", "gfp"])
    tuples = [image_to_layer(stack, "cells")]
    data, kwargs, _ = tuples[0]
    assert kwargs["channel_axis"] == 0 and kwargs["name"] == ["cells dapi", "cells gfp"]
    # one channel as a layer's state, written by the plugin's writer
    first = {**kwargs, "name": "cells dapi"}
    del first["channel_axis"]
    path = tmp_path / f"cells{suffix}"
    written = npe2.write(str(path), [(data[0], first, "image")], plugin_name=PLUGIN)
    assert written == [str(path)]
    back = io.read(path)
    assert back.axes == "ZYX" and back.spacing_zyx == pytest.approx((0.5, 0.2, 0.25))
    np.testing.assert_array_equal(back.data, data[0])
    if suffix == ".ome.tif":
        layers = npe2.read([str(path)], stack=False, plugin_name=PLUGIN)
        assert len(layers) == 1 and layers[0][1]["scale"] == pytest.approx([0.5, 0.2, 0.25])
    # the whole image with its channel names, read back by the plugin's reader
    io.write(tmp_path / "both.ome.tif", stack)
    (data2, kwargs2, _), = read_layers(str(tmp_path / "both.ome.tif"))
    assert kwargs2["name"] == ["both dapi", "both gfp"] and kwargs2["scale"] == pytest.approx([0.5, 0.2, 0.25])
    assert layer_image(data2[1], scale=kwargs2["scale"], metadata=kwargs2["metadata"]).spacing_zyx == \
        pytest.approx((0.5, 0.2, 0.25))
