#!/usr/bin/env bash
# tests/lint/static.sh BUILD_DIR: clang-tidy over every C file the build
# compiles (BUILD_DIR/compile_commands.json), with the checks of the
# repository's .clang-tidy; exits 1 and prints the findings when there are
# any (the test lint.static). The checks chosen, and why clang-tidy:
# docs/architecture.md, "Formatting and static analysis".
#
# Runs one clang-tidy per file, as many at once as there are CPUs. Generated
# sources (embedded scripts and migrations, under BUILD_DIR) are skipped.
# BATON_CLANG_TIDY names another clang-tidy binary of the same version.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:?usage: tests/lint/static.sh BUILD_DIR}
clang_tidy=${BATON_CLANG_TIDY:-clang-tidy}
want_major=14
# Paths left out while their findings are being fixed (an extended
# regular expression; empty: every file is checked).
pending=${BATON_STATIC_PENDING-}

if ! version=$("$clang_tidy" --version 2>/dev/null); then
  echo "static.sh: $clang_tidy not found; install Debian 12's clang-tidy (dev/install-deps.sh)" >&2
  exit 2
fi
major=$(sed -n 's/.*LLVM version \([0-9]*\)\..*/\1/p' <<<"$version")
if [ "$major" != "$want_major" ]; then
  echo "static.sh: needs clang-tidy $want_major (Debian 12), found: $version" >&2
  exit 2
fi
db=$build/compile_commands.json
[ -f "$db" ] || { echo "static.sh: no $db (configure with CMAKE_EXPORT_COMPILE_COMMANDS=ON)" >&2; exit 2; }

mapfile -t files < <(python3 - "$db" "$root" "$pending" <<'PY'
import json, os, re, sys
db, root, pending = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
seen = set()
for entry in json.load(open(db)):
    path = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    rel = os.path.relpath(path, root)
    if rel.startswith("..") or rel.split(os.sep)[0].startswith("build"):
        continue
    if pending and re.search(pending, rel):
        continue
    if rel not in seen:
        seen.add(rel)
        print(rel)
PY
)
[ ${#files[@]} -gt 0 ] || { echo "static.sh: no source files in $db" >&2; exit 2; }

out=$(mktemp -d /tmp/baton-tidy.XXXXXX)
trap 'rm -rf "$out"' EXIT
cd "$root"
# Each file's report goes to its own file, so parallel runs do not mix.
status=0
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -I{} sh -c \
    '"$1" --quiet -p "$2" "$3" >"$4/$(echo "$3" | tr / _).log" 2>&1' \
    sh "$clang_tidy" "$build" {} "$out" || status=$?
findings=$(cat "$out"/*.log | grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error):' | sort -u || true)
if [ "$status" -ne 0 ] || [ -n "$findings" ]; then
  n=$(grep -c . <<<"$findings" || true)
  echo "static.sh: clang-tidy: $n finding(s) in ${#files[@]} files:" >&2
  cat "$out"/*.log | grep -v -E '^[0-9]+ (warning|error)s? generated' \
    | grep -v -E '^Suppressed|^Use -header-filter|^Error while processing' >&2 || true
  echo "static.sh: fix each, or, where the code is right, end its line with" >&2
  echo "static.sh:   // NOLINT(check-name): the reason" >&2
  exit 1
fi
echo "static.sh: clang-tidy clean on ${#files[@]} files"
