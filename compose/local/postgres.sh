#!/usr/bin/env bash
# A private PostgreSQL server for the local stack and the integration tests,
# on its own port and data directory (never the distro's system cluster).
#
#   compose/local/postgres.sh run       --port P --data DIR   # foreground (Procfile)
#   compose/local/postgres.sh start     --port P --data DIR   # background, waits for pg_isready (make test)
#   compose/local/postgres.sh stop      --data DIR            # fast shutdown of what runs on DIR
#   compose/local/postgres.sh ensure-db --port P [--data DIR] --db NAME   # create NAME if missing
#
# --port defaults to $POSTGRES_PORT, then 5432. $PG_BINDIR overrides the server
# binaries' directory (default: newest /usr/lib/postgresql/*/bin).
# Files in DIR: pgdata/ (the cluster, initdb'd on first use), socket/ (unix
# socket), postgres.log (start only), initdb.log.
# Superuser "postgres", no password (trust), listening on 127.0.0.1 only.
set -euo pipefail

die() {
  echo "postgres: $*" >&2
  exit 2
}

usage() {
  sed -n '2,15s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
port=${POSTGRES_PORT:-5432}
data=
db=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --data) data=${2:?--data needs a value}; shift 2 ;;
    --db) db=${2:?--db needs a value}; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1'" ;;
  esac
done
case "$port" in
  '' | *[!0-9]*) die "--port must be a number, got '$port'" ;;
esac
[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port must be 1-65535, got $port"
case "$cmd" in
  run | start | stop) [ -n "$data" ] || die "--data DIR is required" ;;
  ensure-db) [ -n "$db" ] || die "--db NAME is required" ;;
  *) usage ;;
esac

# Server binaries are not on PATH on Debian; take the newest installed major.
bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
  bindir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
[ -x "$bindir/postgres" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] ||
  die "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: run compose/local/install-system.sh (or 'sudo apt-get install -y postgresql')"

# Our flags are explicit; these would otherwise redirect or alter connections.
unset PGHOSTADDR PGSERVICE PGOPTIONS

# PostgreSQL refuses to run as root, so as root every server-side command runs
# as the `postgres` system user. setpriv (not runuser) because it execs: runuser
# stays as a parent that SIGKILLs its child 2 s after forwarding a SIGTERM,
# which would cut short postgres' own shutdown.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  id -u postgres >/dev/null 2>&1 ||
    die "the 'postgres' system user does not exist: run compose/local/install-system.sh"
  if command -v setpriv >/dev/null 2>&1; then
    as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  else
    as_pg=(runuser -u postgres --)
  fi
fi
# The postgres user may not be allowed into the caller's working directory.
cd /

if [ -n "$data" ]; then
  # Absolute, because postgres and pg_ctl get it as an argument.
  data=$(realpath -m -- "$data")
fi
pgdata=$data/pgdata
sockdir=$data/socket
logfile=$data/postgres.log

port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
  else
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
  fi
}

check_port_free() {
  if port_in_use "$port"; then
    die "port $port is already in use; set POSTGRES_PORT to a free port"
  fi
}

alive() {
  local state
  [ -r "/proc/$1/stat" ] || return 1
  state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# The postmaster pid from pgdata/postmaster.pid, if alive and really postgres.
running_pid() {
  local pid
  [ -s "$pgdata/postmaster.pid" ] || return 1
  pid=$(head -n 1 "$pgdata/postmaster.pid")
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q postgres || return 1
  echo "$pid"
}

ms_since() {
  local now=$EPOCHREALTIME
  echo $(((${now//[.,]/} - ${1//[.,]/}) / 1000)) # EPOCHREALTIME: seconds.micro
}

# Create DIR, pgdata/ and socket/ (owned by postgres when we are root), check
# the postgres user can reach them, and initdb on first use.
prepare() {
  local created=0 dir
  if [ ! -d "$data" ]; then
    mkdir -p "$data"
    created=1
  fi
  mkdir -p "$pgdata" "$sockdir"
  chmod 700 "$pgdata" # postgres refuses a group/world-accessible data directory
  if [ "${#as_pg[@]}" -gt 0 ]; then
    # Only chown a DIR we created: an existing one might be shared (e.g. /tmp).
    if [ "$created" = 1 ]; then chown postgres:postgres "$data"; fi
    chown postgres:postgres "$pgdata" "$sockdir"
    # Every parent of DIR must be traversable (x) by postgres, e.g. not /root (700).
    if ! "${as_pg[@]}" test -x "$data"; then
      dir=$data
      while [ "$dir" != / ]; do
        dir=$(dirname "$dir")
        if ! "${as_pg[@]}" test -x "$dir"; then
          die "the postgres user cannot enter $dir (mode $(stat -c %A "$dir")), so it cannot reach $data: run 'chmod o+x $dir' or use a data directory elsewhere"
        fi
      done
      die "the postgres user cannot enter $data (mode $(stat -c %A "$data"))"
    fi
  fi
  # Unix socket paths are limited to 107 bytes (sun_path).
  local sock=$sockdir/.s.PGSQL.$port
  [ "${#sock}" -le 107 ] ||
    die "socket path $sock is longer than 107 bytes; use a shorter data directory"

  if [ ! -f "$pgdata/PG_VERSION" ]; then
    # C.UTF-8 sorts bytewise like C but knows UTF-8 characters; plain C if the
    # system lacks it. trust: local dev/test cluster reachable only via
    # 127.0.0.1 and a socket inside DIR. fsync stays on (the default).
    local locale=C t0=$EPOCHREALTIME
    if locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8'; then locale=C.UTF-8; fi
    if ! "${as_pg[@]}" "$bindir/initdb" -D "$pgdata" --auth=trust --username=postgres \
      --encoding=UTF8 --locale="$locale" >"$data/initdb.log" 2>&1; then
      tail -n 20 "$data/initdb.log" >&2
      die "initdb failed (log: $data/initdb.log)"
    fi
    echo "postgres: initialised $pgdata (locale $locale, $(ms_since "$t0") ms)"
  fi
}

# Listen address, port and socket dir as -c options (they override
# postgresql.conf), so the same data directory can be reused on another port.
server_args() {
  args=(
    -D "$pgdata"
    -c listen_addresses=127.0.0.1         # loopback only
    -c port="$port"
    -c unix_socket_directories="$sockdir" # never collides with the system cluster's /var/run/postgresql
  )
}

case "$cmd" in
  run)
    check_port_free
    prepare
    server_args
    # exec: the runner's SIGTERM reaches the postmaster (smart shutdown), SIGINT = fast.
    exec "${as_pg[@]}" "$bindir/postgres" "${args[@]}"
    ;;

  start)
    if pid=$(running_pid); then
      if [ "$(sed -n 4p "$pgdata/postmaster.pid")" = "$port" ] &&
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
        echo "postgres: already running on 127.0.0.1:$port (pid $pid)"
        exit 0
      fi
      die "$pgdata is in use by postgres pid $pid on another port; run '$0 stop --data $data' first"
    fi
    check_port_free
    prepare
    server_args
    t0=$EPOCHREALTIME
    # setsid: own session, so a terminal Ctrl-C does not reach it; setsid and
    # setpriv both exec, so $! is the postmaster's pid.
    setsid "${as_pg[@]}" "$bindir/postgres" "${args[@]}" >>"$logfile" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 300); do # 300 x 0.1 s = 30 s
      if ! alive "$pid"; then
        tail -n 20 "$logfile" >&2
        echo "postgres: server exited during startup (log: $logfile)" >&2
        exit 1
      fi
      if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
        echo "postgres: ready on 127.0.0.1:$port (pid $pid, $(ms_since "$t0") ms, data $pgdata)"
        exit 0
      fi
      sleep 0.1
    done
    tail -n 20 "$logfile" >&2
    echo "postgres: not ready on port $port after 30 s; stopping it (log: $logfile)" >&2
    kill -INT "$pid" 2>/dev/null || true
    exit 1
    ;;

  stop)
    if ! pid=$(running_pid); then
      echo "postgres: not running (data $pgdata)"
      exit 0
    fi
    # fast = roll back open transactions, disconnect clients, checkpoint, exit.
    if ! out=$("${as_pg[@]}" "$bindir/pg_ctl" stop -D "$pgdata" -m fast -w -t 15 2>&1); then
      echo "$out" >&2
      echo "postgres: fast shutdown did not finish within 15 s; trying immediate" >&2
      "${as_pg[@]}" "$bindir/pg_ctl" stop -D "$pgdata" -m immediate -w -t 10 >/dev/null 2>&1 ||
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # pg_ctl returns once postmaster.pid is gone; the process exits right after.
    for _ in $(seq 1 50); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      echo "postgres: pid $pid still alive after stop" >&2
      exit 1
    fi
    echo "postgres: stopped (pid $pid)"
    ;;

  ensure-db)
    case "$db" in
      *[!A-Za-z0-9_-]* | [!A-Za-z_]*) die "database name must be letters, digits, _ or - (got '$db')" ;;
    esac
    [ "${#db}" -le 63 ] || die "database name longer than 63 characters: '$db'"
    conn=(-h 127.0.0.1 -p "$port" -U postgres)
    "$bindir/pg_isready" -q "${conn[@]}" || die "no server answering on 127.0.0.1:$port; start it first"
    exists() {
      [ "$("$bindir/psql" -X -q "${conn[@]}" -d postgres -tAc \
        "select 1 from pg_database where datname = '$db'")" = 1 ]
    }
    if exists; then
      echo "postgres: database $db exists"
    elif "$bindir/createdb" "${conn[@]}" "$db" 2>/dev/null || exists; then
      # (|| exists: a concurrent ensure-db may have created it first.)
      echo "postgres: created database $db"
    else
      "$bindir/createdb" "${conn[@]}" "$db" # again, to show the error
      exit 1
    fi
    ;;
esac
