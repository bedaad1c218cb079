#!/usr/bin/env bash
# One lent GPU, at most 10 minutes: the gpu profile's decisive S1.2 sub-grid (N, strong and weak
# bias on digit 2, texture 0; VGG16 U-Nets, the paper's recipe), results under results/gpu/.
# Resumable: run it again after an interruption and finished epochs and networks are kept.
# A CPU check of the same script: bash benchmarks/device_run.sh --device cpu --scale 0.01
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  python3 -m venv .venv && PY=.venv/bin/python
  "$PY" -m pip install -q -c requirements-lock.txt -e .
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec "$PY" benchmarks/device_run.py --device "${DEVICE:-cuda}" "$@"
