#!/usr/bin/env bash
# What TLS interception costs cutoff, next to plain HTTP proxying, on loopback:
#
#   bench/https.sh [CUTOFF_BINARY]      default: build/cutoff (built with
#                                       ./build.sh build when missing)
#
# One nginx process serves a 100-byte file over http and over https (two
# https ports; its certificate comes from a CA made for the run with the
# openssl CLI). One cutoff (workers = 1, access log to /dev/null) intercepts
# CONNECTs to the first https port with a CA from `cutoff ca init`, trusting
# nginx's CA as [tls] upstream_ca, and tunnels those to the second. Scenarios,
# one after the other, each the same load (https.py load: PROCS client
# processes, one connection at a time each, every answer checked):
#   1. GET http://... through cutoff, keep-alive;
#   2. CONNECT + TLS intercepted by cutoff, keep-alive;
#   3. the same, a new connection (CONNECT and handshake) per request;
#   4. CONNECT tunnel (tls = "tunnel") with TLS to nginx inside, keep-alive;
#   5. TLS straight to nginx, keep-alive, then a new connection per request.
# Each: WARMUP seconds, then requests counted for DURATION seconds and
# cutoff's CPU time in that window (user and system, /proc/PID/stat). The
# scenarios run in turn ROUNDS times, so that the machine's changes of pace
# fall on all of them; a scenario's figures are over its rounds. Ratios are
# to scenario 1; the target checked is scenario 2 at most twice scenario 1's
# CPU per request.
#
# Environment: ROUNDS (3), DURATION (4), WARMUP (0.5), PROCS (4).
# Prints Markdown on stdout; progress on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/ports.sh
. "$here/ports.sh"
# shellcheck source=bench/packages.sh
. "$here/packages.sh"
repo=$(dirname "$here")
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-0.5}
PROCS=${PROCS:-4}

cutoff_bin=${1:-$repo/build/cutoff}
if [ $# -eq 0 ] && [ ! -x "$cutoff_bin" ]; then
  echo "https: no $cutoff_bin yet; building it" >&2
  "$repo/build.sh" build >&2
fi
[ -x "$cutoff_bin" ] || { echo "https: $cutoff_bin is not an executable" >&2; exit 1; }
cutoff_bin=$(realpath "$cutoff_bin")
install_missing nginx openssl python3

work=$(mktemp -d -t cutoff-https.XXXXXX)
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

# ------------------------------------------------------------- certificates
# nginx's: a CA and a leaf for 127.0.0.1 (EC P-256, as cutoff's leaves), for
# the day. cutoff's: its own interception CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=cutoff bench origin CA" -keyout "$work/origin-ca-key.pem" -out "$work/origin-ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=127.0.0.1" -keyout "$work/origin-key.pem" -out "$work/origin.pem" \
  -CA "$work/origin-ca.pem" -CAkey "$work/origin-ca-key.pem" \
  -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
  -addext "extendedKeyUsage=serverAuth" 2>/dev/null
"$cutoff_bin" ca init "$work/ca" >/dev/null

# ------------------------------------------------------------------- origin
backend_port=$(free_port)
tls_port=$(free_port)
tunnel_port=$(free_port)
subst=(-e "s|@DIR@|$work|g" -e "s|@BACKEND_PORT@|$backend_port|g"
       -e "s|@TLS_PORT@|$tls_port|g" -e "s|@TUNNEL_PORT@|$tunnel_port|g")
sed "${subst[@]}" "$here/nginx.conf" >"$work/nginx.conf"
sed "${subst[@]}" "$here/nginx-tls.conf" >"$work/servers/tls.conf"
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" &
started+=("$!")
for port in "$backend_port" "$tls_port" "$tunnel_port"; do wait_port "$port"; done

# ------------------------------------------------------------------- cutoff
proxy_port=$(free_port)
sed -e "s|@PROXY_PORT@|$proxy_port|" -e '/^\[listen\]/a connect_ports = ["*"]' \
  "$here/cutoff.toml" >"$work/cutoff.toml"
cat >>"$work/cutoff.toml" <<EOF

[tls]
ca_cert = "$work/ca/ca.pem"
ca_key = "$work/ca/ca-key.pem"
upstream_ca = "$work/origin-ca.pem"

[defaults]
tls = "intercept"

[[route]]
name = "tunnel"
match = { port = $tunnel_port }
tls = "tunnel"
EOF
"$cutoff_bin" --config "$work/cutoff.toml" >/dev/null 2>"$work/cutoff.stderr" &
cutoff_pid=$!
started+=("$cutoff_pid")
wait_port "$proxy_port" || { cat "$work/cutoff.stderr" >&2; exit 1; }

# ---------------------------------------------------------------- scenarios
results=$work/results.tsv
: >"$results"
load() {  # NAME ARGS...: one scenario, one line into $results
  echo "https:   $1" >&2
  python3 "$here/https.py" load "$@" --procs "$PROCS" --warmup "$WARMUP" --duration "$DURATION" \
    >>"$results"
}
via_cutoff=(--proxy-port "$proxy_port" --pid "$cutoff_pid")
for round in $(seq "$ROUNDS"); do
  echo "https: round $round of $ROUNDS" >&2
  load "HTTP through cutoff, keep-alive" --mode http --origin-port "$backend_port" "${via_cutoff[@]}"
  load "HTTPS intercepted, keep-alive" --mode connect --origin-port "$tls_port" "${via_cutoff[@]}" \
    --cafile "$work/ca/ca.pem"
  load "HTTPS intercepted, new connection per request" --mode connect --fresh \
    --origin-port "$tls_port" "${via_cutoff[@]}" --cafile "$work/ca/ca.pem"
  load "HTTPS tunnelled, keep-alive" --mode connect --origin-port "$tunnel_port" "${via_cutoff[@]}" \
    --cafile "$work/origin-ca.pem"
  load "HTTPS direct to nginx, keep-alive" --mode direct --origin-port "$tls_port" \
    --cafile "$work/origin-ca.pem"
  load "HTTPS direct to nginx, new connection per request" --mode direct --fresh \
    --origin-port "$tls_port" --cafile "$work/origin-ca.pem"
done
if [ -s "$work/cutoff.stderr" ]; then
  echo "https: cutoff wrote to stderr:" >&2
  cat "$work/cutoff.stderr" >&2
fi

# ------------------------------------------------------------------- report
echo "# cutoff HTTPS benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
echo "- $("$cutoff_bin" --version), workers = 1; nginx $(nginx -v 2>&1 | cut -d/ -f2), 1 process; $(openssl version | cut -d' ' -f1-2); Python $(python3 -c 'import platform; print(platform.python_version())')"
echo "- load: $PROCS client processes, one connection at a time each; $ROUNDS rounds of every scenario, each ${WARMUP}s warm-up then ${DURATION}s counted; 100-byte file, all on 127.0.0.1"
echo
python3 "$here/https.py" report "$results" --target "HTTPS intercepted, keep-alive" --limit 2
