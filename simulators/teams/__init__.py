"""A stateful teams simulator (see simulators/__init__.py)."""
