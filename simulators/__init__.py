"""Stateful fakes of the vendors we talk to (HubSpot, Mailchimp, Zoom, Microsoft Graph, an
SMS and a push provider), served over real HTTP on loopback for the demo, the tests and the
benchmarks.  They are written from the vendors' public documentation and import nothing of
ours but their own shared server."""
