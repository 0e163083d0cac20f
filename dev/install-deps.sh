#!/usr/bin/env bash
# Installs, with apt on Debian 12, exactly what building, testing and running
# the local stack need. The package list below is the single source of truth:
# deploy/Dockerfile's build stage reads the same list from this file.
#
# Idempotent: when every package is already installed it only checks (dpkg)
# and returns in well under a second. Run as root (or with sudo available).
set -euo pipefail

# BEGIN PACKAGES (one per line; read by other scripts, keep the format)
PACKAGES=(
  build-essential
  cmake
  pkg-config
  librdkafka-dev
  libhiredis-dev
  libpq-dev
  libjansson-dev
  libmicrohttpd-dev
  check
  redis-server
  postgresql
  kcat
  curl
  python3
  procps
  iproute2
  docker-compose
  clang
  clang-format
  clang-tidy
  libclang-rt-14-dev
  faketime
  nodejs
  npm
)
# END PACKAGES

# nodejs and npm run BullMQ for bench/compare/compare.sh (which installs
# BullMQ itself, with npm ci, when it runs). They count as present when
# their commands are there: a Node.js from another vendor's nodejs package
# bundles npm and conflicts with Debian's npm package, which apt would
# otherwise try to swap in.
declare -A PRESENT_AS_COMMAND=([nodejs]=node [npm]=npm)

# `install-deps.sh --print build|runtime` prints a package set, one a line, and
# installs nothing (deploy/Dockerfile uses it; test_compose.sh checks it):
#   build    the entries of PACKAGES that compiling the binaries needs: every
#            -dev package plus the toolchain (build-essential, cmake,
#            pkg-config, check: the top-level CMakeLists.txt requires check)
#   runtime  what the container runtime stage needs: the shared libraries the
#            binaries link (Debian's packages behind the -dev ones above) and
#            ca-certificates for TLS to Kafka, Redis or PostgreSQL
# Without arguments the script installs PACKAGES, as below.
RUNTIME_PACKAGES=(librdkafka1 libhiredis0.14 libpq5 libjansson4 libmicrohttpd12 ca-certificates)
if [ "${1:-}" = "--print" ]; then
  case "${2:-}" in
    build)
      for pkg in "${PACKAGES[@]}"; do
        case "$pkg" in *-dev | build-essential | cmake | pkg-config | check) echo "$pkg" ;; esac
      done ;;
    runtime) printf '%s\n' "${RUNTIME_PACKAGES[@]}" ;;
    *) echo "usage: install-deps.sh [--print build|runtime]" >&2; exit 2 ;;
  esac
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  command=${PRESENT_AS_COMMAND[$pkg]:-}
  if [ -n "$command" ] && command -v "$command" >/dev/null; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package creates and starts a default cluster on 5432;
# baton never uses it (the local stack makes its own with initdb).
