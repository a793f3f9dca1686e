"""The four method widgets of the napari plugin. Each reads its layer and settings, calls the method's predict
function (:mod:`widefield3d.methods`) in a worker thread and adds the result as a new layer whose ``scale`` is its
spacing in µm (:mod:`widefield3d.napari.method_widget`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, ProgressBar, PushButton, SpinBox

from widefield3d.checks import parse_range
from widefield3d.napari.layers import image_to_layer, layer_to_image
from widefield3d.napari.method_widget import MethodWidget, Result, chosen, image_layers, models

if TYPE_CHECKING:
    import napari

SURFACES = ("plane", "tilted plane", "cylinder", "DPM layer")
"""What the Refocus widget refocuses onto (:func:`widefield3d.methods.deepz.surface_dpm`), offset by z."""
SURFACE_VIA = {"DPM (paper)": "dpm", "flat planes": "planes"}
"""How a surface is refocused onto (``surface_via`` of :func:`widefield3d.methods.deepz.refocus`)."""


def _plane(layer) -> bool:
    return layer.ndim == 2 and not layer.rgb


def _stack(layer) -> bool:
    return layer.ndim == 3 and not layer.rgb


def _yx_origin(layer) -> tuple[float, float]:
    return float(layer.translate[-2]), float(layer.translate[-1])


class Refocus(MethodWidget):
    """Deep-Z: refocus a 2D wide-field layer onto a plane z µm away (+ = deeper), a virtual z-stack from/to/step
    (µm), or a surface: a tilted plane (degrees about x or y), a cylinder (radius µm, axis along y) or a DPM layer
    (per-pixel distance, µm), each offset by z. Deep-Z+ models give confocal-like sections. "depth-calibrated"
    feeds the DPM that the model's depth calibration gives for each depth (models that have one)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self.image = image_layers(viewer, "image", _plane)
        self.model = models("deepz")
        self.z = FloatSpinBox(label="z (µm)", value=0.0, min=-500.0, max=500.0, step=0.5)
        self.stack = CheckBox(text="virtual stack", value=False)
        self.z_from = FloatSpinBox(label="from (µm)", value=-5.0, min=-500.0, max=500.0, step=0.5)
        self.z_to = FloatSpinBox(label="to (µm)", value=5.0, min=-500.0, max=500.0, step=0.5)
        self.z_step = FloatSpinBox(label="step (µm)", value=1.0, min=0.01, max=100.0, step=0.25)
        self.surface = ComboBox(label="surface", choices=SURFACES, value="plane")
        self.tilt = FloatSpinBox(label="tilt (°)", value=5.0, min=-89.0, max=89.0, step=1.0)
        self.tilt_axis = ComboBox(label="tilt axis", choices=["x", "y"], value="x")
        self.radius = FloatSpinBox(label="radius (µm)", value=500.0, min=-1e6, max=1e6, step=10.0)
        self.dpm = image_layers(viewer, "DPM layer (µm)", _plane)
        self.surface_via = ComboBox(label="surface via", choices=list(SURFACE_VIA), value="DPM (paper)")
        self.calibrated = CheckBox(text="depth-calibrated (not in the paper)", value=False)
        super().__init__(viewer, [self.image, self.model, self.surface, self.tilt, self.tilt_axis, self.radius,
                                  self.dpm, self.surface_via, self.z, self.stack, self.z_from, self.z_to, self.z_step,
                                  self.calibrated])
        self.stack.changed.connect(self._show_settings)
        self.surface.changed.connect(self._show_settings)
        self._show_settings()

    def _show_settings(self) -> None:
        stacked, kind = self.stack.value, self.surface.value
        self.z.visible = not stacked
        for box in (self.z_from, self.z_to, self.z_step):
            box.visible = stacked
        self.tilt.visible = self.tilt_axis.visible = kind == "tilted plane"
        self.radius.visible = kind == "cylinder"
        self.dpm.visible = kind == "DPM layer"
        self.surface_via.visible = kind != "plane"

    def surface_settings(self) -> dict[str, Any]:
        """The surface as keyword arguments of :func:`widefield3d.methods.deepz.refocus` (as the CLI gives them)."""
        kind, via = self.surface.value, {"surface_via": SURFACE_VIA[self.surface_via.value]}
        if kind == "tilted plane":
            return {"tilt_deg": self.tilt.value, "tilt_axis": self.tilt_axis.value, **via}
        if kind == "cylinder":
            return {"cylinder_radius_um": self.radius.value, **via}
        if kind == "DPM layer":
            return {"dpm": np.asarray(chosen(self.dpm, "DPM layer").data, np.float32), **via}
        return {}

    def distances(self) -> np.ndarray | float:
        """z (µm), or the planes of the virtual stack (from, to inclusive, step; µm)."""
        if not self.stack.value:
            return float(self.z.value)
        return parse_range(f"{self.z_from.value}:{self.z_to.value}:{self.z_step.value}", "virtual stack")

    def job(self) -> Callable[[], Result]:
        from widefield3d.methods.deepz import refocus

        layer = chosen(self.image, "image")
        image, model, z, surface = layer_to_image(layer), self.model.value, self.distances(), self.surface_settings()
        calibrated = self.calibrated.value
        planes = np.atleast_1d(z)
        name = f"{layer.name} refocused " + (f"{planes[0]:+g}..{planes[-1]:+g} µm" if np.ndim(z) else f"{z:+g} µm")
        name += f" ({self.surface.value})" if self.surface.value != "plane" else ""
        name += ", calibrated" if self.calibrated.value else ""

        def work() -> Result:
            t0 = time.perf_counter()
            result = refocus(image, z, model=model, progress=False, calibrated=calibrated, **surface)
            origin = (float(planes[0]) if np.ndim(z) else 0.0, *_yx_origin(layer))
            return ([image_to_layer(result, name, origin_um=origin)],
                    f"{len(planes)} plane(s) with {model} in {time.perf_counter() - t0:.1f} s")

        return work


class MultiFocal(MethodWidget):
    """MFPINet: all N focal planes at 2x lateral resolution from one low-resolution 2D layer (RGB or gray), as an
    N-plane stack centred on the input plane (z in µm)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self.image = image_layers(viewer, "image", lambda layer: layer.ndim == 2)
        self.model = models("mfpi")
        super().__init__(viewer, [self.image, self.model])

    def job(self) -> Callable[[], Result]:
        from widefield3d.methods.mfpi import load, multifocal

        layer = chosen(self.image, "image")
        image, name = layer_to_image(layer), self.model.value
        # an unknown pixel size (scale 1): an array, which multifocal takes to have the model's training pixel
        source = image if image.spacing_um["X"] != 1.0 else image.as_axes("CYX" if "C" in image.axes else "YX").data

        def work() -> Result:
            t0 = time.perf_counter()
            model = load(name)
            result = multifocal(source, model=model, progress=False)
            _, dy, dx = result.spacing_zyx
            y0, x0 = _yx_origin(layer)  # the first 2x pixel's centre lies half its size before the input pixel's
            origin = (float(model.z_offsets_um[0]), y0 - dy / 2, x0 - dx / 2)
            return ([image_to_layer(result, f"{layer.name} multi-focal", origin_um=origin)],
                    f"{len(model.z_offsets_um)} planes with {name} in {time.perf_counter() - t0:.1f} s")

        return work


class ConfocalLike(MethodWidget):
    """WFCON-Net: a confocal-like z-stack (normalised [0, 1]) from a wide-field z-stack layer; the layer's z scale
    is its step (µm; scale 1 = unknown: the model's training step)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self.stack = image_layers(viewer, "z-stack", _stack)
        self.model = models("wfcon")
        super().__init__(viewer, [self.stack, self.model])

    def job(self) -> Callable[[], Result]:
        from widefield3d.methods.wfcon import confocal

        layer = chosen(self.stack, "z-stack")
        image, model = layer_to_image(layer), self.model.value
        dz = image.spacing_um["Z"]

        def work() -> Result:
            t0 = time.perf_counter()
            result = confocal(image, model=model, z_step_um=dz if dz != 1.0 else None, progress=False)
            origin = (float(layer.translate[0]), *_yx_origin(layer))
            return ([image_to_layer(result, f"{layer.name} confocal-like", origin_um=origin)],
                    f"{result.data.shape[0]} planes with {model} in {time.perf_counter() - t0:.1f} s")

        return work


class Reconstruct(MethodWidget):
    """Bright-field volume reconstruction: the transmittance volume of a focal stack layer (one image focused on
    each layer, empty background = 1; z scale = layer distance, y/x scale = voxel width, µm; scale 1 = unknown:
    1 and 0.92 µm), by the iterative method (default) or Deep Image Prior (the paper's; seconds per step on a
    CPU), with a progress bar and a Stop button (which keeps the volume reached so far)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        from widefield3d.methods.volume import VolumeConfig

        defaults = VolumeConfig()
        self.stack = image_layers(viewer, "focal stack", _stack)
        self.solver = ComboBox(label="solver", choices=["iterative", "dip"], value="iterative")  # DIP: slow on CPU
        self.start = ComboBox(label="DIP start", choices=["ellipsoid-denoise", "ellipsoid-fit", "none"],
                              value="ellipsoid-denoise")
        self.steps = SpinBox(label="steps", value=2000, min=1, max=1_000_000)
        self.na = FloatSpinBox(label="NA", value=defaults.na, min=0.05, max=0.99, step=0.05)
        self.early_stop = CheckBox(text="early stop (ES-WMV)", value=True)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.stop_button = PushButton(text="Stop", enabled=False)
        self._stop = threading.Event()
        super().__init__(viewer, [self.stack, self.solver, self.start, self.steps, self.na, self.early_stop,
                                  self.progress, self.stop_button])
        self.solver.changed.connect(lambda value: setattr(self.start, "visible", value == "dip"))
        self.start.visible = False
        self.stop_button.changed.connect(self.stop)

    def stop(self) -> None:
        """Stop the running reconstruction after its current step; the volume so far becomes the layer."""
        self._stop.set()
        self.status.value = "stopping..."

    def config(self, spacing_zyx: tuple[float, float, float]):
        """The :class:`~widefield3d.methods.volume.VolumeConfig` of the settings and the stack's spacing (µm)."""
        from widefield3d.methods.volume import VolumeConfig

        dz, _, dx = spacing_zyx
        known = {"z_res_um": dz if dz != 1.0 else None, "xy_res_um": dx if dx != 1.0 else None}
        return VolumeConfig(solver=self.solver.value, pretrained=self.start.value, steps=self.steps.value,
                            na=self.na.value, early_stop=self.early_stop.value,
                            **{k: v for k, v in known.items() if v is not None})

    def job(self) -> Callable[[], Result]:
        from superqt.utils import ensure_main_thread

        from widefield3d import io
        from widefield3d.methods.volume import solve

        layer = chosen(self.stack, "focal stack")
        image = layer_to_image(layer)
        config = self.config(image.spacing_zyx)
        shown = [-1.0]  # when the bar was last updated (s): at most 10 updates a second reach the GUI thread
        self._stop.clear()
        self.progress.max, self.progress.value = config.steps, 0
        self.stop_button.enabled = True

        @ensure_main_thread
        def show(step: int, loss: float) -> None:
            self.progress.value = step + 1
            if not self._stop.is_set():
                self.status.value = f"step {step + 1}/{config.steps}, L1 {loss:.3g}"

        def report(step: int, loss: float) -> bool:
            now = time.perf_counter()
            if now - shown[0] >= 0.1 or step + 1 == config.steps:
                shown[0] = now
                show(step, loss)
            return self._stop.is_set()

        def work() -> Result:
            result = solve(np.asarray(image.data), config, progress=False, device="auto", callback=report)
            volume = io.Image(result.transmittance, "ZYX", (config.z_res_um, config.xy_res_um, config.xy_res_um))
            how = ("stopped" if self._stop.is_set() else "early stop" if result.stopped_early else "done")
            origin = (float(layer.translate[0]), *_yx_origin(layer))
            return ([image_to_layer(volume, f"{layer.name} volume ({config.solver})", origin_um=origin)],
                    f"{how} after {result.iterations} steps (iterate {result.iteration}) in {result.seconds:.1f} s")

        return work

    def on_finished(self) -> None:
        super().on_finished()
        self.stop_button.enabled = False
