"""A property-based fuzz of the whole API from its own OpenAPI document (schemathesis):
valid and invalid requests to every operation; no answer is a 5xx, every 4xx is a problem
document, and every 2xx matches the document.  Bounded: a few examples per operation."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from models.accounts import create_organization, create_user
from models.api_keys import create_api_key
from models.session import get_database

#: Examples per operation and generation mode (valid, invalid).
EXAMPLES = 3


@pytest.fixture(scope="module")
def fuzz_key(platform_env: dict[str, str]) -> str:
    """A key of an organization of the fuzz's own (it may change anything it finds)."""
    db = get_database()
    org = create_organization(db, "Fuzz", unique_name=False)
    create_user(db, org.id, "fuzz-admin@example.test", is_admin=True)
    _, secret = create_api_key(db, org.id, "fuzz", rate_limit=1_000_000)
    return secret


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_the_api_answers_anything_with_a_problem_or_a_documented_answer(
    api_url: str, fuzz_key: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), **headers}
            response = case.call(timeout=30)
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
            if 400 <= response.status_code < 500:
                [content_type] = response.headers["content-type"]
                assert content_type.startswith("application/problem+json"), response.text
                assert response.json()["type"].startswith("urn:plugs:problem:")

        answers()
