"""`plugs worker` and `plugs beat`: Celery's own worker and beat with our app.

Arguments after the command are passed to Celery unchanged, e.g.
``plugs worker -Q default,maintenance --concurrency 4``.
"""

from __future__ import annotations

import click

from core.settings import get_settings

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _run_celery(argv: list[str]) -> None:
    import sys

    from workers.app import app
    from workers.logs import resolve_format

    # Celery prints its startup banner rather than logging it: JSON logs stay JSON lines.
    if resolve_format(get_settings().log_format, sys.stderr) == "json":
        argv = ["--quiet", *argv]
    app.start(argv)


@click.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker (arguments go to `celery worker`; try `plugs worker --help`)."""
    _run_celery(["worker", *celery_args])


@click.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run Celery beat with the housekeeping schedule (arguments go to `celery beat`)."""
    args = list(celery_args)
    if not any(a in ("-s", "--schedule") or a.startswith("--schedule=") for a in args):
        schedule_file = get_settings().data_dir.resolve() / "celerybeat-schedule"
        schedule_file.parent.mkdir(parents=True, exist_ok=True)
        args += ["--schedule", str(schedule_file)]
    _run_celery(["beat", *args])


COMMANDS = [worker, beat]
