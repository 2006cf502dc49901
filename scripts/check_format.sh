#!/usr/bin/env bash
# check_format.sh: every C source and header follows .clang-format (STYLE.md:
# formatting is a check, not a debate). Lists the files that differ and exits
# non-zero; changes nothing. Fix with: clang-format -i FILE...
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-clang-format}
if ! command -v "$CF" >/dev/null; then
  echo "check_format: $CF not found (Debian package clang-format)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files -co --exclude-standard -- 'src/*.c' 'src/*.h' 'include/*.h' \
                       'tests/*.c' 'tests/*.h' 'bench/*.c' 'bench/*.h' '*.c' '*.h' | sort -u)
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  "$CF" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check_format: ${#bad[@]} of ${#files[@]} files differ from .clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix with: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files follow .clang-format"
