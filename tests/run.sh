#!/usr/bin/env bash
# tests/run.sh: the whole test suite, from a fresh Debian 12 machine (as root).
#
#   1. installs what is missing (dev/install-deps.sh, quick when present);
#   2. builds with clang, AddressSanitizer + UBSan and the libFuzzer target
#      (build-asan/) and runs every test under it: unit, integration,
#      fault-injection scenarios (tests/chaos) and a bounded fuzzing run of
#      the task codec (tests/fuzz). A sanitizer report from any process the
#      tests start (the daemons too, whose exit status a test may not see)
#      fails the run: reports go to files that are checked at the end;
#   3. builds the default configuration (gcc, build/) and runs every test
#      again with ctest, without the sanitizers' slowdown.
#
# Integration tests and scenarios bring up the local stack (Redis,
# PostgreSQL, embedded Kafka) on free ports in private temporary
# directories and stop exactly what they started.
#
# BATON_BUILD_DIR overrides the build directory (default <repo>/build), so
# two runs side by side in one checkout stay apart.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BATON_BUILD_DIR:-$root/build}
jobs=$(nproc)

"$root/dev/install-deps.sh"

echo "== sanitizer build (clang; ASan + UBSan; libFuzzer): all tests" >&2
CC=clang cmake -S "$root" -B "$build-asan" -DBATON_SANITIZE=ON -DBATON_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build-asan" -j"$jobs"
reports=$(mktemp -d /tmp/baton-sanitizer.XXXXXX)
status=0
ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan" \
  UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan" \
  ctest --test-dir "$build-asan" --output-on-failure -j"$jobs" || status=$?
if compgen -G "$reports/*" >/dev/null; then
  echo "== sanitizer reports (from $reports):" >&2
  for f in "$reports"/*; do echo "--- $f" >&2; cat "$f" >&2; done
  status=1
fi
rm -rf "$reports"
[ "$status" -eq 0 ] || { echo "== the sanitizer build failed" >&2; exit "$status"; }

echo "== default build (gcc): all tests" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" --output-on-failure -j"$jobs"
