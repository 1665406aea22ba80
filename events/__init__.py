"""Events pushed to the host product (docs/events.md): its endpoints, the signed delivery
of each event with retries, disabling an endpoint that keeps failing, and replays.

Events are written by the layers below with :func:`models.host_events.emit`, in the
transaction that produced them; the runs' events are built in :mod:`events.runs`.
"""
