"""A stateful zoom simulator (see simulators/__init__.py)."""
