"""Nothing lost, nothing leaked: a conversation per session, an exchange logged as it is sent, a crash recovered.

The app is built on the loopback server and driven through gradio_client (each Client is a session of its own);
the crash test runs a real `python app.py` and SIGKILLs it in the middle of a stream.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client

from playground.ab import arena as ab
from playground.chat.ask import ChatSettings, stream_reply
from playground.chat.conversation import Conversation
from playground.chat.personas import persona_order
from playground.core.processes import is_gone, process_key
from playground.core.store import INTERRUPTED, Exchange, Store
from tests.conftest import write_providers
from tests.test_ui_api import send, send_args, text

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 60


def wait_for(condition, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


def check_every_turn_is_in_its_conversation(store: Store) -> tuple[int, int]:
    """Every exchange names a conversation whose transcript holds its turn; returns (exchanges, conversations)."""
    exchanges = store.exchanges(limit=10_000)
    conversations = {}
    for e in exchanges:
        conversation = conversations.get(e["conversation_id"]) or store.conversation(e["conversation_id"])
        assert conversation is not None, e
        conversations[e["conversation_id"]] = conversation
        turns = conversation["transcript"]
        assert turns[e["turn"]]["exchange_id"] == e["id"]
        assert turns[e["turn"]]["content"] == e["reply"]
        assert turns[e["turn"] - 1] == {**turns[e["turn"] - 1], "role": "user",
                                        "content": e["request"]["messages"][-1]["content"]}
    return len(exchanges), len(conversations)


# --- one conversation per session ----------------------------------------------------------------------


def test_two_fresh_sessions_chat_into_two_conversations(app_url, services):
    send(Client(app_url, verbose=False), "I am Ada, visiting Gullstone")
    send(Client(app_url, verbose=False), "I am Bo, asking about Lisbon")

    exchanges = services.store.exchanges()
    assert len({e["conversation_id"] for e in exchanges}) == 2
    transcripts = {c["title"]: services.store.conversation(c["id"])["transcript"]
                   for c in services.store.conversations()}
    assert {title: [t["content"] for t in turns] for title, turns in transcripts.items()} == {
        "I am Ada, visiting Gullstone": ["I am Ada, visiting Gullstone", "Echo: I am Ada, visiting Gullstone"],
        "I am Bo, asking about Lisbon": ["I am Bo, asking about Lisbon", "Echo: I am Bo, asking about Lisbon"],
    }


def test_ten_sessions_of_five_turns_at_once_keep_every_turn_in_its_own_conversation(app_url, services, fake_server):
    fake_server.token_delay = 0.002  # streams overlap
    sessions, turns = 10, 5
    problems = []

    def chat(session: int) -> None:
        try:
            # Ten clients at once on a busy machine: give a slow answer time rather than httpx's 5 s default.
            client = Client(app_url, verbose=False, httpx_kwargs={"timeout": 60})
            for turn in range(turns):
                chat, _, notice = send(client, f"session {session} turn {turn}")
                assert notice == "" and len(chat) == 2 * (turn + 1), (notice, chat)
                # The model saw this session's turns only.
                assert all(f"session {session} " in text(m) for m in chat), chat
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            problems.append(f"session {session}: {e!r}")

    threads = [threading.Thread(target=chat, args=(s,)) for s in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert problems == []
    assert check_every_turn_is_in_its_conversation(services.store) == (sessions * turns, sessions)
    for c in services.store.conversations():
        words = {t["content"].split(" turn ")[0].removeprefix("Echo: ")
                 for t in services.store.conversation(c["id"])["transcript"]}
        assert len(words) == 1, words  # one session's words in each conversation


def test_new_chat_and_each_session_start_a_new_conversation_id(app_url, services):
    first, second = Client(app_url, verbose=False), Client(app_url, verbose=False)
    send(first, "one")
    first.predict("Location Extractor", api_name="/new_chat")
    send(first, "two")
    send(second, "three")

    assert len({e["conversation_id"] for e in services.store.exchanges()}) == 3
    assert check_every_turn_is_in_its_conversation(services.store) == (3, 3)


# --- logged as it is sent ------------------------------------------------------------------------------


def test_the_exchange_and_the_user_turn_are_saved_before_the_reply_streams(services, fake_server):
    persona = services.personas["Location Extractor"]
    conversation = Conversation.start()
    conversation.add_user("Where is Gullstone? [tokens=5]")
    replies = stream_reply(services, persona, ChatSettings.for_persona(persona, "local:gpt-4o-mini"), conversation)

    next(replies)  # the first piece of the reply has arrived
    [sent] = services.store.exchanges()
    assert (sent["status"], sent["incomplete"], sent["reply"], sent["pid"]) == ("in_flight", 1, "", os.getpid())
    assert sent["request"]["messages"][-1]["content"] == "Where is Gullstone? [tokens=5]"
    saved = services.store.conversation(conversation.id)["transcript"]
    assert [(t["role"], t["content"], t["exchange_id"]) for t in saved] == [
        ("user", "Where is Gullstone? [tokens=5]", None), ("assistant", "", sent["id"])]

    list(replies)
    [done] = services.store.exchanges()
    assert (done["id"], done["status"], done["incomplete"], done["reply"]) == (sent["id"], "done", 0, "w1 w2 w3 w4 w5")
    assert services.store.conversation(conversation.id)["transcript"][-1]["content"] == "w1 w2 w3 w4 w5"


@pytest.mark.parametrize("model, status", [("local:fault-500", "error"), ("local:fault-break", "error")])
def test_a_failed_reply_updates_the_row_it_was_sent_as(services, model, status):
    persona = services.personas["Location Extractor"]
    conversation = Conversation.start()
    conversation.add_user("Anyone there?")
    list(stream_reply(services, persona, ChatSettings.for_persona(persona, model), conversation))

    [row] = services.store.exchanges()
    assert (row["status"], row["incomplete"]) == (status, 1) and row["error"]


def test_a_stopped_reply_is_marked_stopped(services, fake_server):
    fake_server.token_delay = 0.01
    persona = services.personas["Location Extractor"]
    conversation = Conversation.start()
    conversation.add_user("Count [tokens=100]")
    replies = stream_reply(services, persona, ChatSettings.for_persona(persona, "local:gpt-4o-mini"), conversation)
    next(replies)
    replies.close()

    [row] = services.store.exchanges()
    assert (row["status"], row["incomplete"], row["error"]) == ("stopped", 1, "Stopped before the reply was finished.")


def test_a_stream_that_breaks_off_before_any_text_does_not_claim_a_partial_reply(services, fake_server):
    fake_server.first_token_delay = 30  # headers are sent, then nothing until the server goes away
    persona = services.personas["Location Extractor"]
    conversation = Conversation.start()
    conversation.add_user("Hello?")
    replies = stream_reply(services, persona, ChatSettings.for_persona(persona, "local:gpt-4o-mini"), conversation)
    closer = threading.Thread(target=lambda: (wait_for(lambda: any(
        r["method"] == "POST" for r in fake_server.requests), "the request"), fake_server.close()))
    closer.start()
    list(replies)
    closer.join()

    reply = conversation.turns[-1]
    assert reply.content == "" and reply.incomplete
    assert "after 0 characters" in reply.error and "Nothing of the reply arrived" in reply.error
    assert "partial reply is kept" not in reply.error


# --- recovery after a crash ----------------------------------------------------------------------------


def in_flight(store: Store, process: str | None = None) -> int:
    exchange = Exchange(conversation_id="c1", model="gpt-4o-mini", provider="local", turn=1,
                        request={"messages": [{"role": "user", "content": "hi"}]})
    if process is None:
        return store.start_exchange(exchange)
    writer = Store(store.path)
    writer.process = process
    return writer.start_exchange(exchange)


def test_recovery_leaves_a_live_process_alone_and_marks_a_dead_one(tmp_path):
    store = Store(tmp_path / "p.db")
    mine = in_flight(store)  # this process: alive
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        theirs = in_flight(store, process_key(child.pid))  # another app, still running
        wait_for(lambda: process_key(child.pid).rpartition(":")[2], "the child's start time")
        assert Store(tmp_path / "p.db").recover_interrupted() == 0
        assert [store.exchange(i)["status"] for i in (mine, theirs)] == ["in_flight", "in_flight"]
    finally:
        child.kill()
        child.wait()

    assert Store(tmp_path / "p.db").recover_interrupted() == 1
    gone = store.exchange(theirs)
    assert (gone["status"], gone["incomplete"], gone["error"]) == ("interrupted", 1, INTERRUPTED)
    assert store.exchange(mine)["status"] == "in_flight"


def test_a_reused_pid_does_not_pass_for_the_writer():
    host, pid, start = process_key().rsplit(":", 2)
    if not start:
        pytest.skip("no /proc: only the pid can be checked here")
    assert not is_gone(process_key())
    assert is_gone(f"{host}:{pid}:{int(start) + 1}")  # same pid, another start: the writer has ended
    assert not is_gone(f"another-host:{pid}:{start}")  # another machine's process: never assumed gone


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(home: Path, port: int) -> subprocess.Popen:
    environ = {**os.environ, "PLAYGROUND_HOME": str(home), "LOCAL_KEY": "sk-test",
               "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    app = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--no-detect"], cwd=PROJECT_ROOT,
                           env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    while True:
        line = app.stdout.readline()
        assert line, "the app exited before serving:\n" + "".join(lines)
        lines.append(line)
        if "running at" in line:
            threading.Thread(target=app.stdout.read, daemon=True).start()  # keep the pipe drained
            return app


def test_kill_9_mid_stream_keeps_the_request_and_the_next_start_marks_it_interrupted(tmp_path, fake_server):
    home = tmp_path / "home"
    write_providers(home, fake_server, timeout=30)
    fake_server.token_delay = 0.5  # a slow stream: it is still going when the app is killed
    port = free_port()
    app = start_app(home, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        job = client.submit(*send_args("Tell me about Gullstone [tokens=200]", max_tokens=1000), api_name="/send")
        wait_for(lambda: any(r["method"] == "POST" for r in fake_server.requests), "the request to reach the server")
        wait_for(lambda: any("w2" in text(chat[-1]) for chat, _, _ in job.outputs() if chat), "the reply to stream")
        app.send_signal(signal.SIGKILL)
        app.wait()
    finally:
        app.kill()
        app.wait()

    store = Store(home / "playground.db")
    [row] = store.exchanges()
    assert (row["status"], row["incomplete"]) == ("in_flight", 1)
    assert row["request"]["messages"][-1]["content"] == "Tell me about Gullstone [tokens=200]"
    saved = store.conversation(row["conversation_id"])["transcript"]
    assert [t["content"] for t in saved] == ["Tell me about Gullstone [tokens=200]", ""]

    again = start_app(home, free_port())  # the next start finds the dead app's reply and says what happened
    try:
        [row] = store.exchanges()
        assert (row["status"], row["incomplete"], row["error"]) == ("interrupted", 1, INTERRUPTED)
        turn = store.conversation(row["conversation_id"])["transcript"][-1]
        assert (turn["exchange_id"], turn["error"], turn["incomplete"]) == (row["id"], INTERRUPTED, True)
    finally:
        again.terminate()
        again.wait()


# --- first run ---------------------------------------------------------------------------------------


def test_the_default_persona_is_a_chat_persona(services):
    names = persona_order(services.personas)
    assert services.personas[names[0]].mode == "chat"
    modes = [services.personas[n].mode for n in names]
    assert modes == sorted(modes, key=lambda m: m != "chat")  # every chat persona before the completion ones


def test_with_a_served_provider_chat_and_every_ab_column_start_on_a_served_model(services):
    served = services.registry.served_chat_models()
    first = services.personas[persona_order(services.personas)[0]]

    assert services.registry.default_model(first.model) == "local:gpt-4o-mini"
    setups = ab.starting_setups(services)
    assert setups[0] == (first.name, "local:gpt-4o-mini")
    assert all(model in served for _, model in setups)
    assert len(set(setups)) == len(setups)  # no two columns alike
    assert setups[0][1] != setups[1][1]  # two models served: columns 1 and 2 differ by model


def test_with_one_model_served_ab_columns_differ_by_persona(services, fake_server):
    fake_server.models = ["gpt-4o-mini", "davinci-002"]  # a base model is no column's default
    services.registry.refresh()

    setups = ab.starting_setups(services)
    assert [m for _, m in setups] == ["local:gpt-4o-mini"] * 4
    assert len({p for p, _ in setups}) == 4
    assert all(services.personas[p].mode == "chat" for p, _ in setups)


def test_with_nothing_served_ab_columns_ask_lookup_in_different_personas(services, fake_server):
    fake_server.close()
    services.registry.refresh()

    setups = ab.starting_setups(services)
    assert all(model == "offline:lookup" for _, model in setups)
    assert len({p for p, _ in setups}) == len(setups)
    assert ab.check_columns(services, [ab.ArenaColumn(settings=ChatSettings.for_persona(services.personas[p], m))
                                       for p, m in setups[:2]])


def test_the_ab_columns_built_into_the_app_start_different_and_with_a_model(services):
    from playground.ui.app import build_app

    components = build_app(services).get_config_file()["components"]
    dropdowns = [c["props"] for c in components if c.get("type") == "dropdown" and c["props"].get("label") == "Model"]
    chat_model, *columns = [d["value"] for d in dropdowns[:5]]
    assert chat_model == "local:gpt-4o-mini"
    assert columns[:2] == ["local:gpt-4o-mini", "local:echo"]


def test_a_page_opened_once_the_model_lists_are_in_starts_on_served_models(browser, _home, fake_server):
    from playwright.sync_api import expect

    from playground.services import build_services
    from playground.ui.app import LAUNCH_DEFAULTS, build_app, launch
    from tests.browser import open_app, open_tab

    write_providers(_home, fake_server)
    services = build_services(home=_home, environ={"LOCAL_KEY": "sk-test"}, detect_local=False, discover=False)
    demo = build_app(services)  # built before any model list came back: the pickers were built on lookup
    services.registry.refresh()  # then the lists arrive, as they do from the background thread at startup
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **LAUNCH_DEFAULTS)
    try:
        page, foreign = open_app(browser, url)
        expect(page.get_by_label("Model", exact=True)).to_have_value(re.compile(r"^gpt-4o-mini\b"))
        open_tab(page, "A/B")
        columns = page.locator("#ab-tab").get_by_label("Model", exact=True)
        expect(columns.nth(0)).to_have_value(re.compile(r"^gpt-4o-mini\b"))
        expect(columns.nth(1)).to_have_value(re.compile(r"^echo\b"))  # the next served chat model
        assert foreign == []
        page.context.close()
    finally:
        demo.close()
