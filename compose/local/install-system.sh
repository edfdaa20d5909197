#!/usr/bin/env bash
# Ensure the system packages the local stack needs: redis-server, PostgreSQL, nginx,
# a Java runtime + Maven (for the Kafka jars) and, with --browser, chromium.
#
#   compose/local/install-system.sh [--browser]
#
# As root, missing packages are installed with apt-get (Debian/Ubuntu).
# Otherwise one line per missing package says what to run, and we exit 2.
# When everything is present this only looks at the file system (no apt call),
# so `make run` / `make test` can call it every time.
set -euo pipefail

want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    -h | --help)
      sed -n '2,10s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    *)
      echo "install-system: unknown argument '$arg' (usage: install-system.sh [--browser])" >&2
      exit 2
      ;;
  esac
done

have() { command -v "$1" >/dev/null 2>&1; }

# PostgreSQL's server binaries are not on PATH on Debian: they live in
# /usr/lib/postgresql/<major>/bin (psql etc. in /usr/bin are wrappers).
have_postgres_server() {
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ] && [ -x "$bin/pg_ctl" ]; then
      return 0
    fi
  done
  return 1
}

# Each entry: "<what is missing>|<apt packages that provide it>".
missing=()
# redis-tools (redis-cli) comes with redis-server as a dependency.
if ! have redis-server || ! have redis-cli; then missing+=("redis-server|redis-server"); fi
if ! have_postgres_server; then missing+=("postgresql|postgresql"); fi
if ! have java; then missing+=("java|openjdk-17-jre-headless"); fi
if ! have mvn; then missing+=("mvn|maven"); fi
# nginx in front of the api in `make run` (compose/local/nginx.sh); /usr/sbin may not be on PATH.
if ! have nginx && [ ! -x /usr/sbin/nginx ]; then missing+=("nginx|nginx-light"); fi
if [ "$want_browser" = 1 ] && ! have chromium; then missing+=("chromium|chromium"); fi

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

pkgs=()
for entry in "${missing[@]}"; do
  pkgs+=("${entry#*|}")
done

if [ "$(id -u)" -ne 0 ]; then
  for entry in "${missing[@]}"; do
    echo "${entry%%|*} is missing: run 'sudo apt-get install -y ${entry#*|}' (Debian/Ubuntu) and try again" >&2
  done
  exit 2
fi

if ! have apt-get; then
  echo "install-system: missing ${pkgs[*]} and apt-get is not available; install them with your package manager and try again" >&2
  exit 2
fi

# Keep the packages' own system services (redis-server.service, nginx.service, the
# postgresql@<ver>-main cluster) from being started by the install: the local
# stack runs its own instances on its own ports and data directories.
# invoke-rc.d asks /usr/sbin/policy-rc.d; exit code 101 means "action forbidden".
# We only add (and later remove) the file if nobody else put one there.
policy=/usr/sbin/policy-rc.d
log=$(mktemp /tmp/install-system.XXXXXX)
created_policy=0
cleanup() {
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
  rm -f "$log"
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from compose/local/install-system.sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi

echo "install-system: installing ${pkgs[*]} with apt-get (this can take a minute)..."
export DEBIAN_FRONTEND=noninteractive
# apt-get output goes to a log shown only on failure, so `make run` stays readable.
# The lock timeout waits for a concurrent apt/dpkg run instead of failing at once.
if ! apt-get -o DPkg::Lock::Timeout=120 update >"$log" 2>&1 ||
  ! apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends "${pkgs[@]}" >>"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "install-system: apt-get failed while installing ${pkgs[*]} (output above)" >&2
  exit 1
fi

# Check the result the same way we checked before installing.
still=()
if ! have redis-server || ! have redis-cli; then still+=(redis-server); fi
if ! have_postgres_server; then still+=(postgresql); fi
if ! have java; then still+=(java); fi
if ! have mvn; then still+=(mvn); fi
if ! have nginx && [ ! -x /usr/sbin/nginx ]; then still+=(nginx); fi
if [ "$want_browser" = 1 ] && ! have chromium; then still+=(chromium); fi
if [ "${#still[@]}" -ne 0 ]; then
  echo "install-system: still missing after apt-get: ${still[*]}" >&2
  exit 1
fi
echo "install-system: installed ${pkgs[*]}"
