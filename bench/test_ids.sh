#!/usr/bin/env bash
# What cutoff's test registry (SPEC §12, [tests]) holds in memory, and that it
# stays within its bounds however many tests a suite runs:
#
#   bench/test_ids.sh [CUTOFF_BINARY]   default build/cutoff
#
# cutoff (workers = 1, access log to a file, [tests] max_tests and
# max_exchanges_per_test as MAX_TESTS and PER_TEST_CAP) in front of one nginx
# serving a 100-byte file. wrk sends IDS * PER_TEST keep-alive GETs, each
# with a Cutoff-Test-Id (bench/test_ids.lua): every test makes PER_TEST
# exchanges, one test after the other. Prints cutoff's resident memory
# before and after, what GET /tests says it kept and forgot, and the growth
# per exchange kept.
#
# Environment: IDS (10000), PER_TEST (100), MAX_TESTS (1000),
# PER_TEST_CAP (100), CONNS (1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/ports.sh
. "$here/ports.sh"
# shellcheck source=bench/packages.sh
. "$here/packages.sh"
repo=$(dirname "$here")
IDS=${IDS:-10000}
PER_TEST=${PER_TEST:-100}
MAX_TESTS=${MAX_TESTS:-1000}
PER_TEST_CAP=${PER_TEST_CAP:-100}
CONNS=${CONNS:-1}
cutoff_bin=$(realpath "${1:-$repo/build/cutoff}")
install_missing nginx wrk python3

work=$(mktemp -d -t cutoff-test-ids.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/www" "$work/nginx-tmp" "$work/servers"
head -c 100 /dev/zero | tr '\0' x >"$work/www/file"
started=()
cleanup() {
  local pid
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

backend_port=$(free_port)
proxy_port=$(free_port)
admin_port=$(free_port)
sed -e "s|@DIR@|$work|g" -e "s|@BACKEND_PORT@|$backend_port|g" "$here/nginx.conf" >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" &
started+=("$!")
wait_port "$backend_port"

cat >"$work/cutoff.toml" <<EOF
workers = 1
log_level = "warn"
[listen]
address = "127.0.0.1:$proxy_port"
[admin]
address = "127.0.0.1:$admin_port"
[access_log]
path = "$work/access.log"
[tests]
max_tests = $MAX_TESTS
max_exchanges_per_test = $PER_TEST_CAP
EOF
"$cutoff_bin" --config "$work/cutoff.toml" >/dev/null 2>"$work/stderr" &
pid=$!
started+=("$pid")
wait_port "$proxy_port"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
url="http://127.0.0.1:$backend_port/file"
# A short run first, without ids, so that buffers and the upstream pool are
# warm before the first reading.
TARGET_URL=$url wrk -t1 -c"$CONNS" -d1s -s "$here/proxy.lua" "http://127.0.0.1:$proxy_port" >/dev/null
before=$(rss_kib)
total=$((IDS * PER_TEST))
echo "test_ids: $total requests for $IDS tests" >&2
# wrk runs for a time, not a count: long enough for `total`, then the
# registry is asked how many exchanges it saw.
start=$(date +%s)
TARGET_URL=$url IDS=$IDS PER_TEST=$PER_TEST \
  timeout 900 wrk -t1 -c"$CONNS" -d"${DURATION:-600}s" -s "$here/test_ids.lua" \
  "http://127.0.0.1:$proxy_port" >"$work/wrk.out" &
wrk_pid=$!
started+=("$wrk_pid")
seen=0
while [ "$seen" -lt "$total" ] && kill -0 "$wrk_pid" 2>/dev/null; do
  sleep 2
  seen=$(wc -l <"$work/access.log")
done
kill "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" 2>/dev/null || true
sleep 0.5
after=$(rss_kib)
curl -s "http://127.0.0.1:$admin_port/tests" >"$work/tests.json"
python3 - "$work/tests.json" "$before" "$after" "$(wc -l <"$work/access.log")" \
  "$(( $(date +%s) - start ))" "$PER_TEST_CAP" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
before, after, requests, seconds, cap = (int(x) for x in sys.argv[2:7])
kept_tests = len(doc["tests"])
# No exchange failed, so each test keeps its newest `cap`.
kept = sum(min(t["exchanges_total"], cap) for t in doc["tests"])
print(f"| requests sent (with an id) | {requests:,} in {seconds} s |")
print(f"| tests seen / kept / forgotten | {kept_tests + doc['tests_forgotten']:,} / "
      f"{kept_tests:,} / {doc['tests_forgotten']:,} |")
print(f"| exchanges kept | {kept:,} |")
print(f"| VmRSS before / after | {before / 1024:.1f} MiB / {after / 1024:.1f} MiB |")
print(f"| growth per exchange kept | {(after - before) * 1024 / max(kept, 1):.0f} bytes |")
EOF
