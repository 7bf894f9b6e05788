"""Drive tests/openai_server.py with the real `openai` SDK."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from tests.openai_server import FakeOpenAI, _split_chunks

USER_HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server():
    with FakeOpenAI(token_delay=0.0) as srv:
        yield srv


@pytest.fixture
def client(server):
    c = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=5)
    yield c
    c.close()


def _stream_text(client, **kwargs):
    pieces, finish, usage = [], None, None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    return pieces, finish, usage


# -- happy paths -----------------------------------------------------------------


def test_base_url_and_port(server):
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.port > 0


def test_list_models(client):
    ids = [m.id for m in client.models.list()]
    assert ids == [
        "gpt-4o-mini",
        "gpt-4o",
        "davinci-002",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",
        "echo",
    ]
    assert client.models.retrieve("gpt-4o").owned_by == "test"


def test_custom_models():
    with FakeOpenAI(models=["only-one"], api_key=None) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="anything", max_retries=0)
        assert [m.id for m in c.models.list()] == ["only-one"]
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="gpt-4o", messages=USER_HI)
        # fault models stay available whatever the list
        with pytest.raises(openai.InternalServerError):
            c.chat.completions.create(model="fault-500", messages=USER_HI)


def test_stream_chat_echo(client):
    pieces, finish, usage = _stream_text(client, model="gpt-4o-mini", messages=USER_HI)
    assert "".join(pieces) == "Echo: hi"
    assert pieces == ["Echo:", " hi"]
    assert finish == "stop"
    assert usage is None  # not asked for


def test_stream_usage_chunk(client):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
    pieces, finish, usage = _stream_text(
        client, model="gpt-4o", messages=messages, stream_options={"include_usage": True}
    )
    assert "".join(pieces) == "Echo: hi there"
    assert usage.prompt_tokens == (2 + 3) + (2 + 3)
    assert usage.completion_tokens == len(pieces) == 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_last_user_message_and_content_parts(client):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Echo: first"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    pieces, _, _ = _stream_text(client, model="echo", messages=messages)
    assert "".join(pieces) == "Echo: second"


def test_tokens_n_words(client):
    pieces, finish, usage = _stream_text(
        client,
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "go [tokens=5]"}],
        stream_options={"include_usage": True},
    )
    assert pieces == ["w1", " w2", " w3", " w4", " w5"]
    assert "".join(pieces).split() == ["w1", "w2", "w3", "w4", "w5"]
    assert finish == "stop"
    assert usage.completion_tokens == 5


def test_max_tokens_cuts_with_length(client):
    pieces, finish, usage = _stream_text(
        client,
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "[tokens=10]"}],
        max_tokens=3,
        stream_options={"include_usage": True},
    )
    assert "".join(pieces) == "w1 w2 w3"
    assert finish == "length"
    assert usage.completion_tokens == 3
    # max_completion_tokens is honoured too
    r = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[tokens=10]"}], max_completion_tokens=2
    )
    assert r.choices[0].message.content == "w1 w2"
    assert r.choices[0].finish_reason == "length"


def test_stop_sequence(client):
    pieces, finish, _ = _stream_text(
        client, model="gpt-4o-mini", messages=[{"role": "user", "content": "[tokens=6]"}], stop=" w4"
    )
    assert "".join(pieces) == "w1 w2 w3"
    assert finish == "stop"
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "alpha beta gamma"}],
        stop=["gamma", "beta"],
    )
    assert r.choices[0].message.content == "Echo: alpha "
    assert r.choices[0].finish_reason == "stop"


def test_non_streaming_chat(client):
    r = client.chat.completions.create(model="gpt-4o", messages=USER_HI)
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "Echo: hi"
    assert r.choices[0].finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (4, 2, 6)


def test_non_streaming_completions(client):
    prompt = "Q: what?\nA: Echo: what?\nQ: hello world\nA:"
    r = client.completions.create(model="davinci-002", prompt=prompt)
    assert r.object == "text_completion"
    assert r.choices[0].text == "Echo: hello world"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == len(prompt.split())
    assert r.usage.completion_tokens == 3
    # no "Q: " line: the whole prompt is echoed
    r = client.completions.create(model="davinci-002", prompt="plain", max_tokens=1)
    assert r.choices[0].text == "Echo:"
    assert r.choices[0].finish_reason == "length"


def test_streaming_completions(client):
    texts, finish, usage = [], None, None
    stream = client.completions.create(
        model="ft:gpt-4o-mini-2024-07-18:acme::abc123",
        prompt="Q: [tokens=4]\nA:",
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            assert chunk.object == "text_completion"
            texts.append(choice.text)
            finish = choice.finish_reason or finish
    assert "".join(texts) == "w1 w2 w3 w4"
    assert finish == "stop"
    assert usage.completion_tokens == 4


def test_async_client_streams(server):
    async def run():
        c = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        try:
            out = []
            stream = await c.chat.completions.create(model="gpt-4o", messages=USER_HI, stream=True)
            async for chunk in stream:
                out.extend(ch.delta.content or "" for ch in chunk.choices)
            return "".join(out)
        finally:
            await c.close()

    # Its own thread: a session-wide Playwright browser may already run an event loop in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, run()).result() == "Echo: hi"


# -- errors and faults -------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_unknown_model_is_404(client, endpoint):
    with pytest.raises(openai.NotFoundError) as ei:
        if endpoint == "chat":
            client.chat.completions.create(model="nope", messages=USER_HI)
        else:
            client.completions.create(model="nope", prompt="hi")
    err = ei.value
    assert err.status_code == 404
    assert err.code == "model_not_found"
    assert err.type == "invalid_request_error"
    assert err.body["message"] == "The model `nope` does not exist or you do not have access to it."


@pytest.mark.parametrize("stream", [False, True])
def test_fault_401(client, stream):
    with pytest.raises(openai.AuthenticationError) as ei:
        client.chat.completions.create(model="fault-401", messages=USER_HI, stream=stream)
    assert ei.value.code == "invalid_api_key"


def test_fault_429(client):
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(model="fault-429", messages=USER_HI, stream=True)
    assert ei.value.response.headers["retry-after"] == "7"
    assert ei.value.code == "rate_limit_exceeded"


def test_fault_500(client):
    with pytest.raises(openai.InternalServerError) as ei:
        client.completions.create(model="fault-500", prompt="hi")
    assert ei.value.status_code == 500
    assert ei.value.type == "server_error"


def test_fault_slow_times_out(client):
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="fault-slow", messages=USER_HI, stream=True, timeout=0.5)
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_fault_break_raises_after_partial_content(client, endpoint):
    got = []
    # httpx RemoteProtocolError ("incomplete chunked read") wrapped by the SDK
    with pytest.raises(openai.APIConnectionError) as ei:
        if endpoint == "chat":
            for chunk in client.chat.completions.create(model="fault-break", messages=USER_HI, stream=True):
                got.append(chunk.choices[0].delta.content)
        else:
            for chunk in client.completions.create(model="fault-break", prompt="hi", stream=True):
                got.append(chunk.choices[0].text)
    assert type(ei.value) is openai.APIConnectionError  # not the APITimeoutError subclass
    assert "".join(got) == "Partial one two"


def test_fault_break_non_streaming(client):
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="fault-break", messages=USER_HI)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_fault_malformed_raises_after_partial_content(client, endpoint):
    got = []
    # the SDK does not wrap it: a bare json.JSONDecodeError (a ValueError) from the SSE data
    with pytest.raises(json.JSONDecodeError):
        if endpoint == "chat":
            for chunk in client.chat.completions.create(model="fault-malformed", messages=USER_HI, stream=True):
                got.append(chunk.choices[0].delta.content)
        else:
            for chunk in client.completions.create(model="fault-malformed", prompt="hi", stream=True):
                got.append(chunk.choices[0].text)
    assert got == ["Partial"]


def test_fault_notext_sends_no_usage(client):
    pieces, finish, usage = _stream_text(
        client, model="fault-notext", messages=USER_HI, stream_options={"include_usage": True}
    )
    assert "".join(pieces) == "Echo: hi"
    assert finish == "stop"
    assert usage is None
    r = client.chat.completions.create(model="fault-notext", messages=USER_HI)
    assert r.choices[0].message.content == "Echo: hi"
    assert r.usage is None


def test_wrong_api_key(server):
    c = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as ei:
        c.models.list()
    assert ei.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="gpt-4o", messages=USER_HI, stream=True)


def test_auth_disabled():
    with FakeOpenAI(api_key=None) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="whatever", max_retries=0)
        assert c.chat.completions.create(model="echo", messages=USER_HI).choices[0].message.content == "Echo: hi"


# -- bookkeeping, timing, lifecycle --------------------------------------------------


def test_requests_are_recorded(server, client):
    client.chat.completions.create(model="gpt-4o", messages=USER_HI, temperature=0.5)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x")
    client.models.list()
    assert [(r["method"], r["path"]) for r in server.requests] == [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("GET", "/v1/models"),
    ]
    first = server.requests[0]
    assert first["body"] == {"model": "gpt-4o", "messages": USER_HI, "temperature": 0.5}
    assert first["headers"]["authorization"] == "Bearer sk-test"
    assert first["headers"]["content-type"] == "application/json"
    assert server.requests[1]["body"] == {"model": "nope", "prompt": "x"}
    assert server.requests[2]["body"] is None


def test_delays():
    with FakeOpenAI(token_delay=0.05, first_token_delay=0.2) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0)
        t0 = time.monotonic()
        stamps = []
        for chunk in c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[tokens=3]"}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                stamps.append(time.monotonic() - t0)
        assert len(stamps) == 3
        assert stamps[0] >= 0.19
        assert stamps[2] - stamps[0] >= 0.09
        assert stamps[2] < 1.5


def test_close_is_prompt_while_slow_request_sleeps():
    srv = FakeOpenAI().start()
    c = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0, timeout=10)
    errors = []

    def call():
        try:
            c.chat.completions.create(model="fault-slow", messages=USER_HI)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    deadline = time.monotonic() + 2
    while not srv.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.requests, "request never arrived"
    t0 = time.monotonic()
    srv.close()
    assert time.monotonic() - t0 < 1
    assert not srv.running
    t.join(3)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], openai.APIConnectionError)
    srv.close()  # idempotent


def test_split_chunks_roundtrip():
    for text in ["Echo: hi", "  lead", "trail  ", "a\nb  c", "", "   "]:
        assert "".join(_split_chunks(text)) == text


def test_script_mode():
    script = Path(__file__).with_name("openai_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--token-delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        c = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=5)
        assert c.chat.completions.create(model="echo", messages=USER_HI).choices[0].message.content == "Echo: hi"
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()
