"""Handing stored webhook deliveries to the workers, in batches.

Publishing one Celery message per delivery costs the receiver more than verifying and
storing it, so deliveries stored within a few milliseconds of each other leave in one
``webhooks.process_many`` message (ids only).  The hand-off happens after the vendor got
its answer; a batch that cannot be published is logged and left to the inbox sweeper,
which enqueues every delivery still unprocessed after its deadline: the stored row is the
record, the message only a wake-up call.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import uuid

log = logging.getLogger(__name__)
PROCESS_MANY_TASK = "webhooks.process_many"
#: A batch leaves when it holds this many deliveries, or after a window this long with none.
BATCH_SIZE = 200
BATCH_WAIT = 0.02


class Handoff:
    """A background thread that publishes stored delivery ids in batches."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[uuid.UUID, uuid.UUID] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="webhook-handoff", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def put(self, organization_id: uuid.UUID, delivery_id: uuid.UUID) -> None:
        self._queue.put((organization_id, delivery_id))

    def close(self) -> None:
        """Publish what is waiting and stop (at exit; the sweeper covers a hard kill)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < BATCH_SIZE and not stopping:
                # Sleep through the window and take what queued meanwhile: one wake-up per
                # window, not one per delivery.  An empty window ends the batch.
                time.sleep(BATCH_WAIT)
                before = len(batch)
                while len(batch) < BATCH_SIZE:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                if len(batch) == before:
                    break
            _publish(batch)


def _publish(batch: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    from workers.app import app

    try:
        app.send_task(PROCESS_MANY_TASK, args=[[f"{org}:{delivery}" for org, delivery in batch]])
    except Exception as exc:  # noqa: BLE001 - the broker being down must not lose the rows
        log.warning(
            "could not hand %d webhook deliveries to the workers (%s); the sweeper will",
            len(batch),
            type(exc).__name__,
        )


_handoff: Handoff | None = None
_lock = threading.Lock()


def handoff() -> Handoff:
    """This process's hand-off thread (started on first use)."""
    global _handoff
    with _lock:
        if _handoff is None:
            _handoff = Handoff()
        return _handoff
