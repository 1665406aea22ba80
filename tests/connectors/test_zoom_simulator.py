"""The Zoom simulator behaves as Zoom documents: registrants listed approved-only unless a
status is asked for, status changes by action, and no registration once a meeting has
started ("Meeting is over", code 3038)."""

from __future__ import annotations

import httpx

from simulators.zoom.server import ZoomSimulator


def api(sim: ZoomSimulator) -> httpx.Client:
    """A client of the simulator in-process, holding an S2S token it issued."""
    transport = httpx.MockTransport(sim)
    with httpx.Client(transport=transport) as oauth:
        token = oauth.post(
            "https://zoom.us/oauth/token",
            params={"grant_type": "account_credentials", "account_id": sim.account_id},
            auth=(sim.client_id, sim.client_secret),
        ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(transport=transport, base_url="https://api.zoom.us/v2", headers=headers)


def emails(response: httpx.Response) -> list[str]:
    return [r["email"] for r in response.json()["registrants"]]


def test_registrants_are_listed_approved_only_unless_a_status_is_asked() -> None:
    sim = ZoomSimulator()
    meeting = sim.add_meeting()
    sim.register(meeting.id, "ada@example.com")
    bob = sim.register(meeting.id, "bob@example.com")
    sim.set_registrant_status(meeting.id, bob["id"], "pending")
    path = f"/meetings/{meeting.id}/registrants"
    with api(sim) as client:
        assert emails(client.get(path)) == ["ada@example.com"]
        assert emails(client.get(path, params={"status": "pending"})) == ["bob@example.com"]
        assert emails(client.get(path, params={"status": "denied"})) == []
        assert client.get(path, params={"status": "everyone"}).status_code == 400

        cancel = {"action": "cancel", "registrants": [{"email": "ada@example.com"}]}
        assert client.put(f"{path}/status", json=cancel).status_code == 204
        assert emails(client.get(path, params={"status": "denied"})) == ["ada@example.com"]
        assert emails(client.get(path)) == []


def test_nobody_registers_for_a_meeting_that_started_or_ended() -> None:
    sim = ZoomSimulator()
    meeting = sim.add_meeting()
    path = f"/meetings/{meeting.id}/registrants"
    with api(sim) as client:
        for status in ("started", "finished"):
            sim.set_meeting_status(meeting.id, status)
            late = client.post(path, json={"email": "cy@example.com", "first_name": "Cy"})
            assert (late.status_code, late.json()["code"]) == (400, 3038)
            assert "Meeting is over" in late.json()["message"]
        sim.set_meeting_status(meeting.id, "waiting")
        assert client.post(path, json={"email": "cy@example.com", "first_name": "Cy"}).is_success
