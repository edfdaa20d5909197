#!/usr/bin/env bash
# The api's HTTP server, granian's WSGI interface serving project.wsgi, as every caller starts it:
# compose/local/api.sh (make run, make bench) after its setup, the tests that need a real server and
# the benchmark's floors (API_APP=benchmarks.floor_app:application). Exec'd: the caller's PID is the
# server's, and SIGTERM stops it gracefully.
#
#   API_UPSTREAM_PORT, else API_PORT (8000)  where it listens, on 127.0.0.1 (behind nginx: the upstream port)
#   API_WORKERS (1)        worker processes; each imports the app itself, after the fork
#   API_THREADS (8)        threads per worker running the application (granian's blocking threads)
#   API_ACCESS_LOG (0)     1: granian's line per request (the api's own request_accepted line is the one
#                          line of its stage, and nginx can log too)
#
# Why granian and not gunicorn (benchmarks/results/ab-api-server-2026-12-02/, the same 2 x 4): its HTTP
# handling is Rust, ~0.15 ms less api CPU per request; synchronous decisions 651/710 -> 780/774 per s,
# accept p99 at 400/s 30/36 -> 24/19 ms, and no preloading master holding a copy of the app.
# project/edge.py holds the HTTP/1.1 rules it leaves to the application.
#
# Why one worker of 8 threads by default (benchmarks/results/ab-api-workers-2026-12-02/, six rounds
# against 2 x 4 on this project's 2-core machine): synchronous decisions with a callback 574-621 against
# 505-587 per s, p99 31-33 against 34-49 ms; accept p99 at 400/s 15-25 against 19-27 ms; one process
# less (~100 MB). The price: ~5 % on synchronous decisions without a callback (one GIL), an accept burst
# on 64 connections that 2 x 4 sometimes served faster (607-838 against 674-727 per s), and, when the
# worker dies, nginx's 503 with Retry-After until granian has started the next one (0.66 s from a
# SIGKILL to the next answer, measured twice). With more cores, or where a dead worker must not stop
# the api for a moment, set API_WORKERS to 2 or more.
set -euo pipefail
cd "$(dirname "$0")/../.."
access_log=()
[ "${API_ACCESS_LOG:-0}" = 1 ] && access_log=(--access-log)
# --respawn-failed-workers: a worker that dies (killed, out of memory) is started again, as gunicorn's
# master did; without it granian would serve on with one worker fewer.
exec .venv/bin/granian --interface wsgi \
  --host 127.0.0.1 --port "${API_UPSTREAM_PORT:-${API_PORT:-8000}}" \
  --workers "${API_WORKERS:-1}" --blocking-threads "${API_THREADS:-8}" \
  --respawn-failed-workers --respawn-interval 0.5 \
  "${access_log[@]}" --log-level warning \
  "${API_APP:-project.wsgi:application}"
