#!/usr/bin/env bash
# tests/lint/format.sh: formats every C file of the repository with
# clang-format and the repository's .clang-format.
#
#   tests/lint/format.sh           rewrites the files in place
#   tests/lint/format.sh --check   rewrites nothing; lists the files that
#                                  differ and exits 1 (the test lint.format)
#
# The files are the tracked *.c and *.h (git ls-files), or, outside a git
# checkout, every *.c and *.h under the source folders. clang-format's output
# changes between major versions, so the version is pinned to Debian 12's
# (14); BATON_CLANG_FORMAT names another binary of that version.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
clang_format=${BATON_CLANG_FORMAT:-clang-format}
want_major=14

mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: tests/lint/format.sh [--check]" >&2; exit 2 ;;
esac

if ! version=$("$clang_format" --version 2>/dev/null); then
  echo "format.sh: $clang_format not found; install Debian 12's clang-format (dev/install-deps.sh)" >&2
  exit 2
fi
major=$(sed -n 's/.*clang-format version \([0-9]*\)\..*/\1/p' <<<"$version")
if [ "$major" != "$want_major" ]; then
  echo "format.sh: needs clang-format $want_major (Debian 12), found: $version" >&2
  echo "format.sh: set BATON_CLANG_FORMAT to a clang-format-$want_major binary" >&2
  exit 2
fi

cd "$root"
files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.c' '*.h')
else
  mapfile -t files < <(find common producer scheduler worker ctl bench dev tests \
                         -name '*.[ch]' -type f | sort)
fi
[ ${#files[@]} -gt 0 ] || { echo "format.sh: no C files found under $root" >&2; exit 2; }

if [ "$mode" = write ]; then
  "$clang_format" -i --style=file -- "${files[@]}"
  exit 0
fi

# One clang-format process for the whole tree (one per file takes seconds
# more); the files to name are those its warnings point at.
report=$("$clang_format" --dry-run --Werror --style=file -- "${files[@]}" 2>&1) && status=0 || status=$?
if [ "$status" -ne 0 ]; then
  mapfile -t unformatted < <(sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: \(warning\|error\): .*/\1/p' <<<"$report" | uniq)
  if [ ${#unformatted[@]} -eq 0 ]; then
    echo "format.sh: clang-format failed (exit $status):" >&2
    echo "$report" >&2
    exit 1
  fi
  echo "format.sh: ${#unformatted[@]} of ${#files[@]} C files are not formatted:" >&2
  printf '  %s\n' "${unformatted[@]}" >&2
  echo "format.sh: fix with tests/lint/format.sh (the whole tree) or clang-format -i FILE" >&2
  echo "format.sh: the first differences:" >&2
  head -n 12 <<<"$report" >&2
  exit 1
fi
echo "format.sh: ${#files[@]} C files formatted"
