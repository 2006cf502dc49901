#!/usr/bin/env bash
# sched_efficiency.sh: a heuristic sweep on 1 rank and on 2 ranks (mpiexec):
# the play phase's rate (games/s, from the last progress line) and the wall
# time end to end (start-up, play, and rank 0's merge), with the efficiency
# rate2 / (2 rate1) and T1 / (2 T2). Prints figures only.
# usage: bench/sched_efficiency.sh [BUILD_DIR] [REPETITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
REPS=${2:-250}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
SPEC=$(mktemp /tmp/bz_eff_XXXX.json)
cat > "$SPEC" <<JSON
{"name": "efficiency", "game": "electricity", "seed": 3, "repetitions": $REPS,
 "fixed": {"n_agents": 20, "max_turns": 24,
           "lineup": ["heuristic:truthful?skill=0.9", "heuristic:greedy?skill=0.7",
                      "heuristic:zi", "heuristic:reciprocal?skill=0.8"]},
 "grid": {"scarcity": [0.8, 1.0, 1.2], "communication": [true, false]}}
JSON
run() { # prints "wall_seconds play_rate"
  local out=$1; shift
  rm -rf "$out" "$out.parts"
  local s=$(date +%s.%N)
  local rate=$("$@" run "$SPEC" -o "$out" --progress-interval 1000 2>&1 |
               sed -n 's/^progress: .*, \([0-9.]*\) games\/s.*/\1/p' | tail -1)
  awk -v a="$(date +%s.%N)" -v b="$s" -v r="$rate" 'BEGIN{printf "%.2f %s", a-b, r}'
  rm -rf "$out" "$out.parts"
}
read T1 R1 <<<"$(run /tmp/bz_eff1.h5 "$B/bazaar")"
read T2 R2 <<<"$(run /tmp/bz_eff2.h5 mpiexec -n 2 "$B/bazaar")"
awk -v g="$((REPS * 6))" -v t1="$T1" -v t2="$T2" -v r1="$R1" -v r2="$R2" 'BEGIN{
  printf "heuristic sweep of %d games (N=20, 24 turns)\n", g
  printf "  play phase: 1 rank %.0f games/s, 2 ranks %.0f games/s, efficiency %.2f\n", r1, r2, r2/(2*r1)
  printf "  end to end: 1 rank %.2fs, 2 ranks %.2fs, efficiency %.2f (the merge on rank 0 is serial)\n", t1, t2, t1/(2*t2)}'
rm -f "$SPEC"
