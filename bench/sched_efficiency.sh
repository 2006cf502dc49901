#!/usr/bin/env bash
# sched_efficiency.sh: issue 14's figures as ratios measured in one run.
#   1. A heuristic sweep on 1 rank and on 2 ranks (mpiexec), each with the
#      follower merge (the default: the merge runs during the play) and
#      without it (BAZAAR_MERGE_FOLLOW=0: rank 0 merges after the play), the
#      four alternated ROUNDS times (medians): the play phase's rate
#      (games/s, from the last progress line) and the wall time end to end
#      (start-up, play, merge): end to end vs play on 1 rank, and the 2-rank
#      efficiencies rate2 / (2 rate1) and T1 / (2 T2); and how many games the
#      follower had merged when it read the final message (BAZAAR_FOLLOW_STATS).
#      Each figure for every layout of LAYOUT (bazaar run --layout: plain,
#      virtual, or both, the default: alternated within each round), and
#      virtual vs plain end to end when both ran.
#      Per core: 1 rank pinned to one CPU (taskset; a job runs one rank per
#      core, so that rank has no idle CPU for the follower or the shard
#      threads, as neither of the 2 ranks has) against the 2 ranks, following
#      (the default where more than one rank plays: the follower at nice 0)
#      and not; and the same net of the fixed costs (start-up, MPI's, and
#      the end), measured as a 6-game sweep on 1 and on 2 ranks each round,
#      and on 2 ranks with OMPI_MCA_pml=ob1 (unless OMPI_MCA_pml is set):
#      OpenMPI 4.1's MPI_Init probes UCX for 0.2 s on a machine without a
#      fabric.
#   2. build/bench_merge on the same sweep: records vs no records, the
#      merge's MB/s, its phases and its peak memory.
#   3. Per core at SCALE times the games (SCALE=4 by default, 0 skips it):
#      the pinned rank against the 2 ranks (each layout, following), ROUNDS
#      times alternated: the fixed costs (MPI's start-up, the merge's end,
#      the shards' removal: about 0.4-0.7 s) weigh on a 9,000-game sweep of
#      4 s; at 36,000 games they are a quarter as heavy, as in a sweep of
#      minutes or hours.
#   4. BENCH_LLM=1: build/bench_llm's figures too (the LLM transport's part).
# Prints figures only. The machine's load is printed: on a shared machine
# compare ratios taken in one run, not seconds across runs.
# usage: [LAYOUT=plain|virtual|both] [SCALE=N] bench/sched_efficiency.sh [BUILD_DIR] [REPETITIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
REPS=${2:-250}
ROUNDS=${3:-${ROUNDS:-1}}
SCALE=${SCALE:-4}
case $SCALE in
  '' | *[!0-9]*) echo "sched_efficiency: SCALE: expected a whole number (0: skip), got '$SCALE'" >&2; exit 2 ;;
esac
case ${LAYOUT:-both} in
  plain | virtual) LAYOUTS=$LAYOUT ;;
  both) LAYOUTS="plain virtual" ;;
  *) echo "sched_efficiency: LAYOUT: expected plain, virtual or both, got '$LAYOUT'" >&2; exit 2 ;;
esac
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
SPEC=$(mktemp /tmp/bz_eff_XXXX.json)
cat > "$SPEC" <<JSON
{"name": "efficiency", "game": "electricity", "seed": 3, "repetitions": $REPS,
 "fixed": {"n_agents": 20, "max_turns": 24,
           "lineup": ["heuristic:truthful?skill=0.9", "heuristic:greedy?skill=0.7",
                      "heuristic:zi", "heuristic:reciprocal?skill=0.8"]},
 "grid": {"supply_ratio": [0.8, 1.0, 1.2], "communication": [true, false]}}
JSON
STATS=$(mktemp /tmp/bz_eff_XXXX.stats)
trap 'rm -f "$SPEC" "$STATS"' EXIT
run() { # LAYOUT FOLLOW OUT CMD...: prints "wall_seconds play_rate"
  local layout=$1 follow=$2 out=$3; shift 3
  rm -rf "$out" "$out.parts"
  local s=$(date +%s.%N)
  local rate=$(BAZAAR_MERGE_FOLLOW=$follow BAZAAR_FOLLOW_STATS=$STATS \
               "$@" run "$SPEC" -o "$out" --layout "$layout" --progress-interval 1000 2>&1 |
               sed -n 's/^progress: .*, \([0-9.]*\) games\/s.*/\1/p' | tail -1)
  [ -f "$out" ] || { echo "sched_efficiency: the run did not write $out" >&2; exit 1; }
  awk -v a="$(date +%s.%N)" -v b="$s" -v r="$rate" 'BEGIN{printf "%.3f %s", a-b, r}'
  rm -rf "$out" "$out.parts"
}
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A T R DURING AFTER FCPU FSER FTHR # keys: LAYOUT RANKS FOLLOW (p: 1 rank on 1 CPU)
F1="" F2="" F2F="" F2OB=""
# the CPU one rank is pinned to for the per-core figure (a job runs one rank
# per core: the 1-rank run then has no idle CPU for the follower or the
# shard threads, as each of the 2 ranks has none)
PIN=$(taskset -pc $$ 2>/dev/null | sed -n 's/.*: \([0-9]*\).*/\1/p')
command -v taskset >/dev/null || PIN=""

# each comparison is run back to back (following and not, on 1 and on 2
# ranks; then the pinned rank), in an order that flips every round
for ((i = 0; i < ROUNDS; i++)); do
  [ $((i % 2)) = 0 ] && FOLLOWS="1 0" || FOLLOWS="0 1"
  for l in $LAYOUTS; do
    for n in 1 2; do
      for f in $FOLLOWS; do
        if [ $n = 1 ]; then
          read t r <<<"$(run $l $f /tmp/bz_eff1.h5 "$B/bazaar")"
        else
          read t r <<<"$(run $l $f /tmp/bz_eff2.h5 mpiexec -n 2 "$B/bazaar")"
        fi
        T[${l}$n$f]+="$t " R[${l}$n$f]+="$r "
        if [ $f = 1 ] && [ $n = 1 ]; then
          DURING[$l]+="$(sed -n 's/^merged_during_play //p' "$STATS") "
          AFTER[$l]+="$(sed -n 's/^seconds_after_final //p' "$STATS") "
          FCPU[$l]+="$(sed -n 's/^cpu_seconds //p' "$STATS") "
          FSER[$l]+="$(sed -n 's/^merge_cpu_serial //p' "$STATS") "
          FTHR[$l]+="$(sed -n 's/^merge_cpu_threads //p' "$STATS") "
        fi
      done
    done
    if [ -n "$PIN" ]; then # one rank on one CPU (no CPU left idle)
      read t r <<<"$(run $l 0 /tmp/bz_eff1.h5 taskset -c "$PIN" "$B/bazaar")"
      T[${l}p]+="$t " R[${l}p]+="$r "
    fi
  done
  # the fixed costs (start-up, MPI's included, and the end): a sweep of 6 games
  REPS_SAVED=$REPS
  sed -i 's/"repetitions": [0-9]*/"repetitions": 1/' "$SPEC"
  read t r <<<"$(run plain 0 /tmp/bz_eff1.h5 "$B/bazaar")"
  F1+="$t "
  read t r <<<"$(run plain 0 /tmp/bz_eff2.h5 mpiexec -n 2 "$B/bazaar")"
  F2+="$t "
  read t r <<<"$(run plain 1 /tmp/bz_eff2.h5 mpiexec -n 2 "$B/bazaar")"
  F2F+="$t "
  # how much of it is OpenMPI probing UCX (no fabric on one node)
  if [ -z "${OMPI_MCA_pml:-}" ]; then
    read t r <<<"$(OMPI_MCA_pml=ob1 run plain 0 /tmp/bz_eff2.h5 mpiexec -n 2 "$B/bazaar")"
    F2OB+="$t "
  fi
  sed -i "s/\"repetitions\": 1/\"repetitions\": $REPS_SAVED/" "$SPEC"
done
med() { printf '%s\n' $1 | median; }
echo "heuristic sweep of $((REPS * 6)) games (N=20, 24 turns), medians of $ROUNDS alternated rounds"
for l in $LAYOUTS; do
  echo "--layout $l"
  for f in 1 0; do
    [ $f = 1 ] && name="following (merge during the play)" || name="not following (BAZAAR_MERGE_FOLLOW=0)"
    awk -v g="$((REPS * 6))" -v t1="$(med "${T[${l}1$f]}")" -v t2="$(med "${T[${l}2$f]}")" \
        -v r1="$(med "${R[${l}1$f]}")" -v r2="$(med "${R[${l}2$f]}")" -v name="$name" 'BEGIN{
      printf "%s:\n", name
      printf "  play phase: 1 rank %.0f games/s, 2 ranks %.0f games/s, rate2/(2 rate1) %.2f\n", r1, r2, r2/(2*r1)
      printf "  end to end: 1 rank %.2fs, 2 ranks %.2fs, T1/(2 T2) %.2f (1 rank on 2 CPUs: not per core, see below)\n", t1, t2, t1/(2*t2)
      printf "  end to end vs play, 1 rank: %.2f (play %.2fs)\n", t1/(g/r1), g/r1
      printf "  2 ranks vs 1 rank, end to end: %.2f\n", t2/t1}'
  done
  echo "  games the follower had merged when it read the final message (1 rank): ${DURING[$l]}of $((REPS * 6))"
  echo "  the follower (1 rank): $(med "${AFTER[$l]}")s from the final message to OUT, $(med "${FCPU[$l]}")s of CPU in all (medians)"
  awk -v g="$((REPS * 6))" -v s="$(med "${FSER[$l]}")" -v t="$(med "${FTHR[$l]}")" 'BEGIN{
    if (s > 0) printf "  the follower'"'"'s merge (1 rank): serial %.3f ms per game, its threads %.3f ms per game (reads and compression; medians)\n", 1e3*s/g, 1e3*t/g}'
  awk -v a="$(med "${T[${l}11]}")" -v b="$(med "${T[${l}10]}")" -v c="$(med "${T[${l}21]}")" -v d="$(med "${T[${l}20]}")" \
    'BEGIN{printf "  following vs not, end to end: 1 rank %.2f, 2 ranks %.2f\n", a/b, c/d}'
  if [ -n "${T[${l}p]:-}" ]; then
    # the defaults: a pinned rank has no follower (no CPU is idle), 2 ranks
    # on 2 CPUs follow at nice 0 (BAZAAR_MERGE_FOLLOW=1 gives the same)
    for f in 1 0; do
      [ $f = 1 ] && name="following, the default" || name="not following"
      [ $f = 1 ] && f2="$(med "$F2F")" || f2="$(med "$F2")"
      awk -v p="$(med "${T[${l}p]}")" -v rp="$(med "${R[${l}p]}")" -v t2="$(med "${T[${l}2$f]}")" \
          -v r2="$(med "${R[${l}2$f]}")" -v f1="$(med "$F1")" -v f2="$f2" -v name="$name" 'BEGIN{
        printf "  per core (1 rank pinned to 1 CPU vs 2 ranks on 2 CPUs, %s): end to end %.2fs vs %.2fs, efficiency %.2f; play phase %.0f vs %.0f games/s, efficiency %.2f\n", name, p, t2, p/(2*t2), rp, r2, r2/(2*rp)
        printf "    net of the fixed costs (a 6-game sweep: 1 rank %.2fs, 2 ranks %.2fs): efficiency %.2f\n", f1, f2, (p-f1)/(2*(t2-f2))}'
    done
  fi
done
if [ -n "$F2OB" ]; then
  echo "MPI's start-up: a 6-game sweep on 2 ranks $(med "$F2") s; with OMPI_MCA_pml=ob1 (OpenMPI without its UCX probe) $(med "$F2OB") s, 1 rank without mpiexec $(med "$F1") s"
fi
if [ "$LAYOUTS" = "plain virtual" ]; then
  echo "virtual vs plain, end to end (following; not following):"
  for n in 1 2; do
    awk -v n=$n -v a="$(med "${T[virtual${n}1]}")" -v b="$(med "${T[plain${n}1]}")" \
        -v c="$(med "${T[virtual${n}0]}")" -v d="$(med "${T[plain${n}0]}")" \
        'BEGIN{printf "  %d rank(s): %.2f; %.2f\n", n, a/b, c/d}'
  done
fi
if [ "$SCALE" -gt 0 ] && [ -n "$PIN" ]; then
  # per core at SCALE x the games: the fixed costs weigh a quarter as much
  # at 4x (pinned rank and 2 ranks back to back, the order flipped each round)
  sed -i "s/\"repetitions\": [0-9]*/\"repetitions\": $((REPS * SCALE))/" "$SPEC"
  declare -A S
  for ((i = 0; i < ROUNDS; i++)); do
    for l in $LAYOUTS; do
      [ $((i % 2)) = 0 ] && ORDER="p 2" || ORDER="2 p"
      for w in $ORDER; do
        if [ $w = p ]; then
          read t r <<<"$(run $l 0 /tmp/bz_eff1.h5 taskset -c "$PIN" "$B/bazaar")"
        else
          read t r <<<"$(run $l 1 /tmp/bz_eff2.h5 mpiexec -n 2 "$B/bazaar")"
        fi
        S[$l$w]+="$t "
      done
    done
  done
  sed -i "s/\"repetitions\": [0-9]*/\"repetitions\": $REPS/" "$SPEC"
  echo "per core at $((REPS * SCALE * 6)) games (1 rank pinned to 1 CPU vs 2 ranks on 2 CPUs, following; medians of $ROUNDS alternated rounds):"
  for l in $LAYOUTS; do
    awk -v l=$l -v p="$(med "${S[${l}p]}")" -v t2="$(med "${S[${l}2]}")" -v f2="$(med "$F2F")" -v f1="$(med "$F1")" 'BEGIN{
      printf "  --layout %s: end to end %.2fs vs %.2fs, efficiency %.2f (net of the fixed costs %.2f)\n", l, p, t2, p/(2*t2), (p-f1)/(2*(t2-f2))}'
  done
fi
if [ -x "$B/bench_merge" ]; then
  echo "merge and records, one rank ($B/bench_merge $((REPS * 6)) 2):"
  "$B/bench_merge" "$((REPS * 6))" 2 | sed 1d
fi
if [ -n "${BENCH_LLM:-}" ] && [ -x "$B/bench_llm" ]; then
  echo "LLM transport ($B/bench_llm):"
  "$B/bench_llm"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
