#!/usr/bin/env bash
# check_builds.sh: the library and CLI build in Release, MinSizeRel and Debug,
# so that a warning only -O3 (Release), -Os (MinSizeRel) or -O0 gives is caught
# here and not by a user. A plain configure has BZ_WERROR off (a user's build never fails
# on a warning); these builds turn it on so that such a warning fails the test
# command and CI.
# Usage: scripts/check_builds.sh [BUILD_TYPE ...]   (default: Release MinSizeRel Debug)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc 2>/dev/null || echo 2)
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(Release MinSizeRel Debug)
for t in "${types[@]}"; do
  dir="build-$(echo "$t" | tr '[:upper:]' '[:lower:]')"
  start=$(date +%s)
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    # a first configure with the defaults: BZ_WERROR must be off
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$t" -DBZ_TESTS=OFF >/dev/null
    if ! grep -q '^BZ_WERROR:BOOL=OFF$' "$dir/CMakeCache.txt"; then
      echo "check_builds: a plain configure has BZ_WERROR on; it must default to OFF" >&2
      exit 1
    fi
  fi
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$t" -DBZ_TESTS=OFF -DBZ_WERROR=ON >/dev/null
  cmake --build "$dir" -j "$JOBS" --target bazaar
  echo "check_builds: $t builds without warnings ($(( $(date +%s) - start )) s)"
done
