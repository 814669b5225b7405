#!/usr/bin/env bash
# Soak cutoff: healthy and misbehaving traffic at once, on 127.0.0.1, for a
# while; then one summary line. Not part of CI.
#
#   bench/soak.sh [MINUTES]      default 10
#
# The cutoff binary is $CUTOFF_BIN, else build/cutoff (a Release build, made
# with ./build.sh build when it is missing). cutoff runs with two workers and
# short deadlines (connect 300ms, response_header 500ms, idle 500ms, dns 500ms)
# in front of the fake servers of tests/integration; bench/soak.py drives the
# traffic and says what it checks. Prints a line per minute (healthy count,
# p50/p99, RSS, fds) and the summary; exits 1 when cutoff died, a healthy
# request failed or missed its deadline, or RSS or descriptors grew.
#
# Environment: SOAK_WARMUP (seconds before the start values are taken;
# default a tenth of the run, 10 to 60 s), SOAK_HEALTHY_CLIENTS (3),
# SOAK_RSS_BOUND_KB (2048), SOAK_KEEP=1 keeps the logs of a passing run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
minutes=${1:-10}
if ! [[ $minutes =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
  echo "usage: $0 [MINUTES]" >&2
  exit 2
fi

bin=${CUTOFF_BIN:-$repo/build/cutoff}
if [ -z "${CUTOFF_BIN:-}" ] && [ ! -x "$bin" ]; then
  echo "soak: no $bin yet; building it" >&2
  "$repo/build.sh" build >&2
fi
if [ ! -x "$bin" ]; then
  echo "soak: no cutoff binary at $bin" >&2
  exit 2
fi

# Room for every connection of the traffic generator and of cutoff.
ulimit -n "$(ulimit -Hn)"

args=(--binary "$bin" --minutes "$minutes")
[ -n "${SOAK_WARMUP:-}" ] && args+=(--warmup "$SOAK_WARMUP")
[ -n "${SOAK_HEALTHY_CLIENTS:-}" ] && args+=(--healthy-clients "$SOAK_HEALTHY_CLIENTS")
[ -n "${SOAK_RSS_BOUND_KB:-}" ] && args+=(--rss-bound-kb "$SOAK_RSS_BOUND_KB")
[ "${SOAK_KEEP:-}" = 1 ] && args+=(--keep)
exec python3 -B "$here/soak.py" "${args[@]}"
