"""Celery configuration: only maps the typed settings (``core.settings``) onto Celery keys.

The reliability choices (DESIGN.md section 4, notes/reliability.md section 1): tasks are
acknowledged after they finish and requeued if their process dies, each worker process
reserves one message at a time, only JSON crosses the broker, and no time limit or
countdown comes near the broker's visibility timeout.
"""

from __future__ import annotations

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
