"""Providers against a real OpenAI-compatible server on loopback, through the real openai SDK."""

import socket

import pytest

from playground.core.messages import Message
from playground.core.params import SamplingParams
from playground.providers import EndpointConfig, ProviderError
from playground.providers.openai import make_provider, probe_local_servers

KEY = "sk-test"
HI = [Message(role="user", content="hi")]


def provider_for(server, environ=None, **config):
    endpoint = EndpointConfig(name="local", base_url=server.base_url, api_key_env="LOCAL_KEY", **config)
    return make_provider(endpoint, {"LOCAL_KEY": KEY} if environ is None else environ)


def chat_requests(server):
    return [r for r in server.requests if r["path"].endswith("/chat/completions")]


def drain(stream):
    return "".join(stream)


def test_list_models_merges_the_server_list_with_configured_models(fake_server):
    provider = provider_for(fake_server, models=["my-own-model"], completion_models=["my-base-model"])

    models = provider.list_models()

    assert {"gpt-4o-mini", "davinci-002", "ft:gpt-4o-mini-2024-07-18:acme::abc123"} <= set(models)
    assert {"my-own-model", "my-base-model"} <= set(models)
    assert models == sorted(set(models))


def test_stream_chat_joins_to_the_reply_with_usage_from_the_api(fake_server):
    stream = provider_for(fake_server).stream_chat("gpt-4o-mini", HI, SamplingParams())

    pieces = list(stream)

    assert len(pieces) > 1
    assert "".join(pieces) == "Echo: hi"
    assert stream.finish_reason == "stop"
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (4, 2)
    assert stream.first_token_at is not None and stream.first_token_at >= stream.started_at


@pytest.mark.parametrize("params, expected", [
    (SamplingParams(),
     {"temperature": 1.0, "top_p": 1.0, "max_tokens": 512, "presence_penalty": 0.0, "frequency_penalty": 0.0}),
    (SamplingParams(temperature=0.2, max_tokens=30, stop=["\n", "END"], seed=42),
     {"temperature": 0.2, "top_p": 1.0, "max_tokens": 30, "presence_penalty": 0.0, "frequency_penalty": 0.0,
      "stop": ["\n", "END"], "seed": 42}),
    (SamplingParams(seed=0),
     {"temperature": 1.0, "top_p": 1.0, "max_tokens": 512, "presence_penalty": 0.0, "frequency_penalty": 0.0,
      "seed": 0}),
])
def test_stream_chat_sends_exactly_the_chosen_parameters(fake_server, params, expected):
    messages = [Message(role="system", content="Be brief."), *HI]

    drain(provider_for(fake_server).stream_chat("gpt-4o-mini", messages, params))

    [request] = chat_requests(fake_server)
    assert request["body"] == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **expected,
    }
    assert request["headers"]["authorization"] == f"Bearer {KEY}"


def test_stream_completion_calls_the_completions_endpoint_for_a_base_model(fake_server):
    provider = provider_for(fake_server, completion_models=["davinci-002"])
    assert provider.is_completion_model("davinci-002")
    assert not provider.is_completion_model("gpt-4o-mini")

    stream = provider.stream_completion("davinci-002", "Q: Where?\nA:", SamplingParams(stop=["\n"]))

    assert drain(stream) == "Echo: Where?"
    assert stream.finish_reason == "stop"
    assert stream.usage.completion_tokens == 2
    [request] = fake_server.requests
    assert request["path"] == "/v1/completions"
    assert request["body"]["prompt"] == "Q: Where?\nA:"
    assert request["body"]["stop"] == ["\n"]
    assert request["body"]["stream_options"] == {"include_usage": True}


def test_max_tokens_cuts_the_reply_with_finish_reason_length(fake_server):
    stream = provider_for(fake_server).stream_chat(
        "gpt-4o-mini", [Message(role="user", content="[tokens=20]")], SamplingParams(max_tokens=5))

    assert drain(stream) == "w1 w2 w3 w4 w5"
    assert stream.finish_reason == "length"
    assert stream.usage.completion_tokens == 5


@pytest.mark.parametrize("model, kind, status, phrases", [
    ("fault-401", "auth", 401, ["local", "rejected", "$LOCAL_KEY", "Check the key"]),
    ("no-such-model", "not_found", 404, ["local", "no model 'no-such-model'", "Pick one from the Model list"]),
    ("fault-429", "rate_limit", 429, ["local", "rate-limiting", "Wait 7 s and try again"]),
    ("fault-500", "server", 500, ["local", "server error (500)", "Try again", "server's logs"]),
])
def test_an_http_error_is_explained_before_any_text(fake_server, model, kind, status, phrases):
    provider = provider_for(fake_server)

    with pytest.raises(ProviderError) as caught:
        provider.stream_chat(model, HI, SamplingParams())

    error = caught.value
    assert (error.kind, error.status) == (kind, status)
    for phrase in phrases:
        assert phrase in str(error)
    assert fake_server.base_url in str(error)
    assert KEY not in str(error)
    assert error.retry_after == (7 if kind == "rate_limit" else None)


@pytest.mark.parametrize("call", ["list_models", "stream_chat"])
def test_a_base_url_without_v1_is_explained_as_a_wrong_url_not_a_missing_model(fake_server, call):
    provider = make_provider(EndpointConfig(name="local", base_url=fake_server.url, api_key_env="LOCAL_KEY"),
                             {"LOCAL_KEY": KEY})

    with pytest.raises(ProviderError) as caught:
        if call == "list_models":
            provider.list_models()
        else:
            provider.stream_chat("gpt-4o-mini", HI, SamplingParams())

    assert caught.value.kind == "not_found"
    assert "no model" not in str(caught.value)
    assert "base URL" in str(caught.value) and "/v1" in str(caught.value)


def test_each_failed_request_is_sent_once_without_retries(fake_server):
    with pytest.raises(ProviderError):
        provider_for(fake_server).stream_chat("fault-500", HI, SamplingParams())

    assert len(chat_requests(fake_server)) == 1


def test_a_closed_port_is_a_connection_error_that_says_to_start_the_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(EndpointConfig(name="vllm", base_url=f"http://127.0.0.1:{port}/v1"), {})

    with pytest.raises(ProviderError) as caught:
        provider.stream_chat("gpt-4o-mini", HI, SamplingParams())

    assert caught.value.kind == "connection"
    assert "Cannot connect to vllm" in str(caught.value)
    assert "Is the server running?" in str(caught.value)


def test_a_closed_port_while_listing_models_is_a_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(EndpointConfig(name="vllm", base_url=f"http://127.0.0.1:{port}/v1"), {})

    with pytest.raises(ProviderError) as caught:
        provider.list_models()

    assert caught.value.kind == "connection"


def test_a_silent_server_times_out_after_the_endpoint_timeout(fake_server):
    provider = provider_for(fake_server, timeout=0.5)

    with pytest.raises(ProviderError) as caught:
        drain(provider.stream_chat("fault-slow", HI, SamplingParams()))

    assert caught.value.kind == "timeout"
    assert "local" in str(caught.value)
    assert "sent nothing for 0.5 s" in str(caught.value)
    assert "raise the endpoint's timeout" in str(caught.value)


@pytest.mark.parametrize("model, partial", [
    ("fault-break", "Partial one two"),
    ("fault-malformed", "Partial"),
])
def test_a_stream_that_breaks_off_raises_while_iterating_after_the_text_so_far(fake_server, model, partial):
    stream = provider_for(fake_server).stream_chat(model, HI, SamplingParams())
    received = []

    with pytest.raises(ProviderError) as caught:
        for piece in stream:
            received.append(piece)

    assert "".join(received) == partial
    assert caught.value.kind == "broken_stream"
    message = str(caught.value)
    assert "local" in message
    assert "broke off" in message or "ended before the model finished" in message
    assert "partial reply is kept" in message
    assert "Retry" in message
    assert KEY not in message


@pytest.mark.parametrize("model", ["fault-break", "fault-malformed"])
def test_a_broken_completion_stream_is_a_broken_stream_too(fake_server, model):
    stream = provider_for(fake_server).stream_completion(model, "Q: hi\nA:", SamplingParams())
    received = []

    with pytest.raises(ProviderError) as caught:
        for piece in stream:
            received.append(piece)

    assert received and caught.value.kind == "broken_stream"


def test_a_wrong_key_is_never_repeated_in_the_error(fake_server):
    secret = "sk-wrong-0123456789abcdef"
    provider = provider_for(fake_server, environ={"LOCAL_KEY": secret})

    for call in (provider.list_models, lambda: provider.stream_chat("gpt-4o-mini", HI, SamplingParams())):
        with pytest.raises(ProviderError) as caught:
            call()
        assert caught.value.kind == "auth"
        assert secret not in str(caught.value)
        assert "$LOCAL_KEY" in str(caught.value)


def test_a_missing_key_is_explained_without_naming_a_variable(fake_server):
    provider = make_provider(EndpointConfig(name="local", base_url=fake_server.base_url), {})

    with pytest.raises(ProviderError) as caught:
        provider.list_models()

    assert caught.value.kind == "auth"
    assert "rejected the API key (401)" in str(caught.value)


@pytest.mark.parametrize("environ", [{}, {"LOCAL_KEY": ""}])
def test_an_unset_key_variable_is_named_instead_of_blaming_the_key(fake_server, environ):
    provider = provider_for(fake_server, environ=environ)

    with pytest.raises(ProviderError) as caught:
        provider.stream_chat("gpt-4o-mini", HI, SamplingParams())

    assert caught.value.kind == "auth"
    assert "$LOCAL_KEY is not set" in str(caught.value)
    assert "rejected" not in str(caught.value)


def test_probe_local_servers_finds_nothing_when_nothing_listens():
    assert probe_local_servers(timeout=0.2) == []


def test_a_server_without_v1_completions_says_to_pick_a_base_model_or_chat_mode(fake_server):
    """A chat-only server (no /v1/completions) is not a wrong base URL: the fix is the persona's mode."""
    fake_server.missing_paths.add("/v1/completions")
    provider = provider_for(fake_server)

    with pytest.raises(ProviderError) as caught:
        provider.stream_completion("llama-base", "Q: hi\nA:", SamplingParams())

    assert caught.value.kind == "not_found"
    assert str(caught.value) == (
        f"this persona sends base models to /v1/completions; local ({fake_server.base_url}) has no such path: "
        "pick a base model or switch the persona to chat mode")
    # Chat on the same server still works.
    assert drain(provider.stream_chat("gpt-4o-mini", HI, SamplingParams())).startswith("Echo")
