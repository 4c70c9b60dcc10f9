"""What the API port gives a stranger, and what the operations port gives anyone (issue 12).

The API runs as a real process on a migrated database of the test's own.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.query_api.app import create_app
from services.query_api.auth import sign
from tests.e2e.conftest import JWT_SECRET
from tests.support.jwks import AUDIENCE, ISSUER, identity_provider
from tests.support.processes import ApiProcess
from tests.unit.test_auth import KEY, REFUSED

PUBLIC = {"/healthz", "/readyz", "/openapi.json"}
"""All a caller without a token may read from the API port."""
DOCUMENT_VIEWERS = {"/docs", "/docs/oauth2-redirect", "/redoc"}
"""Pages that render the OpenAPI document in a browser; they hold no data."""


def start(database_url: str, tmp_path: Path, **env: str) -> ApiProcess:
    api = ApiProcess(database_url, tmp_path, JWT_SECRET, env)
    api.start()
    return api


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[ApiProcess]:
    process = start(database_url, tmp_path)
    yield process
    process.stop()


def concrete(path: str) -> str:
    """A route template with every parameter filled in."""
    for name in ("organization_id", "scenario_id", "run_id", "module_id"):
        path = path.replace("{" + name + "}", "x-1")
    assert "{" not in path, f"a parameter this test does not fill: {path}"
    return path


async def test_a_stranger_gets_only_health_readiness_and_the_openapi_document(
    api: ApiProcess,
) -> None:
    app = create_app()
    data_paths = set(app.openapi()["paths"])
    assert len(data_paths) >= 8
    operators = {path for path in data_paths if path.startswith("/v1/operator/")}
    assert operators == {"/v1/operator/reconciliation"}
    assert all(
        path.startswith("/v1/organizations/{organization_id}") for path in data_paths - operators
    )
    top = {str(getattr(route, "path", "")) for route in app.routes} - {""}
    assert top <= {"/openapi.json"} | DOCUMENT_VIEWERS, "an unexpected route"
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as stranger:
        for path in sorted(PUBLIC):
            assert (await stranger.get(path)).status_code == 200, path
        for template in sorted(data_paths):
            response = await stranger.get(concrete(template))
            assert response.status_code == 401, template
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["status"] == 401
        for path in ("/metrics", "/v1/organizations", "/admin", "/v1/x/../../metrics"):
            assert (await stranger.get(path)).status_code in (401, 404), path
        assert (await stranger.get("/metrics")).status_code == 404


def scraped(text: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name and not name.startswith("#")
    }


async def test_usage_gauges_are_read_at_most_once_per_interval_whatever_the_scrape_rate(
    database_url: str, tmp_path: Path
) -> None:
    api = start(database_url, tmp_path, METERING_API_USAGE_GAUGE_REFRESH_S="3600")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(50):
                text = (await client.get(api.metrics_url)).text
        assert scraped(text)["api_usage_gauge_refreshes_total"] == 1
        assert scraped(text)["api_usage_gauge_refresh_errors_total"] == 0
    finally:
        api.stop()


async def test_metrics_listen_only_on_the_configured_address(
    database_url: str, tmp_path: Path
) -> None:
    api = start(database_url, tmp_path, METERING_API_METRICS_HOST="127.0.0.2")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(api.metrics_url)).status_code == 200
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", api.metrics_port), 2),
        ):
            pass
    finally:
        api.stop()


async def test_past_the_rate_limit_a_token_gets_429_with_retry_after_and_others_do_not(
    database_url: str, tmp_path: Path
) -> None:
    api = start(database_url, tmp_path, METERING_API_RATE_LIMIT="5/minute")
    busy = {"Authorization": f"Bearer {sign('org-a', JWT_SECRET)}"}
    calm = {"Authorization": f"Bearer {sign('org-b', JWT_SECRET)}"}
    try:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
            answers = [
                (await client.get("/v1/organizations/org-a/usage", headers=busy)).status_code
                for _ in range(5)
            ]
            refused = await client.get("/v1/organizations/org-a/usage", headers=busy)
            other = await client.get("/v1/organizations/org-b/usage", headers=calm)
            probes = [(await client.get("/healthz")).status_code for _ in range(10)]
    finally:
        api.stop()
    assert 429 not in answers
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["status"] == 429
    assert other.status_code != 429
    assert probes == [200] * 10


async def test_oversized_queries_bodies_and_pages_are_refused(api: ApiProcess) -> None:
    token = {"Authorization": f"Bearer {sign('org-a', JWT_SECRET)}"}
    async with httpx.AsyncClient(base_url=api.base_url, headers=token, timeout=10) as client:
        long_query = await client.get(f"/v1/organizations/org-a/usage?x={'a' * 5000}")
        body = await client.request("GET", "/v1/organizations/org-a/usage", content=b"x" * 100_000)
        page = await client.get("/v1/organizations/org-a/scenarios?limit=101")
        fine = await client.get("/v1/organizations/org-a/scenarios?limit=100")
    assert long_query.status_code == 414
    assert body.status_code == 413
    assert long_query.json()["status"] == 414
    assert body.json()["status"] == 413
    assert page.status_code == 422
    assert fine.status_code == 200


OTHER_ORGANIZATION_SPELLINGS = [
    "%6Frg-b",  # org-b, one letter percent-encoded
    "org%2Db",  # org-b, the hyphen percent-encoded
    "ORG-A",  # ids are case-sensitive: another organization
    "org-a%2F..%2Forg-b",  # a slash inside the id (REVIEW D4)
    "org-a%2Forg-b",
    "org-a%00",
    "org-a%20",
    "org-%EF%BD%81",  # org- and a fullwidth a
    "..%2Forg-b",
]


@pytest.mark.parametrize("spelling", OTHER_ORGANIZATION_SPELLINGS)
async def test_an_organization_token_reads_no_other_organization_however_it_is_spelled(
    api: ApiProcess, spelling: str
) -> None:
    token = {"Authorization": f"Bearer {sign('org-a', JWT_SECRET)}"}
    async with httpx.AsyncClient(base_url=api.base_url, headers=token, timeout=10) as client:
        for tail in ("/usage", "/scenarios", "/runs/run-1"):
            response = await client.get(f"/v1/organizations/{spelling}{tail}")
            assert response.status_code in (403, 404, 422), (spelling, tail, response.text)


async def test_the_own_organization_percent_encoded_is_still_the_own_organization(
    api: ApiProcess,
) -> None:
    token = {"Authorization": f"Bearer {sign('org-a', JWT_SECRET)}"}
    async with httpx.AsyncClient(base_url=api.base_url, headers=token, timeout=10) as client:
        assert (await client.get("/v1/organizations/%6Frg-a/usage")).status_code == 200


async def test_cross_organization_reads_need_the_operator_scope(api: ApiProcess) -> None:
    operator = {"Authorization": f"Bearer {sign(None, JWT_SECRET, operator=True)}"}
    nobody = {"Authorization": f"Bearer {sign(None, JWT_SECRET)}"}
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        for org in ("org-a", "org-b"):
            path = f"/v1/organizations/{org}/usage"
            assert (await client.get(path, headers=operator)).status_code == 200
            assert (await client.get(path, headers=nobody)).status_code == 403
        own = {"Authorization": f"Bearer {sign('org-a', JWT_SECRET)}"}
        for headers, status in ((operator, 200), (nobody, 403), (own, 403)):
            response = await client.get("/v1/operator/reconciliation", headers=headers)
            assert response.status_code == status, response.text


async def test_rs256_from_a_jwks_url_serves_valid_tokens_and_refuses_each_bad_one(
    database_url: str, tmp_path: Path
) -> None:
    with identity_provider(KEY) as idp:
        api = start(
            database_url,
            tmp_path,
            METERING_API_JWT_JWKS_URL=idp.url,
            METERING_API_JWT_AUDIENCE=AUDIENCE,
            METERING_API_JWT_ISSUER=ISSUER,
            METERING_API_JWT_JWKS_REFRESH_COOLDOWN_S="0",
        )
        try:
            async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:

                async def usage(token: str) -> httpx.Response:
                    headers = {"Authorization": f"Bearer {token}"}
                    return await client.get("/v1/organizations/org-a/usage", headers=headers)

                assert (await usage(KEY.token())).status_code == 200
                refused = {case: await usage(make()) for case, make in REFUSED.items()}
                hs256 = await usage(sign("org-a", JWT_SECRET))
        finally:
            api.stop()
    assert "tokens: RS256 from http://127.0.0.1" in api.log()
    for case, response in {**refused, "HS256 with the local secret": hs256}.items():
        assert response.status_code == 401, case
        assert response.headers["content-type"].startswith("application/problem+json"), case
        assert response.json()["title"] == "Unauthorized", case
        assert response.headers["www-authenticate"] == "Bearer", case


async def test_hs256_says_at_start_that_it_is_for_local_use(api: ApiProcess) -> None:
    assert "HS256 with a shared secret" in api.log()
    assert "for local use only" in api.log()


def test_rs256_without_audience_or_issuer_does_not_start(database_url: str, tmp_path: Path) -> None:
    api = ApiProcess(
        database_url,
        tmp_path,
        JWT_SECRET,
        {"METERING_API_JWT_JWKS_URL": "http://127.0.0.1:9/jwks.json"},
    )
    with pytest.raises(RuntimeError, match="METERING_API_JWT_AUDIENCE and METERING_API_JWT_ISSUER"):
        api.start()
