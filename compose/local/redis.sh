#!/usr/bin/env bash
# A private redis-server for the local stack (Celery broker, idempotency keys,
# rate-limit buckets), on its own port and data directory.
#
#   compose/local/redis.sh run   --port P --data DIR   # foreground (make run / Procfile)
#   compose/local/redis.sh start --port P --data DIR   # background, waits for PONG (make test)
#   compose/local/redis.sh stop  --data DIR            # stops what `start` started
#
# --port defaults to $REDIS_PORT, then 6379. Files in DIR: appendonlydir/ (data),
# redis.pid and redis.log (start only).
set -euo pipefail

die() {
  echo "redis: $*" >&2
  exit 2
}

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
port=${REDIS_PORT:-6379}
data=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --data) data=${2:?--data needs a value}; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[ -n "$data" ] || die "--data DIR is required"
case "$port" in
  '' | *[!0-9]*) die "--port must be a number, got '$port'" ;;
esac
[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port must be 1-65535, got $port"
command -v redis-server >/dev/null 2>&1 ||
  die "redis-server is missing: run compose/local/install-system.sh (or 'sudo apt-get install -y redis-server')"

pidfile=$data/redis.pid
logfile=$data/redis.log

# True if something listens on 127.0.0.1:P (or on all addresses) already.
port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
  else
    # No ss: try to connect; success means a listener is there.
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
  fi
}

check_port_free() {
  if port_in_use "$port"; then
    die "port $port is already in use; set REDIS_PORT to a free port"
  fi
}

# Alive and not a zombie (a zombie still answers kill -0).
alive() {
  local state
  [ -r "/proc/$1/stat" ] || return 1
  state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# The pid from DIR/redis.pid if that process is alive and really redis-server
# (guards against a stale pid file whose pid was reused by something else).
running_pid() {
  local pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q redis-server || return 1
  echo "$pid"
}

# Arguments on the command line rather than a config file: nothing to keep in
# sync, and the same data directory can be reused on another port.
server_args() {
  args=(
    --bind 127.0.0.1         # loopback only: a dev broker must not be reachable from the network
    --port "$port"
    --dir "$data"            # AOF files live in DIR/appendonlydir
    --appendonly yes         # queued Celery tasks and idempotency keys survive a restart
    --appendfsync everysec   # at most ~1 s of writes lost on a crash, without an fsync per write
    --save ""                # no RDB snapshots (and their fork pauses): the AOF is the persistence
    --protected-mode yes     # refuse non-loopback clients even if bind is ever widened
    --daemonize no           # the caller (Procfile runner or `start`) owns the process
    --logfile ""             # log to stdout: visible in `make run`, redirected to redis.log by `start`
  )
}

case "$cmd" in
  run)
    mkdir -p "$data"
    check_port_free
    server_args
    # exec: SIGTERM from the process runner reaches redis directly (clean shutdown, AOF flushed).
    exec redis-server "${args[@]}"
    ;;

  start)
    mkdir -p "$data"
    if pid=$(running_pid); then
      if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
        echo "redis: already running on 127.0.0.1:$port (pid $pid)"
        exit 0
      fi
      die "$data is in use by redis pid $pid on another port; run '$0 stop --data $data' first"
    fi
    check_port_free
    server_args
    t0=$EPOCHREALTIME
    # setsid: own session and process group, so a Ctrl-C in the terminal that
    # ran `make test` does not hit it, and stop can signal the whole group.
    # (setsid execs rather than forks here, so $! is redis-server's pid.)
    setsid redis-server "${args[@]}" >>"$logfile" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
    for _ in $(seq 1 200); do # 200 x 0.1 s = 20 s
      if ! alive "$pid"; then
        tail -n 20 "$logfile" >&2
        rm -f "$pidfile"
        echo "redis: redis-server exited during startup (log: $logfile)" >&2
        exit 1
      fi
      if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
        t1=$EPOCHREALTIME
        ms=$(((${t1//[.,]/} - ${t0//[.,]/}) / 1000)) # EPOCHREALTIME: seconds.micro
        echo "redis: ready on 127.0.0.1:$port (pid $pid, ${ms} ms, data $data)"
        exit 0
      fi
      sleep 0.1
    done
    tail -n 20 "$logfile" >&2
    echo "redis: no PONG on port $port after 20 s; stopping it (log: $logfile)" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"
    exit 1
    ;;

  stop)
    if ! pid=$(running_pid); then
      rm -f "$pidfile"
      echo "redis: not running (data $data)"
      exit 0
    fi
    # SIGTERM = redis shutdown: flushes the AOF, then exits.
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do # 150 x 0.1 s = 15 s
      if ! alive "$pid"; then
        rm -f "$pidfile"
        echo "redis: stopped (pid $pid)"
        exit 0
      fi
      sleep 0.1
    done
    echo "redis: pid $pid did not stop within 15 s; sending SIGKILL to its process group" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    exit 0
    ;;

  *)
    usage
    ;;
esac
