#!/usr/bin/env bash
# The container image's health check, without curl (the slim image has none):
# bash's /dev/tcp opens each connection.
#
# Healthy means both:
# - the admin endpoint answers /healthz on 127.0.0.1:9901;
# - the proxy port 3128 accepts a connection on the container's own address,
#   the one other containers use. The probe connects and closes without
#   sending a request, so it never shows in the access log or the error
#   metrics. A config that listens on 127.0.0.1 only fails here, since no
#   other container could reach it.
#
# CUTOFF_ADMIN_PORT, CUTOFF_PROXY_PORT and CUTOFF_HEALTH_ADDRESS change the
# ports and the address probed, for a configuration that uses others.
set -u
admin_port=${CUTOFF_ADMIN_PORT:-9901}
proxy_port=${CUTOFF_PROXY_PORT:-3128}

# Prints the status code of the answer to REQUEST sent to HOST:PORT.
status_of() {
  local host=$1 port=$2 request=$3 line
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf '%s' "$request" >&3
  IFS=' ' read -r -t 2 _ line _ <&3 || return 1
  exec 3<&-
  printf '%s\n' "$line"
}

admin=$(status_of 127.0.0.1 "$admin_port" $'GET /healthz HTTP/1.0\r\n\r\n') ||
  { echo "nothing answers on 127.0.0.1:$admin_port (the admin endpoint)"; exit 1; }
[ "$admin" = 200 ] || { echo "admin /healthz answered ${admin:-nothing}"; exit 1; }

# The container's address from /etc/hosts; loopback when it has none.
address=${CUTOFF_HEALTH_ADDRESS:-$(hostname -i 2>/dev/null | cut -d' ' -f1)}
address=${address:-127.0.0.1}
if ! (exec 3<>"/dev/tcp/$address/$proxy_port") 2>/dev/null; then
  echo "nothing accepts connections on $address:$proxy_port (does the config listen on 0.0.0.0?)"
  exit 1
fi
