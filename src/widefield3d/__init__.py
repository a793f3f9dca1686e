"""widefield3d: 3D vision for any wide-field microscope.

The top-level namespace re-exports the entry points a user starts from; they are loaded on first use, so
``import widefield3d`` stays light and heavy dependencies (torch) are imported only by the modules that need them.

- ``refocus(image, z=..., model=...)``: Deep-Z / Deep-Z+ refocusing onto planes or surfaces
- ``multifocal(image, model=...)``: MFPINet, all focal planes at 2x resolution from one image
- ``confocal(stack, model=...)``: WFCON-Net, wide-field stack to confocal-like stack
- ``reconstruct(stack, config)``: bright-field focal stack to a transmittance volume
"""

from importlib import import_module
from importlib.metadata import version

from widefield3d.errors import InputError, Widefield3DError

__version__ = version("widefield3d")  # the one version source is pyproject.toml

_LAZY = {
    "refocus": "widefield3d.methods.deepz",
    "multifocal": "widefield3d.methods.mfpi",
    "confocal": "widefield3d.methods.wfcon",
    "reconstruct": "widefield3d.methods.volume",
}

__all__ = ["InputError", "Widefield3DError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'widefield3d' has no attribute {name!r}")
