"""The base of the method widgets: parameter widgets, a *Run* button and a status line; the work runs in a napari
``thread_worker`` (the viewer never freezes) and its result layers are added to the viewer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, Label, PushButton, Widget

from widefield3d import zoo
from widefield3d.errors import InputError, Widefield3DError
from widefield3d.napari.layers import LayerDataTuple

if TYPE_CHECKING:
    import napari

Result = tuple[list[LayerDataTuple], str]
"""What a job returns: the layers to add and a one-line report for the status line."""


def error_line(err: BaseException) -> str:
    """One line for an error: the library's own errors as they are, others with their type."""
    text = str(err).splitlines()[0] if str(err) else ""
    return f"error: {text}" if isinstance(err, Widefield3DError) else f"error: {type(err).__name__}: {text}"


def image_layers(viewer, label: str, accept: Callable[[Any], bool]) -> ComboBox:
    """A choice of the viewer's image layers that ``accept`` takes (:meth:`MethodWidget.reset_choices` updates it as
    layers come and go)."""
    from napari.layers import Image

    def choices(_widget) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, Image) and accept(layer)]

    return ComboBox(label=label, choices=choices)


def models(method: str, label: str = "model") -> ComboBox:
    """A choice of the shipped models of ``method`` (``widefield3d models``)."""
    return ComboBox(label=label, choices=[m.name for m in zoo.list_models() if m.method == method])


def chosen(box: ComboBox, what: str):
    """The value of a layer choice, or a one-line InputError naming ``what`` is missing."""
    if box.value is None:
        raise InputError(f"{what}: open or choose a layer first")
    return box.value


class MethodWidget(Container):
    """Parameter widgets + *Run* + a status line. A subclass gives its widgets and :meth:`job`.

    ``job`` runs in the GUI thread: it reads the widgets and returns a function without arguments that does the
    work in a worker thread and returns a :data:`Result`. ``worker`` is the last started worker (tests wait on it).
    """

    job: Callable[[], Callable[[], Result]]
    """Each widget's method: reads its settings (raising InputError for a bad one) and returns the work to run."""

    def __init__(self, viewer: napari.viewer.Viewer, widgets: Sequence[Widget], run_text: str = "Run"):
        self.viewer = viewer
        self.run_button = PushButton(text=run_text)
        self.status = Label(value="")
        self.worker: Any = None
        super().__init__(widgets=[*widgets, self.run_button, self.status])
        self.run_button.changed.connect(self.run)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.reset_choices)

    def run(self) -> None:
        """Start :meth:`job`'s work in a worker thread; a bad setting is reported at once on the status line."""
        from napari.qt.threading import create_worker

        try:
            work = self.job()
        except Widefield3DError as err:
            self.status.value = error_line(err)
            return
        self.status.value = "running..."
        self.run_button.enabled = False
        self.worker = create_worker(work, _start_thread=False, _ignore_errors=True)
        self.worker.returned.connect(self._done)
        self.worker.errored.connect(lambda err: setattr(self.status, "value", error_line(err)))
        self.worker.finished.connect(self.on_finished)
        self.worker.start()

    def on_finished(self) -> None:
        """The worker is done (result, error or stop): the widget is ready for the next run."""
        self.run_button.enabled = True

    def _done(self, result: Result) -> None:
        layers, message = result
        for data, kwargs, _kind in layers:
            self.viewer.add_image(data, **kwargs)
        self.status.value = message
