"""`plugs flower`: Flower (``celery -A workers.app flower``) with our app, behind basic auth.

The credentials come from ``PLUGS_FLOWER_BASIC_AUTH`` (``user:password``, several separated
by commas) and reach Flower through its ``FLOWER_BASIC_AUTH`` environment variable, never
the command line (which ``ps`` shows).  Without them Flower is refused, unless
``--unauthenticated-local`` asks for a local instance bound to 127.0.0.1 only.

Flower serves its Prometheus metrics at ``/metrics`` and ``/healthcheck`` without
authentication (Flower's choice: scrapers need no password; they show task names and
worker names only, tasks take ids).  Other arguments go to Flower unchanged, e.g.
``plugs flower --url_prefix=flower``.
"""

from __future__ import annotations

import ipaddress
import os

import click

from core.settings import get_settings

DEFAULT_PORT = 5555
LOCAL_ADDRESS = "127.0.0.1"
#: Flower options this command sets itself: passing them through would defeat its checks.
OWN_OPTIONS = ("--basic-auth", "--basic_auth", "--address")


def basic_auth_credentials() -> str | None:
    """The checked ``user:password[,user:password]`` of the settings, or None."""
    secret = get_settings().flower_basic_auth
    if secret is None or not secret.get_secret_value().strip():
        return None
    value = secret.get_secret_value().strip()
    for pair in value.split(","):
        user, sep, password = pair.partition(":")
        if not sep or not user.strip() or not password:
            raise click.ClickException(
                "PLUGS_FLOWER_BASIC_AUTH must be user:password (several separated by commas)"
            )
    return value


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@click.command(
    "flower", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--address",
    default=None,
    help="Interface to listen on (default: all interfaces; 127.0.0.1 when unauthenticated).",
)
@click.option(
    "--unauthenticated-local",
    is_flag=True,
    help="Run without basic auth, bound to 127.0.0.1 only (a developer's machine).",
)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(
    port: int, address: str | None, unauthenticated_local: bool, flower_args: tuple[str, ...]
) -> None:
    """Run Flower with basic auth from PLUGS_FLOWER_BASIC_AUTH (other arguments go to Flower)."""
    passed = [a for a in flower_args if a.split("=", 1)[0] in OWN_OPTIONS]
    if passed:
        raise click.UsageError(
            f"{passed[0].split('=', 1)[0]} is set by `plugs flower`: use PLUGS_FLOWER_BASIC_AUTH "
            "and --address"
        )
    credentials = basic_auth_credentials()
    if unauthenticated_local:
        if address is not None and not _is_loopback(address):
            raise click.UsageError("--unauthenticated-local binds to 127.0.0.1 only")
        address, credentials = LOCAL_ADDRESS, None
        os.environ.pop("FLOWER_BASIC_AUTH", None)
    elif credentials is None:
        raise click.ClickException(
            "Flower needs basic auth: set PLUGS_FLOWER_BASIC_AUTH=user:password "
            "(or use --unauthenticated-local on your own machine)"
        )
    else:
        os.environ["FLOWER_BASIC_AUTH"] = credentials
    os.environ.pop("FLOWER_UNAUTHENTICATED_API", None)
    _run_flower(["flower", f"--port={port}", f"--address={address or ''}", *flower_args])


def _run_flower(argv: list[str]) -> None:
    from workers import logs
    from workers.app import app

    logs.configure()
    app.start(argv)


COMMANDS = [flower]
