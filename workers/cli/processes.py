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

    from celery.bin.celery import celery

    from workers.logs import resolve_format

    # Celery prints its startup banner rather than logging it: JSON logs stay JSON lines.
    if resolve_format(get_settings().log_format, sys.stderr) == "json":
        argv = ["--quiet", *argv]
    # Celery's own command, exiting with Celery's status: 1 after an "Unrecoverable error"
    # (a broker gone for good, a crash in the consumer), so a supervisor restarts the
    # process.  (app.start() drops that status: the process would exit 0.)
    celery.main(args=["--app", "workers.app:app", *argv], prog_name="plugs")


def node_name(args: list[str]) -> str | None:
    """The worker's default node name, ``plugs-<queues>@<host>`` (``plugs-all@<host>`` on
    every queue), so two workers of different queues on one machine differ; None when the
    arguments name it already (``-n``/``--hostname``)."""
    queues: list[str] = []
    for number, arg in enumerate(args):
        name, _, value = arg.partition("=")
        if name in ("-n", "--hostname") or (arg.startswith("-n") and not arg.startswith("--")):
            return None
        if name in ("-Q", "--queues"):
            value = value or (args[number + 1] if number + 1 < len(args) else "")
        elif arg.startswith("-Q"):
            value = arg[2:]
        else:
            continue
        queues += [q.strip() for q in value.split(",") if q.strip()]
    return f"plugs-{'-'.join(queues) or 'all'}@%h"


@click.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker (arguments go to `celery worker`; try `plugs worker --help`).

    Its node name is ``plugs-<queues>@<host>`` unless -n/--hostname names it."""
    args = list(celery_args)
    name = None if "--help" in args else node_name(args)
    _run_celery(["worker", *args, *(["--hostname", name] if name else [])])


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
