"""Celery tasks: thin bodies that load by id and call library code."""
