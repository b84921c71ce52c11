"""The JSON API fuzzed from its own description (issue #21: "fuzzed from its own OpenAPI schema
with schemathesis, with no 5xx").

Schemathesis reads ``/api/openapi.json`` from a running server and, for every operation,
sends generated requests (valid and invalid bodies, paths and queries) with an admin's API
token. Each response must not be a server error, must use a status code the document
declares, and must match the declared content type and schema. The example count is bounded
(``EXAMPLES`` per operation) so the module runs in a minute or two; set
``POSTROOM_FUZZ_EXAMPLES`` higher for a longer hunt.

The loopback ``http`` listener is used (the web interface answers loopback clients there),
so TLS, tested elsewhere, is not what the fuzzer spends its time on.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
from browser_server import DOMAIN, WebServer, write_web_config

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

EXAMPLES = int(os.environ.get("POSTROOM_FUZZ_EXAMPLES", "20"))
ADMIN, ADMIN_PW = f"fuzz-admin@{DOMAIN}", "fuzz-admin-secret-1"
USER = f"fuzz-user@{DOMAIN}"
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    pytest.importorskip("aiohttp")
    with closing(WebServer(write_web_config(tmp_path_factory.mktemp("webfuzz")))) as h:
        if not h.web_mounted():
            pytest.skip("this build does not serve the web interface (GET /login is not 200)")
        h.add_user(ADMIN, ADMIN_PW, admin=True)
        h.add_user(USER, "fuzz-user-secret-1")  # something for the user routes to find
        yield h


@pytest.fixture(scope="module")
def token(srv: WebServer) -> str:
    return srv.api_token(ADMIN)


@pytest.fixture(scope="module")
def base_url(srv: WebServer) -> str:
    return f"http://127.0.0.1:{srv.ports['http']}"


@pytest.fixture(scope="module")
def api_doc(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/api/openapi.json", timeout=30) as r:
        doc: dict[str, Any] = json.loads(r.read())
    assert doc["paths"], "the OpenAPI document lists no operations"
    return doc


@pytest.fixture(scope="module")
def api_schema(api_doc: dict[str, Any], base_url: str) -> Any:
    schema = schemathesis.openapi.from_dict(api_doc)
    schema.config.update(base_url=base_url)
    return schema


def test_openapi_document_is_valid(api_doc: dict[str, Any]) -> None:
    """The document itself: OpenAPI 3, every operation with a summary, an operationId that is
    unique, and its error responses described."""
    assert api_doc["openapi"].startswith("3.")
    seen = set()
    for path, item in api_doc["paths"].items():
        assert path.startswith("/api/v1/"), path
        for method, op in item.items():
            if method not in ("get", "put", "post", "delete", "patch"):
                continue
            assert op.get("summary"), (method, path)
            assert op["operationId"] not in seen, op["operationId"]
            seen.add(op["operationId"])
            assert "401" in op["responses"], (method, path)


def operations(schema: Any) -> list[Any]:
    ops = [result.ok() for result in schema.get_all_operations()]
    assert ops
    return ops


def fuzz(op: Any, examples: int, mode: Any, check: Callable[[Any], None]) -> None:
    """Run ``check`` on ``examples`` generated requests of operation ``op`` (Hypothesis shrinks a
    failure to its smallest request). Driven by hand rather than through schemathesis' pytest
    plugin, whose lazy fixture loader does not work under pytest 9."""

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    def run(case: Any) -> None:
        check(case)
    run()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_fuzz(api_schema: Any, token: str, mode: str) -> None:
    """Generated requests with the admin's token, valid (``positive``) and invalid
    (``negative``): no 5xx, only declared statuses, content types and schemas."""
    from schemathesis import GenerationMode

    auth = {"Authorization": f"Bearer {token}"}
    failures = []
    for op in operations(api_schema):
        try:
            fuzz(op, EXAMPLES, GenerationMode(mode),
                 lambda case: case.call_and_validate(headers=auth, checks=CHECKS, timeout=30))
        except Exception as exc:  # noqa: BLE001 - collected, so one run reports every operation's failure
            failures.append(f"{op.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_api_fuzz_without_token(api_schema: Any) -> None:
    """The same operations with no credentials: 401 every time, whatever the request."""
    from schemathesis import GenerationMode

    def refused(case: Any) -> None:
        response = case.call(timeout=30)
        assert response.status_code == 401, (case.method, case.formatted_path, response.status_code)
    for op in operations(api_schema):
        fuzz(op, max(EXAMPLES // 4, 3), GenerationMode.POSITIVE, refused)
