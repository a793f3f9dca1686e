"""Export a widefield3d model to a bioimage.io model package (a zip that Fiji/deepImageJ, ilastik, napari and
``bioimageio.core`` run), after CAREamics' ``export_to_bmz``.

:func:`export_bioimageio` opens a shipped or trained model (:func:`widefield3d.zoo.load_model`), builds the package
in a temporary folder (test input and output ``.npy`` from the method's own predict function, ``torchscript`` and
``pytorch_state_dict`` weights, a README, the model's ``config.json``, a cover), runs ``bioimageio.core``'s test
on it, and only if that passes writes the zip, atomically. The method-specific parts (tensors, normalisation,
halo, Deep-Z's DPM input) are in :mod:`widefield3d.export._methods`; the networks as the package runs them in
:mod:`widefield3d.export.packaged`. ``docs/bioimageio.md`` is the user's guide.

Needs the ``bioimageio`` extra (``pip install 'widefield3d[bioimageio]'``). Nothing is fetched from the network:
the description has no URLs or GitHub user names (which the spec's checks would look up).
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from widefield3d import __version__, io, zoo
from widefield3d.errors import InputError, Widefield3DError

__all__ = ["ExportError", "export_bioimageio", "require_bioimageio"]

ARCHITECTURES = "widefield3d.export.packaged"
"""Module of the packaged network classes the ``pytorch_state_dict`` weights name."""


class ExportError(Widefield3DError):
    """The package was built but failed bioimage.io's test; no file was written."""


def require_bioimageio() -> None:
    """Raise InputError (one line) unless ``bioimageio.core`` and ``bioimageio.spec`` can be imported."""
    try:
        import bioimageio.core  # noqa: F401
        import bioimageio.spec  # noqa: F401
    except ImportError as err:
        raise InputError(f"export bioimageio: needs bioimageio.core ({err}); install it with "
                         "pip install 'widefield3d[bioimageio]'") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence bioimageio's log and torch.jit's deprecation and tracer warnings within the block."""
    import torch
    from loguru import logger

    logger.disable("bioimageio")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            yield
    finally:
        logger.enable("bioimageio")


def _name(model) -> str:
    """The package's name: letters, digits, ``_+- ()`` only (the spec's rule), at least 5 characters."""
    label = zoo.model_label(model.path) if model.path is not None else model.method
    name = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", f"widefield3d {label}")[:128]
    return name


def _read_test_input(path) -> io.Image | None:
    if path is None:
        return None
    return path if isinstance(path, io.Image) else io.read(path)


def _cover(parts, folder: Path) -> Path:
    """A 2:1 PNG: the first test input (left) beside the test output (right), middle planes, 8-bit."""
    from PIL import Image as PILImage

    def panel(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a[0], np.float32)  # drop the batch axis: (C, [Z,] Y, X)
        while a.ndim > 3:
            a = a[:, a.shape[1] // 2]
        a = np.moveaxis(a[:3], 0, -1) if a.shape[0] in (2, 3) else a[0][..., None].repeat(3, -1)
        if a.shape[-1] == 2:
            a = np.concatenate([a, a[..., :1]], -1)
        lo, hi = np.percentile(a, [0.5, 99.5])
        scaled = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        return np.asarray(PILImage.fromarray((scaled * 255).astype(np.uint8)).resize((256, 256)))

    first_in = next(iter(parts.test_inputs.values()))
    first_out = next(iter(parts.test_outputs.values()))
    path = folder / "cover.png"
    PILImage.fromarray(np.concatenate([panel(first_in), panel(first_out)], axis=1)).save(path)
    return path


def _readme(model, parts, test_input) -> str:
    source = "the test image given" if test_input is not None else "a seeded synthetic image"
    return f"""# {_name(model)}

{model.config.description or model.method}

Exported by widefield3d {__version__} (`widefield3d export bioimageio`) from the model
`{zoo.model_label(model.path) if model.path is not None else model.method}` (method `{model.method}`); its
training settings and provenance are in the attached `config.json`.

{parts.notes}
## Weights

- `torchscript` (`model.pt`): runs with PyTorch alone.
- `pytorch_state_dict` (`weights.pt`, the model's `weights.safetensors` re-saved for `torch.load`): the class
  `{ARCHITECTURES}.{type(parts.packaged).__name__}`; needs widefield3d installed.

## Test tensors

Computed from {source} by widefield3d's own predict function; this package passed `bioimageio.core`'s test
(test outputs reproduced by both weight formats) before it was written.
"""


def _environment(folder: Path) -> Path:
    import torch

    path = folder / "environment.yaml"
    path.write_text(f"""name: widefield3d
channels: [conda-forge]
dependencies:
  - python>=3.11
  - pytorch>={torch.__version__.split('+')[0]}
  - pip
  - pip:
      - widefield3d>={__version__}  # the pytorch_state_dict architectures (widefield3d.export.packaged)
""", encoding="utf-8")
    return path


def _failure(summary) -> str:
    """The first failed check of a bioimageio validation summary, as one line."""
    for detail in summary.details:
        if detail.status == "failed":
            message = detail.errors[0].msg if detail.errors else "failed"
            return re.sub(r"\s+", " ", f"{detail.name}: {message}").strip()[:400]
    return f"status {summary.status}"


def _describe(model, parts, folder: Path, test_input, authors: Sequence[str]):
    """Write the package's files into ``folder`` and return its ``ModelDescr`` (bioimage.io spec 0.5)."""
    import torch
    from bioimageio.spec.model import v0_5 as spec

    from widefield3d.export.packaged import torchscript

    files: dict[str, Path] = {}
    for tensor_id, array in {**parts.test_inputs, **parts.test_outputs}.items():
        files[tensor_id] = folder / f"test_{tensor_id}.npy"
        np.save(files[tensor_id], np.ascontiguousarray(array, np.float32))
    inputs, outputs = parts.describe(files)
    weights_pt = folder / "weights.pt"
    torch.save({k: v.detach().cpu().contiguous() for k, v in parts.packaged.state_dict().items()}, weights_pt)
    example = torch.cat([torch.from_numpy(a) for a in parts.test_inputs.values()], dim=1)
    script_pt = folder / "model.pt"
    torch.jit.save(torchscript(parts.packaged, example), str(script_pt))
    readme = folder / "README.md"
    readme.write_text(_readme(model, parts, test_input), encoding="utf-8")
    config = folder / "config.json"
    config.write_text(json.dumps(model.config.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    torch_version = spec.Version(torch.__version__.split("+")[0])
    weights = spec.WeightsDescr(
        torchscript=spec.TorchscriptWeightsDescr(source=script_pt, pytorch_version=torch_version),
        pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
            source=weights_pt, pytorch_version=torch_version, dependencies=spec.FileDescr(source=_environment(folder)),
            architecture=spec.ArchitectureFromLibraryDescr(
                import_from=ARCHITECTURES, callable=spec.Identifier(type(parts.packaged).__name__),
                kwargs=parts.kwargs)))
    rtol, atol = parts.tolerance
    return spec.ModelDescr(
        name=_name(model), description=(model.config.description or model.method)[:500],
        authors=[spec.Author(name=a) for a in authors], license=spec.LicenseId("BSD-3-Clause"),
        cite=[spec.CiteEntry(text=text, doi=spec.Doi(doi)) for text, doi in parts.cite],
        documentation=spec.FileDescr(source=readme), covers=[spec.FileDescr(source=_cover(parts, folder))],
        attachments=[spec.FileDescr(source=config)],
        tags=["widefield3d", *parts.tags], version=spec.Version(__version__), inputs=inputs, outputs=outputs,
        weights=weights,
        config=spec.Config(bioimageio=spec.BioimageioConfig(reproducibility_tolerance=[
            spec.ReproducibilityTolerance(relative_tolerance=rtol, absolute_tolerance=atol)])))


def export_bioimageio(model, output, *, z_um=None, test_input=None,
                      authors: Sequence[str] = ("widefield3d",)) -> Path:
    """Write a bioimage.io model package of a widefield3d model, after it passed ``bioimageio.core``'s test.

    Parameters
    ----------
    model : str or path
        A shipped model's name (``widefield3d models``) or a trained model directory.
    output : str or path
        The package, a ``.zip`` file; written atomically, and only if the package passes the test (an existing
        file is replaced then, as every widefield3d output is).
    z_um : float or sequence of float, optional
        Deep-Z only: the refocus distances (µm, + = deeper) of the package's output planes; default 9 planes
        across the model's trained range. The package refocuses onto these planes (constant DPMs).
    test_input : str, path or io.Image, optional
        An image of the kind the model takes (Deep-Z: one plane; MFPINet: one low-resolution image; WFCON-Net: a
        z-stack), cropped to a small centre for the test tensors; default: a seeded synthetic one. For Deep-Z it
        also sets the percentiles of the package's normalisation (docs/bioimageio.md).
    authors : sequence of str
        The package's authors.

    Returns
    -------
    pathlib.Path
        ``output``.

    Raises
    ------
    InputError
        Unknown model, a method that cannot be exported (the Deep Image Prior denoiser), bad output path or test
        input, or bioimage.io not installed.
    ExportError
        The package failed ``bioimageio.core``'s test (the first failure, one line); nothing is written.
    """
    import pydantic

    from widefield3d.checks import check_output
    from widefield3d.export._methods import BUILDERS, NOT_EXPORTABLE
    from widefield3d.methods._base import one_line

    output = check_output(output, kind="zip", inputs=[test_input if isinstance(test_input, (str, Path)) else None])
    loaded = zoo.load_model(model)
    if loaded.method in NOT_EXPORTABLE:
        raise InputError(f"model {model}: a {loaded.method!r} model cannot be exported to bioimage.io: "
                         f"{NOT_EXPORTABLE[loaded.method]}")
    if loaded.method not in BUILDERS:
        raise InputError(f"model {model}: no bioimage.io export for method {loaded.method!r}")
    image = _read_test_input(test_input)
    require_bioimageio()
    from bioimageio.core import test_model
    from bioimageio.spec import save_bioimageio_package

    with _quiet():
        parts = BUILDERS[loaded.method](loaded, image, z_um=z_um)
        with tempfile.TemporaryDirectory(prefix="widefield3d-bioimageio-") as tmp:
            try:
                descr = _describe(loaded, parts, Path(tmp), test_input, authors)
            except pydantic.ValidationError as err:
                raise ExportError(f"{output}: not written, invalid bioimage.io description ({one_line(err)})") from None
            summary = test_model(descr, devices=["cpu"])  # where the test outputs were computed
            if summary.status != "passed":
                raise ExportError(f"{output}: not written, the package failed bioimage.io's test: {_failure(summary)}")
            with io.atomic_output(output) as partial:
                save_bioimageio_package(descr, output_path=partial)
    return output

