"""``/docs`` works offline and documents how to authenticate and sign webhooks."""

from __future__ import annotations

import re

import httpx


async def test_docs_use_only_packaged_assets(embedded: dict[str, httpx.AsyncClient]) -> None:
    for client in embedded.values():
        page = await client.get("/docs", headers={"Authorization": ""})
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
        assert any(url.endswith("swagger-ui-bundle.js") for url in urls), urls
        assert "/openapi.json" in urls
        for url in urls:
            assert url.startswith("/"), f"/docs loads {url} from elsewhere"
            asset = await client.get(url, headers={"Authorization": ""})
            assert asset.status_code == 200, url
            assert asset.content
        assert "//" not in " ".join(urls)  # no protocol-relative CDN links either


async def test_openapi_declares_the_bearer_scheme_where_it_applies(
    embedded: dict[str, httpx.AsyncClient],
) -> None:
    schema = (await embedded["router"].get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["apiKey"]
    assert scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"
    paths = schema["paths"]
    assert paths["/v1/tickets"]["post"]["security"] == [{"apiKey": []}]
    assert paths["/v1/tickets/{ticket_id}"]["get"]["security"] == [{"apiKey": []}]
    for open_path in ("/healthz", "/v1/webhooks/zendesk"):
        for operation in paths[open_path].values():
            assert "security" not in operation, open_path
    survey = (await embedded["survey"].get("/openapi.json")).json()
    assert "security" not in survey["paths"]["/s/{token}"]["post"]


async def test_webhook_endpoints_document_their_signature_headers(
    embedded: dict[str, httpx.AsyncClient],
) -> None:
    paths = (await embedded["router"].get("/openapi.json")).json()["paths"]
    expected = {
        "zendesk": {"X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp"},
        "freshdesk": {"Authorization", "X-Ticketflow-Token"},
        "jira": {"X-Hub-Signature"},
        "generic": {"webhook-id", "webhook-timestamp", "webhook-signature"},
    }
    for provider, headers in expected.items():
        operation = paths[f"/v1/webhooks/{provider}"]["post"]
        documented = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers <= documented, provider
        assert all(p["description"] for p in operation["parameters"])
        assert "application/json" in operation["requestBody"]["content"]
