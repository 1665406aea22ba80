"""``python -m simulators.zoom``: a seeded Zoom simulator (OAuth and API on one server) in
the foreground until Ctrl-C, announced by one line: ``Zoom simulator on <url> (API
<url>/v2, account_id <id>, client_id <id>, client_secret <secret>)``; tokens come from
``POST <url>/oauth/token?grant_type=account_credentials&account_id=<id>``."""

from __future__ import annotations

from simulators.base import command_line, non_negative
from simulators.zoom.server import ZoomSimulator


def main(argv: list[str] | None = None) -> None:
    parser = command_line("Zoom")
    parser.add_argument("--meetings", type=non_negative, default=3, help="meetings to seed")
    parser.add_argument(
        "--registrants", type=non_negative, default=2, help="registrants of each meeting"
    )
    args = parser.parse_args(argv)
    sim = ZoomSimulator()
    for number in range(1, args.meetings + 1):
        meeting = sim.add_meeting(f"Simulated meeting {number}")
        for guest in range(1, args.registrants + 1):
            sim.register(meeting.id, f"guest{guest}.meeting{number}@example.com", f"Guest {guest}")
    sim.serve_forever(
        args.host,
        args.port,
        lambda url: (
            f"Zoom simulator on {url} (API {url}/v2, account_id {sim.account_id}, "
            f"client_id {sim.client_id}, client_secret {sim.client_secret})"
        ),
    )


if __name__ == "__main__":
    main()
