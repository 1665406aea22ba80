"""The `plugs` command line.  Every command has --help; bad input is one line and exit 1."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, StatementError

from core.errors import PlugsError
from core.settings import Settings, describe_invalid


class PlugsGroup(click.Group):
    """A group whose commands report our errors as one readable line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title == Settings.__name__:
                raise click.ClickException(describe_invalid(exc)) from None
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()
            )
            raise click.ClickException(f"invalid {exc.title}: {problems}") from None
        except (PlugsError, LookupError, ValueError) as exc:
            raise click.ClickException(_first_line(exc)) from None
        except (StatementError, DBAPIError) as exc:
            raise click.ClickException(_database_error(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


#: PostgreSQL's words for a database that is not there (libpq's FATAL line).
_NO_DATABASE = re.compile(r'database "[^"]+" does not exist')


def _database_error(exc: StatementError | DBAPIError) -> str:
    """The database's own first line, with what to do when the database is missing."""
    text = " ".join(str(exc.orig or exc).split())
    missing = _NO_DATABASE.search(text)
    if missing:
        return f"database error: {missing.group(0)} (create it with `plugs db create`)"
    return f"database error: {_first_line(exc.orig or exc)}"


@click.group(cls=PlugsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Log at DEBUG level.")
def cli(verbose: bool) -> None:
    """The Plugs: integration syncs, webhooks and notifications on Celery."""
    from workers.logs import configure

    configure(logging.DEBUG if verbose else logging.WARNING)
    # The Celery app: what commands write to the outbox is published through it.
    import workers.app  # noqa: F401


def _register() -> None:
    from workers.cli import (
        accounts,
        api_keys,
        db,
        demo,
        events,
        flower,
        integrations,
        keys,
        notify,
        processes,
        runs,
        schedules,
        status,
        up,
        webhooks,
    )

    for module in (
        db,
        accounts,
        integrations,
        runs,
        schedules,
        processes,
        demo,
        keys,
        api_keys,
        webhooks,
        events,
        notify,
        status,
        flower,
        up,
    ):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Entry point of the `plugs` console script: every error is one line on stderr."""
    try:
        code = cli.main(prog_name="plugs", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
