"""Regression tests of the review of issue #13 item 3, through both clients and the wire.

- 2: a hand-built `CallOptions` for ``client.runner`` is checked before anything is sent;
- 3: the retry-count header is always sent, and refused in extra_headers and default_headers;
- 4: ``with_options(timeout=n)`` over a client built with a number equals ``timeout=n``;
- 6: NOT_GIVEN means the default for every constructor argument and extra_* per call; mypy
  accepts it for the constructors.
"""

from __future__ import annotations

import inspect
import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest

import aligneai
from aligneai import NOT_GIVEN, AligneAI, Timeout
from aligneai.core import CallOptions, list_models
from aligneai.core.errors import InvalidArgumentTypeError, InvalidArgumentValueError
from aligneai.core.flow import Send

from ._mypy_snippet import marked_lines, run_mypy_strict


def _finish(api: Any, value: Any) -> Any:
    # The runner is no facade the harness wraps: run an async one's coroutine here.
    return api.loop.run_until_complete(value) if inspect.isawaitable(value) else value


def test_a_hand_built_call_options_is_checked_before_sending(
    api: Any, server: Any, wire: Any
) -> None:
    server.reply("/models", wire.json_response({"error": {"message": "busy"}}, status=503))
    with pytest.raises(InvalidArgumentTypeError) as info:
        api.client.runner.request(list_models(), CallOptions(max_retries=None))  # type: ignore[arg-type]
    assert info.value.argument == "max_retries"
    with pytest.raises(InvalidArgumentTypeError) as info:
        api.client.runner.request(list_models(), CallOptions(extra_headers={"X": 5}))  # type: ignore[dict-item]
    assert info.value.argument == "extra_headers"
    assert server.count == 0


def test_a_hand_built_call_options_is_used_as_given(api: Any, server: Any, wire: Any) -> None:
    server.reply("/models", wire.json_response({"error": {"message": "busy"}}, status=503))
    options = CallOptions(max_retries=1, extra_headers={"X-Team": "a"}, extra_query={"tag": "t"})
    with pytest.raises(aligneai.InternalServerError, match="busy"):
        _finish(api, api.client.runner.request(list_models(), options))
    assert server.count == 2
    first = server.requests[0]
    assert first.headers["X-Team"] == "a" and first.args.get("tag") == "t"


@pytest.mark.parametrize("value", [None, "7"])
def test_the_retry_count_cannot_be_set_or_removed_per_call(
    api: Any, server: Any, value: Any
) -> None:
    server.reply_embeddings()
    for call in (
        lambda: api.client.embeddings.create(
            inputs="a", extra_headers={"X-AligneAI-Retry-Count": value}
        ),
        lambda: api.client.models.list(extra_headers={"x-aligneai-retry-count": value}),
    ):
        with pytest.raises(InvalidArgumentValueError) as info:
            call()
        assert info.value.argument == "extra_headers"
        assert "always sent" in str(info.value)
    assert server.count == 0


@pytest.mark.parametrize("value", [None, "7"])
def test_the_retry_count_cannot_be_set_or_removed_for_every_call(api: Any, value: Any) -> None:
    for build in (
        lambda: api.make(default_headers={"X-AligneAI-Retry-Count": value}),
        lambda: api.client.with_options(default_headers={"X-AligneAI-Retry-Count": value}),
    ):
        with pytest.raises(InvalidArgumentValueError) as info:
            build()
        assert info.value.argument == "default_headers"
        assert "always sent" in str(info.value) and "extra_headers" not in str(info.value)


def test_the_retry_count_is_sent_on_every_attempt(api: Any, server: Any, wire: Any) -> None:
    server.reply("/models", wire.json_response({"error": {"message": "busy"}}, status=503))
    with pytest.raises(aligneai.InternalServerError, match="busy"):
        api.make(max_retries=2).models.list()
    assert [r.headers["X-AligneAI-Retry-Count"] for r in server.requests] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("first", "then", "expected"),
    [
        (1, 60, Timeout(connect=5, read=60, total=None)),
        (0.5, 3, Timeout(connect=3, read=3, total=None)),
        (Timeout(connect=2, total=30), 60, Timeout(connect=2, read=60, total=30)),
    ],
)
def test_a_number_over_a_client_built_with_a_number(
    api: Any, first: Any, then: float, expected: Timeout
) -> None:
    client = api.make(timeout=first)
    assert client.with_options(timeout=then).timeout == expected
    assert client.with_options(timeout=1).with_options(timeout=then).timeout == expected
    if not isinstance(first, Timeout):
        assert client.with_options(timeout=then).timeout == api.make(timeout=then).timeout


def test_a_per_call_number_over_a_client_built_with_a_number(api: Any) -> None:
    client = api.make(timeout=1)
    flow = client._preparer.flow(list_models(), CallOptions(timeout=60))
    action = next(flow)
    flow.close()
    assert isinstance(action, Send)
    assert action.request.timeout == Timeout(connect=5, read=60, total=None)


def test_a_pickled_client_keeps_the_uncapped_connect() -> None:
    client = AligneAI(api_key="sk-x", base_url="http://127.0.0.1:9/v1", timeout=1)
    try:
        copy = pickle.loads(pickle.dumps(client))
        try:
            assert copy.timeout == Timeout(connect=1, read=1, total=None)
            assert copy.with_options(timeout=60).timeout == Timeout(connect=5, read=60)
        finally:
            copy.close()
    finally:
        client.close()


def test_not_given_is_the_default_for_every_constructor_argument(
    api: Any, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNEAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("ALIGNEAI_BASE_URL", server.base_url)
    server.reply_embeddings()
    client = api.make(
        api_key=NOT_GIVEN,
        base_url=NOT_GIVEN,
        timeout=NOT_GIVEN,
        max_retries=NOT_GIVEN,
        default_headers=NOT_GIVEN,
        transport=NOT_GIVEN,
        max_connections=NOT_GIVEN,
        max_response_bytes=NOT_GIVEN,
    )
    assert client.timeout == Timeout(connect=5, read=60, total=None)
    assert client.max_retries == 2
    assert client.base_url == server.base_url
    client.embeddings.create(inputs="a")
    (request,) = server.requests
    assert request.headers["Authorization"] == "Bearer sk-from-env"


def test_not_given_extras_per_call_are_no_extras(api: Any, server: Any, wire: Any) -> None:
    server.reply_embeddings()
    server.reply("/models", wire.json_response({"object": "list", "data": []}))
    api.client.embeddings.create(
        inputs="a", extra_headers=NOT_GIVEN, extra_query=NOT_GIVEN, extra_body=NOT_GIVEN
    )
    api.client.embeddings.create(inputs="a")
    api.client.models.list(extra_headers=NOT_GIVEN, extra_query=NOT_GIVEN)
    first, second, third = server.requests
    assert first.get_json() == second.get_json() == {"inputs": "a", "encoding_format": "base64"}
    assert first.query_string == second.query_string == third.query_string == b""

    def sent(request: Any) -> set[str]:
        return {name.lower() for name, _ in request.headers.items()} - {"idempotency-key"}

    assert sent(first) == sent(second)


SNIPPET = textwrap.dedent(
    """
    from __future__ import annotations

    from aligneai import NOT_GIVEN, AligneAI, AsyncAligneAI

    AligneAI(
        api_key=NOT_GIVEN, base_url=NOT_GIVEN, timeout=NOT_GIVEN, max_retries=NOT_GIVEN,
        default_headers=NOT_GIVEN, transport=NOT_GIVEN, max_connections=NOT_GIVEN,
        max_response_bytes=NOT_GIVEN,
    )
    AsyncAligneAI(
        api_key=NOT_GIVEN, base_url=NOT_GIVEN, timeout=NOT_GIVEN, max_retries=NOT_GIVEN,
        default_headers=NOT_GIVEN, transport=NOT_GIVEN, max_connections=NOT_GIVEN,
        max_response_bytes=NOT_GIVEN,
    )
    AligneAI(timeout="5")  # E
    """
)


@pytest.mark.slow  # a cold mypy run over the package: 20-40 s
def test_mypy_accepts_not_given_for_the_constructors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_mypy_strict(SNIPPET, tmp_path, monkeypatch)
    # NOT_GIVEN passes; a str timeout still does not.
    assert run.lines == marked_lines(SNIPPET), run.stdout


@pytest.mark.parametrize("name", ["Idempotency-Key", "idempotency-key"])
def test_a_fixed_idempotency_key_for_every_call_is_refused(name: str) -> None:
    # A server that deduplicates by key would answer every later call with the first one's
    # result: the key is given per call (extra_headers), never client-wide.
    with pytest.raises(aligneai.InvalidArgumentValueError, match="default_headers"):
        aligneai.AligneAI(api_key="k", default_headers={name: "fixed-key"})
    client = aligneai.AligneAI(api_key="k")
    with pytest.raises(aligneai.InvalidArgumentValueError, match="extra_headers"):
        client.with_options(default_headers={name: "fixed-key"})
    client.close()
