"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

Generated requests, valid and invalid, go to the real app on each database.
Every response must be documented (status code, content type, body schema) and
none may be a 5xx. Bounded so that the whole file runs in seconds.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

EXAMPLES_PER_OPERATION = 60


def operations(client):
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    schema.config.generation.update(modes=list(GenerationMode))  # valid and invalid data
    return [result.ok() for result in schema.get_all_operations()]


def test_schema_lists_every_endpoint(client):
    paths = {(op.method.upper(), op.path) for op in operations(client)}
    assert {("GET", "/availability"), ("POST", "/book"), ("GET", "/health"), ("GET", "/ready")} <= paths


def test_api_conforms_to_its_schema(client):
    for operation in operations(client):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            case.call_and_validate()

        check()
