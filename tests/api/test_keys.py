"""API keys: made, listed and revoked with `plugs api-keys` (run in this process), stored only as a hash;
missing, malformed, unknown and revoked keys refused with 401; a key over its rate limit
gets 429 with Retry-After."""

from __future__ import annotations

from click.testing import CliRunner, Result
from sqlalchemy import text

from models.accounts import create_organization
from models.api_keys import create_api_key
from models.session import get_database
from scheduler.housekeeping import HOUSEKEEPING_SCHEDULE
from tests.api.conftest import Org, client, problem
from workers.app import app as celery_app
from workers.cli import cli
from workers.tasks import maintenance


def plugs(*args: str) -> Result:
    """`plugs ARGS` in this process (the settings are the test's: platform_env)."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_a_key_made_with_the_cli_works_until_it_is_revoked(
    orgs: tuple[Org, Org], api_url: str
) -> None:
    a, _ = orgs
    made = plugs("api-keys", "create", "--org", str(a.id), "--name", "ci")
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("plugs_sk_") and len(secret) == 65
    with get_database().system("test: the key is stored as a hash") as session:
        stored = session.execute(text("SELECT key_hash, prefix FROM api_keys")).all()
    assert all(secret not in row.key_hash for row in stored)
    assert secret.split("_")[2] in {row.prefix for row in stored}

    listed = plugs("api-keys", "list", "--org", str(a.id))
    [line] = [line for line in listed.stdout.splitlines() if line.endswith(" ci")]
    key_id = line.split()[0]
    assert secret not in listed.stdout and "read-write" in line

    with client(api_url, secret) as api:
        assert api.get("/integrations").status_code == 200
        revoked = plugs("api-keys", "revoke", "--org", str(a.id), key_id)
        assert revoked.exit_code == 0, revoked.output
        refused = problem(api.get("/integrations"), 401, "unauthorized")
        assert "revoked" in refused["detail"]
    listed = plugs("api-keys", "list", "--org", str(a.id))
    assert "revoked" in [line for line in listed.stdout.splitlines() if line.startswith(key_id)][0]


def test_missing_malformed_and_unknown_keys_are_401(api_url: str, orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    real = str(a.api.headers["authorization"]).removeprefix("Bearer ")
    for header in (
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer plugs_sk_",
        "Bearer plugs_sk_zzzzzzzzzzzz_" + "a" * 43,
        "Bearer " + real[:-1] + ("A" if real[-1] != "A" else "B"),  # right lookup, wrong secret
        "Bearer " + real + "x",
        "Bearer " + "x" * 5000,
    ):
        headers = {"authorization": header} if header else {}
        with client(api_url, None) as api:
            answer = api.get("/runs", headers=headers)
        problem(answer, 401, "unauthorized")
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(
    api_url: str, platform_env: dict[str, str]
) -> None:
    db = get_database()
    org = create_organization(db, "Limited")
    _, secret = create_api_key(db, org.id, "tiny", rate_limit=3)
    with client(api_url, secret) as api:
        assert [api.get("/integrations").status_code for _ in range(3)] == [200, 200, 200]
        limited = api.get("/integrations")
        problem(limited, 429, "rate-limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # the limit is the key's: another key of the organization is not held back
        _, other = create_api_key(db, org.id, "other")
        with client(api_url, other) as second:
            assert second.get("/integrations").status_code == 200


def test_an_idempotency_key_is_one_request_of_one_key(orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    path = f"/integrations/{a.integration_id}/pause"
    first = a.api.post(path, headers={"idempotency-key": "pause-1"})
    assert first.status_code == 200
    a.api.post(f"/integrations/{a.integration_id}/resume")
    again = a.api.post(path, headers={"idempotency-key": "pause-1"})
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert a.api.get(f"/integrations/{a.integration_id}").json()["is_active"] is True
    problem(
        a.api.post(
            f"/integrations/{a.integration_id}/resume", headers={"idempotency-key": "pause-1"}
        ),
        422,
        "idempotency-key-reused",
    )
    problem(a.api.post(path, headers={"idempotency-key": ""}), 400, "malformed-request")
    # a read-only key's refusal is its own answer, not the other key's
    problem(a.reader.post(path, headers={"idempotency-key": "pause-1"}), 403, "read-only-key")


def test_stored_answers_past_their_day_are_purged_on_the_housekeeping_schedule(
    orgs: tuple[Org, Org],
) -> None:
    a, _ = orgs
    path = f"/integrations/{a.integration_id}/resume"
    first = a.api.post(path, headers={"idempotency-key": "resume-old"})
    assert first.status_code == 200, first.text
    with get_database().system("test: a stored answer of yesterday") as session:
        session.execute(
            text(
                "UPDATE api_idempotency_keys SET created_at = created_at - interval '25 hours' "
                "WHERE idempotency_key = 'resume-old'"
            )
        )
    entry = HOUSEKEEPING_SCHEDULE["purge-idempotency-keys"]
    assert entry["task"] in celery_app.tasks
    assert maintenance.purge_idempotency_keys() == {"deleted": 1}
    again = a.api.post(path, headers={"idempotency-key": "resume-old"})
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
