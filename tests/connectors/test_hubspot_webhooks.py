"""HubSpot webhook verification against the worked examples of docs/vendors/hubspot.md, and
parsing of its deliveries.  Computed by our verifier, not by the simulator's signer."""

from __future__ import annotations

import pytest

from connectors.base import WebhookRequest
from connectors.hubspot import webhooks
from core.errors import AuthError

SECRET_D = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
SECRET_O = "8a2f5c1e-3b7d-4e9a-b6c0-1d2e3f4a5b6c"
BODY_D = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
    b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
)
BODY_O = (
    b'[{"eventId":100,"subscriptionId":2001,"portalId":62515,"appId":54321,'
    b'"occurredAt":1700000000000,"subscriptionType":"contact.propertyChange","attemptNumber":0,'
    b'"objectId":123,"propertyName":"email","propertyValue":"jane@example.com",'
    b'"changeSource":"CRM_UI"}]'
)
URI_O = "https://hooks.example.com/hubspot/webhook?tenant=acme"
URI_D = "https://hooks.example.com/hubspot%3Awebhook?ids=1%2C2"
TS = "1700000000123"


def _request(
    body: bytes,
    headers: dict[str, str],
    *,
    url: str = URI_O,
    method: str = "POST",
    at: float = 1700000000.2,
) -> WebhookRequest:
    return WebhookRequest(method, url, {k.lower(): v for k, v in headers.items()}, body, at)


def test_the_v1_and_v2_worked_examples() -> None:
    assert webhooks.v1_signature(SECRET_D, BODY_D) == (
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    )
    assert webhooks.v2_signature(SECRET_D, "GET", "https://www.example.com/webhook_uri", b"") == (
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    )
    assert webhooks.v2_signature(SECRET_O, "POST", URI_O, BODY_O) == (
        "01f72d441e51c0ff1f29829bbdf5470bb9b02e569ee6e2be0e512a8c2dfe4ef6"
    )


def test_the_v3_worked_examples_including_uri_decoding() -> None:
    assert webhooks.v3_signature(SECRET_O, "POST", URI_O, BODY_O, TS) == (
        "4cTJxITM+29AqUJKb4lWv5JREh24InOzpaIoCg8qkxQ="
    )
    assert webhooks.v3_signature(SECRET_O, "GET", URI_D, b"", TS) == (
        "PoXc/ORRBUs8rDiku+98UPMl2iHXBouVOcXF1sxHPwU="
    )


def test_a_delivery_signed_v3_verifies() -> None:
    signed = {
        "X-HubSpot-Signature-v3": "4cTJxITM+29AqUJKb4lWv5JREh24InOzpaIoCg8qkxQ=",
        "X-HubSpot-Request-Timestamp": TS,
    }
    webhooks.verify(_request(BODY_O, signed), SECRET_O)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": BODY_O.replace(b"jane", b"mallory")}, "does not match"),
        ({"secret": "another-portal-secret"}, "does not match"),
        ({"at": 1700000000.123 + 301}, "5-minute window"),
        ({"headers": {"X-HubSpot-Request-Timestamp": TS}}, "not signed"),
        ({"url": "https://hooks.example.com/hubspot/webhook?tenant=evil"}, "does not match"),
    ],
)
def test_a_tampered_stale_or_unsigned_delivery_is_refused(change: dict, message: str) -> None:
    headers = change.get("headers") or {
        "X-HubSpot-Signature-v3": "4cTJxITM+29AqUJKb4lWv5JREh24InOzpaIoCg8qkxQ=",
        "X-HubSpot-Request-Timestamp": TS,
    }
    request = _request(
        change.get("body", BODY_O),
        headers,
        url=change.get("url", URI_O),
        at=change.get("at", 1700000000.2),
    )
    with pytest.raises(AuthError, match=message):
        webhooks.verify(request, change.get("secret", SECRET_O))


def test_the_undecoded_uri_signature_is_refused() -> None:
    headers = {
        "X-HubSpot-Signature-v3": "ysxYH8ljDtrTsqqbSbKYbwCc94ONyn40bmdSd9Wu8sY=",
        "X-HubSpot-Request-Timestamp": TS,
    }
    with pytest.raises(AuthError):
        webhooks.verify(_request(b"", headers, url=URI_D, method="GET"), SECRET_O)


def test_legacy_v1_signatures_only_when_allowed() -> None:
    headers = {
        "X-HubSpot-Signature": "2b31f349ca149055859d64d4fc932a579ff5faf4a092aa0554b4643a3b865674",
        "X-HubSpot-Signature-Version": "v1",
    }
    with pytest.raises(AuthError, match="not signed"):
        webhooks.verify(_request(BODY_O, headers), SECRET_O)
    webhooks.verify(_request(BODY_O, headers), SECRET_O, allow_legacy=True)


def test_a_delivery_parses_into_events_with_stable_keys() -> None:
    [event] = webhooks.parse(_request(BODY_O, {}))
    assert (event.kind, event.object_id, event.occurred_at) == (
        "contact.propertyChange",
        "123",
        1700000000.0,
    )
    assert event.event_id == "62515:2001:100:1700000000000"
    with pytest.raises(ValueError):
        webhooks.parse(_request(b'{"not": "an array"}', {}))
