"""MFPINet against Deep-Z, an SR-only model and bicubic: the paper's Tables I-III on simulated cytology.

Sub-commands (run from the repository root with the project's Python):

``train-deepz DATA OUT`` / ``train-sr DATA OUT``
    Train the comparison models through the shared adversarial trainer on the same focal stacks and the same
    train/validation split as ``widefield3d train mfpi`` (MFPINet itself is trained with that command):

    * Deep-Z: :class:`widefield3d.nets.deepz.DeepZGenerator` with ``in_channels=4`` (the high-resolution RGB middle
      plane + a uniform DPM = z offset / 13.5 µm) and its 1-channel output convolution replaced by a 3-channel
      one, so one pass gives one RGB plane (per-colour passes would cost 3x more); Deep-Z's own trainer settings
      (LSGAN, 6 G : 3 D updates, pixel weight 0.02, lr 1e-4 / 3e-5) with the learning rates scaled by
      ``--lr-scale`` like MFPINet's; :class:`~widefield3d.nets.deepz.DeepZDiscriminator` on RGB planes.
    * SR-only: the MFPINet generator with N = 1 (middle plane only), SRGAN-style training: MSE pixel loss +
      1e-3 BCE adversarial loss, 1:1 updates (SRGAN's VGG content loss needs pretrained weights that cannot be
      downloaded here, so the MSE variant (SRResNet + GAN) is used).

``evaluate TEST --mfpi DIR --deepz DIR --sr DIR``
    Per focal plane PSNR / SSIM / MSE / MAE on the 8-bit scale for MFPINet, Deep-Z and bicubic (Table II), the
    middle plane for SR-only vs MFPINet (Table I), and a figure of outputs and error maps for a few planes.

``heldout TEST --model M``
    :func:`evaluate_dataset` (importable with ``benchmarks/`` on ``sys.path``): the MFPINet and bicubic rows alone,
    averaged over the fields of a test folder, against the noisy scanned planes and, for simulated data, against
    the noise-free ones too (with the noise ceiling): the scores in the shipped model's README and in
    ``tests/test_mfpi.py``. Writes ``results/mfpi_heldout.json``.

``efficiency``
    GFLOPs (multiply-adds x 2 and multiply-adds), parameters and milliseconds to produce a 768 x 768 x 11 x 3
    stack at the paper's width: MFPINet (one pass on 384 x 384 x 3) vs Deep-Z one plane (768 x 768, RGB + DPM)
    vs Deep-Z all 11 planes, in one run, median of ``--repeats``.

Results go to ``benchmarks/results/mfpi_*.json`` and ``benchmarks/results/mfpi_planes.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from widefield3d import io, zoo
from widefield3d.analysis.refocus_measures import gain_offset
from widefield3d.methods import mfpi
from widefield3d.prep.augment import random_dihedral
from widefield3d.nets.deepz import DeepZDiscriminator, DeepZGenerator
from widefield3d.nets.mfpi import MFPIDiscriminator, MFPIGenerator
from widefield3d.zoo import model_label

RESULTS = Path(__file__).parent / "results"
DPM_RANGE_UM = 13.5


def _machine() -> str:
    import os

    return f"{platform.machine()}  {os.cpu_count()} CPUs, {platform.system()}, torch {torch.__version__}"


# ------------------------------------------------------------------------------------------------ Deep-Z (RGB)


def deepz_rgb(width: float) -> DeepZGenerator:
    """Deep-Z generator for RGB bright-field: input RGB + DPM (4 channels), output one RGB plane."""
    g = DeepZGenerator(width=width, in_channels=4)
    g.head = nn.Conv2d(g.head.in_channels, 3, 3, padding=1, padding_mode="replicate")
    return g


def deepz_input(plane: np.ndarray, z_um: float) -> np.ndarray:
    """``(3, Y, X)`` plane in [-1, 1] + a uniform DPM channel ``z / 13.5 µm`` -> ``(4, Y, X)``."""
    dpm = np.full((1, *plane.shape[-2:]), z_um / DPM_RANGE_UM, np.float32)
    return np.concatenate([plane, dpm])


class DeepZPairs:
    """(HR middle plane + DPM, HR plane z) patches of the same fields, random plane per sample."""

    def __init__(self, stacks, config: mfpi.MFPIConfig, z_um: np.ndarray):
        self.stacks = [mfpi.to_unit(s, config.data.white_level) for s in stacks]
        self.config, self.z = config, z_um

    def pair(self, field: int, y: int, x: int, plane: int):
        p, s = self.config.data.patch_size, self.stacks[field]
        middle = s[:, len(self.z) // 2, y : y + p, x : x + p]
        return deepz_input(middle, float(self.z[plane])), s[:, plane, y : y + p, x : x + p]

    def sample(self, rng: np.random.Generator):
        xs, ys = [], []
        for _ in range(self.config.trainer.batch_size):
            field = int(rng.integers(len(self.stacks)))
            ny, nx = self.stacks[field].shape[-2:]
            y = int(rng.integers(ny - self.config.data.patch_size + 1))
            x = int(rng.integers(nx - self.config.data.patch_size + 1))
            a, b = self.pair(field, y, x, int(rng.integers(len(self.z))))
            a, b = random_dihedral(rng, a, b)
            xs.append(np.ascontiguousarray(a))
            ys.append(np.ascontiguousarray(b))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def validation(self):
        pairs, p = [], self.config.data.patch_size
        for field, s in enumerate(self.stacks):
            ny, nx = s.shape[-2:]
            for plane in range(len(self.z)):
                pairs.append(self.pair(field, (ny - p) // 2, (nx - p) // 2, plane))
        b = self.config.trainer.batch_size
        return [(torch.from_numpy(np.stack([a for a, _ in pairs[i : i + b]])),
                 torch.from_numpy(np.stack([t for _, t in pairs[i : i + b]]))) for i in range(0, len(pairs), b)]


def _split(data_dir, config: mfpi.MFPIConfig):
    data = mfpi.read_stacks(data_dir, config.network.planes, config.network.channels)
    fit, val = mfpi.split_fields(len(data.stacks), config.data.validation_fraction)
    return data, [data.stacks[i] for i in fit], [data.stacks[i] for i in val]


def train_deepz(args) -> None:
    from widefield3d.train.trainer import AdversarialTask, TrainerConfig, train

    cfg = mfpi.MFPIConfig.model_validate(json.loads(Path(args.config).read_text()))
    data, fit, val = _split(args.data, cfg)
    z = (np.arange(cfg.network.planes) - cfg.network.planes // 2) * data.z_step_um
    pairs = DeepZPairs(fit, cfg, z)
    width = cfg.network.width
    task = AdversarialTask(deepz_rgb(width), DeepZDiscriminator(width=width, in_channels=3), pairs.sample,
                           DeepZPairs(val, cfg, z).validation())
    paper = TrainerConfig()
    trainer = TrainerConfig(iterations=args.iterations, batch_size=cfg.trainer.batch_size,
                            lr_generator=paper.lr_generator * args.lr_scale,
                            lr_discriminator=paper.lr_discriminator * args.lr_scale,
                            lr_halve_every=max(1, args.iterations // 10), validate_every=args.validate_every,
                            checkpoint_every=args.validate_every, seed=cfg.trainer.seed, device="cpu")
    result = train(task, trainer, args.out, progress=False, resume=args.resume, model_files=zoo,
                   method_config={"method": "deepz-rgb-benchmark", "width": width,
                                  "patch_size": cfg.data.patch_size, "dpm_range_um": DPM_RANGE_UM, "z_um": z.tolist()})
    print(result)


def train_sr(args) -> None:
    from widefield3d.train.trainer import AdversarialTask, TrainerConfig, train

    cfg = mfpi.MFPIConfig.model_validate(json.loads(Path(args.config).read_text()))
    sr_cfg = cfg.model_copy(update={"network": cfg.network.model_copy(update={"planes": 1})})
    _, fit, val = _split(args.data, cfg)
    middle = cfg.network.planes // 2
    sampler = mfpi.PatchSampler([s[:, middle : middle + 1] for s in fit], sr_cfg)
    validation = mfpi.PatchSampler([s[:, middle : middle + 1] for s in val], sr_cfg).centre_batches()
    net = cfg.network
    task = AdversarialTask(MFPIGenerator(1, net.channels, net.width), MFPIDiscriminator(net.channels, net.width),
                           sampler.sample, validation)
    trainer = TrainerConfig(iterations=args.iterations, batch_size=cfg.trainer.batch_size, generator_steps=1,
                            discriminator_steps=1, lr_generator=1e-4 * args.lr_scale,
                            lr_discriminator=1e-4 * args.lr_scale, lr_halve_every=max(1, args.iterations // 10),
                            gan_loss="bce", adversarial_weight=1e-3, pixel_weight=1.0, pixel_loss="l2",
                            validate_every=args.validate_every, checkpoint_every=args.validate_every,
                            seed=cfg.trainer.seed, device="cpu")
    result = train(task, trainer, args.out, progress=False, resume=args.resume, model_files=zoo,
                   method_config={"method": "mfpi-sr-benchmark", **sr_cfg.model_dump(mode="json")})
    print(result)


# ------------------------------------------------------------------------------------------------ evaluation


def _load_plain(module: nn.Module, directory) -> nn.Module:
    from widefield3d import zoo

    return zoo.load_weights(module, directory).eval()


def evaluate_dataset(model, data_dir, *, device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Per-plane metrics of ``model`` (and of the bicubic baseline) over every field of ``data_dir``, averaged.

    Returns ``{"mfpi": [rows], "bicubic": [rows]}``, each row ``{"plane", "z_um", "psnr", "ssim", "mse", "mae"}``
    averaged over the fields (PSNR averaged per field in dB, as in the paper's tables), scored against the noisy
    scanned planes (the paper's ground truth). For a simulated dataset (``brightfield_clean/`` beside the noisy
    stacks) also ``"mfpi_clean"`` and ``"bicubic_clean"`` against the noise-free planes, and ``"noise_ceiling"``:
    the noise-free planes scored against the noisy ones, the best any prediction can reach on the noisy truth.
    The noise-free photons are put on the camera's 8-bit scale by the least-squares gain and offset that map
    them onto the field's noisy stack (the camera's mean response).
    """
    m = model if isinstance(model, mfpi.MFPIModel) else mfpi.load(model)
    cfg = m.config
    white = cfg.data.white_level
    data = mfpi.read_stacks(data_dir, cfg.network.planes, cfg.network.channels)
    clean_dir = Path(data_dir) / "brightfield_clean"
    rows: dict[str, list] = {"mfpi": [], "bicubic": []}
    if clean_dir.is_dir():
        rows.update({"mfpi_clean": [], "bicubic_clean": [], "noise_ceiling": []})
    for stack, name in zip(data.stacks, data.names):
        crop = (..., slice(0, stack.shape[-2] // 16 * 16), slice(0, stack.shape[-1] // 16 * 16))
        gt = stack[crop].astype(np.float32)
        low = np.clip(np.rint(mfpi.degrade(gt[:, cfg.network.planes // 2], blur_size=cfg.data.blur_size,
                                           blur_sigma=cfg.data.blur_sigma)), 0, white)
        pred = mfpi.multifocal(low.astype(stack.dtype) if stack.dtype.kind in "ui" else low, model=m, device=device,
                               progress=progress).data.reshape(gt.shape)
        up = np.repeat(mfpi.bicubic_upsample(low, gt.shape[-2:])[:, None], cfg.network.planes, axis=1)
        rows["mfpi"].append(mfpi.plane_metrics(pred, gt, white_level=white))
        rows["bicubic"].append(mfpi.plane_metrics(up, gt, white_level=white))
        if clean_dir.is_dir():
            photons = io.read(clean_dir / name).as_axes("CZYX").data[crop].astype(np.float64)
            gain, offset = gain_offset(photons, gt)
            clean = (gain * photons + offset).astype(np.float32)
            rows["mfpi_clean"].append(mfpi.plane_metrics(pred, clean, white_level=white))
            rows["bicubic_clean"].append(mfpi.plane_metrics(up, clean, white_level=white))
            rows["noise_ceiling"].append(mfpi.plane_metrics(clean, gt, white_level=white))
    return {k: average_rows(v, m.z_offsets_um) for k, v in rows.items()}


def heldout(args) -> None:
    """``heldout TEST --model M``: :func:`evaluate_dataset` to ``results/mfpi_heldout.json`` and a printed table."""
    scores = evaluate_dataset(args.model, args.test, progress=True)
    psnr = {k: np.array([r["psnr"] for r in v]) for k, v in scores.items()}
    gain = psnr["mfpi"] - psnr["bicubic"]
    middle = len(gain) // 2
    summary = {"mean_psnr": float(psnr["mfpi"].mean()), "mean_psnr_bicubic": float(psnr["bicubic"].mean()),
               "mean_gain_db": float(gain.mean()), "in_focus_gain_db": float(gain[middle]),
               "worst_gain_db": float(gain.min())}
    if "noise_ceiling" in psnr:
        summary.update({"in_focus_noise_ceiling_db": float(psnr["noise_ceiling"][middle]),
                        "mean_gain_clean_db": float((psnr["mfpi_clean"] - psnr["bicubic_clean"]).mean()),
                        "in_focus_gain_clean_db": float(psnr["mfpi_clean"][middle] - psnr["bicubic_clean"][middle])})
    for i, row in enumerate(scores["mfpi"]):
        extra = "".join(f"  {k} {psnr[k][i]:.2f}" for k in ("mfpi_clean", "bicubic_clean", "noise_ceiling") if k in psnr)
        print(f"z {row['z_um']:+6.1f} um  MFPINet {psnr['mfpi'][i]:.2f}  bicubic {psnr['bicubic'][i]:.2f}  "
              f"gain {gain[i]:+.2f} dB{extra}")
    print(json.dumps(summary, indent=1))
    RESULTS.mkdir(exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / "mfpi_heldout.json"
    out.write_text(json.dumps({
        "benchmark": "MFPINet vs bicubic per focal plane, held-out fields (8-bit scale; *_clean: noise-free truth)",
        "date": str(date.today()), "machine": _machine(), "command": args.command_line,
        "model": model_label(args.model), "test_fields": len(mfpi.stack_files(args.test)),
        "summary": summary, **scores}, indent=1))


def average_rows(per_field: list[list[dict]], z_um) -> list[dict]:
    """Average per-plane metric rows over fields; adds ``z_um``."""
    return [{"plane": i, "z_um": float(z),
             **{k: float(np.mean([rows[i][k] for rows in per_field])) for k in ("psnr", "ssim", "mse", "mae")}}
            for i, z in enumerate(z_um)]


def evaluate(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from widefield3d import zoo

    model = mfpi.load(args.mfpi)
    cfg = model.config
    data = mfpi.read_stacks(args.test, cfg.network.planes, cfg.network.channels)
    z = model.z_offsets_um
    deepz = _load_plain(deepz_rgb(zoo.read_config(args.deepz)["width"]), args.deepz) if args.deepz else None
    sr = _load_plain(MFPIGenerator(1, cfg.network.channels, cfg.network.width), args.sr) if args.sr else None
    rows = {"mfpi": [], "bicubic": [], "deepz": [], "sr_middle": [], "mfpi_middle": []}
    example = None
    for stack in data.stacks:
        gt = stack[..., : stack.shape[-2] // 16 * 16, : stack.shape[-1] // 16 * 16].astype(np.float32)
        low = np.clip(np.rint(mfpi.degrade(gt[:, cfg.network.planes // 2], blur_size=cfg.data.blur_size,
                                           blur_sigma=cfg.data.blur_sigma)), 0, 255).astype(np.uint8)
        pred = mfpi.multifocal(low, model=model, device="cpu", progress=False).data.astype(np.float32)
        rows["mfpi"].append(mfpi.plane_metrics(pred, gt))
        up = mfpi.bicubic_upsample(low, gt.shape[-2:])
        rows["bicubic"].append(mfpi.plane_metrics(np.repeat(up[:, None], cfg.network.planes, 1), gt))
        dz_pred = None
        if deepz is not None:
            hr = mfpi.to_unit(gt[:, cfg.network.planes // 2], 255)
            with torch.no_grad():
                x = torch.from_numpy(np.stack([deepz_input(hr, float(zz)) for zz in z]))
                dz_pred = mfpi.from_unit(torch.cat([deepz(x[i : i + 1]) for i in range(len(z))]).numpy(), 255)
            dz_pred = np.moveaxis(dz_pred, 0, 1)  # (Z, C, Y, X) -> (C, Z, Y, X)
            rows["deepz"].append(mfpi.plane_metrics(dz_pred, gt))
        if sr is not None:
            with torch.no_grad():
                s = mfpi.from_unit(sr(torch.from_numpy(mfpi.to_unit(low, 255))[None])[0].numpy(), 255)
            mid = gt[:, cfg.network.planes // 2 : cfg.network.planes // 2 + 1]
            rows["sr_middle"].append(mfpi.plane_metrics(s[:, None], mid))
            rows["mfpi_middle"].append(mfpi.plane_metrics(pred[:, cfg.network.planes // 2 :
                                                                cfg.network.planes // 2 + 1], mid))
        if example is None:
            example = (gt, up, pred, dz_pred)
    table = {k: average_rows(v, z if "middle" not in k else [0.0]) for k, v in rows.items() if v}
    print(f"{'z (µm)':>7} | " + " | ".join(f"{k:>24}" for k in ("MFPINet PSNR/SSIM", "Deep-Z PSNR/SSIM",
                                                                   "bicubic PSNR/SSIM")))
    for i, zz in enumerate(z):
        cells = [f"{table[k][i]['psnr']:7.2f} / {table[k][i]['ssim']:.3f}  MAE {table[k][i]['mae']:5.2f}"
                 if k in table else "-" for k in ("mfpi", "deepz", "bicubic")]
        print(f"{zz:7.1f} | " + " | ".join(f"{c:>24}" for c in cells))
    if "sr_middle" in table:
        for k in ("sr_middle", "mfpi_middle"):
            r = table[k][0]
            print(f"Table I {k}: SSIM {r['ssim']:.3f} PSNR {r['psnr']:.2f} MSE {r['mse']:.2f} MAE {r['mae']:.2f}")
    result = {"benchmark": "MFPINet vs Deep-Z vs SR-only vs bicubic, per focal plane (8-bit scale)",
              "date": str(date.today()), "machine": _machine(), "command": args.command_line,
              "test_fields": data.names, "models": {"mfpi": model_label(args.mfpi), "deepz": args.deepz and model_label(args.deepz),
                                                    "sr": args.sr and model_label(args.sr)}, "tables": table}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mfpi_quality.json").write_text(json.dumps(result, indent=2))

    gt, up, pred, dz_pred = example
    planes = [0, cfg.network.planes // 4, cfg.network.planes // 2, cfg.network.planes - 1]
    columns = [("scanned", gt), ("MFPINet", pred), ("Deep-Z", dz_pred)]
    columns = [c for c in columns if c[1] is not None]
    fig, axes = plt.subplots(len(planes), 2 * len(columns), figsize=(2.2 * 2 * len(columns), 2.3 * len(planes)))
    for r, p in enumerate(planes):
        for c, (name, stack) in enumerate(columns):
            axes[r, c].imshow(np.clip(np.moveaxis(stack[:, p], 0, -1) / 255, 0, 1))
            axes[r, c].set_title(f"{name} {z[p]:+.1f} µm", fontsize=7)
        errors = [("|MFPINet - GT|", pred), ("|bicubic - GT|", np.repeat(up[:, None], cfg.network.planes, 1))]
        if dz_pred is not None:
            errors.append(("|Deep-Z - GT|", dz_pred))
        for c, (name, stack) in enumerate(errors[: len(columns)]):
            ax = axes[r, len(columns) + c]
            ax.imshow(np.abs(stack[:, p] - gt[:, p]).mean(0), cmap="magma", vmin=0, vmax=40)
            ax.set_title(name, fontsize=7)
        for ax in axes[r]:
            ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(RESULTS / "mfpi_planes.png", dpi=90)
    print(f"wrote {RESULTS / 'mfpi_quality.json'} and {RESULTS / 'mfpi_planes.png'}")


# ------------------------------------------------------------------------------------------------ efficiency


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of convolutions, transposed convolutions and linear layers in one forward pass."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += output.numel() * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.ConvTranspose2d):
            total += inputs[0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def _time(fn, repeats: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(1000 * (time.perf_counter() - t0))
    return statistics.median(runs), runs


def efficiency(args) -> None:
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    mf = MFPIGenerator(11, 3, args.width).eval()
    dz = deepz_rgb(args.width).eval()
    lr = torch.rand(1, 3, args.size // 2, args.size // 2) * 2 - 1
    hr = torch.rand(1, 4, args.size, args.size) * 2 - 1
    if args.memory_format == "channels_last":  # what widefield3d.tiling feeds the networks (faster on CPU)
        mf, dz = mf.to(memory_format=torch.channels_last), dz.to(memory_format=torch.channels_last)
        lr, hr = lr.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)
    # both generators are fully convolutional: multiply-adds scale exactly with the pixel count, so they are
    # counted on a quarter-size input (x16) instead of spending one more full-size pass on each
    mf_macs = 16 * count_macs(mf, lr[..., : args.size // 8, : args.size // 8])
    dz_macs = 16 * count_macs(dz, hr[..., : args.size // 4, : args.size // 4])
    params = {"mfpi": sum(p.numel() for p in mf.parameters()), "deepz": sum(p.numel() for p in dz.parameters())}
    mf(lr), dz(hr)  # warm-up
    t_mf = _time(lambda: mf(lr), args.repeats)
    t_dz = _time(lambda: dz(hr), args.repeats)
    t_all = _time(lambda: [dz(hr) for _ in range(11)], max(1, args.repeats // 2))
    rows = [
        {"method": "Deep-Z (single plane)", "GFLOPs": 2 * dz_macs / 1e9, "GMACs": dz_macs / 1e9,
         "params_M": params["deepz"] / 1e6, "ms": t_dz[0], "runs_ms": t_dz[1]},
        {"method": "Deep-Z (11 planes)", "GFLOPs": 22 * dz_macs / 1e9, "GMACs": 11 * dz_macs / 1e9,
         "params_M": params["deepz"] / 1e6, "ms": t_all[0], "runs_ms": t_all[1]},
        {"method": "MFPINet (11 planes)", "GFLOPs": 2 * mf_macs / 1e9, "GMACs": mf_macs / 1e9,
         "params_M": params["mfpi"] / 1e6, "ms": t_mf[0], "runs_ms": t_mf[1]},
    ]
    print(f"{'method':<22} {'GFLOPs':>9} {'GMACs':>9} {'params (M)':>11} {'ms':>10}")
    for r in rows:
        print(f"{r['method']:<22} {r['GFLOPs']:9.1f} {r['GMACs']:9.1f} {r['params_M']:11.3f} {r['ms']:10.1f}")
    speedup = t_all[0] / t_mf[0]
    print(f"MFPINet is {speedup:.1f}x faster than Deep-Z for the {args.size}x{args.size}x11x3 stack "
          f"(paper: 673.8 / 27.8 = 24.2x on an RTX 2080 Ti)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mfpi_efficiency.json").write_text(json.dumps({
        "benchmark": f"MFPINet vs Deep-Z: {args.size}x{args.size}x11x3 stack, width {args.width}",
        "date": str(date.today()), "machine": _machine(), "command": args.command_line,
        "threads": torch.get_num_threads(), "memory_format": args.memory_format, "rows": rows, "speedup_full_stack": speedup}, indent=2))


def main() -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("train-deepz", "train-sr"):
        p = sub.add_parser(name)
        p.add_argument("data")
        p.add_argument("out")
        p.add_argument("--config", required=True, help="the MFPIConfig JSON used for MFPINet (width, patch, batch)")
        p.add_argument("--iterations", type=int, required=True)
        p.add_argument("--lr-scale", type=float, default=1.0, help="learning rates x this (same as MFPINet's)")
        p.add_argument("--validate-every", type=int, default=50)
        p.add_argument("--resume", action="store_true")
    p = sub.add_parser("evaluate")
    p.add_argument("test")
    p.add_argument("--mfpi", required=True)
    p.add_argument("--deepz")
    p.add_argument("--sr")
    p = sub.add_parser("heldout")
    p.add_argument("test", help="held-out fields (e.g. simulate dataset --preset mfpi-cytology-20x075 --seed 1)")
    p.add_argument("--model", default="mfpi-cytology-20x075")
    p.add_argument("--out", help="JSON path (default results/mfpi_heldout.json)")
    p = sub.add_parser("efficiency")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--size", type=int, default=768, help="output side (the input is half)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--memory-format", choices=("channels_last", "contiguous"), default="channels_last")
    args = parser.parse_args()
    argv = ["TEST" if getattr(args, "test", None) == a else a for a in sys.argv[1:]]  # no machine path in results
    args.command_line = "python benchmarks/bench_mfpi.py " + " ".join(argv)
    {"train-deepz": train_deepz, "train-sr": train_sr, "evaluate": evaluate, "heldout": heldout,
     "efficiency": efficiency}[args.cmd](args)


if __name__ == "__main__":
    main()
