"""Charge Service settings: the one settings module. Every value comes from the environment.

django-environ reads the environment (and `.local/dev.env` is *not* read here: the process
supervisor exports it), so the same file serves `make run`, the tests and production.
"""

from __future__ import annotations

from pathlib import Path

import environ
import structlog
from django.core.exceptions import ImproperlyConfigured

from apps.core.tasks import (
    AUTHORIZE_QUEUE,
    CALLBACKS_QUEUE,
    DISPATCH_DUE_TASK,
    EXPIRE_OVERDUE_TASK,
    REQUEUE_STALE_TASK,
)

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = Path(environ.Env().str("CHARGE_LOCAL_DIR", default=str(BASE_DIR / ".local")))

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is not set: set SECRET_KEY, or DEBUG=1 for local development.")
    # Only with DEBUG on: a fixed, obviously unsafe key so local sessions survive restarts.
    SECRET_KEY = "insecure-dev-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "import_export",
    "axes",
    "apps.access",
    "apps.charging",
    "apps.callbacks",
    "apps.clients",
    "apps.api",
    "apps.ocpp",
    "apps.monitoring",
    # The Celery app, its tasks and the bridge, with its run_bridge command.
    "workers",
]

MIDDLEWARE = [
    # First: counts every answer (including those of the middleware below) and gives each request a
    # fresh log context, so a request_id bound for one request never leaks into the next on a thread.
    "apps.monitoring.middleware.RequestMetricsMiddleware",
    # Every answer outside the admin in JSON, errors included, DEBUG or not (apps/api/middleware.py).
    "apps.api.middleware.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "apps.api.middleware.RequestShapeMiddleware",
    # SITE_MIDDLEWARE below, for every path but /api/.
    "apps.api.middleware.SiteOnlyMiddleware",
]
# The admin's middleware: static files, sessions, CSRF, logins, messages, framing, lockouts. API
# routes authenticate by Bearer key, set no cookie and render no page, so they skip all of it:
# ~10 % of an accepted request's CPU (benchmarks.hot_paths, README "Benchmarks").
SITE_MIDDLEWARE = [
    # Serves the admin's static files from the api's server: no separate web server needed locally.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it locks out admin logins after repeated failures.
    "axes.middleware.AxesMiddleware",
]
# The admin's and axes' checks look for their middleware in MIDDLEWARE only; apps.api.checks looks
# for it in SITE_MIDDLEWARE instead, in the order they ask for.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410", "axes.W002"]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out login is refused before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Admin login throttling (django-axes) ----------------------------------------------------------
# Five failed logins for one user name from one address lock that pair out for 15 minutes.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

# --- Transport security: on whenever DEBUG is off ---------------------------------------------------
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# HSTS and the HTTPS redirect only make sense behind TLS, so they are opt-in from the environment.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
# SQLite under .local/ is the embedded default of `make run`; DATABASE_URL selects PostgreSQL.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{LOCAL_DIR / 'charge.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the api, bridge and workers read while one of them writes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        # Wait for the write lock instead of failing with "database is locked".
        "timeout": 20,
        # Take the write lock at BEGIN so concurrent writers queue instead of deadlocking.
        "transaction_mode": "IMMEDIATE",
    }
else:
    # Reuse connections across requests and tasks; check them before use after a database restart.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Django's backend with a health check that needs no round trip (apps/core/postgresql/base.py).
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "apps.core.postgresql"
    # Server-side parameters let psycopg prepare repeated statements; off because `make bench`
    # showed no gain end to end (README "Benchmarks"), kept as a knob for other machines.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env.bool(
        "DB_SERVER_SIDE_BINDING", default=False
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(LOCAL_DIR / "static"))

# --- Request limits -------------------------------------------------------------------------------
# DESIGN: bodies over 64 KiB are refused.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# --- Services -------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
KAFKA_BOOTSTRAP_SERVERS = env.list("KAFKA_BOOTSTRAP_SERVERS", default=["127.0.0.1:9092"])

CHARGE_TOPIC = env.str("CHARGE_TOPIC", default="charging_requests")
CHARGE_DLQ_TOPIC = env.str("CHARGE_DLQ_TOPIC", default=f"{CHARGE_TOPIC}.dlq")
CHARGE_TOPIC_PARTITIONS = env.int("CHARGE_TOPIC_PARTITIONS", default=6)
CHARGE_BRIDGE_GROUP = env.str("CHARGE_BRIDGE_GROUP", default="charge-bridge")
# Static group membership (KIP-345): a bridge restarted by its supervisor under the same id gets its
# partitions back at once, instead of waiting out its dead self's session (which once cost requests
# their deadline). Unique per running bridge; "{hostname}" is replaced by the host's name (unique
# per container in compose). Empty: dynamic membership (a clean stop hands partitions over at once).
CHARGE_BRIDGE_INSTANCE_ID = env.str("CHARGE_BRIDGE_INSTANCE_ID", default="")
# A bridge that died without a replacement under its id loses its partitions after this: the
# broker's minimum, well inside the 10 s decision deadline.
CHARGE_BRIDGE_SESSION_TIMEOUT_MS = env.int("CHARGE_BRIDGE_SESSION_TIMEOUT_MS", default=6000)
# While authorize tasks wait in the broker's queue (every worker busy), the bridge waits up to this
# long before its next poll: the backlog gathers in Kafka and leaves as one bigger batch, whose
# decisions cost a fraction of a small one's each (README "Benchmarks"). 0: never wait.
CHARGE_BRIDGE_BACKPRESSURE_MS = env.int("CHARGE_BRIDGE_BACKPRESSURE_MS", default=250)
# Messages per bridge batch: one bulk insert and one commit per batch.
CHARGE_BRIDGE_BATCH = env.int("CHARGE_BRIDGE_BATCH", default=500)
# A fetch is answered once the broker holds this much for the bridge, or after this wait (workers/
# bridge.py says how they were chosen).
CHARGE_BRIDGE_FETCH_MIN_BYTES = env.int("CHARGE_BRIDGE_FETCH_MIN_BYTES", default=1)
CHARGE_BRIDGE_FETCH_WAIT_MS = env.int("CHARGE_BRIDGE_FETCH_WAIT_MS", default=100)
# A poll that found more than one message waiting gathers for up to this long more (0: never): the
# bridge's batches grow with the load without a quiet message ever waiting (README "Benchmarks").
CHARGE_BRIDGE_BUSY_LINGER_MS = env.int("CHARGE_BRIDGE_BUSY_LINGER_MS", default=6)
# While the bridge holds fetched messages it has not taken yet, its fetcher waits this long before
# fetching again (librdkafka's fetch.queue.backoff.ms with queued.min.messages 1), and a busy poll's
# linger sleeps instead of taking messages one by one: under load a fetch brings several messages,
# not one per produce (Kafka's CPU per accepted request in the burst 1.04-1.17 → 0.79-0.85 ms);
# an idle bridge still fetches at once. 0: librdkafka's defaults (README "Benchmarks").
CHARGE_BRIDGE_FETCH_BACKOFF_MS = env.int("CHARGE_BRIDGE_FETCH_BACKOFF_MS", default=5)
# Request ids per charging.authorize task: the bridge cuts each polled batch into chunks of this many
# (a quiet poll gives a task of one). Celery's own cost is per task, so larger chunks spread it over
# more decisions; README "Benchmarks" has the measurement behind the default.
CHARGE_AUTHORIZE_BATCH = env.int("CHARGE_AUTHORIZE_BATCH", default=100)
# The bridge decides each batch it stored itself, with the authorize task's service, and publishes
# only the callbacks: one queue hop and one Celery task less per batch (README "Benchmarks" has the
# side-by-side figures). Should deciding fail, the batch goes to charging.authorize tasks as with
# this off; off: every batch does (deciding then scales with authorize workers, not bridges).
CHARGE_BRIDGE_DECIDES = env.bool("CHARGE_BRIDGE_DECIDES", default=True)
# Threads in which the bridge makes the first attempt of the callbacks it decided, instead of a
# callbacks.deliver task per batch (apps/callbacks/first_attempts.py; retries stay with the callbacks
# worker); 0 hands every one to the callbacks worker.
CHARGE_BRIDGE_CALLBACK_THREADS = env.int("CHARGE_BRIDGE_CALLBACK_THREADS", default=4)
# Seconds from acceptance after which a request is decided `unknown/timeout`.
CHARGE_DECISION_TIMEOUT_S = env.float("CHARGE_DECISION_TIMEOUT_S", default=10.0)
# The overdue sweep leaves a pending row this long past its deadline for a busy worker to decide.
CHARGE_OVERDUE_GRACE_S = env.float("CHARGE_OVERDUE_GRACE_S", default=2.0)
# A request pending this long (but not overdue) gets its authorize task sent again: its first one may
# have been lost with a killed worker. Well above the normal request-to-decision time.
CHARGE_REQUEUE_AFTER_S = env.float("CHARGE_REQUEUE_AFTER_S", default=3.0)
# How long the API waits for the broker's acknowledgement before answering failed/503.
CHARGE_PRODUCE_TIMEOUT_S = env.float("CHARGE_PRODUCE_TIMEOUT_S", default=1.5)
# 0: a request's message leaves at once (accept p50 5.3 → 3.0 ms at 100/s, README "Benchmarks");
# librdkafka still sends the messages that queue up while a produce is in flight as one batch.
CHARGE_PRODUCER_LINGER_MS = env.int("CHARGE_PRODUCER_LINGER_MS", default=0)
# Produce requests one api process keeps in flight to the broker (librdkafka's
# max.in.flight.requests.per.connection; at most 5 with idempotence). Messages that arrive while
# this many are in flight wait and leave together, as one request the broker handles at once.
CHARGE_PRODUCER_MAX_IN_FLIGHT = env.int("CHARGE_PRODUCER_MAX_IN_FLIGHT", default=5)
# Off by default: callbacks to private and loopback addresses are an SSRF risk in production.
CHARGE_CALLBACK_ALLOW_PRIVATE = env.bool("CHARGE_CALLBACK_ALLOW_PRIVATE", default=False)

# A delivery taken by a worker is due again after this many seconds (more than one attempt lasts),
# so an attempt lost with its worker is retried by callbacks.dispatch_due.
CHARGE_CALLBACK_CLAIM_LEASE_S = env.float("CHARGE_CALLBACK_CLAIM_LEASE_S", default=60.0)
# A deliver task queued this long ago and never taken is presumed lost (Redis lost it) and queued
# again by callbacks.dispatch_due; the broker's visibility timeout, so a slow queue is not doubled.
CHARGE_CALLBACK_REDISPATCH_S = env.float("CHARGE_CALLBACK_REDISPATCH_S", default=300.0)
# With the callbacks queue empty, a task queued this long ago and still not taken is not waiting in
# it: a worker that exited holding it has it (kombu's Redis transport can exit on a reconnection
# before it gives its unacknowledged tasks back, which then return only after the visibility
# timeout). The delivery is queued again; the duplicate, should the first come back, finds it done.
CHARGE_CALLBACK_REDISPATCH_IDLE_S = env.float("CHARGE_CALLBACK_REDISPATCH_IDLE_S", default=30.0)
# Deliveries of one receiver per callbacks.deliver task, and how many of a task's POSTs run at once.
# A batch to a receiver that hangs lasts ceil(batch / concurrency) x 5 s: keep that under the lease.
CHARGE_CALLBACK_BATCH = env.int("CHARGE_CALLBACK_BATCH", default=32)
CHARGE_CALLBACK_CONCURRENCY = env.int("CHARGE_CALLBACK_CONCURRENCY", default=16)
# The api's synchronous decisions publish their deliver tasks together: what gathered within this
# many ms, or a full CHARGE_CALLBACK_BATCH (apps/callbacks/publisher.py); 0 publishes each at once.
# The caller has the decision in its answer already; its callback leaves at most this much later,
# and at ~80 decisions/s per api process a callbacks.deliver task carries ~4 instead of ~1.6 (20 ms).
CHARGE_CALLBACK_PUBLISH_LINGER_MS = env.int("CHARGE_CALLBACK_PUBLISH_LINGER_MS", default=50)
# Signs callbacks of requests that came from another producer on the topic (no API client).
CHARGE_DEFAULT_CALLBACK_SECRET = env.str("CHARGE_DEFAULT_CALLBACK_SECRET", default="")

# Requests per second per API client when the client sets none (0: no limit); bursts of this many
# seconds' worth are allowed after a quiet spell.
CHARGE_RATE_LIMIT_PER_S = env.float("CHARGE_RATE_LIMIT_PER_S", default=100.0)
CHARGE_RATE_BURST_S = env.float("CHARGE_RATE_BURST_S", default=2.0)
# How long an api process trusts a key it verified; also the longest delay between revoke and refusal.
CHARGE_API_KEY_CACHE_S = env.float("CHARGE_API_KEY_CACHE_S", default=60.0)
# How long a process reuses a client it read to sign callbacks (its secrets): a rotation signs with the
# new secret at most this much later (the previous one stays valid through the rotation window).
CHARGE_CLIENT_CACHE_S = env.float("CHARGE_CLIENT_CACHE_S", default=5.0)
# Idempotency-Key answers are replayed for this long.
CHARGE_IDEMPOTENCY_TTL_S = env.int("CHARGE_IDEMPOTENCY_TTL_S", default=24 * 3600)

# --- Monitoring -----------------------------------------------------------------------------------
# /metrics answers only these networks (Prometheus on the same host or the private network); the
# public side of the proxy refuses /metrics itself (compose/nginx.conf). Add 0.0.0.0/0 to open it.
CHARGE_METRICS_ALLOWED_NETS = env.list(
    "CHARGE_METRICS_ALLOWED_NETS",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
# The bridge's and the workers' own metrics servers: the address they listen on, and their ports
# (0: no server). Loopback by default; compose listens on its private network.
CHARGE_METRICS_BIND = env.str("CHARGE_METRICS_BIND", default="127.0.0.1")
CHARGE_BRIDGE_METRICS_PORT = env.int("CHARGE_BRIDGE_METRICS_PORT", default=9108)
CHARGE_WORKER_METRICS_PORT = env.int("CHARGE_WORKER_METRICS_PORT", default=0)
CHARGE_OCPP_METRICS_PORT = env.int("CHARGE_OCPP_METRICS_PORT", default=9111)
# /api/readyz answers within this bound even when a dependency hangs.
CHARGE_READYZ_TIMEOUT_S = env.float("CHARGE_READYZ_TIMEOUT_S", default=1.0)

# --- OCPP gateway (manage.py run_ocpp, apps/ocpp/gateway.py) ---------------------------------------
# Stations connect to ws://OCPP_HOST:OCPP_PORT/ocpp/<identity>. Loopback by default: TLS (security
# profile 2) terminates at the reverse proxy in front (README "OCPP").
OCPP_HOST = env.str("OCPP_HOST", default="127.0.0.1")
OCPP_PORT = env.int("OCPP_PORT", default=9000)
# BootNotification's answer: how often a station sends Heartbeat.
OCPP_HEARTBEAT_INTERVAL_S = env.int("OCPP_HEARTBEAT_INTERVAL_S", default=300)
# A frame larger than this closes the connection (1009, "message too big"); the largest message we
# answer (a 2.0.1 TransactionEvent with meter values) is a few KiB.
OCPP_MAX_FRAME_BYTES = env.int("OCPP_MAX_FRAME_BYTES", default=64 * 1024)
# Per connection: calls per second a station may make, and how many above that in a burst (a
# station that boots sends a handful at once). Calls beyond are answered with a CALLERROR.
OCPP_CALLS_PER_S = env.float("OCPP_CALLS_PER_S", default=10.0)
OCPP_CALL_BURST = env.int("OCPP_CALL_BURST", default=20)
# Gateway processes sharing OCPP_PORT (SO_REUSEPORT; apps/ocpp/processes.py): one asyncio loop per
# process, so more than one uses more than one core.
OCPP_PROCESSES = env.int("OCPP_PROCESSES", default=2)
# Threads that run the gateway's database work (each keeps one connection).
OCPP_DB_THREADS = env.int("OCPP_DB_THREADS", default=4)
# Authorize calls of all stations are decided together: each batch is every call waiting, at most
# this many, in one ACL read and one INSERT (apps/ocpp/gateway.py Authorizer), OCPP_AUTHORIZE_LOOPS
# batches at once (each on a thread of its own; 1 measured best here: larger batches, less CPU).
OCPP_AUTHORIZE_BATCH = env.int("OCPP_AUTHORIZE_BATCH", default=100)
OCPP_AUTHORIZE_LOOPS = env.int("OCPP_AUTHORIZE_LOOPS", default=1)
# The gateway's connections prepare their statements (PostgreSQL): planning the ACL read and the
# log INSERT was most of the database's CPU per Authorize. Only there, because the bridge and the
# workers send several commands in one string, which a prepared statement cannot hold; off behind
# PgBouncer's transaction pooling before 1.21. See apps/ocpp/gateway.py gateway_run.
OCPP_DB_PREPARED_STATEMENTS = env.bool("OCPP_DB_PREPARED_STATEMENTS", default=True)

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
# No result backend: the decision log and the delivery rows are the results.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Ack after the task ran, and requeue when the worker process dies, so a crash loses no request.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Redis redelivers unacked tasks after this. It must exceed the longest task (a 5 s callback POST)
# and the longest countdown (30 s callback retries); short, so a task lost with a killed worker
# comes back within minutes.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 300}
# Keep retrying the broker at start-up instead of exiting while Redis comes up.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Task events feed Flower.
CELERY_WORKER_SEND_TASK_EVENTS = True
# The "sent" event is one more Redis publish per task from every sender (measured: ~11 % of the
# bridge's time); Flower shows tasks from their "received" event on without it.
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
# Keep database connections across tasks (Celery closes them after every task otherwise, ~16 % of
# an authorize worker's time); workers/tasks.py still drops broken ones, e.g. after a restart.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# One task per pool slot, not the default 4: tasks carry batches, and a backlog must stay in the
# broker's queue, where the bridge sees it and lets the next batch grow (CHARGE_BRIDGE_BACKPRESSURE_MS).
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_TASK_DEFAULT_QUEUE = AUTHORIZE_QUEUE
CELERY_TASK_ROUTES = {
    "charging.*": {"queue": AUTHORIZE_QUEUE},
    "callbacks.*": {"queue": CALLBACKS_QUEUE},
    "ops.*": {"queue": AUTHORIZE_QUEUE},
}
# The database is the schedule (next_attempt_at, deadlines); beat only wakes the sweeps.
CELERY_BEAT_SCHEDULE = {
    "expire-overdue": {"task": EXPIRE_OVERDUE_TASK, "schedule": 5.0},
    "requeue-stale": {"task": REQUEUE_STALE_TASK, "schedule": 5.0},
    "dispatch-due-callbacks": {"task": DISPATCH_DUE_TASK, "schedule": 5.0},
}
# Keep Django's LOGGING (JSON lines) in workers instead of Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# JSON only: tasks carry ids, never pickled objects.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"

# --- Logging --------------------------------------------------------------------------------------
# Structured lines (structlog), carrying request_id wherever it is bound in contextvars: one JSON
# object per line, or structlog's console lines for a person at a terminal (LOG_FORMAT=console;
# `make run` sets it when its output is a terminal, since honcho pipes every process's output).
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in {"json", "console"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or console, not {LOG_FORMAT!r}")
_shared_processors: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
]
structlog.configure(
    processors=[
        # First: a line below its logger's level costs a level check, not the processors after it
        # (the bridge has a DEBUG line per message).
        structlog.stdlib.filter_by_level,
        *_shared_processors,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)
_renderer: structlog.typing.Processor = (
    structlog.dev.ConsoleRenderer(colors=False)
    if LOG_FORMAT == "console"
    else structlog.processors.JSONRenderer()
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Stamped here, as the line is written, for our lines and foreign ones alike.
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                _renderer,
            ],
            "foreign_pre_chain": _shared_processors,
        },
    },
    "filters": {
        # A periodic sweep that found nothing to do says nothing (beat wakes three every 5 s).
        "idle_sweeps": {"()": "workers.telemetry.IdleSweepFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "structured"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # kafka-python logs every failed connection attempt as an error while a broker starts or
        # restarts; our producer and bridge log the failures that matter, with request ids.
        "kafka": {"level": env.str("KAFKA_LOG_LEVEL", default="CRITICAL")},
        "django.db.backends": {"level": "WARNING"},
        # Celery's line per task succeeded carries what the task returns: how many requests or
        # deliveries it handled. Its "received" line says nothing more, so it shows at DEBUG only.
        "celery.app.trace": {
            "level": env.str("CELERY_TASK_LOG_LEVEL", default="INFO"),
            "filters": ["idle_sweeps"],
        },
        "celery.worker.strategy": {"level": env.str("CELERY_RECEIVED_LOG_LEVEL", default="WARNING")},
        # beat's "Sending due task" line, three every 5 s at rest.
        "celery.beat": {"level": env.str("CELERY_BEAT_LOG_LEVEL", default="WARNING")},
    },
}
