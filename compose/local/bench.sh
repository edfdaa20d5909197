#!/usr/bin/env bash
# `make bench`: the benchmarks on a stack of their own. Starts Kafka, Redis and PostgreSQL on free
# loopback ports in a temporary folder, then benchmarks/run.py starts the api, bridge, workers, beat,
# Flower and a callback receiver, runs the phases and writes the report. Everything it started is
# stopped at the end, on failure and on Ctrl-C too; it never touches a `make run` stack.
#
#   BENCH_SCALE=full|tiny   full: the measured run (minutes); tiny: seconds per phase (default full)
#   BENCH_OUT=DIR           where the JSON and PNG go (full: benchmarks/results, tiny: .local/bench)
#   BENCH_PHASES=burst,accept,ladder,sync_callback,sync,ocpp,floors   a subset, in that order
#   BENCH_DB=postgres|sqlite|both   the database of the stack's phases; both (full's default): the
#                           PostgreSQL pass, then a shorter one on `make run`'s SQLite default
#                           (BENCH_SQLITE_PHASES, default ladder,sync_callback); tiny's default: postgres
#   BENCH_FLOORS=celery,kafka,http   which floors the floors phase measures
#   BENCH_KEEP=1            keep the temporary folder (logs of every process) after the run
# Other knobs (rates, durations, floors' sizes, profiling): see benchmarks/config.py and
# benchmarks/profiling.py.
# Stack settings are the environment variables the project reads (API_WORKERS, API_THREADS,
# AUTHORIZE_CONCURRENCY, CALLBACK_CONCURRENCY, CHARGE_PRODUCER_LINGER_MS, CHARGE_BRIDGE_BATCH,
# CELERY_WORKER_PREFETCH_MULTIPLIER, DB_CONN_MAX_AGE, LOG_LEVEL...).
set -euo pipefail
# Our own modules are compiled once and cached (__pycache__, ignored by git), not at every start of
# every process, as PYTHONDONTWRITEBYTECODE in some environments would have it.
unset PYTHONDONTWRITEBYTECODE
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
export BENCH_SCALE=${BENCH_SCALE:-full}
case $BENCH_SCALE in tiny | full) ;; *) echo "bench: BENCH_SCALE must be tiny or full" >&2; exit 2 ;; esac

load=$(cut -d' ' -f1 /proc/loadavg)
echo "bench: scale $BENCH_SCALE; load average $load on $(nproc) cores"

# Short path (Unix socket length) that the postgres user can enter.
work=$(mktemp -d /tmp/charge-bench-XXXXXX)
chmod 755 "$work"
read -r kafka_port kafka_ctl_port redis_port pg_port < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()')

run_pid=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
    kill -TERM "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
  fi
  echo "bench: stopping postgres, redis, kafka"
  bash compose/local/postgres.sh stop --data "$work/postgres" >/dev/null 2>&1 || true
  bash compose/local/redis.sh stop --data "$work/redis" >/dev/null 2>&1 || true
  bash compose/local/kafka.sh stop --data "$work/kafka" >/dev/null 2>&1 || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "bench: kept $work (logs in $work/run/logs)"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$SECONDS
# Kafka takes longest: start it in the background while Redis and PostgreSQL come up.
bash compose/local/kafka.sh start --port "$kafka_port" --controller-port "$kafka_ctl_port" \
  --data "$work/kafka" --timeout 120 >"$work/kafka-start.log" 2>&1 &
kafka_start=$!
bash compose/local/redis.sh start --port "$redis_port" --data "$work/redis"
# SQLite only: no PostgreSQL to start (the database is a file of the run).
with_postgres=1
[ "${BENCH_DB:-}" = sqlite ] && with_postgres=0
if [ "$with_postgres" = 1 ]; then
  bash compose/local/postgres.sh start --port "$pg_port" --data "$work/postgres"
  bash compose/local/postgres.sh ensure-db --port "$pg_port" --db charge
fi
if ! wait "$kafka_start"; then
  cat "$work/kafka-start.log" >&2
  echo "bench: kafka did not start" >&2
  exit 1
fi
cat "$work/kafka-start.log"
echo "bench: services up in $((SECONDS - t0)) s"

export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$kafka_port
export REDIS_URL=redis://127.0.0.1:$redis_port/0
if [ "$with_postgres" = 1 ]; then
  export DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/charge
else
  unset DATABASE_URL
fi
export BENCH_COMMAND=${BENCH_COMMAND:-make bench}
# In the background and waited for, so a TERM to this script runs the trap at once.
"$PY" -m benchmarks.run --scale "$BENCH_SCALE" --work "$work/run" &
run_pid=$!
wait "$run_pid"
