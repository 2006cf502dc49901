#!/bin/bash
# Stand-in for `bazaar run SPEC -o OUT [--resume]` used while developing the
# SLURM chain: plays SPEC's "games" (a number in the spec file) one per
# second on rank 0 (other ranks idle), records progress in OUT.parts/done,
# stops cleanly with exit 3 on SIGUSR1/SIGTERM/SIGINT, exits 0 when complete.
set -u
[ "$1" = run ] || exit 2
spec=$2; out=$4; resume=0
[ "${5:-}" = --resume ] && resume=1
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}}
total=$(cat "$spec")
stop=0
trap 'stop=1' USR1 TERM INT
if [ "$rank" != 0 ]; then
  while [ $stop = 0 ] && [ ! -e "$out" ]; do sleep 0.2; done
  [ -e "$out" ] && exit 0 || exit 3
fi
if [ $resume = 0 ] && { [ -e "$out" ] || [ -e "$out.parts" ]; }; then
  echo "error: $out exists; use --resume" >&2; exit 2
fi
mkdir -p "$out.parts"; done_=$(cat "$out.parts/done" 2>/dev/null || echo 0)
while [ "$done_" -lt "$total" ]; do
  if [ $stop = 1 ]; then echo "stopped at $done_/$total: run again with --resume" >&2; exit 3; fi
  sleep 1; done_=$((done_+1)); echo $done_ > "$out.parts/done"
  echo "progress: $done_/$total games" >&2
done
echo "$total games" > "$out"; exit 0
