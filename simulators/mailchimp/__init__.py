"""A stateful mailchimp simulator (see simulators/__init__.py)."""
