"""`plugs keys`: the keys that encrypt integration credentials and event endpoints'
signing secrets (PLUGS_SECRET_KEYS)."""

from __future__ import annotations

import click

from connectors.credentials import new_key_entry, rotate_all
from models.session import get_database


@click.group()
def keys() -> None:
    """Credential encryption keys: generate one, re-encrypt every row with the newest."""


@keys.command()
def generate() -> None:
    """Print a new kid:key entry to put FIRST in PLUGS_SECRET_KEYS (comma-separated).

    Keep the old keys after it until `plugs keys rotate` has run, then drop them.
    """
    click.echo(new_key_entry())
    click.echo(
        "add it at the front of PLUGS_SECRET_KEYS, deploy, then run `plugs keys rotate`",
        err=True,
    )


@keys.command()
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1))
@click.pass_context
def rotate(ctx: click.Context, batch_size: int) -> None:
    """Re-encrypt every integration's credentials and every event endpoint's signing
    secret with the newest key.

    Idempotent and safe while workers run.  Rows that do not decrypt are listed on stderr
    and make the exit status 1.
    """
    report = rotate_all(get_database(), batch_size=batch_size)
    for failure in report.failures:
        click.echo(failure, err=True)
    click.echo(
        f"rotated {report.rotated}, already current {report.already_current}, "
        f"failed {report.failed}"
    )
    if report.failed:
        ctx.exit(1)


COMMANDS = [keys]
