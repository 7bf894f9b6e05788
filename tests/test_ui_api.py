"""The app's API as gradio_client sees it: the Chat tab's /send, /stop, /new_chat and the History endpoints."""

import re
import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.gradio_outputs import last_set

PERSONA = "Location Extractor"  # a chat persona with no greeting and no variables
MODEL = "local:gpt-4o-mini"
NO_VARIABLES = {"headers": ["variable", "value"], "data": [["", ""]]}
METRICS = re.compile(r"gpt-4o-mini · \d+ \+ \d+ tokens · \$\d+\.\d+ · first token \d+\.\d\d s · \d+\.\d\d s")


def send_args(message, persona=PERSONA, model=MODEL, system_prompt="Be brief.", variables=NO_VARIABLES,
              temperature=0.5, top_p=1.0, max_tokens=100, presence_penalty=0.0, frequency_penalty=0.0, seed=None,
              stop="[]"):
    return (message, persona, model, system_prompt, variables, temperature, top_p, max_tokens, presence_penalty,
            frequency_penalty, seed, stop)


def text(message: dict) -> str:
    """A chat message's text; the client gets content as a list of parts."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def send(client: Client, message: str, **settings) -> tuple[list, str, str]:
    """(chatbot, message box, notice) after the reply is finished."""
    return client.predict(*send_args(message, **settings), api_name="/send")


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def test_send_api_takes_the_chat_settings(client):
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/send"]["parameters"]
    assert [p["label"] for p in params] == [
        "Message", "Persona", "Model", "System prompt", "Variables", "Temperature", "Top p", "Max tokens",
        "Presence penalty", "Frequency penalty", "Seed", "Stop sequences", "Speaking as"]
    assert params[-1]["parameter_has_default"]  # optional: calls written before the speaker box still work


def test_send_streams_the_reply_then_its_metrics(client, services, fake_server):
    fake_server.token_delay = 0.1  # slower than the update interval, so every word is its own update
    job = client.submit(*send_args("hello there friend"), api_name="/send")
    updates = list(job)

    replies = [text(chat[-1]) for chat, _, _ in updates if chat and chat[-1]["role"] == "assistant"]
    growing = [r for r in replies if r.startswith("Echo")]
    assert len(growing) >= 3, replies
    assert all(len(a) < len(b) for a, b in zip(growing, growing[1:])), growing
    chat, _, notice = job.result()
    box = last_set(job.outputs(), 1)  # emptied when the message is taken; streaming leaves it alone
    assert [m["role"] for m in chat] == ["user", "assistant"]
    assert text(chat[0]) == "hello there friend"
    reply = text(chat[-1])
    assert reply.startswith("Echo: hello there friend")
    assert METRICS.search(reply), reply
    assert (box, notice) == ("", "")

    [exchange] = services.store.exchanges()
    assert exchange["reply"] == "Echo: hello there friend" and exchange["error"] is None
    request = exchange["request"]
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}
    assert request["messages"][-1] == {"role": "user", "content": "hello there friend"}
    assert (request["temperature"], request["max_tokens"]) == (0.5, 100)
    [sent] = [r["body"] for r in fake_server.requests if r["path"].endswith("/chat/completions")]
    assert {k: sent[k] for k in request} == request


def test_second_message_in_a_session_carries_the_first_exchange(client, services):
    send(client, "first question")
    chat, _, _ = send(client, "second question")

    assert [text(m).split("\n\n")[0] for m in chat] == [
        "first question", "Echo: first question", "second question", "Echo: second question"]
    latest, first = services.store.exchanges()
    assert latest["request"]["messages"][-3:] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "Echo: first question"},
        {"role": "user", "content": "second question"},
    ]
    assert latest["conversation_id"] == first["conversation_id"]


def test_rejected_key_names_the_cause_and_keeps_the_typed_message(client, services):
    job = client.submit(*send_args("Anyone in Paris?", model="local:fault-401"), api_name="/send")
    updates = list(job)
    chat, box, notice = job.result()

    assert box == "Anyone in Paris?"
    assert "401" in notice and "LOCAL_KEY" in notice
    assert chat == []  # nothing came back: the chat is as it was, the text is back in the box
    assert "sk-test" not in repr(updates)
    [exchange] = services.store.exchanges()
    assert "401" in exchange["error"] and "sk-test" not in repr(exchange)

    # Sending the same text again (with a working model) asks it once.
    chat, _, _ = send(client, box)
    assert [m["role"] for m in chat] == ["user", "assistant"]
    assert [m["content"] for m in services.store.exchanges()[0]["request"]["messages"]].count(box) == 1


@pytest.mark.parametrize("settings, expected", [
    ({"message": "   "}, "The message is empty"),
    ({"stop": "not json"}, "Stop sequences must be a JSON list"),
    ({"seed": "seven"}, "Seed: 'seven' is not a whole number"),
    ({"persona": "Rude Support Agent", "variables": {"headers": ["variable", "value"], "data": [["company", ""]]}},
     "{{company}}"),
])
def test_a_request_that_cannot_be_sent_says_why_and_sends_nothing(client, services, fake_server, settings, expected):
    message = settings.pop("message", "Is this sent?")
    chat, box, notice = client.predict(*send_args(message, **settings), api_name="/send")

    assert expected in notice
    assert box == message and chat == []
    assert services.store.exchanges() == []
    assert not [r for r in fake_server.requests if r["method"] == "POST"]


@pytest.mark.parametrize("seed, sent", [("7", 7), (" 42 ", 42), ("", None), (None, None)])
def test_a_seed_is_sent_only_when_one_is_written(client, fake_server, seed, sent):
    send(client, "Same again?", seed=seed)
    [body] = [r["body"] for r in fake_server.requests if r["method"] == "POST"]
    assert body.get("seed") == sent and ("seed" in body) == (sent is not None)


def test_out_of_range_parameter_is_refused_before_anything_is_sent(client, services, fake_server):
    with pytest.raises(AppError, match="greater than maximum value 2"):
        client.predict(*send_args("Too hot?", temperature=5), api_name="/send")
    assert services.store.exchanges() == []
    assert not [r for r in fake_server.requests if r["method"] == "POST"]


def test_new_chat_forgets_the_conversation(client, services):
    send(client, "about Lisbon")
    chat, notice = client.predict(PERSONA, api_name="/new_chat")
    assert (chat, notice) == ([], "")

    chat, _, _ = send(client, "about Oslo")
    assert [text(m).split("\n\n")[0] for m in chat] == ["about Oslo", "Echo: about Oslo"]
    latest, first = services.store.exchanges()
    assert "about Lisbon" not in latest["request_text"]
    assert latest["conversation_id"] != first["conversation_id"]


def test_history_search_finds_a_conversation_that_open_restores(app_url, services):
    send(Client(app_url, verbose=False), "The keeper rowed to Gullstone", system_prompt="Be terse.", temperature=0.25)

    conversations, exchanges = Client(app_url, verbose=False).predict("gullstone", api_name="/history_search")
    [row] = conversations["data"]
    conversation_id, title = row[0], row[-1]
    assert title == "The keeper rowed to Gullstone"
    assert [r[-1] for r in exchanges["data"]] == ["Echo: The keeper rowed to Gullstone"]
    nothing, _ = Client(app_url, verbose=False).predict("zanzibar", api_name="/history_search")
    assert [r[0] for r in nothing["data"]] == [""]

    later = Client(app_url, verbose=False)  # a new browser session, say the next day
    chat, persona, model, system_prompt, _variables, temperature, *_ = later.predict(
        conversation_id, api_name="/open_conversation")
    assert [text(m).split("\n\n")[0] for m in chat] == [
        "The keeper rowed to Gullstone", "Echo: The keeper rowed to Gullstone"]
    assert (persona, model, system_prompt, temperature) == (PERSONA, MODEL, "Be terse.", 0.25)

    # The reopened conversation goes on where it stopped, as a new conversation that names the one it continues
    # (two sessions reopening one chat must not write over each other's transcript); the original is untouched.
    send(later, "And then?")
    latest = services.store.exchanges()[0]
    assert "The keeper rowed to Gullstone" in latest["request_text"]
    continued = services.store.conversation(latest["conversation_id"])
    assert latest["conversation_id"] != conversation_id and continued["continued_from"] == conversation_id
    assert [t["content"] for t in continued["transcript"]][:3] == [
        "The keeper rowed to Gullstone", "Echo: The keeper rowed to Gullstone", "And then?"]
    assert len(services.store.conversation(conversation_id)["transcript"]) == 2


def test_open_conversation_with_an_unknown_id_says_so(client):
    *_, chat_notice, history_notice = client.predict("no-such-id", api_name="/open_conversation")
    assert "No conversation with id 'no-such-id'" in history_notice


def test_stop_cancels_a_long_reply_and_keeps_it_marked_incomplete(client, services, fake_server):
    fake_server.token_delay = 0.02
    job = client.submit(*send_args("Count [tokens=200]", max_tokens=1000), api_name="/send")
    deadline = time.monotonic() + 10
    while not any("w3" in text(chat[-1]) for chat, _, _ in job.outputs() if chat):
        assert time.monotonic() < deadline, "no reply streamed"
        time.sleep(0.02)

    job.cancel()
    chat = client.predict(api_name="/stop")
    reply = text(chat[-1])
    assert "(incomplete)" in reply and "Stopped before the reply was finished" in reply

    [exchange] = services.store.exchanges()
    assert exchange["incomplete"] == 1
    shown = re.findall(r"w\d+", reply)
    assert re.findall(r"w\d+", exchange["reply"]) == shown
    assert 3 <= len(shown) < 200
    assert job.status().code.name == "CANCELLED"
