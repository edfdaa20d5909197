#!/usr/bin/env bash
# Local Apache Kafka: one KRaft node (broker + controller in one JVM) from the official Maven Central jars.
#
#   kafka.sh fetch                                                    jars into the cache (first run only)
#   kafka.sh run   --port P --controller-port C --data DIR            foreground (honcho, pytest fixtures)
#   kafka.sh start --port P --controller-port C --data DIR            background + wait until ready
#   kafka.sh stop  --data DIR                                         stop what `start` started
#   kafka.sh wait  --port P [--timeout S]                             wait until a metadata request succeeds
#
# --port / --controller-port / --data default to $KAFKA_PORT / $KAFKA_CONTROLLER_PORT / $KAFKA_DATA_DIR.
# Jars: ${CHARGE_CACHE_DIR:-<repo>/.local/cache}/kafka-<version>/libs. Readiness uses kafka-python from
# ${PYTHON:-<repo>/.venv/bin/python} (else python3). Exit 2 = setup problem (missing tool, busy port).
set -euo pipefail

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
repo=$(cd "$(dirname "$self")/../.." && pwd)
kafka_dir=$repo/compose/kafka
pom=$kafka_dir/pom.xml
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
cache=${CHARGE_CACHE_DIR:-$repo/.local/cache}/kafka-$version
libs=$cache/libs

die() { # die CODE MESSAGE...
  local code=$1; shift
  echo "kafka: $*" >&2
  exit "$code"
}

usage() {
  sed -n '2,13s/^# \{0,1\}//p' "$self" >&2
  exit 2
}

# ---- argument parsing (shared by the subcommands) ---------------------------------------------------------
port=${KAFKA_PORT:-}
controller_port=${KAFKA_CONTROLLER_PORT:-}
data=${KAFKA_DATA_DIR:-}
timeout=60

parse_args() {
  while (($#)); do
    case $1 in
      --port) port=${2:?--port needs a value}; shift 2 ;;
      --controller-port) controller_port=${2:?--controller-port needs a value}; shift 2 ;;
      --data) data=${2:?--data needs a value}; shift 2 ;;
      --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
      -h|--help) usage ;;
      *) die 2 "unknown argument: $1 (see: $self --help)" ;;
    esac
  done
}

need() { # need port|controller_port|data
  local name=$1 flag=--${1//_/-}
  [[ -n ${!name} ]] || die 2 "$flag is required"
  [[ $name == data || ${!name} =~ ^[0-9]+$ ]] || die 2 "$flag must be a port number (got '${!name}')"
}

absolute_data_dir() {
  mkdir -p "$data"
  data=$(cd "$data" && pwd)
}

# ---- tools ----------------------------------------------------------------------------------------------
check_java() {
  command -v java >/dev/null 2>&1 ||
    die 2 "java not found; install a Java 17+ runtime: apt-get install -y openjdk-17-jre-headless maven"
  # Kafka 4.x brokers need Java 17+; an older java fails later with an unreadable UnsupportedClassVersionError.
  local major
  major=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n1)
  [[ -z $major || $major -ge 17 ]] ||
    die 2 "java $major found, Kafka $version needs 17+: apt-get install -y openjdk-17-jre-headless"
}

python_bin() {
  local py=${PYTHON:-$repo/.venv/bin/python}
  if [[ -x $py ]]; then echo "$py"; else echo python3; fi
}

# ---- fetch: jars from Maven Central via the pom, cached per Kafka version ----------------------------------
pom_stamp() { sha256sum "$pom" | cut -d' ' -f1; }

fetched() {
  # The stamp catches pom edits (e.g. a logging dependency) that keep the Kafka version.
  [[ -f $libs/kafka_2.13-$version.jar && -f $libs/.pom.sha256 && $(<"$libs/.pom.sha256") == "$(pom_stamp)" ]]
}

fetch() {
  fetched && return 0
  check_java
  command -v mvn >/dev/null 2>&1 || die 2 "mvn not found; install Maven: apt-get install -y maven"
  echo "kafka: fetching Apache Kafka $version jars (first run only)…" >&2
  mkdir -p "$cache"
  # Download into a private dir and rename it into place, so a concurrent `fetch` (make run + make test)
  # never sees a half-filled libs/.
  local tmp
  tmp=$(mktemp -d "$cache/libs.tmp.XXXXXX")
  trap 'rm -rf "$tmp" "$tmp.log"' EXIT
  if ! mvn -q -B -f "$pom" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.log" 2>&1; then
    mv "$tmp.log" "$cache/fetch.log"
    tail -n 20 "$cache/fetch.log" >&2
    die 1 "mvn could not fetch the Kafka jars (full output: $cache/fetch.log)"
  fi
  rm -f "$tmp.log"
  pom_stamp >"$tmp/.pom.sha256"
  [[ -d $libs ]] && ! fetched && rm -rf "$libs" # stale: the pom changed
  mv -T "$tmp" "$libs" 2>/dev/null || rm -rf "$tmp" # lost the race to another fetch: its copy is as good
  trap - EXIT
}

# ---- run: foreground broker ---------------------------------------------------------------------------
port_in_use() { # a listener answers on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

check_ports() {
  ! port_in_use "$port" || die 2 "port $port is already in use; set KAFKA_PORT to a free port"
  ! port_in_use "$controller_port" ||
    die 2 "port $controller_port is already in use; set KAFKA_CONTROLLER_PORT to a free port"
}

render_config() {
  # Plain bash substitution (no sed): a data path may contain any character. patsub_replacement (bash 5.2)
  # would give '&' in the replacement a meaning, so switch it off.
  shopt -u patsub_replacement 2>/dev/null || true
  local text
  text=$(<"$kafka_dir/server.properties.template")
  text=${text//@PORT@/$port}
  text=${text//@CONTROLLER_PORT@/$controller_port}
  text=${text//@DATA@/$data}
  printf '%s\n' "$text" >"$data/server.properties"
}

format_storage() {
  # Once per data dir: KRaft refuses to start on an unformatted log dir.
  [[ -f $data/logs/meta.properties ]] && return 0
  local cluster_id
  # A cluster id is 16 random bytes in URL-safe base64 (what `kafka-storage random-uuid` prints) — made
  # here to save a JVM start. One starting with '-' would be read as an option, so draw again.
  until [[ ${cluster_id:-} && ${cluster_id:0:1} != - ]]; do
    cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  if ! java -Xmx256m -Djava.awt.headless=true -Dlog4j2.configurationFile="$kafka_dir/log4j2.properties" \
      -cp "$libs/*" kafka.tools.StorageTool format --config "$data/server.properties" \
      --cluster-id "$cluster_id" --ignore-formatted >"$data/format.log" 2>&1; then
    cat "$data/format.log" >&2
    die 1 "formatting $data/logs failed"
  fi
}

cmd_run() {
  parse_args "$@"
  need port; need controller_port; need data
  check_java
  fetch
  absolute_data_dir
  check_ports
  render_config
  format_storage
  # exec: the JVM takes this pid, so SIGTERM from honcho / a pytest fixture / `stop` reaches Kafka, whose
  # shutdown hook closes the logs cleanly. JVM flags under the names of Kafka's own scripts
  # (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS), a smaller heap, and the serial collector instead of
  # their G1: on a one-node broker with a 384 MB heap it kept the same CPU per message and took ~86 MB
  # less memory (PSS 452 → 366 MB, README "Benchmarks"). G1's flags are one variable away.
  # shellcheck disable=SC2086 # both are lists of flags
  exec java ${KAFKA_HEAP_OPTS:--Xms128m -Xmx384m} \
    ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC} \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$kafka_dir/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$data/server.properties"
}

# ---- start / stop / wait ------------------------------------------------------------------------------
wait_ready() { # wait_ready PORT TIMEOUT [PID]
  "$(python_bin)" "$repo/compose/local/kafka_ready.py" --port "$1" --timeout "$2" ${3:+--pid "$3"}
}

ours() { # the pid is a live process started by this script (pid files outlive reboots; pids get reused)
  local pid=$1 cmdline
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *kafka.Kafka* || $cmdline == *kafka.sh* ]]
}

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_pid() { # SIGTERM the process group (the broker, or bash + mvn/StorageTool while still preparing)
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do # 20 s: a clean shutdown flushes logs and writes checkpoints
    group_alive "$pid" || return 0
    sleep 0.1
  done
  echo "kafka: pid $pid did not stop within 20 s; sending SIGKILL" >&2
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

cmd_start() {
  parse_args "$@"
  need port; need controller_port; need data
  absolute_data_dir
  local pidfile=$data/kafka.pid log=$data/kafka.log pid
  if [[ -f $pidfile ]] && ours "$(<"$pidfile")"; then
    pid=$(<"$pidfile")
    echo "kafka: already running (pid $pid); waiting until it is ready" >&2
    wait_ready "$port" "$timeout" "$pid"
    return
  fi
  # In the foreground: the first-run download shows its progress line and does not eat the 60 s budget.
  check_java
  fetch
  check_ports
  # setsid: own session and process group, so `stop` can signal everything it started and a Ctrl-C in
  # the caller's terminal does not reach the broker. `run` execs java, so this pid is the broker's.
  setsid bash "$self" run --port "$port" --controller-port "$controller_port" --data "$data" \
    >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"
  local rc=0
  wait_ready "$port" "$timeout" "$pid" || rc=$?
  if ((rc != 0)); then
    stop_pid "$pid"
    rm -f "$pidfile"
    if ((rc != 2)); then # 2: kafka_ready.py could not even try (no kafka-python); the log says nothing
      echo "kafka: broker did not become ready; last lines of $log:" >&2
      tail -n 30 "$log" >&2 || true
    fi
    exit "$rc"
  fi
  echo "kafka: ready on 127.0.0.1:$port (pid $pid, log $log)"
}

cmd_stop() {
  parse_args "$@"
  need data
  local pidfile=$data/kafka.pid pid
  if [[ ! -f $pidfile ]]; then
    echo "kafka: not running (no $pidfile)"
    return 0
  fi
  pid=$(<"$pidfile")
  if ours "$pid"; then
    stop_pid "$pid"
    echo "kafka: stopped (pid $pid)"
  else
    echo "kafka: not running (stale $pidfile)"
  fi
  rm -f "$pidfile"
}

cmd_wait() {
  parse_args "$@"
  need port
  wait_ready "$port" "$timeout"
}

case ${1:-} in
  fetch) shift; parse_args "$@"; fetch ;;
  run) shift; cmd_run "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  wait) shift; cmd_wait "$@" ;;
  *) usage ;;
esac
