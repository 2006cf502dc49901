#!/usr/bin/env bash
# quickstart.sh: set up, build, run the quick-start sweep (heuristic agents, no
# API key), draw its heatmap and write its report. Prints where the results,
# the picture and the report are.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

OUT=results/quickstart.h5
PNG=results/quickstart_heatmap.png
REPORT=results/quickstart_report
rm -rf "$OUT" "$OUT.parts"
./build/bazaar expand sweeps/quickstart.json -n 3
./build/bazaar run sweeps/quickstart.json -o "$OUT"
# Debian's python3 has h5py/numpy/scipy/matplotlib/pandas (a pyenv/venv python3 may not).
# the paired effect of the capability gap (each column against gap 0, same
# markets) with its 95% CI, games and environments per cell
/usr/bin/python3 analysis/heatmap.py "$OUT" -o "$PNG" --stat paired
/usr/bin/python3 analysis/report.py "$OUT" -o "$REPORT"
echo
echo "results: $(pwd)/$OUT"
echo "heatmap: $(pwd)/$PNG"
echo "report:  $(pwd)/$REPORT/index.html (open it in a browser)"
