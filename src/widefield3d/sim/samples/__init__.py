"""Simulated samples: 3D fluorescence densities (or stain concentrations) on a fine grid, with their ground truth.

Every generator takes a grid ``shape=(Z, Y, X)`` and ``spacing_um=(dz, dy, dx)`` (µm) and a ``seed``, and returns a
:class:`Sample`. Grid conventions:

* voxel ``(k, j, i)`` has its centre at ``(k*dz, j*dy, i*dx)`` µm, so the first plane is at ``z = 0``;
* ``z`` grows away from the objective, into the sample (see ``DESIGN.md``);
* densities are float32, non-negative, with their peak near 1 (the absolute scale is set later by the camera's
  photon budget, :mod:`widefield3d.sim.camera`);
* lengths in every argument are µm, angles are degrees.

Beside the density, a sample keeps the ground truth the generator knows exactly: object centres (``centres_um``), the
bead surface of the tilted/curved bead samples (``surface_um``), the stain absorbance of the cytology slab, and for
thick tissue the scattering mean free path that :mod:`widefield3d.sim.acquisition` may use to add out-of-focus haze.

One module per family: :mod:`~widefield3d.sim.samples.beads` (``beads``, ``tilted-beads``, ``curved-beads``),
:mod:`~widefield3d.sim.samples.nuclei` (``nuclei``, ``worm``), :mod:`~widefield3d.sim.samples.filaments`,
:mod:`~widefield3d.sim.samples.tissue`, :mod:`~widefield3d.sim.samples.cytology`; :func:`make_sample` picks one by
name. :mod:`~widefield3d.sim.samples.transmittance` holds the transmittance volumes of bright-field volume
reconstruction (plain arrays, not :class:`Sample`, and not in :func:`make_sample`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from widefield3d.errors import InputError
from widefield3d.sim.samples.beads import beads, curved_beads, tilted_beads
from widefield3d.sim.samples.checks import check_shape
from widefield3d.sim.samples.cytology import RUIFROK_HE, STAIN_ABSORBANCE_RGB, cytology
from widefield3d.sim.samples.filaments import filaments
from widefield3d.sim.samples.nuclei import nuclei, worm
from widefield3d.sim.samples.sample import Sample
from widefield3d.sim.samples.tissue import tissue

__all__ = [
    "RUIFROK_HE",
    "SAMPLE_KINDS",
    "STAIN_ABSORBANCE_RGB",
    "Sample",
    "beads",
    "check_shape",
    "curved_beads",
    "cytology",
    "filaments",
    "make_sample",
    "nuclei",
    "tilted_beads",
    "tissue",
    "worm",
]

SAMPLE_KINDS = ("beads", "nuclei", "worm", "filaments", "tissue", "tilted-beads", "curved-beads", "cytology")

_GENERATORS: dict[str, Callable[..., Sample]] = {
    "beads": beads,
    "nuclei": nuclei,
    "worm": worm,
    "filaments": filaments,
    "tissue": tissue,
    "tilted-beads": tilted_beads,
    "curved-beads": curved_beads,
    "cytology": cytology,
}


def make_sample(kind: str, shape: tuple[int, int, int], spacing_um: tuple[float, float, float], seed: int = 0,
                **kwargs) -> Sample:
    """Generate a sample of ``kind`` (one of :data:`SAMPLE_KINDS`); ``kwargs`` go to that kind's generator."""
    if kind not in _GENERATORS:
        raise InputError(f"sample kind must be one of {', '.join(SAMPLE_KINDS)}; got {kind!r}")
    generator = _GENERATORS[kind]
    accepted = set(inspect.signature(generator).parameters) - {"shape", "spacing_um", "seed"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise InputError(f"sample kind {kind!r} takes no {', '.join(unknown)}; it takes {', '.join(sorted(accepted))}")
    return generator(shape, spacing_um, seed=seed, **kwargs)
