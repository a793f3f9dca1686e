"""PSNR against step for Iter and DIP on one benchmark volume: does DIP overtake Iter given more steps?

    python benchmarks/volume_convergence.py --volume heptane --shape 11,50,50 --steps 1500

Runs Iter (paper: Adam 5e-3, TV 1e-3) and DIP (constant start, 500 steps; Adam at each ``--dip-lr``) with early
stopping off, 25 x 25 pupil grid, noise ``--noise``; ES-WMV with the paper's window 100 / patience 1000 is evaluated
along the way. Writes benchmarks/results/volume_convergence_<volume>.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from widefield3d.methods.volume import VolumeConfig, solve
from widefield3d.optics.brightfield import brightfield_stack
from widefield3d.sim.samples.transmittance import BENCHMARK_VOLUMES, benchmark_volume


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", default="heptane", choices=list(BENCHMARK_VOLUMES))
    parser.add_argument("--shape", default="11,50,50", help="Z,Y,X")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian sigma on the stack (background 1)")
    parser.add_argument("--dip-lr", type=float, nargs="+", default=[1e-3, 1e-2])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    shape = tuple(int(n) for n in args.shape.split(","))
    truth = benchmark_volume(args.volume, shape)
    clean = brightfield_stack(truth)
    stack = clean + np.random.default_rng(1).normal(0, args.noise, clean.shape).astype(np.float32)
    runs = {"Iter (lr 5e-3)": dict(solver="iterative")}
    runs.update({f"DIP (lr {lr:g})": dict(solver="dip", dip_lr=lr) for lr in args.dip_lr})
    result = {"command": " ".join(["python"] + sys.argv), "date": time.strftime("%Y-%m-%d %H:%M"),
              "volume": args.volume, "shape": shape, "noise": args.noise, "runs": {}}
    for label, options in runs.items():
        config = VolumeConfig(steps=args.steps, early_stop=False, es_window=100, es_patience=1000, **options)
        r = solve(stack, config, truth=truth, device=args.device, progress=False)
        psnr = r.history["psnr"]
        es = r.es_iteration if r.es_iteration is not None else len(psnr) - 1
        result["runs"][label] = {"psnr": psnr, "seconds": r.seconds, "es_stop": r.es_stop, "es_iteration": es,
                                 "es_psnr": psnr[es]}
        print(f"{label}: last {psnr[-1]:.2f} dB, best {max(psnr):.2f} dB @ {int(np.argmax(psnr))}, ES-WMV stop "
              f"{r.es_stop} -> iterate {es} ({psnr[es]:.2f} dB), {r.seconds:.0f} s", flush=True)
    out = Path(__file__).parent / "results" / f"volume_convergence_{args.volume}"
    out.with_suffix(".json").write_text(json.dumps(result, default=float) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run in result["runs"].items():
        ax.plot(run["psnr"], label=label)
        ax.plot(run["es_iteration"], run["es_psnr"], "kx")
    ax.set(xlabel="step", ylabel="PSNR (dB)", title=f"{args.volume} {'x'.join(map(str, shape[::-1]))}, noise "
           f"{args.noise:g}, 25 x 25 pupil grid (x: ES-WMV choice, window 100 / patience 1000)")
    ax.title.set_fontsize(9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out}.json/.png")


if __name__ == "__main__":
    main()
