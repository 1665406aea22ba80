"""The life of a run: the sync engine (runs opened singly or in batches, pages fetched and
written, export pages, stalled pages restarted, tokens refreshed) and the webhook inbox.
Both end a run in :func:`runs.lifecycle.finish_run`, one rule for every integration_logs
status."""
