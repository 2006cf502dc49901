#!/usr/bin/env bash
# setup.sh: install the Debian packages bazaar needs (only those missing) and
# build it into build/ (Release-ish). Sourced by quickstart.sh and test.sh.
# Usage: scripts/setup.sh [extra-package ...]
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config git libopenmpi-dev openmpi-bin libhdf5-dev libcjson-dev
      libcurl4-openssl-dev libcmocka-dev libisal-dev python3 python3-h5py python3-numpy python3-matplotlib
      python3-scipy python3-pandas python3-pytest "$@")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

JOBS=$(nproc 2>/dev/null || echo 2)
# BZ_WERROR=ON (scripts/test.sh, CI): warnings are errors; off for everyone else
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBZ_PYTHON=/usr/bin/python3 \
      -DBZ_WERROR="${BZ_WERROR:-OFF}" >/dev/null
cmake --build build -j "$JOBS"
