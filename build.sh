#!/usr/bin/env bash
# Build, run or test cutoff on Debian bookworm.
#
#   ./build.sh run [cutoff args...]   Release build in build/, then run it
#   ./build.sh test                   sanitizer build in build-test/, then ctest
#   ./build.sh build                  Release build in build/ only
#
# Each command first installs the Debian packages it needs that are missing.
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DEPS=(build-essential cmake pkg-config libuv1-dev libtomlplusplus-dev libspdlog-dev node-llhttp)
TEST_DEPS=(catch2 python3 curl wget iproute2)

install_missing() {
  local missing=() pkg sudo=()
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo=(sudo); fi
  echo "build.sh: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

release_build() {
  install_missing "${BUILD_DEPS[@]}"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCUTOFF_TESTS=OFF
  cmake --build build -j"$(nproc)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  build)
    release_build
    ;;
  run)
    release_build
    exec build/cutoff "$@"
    ;;
  test)
    install_missing "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"
    cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DCUTOFF_SANITIZE=ON
    cmake --build build-test -j"$(nproc)"
    # Sanitizer builds are slower: integration tests stretch their timings.
    export CUTOFF_TIME_SCALE=${CUTOFF_TIME_SCALE:-2}
    exec ctest --test-dir build-test --output-on-failure --timeout 300
    ;;
  *)
    echo "usage: $0 run [cutoff args...] | test | build" >&2
    exit 2
    ;;
esac
