#!/bin/bash
# Test helper: runs the real bazaar ($BZ_REAL_BIN) paused most of the time
# (SIGSTOP/SIGCONT: BZ_DUTY_MS running per 100 ms), so that a small sweep
# lasts long enough for slurmctld's 30 s signal tick. Forwards stop signals.
set -u
"$BZ_REAL_BIN" "$@" &
child=$!
fwd() {
	kill -CONT "$child" 2>/dev/null
	kill -"$1" "$child" 2>/dev/null
}
trap 'fwd USR1' USR1
trap 'fwd TERM' TERM
trap 'fwd INT' INT
on=${BZ_DUTY_MS:-10}
off=$((100 - on))
while kill -0 "$child" 2>/dev/null; do
	sleep "$(printf '0.%03d' "$on")"
	kill -STOP "$child" 2>/dev/null
	sleep "$(printf '0.%03d' "$off")"
	kill -CONT "$child" 2>/dev/null
done
wait "$child"
