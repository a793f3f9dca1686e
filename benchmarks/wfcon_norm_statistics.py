"""Shipped wfcon-60x14-tissue on the demo's simulated stack: RMSE/SSIM against the confocal stack and seconds
with each tile's instance-norm statistics and reflected context (plain predict_tiled), with what `confocal` does
(the volume's statistics and a zero border, i.e. one pass when the halo reaches the receptive radius), and one
unpadded generator pass. Prints one line per tiling; see docs/wfcon.md (Tiled inference).

``--timing [--repeats 3] [--shape 80 96 96]``: seconds of `image_norm_statistics` (with `confocal`'s geometry)
recomputing every pass in full (``cache_bytes=0``) and with the kept module outputs of the previous pass (the
default), interleaved in one run, median of the repeats, on a random [0, 1] stack; also the max |difference|
of the tiled outputs with either statistics. Run it under ``nice -n 19`` on a shared machine and compare the
ratio, not the seconds."""

import argparse
import statistics
import time

import numpy as np
import torch

from widefield3d.analysis.metrics import rmse, ssim
from widefield3d.methods import wfcon as W
from widefield3d.sim.dataset import dataset_preset, simulate_field
from widefield3d.tiling import predict_tiled


def scores(y: np.ndarray, truth: np.ndarray) -> str:
    return f"RMSE {rmse(y, truth):.4f} SSIM {ssim(y, truth, data_range=1.0):.4f}"


def timing(shape: tuple[int, int, int], repeats: int) -> None:
    from widefield3d.tiling import frozen_norms, image_norm_statistics

    torch.set_num_threads(2)
    m = W.load("wfcon-60x14-tissue")
    net = m.config.network
    x = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    geometry = dict(tile=net.tile_zyx, halo=net.halo_zyx, batch_size=1, device="cpu", border="zeros")
    seconds: dict[str, list[float]] = {"recomputed": [], "kept outputs": []}
    outputs = {}
    for _ in range(repeats):
        for name, cache_bytes in (("recomputed", 0), ("kept outputs", 1 << 30)):
            t = time.perf_counter()
            stats = image_norm_statistics(m.generator, x, cache_bytes=cache_bytes, **geometry)
            seconds[name].append(time.perf_counter() - t)
            if name not in outputs:
                with frozen_norms(stats):
                    outputs[name] = predict_tiled(m.generator, x, blend=net.blend_zyx, progress=False, **geometry)
    medians = {name: statistics.median(t) for name, t in seconds.items()}
    diff = float(np.abs(outputs["recomputed"] - outputs["kept outputs"]).max())
    print(f"stack {shape}, tiles {net.tile_zyx}, halo {net.halo_zyx}: statistics, median of {repeats}: "
          + ", ".join(f"{name} {medians[name]:.1f} s {[round(v, 1) for v in seconds[name]]}" for name in seconds)
          + f"; speed-up {medians['recomputed'] / medians['kept outputs']:.2f}x; max |output difference| {diff:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=3, default=(80, 96, 96))
    args = parser.parse_args()
    if args.timing:
        timing(tuple(args.shape), args.repeats)
        return
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
