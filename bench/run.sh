#!/usr/bin/env bash
# Compare cutoff with Debian's haproxy, squid and tinyproxy on loopback.
#
#   bench/run.sh [CUTOFF_BINARY]      default: build/cutoff
#
# Each proxy runs as one process/thread/event loop on a free 127.0.0.1 port in
# front of one nginx process serving a 100-byte file. wrk sends absolute-form
# requests through it (bench/proxy.lua). Measured per proxy: requests/s, CPU
# time per request (utime+stime of the proxy's process tree), wrk's p50/p99
# latency, and resident memory per idle keep-alive client connection
# (bench/idle_conns.py). Without a cutoff binary only the peers are measured.
#
# Environment: DURATION (10s), CONNS (50), IDLE_CONNS (2000).
# Writes bench/results/latest.md and prints it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/ports.sh
. "$here/ports.sh"
# shellcheck source=bench/packages.sh
. "$here/packages.sh"
repo=$(dirname "$here")
cutoff_bin=${1:-$repo/build/cutoff}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
IDLE_CONNS=${IDLE_CONNS:-2000}

# ------------------------------------------------------------------ packages
install_missing nginx wrk haproxy squid tinyproxy python3

# ------------------------------------------------------------------- helpers
work=$(mktemp -d -t cutoff-bench.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/www" "$work/nginx-tmp" "$work/squid"
head -c 100 /dev/zero | tr '\0' x >"$work/www/file"
[ "$(id -u)" -eq 0 ] && chown proxy:proxy "$work/squid"

started=()
cleanup() {
  local pid
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

render() {  # template port -> rendered file path
  local out="$work/$(basename "$1")"
  sed -e "s|@DIR@|$work|g" -e "s|@PROXY_PORT@|$2|g" -e "s|@BACKEND_PORT@|$backend_port|g" "$1" >"$out"
  echo "$out"
}

tree_pids() {
  local child
  echo "$1"
  for child in $(ps -o pid= --ppid "$1"); do tree_pids "$child"; done
}

cpu_ticks() {  # utime+stime of a process tree, reaped children included
  local total=0 pid
  for pid in $(tree_pids "$1"); do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13 + $14 + $15}')))
  done
  echo "$total"
}

clk_tck=$(getconf CLK_TCK)
results="$work/results.tsv"
: >"$results"

# bench NAME PORT PID: measure one running proxy (PID 0: no proxy).
bench() {
  local name=$1 port=$2 pid=$3 url="http://127.0.0.1:$backend_port/file"
  local idle="-" mode="-" line t0 t1
  echo "bench: $name" >&2
  if [ "$pid" != 0 ]; then
    line=$(python3 "$here/idle_conns.py" --pid "$pid" --port "$port" --url "$url" --count "$IDLE_CONNS")
    idle=$(sed -n 's/.*kib_per_conn=\([^ ]*\).*/\1/p' <<<"$line")
    mode=$(sed -n 's/.*mode=\([^ ]*\).*/\1/p' <<<"$line")
  fi
  TARGET_URL=$url wrk -t1 -c"$CONNS" -d2s -s "$here/proxy.lua" "http://127.0.0.1:$port/" >/dev/null
  [ "$pid" != 0 ] && t0=$(cpu_ticks "$pid")
  line=$(TARGET_URL=$url wrk -t1 -c"$CONNS" -d"$DURATION" --timeout 5s -s "$here/proxy.lua" \
         "http://127.0.0.1:$port/" | grep '^RESULT')
  [ "$pid" != 0 ] && t1=$(cpu_ticks "$pid")
  local -A r
  local kv
  for kv in ${line#RESULT }; do r[${kv%%=*}]=${kv#*=}; done
  local cpu="-"
  [ "$pid" != 0 ] && cpu=$(( (t1 - t0) * 1000000 / clk_tck / (r[requests] > 0 ? r[requests] : 1) ))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${r[requests]}" "${r[duration_us]}" \
    "${r[errors]}" "${r[read_errors]}" "$cpu" "${r[p50_us]}" "${r[p99_us]}" "$idle" "$mode" >>"$results"
}

# run NAME TEMPLATE COMMAND...: start a proxy (@CONF@ in COMMAND is the
# rendered template), measure it, stop it.
run() {
  local name=$1 template=$2 port conf pid
  shift 2
  port=$(free_port)
  conf=$(render "$template" "$port")
  "${@//@CONF@/$conf}" >/dev/null 2>"$work/$name.stderr" &
  pid=$!
  started+=("$pid")
  if ! wait_port "$port"; then
    cat "$work/$name.stderr" >&2
    return 1
  fi
  bench "$name" "$port" "$pid"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

ulimit -n "$(ulimit -Hn)"

# ------------------------------------------------------------------- backend
backend_port=$(free_port)
nginx_conf=$(render "$here/nginx.conf" 0)
nginx -c "$nginx_conf" -e "$work/nginx-error.log" &
started+=("$!")
wait_port "$backend_port"

# -------------------------------------------------------------------- proxies
bench "none (wrk to nginx)" "$backend_port" 0
if [ -x "$cutoff_bin" ]; then
  run cutoff "$here/cutoff.toml" "$cutoff_bin" --config @CONF@
else
  echo "bench: no cutoff binary at $cutoff_bin; measuring the peers only" >&2
fi
run haproxy "$here/haproxy.cfg" haproxy -db -f @CONF@
run squid "$here/squid.conf" squid -N -f @CONF@
run tinyproxy "$here/tinyproxy.conf" tinyproxy -d -c @CONF@

# --------------------------------------------------------------------- report
mkdir -p "$here/results"
{
  echo "# Proxy benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
  echo "- load: wrk -t1 -c$CONNS -d$DURATION, 100-byte file from nginx (1 process), all on 127.0.0.1"
  echo "- versions: $(haproxy -v | head -1 | cut -d' ' -f1-3); squid $(squid -v | sed -n 's/.*Version //p'); tinyproxy $(tinyproxy -v | cut -d' ' -f2); nginx $(nginx -v 2>&1 | cut -d/ -f2); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo
  python3 "$here/report.py" "$results"
} >"$here/results/latest.md"
cat "$here/results/latest.md"
