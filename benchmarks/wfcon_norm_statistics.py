"""Shipped wfcon-60x14-tissue on the demo's simulated stack: RMSE/SSIM against the confocal stack and seconds
with each tile's instance-norm statistics and reflected context (plain predict_tiled), with what `confocal` does
(the volume's statistics and a zero border, i.e. one pass when the halo reaches the receptive radius), and one
unpadded generator pass. Prints one line per tiling; see docs/wfcon.md (Tiled inference)."""

import time

import numpy as np
import torch

from widefield3d.analysis.metrics import rmse, ssim
from widefield3d.methods import wfcon as W
from widefield3d.sim.dataset import dataset_preset, simulate_field
from widefield3d.tiling import predict_tiled


def scores(y: np.ndarray, truth: np.ndarray) -> str:
    return f"RMSE {rmse(y, truth):.4f} SSIM {ssim(y, truth, data_range=1.0):.4f}"


def main() -> None:
    torch.set_num_threads(2)
    m = W.load("wfcon-60x14-tissue")
    cfg = m.config
    preset = dataset_preset("wfcon-60x14-tissue").model_copy(
        update={"field_px": 96, "sample_depth_um": 20.0, "z_range_um": (-6.0, 5.5)})  # the demo's stack
    acqs = simulate_field(preset, 0, 0)
    raw = acqs["widefield"].noisy
    truth = W.normalise(acqs["confocal"].noisy, cfg.data.norm_percentiles)
    x = W.normalise(raw, cfg.data.norm_percentiles)
    print(f"stack {x.shape}: input {scores(x, truth)}")
    with torch.no_grad():
        whole = np.clip(m.generator(torch.from_numpy(x)[None, None])[0, 0].numpy(), 0, 1)
    print(f"one unpadded pass: {scores(whole, truth)}")
    two_windows = cfg.model_copy(update={"network": cfg.network.model_copy(update={"tile_zyx": (40, 128, 128)})})
    for name, c in (("default tiles (one window)", cfg), ("tiles 40 x 128 x 128 (two windows)", two_windows)):
        t = time.perf_counter()
        net = c.network
        old = np.clip(predict_tiled(m.generator, x[None], tile=net.tile_zyx, halo=net.halo_zyx, blend=net.blend_zyx,
                                    batch_size=1, progress=False)[0], 0, 1)
        t_old, t = time.perf_counter() - t, time.perf_counter()
        new = W.confocal(raw, model=W.WFConModel(m.generator, c), device="cpu", progress=False).data
        t_new = time.perf_counter() - t
        print(f"{name}: tile statistics {scores(old, truth)} ({t_old:.1f} s, mean |- one pass| "
              f"{np.abs(old - whole).mean():.4f}); confocal {scores(new, truth)} ({t_new:.1f} s, "
              f"mean |- one pass| {np.abs(new - whole).mean():.4f})")


if __name__ == "__main__":
    main()
