#!/usr/bin/env bash
# test.sh: set up, build, and run every test: the C unit tests and end-to-end
# tests on a normal build, then the C unit tests again under AddressSanitizer
# and UndefinedBehaviorSanitizer. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh slurm-wlm munge chromium

JOBS=$(nproc 2>/dev/null || echo 2)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

echo "== tests (build/)"
(cd build && ctest --output-on-failure -j "$JOBS")

echo "== C unit tests under ASan+UBSan (build-asan/)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBZ_SANITIZE=ON -DBZ_PYTHON=/usr/bin/python3 >/dev/null
cmake --build build-asan -j "$JOBS"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j "$JOBS" -E '^e2e_')
echo "== all tests passed"
