"""Demo mode: the rate limit, the guard on every request, and the demo app through gradio_client."""

import json

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from playground.chat.conversation import Conversation
from playground.core.errors import PlaygroundError
from playground.core.tokens import count_messages
from playground.sharing.demo import DemoChat, DemoSettings, MessageTooLong, demo_settings, visitor
from playground.sharing.ratelimit import RateLimited, RateLimiter
from playground.ui.demo_app import FAILED_REPLY
from tests.gradio_outputs import last_set

PROFESSOR = "Professor Ignatia Brack"
RUDE = "Rude Support Agent"
MODEL = "local:gpt-4o-mini"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the rate limit ------------------------------------------------------------------------------------


def test_a_key_gets_its_limit_per_window_then_waits_for_the_oldest_hit_to_expire():
    clock = Clock()
    limiter = RateLimiter(3, window=60, clock=clock)

    for seconds_in in (0, 10, 20):
        clock.now = 1000 + seconds_in
        assert limiter.hit("a") == 0
    clock.now = 1030
    assert limiter.hit("a") == pytest.approx(30)  # the first hit leaves the window at 1060
    assert limiter.remaining("a") == 0
    assert limiter.hit("b") == 0  # other keys are not affected
    clock.now = 1060
    assert limiter.hit("a") == 0
    assert limiter.hit("a") == pytest.approx(10)


def test_refused_hits_do_not_count():
    clock = Clock()
    limiter = RateLimiter(1, window=60, clock=clock)
    assert limiter.hit("a") == 0
    for _ in range(5):
        clock.now += 10
        assert limiter.hit("a") > 0
    clock.now = 1060
    assert limiter.hit("a") == 0


def test_quiet_keys_are_forgotten():
    clock = Clock()
    limiter = RateLimiter(2, window=60, clock=clock)
    limiter.SWEEP_EVERY = 3
    limiter.hit("gone")
    clock.now += 61
    limiter.hit("x")
    limiter.hit("y")
    assert "gone" not in limiter._hits


@pytest.mark.parametrize("limit, window", [(0, 60), (1, 0)])
def test_a_limit_must_allow_something(limit, window):
    with pytest.raises(ValueError):
        RateLimiter(limit, window)


# --- the guard -----------------------------------------------------------------------------------------


def guard(services, clock=None, **settings) -> DemoChat:
    values = {"personas": [PROFESSOR, RUDE], "models": [MODEL], "max_tokens": 100, **settings}
    return DemoChat(DemoSettings(**values), services.personas, clock or Clock())


def test_each_session_and_everyone_together_have_a_limit(services):
    clock = Clock()
    chat = guard(services, clock, per_session_per_minute=2, total_per_minute=3)

    chat.admit("s1")
    chat.admit("s1")
    with pytest.raises(RateLimited) as refused:
        chat.admit("s1")
    assert str(refused.value) == "Demo limit reached: 2 messages a minute per visitor. Try again in 60 s."
    chat.admit("s2")
    with pytest.raises(RateLimited) as busy:
        chat.admit("s3")
    assert "This demo is busy: it answers 3 messages a minute from all visitors together" in str(busy.value)
    clock.now += 60
    chat.admit("s3")


@pytest.mark.parametrize("persona, cap, expected", [(PROFESSOR, 100, 100), (PROFESSOR, 1000, 300)])
def test_max_tokens_is_capped_never_raised(services, persona, cap, expected):
    settings = guard(services, max_tokens=cap).chat_settings(persona, MODEL)
    assert settings.params.max_tokens == expected
    assert settings.system_prompt == services.personas[persona].system_prompt


@pytest.mark.parametrize("persona, model, refusal", [
    ("Location Extractor", MODEL, "offers the personas"),
    (PROFESSOR, "local:gpt-4o", "offers the models"),
])
def test_only_the_demo_personas_and_models_are_served(services, persona, model, refusal):
    with pytest.raises(PlaygroundError, match=refusal):
        guard(services).chat_settings(persona, model)


def asking(text: str) -> Conversation:
    conversation = Conversation.start()
    conversation.add_user(text)
    return conversation


def test_a_message_over_the_character_cap_is_refused_saying_the_cap(services):
    chat = guard(services, max_chars=10)
    settings = chat.chat_settings(RUDE, MODEL)
    chat.check_size(RUDE, settings, asking("0123456789"), "0123456789")

    with pytest.raises(MessageTooLong) as refused:
        chat.check_size(RUDE, settings, asking("0123456789!"), "0123456789!")
    assert str(refused.value) == ("This message has 11 characters; the demo takes at most 10. Shorten it and send it "
                                  "again.")


def test_a_prompt_over_the_token_cap_is_refused_saying_the_cap(services):
    # The prompt is the persona's system prompt and examples plus the chat: a short message can still be too much.
    from playground.chat.ask import build_request

    settings = guard(services).chat_settings(PROFESSOR, MODEL)
    conversation = asking("How does the lamp work?")
    prompt = count_messages(build_request(services.personas[PROFESSOR], settings, conversation).messages, MODEL)
    assert prompt > 50  # the system prompt counts, not only the message
    guard(services, max_prompt_tokens=prompt).check_size(PROFESSOR, settings, conversation, "How does the lamp work?")

    with pytest.raises(MessageTooLong) as refused:
        guard(services, max_prompt_tokens=prompt - 1).check_size(PROFESSOR, settings, conversation, "How does…")
    assert str(refused.value) == (f"With this message the prompt would be {prompt} tokens; the demo sends at most "
                                  f"{prompt - 1}. Shorten it, or start a New chat.")


def test_a_visitor_is_the_login_and_the_address():
    assert visitor("ana", "10.0.0.1") == visitor("ana", "10.0.0.1")
    assert len({visitor("ana", "10.0.0.1"), visitor("bo", "10.0.0.1"), visitor("ana", "10.0.0.2"),
                visitor(None, "10.0.0.1")}) == 4


def test_demo_flags_are_parsed_and_checked(services):
    settings = demo_settings(services.personas, f"{PROFESSOR}, {RUDE}", None, max_tokens=50, per_session_per_minute=None)
    assert settings.personas == [PROFESSOR, RUDE] and settings.models == ["gpt-4o-mini"]
    assert settings.max_tokens == 50 and settings.per_session_per_minute == 10
    assert settings.max_chars == 4000 and settings.max_prompt_tokens == 4096
    assert demo_settings(services.personas, RUDE, None, max_chars=300, max_prompt_tokens=900).max_chars == 300
    assert demo_settings(services.personas, RUDE, "local:gpt-4o-mini,local:echo").models == [MODEL, "local:echo"]
    with pytest.raises(PlaygroundError, match="No persona named 'Nobody' for --demo: choose from"):
        demo_settings(services.personas, "Nobody")


# --- the demo app, as a guest's client sees it ----------------------------------------------------------


def launched_demo(services, **limits):
    from playground.ui.app import build_app, launch, launch_options

    settings = DemoSettings(personas=[PROFESSOR, RUDE], models=[MODEL, "local:fault-500"], max_tokens=5,
                            total_per_minute=100, max_chars=200, **limits)
    app = build_app(services, demo=settings)
    _, url, _ = launch(app, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                           **launch_options(services, demo=True))
    return app, url


@pytest.fixture
def demo_url(services):
    app, url = launched_demo(services, per_session_per_minute=2)
    yield url
    app.close()


@pytest.fixture
def roomy_demo_url(services):
    app, url = launched_demo(services, per_session_per_minute=50)
    yield url
    app.close()


def text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def test_a_guest_chats_with_capped_replies_and_every_exchange_is_logged(demo_url, services, fake_server):
    client = Client(demo_url, verbose=False)

    job = client.submit("Count for me [tokens=20]", PROFESSOR, MODEL, api_name="/send")
    chat, _, notice = job.result()
    box = last_set(job.outputs(), 1)  # emptied when the message is taken; streaming leaves it alone

    assert text(chat[-1]) == "w1 w2 w3 w4 w5" and box == "" and notice == ""
    sent = fake_server.requests[-1]["body"]
    assert sent["max_tokens"] == 5 and sent["messages"][0]["role"] == "system"
    [exchange] = services.store.exchanges()
    assert exchange["persona"] == PROFESSOR and exchange["reply"] == "w1 w2 w3 w4 w5"
    assert exchange["finish_reason"] == "length"
    assert "gpt-4o-mini ·" not in text(chat[-1])  # no metrics or costs for guests


def test_the_rate_limit_holds_per_visitor_with_a_clear_message(demo_url, services):
    client = Client(demo_url, verbose=False)
    client.predict("one", RUDE, MODEL, api_name="/send")
    client.predict("two", RUDE, MODEL, api_name="/send")

    chat, box, notice = client.predict("three", RUDE, MODEL, api_name="/send")

    assert "Demo limit reached: 2 messages a minute per visitor. Try again in" in notice
    assert box == "three"  # the typed message is kept
    assert [text(m) for m in chat if m["role"] == "user"] == ["one", "two"]
    assert len(services.store.exchanges()) == 2


def test_a_fresh_session_per_message_does_not_reset_the_limit(demo_url, services):
    # The session hash is the client's to pick (gradio_client makes a new one per Client): the limit is keyed on
    # the login and the address instead. Another login's allowance is tested in test_demo_login.py.
    notices = [Client(demo_url, verbose=False).predict(f"m{n}", RUDE, MODEL, api_name="/send")[2] for n in range(6)]

    assert notices[:2] == ["", ""]
    assert all("Demo limit reached" in n for n in notices[2:])
    assert len(services.store.exchanges()) == 2


def test_a_long_message_is_refused_with_the_limit_and_kept(demo_url, services, fake_server):
    long = "word " * 41  # 205 characters, the fixture's cap is 200
    chat, box, notice = Client(demo_url, verbose=False).predict(long, RUDE, MODEL, api_name="/send")

    assert "This message has 205 characters; the demo takes at most 200" in notice
    assert box == long and not [m for m in chat if m["role"] == "user"]
    assert services.store.exchanges() == []
    assert not [r for r in fake_server.requests if r["path"].endswith("/completions")]


def test_every_session_and_new_chat_is_a_conversation_of_its_own(roomy_demo_url, services):
    first, second = Client(roomy_demo_url, verbose=False), Client(roomy_demo_url, verbose=False)
    first.predict("from the first visitor", RUDE, MODEL, api_name="/send")
    second.predict("from the second visitor", RUDE, MODEL, api_name="/send")
    first.predict("still the first", RUDE, MODEL, api_name="/send")

    rows = services.store.conversations()
    assert sorted(row["title"] for row in rows) == ["from the first visitor", "from the second visitor"]
    first.predict(RUDE, api_name="/new_chat")
    first.predict("a new chat", RUDE, MODEL, api_name="/send")
    assert len({row["id"] for row in services.store.conversations()}) == 3
    assert {e["conversation_id"] for e in services.store.exchanges()} == {row["id"] for row in
                                                                          services.store.conversations()}


@pytest.mark.parametrize("persona, model", [(RUDE, "local:gpt-4o"), ("Location Extractor", MODEL)])
def test_a_guest_cannot_pick_other_personas_or_models_through_the_api(demo_url, services, persona, model):
    # The dropdowns refuse values off their lists before the handler runs; DemoChat checks again behind them.
    with pytest.raises(AppError, match="not in the list of choices"):
        Client(demo_url, verbose=False).predict("hi", persona, model, api_name="/send")

    assert services.store.exchanges() == []


def test_a_failed_reply_tells_the_guest_nothing_about_the_host(demo_url, services, fake_server):
    chat, _, notice = Client(demo_url, verbose=False).predict("hi", RUDE, "local:fault-500", api_name="/send")

    assert FAILED_REPLY in notice and FAILED_REPLY in text(chat[-1])
    assert fake_server.base_url not in json.dumps(chat) + notice
    assert "server error (500)" in services.store.exchanges()[0]["error"]  # the host's log has the detail


def test_the_demo_exposes_only_its_chat(demo_url, services):
    endpoints = Client(demo_url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(endpoints) == {"/send", "/new_chat"}
    config = httpx.get(f"{demo_url}config", timeout=10).json()
    assert config["run_history"] is False
    shown = json.dumps(config)
    assert "sk-test" not in shown and "LOCAL_KEY" not in shown
    assert services.personas[RUDE].system_prompt[:40] not in shown  # the system prompt stays on the host
    labels = {c.get("props", {}).get("label") for c in config["components"]}
    assert {"Persona", "Model", "Chat", "Message"} <= labels
    assert not labels & {"System prompt", "Variables", "Temperature", "Max tokens", "Search"}


def test_a_limit_of_one_message_says_one_message(services):
    chat = guard(services, Clock(), per_session_per_minute=1, total_per_minute=1)
    chat.admit("s1")
    with pytest.raises(RateLimited) as refused:
        chat.admit("s1")
    assert str(refused.value).startswith("Demo limit reached: 1 message a minute per visitor.")
    with pytest.raises(RateLimited) as busy:
        chat.admit("s2")
    assert "it answers 1 message a minute from all visitors" in str(busy.value)
