"""The HTTP API at ``/api/v1`` (FastAPI on the Starlette app of :mod:`workers.http.app`):
one router per resource, every operation the same function the CLI calls, in the
calling key's organization's tenant session."""
