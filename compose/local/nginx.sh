#!/usr/bin/env bash
# nginx in front of the local api (granian): whole requests only, slow clients timed out.
#
#   compose/local/nginx.sh run --port P --upstream-port U --data DIR   # foreground (make run / Procfile)
#
# --port defaults to $API_PORT, then 8000; --upstream-port to $API_UPSTREAM_PORT, then 8001 (where
# the api's server listens). NGINX_CLIENT_TIMEOUT_S (10) bounds how long a request may take to arrive.
# Files in DIR: nginx.conf (rendered from compose/local/nginx.conf.template), temp folders.
set -euo pipefail

die() {
  echo "nginx: $*" >&2
  exit 2
}

usage() {
  sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

cmd=${1:-}
[ "$cmd" = run ] || usage
shift
port=${API_PORT:-8000}
upstream_port=${API_UPSTREAM_PORT:-8001}
data=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --upstream-port) upstream_port=${2:?--upstream-port needs a value}; shift 2 ;;
    --data) data=${2:?--data needs a value}; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[ -n "$data" ] || die "--data DIR is required"
for value in "$port" "$upstream_port"; do
  case "$value" in
    '' | *[!0-9]*) die "ports must be numbers, got '$value'" ;;
  esac
done
timeout_s=${NGINX_CLIENT_TIMEOUT_S:-10}
case "$timeout_s" in '' | *[!0-9]*) die "NGINX_CLIENT_TIMEOUT_S must be whole seconds, got '$timeout_s'" ;; esac

nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || [ ! -x /usr/sbin/nginx ] || nginx_bin=/usr/sbin/nginx
[ -n "$nginx_bin" ] ||
  die "nginx is missing: run compose/local/install-system.sh (or 'sudo apt-get install -y nginx-light')"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  die "port $port is already in use; set API_PORT to a free port"
fi

mkdir -p "$data"
data=$(cd "$data" && pwd)
mkdir -p "$data/body" "$data/proxy" "$data/fastcgi" "$data/uwsgi" "$data/scgi"
here=$(cd "$(dirname "$0")" && pwd)
# Plain bash substitution (no sed): a data path may contain any character.
shopt -u patsub_replacement 2>/dev/null || true
text=$(<"$here/nginx.conf.template")
text=${text//@PORT@/$port}
text=${text//@UPSTREAM_PORT@/$upstream_port}
text=${text//@DATA@/$data}
text=${text//@CLIENT_TIMEOUT@/$timeout_s}
printf '%s\n' "$text" >"$data/nginx.conf"
# -e: its start-up errors to stderr, not to a log file under /var; exec: SIGTERM reaches nginx
# (a fast shutdown), SIGQUIT a graceful one.
exec "$nginx_bin" -e stderr -p "$data" -c "$data/nginx.conf"
