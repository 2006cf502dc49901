#!/usr/bin/env bash
# sched_efficiency.sh: wall time of a heuristic sweep on 1 rank and on 2 ranks
# (mpiexec), and the parallel efficiency T1 / (2 * T2). Prints figures only.
# usage: bench/sched_efficiency.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
SPEC=$(mktemp /tmp/bz_eff_XXXX.json)
cat > "$SPEC" <<'JSON'
{"name": "efficiency", "game": "electricity", "seed": 3, "repetitions": 50,
 "fixed": {"n_agents": 20, "max_turns": 24,
           "lineup": ["heuristic:truthful?skill=0.9", "heuristic:greedy?skill=0.7",
                      "heuristic:zi", "heuristic:reciprocal?skill=0.8"]},
 "grid": {"scarcity": [0.8, 1.0, 1.2], "communication": [true, false]}}
JSON
t() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; awk -v a="$(date +%s.%N)" -v b="$s" 'BEGIN{printf "%.2f", a-b}'; }
rm -rf /tmp/bz_eff1.h5* /tmp/bz_eff2.h5*
T1=$(t "$B/bazaar" run "$SPEC" -o /tmp/bz_eff1.h5 --quiet)
T2=$(t mpiexec -n 2 "$B/bazaar" run "$SPEC" -o /tmp/bz_eff2.h5 --quiet)
awk -v a="$T1" -v b="$T2" 'BEGIN{printf "heuristic sweep of 300 games (N=20, 24 turns): 1 rank %.2fs, 2 ranks %.2fs, speed-up %.2f, efficiency %.2f\n", a, b, a/b, a/(2*b)}'
rm -rf /tmp/bz_eff1.h5* /tmp/bz_eff2.h5* "$SPEC"
