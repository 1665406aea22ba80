"""``python -m simulators.mailchimp``: a seeded Mailchimp simulator in the foreground until
Ctrl-C, announced by one line: ``Mailchimp simulator on <url>/3.0 (api key <key>, list
<id>)`` (the API key goes in HTTP Basic auth with any username)."""

from __future__ import annotations

from simulators.base import command_line, non_negative
from simulators.mailchimp.server import DEFAULT_KEY, MailchimpSimulator


def main(argv: list[str] | None = None) -> None:
    parser = command_line("Mailchimp")
    parser.add_argument("--members", type=non_negative, default=100, help="members to seed")
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    args = parser.parse_args(argv)
    sim = MailchimpSimulator(api_key=args.api_key)
    sim.add_members(args.members)
    sim.serve_forever(
        args.host,
        args.port,
        lambda url: f"Mailchimp simulator on {url}/3.0 (api key {sim.api_key}, list {sim.list_id})",
    )


if __name__ == "__main__":
    main()
