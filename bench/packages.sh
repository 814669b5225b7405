# Debian packages for the bench scripts; sourced, not run.

# install_missing PACKAGE...: apt-get install those not installed yet.
install_missing() {
  local missing=() pkg sudo=() policy=/usr/sbin/policy-rc.d added_policy=0
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo=(sudo); fi
  # The benchmark runs its own instances: keep the packages' system services
  # from starting at install time.
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    added_policy=1
  fi
  echo "bench: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  [ "$added_policy" = 1 ] && "${sudo[@]}" rm -f "$policy"
  return 0
}
