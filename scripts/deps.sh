#!/usr/bin/env bash
# Installs what splicegate needs to build (`run`) or to build and test (`test`).
# Idempotent and quick when everything is already there: apt-get update runs
# only when a Debian package is missing, the venv is rebuilt only when
# Tests/e2e/requirements.txt changed or the venv is broken.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-test}"
case "$mode" in
  run)  apt_pkgs=(libmicrohttpd-dev libjansson-dev pkg-config curl netcat-openbsd) ;;
  test) apt_pkgs=(libmicrohttpd-dev libjansson-dev pkg-config curl netcat-openbsd
                  socat redis-server python3-venv chromium chromium-driver tshark
                  postgresql haproxy systemd procps) ;;
  *) echo "usage: $0 [run|test]" >&2; exit 2 ;;
esac

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for pkg in "${apt_pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $sudo apt-get update -q
  # wireshark-common asks whether non-root users may capture; tests only read files.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ "$mode" = test ] || exit 0

# Python venv for the end-to-end suite (pytest, schemathesis, requests).
venv=.venv
req=Tests/e2e/requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
  python="${PYTHON:-python3}"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    # A python without ensurepip (e.g. a bare interpreter): use Debian's.
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
  fi
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "deps: installing python packages from $req"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
fi
