"""The platform's HTTP app (ASGI, Starlette on uvicorn): the webhook receiver, the in-app
notification feed, health checks and Prometheus metrics.  ``plugs webhooks`` runs it."""
