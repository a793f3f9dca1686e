"""Bright-field volume reconstruction benchmark: the paper's Tables 1-3 and the speed targets.

    python benchmarks/bench_volume.py --quick    # CPU: all 13 volumes at 50 x 50 x 11, few steps (QUICK below), ~3 CPU h
    python benchmarks/bench_volume.py --quick --volumes heptane,engine --tag a   # a share of it (one process per core)
    python benchmarks/bench_volume.py --quick --tables results/volume_quick_a.json results/volume_quick_b.json
    python benchmarks/bench_volume.py --quick --tables results/volume_quick_es.json --figure es.png  # curves, stops
    python benchmarks/bench_volume.py --quick --methods DIP --noise 0.01,0.02 --steps 1000 \
        --es-grid 20:40,50:200,100:300,100:1000 --tag es      # early-stopping rules compared on the same runs
    python benchmarks/bench_volume.py --full     # GPU: the paper's setting (13 volumes, 128x128x11 and 50x50x11,
                                                 # 25x25 pupil grid, 30000 steps, paper learning rates, ES window 100 /
                                                 # patience 1000), many hours on one GPU

For every volume, size and noise level (Gaussian sigma on the stack, 1 = background) it runs Iter, DIP, DIP + Pretr I
and DIP + Pretr II (the shipped weights) with early stopping off, recording the PSNR of every iterate, and reports:
Table 1/2 the PSNR/SSIM of the last iterate (data range 1, 3D SSIM); Table 3 (DIP, sigma 0.01) where ES-WMV stops,
the PSNR of the iterate it selects, the ratio to the best PSNR of the whole run, its iterations and time. Speed:
rendering an 11 x 128 x 128 stack (25 x 25 pupil grid) and one DIP step at 128 x 128 x 11 (render + network, forward
and backward), medians of repeats. Writes benchmarks/results/volume_{quick,full}.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

from widefield3d.analysis.metrics import ssim
from widefield3d.methods.volume import VolumeConfig, WindowedVariance, solve
from widefield3d.nets.dip import DipNetConfig, DipUNet
from widefield3d.optics.brightfield import BrightfieldRenderer, brightfield_stack
from widefield3d.sim.samples.transmittance import BENCHMARK_VOLUMES, benchmark_volume

QUICK = dict(volumes=list(BENCHMARK_VOLUMES), sizes=[(11, 50, 50)], aperture_samples=25, steps=250,
             constant_steps=100, fit_steps=150, noise=[0.0, 0.01, 0.02], noisy_methods=["Iter", "DIP"], dip_lr=1e-2,
             es_window=20, es_patience=40, speed_repeats=5)
FULL = dict(volumes=list(BENCHMARK_VOLUMES), sizes=[(11, 128, 128), (11, 50, 50)], aperture_samples=25, steps=30000,
            constant_steps=500, fit_steps=750,
            noise=[0.0, 0.01, 0.02], noisy_methods=["Iter", "DIP", "DIP + Pretr I", "DIP + Pretr II"], dip_lr=1e-3,
            es_window=100, es_patience=1000, speed_repeats=5)
METHODS = {"Iter": ("iterative", "none"), "DIP": ("dip", "none"), "DIP + Pretr I": ("dip", "ellipsoid-fit"),
           "DIP + Pretr II": ("dip", "ellipsoid-denoise")}


def _median_seconds(fn, repeats: int) -> dict:
    """Median wall-clock and CPU (process) seconds of ``fn``; on a shared machine the CPU time is the steadier one."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}


def render_multiply_adds(renderer: BrightfieldRenderer, height: int, width: int) -> int:
    """Multiply-adds of one render: the in-volume taps of every ray and focus plane, times the pixels."""
    taps = renderer.taps
    first, step, n_focus = renderer.focus
    inside = sum(int(np.sum((taps.delta + first + f * step >= 0) & (taps.delta + first + f * step < renderer.n_layers)))
                 for f in range(n_focus))
    return inside * height * width


def matmul_rate(repeats: int, device: torch.device) -> float:
    """Multiply-adds per second of float32 2048 x 2048 ``torch.matmul`` (median of ``repeats``, after a warm-up)."""
    a, b = torch.rand((2048, 2048), device=device), torch.rand((2048, 2048), device=device)

    def product():
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return 2048**3 / _median_seconds(product, repeats)["wall_s"]


def speed(repeats: int, device: torch.device) -> dict:
    """Render time (11 x 128 x 128, 441 rays) and one DIP step at 128 x 128 x 11 with the default network; the render's
    multiply-add rate as a fraction of the same run's matmul rate (measured before and after the render timing)."""
    volume = torch.as_tensor(benchmark_volume("engine", (11, 128, 128)), device=device)
    renderer = BrightfieldRenderer(11)

    def render():
        with torch.no_grad():
            renderer(volume)
        if device.type == "cuda":
            torch.cuda.synchronize()

    matmul_before = matmul_rate(repeats, device)
    render_time = _median_seconds(render, repeats)
    matmul = (matmul_before + matmul_rate(repeats, device)) / 2
    macs = render_multiply_adds(renderer, 128, 128)

    net = DipUNet(DipNetConfig()).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    z = torch.rand((1, 1, 11, 128, 128), device=device)
    observed = renderer(volume)

    def step():
        logits = net.logits(z)[0, 0]
        loss = torch.mean(torch.abs(renderer.render_log(torch.nn.functional.logsigmoid(logits)) - observed))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    def network_only():
        loss = net(z).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"render_11x128x128": render_time, "rays": renderer.n_rays, "render_multiply_adds": macs,
            "render_multiply_adds_per_s": macs / render_time["wall_s"], "matmul_multiply_adds_per_s": matmul,
            "render_fraction_of_matmul": macs / render_time["wall_s"] / matmul,
            "dip_step_128x128x11": _median_seconds(step, repeats),
            "dip_network_step_only": _median_seconds(network_only, repeats),
            "network_channels": list(DipNetConfig().channels), "network_parameters": net.n_parameters(),
            "threads": torch.get_num_threads(), "device": str(device)}


def _wait_for_denoiser() -> None:
    """Pretr II needs the shipped weights; wait for them (they may still be training beside this benchmark)."""
    from widefield3d.errors import InputError
    from widefield3d.methods.volume import DEFAULT_DENOISER, METHOD
    from widefield3d.zoo import resolve_model

    while True:
        try:
            resolve_model(DEFAULT_DENOISER, METHOD)
            return
        except InputError:
            print("waiting for the Pretr II weights ...", flush=True)
            time.sleep(60)


class StoppingRules:
    """Several ES-WMV (window, patience) rules fed the iterates of one run: where each stops and what it selects."""

    def __init__(self, grid: list[tuple[int, int]]):
        self.rules = {f"{w}:{p}": WindowedVariance(w, p) for w, p in grid}
        self.stops: dict[str, tuple[int, int]] = {}

    def __call__(self, step: int, iterate: torch.Tensor) -> None:
        for key, rule in self.rules.items():
            if key not in self.stops and rule.update(iterate):
                self.stops[key] = (step, rule.best_iteration)

    def summary(self, psnr: list[float]) -> dict[str, dict]:
        """Per rule: the stop step (None: never), the selected iterate (at the stop, else at the end), its PSNR."""
        out = {}
        for key, rule in self.rules.items():
            stop, chosen = self.stops.get(key, (None, rule.best_iteration if rule.best_iteration >= 0 else None))
            out[key] = {"stop": stop, "iteration": chosen, "psnr": psnr[chosen] if chosen is not None else None}
        return out


def run(setting: dict, device: str, progress: bool, save=lambda rows: None) -> list[dict]:
    """All runs of ``setting``; ``save(rows)`` is called after each one (a killed run keeps what it finished)."""
    chosen = setting.get("methods")  # --methods: these at every noise level; else all without noise
    jobs = [(shape, name, sigma, label) for shape in setting["sizes"] for name in setting["volumes"]
            for sigma in setting["noise"]
            for label in (chosen or (METHODS if sigma == 0 else setting["noisy_methods"]))]
    jobs.sort(key=lambda job: job[3] == "DIP + Pretr II")  # Pretr II last (stable sort keeps the rest in order)
    rows = []
    for shape, name, sigma, label in jobs:
        if label == "DIP + Pretr II":
            _wait_for_denoiser()
        truth = benchmark_volume(name, shape)
        clean = brightfield_stack(truth, aperture_samples=setting["aperture_samples"])
        stack = clean + np.random.default_rng(1).normal(0, sigma, clean.shape).astype(np.float32)
        method, start = METHODS[label]
        config = VolumeConfig(solver=method, steps=setting["steps"], early_stop=False, pretrained=start,
                              aperture_samples=setting["aperture_samples"], es_window=setting["es_window"],
                              es_patience=setting["es_patience"], dip_lr=setting["dip_lr"],
                              constant_steps=setting["constant_steps"], fit_steps=setting["fit_steps"])
        rules = StoppingRules(setting.get("es_grid", []))
        r = solve(stack, config, truth=truth, device=device, progress=progress,
                  on_iterate=rules if rules.rules else None)
        psnr = r.history["psnr"]
        if method == "dip" and setting.get("dip_lr_given"):
            label = f"{label} (lr {setting['dip_lr']:g})"  # its own column, beside the setting's learning rate
        row = {"size": "x".join(map(str, shape[::-1])), "volume": name, "noise": sigma, "method": label,
               "psnr": psnr[-1], "ssim": ssim(r.transmittance, truth, data_range=1.0), "best_psnr": max(psnr),
               "best_step": int(np.argmax(psnr)), "steps": r.iterations, "seconds": r.seconds, "es_stop": r.es_stop,
               "es_iteration": r.es_iteration, "es_psnr": psnr[r.es_iteration] if r.es_iteration is not None else None,
               "es_seconds": r.es_seconds, "psnr_curve": [round(v, 3) for v in psnr]}
        if rules.rules:
            row["es_grid"] = rules.summary(psnr)
        rows.append(row)
        save(rows)
        print(f"{row['size']} {name:10s} sigma {sigma:<5g} {label:15s} PSNR {row['psnr']:6.2f} "
              f"(best {row['best_psnr']:6.2f} @ {row['best_step']}) SSIM {row['ssim']:.4f} "
              f"ES stop {row['es_stop']} -> {row['es_psnr'] or float('nan'):.2f} dB, {r.seconds:.0f} s", flush=True)
    return rows


def noise_table(rows: list[dict]) -> str:
    """Table 2 per volume, one per grid size, every (method, noise, steps) a column: PSNR of the last iterate (the
    run's best and its step), then averages of the last iterate, the best iterate and the paper's ES-WMV rule
    (100:1000) where it was evaluated, and the mean SSIM of the last iterate."""
    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        sub = [r for r in rows if r["size"] == size]
        cols = sorted(dict.fromkeys((r["method"], r["noise"], r["steps"]) for r in sub),
                      key=lambda c: (c[1], c[0] != "Iter", c[2]))
        cell = {(r["method"], r["noise"], r["steps"], r["volume"]): r for r in sub}
        names = list(dict.fromkeys(r["volume"] for r in sub))
        out += [f"\nTable 2 per volume ({size}): PSNR (dB) of the last iterate (best @ step)\n| volume | "
                + " | ".join(f"{m}, {n:g}, {k} steps" for m, n, k in cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name in names:
            out.append(f"| {name} | " + " | ".join(
                f"{r['psnr']:.2f} ({r['best_psnr']:.2f} @ {r['best_step']})" if (r := cell.get((*c, name))) else "-"
                for c in cols) + " |")
        for label, digits, value in (
                ("average, last iterate", 2, lambda r: r["psnr"]),
                ("average, best iterate", 2, lambda r: r["best_psnr"]),
                ("average, ES-WMV 100:1000", 2, lambda r: r.get("es_grid", {}).get("100:1000", {}).get("psnr")),
                ("average SSIM, last iterate", 4, lambda r: r["ssim"])):
            cells = []
            for c in cols:
                vals = [value(cell[(*c, v)]) for v in names if (*c, v) in cell]
                cells.append(f"{np.mean(vals):.{digits}f} ({len(vals)})" if vals and None not in vals else "-")
            out.append(f"| **{label}** | " + " | ".join(cells) + " |")
    return "\n".join(out)


def es_grid_table(rows: list[dict]) -> str:
    """Per stopping rule and noise level: mean ratio of the selected iterate's PSNR to the run's best (%), the share
    of runs at >= 98 %, and the median stop step against the median best step."""
    graded = [r for r in rows if r.get("es_grid")]
    if not graded:
        return ""
    out = ["\nEarly-stopping rules on the same runs (window:patience): mean PSNR ratio to the run's best (%), runs "
           ">= 98 %, median stop step (never: the end), median best step\n| method | noise | rule | ratio (%) | >= 98 % "
           "| stop step | best step |\n|---|---|---|---|---|---|---|"]
    for label in dict.fromkeys(r["method"] for r in graded):
        for sigma in dict.fromkeys(r["noise"] for r in graded):
            sel = [r for r in graded if r["method"] == label and r["noise"] == sigma]
            for key in (sel[0]["es_grid"] if sel else {}):
                ratios = [100 * r["es_grid"][key]["psnr"] / r["best_psnr"] for r in sel
                          if r["es_grid"][key]["psnr"] is not None]
                stops = [r["es_grid"][key]["stop"] if r["es_grid"][key]["stop"] is not None else r["steps"] for r in sel]
                out.append(f"| {label} | {sigma:g} | {key} | {np.mean(ratios):.2f} | {sum(x >= 98 for x in ratios)} of "
                           f"{len(sel)} | {np.median(stops):.0f} | {np.median([r['best_step'] for r in sel]):.0f} |")
    return "\n".join(out)


def start_table(rows: list[dict], checkpoints=(100, 250, 500), reach: float = 0.98) -> str:
    """How fast each DIP start climbs, per grid size, noise level and run length: the mean PSNR at a few steps, and
    the median step at which a run first reaches ``reach`` of the best PSNR of the constant-start DIP run on the
    same volume (runs that never do count as their length; the count of those in brackets); over the volumes that
    every start has run."""
    def variant(r):  # "DIP + Pretr II (lr 0.001)" -> " (lr 0.001)": runs are compared within one variant
        _, sep, tail = r["method"].partition(" (")
        return sep + tail

    curves = [r for r in rows if r["method"].startswith("DIP") and r.get("psnr_curve")]
    base = {(r["size"], r["noise"], r["steps"], variant(r), r["volume"]): r for r in curves
            if r["method"] == "DIP" + variant(r)}
    out = []
    for size, sigma, steps, var in dict.fromkeys((r["size"], r["noise"], r["steps"], variant(r)) for r in curves):
        sel = [r for r in curves if (r["size"], r["noise"], r["steps"], variant(r)) == (size, sigma, steps, var)
               and (size, sigma, steps, var, r["volume"]) in base]
        labels = list(dict.fromkeys(r["method"] for r in sel))
        common = set.intersection(*({r["volume"] for r in sel if r["method"] == m} for m in labels)) if sel else set()
        sel = [r for r in sel if r["volume"] in common]
        if len(labels) < 2 or not common:
            continue
        marks = [c for c in checkpoints if c < steps]
        out += [f"\nDIP starts{var} ({size}, noise {sigma:g}, {steps} steps, the volumes every start ran): mean PSNR "
                f"(dB) at step, and the median step to {100 * reach:.0f} % of the constant start's best\n| start | "
                "volumes | " + " | ".join(f"step {c}" for c in marks) + f" | last | step to {100 * reach:.0f} % |",
                "|---" * (len(marks) + 4) + "|"]
        for label in labels:
            runs = [r for r in sel if r["method"] == label]
            reached = []
            for r in runs:
                target = reach * base[(size, sigma, steps, var, r["volume"])]["best_psnr"]
                hit = np.flatnonzero(np.asarray(r["psnr_curve"]) >= target)
                reached.append(int(hit[0]) if hit.size else None)
            never = sum(h is None for h in reached)
            median = np.median([steps if h is None else h for h in reached])
            out.append(f"| {label} | {len(runs)} | " + " | ".join(
                f"{np.mean([r['psnr_curve'][c] for r in runs]):.2f}" for c in marks)
                + f" | {np.mean([r['psnr'] for r in runs]):.2f} | {median:.0f}" + (f" ({never} never)" if never else "")
                + " |")
    return "\n".join(out)


def es_figure(rows: list[dict], path: Path) -> None:
    """One panel per run with stopping rules: the PSNR curve and, per rule, the iterate it selects (a dot) and the
    step at which it stops (a dashed line; none if it never stopped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graded = [r for r in rows if r.get("es_grid") and r.get("psnr_curve")]
    if not graded:
        raise SystemExit("--figure: no run in these files has stopping rules (--es-grid) and a PSNR curve")
    cols = min(5, len(graded))
    n_rows = -(-len(graded) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.0 * cols, 2.3 * n_rows), squeeze=False, sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, r in zip(axes.flat, graded):
        ax.plot(r["psnr_curve"], color="0.3", lw=1)
        for colour, (key, rule) in zip(colours, r["es_grid"].items()):
            if rule["iteration"] is not None:
                ax.plot(rule["iteration"], rule["psnr"], "o", color=colour, ms=4, label=key)
            if rule["stop"] is not None:
                ax.axvline(rule["stop"], color=colour, ls="--", lw=0.8)
        ax.set_title(f"{r['volume']}, noise {r['noise']:g} (best @ {r['best_step']})", fontsize=8)
        ax.tick_params(labelsize=7)
        chosen = [rule["psnr"] for rule in r["es_grid"].values() if rule["psnr"] is not None]
        ax.set_ylim(min([r["best_psnr"] - 12, *chosen]) - 1, r["best_psnr"] + 1)
    for ax in axes.flat[len(graded):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6, title="window:patience", title_fontsize=6)
    fig.supxlabel("step")
    fig.supylabel("PSNR (dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")


def tables(rows: list[dict]) -> str:
    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        sub = [r for r in rows if r["size"] == size]
        labels = list(dict.fromkeys(r["method"] for r in sub))
        out.append(f"\nTable 1 ({size}, noise 0): PSNR (dB) / SSIM\n| volume | " + " | ".join(labels) + " |")
        out.append("|---" * (len(labels) + 1) + "|")
        for name in dict.fromkeys(r["volume"] for r in sub if r["noise"] == 0):
            cells = [next((f"{r['psnr']:.2f} / {r['ssim']:.4f}" for r in sub
                           if r["volume"] == name and r["method"] == m and r["noise"] == 0), "-") for m in labels]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        for sigma in dict.fromkeys(r["noise"] for r in sub):
            avg = []
            for m in labels:
                sel = [r for r in sub if r["noise"] == sigma and r["method"] == m]
                avg.append(f"{np.mean([r['psnr'] for r in sel]):.2f} / {np.mean([r['ssim'] for r in sel]):.4f}"
                           if sel else "-")
            out.append(f"| **average, noise {sigma:g}** | " + " | ".join(avg) + " |")
        es = [r for r in sub if r["method"] == "DIP" and r["noise"] == 0.01]
        if es:
            out.append(f"\nTable 3 ({size}, DIP, noise 0.01): ES-WMV\n| volume | PSNR at stop | SSIM (last) | ratio "
                       "to best (%) | stop step | selected iterate | time to stop (s) |\n|---|---|---|---|---|---|---|")
            for r in es:
                ratio = 100 * r["es_psnr"] / r["best_psnr"] if r["es_psnr"] is not None else float("nan")
                out.append(f"| {r['volume']} | {r['es_psnr'] or float('nan'):.2f} | {r['ssim']:.4f} | {ratio:.2f} | "
                           f"{r['es_stop']} | {r['es_iteration']} | {r['es_seconds'] or float('nan'):.0f} |")
            ratios = [100 * r["es_psnr"] / r["best_psnr"] for r in es if r["es_psnr"] is not None]
            out.append(f"| **average** | {np.mean([r['es_psnr'] for r in es if r['es_psnr'] is not None]):.2f} | | "
                       f"{np.mean(ratios):.2f} | | | |")
    return "\n".join(out) + noise_table(rows) + es_grid_table(rows) + start_table(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--quick", action="store_true", help="CPU subset")
    which.add_argument("--full", action="store_true", help="the paper's setting (GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-speed", action="store_true", help="only the tables")
    parser.add_argument("--speed-only", action="store_true", help="only the speed measurements")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--volumes", help="comma-separated subset of the 13 volumes (to split the run over processes)")
    parser.add_argument("--tag", default="", help="suffix of the result file, e.g. one per process")
    parser.add_argument("--tables", nargs="+", metavar="JSON", help="print the tables of these result files, merged")
    parser.add_argument("--methods", help="comma-separated subset of: " + ", ".join(METHODS) + " (run at every noise "
                        "level; default: all four without noise, the setting's noisy_methods with noise)")
    parser.add_argument("--noise", help="comma-separated noise levels (default: the setting's)")
    parser.add_argument("--steps", type=int, help="steps per run (default: the setting's)")
    parser.add_argument("--dip-lr", type=float, help="DIP learning rate (default: the setting's); its runs are "
                        "labelled with it, e.g. 'DIP (lr 0.001)'")
    parser.add_argument("--es-grid", help="further ES-WMV rules evaluated on the same runs, window:patience,...")
    parser.add_argument("--figure", type=Path, help="with --tables: plot the runs' PSNR curves and the rules' stops "
                        "to this PNG")
    args = parser.parse_args(argv)
    name = "quick" if args.quick else "full"
    setting = dict(QUICK if args.quick else FULL)
    if args.tables:
        rows = [row for f in args.tables for row in json.loads(Path(f).read_text())["rows"]]
        print(tables(rows))
        if args.figure:
            es_figure(rows, args.figure)
        return
    if args.figure:
        parser.error("--figure needs --tables")
    if args.volumes:
        unknown = set(args.volumes.split(",")) - set(BENCHMARK_VOLUMES)
        if unknown:
            parser.error(f"unknown volumes {sorted(unknown)}; choose from {list(BENCHMARK_VOLUMES)}")
        setting["volumes"] = args.volumes.split(",")
    if args.methods:
        unknown = set(args.methods.split(",")) - set(METHODS)
        if unknown:
            parser.error(f"unknown methods {sorted(unknown)}; choose from {list(METHODS)}")
        setting["methods"] = args.methods.split(",")
    if args.noise:
        setting["noise"] = [float(v) for v in args.noise.split(",")]
    if args.steps:
        setting["steps"] = args.steps
    if args.dip_lr is not None:
        if not args.dip_lr > 0:
            parser.error(f"--dip-lr must be > 0, got {args.dip_lr}")
        setting.update(dip_lr=args.dip_lr, dip_lr_given=True)
    if args.es_grid:
        try:
            setting["es_grid"] = [tuple(int(v) for v in pair.split(":")) for pair in args.es_grid.split(",")]
            for window, patience in setting["es_grid"]:
                WindowedVariance(window, patience)
        except ValueError as err:  # InputError is a ValueError
            parser.error(f"--es-grid {args.es_grid!r}: {err}; expected window:patience pairs such as 20:40,100:1000")
    from widefield3d.device import resolve_device

    device = resolve_device(args.device, "--device")
    t0 = time.perf_counter()
    result = {"setting": name, "parameters": setting, "machine": platform.processor() or platform.machine(),
              "torch_threads": torch.get_num_threads(), "kernel_threads": numba.get_num_threads(),
              "command": " ".join(["python", "benchmarks/bench_volume.py"] + sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    if not args.skip_speed:
        result["speed"] = speed(setting["speed_repeats"], device)
        print(json.dumps(result["speed"], indent=1), flush=True)
    suffix = ("_speed" if args.speed_only else "") + (f"_{args.tag}" if args.tag else "")
    out = Path(__file__).parent / "results" / f"volume_{name}{suffix}.json"
    out.parent.mkdir(exist_ok=True)

    def save(rows=None):
        if rows is not None:
            result["rows"] = rows
        result["seconds"] = time.perf_counter() - t0
        out.write_text(json.dumps(result, indent=1, default=float) + "\n")

    if not args.speed_only:
        run(setting, args.device, args.progress, save)
        print(tables(result["rows"]))
    save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
