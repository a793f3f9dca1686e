"""Run every benchmark script in this folder, one after the other (results in benchmarks/results/)."""

import subprocess
import sys
from pathlib import Path

SCRIPTS = ("physics_checks.py", "bench_simulation.py", "bench_tiling.py", "bench_training.py")

if __name__ == "__main__":
    here = Path(__file__).parent
    for name in SCRIPTS:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, str(here / name)], check=True)
