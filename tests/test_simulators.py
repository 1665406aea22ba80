"""What every simulator shares (simulators.base): injected faults answered in the vendor's
own shape before the vendor, one request log, serving over loopback, and the
``python -m simulators.<vendor>`` commands."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from simulators.base import UNTIL_CLEARED
from simulators.hubspot.server import HubSpotSimulator
from simulators.notifications import TwilioSimulator
from simulators.teams.server import GraphSimulator
from simulators.zoom.server import ZoomSimulator

ROOT = Path(__file__).resolve().parents[1]
CONTACTS = "/crm/v3/objects/contacts"
HUBSPOT_AUTH = {"Authorization": "Bearer pat-na1-simulator"}


def _hubspot() -> tuple[HubSpotSimulator, httpx.Client]:
    sim = HubSpotSimulator(clock=lambda: 1_700_000_000.0)
    return sim, httpx.Client(transport=httpx.MockTransport(sim), base_url="https://h")


def test_faults_queue_up_and_each_answers_only_its_next_requests() -> None:
    sim, client = _hubspot()
    sim.fail_next(2, status=503)
    sim.fail_next(status=429, retry_after=1.5)
    statuses = [client.get(CONTACTS, headers=HUBSPOT_AUTH) for _ in range(4)]
    assert [r.status_code for r in statuses] == [503, 503, 429, 200]
    assert statuses[2].headers["Retry-After"] == "1.5"
    assert statuses[2].json()["policyName"] == "TEN_SECONDLY_ROLLING"  # HubSpot's own 429


def test_a_fault_without_a_prefix_spares_the_login_and_one_with_a_prefix_hits_only_it() -> None:
    sim = ZoomSimulator()
    with httpx.Client(transport=httpx.MockTransport(sim), base_url="https://z") as client:
        auth = httpx.BasicAuth(sim.client_id, sim.client_secret)
        params = {"grant_type": "account_credentials", "account_id": sim.account_id}
        sim.fail_next(status=503)
        token = client.post("/oauth/token", params=params, auth=auth)
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert client.get("/v2/users/me/meetings", headers=bearer).status_code == 503
        sim.fail_next(status=500, path_prefix="/oauth/")
        assert client.get("/v2/users/me/meetings", headers=bearer).status_code == 200
        assert client.post("/oauth/token", params=params, auth=auth).status_code == 500


def test_a_fault_can_carry_its_own_body() -> None:
    sim, client = _hubspot()
    sim.fail_next(status=502, body={"gateway": "down"})
    sim.fail_next(status=502, body=b"<html>Bad gateway</html>")
    assert client.get(CONTACTS, headers=HUBSPOT_AUTH).json() == {"gateway": "down"}
    assert client.get(CONTACTS, headers=HUBSPOT_AUTH).text == "<html>Bad gateway</html>"


def test_a_vendor_down_until_cleared_answers_every_request_in_its_shape() -> None:
    sim = TwilioSimulator()
    path = f"/2010-04-01/Accounts/{sim.account_sid}/Messages.json"
    auth = httpx.BasicAuth(sim.account_sid, sim.auth_token)
    form = {"To": "+15551230001", "Body": "hi"}
    with httpx.Client(transport=httpx.MockTransport(sim), base_url="https://t") as client:
        sim.fail_next(UNTIL_CLEARED, status=503)
        down = [client.post(path, data=form, auth=auth) for _ in range(3)]
        sim.clear_faults()
        up = client.post(path, data=form, auth=auth)
    assert [r.json()["code"] for r in down] == [20503] * 3
    assert up.status_code == 201 and len(sim.messages) == 1


def test_a_fault_must_answer_at_least_one_request() -> None:
    with pytest.raises(ValueError, match="at least one request"):
        HubSpotSimulator().fail_next(0)


def test_the_request_log_records_what_was_asked_and_answered() -> None:
    sim, client = _hubspot()
    client.get(CONTACTS, params={"limit": "2"}, headers=HUBSPOT_AUTH)
    client.post(f"{CONTACTS}/search", json={"limit": 1}, headers=HUBSPOT_AUTH)
    client.get(CONTACTS)  # no token
    first, search, refused = sim.requests
    assert (first.method, first.path, first.query, first.status) == (
        "GET",
        CONTACTS,
        {"limit": "2"},
        200,
    )
    assert first.headers["authorization"] == "Bearer pat-na1-simulator"
    assert first.time == 1_700_000_000.0
    assert (search.body, search.status) == (b'{"limit":1}', 200)
    assert sim.requests.where(status=401) == [refused]
    assert sim.requests.where(method="POST", path_contains="/search") == [search]
    assert len(sim.requests) == 3 and sim.requests[-1] == refused


def test_a_simulator_serves_over_loopback_while_in_its_with_block() -> None:
    sim = GraphSimulator()
    with sim:
        token = httpx.post(
            f"{sim.url}/{sim.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sim.client_id,
                "client_secret": sim.client_secret,
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        assert token.status_code == 200
        with pytest.raises(RuntimeError, match="already serving"):
            sim.start()
        url = sim.url
    with pytest.raises(RuntimeError, match="not serving"):
        sim.url  # noqa: B018
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    assert [r.status for r in sim.requests] == [200]


# --------------------------------------------------------------- python -m simulators.X

LINE = re.compile(r"^(\w+) simulator on (\S+) \((.*)\)$")


def _run(vendor: str, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", f"simulators.{vendor}", "--port", "0", *args]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _announced(process: subprocess.Popen[str]) -> tuple[str, dict[str, str]]:
    """The URL and the credentials of the line the command prints first."""
    assert process.stdout is not None
    match = LINE.match(process.stdout.readline().strip())
    assert match, "the command did not announce where it serves"
    details = dict(item.rsplit(" ", 1) for item in match.group(3).split(", "))
    return match.group(2), details


def _hubspot_call(url: str, said: dict[str, str]) -> int:
    page = httpx.get(f"{url}{CONTACTS}", headers={"Authorization": f"Bearer {said['token']}"})
    return len(page.json()["results"])


def _mailchimp_call(url: str, said: dict[str, str]) -> int:
    auth = httpx.BasicAuth("anystring", said["api key"])
    return int(httpx.get(f"{url}/lists/{said['list']}/members", auth=auth).json()["total_items"])


def _zoom_call(url: str, said: dict[str, str]) -> int:
    token = httpx.post(
        f"{url}/oauth/token",
        params={"grant_type": "account_credentials", "account_id": said["account_id"]},
        auth=httpx.BasicAuth(said["client_id"], said["client_secret"]),
    ).json()["access_token"]
    page = httpx.get(
        f"{said['API']}/users/me/meetings", headers={"Authorization": f"Bearer {token}"}
    )
    return len(page.json()["meetings"])


def _teams_call(url: str, said: dict[str, str]) -> int:
    form = {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"}
    form |= {"client_id": said["client_id"], "client_secret": said["client_secret"]}
    token = httpx.post(f"{url}/{said['tenant_id']}/oauth2/v2.0/token", data=form)
    events = httpx.get(
        f"{url}/users/{said['organizer']}/events",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    return len(events.json()["value"])


@pytest.mark.parametrize(
    ("vendor", "seed", "call"),
    [
        ("hubspot", ["--contacts", "3", "--token", "pat-cli"], _hubspot_call),
        ("mailchimp", ["--members", "3"], _mailchimp_call),
        ("zoom", ["--meetings", "3"], _zoom_call),
        ("teams", ["--events", "3"], _teams_call),
    ],
)
def test_the_command_serves_a_seeded_simulator_until_stopped(
    vendor: str, seed: list[str], call: Callable[[str, dict[str, str]], int]
) -> None:
    process = _run(vendor, *seed)
    try:
        url, said = _announced(process)
        assert url.startswith("http://127.0.0.1:")
        assert call(url, said) == 3
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert (process.returncode, out.strip(), err) == (0, "stopped", "")


def test_a_port_that_is_taken_is_one_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "simulators.mailchimp", "--members", "0", "--port", port],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (
        f"Mailchimp simulator cannot listen on 127.0.0.1:{port}: Address already in use"
    )
