"""``python -m simulators.teams``: a seeded Microsoft Graph simulator (Graph and login on
one server) in the foreground until Ctrl-C, announced by one line: ``Teams simulator on
<url> (tenant_id <id>, client_id <id>, client_secret <secret>, organizer <upn>)``; tokens
come from ``POST <url>/<tenant_id>/oauth2/v2.0/token`` (client credentials)."""

from __future__ import annotations

from simulators.base import command_line, non_negative
from simulators.teams.server import GraphSimulator


def main(argv: list[str] | None = None) -> None:
    parser = command_line("Teams")
    parser.add_argument("--organizer", default="organizer@contoso.test", help="its calendar")
    parser.add_argument("--events", type=non_negative, default=10, help="events to seed")
    args = parser.parse_args(argv)
    sim = GraphSimulator()
    sim.add_user(args.organizer, "Organizer")
    sim.add_events(args.organizer, args.events, online=True)
    sim.serve_forever(
        args.host,
        args.port,
        lambda url: (
            f"Teams simulator on {url} (tenant_id {sim.tenant_id}, client_id {sim.client_id}, "
            f"client_secret {sim.client_secret}, organizer {args.organizer})"
        ),
    )


if __name__ == "__main__":
    main()
