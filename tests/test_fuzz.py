"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

Generated requests, valid and invalid, go to the real app on each database.
Every response must be documented (status code, content type, body schema) and
none may be a 5xx. Bounded so that the whole file runs in seconds.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode

from scheduler_app.query_window import WINDOW_ERROR

EXAMPLES_PER_OPERATION = 60


def operations(client):
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    schema.config.generation.update(modes=list(GenerationMode))  # valid and invalid data
    return [result.ok() for result in schema.get_all_operations()]


def test_schema_lists_every_endpoint(client):
    paths = {(op.method.upper(), op.path) for op in operations(client)}
    assert {("GET", "/availability"), ("POST", "/book"), ("GET", "/health"), ("GET", "/ready")} <= paths


def rule_outside_the_schema(response) -> bool:
    """A 422 for a rule that OpenAPI cannot express, which schema-valid data may break:
    GET /availability's window checks (they span parameters) and the email checks
    of email-validator (``format: email`` allows e.g. reserved domains such as .test)
    and the lead's time zone (an IANA name, which a pattern cannot list); and an
    Idempotency-Key that generated requests reuse with other bodies."""
    if response.status_code != 422:
        return False
    detail = response.json().get("detail")
    if isinstance(detail, str):  # an Idempotency-Key sent before with another body
        return detail.startswith("This Idempotency-Key was used for another request")
    return bool(detail) and all(
        error.get("type") == WINDOW_ERROR
        or (error.get("loc") in (["body", "email"], ["body", "timezone"])
            and error.get("type") == "value_error")
        for error in detail
    )


# An endless event stream: a generated request would never end. Its parameters
# and answers are tested against a real server in tests/system/test_stream.py.
ENDLESS = {"/availability/stream"}


def test_api_conforms_to_its_schema(client):
    for operation in operations(client):
        if operation.path in ENDLESS:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = case.call()
            # Anything else that rejects schema-valid data still fails.
            excluded = [positive_data_acceptance] if rule_outside_the_schema(response) else None
            case.validate_response(response, excluded_checks=excluded)

        check()
