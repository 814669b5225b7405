#!/usr/bin/env bash
# The container image's health check, without curl (the slim image has none):
# bash's /dev/tcp sends each request, `read` takes the status line.
#
# Healthy means both:
# - the admin endpoint answers /healthz on 127.0.0.1:9901;
# - the proxy answers on port 3128 of the container's own address, the one
#   other containers use. The request is in origin-form (GET /), which cutoff
#   answers itself with a 400 that explains HTTP_PROXY, without any network
#   access. A config that listens on 127.0.0.1 only fails here, since no
#   other container could reach it.
set -u

# Prints the status code of the answer to REQUEST sent to HOST:PORT.
status_of() {
  local host=$1 port=$2 request=$3 line
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf '%s' "$request" >&3
  IFS=' ' read -r -t 2 _ line _ <&3 || return 1
  exec 3<&-
  printf '%s\n' "$line"
}

admin=$(status_of 127.0.0.1 9901 $'GET /healthz HTTP/1.0\r\n\r\n') || exit 1
[ "$admin" = 200 ] || { echo "admin /healthz answered ${admin:-nothing}"; exit 1; }

# The container's address from /etc/hosts; loopback when it has none.
address=$(hostname -i 2>/dev/null | cut -d' ' -f1)
address=${address:-127.0.0.1}
proxy=$(status_of "$address" 3128 $'GET / HTTP/1.0\r\n\r\n') ||
  { echo "nothing answers on $address:3128 (does the config listen on 0.0.0.0?)"; exit 1; }
[ "$proxy" = 400 ] || { echo "$address:3128 answered ${proxy:-nothing}, not cutoff's 400"; exit 1; }
