#!/usr/bin/env bash
# sched_efficiency.sh: issue 14's figures as ratios measured in one run.
#   1. A heuristic sweep on 1 rank and on 2 ranks (mpiexec), alternated
#      ROUNDS times (medians): the play phase's rate (games/s, from the last
#      progress line) and the wall time end to end (start-up, play, rank 0's
#      merge): end to end vs play on 1 rank, and the 2-rank efficiencies
#      rate2 / (2 rate1) and T1 / (2 T2).
#   2. build/bench_merge on the same sweep: records vs no records, the
#      merge's MB/s, its phases and its peak memory.
#   3. BENCH_LLM=1: build/bench_llm's figures too (the LLM transport's part).
# Prints figures only. The machine's load is printed: on a shared machine
# compare ratios taken in one run, not seconds across runs.
# usage: bench/sched_efficiency.sh [BUILD_DIR] [REPETITIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
REPS=${2:-250}
ROUNDS=${3:-${ROUNDS:-1}}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
SPEC=$(mktemp /tmp/bz_eff_XXXX.json)
cat > "$SPEC" <<JSON
{"name": "efficiency", "game": "electricity", "seed": 3, "repetitions": $REPS,
 "fixed": {"n_agents": 20, "max_turns": 24,
           "lineup": ["heuristic:truthful?skill=0.9", "heuristic:greedy?skill=0.7",
                      "heuristic:zi", "heuristic:reciprocal?skill=0.8"]},
 "grid": {"supply_ratio": [0.8, 1.0, 1.2], "communication": [true, false]}}
JSON
trap 'rm -f "$SPEC"' EXIT
run() { # prints "wall_seconds play_rate"
  local out=$1; shift
  rm -rf "$out" "$out.parts"
  local s=$(date +%s.%N)
  local rate=$("$@" run "$SPEC" -o "$out" --progress-interval 1000 2>&1 |
               sed -n 's/^progress: .*, \([0-9.]*\) games\/s.*/\1/p' | tail -1)
  [ -f "$out" ] || { echo "sched_efficiency: the run did not write $out" >&2; exit 1; }
  awk -v a="$(date +%s.%N)" -v b="$s" -v r="$rate" 'BEGIN{printf "%.3f %s", a-b, r}'
  rm -rf "$out" "$out.parts"
}
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
T1s=() R1s=() T2s=() R2s=()
for ((i = 0; i < ROUNDS; i++)); do
  read T1 R1 <<<"$(run /tmp/bz_eff1.h5 "$B/bazaar")"
  read T2 R2 <<<"$(run /tmp/bz_eff2.h5 mpiexec -n 2 "$B/bazaar")"
  T1s+=("$T1") R1s+=("$R1") T2s+=("$T2") R2s+=("$R2")
done
T1=$(printf '%s\n' "${T1s[@]}" | median) R1=$(printf '%s\n' "${R1s[@]}" | median)
T2=$(printf '%s\n' "${T2s[@]}" | median) R2=$(printf '%s\n' "${R2s[@]}" | median)
awk -v g="$((REPS * 6))" -v t1="$T1" -v t2="$T2" -v r1="$R1" -v r2="$R2" -v n="$ROUNDS" 'BEGIN{
  printf "heuristic sweep of %d games (N=20, 24 turns), medians of %d alternated rounds\n", g, n
  printf "  play phase: 1 rank %.0f games/s, 2 ranks %.0f games/s, efficiency %.2f\n", r1, r2, r2/(2*r1)
  printf "  end to end: 1 rank %.2fs, 2 ranks %.2fs, efficiency %.2f\n", t1, t2, t1/(2*t2)
  printf "  end to end vs play, 1 rank: %.2f (play %.2fs)\n", t1/(g/r1), g/r1
  printf "  2 ranks vs 1 rank, end to end: %.2f\n", t2/t1}'
if [ -x "$B/bench_merge" ]; then
  echo "merge and records, one rank ($B/bench_merge $((REPS * 6)) 2):"
  "$B/bench_merge" "$((REPS * 6))" 2 | sed 1d
fi
if [ -n "${BENCH_LLM:-}" ] && [ -x "$B/bench_llm" ]; then
  echo "LLM transport ($B/bench_llm):"
  "$B/bench_llm"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
