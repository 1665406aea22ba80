"""The one guarded way out, probed as in production (``PLUGS_ALLOW_PRIVATE_URLS=false``).

Every probe must end in our own refusal (:class:`UnsafeURLError`, or its connect-time kind
:class:`BlockedAddressError`) before the suite's safety net (``loopback_only`` in
tests/conftest.py) sees a connect: each test asserts the net recorded nothing.  Probes that
would land on loopback if the guard failed are aimed at a listener of ours, which must not
see a connection either.  Names are answered by a fake resolver patched over
``socket.getaddrinfo`` (the operating system's boundary); no name here reaches real DNS.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors import loading
from connectors.egress import BlockedAddressError, UnsafeURLError
from connectors.http import VendorClient
from connectors.hubspot.connector import refresh_oauth_token
from connectors.integrations import add_integration
from connectors.teams import auth as teams_auth
from connectors.zoom import auth as zoom_auth
from core.settings import PushProvider, Settings, SmsProvider, SmtpServer, get_settings
from models.accounts import create_organization
from models.integrations import Integration
from models.session import Database
from notifications.channels.base import Device, Message, Recipient
from notifications.channels.email import EmailChannel
from notifications.channels.push import PushChannel
from notifications.channels.sms import SmsChannel
from simulators.hubspot.server import HubSpotSimulator
from simulators.server import serve

KEY = "PLUGS_ALLOW_PRIVATE_URLS"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def production() -> Iterator[None]:
    """``PLUGS_ALLOW_PRIVATE_URLS=false`` for this test (the suite runs with true)."""
    saved = os.environ.get(KEY)
    os.environ[KEY] = "false"
    get_settings.cache_clear()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(KEY, None)
        else:
            os.environ[KEY] = saved
        get_settings.cache_clear()


@pytest.fixture
def net(loopback_only: list[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    """The safety net's record; the test fails if it grew."""
    before = len(loopback_only)
    yield loopback_only
    assert loopback_only[before:] == [], "the safety net, not our guard, stopped a connect"


class Listener:
    """A loopback port of ours that counts who connected to it."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.port = int(self.socket.getsockname()[1])

    def connections(self) -> int:
        count = 0
        while True:
            try:
                accepted, _ = self.socket.accept()
            except BlockingIOError:
                return count
            accepted.close()
            count += 1


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    assert server.connections() == 0, "a probe reached our loopback listener"
    server.socket.close()


class FakeDns:
    """``socket.getaddrinfo`` for the names a test declares; IP literals and ``localhost``
    go to the real resolver (which answers them without a query); any other name fails."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.queries: dict[str, int] = {}

    def add(self, name: str, *answers: Sequence[str]) -> None:
        """``name`` answers ``answers[0]``, then ``answers[1]``... (the last one repeats)."""
        self.answers[name] = [list(a) for a in answers]

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in self.answers:
            self.queries[name] = self.queries.get(name, 0) + 1
            answers = self.answers[name]
            addresses = answers[min(self.queries[name], len(answers)) - 1]
            return [_info(address, int(port or 0)) for address in addresses]
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            if name != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, f"{name}: unknown to the test") from None
        return self.real(host, port, *args, **kwargs)


def _info(address: str, port: int) -> tuple[Any, ...]:
    if ipaddress.ip_address(address).version == 6:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def _message() -> Message:
    user = uuid.uuid4()
    return Message(
        delivery_id=uuid.uuid4(),
        notification_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        recipient=Recipient(id=user, email="ada@example.test", name="Ada", phone="+15550001"),
        title="Sync failed",
        message="HubSpot contacts failed",
        notification_type="system",
        data={},
        created_at=datetime.now(UTC),
        devices=(Device(id=uuid.uuid4(), token="device-token"),),
    )


# --- the probes: configured vendor URLs --------------------------------------------------------

#: base_url probes; ``{port}`` is our loopback listener.
BASE_URL_PROBES = [
    "https://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/",
    "https://localhost:{port}/",
    "https://10.0.0.1/",
    "https://[::1]:{port}/",
    "https://2130706433:{port}/",
    "https://0x7f.1:{port}/",
    "https://127.1:{port}/",
    "https://0.0.0.0:{port}/",
    "https://127.0.0.1:{port}/",
    "http://127.0.0.1:{port}/",
    "https://[::ffff:127.0.0.1]:{port}/",
    "https://[::ffff:169.254.169.254]/",
    "https://[fe80::1]/",
    "https://100.64.0.1/",
    "https://192.168.1.1/",
    "https://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
]


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize("probe", BASE_URL_PROBES)
def test_a_vendor_base_url_off_the_public_internet_is_refused_at_connect(
    probe: str, listener: Listener, net: list[Any]
) -> None:
    """The wall itself: the transport refuses, whatever the settings checks let through."""
    with VendorClient(name="hubspot", base_url=probe.format(port=listener.port)) as client:
        with pytest.raises(UnsafeURLError, match="refused") as refused:
            client.request("GET", "/crm/v3/objects/contacts")
    assert "PLUGS_ALLOW_PRIVATE_URLS=true" in str(refused.value)


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize("probe", BASE_URL_PROBES)
def test_the_same_base_urls_are_refused_when_set_naming_the_setting(
    probe: str, pg_db: Database, net: list[Any]
) -> None:
    org = create_organization(pg_db, "Probed")
    url = probe.format(port=1)
    with pytest.raises(UnsafeURLError) as refused:
        add_integration(pg_db, org.id, "hubspot", {"private_app_token": "pat"}, {"base_url": url})
    message = str(refused.value)
    assert message.startswith("setting base_url") and "\n" not in message
    with pg_db.tenant(org.id) as session:
        assert session.scalar(select(func.count()).select_from(Integration)) == 0


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("base_url", "169.254.169.254"),
        ("base_url", "https://user:hunter2@api.hubapi.com"),
        ("login_base_url", "http://127.0.0.1:1"),
        ("oauth_base_url", "ftp://zoom.us"),
    ],
)
def test_plugs_integrations_add_refuses_a_bad_url_in_one_line(
    plugs: Any,
    platform_env: dict[str, str],
    app_db: Database,
    setting: str,
    value: str,
    net: list[Any],
) -> None:
    org = create_organization(app_db, "CLI probe")
    provider = {"login_base_url": "teams", "oauth_base_url": "zoom"}.get(setting, "hubspot")
    secret = ["--token", "t"] if provider == "hubspot" else ["--credentials", '{"client_id": "c"}']
    result = plugs(
        "integrations",
        "add",
        provider,
        "--org",
        str(org.id),
        *secret,
        "--setting",
        f"{setting}={value}",
        env={**platform_env, KEY: "false"},
    )
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"setting {setting}" in lines[0], result.stderr
    assert "hunter2" not in result.stderr


@pytest.mark.usefixtures("production")
def test_a_stored_url_setting_is_checked_again_when_the_client_is_loaded(net: list[Any]) -> None:
    """A row written before the checks existed (or by hand) is refused at load."""
    integration = Integration(
        id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        provider="teams",
        integration_type="meetings",
        settings={"organizer": "o@contoso.test", "login_base_url": "https://169.254.169.254"},
        status="active",
    )
    credentials = {"tenant_id": "t", "client_id": "c", "client_secret": "s"}
    connector = loading.connector_class(integration)(integration, credentials)
    with pytest.raises(UnsafeURLError, match="^setting login_base_url: 169.254.169.254 is not"):
        loading.open_client(connector)


# --- token endpoints -------------------------------------------------------------------------


@pytest.mark.usefixtures("production")
def test_token_endpoints_of_teams_zoom_and_hubspot_are_guarded(
    listener: Listener, net: list[Any]
) -> None:
    port = listener.port
    teams = {"tenant_id": "t", "client_id": "c", "client_secret": "s"}
    with pytest.raises(BlockedAddressError, match="127.0.0.1"):
        teams_auth.fetch_token(f"https://127.0.0.1:{port}", teams)
    zoom = {"account_id": "a", "client_id": "c", "client_secret": "s"}
    with pytest.raises(BlockedAddressError, match="localhost"):
        zoom_auth.fetch_token(f"https://localhost:{port}", zoom)
    hubspot = {"refresh_token": "r", "client_id": "c", "client_secret": "s"}
    with pytest.raises(BlockedAddressError, match="169.254.169.254"):
        refresh_oauth_token("https://169.254.169.254", hubspot)


# --- notification providers ------------------------------------------------------------------


def _settings(**providers: Any) -> Settings:
    return Settings(allow_private_urls=False, **providers)


def test_sms_and_push_providers_on_private_addresses_are_refused_when_loaded(
    net: list[Any],
) -> None:
    sms = SmsProvider(
        base_url="https://127.0.0.1:1", account_sid="AC1", auth_token="t", from_number="+1555"
    )
    with pytest.raises(UnsafeURLError, match=r"^setting PLUGS_SMS_PROVIDERS \(twilio\) base_url"):
        SmsChannel(_settings(sms_providers=[sms])).check_configured()
    push = PushProvider(base_url="http://fcm.googleapis.com", project_id="p", access_token="t")
    with pytest.raises(UnsafeURLError, match=r"^setting PLUGS_PUSH_PROVIDERS \(fcm\) base_url"):
        PushChannel(_settings(push_providers=[push])).check_configured()
    smtp = SmtpServer(host="169.254.169.254")
    with pytest.raises(UnsafeURLError, match=r"^setting PLUGS_SMTP_SERVERS \(smtp\) host"):
        EmailChannel(_settings(smtp_servers=[smtp])).check_configured()


def test_providers_whose_names_resolve_to_private_addresses_are_refused_at_connect(
    dns: FakeDns, listener: Listener, net: list[Any]
) -> None:
    dns.add("sms.provider.test", ["127.0.0.1"])
    dns.add("push.provider.test", ["10.0.0.7"])
    dns.add("smtp.provider.test", ["::ffff:127.0.0.1"])
    port = listener.port
    sms = SmsProvider(
        base_url=f"https://sms.provider.test:{port}",
        account_sid="AC1",
        auth_token="t",
        from_number="+1555",
    )
    push = PushProvider(base_url="https://push.provider.test", project_id="p", access_token="t")
    smtp = SmtpServer(host="smtp.provider.test", port=port, starttls=False)
    settings = _settings(sms_providers=[sms], push_providers=[push], smtp_servers=[smtp])
    for channel, address in (
        (SmsChannel(settings), "127.0.0.1"),
        (PushChannel(settings), "10.0.0.7"),
        (EmailChannel(settings), "::ffff:127.0.0.1"),
    ):
        with channel:
            channel.check_configured()  # names pass: they are judged when connecting
            with pytest.raises(BlockedAddressError, match=f"provider.test \\({address}\\)"):
                channel.send(_message())


# --- names, rebinding, paging links ----------------------------------------------------------


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    "answer",
    [["169.254.169.254"], ["8.8.8.8", "10.1.2.3"], ["fd00::1", "8.8.8.8"], ["::ffff:10.0.0.1"]],
)
def test_a_vendor_name_with_any_private_address_is_refused_before_connecting(
    dns: FakeDns, answer: list[str], net: list[Any]
) -> None:
    dns.add("api.vendor.test", answer)
    with VendorClient(name="vendor", base_url="https://api.vendor.test") as client:
        with pytest.raises(BlockedAddressError, match="api.vendor.test"):
            client.request("GET", "/contacts")
    assert dns.queries == {"api.vendor.test": 1}


def test_the_connection_goes_to_the_address_that_was_checked(dns: FakeDns, net: list[Any]) -> None:
    """DNS rebinding: the name answers loopback (allowed with private URLs) once, then a
    private address.  The request reaches the simulator on loopback: the name was resolved
    once and the checked address connected to (a second lookup would have gone to
    10.0.0.1, where the safety net would have stopped it)."""
    sim = HubSpotSimulator(private_app_token="pat-rebind")
    with serve(sim) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        dns.add("rebind.vendor.test", ["127.0.0.1"], ["10.0.0.1"])
        with VendorClient(
            name="hubspot",
            base_url=f"http://rebind.vendor.test:{port}",
            headers={"Authorization": "Bearer pat-rebind"},
            allow_private=True,
        ) as client:
            response = client.request("GET", "/crm/v3/objects/contacts")
    assert response.status_code == 200
    assert dns.queries == {"rebind.vendor.test": 1}


def test_a_loopback_simulator_still_works_when_private_urls_are_allowed(net: list[Any]) -> None:
    assert get_settings().allow_private_urls  # the suite's setting
    sim = HubSpotSimulator(private_app_token="pat-local")
    sim.add_contacts(3)
    with serve(sim) as server:
        integration = Integration(
            id=uuid.uuid4(),
            organization_id=uuid.uuid4(),
            provider="hubspot",
            integration_type="crm",
            settings={"base_url": server.base_url},
            status="active",
        )
        connector = loading.connector_class(integration)(
            integration, {"private_app_token": "pat-local"}
        )
        with loading.open_client(connector) as client:
            response = client.request("GET", "/crm/v3/objects/contacts")
    assert response.status_code == 200 and len(response.json()["results"]) == 3


@pytest.mark.parametrize(
    ("base", "link"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com:8443/v1.0/users"),
        ("https://graph.microsoft.com/v1.0", "http://graph.microsoft.com/v1.0/users"),
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com.evil.test/v1.0"),
        ("https://graph.microsoft.com/v1.0", "https://169.254.169.254/latest/meta-data"),
        ("http://127.0.0.1:{port}", "http://127.0.0.1:{other}/next"),
        ("http://127.0.0.1:{port}", "http://localhost:{port}/next"),
    ],
)
def test_a_paging_link_must_keep_the_scheme_host_and_port_of_the_vendor(
    base: str, link: str, listener: Listener, net: list[Any]
) -> None:
    ports = {"port": listener.port, "other": listener.port + 1}
    with VendorClient(name="teams", base_url=base.format(**ports), allow_private=True) as client:
        with pytest.raises(UnsafeURLError, match="not one of the vendor's hosts"):
            client.follow(link.format(**ports))


# --- the safety net itself -------------------------------------------------------------------


def test_the_safety_net_stops_a_connect_outside_loopback_before_it_leaves(
    loopback_only: list[tuple[object, ...]], tmp_path: Any
) -> None:
    before = len(loopback_only)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(PermissionError, match="safety net"):
            sock.connect(("10.0.0.1", 9))
    assert loopback_only[before:] == [("10.0.0.1", 9)]
    del loopback_only[before:]  # seen and handled here: not a failure of the run
    path = str(tmp_path / "unix.sock")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen()
        client.connect(path)  # unix sockets pass
    assert len(loopback_only) == before
