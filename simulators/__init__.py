"""Stateful fakes of the vendors we talk to (HubSpot, Mailchimp, Zoom, Microsoft Graph, an
SMS and a push provider), served over real HTTP on loopback for the demo, the tests and the
benchmarks.  They are written from the vendors' public documentation, share one base
(:mod:`simulators.base`: request log, injected faults, serving) and one HTTP server
(:mod:`simulators.server`), and import nothing else of ours.  ``python -m
simulators.<vendor>`` serves one in the foreground."""
