#!/usr/bin/env bash
# One-shot GPU training of the shipped models (docs/training.md, "One-shot GPU script").
# Usage: benchmarks/train_gpu.sh --out DIR [--models a,b] [--device cuda|cpu|auto] [--workers N]
#        [--budget-minutes 9] [--data DIR] [--smoke]
# Sets up .venv as `make` does and runs benchmarks/train_gpu.py with it; PY=/path/to/python runs that interpreter
# instead (e.g. PY=python3 PYTHONPATH=src on a machine without internet where the dependencies are installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PY:-}" ]]; then
    make --no-print-directory -C "$root" .venv/.installed
    PY="$root/.venv/bin/python"
fi
exec "$PY" "$root/benchmarks/train_gpu.py" "$@"
