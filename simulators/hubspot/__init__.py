"""A stateful hubspot simulator (see simulators/__init__.py)."""
