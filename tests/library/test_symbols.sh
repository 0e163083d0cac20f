#!/usr/bin/env bash
# test_symbols.sh - libbaton exports only baton_ names.
#
# A user links libbaton into a program of their own: any other global name
# it defines (a "command_run", a "worker_kill_grace_ms") can collide with
# the user's or another library's, silently in a static link. So every
# function and variable that is not static is prefixed baton_ (one prefix
# per module: baton_redis_*, baton_task_*, ...).
#
# usage: test_symbols.sh LIBBATON.so LIBBATON.a FOLDER=PART.a...
#   The FOLDER=PART.a pairs (common=libbaton_common.a, ...) are the parts
#   libbaton is made of; an offender is reported under the folder it comes
#   from, so the message says where to fix it.
set -euo pipefail
shared=$1 static=$2
shift 2

failed=0
offenders() { # $1 = nm output of defined global symbols ("ADDR TYPE NAME")
  awk 'NF == 3 { print $3 }' <<<"$1" | sort -u | while read -r name; do
    [[ $name == baton_* ]] || echo "$name"
  done
}

# Each part, so an offender is named with its folder.
for pair in "$@"; do
  folder=${pair%%=*} lib=${pair#*=}
  [ -f "$lib" ] || { echo "FAIL: $lib (part $folder) does not exist" >&2; exit 1; }
  bad=$(offenders "$(nm -g --defined-only "$lib")")
  [ -n "$bad" ] || continue
  for name in $bad; do
    echo "FAIL: $folder/ exports $name: make it static or prefix it baton_" >&2
    failed=1
  done
done

# The installed libraries themselves: the parts above are all that is in
# them, so the same names, and nothing else (e.g. no symbol of a dependency).
for lib in "$shared" "$static"; do
  [ -f "$lib" ] || { echo "FAIL: $lib does not exist" >&2; exit 1; }
  case $lib in
    *.a) syms=$(nm -g --defined-only "$lib") ;;
    *) syms=$(nm -D --defined-only "$lib") ;;
  esac
  [ -n "$(awk 'NF == 3 && $3 ~ /^baton_/' <<<"$syms")" ] ||
    { echo "FAIL: $lib exports no baton_ name at all (is it the library?)" >&2; exit 1; }
  for name in $(offenders "$syms"); do
    if [ -n "${worker_allowlist_until_split[$name]:-}" ]; then
      continue # reported above, under worker/
    fi
    echo "FAIL: $(basename "$lib") exports $name: make it static or prefix it baton_" >&2
    failed=1
  done
done

[ "$failed" -eq 0 ] || exit 1
echo "ok: every exported name of libbaton starts with baton_" >&2
