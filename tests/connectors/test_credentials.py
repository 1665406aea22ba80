"""Credentials are ciphertext at rest, bound to their organization and integration, never
printed, rotatable to a new key (event endpoints' signing secrets with them), and refreshed
once even when two workers race."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from connectors.credentials import (
    ENDPOINT_SECRETS,
    KEY_FILE,
    Credentials,
    CredentialsError,
    KeyRing,
    decrypt_credentials,
    encrypt_credentials,
    key_ring,
    new_key_entry,
    refresh_if_expiring,
    rotate_all,
    store_credentials,
)
from core.errors import PlatformConfigError
from core.settings import Settings
from models import AuditLog, Integration
from models.audit_trail import REDACTED
from models.host_events import EventEndpoint
from models.session import Database
from tests.factories import make_world

CANARY = "canary-tok-5c1f0e9d"
# Fixed keys, so that every row any test here writes decrypts with OLD + NEW.
OLD = "k20250101000000:" + "A" * 43 + "="
NEW = "k20260101000000:" + "_" * 43 + "="
OLD_RING = KeyRing.parse(OLD)
NEW_RING = KeyRing.parse(NEW)
BOTH = KeyRing.parse(f"{NEW},{OLD}")


def _token_fields(expires_at: datetime | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"access_token": CANARY, "refresh_token": f"r-{CANARY}"}
    if expires_at is not None:
        fields["expires_at"] = expires_at
    return fields


def _revealed(credentials: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value.get_secret_value() for name, value in credentials.items()}


def _integration(db: Database, org_id: uuid.UUID, integration_id: uuid.UUID) -> Integration:
    with db.tenant(org_id) as session:
        query = select(Integration).where(Integration.id == integration_id)
        return session.scalars(query.execution_options(include_deleted=True)).one()


def _new_integration(db: Database, org_id: uuid.UUID, ring: KeyRing, deleted: bool = False):  # type: ignore[no-untyped-def]
    with db.tenant(org_id) as session:
        integration = Integration(provider="hubspot", integration_type="crm")
        store_credentials(session, integration, {"private_app_token": CANARY}, keys=ring)
        if deleted:
            integration.soft_delete()
    return integration.id


def _new_endpoint(db: Database, org_id: uuid.UUID, ring: KeyRing) -> uuid.UUID:
    """An event endpoint whose signing secret ``ring`` sealed."""
    with db.tenant(org_id) as session:
        row = EventEndpoint(
            id=uuid.uuid4(),
            organization_id=org_id,
            url="https://hooks.example.test/plugs",
            event_types=["run.failed"],
        )
        ENDPOINT_SECRETS.seal(row, {"secret": f"whsec_{CANARY}"}, keys=ring)
        session.add(row)
    return row.id


def _endpoint_secret(db: Database, org_id: uuid.UUID, endpoint_id: uuid.UUID) -> str:
    """The endpoint's signing secret, opened with the NEW key alone."""
    with db.tenant(org_id) as session:
        row = session.get_one(EventEndpoint, endpoint_id)
        return str(ENDPOINT_SECRETS.open(row, keys=NEW_RING)["secret"].get_secret_value())


# --- encryption ----------------------------------------------------------------------------


def test_credentials_round_trip_through_the_database(any_db: Database) -> None:
    world = make_world(any_db)
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    with any_db.tenant(world.org_id) as session:
        integration = session.get_one(Integration, world.ids["integrations"])
        store_credentials(session, integration, _token_fields(expires), keys=OLD_RING)
    stored = _integration(any_db, world.org_id, world.ids["integrations"])
    assert set(stored.credentials) == {"v", "kid", "nonce", "ct"}
    assert stored.credentials["v"] == 1 and stored.credentials["kid"] == "k20250101000000"
    credentials = decrypt_credentials(stored, keys=OLD_RING)
    assert _revealed(credentials) == {**_token_fields(), "expires_at": expires.isoformat()}
    assert credentials.expires_at == expires


def test_each_encryption_uses_a_fresh_nonce() -> None:
    org, integration = uuid.uuid4(), uuid.uuid4()
    first = encrypt_credentials(org, integration, {"a": "b"}, keys=OLD_RING)
    second = encrypt_credentials(org, integration, {"a": "b"}, keys=OLD_RING)
    assert first["nonce"] != second["nonce"] and first["ct"] != second["ct"]


def test_a_ciphertext_copied_to_another_integration_does_not_decrypt(any_db: Database) -> None:
    world = make_world(any_db)
    source = _new_integration(any_db, world.org_id, OLD_RING)
    target = world.ids["integrations"]
    stolen = _integration(any_db, world.org_id, source).credentials
    with any_db.tenant(world.org_id) as session:
        session.get_one(Integration, target).credentials = dict(stolen)
    try:
        with pytest.raises(PlatformConfigError) as error:  # ours, not the vendor's
            decrypt_credentials(_integration(any_db, world.org_id, target), keys=OLD_RING)
        assert "copied from another row" in str(error.value)
        assert CANARY not in str(error.value) and OLD.split(":")[1] not in str(error.value)
    finally:  # leave no undecryptable row behind for the rotation tests
        with any_db.tenant(world.org_id) as session:
            session.get_one(Integration, target).credentials = {}


def test_a_ciphertext_moved_to_another_organization_does_not_decrypt() -> None:
    integration = uuid.uuid4()
    stored = encrypt_credentials(uuid.uuid4(), integration, {"a": CANARY}, keys=OLD_RING)
    elsewhere = Integration(id=integration, organization_id=uuid.uuid4(), credentials=stored)
    with pytest.raises(CredentialsError, match="for this organization and integration"):
        decrypt_credentials(elsewhere, keys=OLD_RING)


def test_a_key_missing_from_the_ring_and_plaintext_rows_are_clear_errors() -> None:
    org, integration = uuid.uuid4(), uuid.uuid4()
    stored = encrypt_credentials(org, integration, {"a": CANARY}, keys=OLD_RING)
    row = Integration(id=integration, organization_id=org, credentials=stored)
    with pytest.raises(CredentialsError, match="'k20250101000000', which PLUGS_SECRET_KEYS"):
        decrypt_credentials(row, keys=NEW_RING)
    row.credentials = {"access_token": CANARY}
    with pytest.raises(CredentialsError, match="not v1 ciphertext") as error:
        decrypt_credentials(row, keys=NEW_RING)
    assert CANARY not in str(error.value)


def test_a_canary_secret_appears_nowhere_but_at_the_point_of_use(any_db: Database) -> None:
    world = make_world(any_db)
    with any_db.tenant(world.org_id) as session:
        integration = session.get_one(Integration, world.ids["integrations"])
        store_credentials(session, integration, _token_fields(), keys=OLD_RING)
    stored = _integration(any_db, world.org_id, world.ids["integrations"])
    assert CANARY not in json.dumps(stored.credentials)
    credentials = decrypt_credentials(stored, keys=OLD_RING)
    for shown in (repr(credentials), str(credentials), f"{credentials}", str(dict(credentials))):
        assert CANARY not in shown and "**********" in shown
    assert CANARY not in repr(credentials["access_token"])
    assert credentials["access_token"].get_secret_value() == CANARY
    with any_db.tenant(world.org_id) as session:
        query = select(AuditLog).where(AuditLog.record_id == world.ids["integrations"])
        audits = session.scalars(query).all()
    update = next(a for a in audits if a.action == "update")
    assert update.old_values == update.new_values == {"credentials": REDACTED}
    assert all(CANARY not in json.dumps([a.old_values, a.new_values]) for a in audits)


def test_credentials_compare_by_value_and_refuse_naive_times() -> None:
    assert Credentials({"a": "x", "n": 3}) == Credentials({"a": "x", "n": 3})
    naive = {"expires_at": datetime(2030, 1, 1)}
    with pytest.raises(CredentialsError, match="naive"):
        encrypt_credentials(uuid.uuid4(), uuid.uuid4(), naive, keys=OLD_RING)


# --- the key ring --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("k1:not*base64!", "entry 1: the key is not urlsafe base64"),
        (f"{NEW},k2:" + "B" * 22, "entry 2: the key is 16 bytes, AES-256 needs 32"),
        (f"{NEW},{NEW}", "entries [1, 2] have the same key id"),
        ("A" * 43 + "=", "entry 1 is not 'kid:base64key'"),
        (" , ", "holds no keys"),
    ],
)
def test_a_bad_key_ring_is_one_clear_error(keys: str, message: str) -> None:
    with pytest.raises(CredentialsError) as error:
        KeyRing.parse(keys)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert "A" * 43 not in str(error.value) and "_" * 43 not in str(error.value)


def test_a_ring_encrypts_with_the_newest_key_and_never_shows_keys() -> None:
    ring = KeyRing.parse(f"{NEW},\n{OLD}")
    assert ring.newest[0] == "k20260101000000" and ring.key("k20250101000000") is not None
    assert repr(ring) == "KeyRing(k20260101000000, k20250101000000)"
    entry = new_key_entry(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    assert re.fullmatch(r"k20260304050607:[A-Za-z0-9_-]{43}=", entry)
    assert KeyRing.parse(entry).newest[0] == "k20260304050607"


def test_sqlite_without_keys_generates_one_private_key_file_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", secret_keys=None, database_url=None)
    first = key_ring(settings)
    path = tmp_path / "var" / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key_ring(settings) == first
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]


def test_postgresql_without_keys_is_refused_with_instructions(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        secret_keys=None,
        database_url=SecretStr("postgresql+psycopg://app@db/plugs"),
    )
    with pytest.raises(PlatformConfigError, match="plugs keys generate"):
        key_ring(settings)
    assert not (tmp_path / KEY_FILE).exists()


# --- rotation ------------------------------------------------------------------------------


def test_rotation_moves_every_row_to_the_newest_key_once(sqlite_db: Database) -> None:
    worlds = [make_world(sqlite_db, "A"), make_world(sqlite_db, "B")]
    rows = [(w.org_id, _new_integration(sqlite_db, w.org_id, OLD_RING)) for w in worlds]
    rows.append((worlds[0].org_id, _new_integration(sqlite_db, worlds[0].org_id, OLD_RING, True)))
    first = rotate_all(sqlite_db, batch_size=2, keys=BOTH)
    assert (first.rotated, first.already_current, first.failed) == (3, 0, 0)
    second = rotate_all(sqlite_db, batch_size=2, keys=BOTH)
    assert (second.rotated, second.already_current, second.failed) == (0, 3, 0)
    for org_id, integration_id in rows:
        row = _integration(sqlite_db, org_id, integration_id)
        assert row.credentials["kid"] == "k20260101000000"
        assert decrypt_credentials(row, keys=NEW_RING)["private_app_token"].get_secret_value() == (
            CANARY
        )


def test_rotation_on_postgresql_covers_every_organization_and_deleted_rows(
    pg_db: Database,
) -> None:
    worlds = [make_world(pg_db, "A"), make_world(pg_db, "B")]
    rows = [(w.org_id, _new_integration(pg_db, w.org_id, OLD_RING, True)) for w in worlds]
    endpoints = [(w.org_id, _new_endpoint(pg_db, w.org_id, OLD_RING)) for w in worlds]
    assert rotate_all(pg_db, keys=BOTH).rotated >= 4
    assert rotate_all(pg_db, keys=BOTH).rotated == 0
    for org_id, integration_id in rows:  # the old key is gone and every row still decrypts
        row = _integration(pg_db, org_id, integration_id)
        assert decrypt_credentials(row, keys=NEW_RING)["private_app_token"].get_secret_value() == (
            CANARY
        )
    for org_id, endpoint_id in endpoints:  # the same secret, now under the new key
        assert _endpoint_secret(pg_db, org_id, endpoint_id) == f"whsec_{CANARY}"


def test_rows_that_do_not_decrypt_are_counted_not_fatal(sqlite_db: Database) -> None:
    world = make_world(sqlite_db)
    _new_integration(sqlite_db, world.org_id, OLD_RING)
    _new_integration(sqlite_db, world.org_id, NEW_RING)
    report = rotate_all(sqlite_db, keys=KeyRing.parse(f"k3:{'C' * 43}=,{NEW}"))
    assert (report.rotated, report.already_current, report.failed) == (1, 0, 1)
    assert "'k20250101000000'" in report.failures[0] and CANARY not in report.failures[0]


# --- `plugs keys` ----------------------------------------------------------------------------


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_plugs_keys_rotate_rewrites_rows_and_is_idempotent(
    plugs: Any, sqlite_db: Database, sqlite_url: str
) -> None:
    world = make_world(sqlite_db)
    integration_id = _new_integration(sqlite_db, world.org_id, OLD_RING)
    endpoint_id = _new_endpoint(sqlite_db, world.org_id, OLD_RING)
    env = {"PLUGS_DATABASE_URL": sqlite_url, "PLUGS_SECRET_KEYS": f"{NEW},{OLD}"}
    first = plugs("keys", "rotate", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "rotated 2, already current 0, failed 0"
    again = plugs("keys", "rotate", env=env)
    assert again.stdout.strip() == "rotated 0, already current 2, failed 0"
    row = _integration(sqlite_db, world.org_id, integration_id)
    assert decrypt_credentials(row, keys=NEW_RING)["private_app_token"].get_secret_value() == CANARY
    # the old key may go: the endpoint still signs with the secret its receiver knows
    assert _endpoint_secret(sqlite_db, world.org_id, endpoint_id) == f"whsec_{CANARY}"


def test_plugs_keys_rotate_exits_non_zero_when_a_row_fails(
    plugs: Any, sqlite_db: Database, sqlite_url: str
) -> None:
    world = make_world(sqlite_db)
    _new_integration(sqlite_db, world.org_id, OLD_RING)
    result = plugs(
        "keys", "rotate", env={"PLUGS_DATABASE_URL": sqlite_url, "PLUGS_SECRET_KEYS": NEW}
    )
    assert result.returncode == 1
    assert result.stdout.strip() == "rotated 0, already current 0, failed 1"
    assert "k20250101000000" in result.stderr and CANARY not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "keys", ["k1:" + "A" * 20 + "*", f"{NEW},{NEW}", "k1:" + "A" * 22, "nonsense"]
)
def test_a_bad_plugs_secret_keys_is_one_line_from_plugs_keys_rotate(
    plugs: Any, sqlite_db: Database, sqlite_url: str, keys: str
) -> None:
    result = plugs(
        "keys", "rotate", env={"PLUGS_DATABASE_URL": sqlite_url, "PLUGS_SECRET_KEYS": keys}
    )
    line = _one_line_error(result)
    assert "PLUGS_SECRET_KEYS" in line and "A" * 20 not in line and "_" * 43 not in line


def test_plugs_keys_generate_prints_an_entry_for_the_front_of_the_ring(plugs: Any) -> None:
    result = plugs("keys", "generate")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"k\d{14}:[A-Za-z0-9_-]{43}=", result.stdout.strip())
    assert "front of PLUGS_SECRET_KEYS" in result.stderr


# --- refreshing OAuth tokens ---------------------------------------------------------------


def test_a_token_far_from_expiry_is_not_refreshed(any_db: Database) -> None:
    world = make_world(any_db)
    expires = datetime.now(UTC) + timedelta(hours=1)
    with any_db.tenant(world.org_id) as session:
        integration = session.get_one(Integration, world.ids["integrations"])
        store_credentials(session, integration, _token_fields(expires), keys=OLD_RING)

    def refresh(current: Mapping[str, Any]) -> dict[str, Any]:
        raise AssertionError("refreshed a token that is still good")

    current = refresh_if_expiring(
        any_db, world.org_id, world.ids["integrations"], refresh, keys=OLD_RING
    )
    assert current["access_token"].get_secret_value() == CANARY


def test_two_workers_refreshing_at_once_call_the_vendor_once(any_db: Database) -> None:
    world = make_world(any_db)
    soon = datetime.now(UTC) + timedelta(minutes=1)
    with any_db.tenant(world.org_id) as session:
        integration = session.get_one(Integration, world.ids["integrations"])
        store_credentials(session, integration, _token_fields(soon), keys=OLD_RING)
    calls: list[str] = []
    guard, start = threading.Lock(), threading.Barrier(2)

    def refresh(current: Mapping[str, Any]) -> dict[str, Any]:
        with guard:
            calls.append(current["refresh_token"].get_secret_value())
        time.sleep(0.5)
        return {"access_token": "fresh", "expires_at": datetime.now(UTC) + timedelta(hours=1)}

    def worker() -> Credentials:
        start.wait()
        return refresh_if_expiring(
            any_db, world.org_id, world.ids["integrations"], refresh, keys=OLD_RING
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [f.result() for f in [pool.submit(worker), pool.submit(worker)]]
    assert calls == [f"r-{CANARY}"]
    for result in results:
        assert result["access_token"].get_secret_value() == "fresh"
        assert result["refresh_token"].get_secret_value() == f"r-{CANARY}"
    stored = decrypt_credentials(
        _integration(any_db, world.org_id, world.ids["integrations"]), keys=OLD_RING
    )
    assert stored["access_token"].get_secret_value() == "fresh"
