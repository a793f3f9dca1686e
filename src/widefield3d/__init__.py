"""widefield3d: 3D vision for any wide-field microscope.

The top-level namespace re-exports the entry points a user starts from; heavy
dependencies (torch) are imported only by the modules that need them.
"""

from widefield3d.errors import InputError, Widefield3DError

__version__ = "0.1.0"

__all__ = ["InputError", "Widefield3DError", "__version__"]
