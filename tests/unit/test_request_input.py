"""Requests that cannot be read get answers that say why: malformed JSON, content types,
oversized chunked bodies, trailing slashes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from tests.unit.test_embedded_api import TICKET, assert_error


async def test_malformed_json_says_where_it_breaks(embedded: dict[str, httpx.AsyncClient]) -> None:
    router = embedded["router"]
    body = b'{\n  "subject": "Hello",\n  "channel": "chat"\n  "requester": {}\n}'
    error = assert_error(
        await router.post(
            "/v1/tickets", content=body, headers={"content-type": "application/json"}
        ),
        422,
        "validation_error",
    )
    assert error["message"] == (
        "body is not valid JSON: expecting ',' delimiter at line 4, column 3"
    )
    assert error["details"][0]["field"] == "body"
    assert error["details"][0]["type"] == "json_invalid"


async def test_json_endpoints_answer_415_for_another_content_type(
    embedded: dict[str, httpx.AsyncClient],
) -> None:
    router, sla = embedded["router"], embedded["sla"]
    wrong = await router.post("/v1/tickets", data={"subject": "form-encoded"})
    error = assert_error(wrong, 415, "unsupported_media_type")
    assert error["message"] == (
        "Content-Type must be application/json; the request has application/x-www-form-urlencoded"
    )
    assert wrong.headers["accept-post"] == "application/json"
    missing = await sla.post("/v1/calendars", content=b'{"name": "x"}')
    assert "the request has none" in assert_error(missing, 415, "unsupported_media_type")["message"]
    patch = await router.patch(
        "/v1/tickets/api:x", content=b"status=solved", headers={"content-type": "text/plain"}
    )
    assert_error(patch, 415, "unsupported_media_type")
    assert patch.headers["accept-patch"] == "application/json"
    # JSON with a charset, or a +json type, is JSON.
    created = await router.post(
        "/v1/tickets",
        content=httpx.Request("POST", "/", json=TICKET).content,
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert created.status_code == 201, created.text


async def test_webhooks_and_form_pages_judge_their_own_bodies(
    embedded: dict[str, httpx.AsyncClient],
) -> None:
    # A webhook's content type is the helpdesk's business: no secret here, so 401, not 415.
    hook = await embedded["router"].post(
        "/v1/webhooks/zendesk", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert hook.status_code == 401, hook.text
    # The survey page posts a form.
    page = await embedded["survey"].post("/s/" + "x" * 43, data={"score": "5"})
    assert page.status_code == 404, page.text


async def test_chunked_body_over_one_mib_is_413(embedded: dict[str, httpx.AsyncClient]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b" " * 65536  # 17 * 64 KiB > 1 MiB, with no Content-Length

    for client, path in (
        (embedded["router"], "/v1/tickets"),
        (embedded["sla"], "/v1/calendars"),
    ):
        response = await client.post(
            path, content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")


async def test_trailing_slash_is_a_json_404_not_a_redirect(
    embedded: dict[str, httpx.AsyncClient],
) -> None:
    router = embedded["router"]
    response = await router.patch("/v1/tickets/", json={"status": "solved"})
    error = assert_error(response, 404, "not_found")
    assert "try /v1/tickets" in error["message"]
    assert_error(await router.get("/v1/agents/"), 404, "not_found")
    assert_error(await router.get("/v1/nothing/"), 404, "not_found")
