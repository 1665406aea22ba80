"""The web console at ``/console``: an organization's integrations, runs (live),
failed records and their replay, webhook and notification deliveries, and the last
24 hours in a picture, server-rendered with Jinja2 and a little htmx (shipped in
``static/``).  See :mod:`workers.console.app`."""
