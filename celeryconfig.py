"""Celery configuration: only maps the typed settings (``core.settings``) onto Celery keys.

The reliability choices (docs/architecture.md#delivery-guarantees): tasks are
acknowledged after they finish and requeued if their process dies, each worker process
reserves one message at a time, only JSON crosses the broker, and no time limit or
countdown comes near the broker's visibility timeout.  Broker and result-backend
connections time out, are checked while idle and are made again (workers and beat).
"""

from __future__ import annotations

import socket

from kombu import Exchange, Queue

from core.queues import QUEUES, ROUTES
from core.settings import get_settings
from scheduler.housekeeping import housekeeping_schedule

_settings = get_settings()

broker_url = _settings.celery_broker_url()
result_backend = _settings.celery_result_backend()

# At-least-once delivery; every task is idempotent.
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = True  # a failure is recorded in our rows; retries are ours
task_acks_on_timeout = True  # a hard time limit must not loop a poison message
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True
broker_connection_retry_on_startup = True

# A broker or result backend that goes silent (a dead router, a failover: no RST) is noticed
# and connected again; a worker whose broker stays gone exits non-zero for its supervisor.
broker_connection_timeout = _settings.broker_connect_timeout
broker_connection_max_retries = _settings.broker_connection_max_retries or None
broker_heartbeat = _settings.broker_heartbeat  # AMQP
_keepalive = {  # the kernel probes an idle connection and drops it if nobody answers
    socket.TCP_KEEPIDLE: max(1, round(_settings.broker_heartbeat)),
    socket.TCP_KEEPINTVL: max(1, round(_settings.broker_heartbeat / 3)),
    socket.TCP_KEEPCNT: 3,
}
_redis_timeouts: dict[str, object] = {
    "socket_timeout": _settings.broker_socket_timeout,
    "socket_connect_timeout": _settings.broker_connect_timeout,
    "socket_keepalive": True,
    "socket_keepalive_options": _keepalive,
    # kombu also drops a BRPOP or pub/sub connection whose answer is this much overdue
    "health_check_interval": _settings.broker_heartbeat,
    # A timeout means the path is dead: report it at once (Celery connects again) rather
    # than retry on it, which took four socket timeouts per command on a silent path.
    "retry_on_timeout": False,
}
redis_socket_timeout = _settings.broker_socket_timeout
redis_socket_connect_timeout = _settings.broker_connect_timeout
redis_socket_keepalive = True
redis_retry_on_timeout = False  # the backend's own retry_policy connects again
redis_backend_health_check_interval = _settings.broker_heartbeat

# JSON only: nothing a producer sends can execute code in a worker.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Limits below the visibility timeout, or a running task is handed to a second worker.
task_time_limit = _settings.task_time_limit
task_soft_time_limit = _settings.task_soft_time_limit
_transport_options: dict[str, object] = {"visibility_timeout": _settings.visibility_timeout}
if broker_url.startswith("filesystem://"):
    _folder = str(_settings.broker_folder())
    _transport_options.update(
        data_folder_in=_folder, data_folder_out=_folder, control_folder=f"{_folder}/control"
    )
if broker_url.startswith(("amqp://", "pyamqp://")):
    _transport_options["confirm_publish"] = True
if broker_url.startswith(("redis://", "rediss://", "sentinel://")):
    _transport_options.update(_redis_timeouts)
broker_transport_options = _transport_options
result_backend_transport_options = {"visibility_timeout": _settings.visibility_timeout}

# Results are for operators and `--wait`; task arguments are ids, never secrets.
result_extended = False
result_expires = 7 * 24 * 3600
task_track_started = True
task_send_sent_event = True
worker_send_task_events = True

worker_max_tasks_per_child = 1000
worker_max_memory_per_child = 512_000  # KiB
worker_eta_task_limit = 1000
worker_hijack_root_logger = False

task_default_queue = "default"
task_queues = tuple(Queue(name, Exchange(name), routing_key=name) for name in QUEUES)
task_routes = {pattern: {"queue": q, "routing_key": q} for pattern, q in ROUTES.items()}

beat_schedule = housekeeping_schedule(_settings.scheduler_tick_seconds)
timezone = "UTC"
enable_utc = True
