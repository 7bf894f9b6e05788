"""Keys never echoed: a server that quotes the Authorization header puts nothing of the key anywhere."""

import json
import subprocess
import sys

import pytest
from gradio_client import Client

from playground.core.params import SamplingParams
from playground.core.redaction import configured_secrets, redact
from playground.providers import EndpointConfig, ProviderError
from playground.providers.openai import make_provider
from tests.conftest import PROJECT_ROOT, write_providers
from tests.openai_server import FakeOpenAI
from tests.test_ui_api import send_args

# Not shaped like an OpenAI key, so only redaction by value can catch it.
KEY = "plain-Secret-7731"
OTHER_KEY = "other-endpoint-key-5521"


@pytest.mark.parametrize("text, secrets, expected", [
    ("Authorization: Bearer abc.def-123", (), "Authorization: Bearer [redacted]"),
    ("authorization: bearer XYZ123456", (), "authorization: bearer [redacted]"),
    ("key sk-proj-AbCdEf0123456789 refused", (), "key [redacted] refused"),
    ("no key in a task-list or risk-free text", (), "no key in a task-list or risk-free text"),
    (f"the key {KEY}!", (KEY,), "the key [redacted]!"),
    (f"{KEY}{KEY}", (KEY, KEY[:6]), "[redacted][redacted]"),  # the longer value first, no half-masked remnant
    ("a b", ("",), "a b"),
])
def test_redact_removes_configured_values_and_key_shapes(text, secrets, expected):
    assert redact(text, secrets) == expected


def test_configured_secrets_are_every_endpoints_key_openai_and_key_named_variables():
    environ = {"LOCAL_KEY": KEY, "MY_VLLM": OTHER_KEY, "OPENAI_API_KEY": "sk-open-123456", "HF_TOKEN": "hf_abcdef",
               "HOME": "/home/me", "EMPTY_KEY": " "}
    assert configured_secrets(environ, ["MY_VLLM", None]) == {KEY, OTHER_KEY, "sk-open-123456", "hf_abcdef"}


def test_provider_error_redacts_even_when_built_by_hand():
    assert "sk-proj-AbCdEf0123456789" not in str(ProviderError("x", "echo: sk-proj-AbCdEf0123456789"))
    assert str(ProviderError("x", f"echo {KEY}", secrets=frozenset({KEY}))) == "echo [redacted]"


@pytest.fixture
def echoing_server():
    with FakeOpenAI(api_key=KEY) as server:
        yield server


def _provider(server, environ=None):
    config = EndpointConfig(name="local", base_url=server.base_url, api_key_env="LOCAL_KEY", timeout=5)
    return make_provider(config, environ or {"LOCAL_KEY": KEY, "MY_VLLM": OTHER_KEY})


@pytest.mark.parametrize("chat", [True, False])
def test_a_400_that_echoes_the_key_is_reported_without_it(echoing_server, chat):
    provider = _provider(echoing_server)
    with pytest.raises(ProviderError) as raised:
        if chat:
            provider.stream_chat("fault-echo-auth", [], SamplingParams())
        else:
            provider.stream_completion("fault-echo-auth", "Q: hi", SamplingParams())
    message = str(raised.value)
    assert "(400)" in message and "Authorization: Bearer [redacted]" in message
    assert KEY not in message


def test_an_error_event_mid_stream_that_echoes_the_key_is_reported_without_it(echoing_server):
    stream = _provider(echoing_server).stream_chat("fault-echo-auth-stream", [], SamplingParams())
    received = []
    with pytest.raises(ProviderError) as raised:
        for text in stream:
            received.append(text)
    assert received == ["Partial"]
    assert raised.value.kind == "broken_stream" and "Request rejected" in str(raised.value)
    assert KEY not in str(raised.value)


def test_another_endpoints_key_is_redacted_too(echoing_server):
    """A proxy in front of two endpoints may echo either key: every configured key is masked."""
    echoing_server.api_key = None  # this endpoint sends the other endpoint's key
    provider = _provider(echoing_server, {"LOCAL_KEY": OTHER_KEY, "OPENAI_API_KEY": KEY})
    with pytest.raises(ProviderError) as raised:
        provider.stream_chat("fault-echo-auth", [], SamplingParams())
    assert OTHER_KEY not in str(raised.value)


def test_a_fine_tuning_jobs_error_and_events_that_echo_the_key_come_back_without_it(tmp_path):
    from playground.providers.jobs import FineTuningAPI
    from tests.openai_jobs_server import FakeFineTuning

    with FakeFineTuning(api_key=KEY) as server:
        server.advance_on_retrieve = False
        api = FineTuningAPI(_provider(server))
        training = tmp_path / "train.jsonl"
        training.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "content": "yo"}]}) + "\n")
        job = api.create("gpt-4o-mini-2024-07-18", api.upload(training))
        with server._state:
            server.jobs[job.id].update(status="failed", error={"code": "x", "message": f"bad key {KEY}", "param": None})
            server._event(server.jobs[job.id], f"Authorization: Bearer {KEY} refused", "error")

        failed, events = api.retrieve(job.id), api.events(job.id)
    assert failed.error == "bad key [redacted]"
    assert "Authorization: Bearer [redacted] refused" in [e.message for e in events]
    assert KEY not in repr((failed, events))


# --- through the real app ------------------------------------------------------------------------------


@pytest.fixture
def echo_app(_home, echoing_server):
    from playground.services import build_services
    from playground.ui.app import LAUNCH_DEFAULTS, build_app, launch

    write_providers(_home, echoing_server, timeout=5, models=["gpt-4o-mini", "fault-echo-auth",
                                                               "fault-echo-auth-stream"])
    services = build_services(home=_home, personas_dir=PROJECT_ROOT / "personas", environ={"LOCAL_KEY": KEY},
                              detect_local=False, discover=False)
    demo = build_app(services)
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True,
                            **LAUNCH_DEFAULTS)
    yield url, services
    demo.close()


def test_an_echoed_key_reaches_no_page_log_database_or_stdout(echo_app, _home, capfd):
    url, services = echo_app
    client = Client(url, verbose=False)
    seen = []
    for model in ("local:fault-echo-auth", "local:fault-echo-auth-stream"):
        job = client.submit(*send_args("Where is Paris?", model=model), api_name="/send")
        seen += list(job) + [job.result()]
    seen.append(client.predict("Paris", api_name="/history_search"))

    shown = json.dumps(seen)
    assert "refused the request (400)" in shown and "broke off" in shown  # the errors themselves are shown
    assert KEY not in shown
    assert len(services.store.exchanges()) == 2
    assert all(e["error"] and "[redacted]" in e["error"] for e in services.store.exchanges())

    for path in _home.glob("playground.db*"):  # the database and its WAL, byte for byte
        assert KEY.encode() not in path.read_bytes(), path
    for as_json in ([], ["--json"]):
        logs = subprocess.run([sys.executable, "-m", "playground", "logs", "--home", str(_home), *as_json],
                              capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
        assert logs.returncode == 0 and "ERROR" in logs.stdout + ("ERROR" if as_json else "")
        assert KEY not in logs.stdout + logs.stderr
    out, err = capfd.readouterr()
    assert KEY not in out + err
