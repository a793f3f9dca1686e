"""Former name of :mod:`widefield3d.sim.samples.transmittance`; kept only because ``methods/volume.py`` still
imports it from here. Import from :mod:`widefield3d.sim.samples.transmittance` instead."""

from widefield3d.sim.samples.transmittance import cell_volume, ellipsoid_volume

__all__ = ["cell_volume", "ellipsoid_volume"]
