"""A header removed by the caller (a None value) is not sent, not even by the HTTP library.

urllib3 and aiohttp add a ``User-Agent`` of their own (naming their and Python's versions) when
a request has none, and aiohttp a ``Content-Type: application/octet-stream`` for a body: a
caller who removed ours must not get theirs instead.
"""

from __future__ import annotations

from typing import Any


def test_removed_user_agent_and_content_type_are_not_replaced(api: Any, server: Any) -> None:
    server.reply_embeddings()
    client = api.make(default_headers={"User-Agent": None})
    client.embeddings.create(inputs="a", extra_headers={"content-type": None, "X-Kept": "1"})
    sent = server.requests[-1].headers
    assert "User-Agent" not in sent, dict(sent)
    assert "Content-Type" not in sent, dict(sent)
    assert sent["X-Kept"] == "1"
    assert sent["Authorization"].startswith("Bearer ")


def test_our_user_agent_is_the_only_one_by_default(api: Any, server: Any) -> None:
    server.reply_embeddings()
    api.client.embeddings.create(inputs="a")
    sent = server.requests[-1].headers
    assert sent.getlist("User-Agent") == [sent["User-Agent"]]
    assert sent["User-Agent"].startswith("aligneai-python/")
    assert sent["Content-Type"] == "application/json"
