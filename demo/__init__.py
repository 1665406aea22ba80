"""The demo: one organization connected to the four vendors' simulators, live.

    from demo import fill_demo
    report = fill_demo(http_port=8000)   # simulators run until report.close()

See :mod:`demo.fill` (what it does), :mod:`demo.people` (the organization,
users and events) and :mod:`demo.vendors` (the simulators and their webhooks).
"""

from demo.fill import (
    DemoReport,
    VendorRun,
    console_key,
    fill_demo,
    prepare_environment,
    wait_for_run,
    wait_for_webhooks,
)

__all__ = [
    "DemoReport",
    "VendorRun",
    "console_key",
    "fill_demo",
    "prepare_environment",
    "wait_for_run",
    "wait_for_webhooks",
]
