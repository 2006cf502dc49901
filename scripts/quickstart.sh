#!/usr/bin/env bash
# quickstart.sh: set up, build, run the quick-start sweep (heuristic agents, no
# API key) and draw its heatmap. Prints where the results and the picture are.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

OUT=results/quickstart.h5
PNG=results/quickstart_heatmap.png
rm -rf "$OUT" "$OUT.parts"
./build/bazaar expand sweeps/quickstart.json -n 3
./build/bazaar run sweeps/quickstart.json -o "$OUT"
# Debian's python3 has h5py/numpy/matplotlib (a pyenv/venv python3 may not).
/usr/bin/python3 analysis/heatmap.py "$OUT" -o "$PNG"
echo
echo "results: $(pwd)/$OUT"
echo "heatmap: $(pwd)/$PNG"
