"""The :class:`Sample` container: a simulated sample's density on a grid (µm) and its known ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sample:
    """A simulated sample on a regular grid.

    Attributes
    ----------
    density : ndarray of float32
        ``(Z, Y, X)`` fluorescence density >= 0 with its peak near 1; for ``cytology`` ``(S, Z, Y, X)`` stain
        concentrations (see ``absorbance_rgb``).
    spacing_um : tuple of float
        ``(dz, dy, dx)`` of the grid, µm.
    kind : str
        One of :data:`SAMPLE_KINDS`.
    channel_names : list of str, optional
        Names of the ``S`` stains of a cytology sample (``["hematoxylin", "eosin"]``).
    absorbance_rgb : ndarray, optional
        ``(S, 3)`` base-10 optical density per unit concentration for R, G, B: the unit Ruifrok-Johnston stain
        vectors. The optical density of a path is ``sum_s absorbance_rgb[s] * od_per_um * sum_z density[s, z] * dz``,
        where the stain strength ``od_per_um`` (optical density per µm at unit concentration) is a parameter of
        the bright-field acquisition, not of the sample.
    surface_um : ndarray, optional
        ``(Y, X)`` true z (µm from the first plane) of the surface that carries the beads of ``tilted-beads`` and
        ``curved-beads``; NaN where the surface does not exist (outside a cylinder).
    centres_um : ndarray, optional
        ``(N, 3)`` true ``(z, y, x)`` centres (µm) of the beads, nuclei or cells.
    scattering_length_um : float, optional
        Scattering mean free path of a thick sample (``tissue``), µm; None for clear samples.
    """

    density: np.ndarray
    spacing_um: tuple[float, float, float]
    kind: str
    channel_names: list[str] | None = None
    absorbance_rgb: np.ndarray | None = None
    surface_um: np.ndarray | None = None
    centres_um: np.ndarray | None = None
    scattering_length_um: float | None = None

    def __post_init__(self):
        self.spacing_um = tuple(float(d) for d in self.spacing_um)

    @property
    def extent_um(self) -> tuple[float, float, float]:
        """``(Z*dz, Y*dy, X*dx)``: size of the grid in µm."""
        z, y, x = (float(n * d) for n, d in zip(self.density.shape[-3:], self.spacing_um))
        return z, y, x
