#!/usr/bin/env bash
# cutoff with two workers and its access log on, next to haproxy and nginx,
# in one run:
#
#   bench/workers2.sh [CUTOFF_BINARY]   default build/cutoff (./build.sh build when missing)
#
# On 127.0.0.1, in front of one nginx process serving a 100-byte file
# (bench/nginx.conf), each proxy in turn:
#   - cutoff: workers = 2, the access log written to a file (bench/cutoff.toml);
#   - haproxy: nbthread 2, no log, the one backend (bench/haproxy.cfg);
#   - nginx: a master and 2 workers, no access log, routing on the request's
#     host to a pooled upstream (bench/nginx-proxy.conf).
# The load is wrk -t1 -cCONNS, keep-alive, absolute-form GETs (bench/proxy.lua).
# Per proxy (workers2.py measure): requests/s; user and system CPU per request
# from /proc/PID/stat of the proxy's processes; syscalls per request from
# strace -c -f in two shorter runs of their own, differenced; resident memory
# before any traffic, per idle client connection and with 10,000 of them
# (idle_conns.py). The proxies take turns for ROUNDS rounds, each round in a
# rotated order, so that the machine's changes of pace fall on all of them;
# the report gives medians, spreads and every figure as a ratio to haproxy's
# and nginx's of the same round.
#
# Environment: ROUNDS (3), DURATION (10), WARMUP (2), CONNS (50),
# STRACE_SHORT (2), STRACE_LONG (6), IDLE_CONNS (10000, fewer when the
# descriptor limit cannot give haproxy that many: the figure at 10k is then
# extrapolated), PROXIES ("cutoff haproxy nginx").
# Prints Markdown on stdout, progress on stderr; keeps the measurements in
# bench/results/workers2.jsonl (workers2.py report FILE prints them again).
# Exit 1 if a measurement failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/ports.sh
. "$here/ports.sh"
# shellcheck source=bench/packages.sh
. "$here/packages.sh"
repo=$(dirname "$here")
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-50}
STRACE_SHORT=${STRACE_SHORT:-2}
STRACE_LONG=${STRACE_LONG:-6}
read -r -a proxies <<<"${PROXIES:-cutoff haproxy nginx}"

cutoff_bin=${1:-$repo/build/cutoff}
if [ $# -eq 0 ] && [ ! -x "$cutoff_bin" ]; then
  echo "workers2: no $cutoff_bin yet; building it" >&2
  "$repo/build.sh" build >&2
fi
[ -x "$cutoff_bin" ] || { echo "workers2: $cutoff_bin is not an executable" >&2; exit 1; }
cutoff_bin=$(realpath "$cutoff_bin")
install_missing nginx wrk haproxy strace python3

ulimit -n "$(ulimit -Hn)"
# haproxy wants two descriptors per client connection it may hold (one for
# the server side) and refuses to start without them; give every proxy the
# same number of idle connections.
fit=$(( ($(ulimit -n) - 500) / 2 / 1000 * 1000 ))
IDLE_CONNS=${IDLE_CONNS:-$(( fit < 10000 ? fit : 10000 ))}

work=$(mktemp -d -t cutoff-workers2.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/www" "$work/nginx-tmp"
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
url="http://127.0.0.1:$backend_port/file"
render() {  # TEMPLATE DIR PORT [SED ARGS...]: the template filled in, into DIR
  local template=$1 dir=$2 port=$3 out
  out="$dir/$(basename "$template")"
  shift 3
  sed -e "s|@DIR@|$dir|g" -e "s|@PROXY_PORT@|$port|g" -e "s|@BACKEND_PORT@|$backend_port|g" \
    "$@" "$template" >"$out"
  echo "$out"
}

render "$here/nginx.conf" "$work" 0 >/dev/null
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" &
started+=("$!")
wait_port "$backend_port"

# start_proxy NAME DIR: start one proxy on a free port with its files in DIR;
# sets $pid, $port and $stop_signal (the one it takes to end without error:
# haproxy ends with 143 on SIGTERM, with 0 on its soft stop).
start_proxy() {
  local name=$1 dir=$2 conf
  port=$(free_port)
  stop_signal=TERM
  case $name in
    cutoff)
      # max_client_connections over the idle connections, so that cutoff's
      # own cap is not what is measured.
      conf=$(render "$here/cutoff.toml" "$dir" "$port" -e 's/^workers = 1$/workers = 2/' \
        -e '/^\[listen\]/a max_client_connections = 20000')
      printf '\n[access_log]\npath = "%s/access.log"\n' "$dir" >>"$conf"
      "$cutoff_bin" --config "$conf" >/dev/null 2>"$dir/stderr" &
      ;;
    haproxy)
      # Without maxconn, haproxy sizes it from the descriptor limit.
      conf=$(render "$here/haproxy.cfg" "$dir" "$port" -e 's/^\(\s*nbthread\) 1$/\1 2/' \
        -e '/^\s*maxconn /d')
      haproxy -db -f "$conf" >/dev/null 2>"$dir/stderr" &
      stop_signal=USR1
      ;;
    nginx)
      mkdir -p "$dir/nginx-tmp"
      conf=$(render "$here/nginx-proxy.conf" "$dir" "$port")
      nginx -c "$conf" -e "$dir/nginx-proxy-error.log" >/dev/null 2>"$dir/stderr" &
      ;;
    *) echo "workers2: no proxy called $name" >&2; return 1 ;;
  esac
  pid=$!
  started+=("$pid")
  wait_port "$port" || { cat "$dir/stderr" >&2; return 1; }
}

results=$work/results.jsonl
for round in $(seq "$ROUNDS"); do
  shift_by=$(( (round - 1) % ${#proxies[@]} ))
  order=("${proxies[@]:shift_by}" "${proxies[@]:0:shift_by}")
  for name in "${order[@]}"; do
    echo "workers2: round $round of $ROUNDS: $name" >&2
    dir=$work/$name.$round
    mkdir -p "$dir"
    chmod 755 "$dir"
    start_proxy "$name" "$dir"
    log=()
    [ "$name" = cutoff ] && log=(--access-log "$dir/access.log")
    python3 "$here/workers2.py" measure --name "$name" --round "$round" --pid "$pid" \
      --port "$port" --url "$url" --work "$dir" --conns "$CONNS" --warmup "$WARMUP" \
      --duration "$DURATION" --strace-short "$STRACE_SHORT" --strace-long "$STRACE_LONG" \
      --idle-conns "$IDLE_CONNS" "${log[@]}" >>"$results"
    kill -"$stop_signal" "$pid"
    wait "$pid" || { echo "workers2: $name exited $?" >&2; exit 1; }
    # haproxy says on stderr how many connections each proxy section took
    # when it stops; anything else there is worth a look.
    if grep -v ' stopped (cumulated conns: ' "$dir/stderr" >"$dir/stderr.rest"; then
      echo "workers2: $name wrote to stderr:" >&2
      cat "$dir/stderr.rest" >&2
    fi
  done
done

# The rounds as measured, to report again or compare later.
mkdir -p "$here/results"
cp "$results" "$here/results/workers2.jsonl"

echo "# cutoff with two workers, next to haproxy and nginx"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
echo "- cutoff: $("$cutoff_bin" --version), workers = 2, access log to a file; $(haproxy -v | head -1 | cut -d' ' -f1-3), nbthread 2; nginx $(nginx -v 2>&1 | cut -d/ -f2), 2 workers"
echo "- load: wrk -t1 -c$CONNS, ${WARMUP} s warm-up, ${DURATION} s measured; strace -c -f over ${STRACE_SHORT} s and ${STRACE_LONG} s; $IDLE_CONNS idle connections; backend: nginx, 1 process, a 100-byte file; all on 127.0.0.1; $ROUNDS rounds"
echo "- $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(strace -V | head -1)"
echo
python3 "$here/workers2.py" report "$results"
