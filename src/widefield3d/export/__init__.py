"""Export of widefield3d models to other tools' formats: :func:`export_bioimageio` writes a bioimage.io model
package (:mod:`widefield3d.export.bioimageio`); :mod:`widefield3d.export.packaged` holds the networks as such a
package runs them."""

from widefield3d.export.bioimageio import ExportError, export_bioimageio

__all__ = ["ExportError", "export_bioimageio"]
