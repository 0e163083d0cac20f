#!/usr/bin/env bash
# tests/run.sh: the whole test suite, from a fresh Debian 12 machine (as root).
#
#   1. installs what is missing (deploy/install-deps.sh, quick when present);
#   2. builds with AddressSanitizer + UBSan (build-asan/) and runs the unit
#      tests under it;
#   3. builds the default configuration (build/) and runs every test with
#      ctest: unit tests, then integration tests against a local stack
#      (Redis, PostgreSQL, embedded Kafka) that a ctest fixture starts on free
#      ports in a private temporary directory and stops at the end.
#
# BATON_BUILD_DIR overrides the build directory (default <repo>/build), so
# two runs side by side in one checkout stay apart.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BATON_BUILD_DIR:-$root/build}
jobs=$(nproc)

"$root/deploy/install-deps.sh"

echo "== sanitizer build (ASan + UBSan): unit tests" >&2
cmake -S "$root" -B "$build-asan" -DBATON_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build-asan" -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$build-asan" -L unit --output-on-failure -j"$jobs"

echo "== default build: all tests" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" --output-on-failure -j"$jobs"
