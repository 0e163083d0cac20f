#!/usr/bin/env bash
# test_install.sh - a user's worker built out of tree against installed libbaton.
#
# Installs the build into a temporary prefix (cmake --install --prefix), then
# builds worker/examples/example_worker.c the way docs/worker.md tells a
# user to: with `pkg-config --cflags --libs baton` only, once against the
# shared library and once against the static one, and runs both. Also: each
# installed header compiles on its own (a public header that includes an
# internal one, not installed, fails here) and libbaton.so has its SONAME.
#
# usage: test_install.sh CMAKE BUILD_DIR SOURCE_DIR CC [EXTRA_FLAG...]
#   EXTRA_FLAG: what the build's own objects need at link time (the
#   sanitizer build passes -fsanitize=...).
set -euo pipefail
cmake=$1 build=$2 src=$3 cc=$4
shift 4
extra=("$@")

tmp=$(mktemp -d /tmp/baton-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

prefix=$tmp/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; }

pc=$(find "$prefix" -name baton.pc)
[ -n "$pc" ] || fail "no baton.pc installed under $prefix"
export PKG_CONFIG_PATH=$(dirname "$pc")
cflags=$(pkg-config --cflags baton) || fail "pkg-config --cflags baton"
libdir=$(pkg-config --variable=libdir baton)
[[ $(realpath "$libdir") == "$(realpath "$prefix")"/* ]] ||
  fail "baton.pc's libdir $libdir is not inside the install prefix $prefix"

# The shared library: versioned file, SONAME libbaton.so.MAJOR, dev symlink.
so=$(readlink -f "$libdir/libbaton.so") || fail "no $libdir/libbaton.so"
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == libbaton.so.[0-9]* ]] || fail "$so has SONAME '$soname', want libbaton.so.MAJOR"
[ -e "$libdir/$soname" ] || fail "$libdir/$soname (the SONAME) is not installed"
[ -f "$libdir/libbaton.a" ] || fail "no $libdir/libbaton.a"

# Every installed header compiles alone, with only what pkg-config says.
for h in "$prefix"/include/baton/*.h; do
  printf '#include "%s"\n' "$(basename "$h")" >"$tmp/header.c"
  # shellcheck disable=SC2086 # pkg-config output is a list of flags
  "$cc" -std=c11 -Wall -Wextra -Werror $cflags -c "$tmp/header.c" -o "$tmp/header.o" ||
    fail "installed header $(basename "$h") does not compile on its own"
done

example=$src/worker/examples/example_worker.c
# A bad Redis URL: the program starts, and libbaton's own check answers.
# It proves the binary links, loads and runs library code, without a server.
check_runs() { # $1 = binary
  local out rc=0
  out=$(LD_LIBRARY_PATH=$libdir "$1" not-a-url default 2>&1) || rc=$?
  [ "$rc" -eq 1 ] || fail "$1 exited $rc, want 1: $out"
  [[ $out == *"Redis URL 'not-a-url' must start with redis://"* ]] ||
    fail "$1 did not print libbaton's URL error: $out"
}

# shellcheck disable=SC2046,SC2086
"$cc" -std=c11 -Wall -Wextra -Werror "${extra[@]}" -o "$tmp/worker-shared" "$example" \
  $(pkg-config --cflags --libs baton) || fail "building against the shared libbaton"
readelf -d "$tmp/worker-shared" | grep -q "NEEDED.*\[$soname\]" ||
  fail "worker-shared does not load $soname"
check_runs "$tmp/worker-shared"

# Static: the same flags with --static (libbaton's own dependencies), and
# libbaton.a picked by name where the linker would prefer the .so.
libs=$(pkg-config --static --libs baton) || fail "pkg-config --static --libs baton"
libs=${libs/-lbaton/-l:libbaton.a}
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Werror "${extra[@]}" -o "$tmp/worker-static" "$example" \
  $cflags $libs || fail "building against the static libbaton"
if readelf -d "$tmp/worker-static" | grep -q 'NEEDED.*libbaton'; then
  fail "worker-static loads libbaton.so: it was not linked statically"
fi
check_runs "$tmp/worker-static"

echo "ok: example_worker.c builds out of tree against installed libbaton (shared and static) and runs" >&2
