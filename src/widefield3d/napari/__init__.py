"""The napari plugin (npe2; ``pip install "widefield3d[napari]"``): a thin layer above :mod:`widefield3d.methods`.

- :mod:`~widefield3d.napari.widgets`: *Refocus* (Deep-Z), *Multi-focal* (MFPINet), *Confocal-like* (WFCON-Net) and
  *Reconstruct* (bright-field volume), each running in a napari ``thread_worker``;
- :mod:`~widefield3d.napari.sample_data`: small simulated fields with their ground truth;
- :mod:`~widefield3d.napari.files`: a reader for OME-TIFF (with scale and channel names) and a writer for
  OME-Zarr / OME-TIFF;
- :mod:`~widefield3d.napari.layers`: between :class:`widefield3d.io.Image` and napari layers.

``napari.yaml`` (the manifest) names them; napari finds it through the ``napari.manifest`` entry point.
"""
