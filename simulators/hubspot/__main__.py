"""``python -m simulators.hubspot``: a seeded HubSpot simulator in the foreground until
Ctrl-C, announced by one line: ``HubSpot simulator on <url> (token <token>)``."""

from __future__ import annotations

import secrets

from simulators.base import command_line, non_negative
from simulators.hubspot.server import HubSpotSimulator


def main(argv: list[str] | None = None) -> None:
    parser = command_line("HubSpot")
    parser.add_argument("--contacts", type=non_negative, default=1000, help="contacts to seed")
    parser.add_argument("--token", default=f"pat-na1-{secrets.token_hex(8)}")
    parser.add_argument("--tier", default="free", choices=["free", "professional", "enterprise"])
    parser.add_argument("--no-limits", action="store_true", help="do not enforce rate limits")
    args = parser.parse_args(argv)
    sim = HubSpotSimulator(
        private_app_token=args.token, tier=args.tier, enforce_limits=not args.no_limits
    )
    sim.add_contacts(args.contacts)
    sim.serve_forever(
        args.host, args.port, lambda url: f"HubSpot simulator on {url} (token {args.token})"
    )


if __name__ == "__main__":
    main()
