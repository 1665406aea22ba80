"""The HubSpot simulator of the benchmarks: ``python -m simulators.hubspot --no-limits``
whose rate-limit headers never say the budget is spent.

With ``--no-limits`` the simulator lets every request through but still counts them
against the tier's burst (100 per 10 s on the free tier) and answers
``X-HubSpot-RateLimit-Remaining: 0`` once that many went by.  A client that honours the
headers (ours: it pauses every worker for the rest of the window) would then wait where a
client that ignores them (the plain loop, dlt) goes on.  Here the account's budgets are too
large to run out, so no contender is ever told to wait and the vendor is out of the way.

    .venv/bin/python -m bench.hubspot_unlimited --contacts 100000 --token T [--port 0]

Prints ``HubSpot simulator on <url> (token <token>)`` once seeded, serves until SIGTERM or
Ctrl-C.
"""

from __future__ import annotations

from simulators.base import command_line, non_negative
from simulators.hubspot.server import HubSpotSimulator

#: Requests per window (and per day) no benchmark reaches.
UNSPENDABLE = 10**12


def main(argv: list[str] | None = None) -> None:
    parser = command_line("HubSpot")
    parser.prog = "python -m bench.hubspot_unlimited"
    parser.add_argument("--contacts", type=non_negative, default=1000, help="contacts to seed")
    parser.add_argument("--token", required=True, help="the private app token to accept")
    args = parser.parse_args(argv)
    sim = HubSpotSimulator(private_app_token=args.token, enforce_limits=False)
    for account in sim.limits.accounts.values():
        account.burst, account.daily = UNSPENDABLE, UNSPENDABLE
    sim.add_contacts(args.contacts)
    sim.serve_forever(
        args.host, args.port, lambda url: f"HubSpot simulator on {url} (token {args.token})"
    )


if __name__ == "__main__":
    main()
