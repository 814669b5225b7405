#!/usr/bin/env bash
# Figures of cutoff that do not drift with machine load, for one binary or two
# side by side (with the ratio new/base):
#
#   bench/counts.sh CUTOFF_BINARY [NEW_CUTOFF_BINARY]
#
# cutoff runs with workers = 1 and its access log written to a file, in front
# of one nginx process serving a 100-byte file on 127.0.0.1 (bench/nginx.conf).
# One client connection sends SHORT, then (cutoff started again) LONG
# keep-alive GETs through it (counts.py client). Every count is taken at both
# and differenced, (count at LONG - count at SHORT) / (LONG - SHORT), so that
# start-up, the first connect and shutdown cancel out:
#   - instructions per request: total Ir of cutoff under valgrind's callgrind,
#     and where they go (self Ir per function, callgrind_annotate);
#   - syscalls per request: strace -f -c of cutoff, in all and by syscall;
#   - KiB per idle client connection: growth of cutoff's VmRSS with
#     IDLE_CONNS keep-alive connections open that made one request each
#     (idle_conns.py), cutoff not traced.
# Environment: SHORT (1000), LONG (3000), IDLE_CONNS (2000), TOP (10); KEEP=1
# keeps the callgrind and strace files, to dig further with callgrind_annotate.
# Prints Markdown on stdout; progress on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/ports.sh
. "$here/ports.sh"
SHORT=${SHORT:-1000}
LONG=${LONG:-3000}
IDLE_CONNS=${IDLE_CONNS:-2000}
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
fi
for cmd in valgrind callgrind_annotate strace nginx python3; do
  command -v "$cmd" >/dev/null || { echo "counts: $cmd missing (apt-get install valgrind strace nginx)" >&2; exit 1; }
done
for bin in "$@"; do
  [ -x "$bin" ] || { echo "counts: $bin is not an executable" >&2; exit 1; }
done

work=$(mktemp -d -t cutoff-counts.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/www" "$work/nginx-tmp"
head -c 100 /dev/zero | tr '\0' x >"$work/www/file"

# await PID: wait up to 60 s for a process to end (a zombie counts), then kill it.
await() {
  local state
  for _ in $(seq 600); do
    state=$(ps -o stat= -p "$1" || true)
    if [ -z "$state" ] || [ "${state:0:1}" = Z ]; then break; fi
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop() { kill -TERM "$1" 2>/dev/null || true; await "$1"; }

nginx_pid=
pid=  # the cutoff running now (or the tool running it)
cleanup() {
  local child
  if [ -n "$pid" ]; then
    for child in $(ps -o pid= --ppid "$pid"); do stop "$child"; done
    stop "$pid"
  fi
  [ -z "$nginx_pid" ] || stop "$nginx_pid"
  if [ -n "${KEEP:-}" ]; then echo "counts: files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)"

backend_port=$(free_port)
url="http://127.0.0.1:$backend_port/file"
sed -e "s|@DIR@|$work|g" -e "s|@BACKEND_PORT@|$backend_port|g" "$here/nginx.conf" >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" &
nginx_pid=$!
wait_port "$backend_port" 60

# cutoff_under DIR TOOL...: start cutoff (under TOOL, if any) on a fresh port
# with a fresh access log; sets $pid (of TOOL) and $port.
cutoff_under() {
  local dir=$1
  shift
  port=$(free_port)
  sed "s|@PROXY_PORT@|$port|" "$here/cutoff.toml" >"$dir/cutoff.toml"
  printf '\n[access_log]\npath = "%s/access.log"\n' "$dir" >>"$dir/cutoff.toml"
  rm -f "$dir/access.log"
  "$@" "$bin" --config "$dir/cutoff.toml" >/dev/null 2>>"$dir/stderr" &
  pid=$!
  wait_port "$port" 60 || { cat "$dir/stderr" >&2; return 1; }
}

client() {  # PORT COUNT
  timeout 600 python3 "$here/counts.py" client --port "$1" --url "$url" --count "$2"
}

logged() {  # DIR COUNT: the access log has a line per request
  local lines
  lines=$(wc -l <"$1/access.log")
  [ "$lines" = "$2" ] || { echo "counts: $lines access log lines for $2 requests" >&2; return 1; }
}

# measure LABEL BINARY: every count of one binary, into $work/LABEL/.
measure() {
  local label=$1 dir=$work/$1 n
  bin=$2
  mkdir -p "$dir"
  for n in "$SHORT" "$LONG"; do
    echo "counts: $label: callgrind, $n requests" >&2
    cutoff_under "$dir" valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.$n"
    client "$port" "$n"
    stop "$pid"
    pid=
    logged "$dir" "$n"

    echo "counts: $label: strace, $n requests" >&2
    cutoff_under "$dir" strace -f -c -o "$dir/strace.$n"
    client "$port" "$n"
    stop "$(ps -o pid= --ppid "$pid" | tr -d ' ')"  # cutoff itself; strace ends with it
    await "$pid"
    pid=
    logged "$dir" "$n"
  done
  echo "counts: $label: $IDLE_CONNS idle connections" >&2
  cutoff_under "$dir"
  timeout 600 python3 "$here/idle_conns.py" --pid "$pid" --port "$port" --url "$url" \
    --count "$IDLE_CONNS" >"$dir/idle"
  stop "$pid"
  pid=
  grep -q "mode=keepalive open=$IDLE_CONNS\$" "$dir/idle" || { cat "$dir/idle" >&2; return 1; }
}

bins=("$@")
if [ $# = 1 ]; then labels=(cutoff); else labels=(base new); fi
runs=()
for i in "${!bins[@]}"; do
  measure "${labels[$i]}" "$(realpath "${bins[$i]}")"
  runs+=("${labels[$i]}=$work/${labels[$i]}")
done

echo "# cutoff counts"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); $(valgrind --version), $(strace -V | head -1)"
for i in "${!bins[@]}"; do echo "- ${labels[$i]}: ${bins[$i]} ($("${bins[$i]}" --version 2>/dev/null || echo "no --version"))"; done
echo "- per request: (count at $LONG requests - count at $SHORT) / $((LONG - SHORT)), one keep-alive client connection, 100-byte body; idle: $IDLE_CONNS connections"
echo
python3 "$here/counts.py" report "$SHORT" "$LONG" "${runs[@]}" --top "${TOP:-10}"
