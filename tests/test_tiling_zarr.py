"""Tiling and I/O together: a lazily read OME-Zarr through a network into an OME-Zarr made by io."""

import numpy as np
import torch

from widefield3d import io
from widefield3d.nets.unet import UNet
from widefield3d.tiling import predict_tiled


def test_lazy_ome_zarr_in_tiled_2x_ome_zarr_out(tmp_path):
    torch.manual_seed(0)
    net = UNet(1, 2, ndim=2, depth=2, width=4, upscale=2)
    rng = np.random.default_rng(0)
    data = rng.random((1, 150, 230)).astype(np.float32)
    io.write(tmp_path / "in.ome.zarr", io.Image(data, axes="CYX", spacing_um={"Y": 0.5, "X": 0.5}))
    lazy = io.read(tmp_path / "in.ome.zarr", lazy=True)
    assert not isinstance(lazy.data, np.ndarray)
    out = io.create_ome_zarr(tmp_path / "out.ome.zarr", (2, 300, 460), "float32", "CYX", {"Y": 0.25, "X": 0.25},
                             chunks=(1, 64, 64))
    predict_tiled(net, lazy.data, tile=64, blend=8, scale=2, out=out, progress=False)
    result = io.read(tmp_path / "out.ome.zarr")
    expected = predict_tiled(net, data, tile=512, scale=2, progress=False)  # one tile: whole-image inference
    assert result.spacing_um == {"Y": 0.25, "X": 0.25}
    assert np.abs(result.data - expected).max() < 1e-5
