"""The chat engine end to end: personas, the real SDK against the loopback server, a real SQLite store."""

import json
import threading

import pytest

from playground.chat.ask import ChatSettings, stream_reply
from playground.chat.conversation import Conversation, Turn
from playground.core.errors import MissingVariables, UnknownModel
from playground.core.store import Store
from playground.providers.lookup import LookupProvider
from playground.providers.registry import Registry
from playground.services import build_services
from tests.conftest import write_providers

BRACK = "Professor Ignatia Brack"
RATER = "Review Sentiment Rater"


def persona_named(services, name):
    return services.personas[name]


def completion_persona(services):
    [persona] = [p for p in services.personas.values() if p.mode == "completion"]
    return persona


def new_chat(persona, text):
    conversation = Conversation.start(persona.greeting)
    conversation.add_user(text)
    return conversation


def settings_for(persona, model="local:gpt-4o-mini", **changes):
    settings = ChatSettings.for_persona(persona, model)
    return settings.model_copy(update=changes)


def run(services, persona, text, model="local:gpt-4o-mini", conversation=None, **changes):
    """Send one message; returns the reply text at every yield and the conversation."""
    conversation = conversation or new_chat(persona, text)
    if conversation.pending_user_text() is None:
        conversation.add_user(text)
    seen = [c.turns[-1].content for c in stream_reply(services, persona, settings_for(persona, model, **changes),
                                                      conversation)]
    return seen, conversation


def chat_requests(server):
    return [r for r in server.requests if r["path"] == "/v1/chat/completions"]


def last_exchange(services):
    [exchange] = services.store.exchanges(limit=1)
    return exchange


def test_a_reply_streams_then_shows_its_metrics(services, fake_server):
    rater = persona_named(services, RATER)

    seen, conversation = run(services, rater, "[tokens=6]")

    assert len(seen) >= 6
    assert seen[:6] == ["w1", "w1 w2", "w1 w2 w3", "w1 w2 w3 w4", "w1 w2 w3 w4 w5", "w1 w2 w3 w4 w5 w6"]
    reply = conversation.turns[-1]
    assert (reply.role, reply.content, reply.error, reply.incomplete) == ("assistant", "w1 w2 w3 w4 w5 w6", None, False)
    exchange = last_exchange(services)
    assert reply.exchange_id == exchange["id"]
    assert "gpt-4o-mini" in reply.metrics
    assert f"{exchange['prompt_tokens']} + 6 tokens" in reply.metrics
    assert "first token" in reply.metrics
    assert "~" not in reply.metrics


def test_the_exchange_logs_exactly_the_request_that_was_sent(services, fake_server):
    brack = persona_named(services, BRACK)
    conversation = new_chat(brack, "What's that noise?")

    run(services, brack, "", conversation=conversation, variables={"lab_name": "the Old Mill"})

    [sent] = chat_requests(fake_server)
    system = brack.system_prompt.replace("{{lab_name}}", "the Old Mill")
    assert "the Old Mill" in system and "{{" not in system
    expected = [
        {"role": "system", "content": system},
        *[m.as_openai() for m in brack.seed_messages],
        {"role": "assistant", "content": brack.greeting},
        {"role": "user", "content": "Tobin: What's that noise?"},
    ]
    assert sent["body"]["messages"] == expected
    exchange = last_exchange(services)
    assert exchange["request"]["messages"] == expected
    assert exchange["request"]["model"] == "gpt-4o-mini"
    assert exchange["request"]["temperature"] == brack.temperature
    assert exchange["request"]["max_tokens"] == brack.max_tokens
    assert exchange["reply"] == "Echo: Tobin: What's that noise?"
    assert conversation.turns[-1].content == exchange["reply"]
    usage_prompt_tokens = sum(len(m["content"].split()) + 3 for m in expected)
    assert (exchange["prompt_tokens"], exchange["completion_tokens"]) == (usage_prompt_tokens, 5)
    assert exchange["tokens_counted"] == 0
    assert exchange["cost_usd"] > 0
    assert exchange["ttft_ms"] > 0 and exchange["duration_ms"] >= exchange["ttft_ms"]
    assert (exchange["persona"], exchange["provider"], exchange["model"], exchange["mode"]) == (
        BRACK, "local", "gpt-4o-mini", "chat")
    assert (exchange["finish_reason"], exchange["error"], exchange["incomplete"]) == ("stop", None, 0)
    assert exchange["conversation_id"] == conversation.id
    assert exchange["turn"] == len(conversation.turns) - 1


def test_a_user_turn_already_prefixed_with_the_speaker_is_not_prefixed_twice(services, fake_server):
    brack = persona_named(services, BRACK)

    run(services, brack, "Tobin: Hello?")

    [sent] = chat_requests(fake_server)
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "Tobin: Hello?"}


@pytest.mark.parametrize("speaker, sent_as", [
    (None, "Tobin: Hello?"),  # not chosen: the persona's own speaker
    ("Dez", "Dez: Hello?"),
    ("  ", "Hello?"),  # emptied: no prefix at all
])
def test_the_speaker_chosen_in_the_settings_prefixes_each_user_turn_and_is_saved(services, fake_server, speaker, sent_as):
    brack = persona_named(services, BRACK)

    _, conversation = run(services, brack, "Hello?", speaker=speaker)

    [sent] = chat_requests(fake_server)
    assert sent["body"]["messages"][-1] == {"role": "user", "content": sent_as}
    saved = services.store.conversation(conversation.id)
    assert ChatSettings.model_validate(saved["settings"]).speaker == speaker
    assert saved["transcript"][-2]["content"] == "Hello?"  # the chat keeps the words as typed


def test_without_usage_from_the_server_tokens_are_counted_locally(services, fake_server):
    rater = persona_named(services, RATER)

    _, conversation = run(services, rater, "Lovely soup, rude waiter.", model="local:fault-notext")

    exchange = last_exchange(services)
    assert exchange["reply"] == "Echo: Lovely soup, rude waiter."
    assert exchange["tokens_counted"] == 1
    assert exchange["prompt_tokens"] > 0 and exchange["completion_tokens"] > 0
    assert exchange["error"] is None and exchange["incomplete"] == 0
    metrics = conversation.turns[-1].metrics
    assert f"~{exchange['prompt_tokens']} + ~{exchange['completion_tokens']} tokens" in metrics


def test_a_completion_persona_sends_a_prompt_ending_with_the_assistant_prefix(services, fake_server):
    qa = completion_persona(services)
    assert qa.model == "davinci-002"

    seen, conversation = run(services, qa, "Who is the mayor?", model="local:davinci-002")

    [sent] = [r for r in fake_server.requests if r["path"] == "/v1/completions"]
    assert not chat_requests(fake_server)
    prompt = sent["body"]["prompt"]
    assert prompt.startswith(qa.system_prompt)
    assert prompt.endswith("\nQ: Who is the mayor?\nA:")
    assert prompt.endswith(qa.prompt_format.assistant_prefix)
    assert "Q: When was Brindlecombe founded?\nA: In 1794.\n" in prompt
    assert sent["body"]["stop"] == ["\n"]
    assert sent["body"]["model"] == "davinci-002"
    assert conversation.turns[-1].content == "Echo: Who is the mayor?"
    exchange = last_exchange(services)
    assert exchange["mode"] == "completion"
    assert exchange["request"]["prompt"] == prompt
    assert exchange["request"]["stop"] == ["\n"]
    assert exchange["tokens_counted"] == 0


@pytest.mark.parametrize("model, endpoint", [
    ("local:gpt-4o-mini", "/v1/chat/completions"),   # a known chat model: /v1/completions would refuse it
    ("local:echo", "/v1/completions"),                # an unknown model (a base model on vLLM, say) follows the persona
    ("local:davinci-002", "/v1/completions"),
])
def test_a_completion_persona_sends_each_model_to_the_endpoint_it_has(services, fake_server, model, endpoint):
    qa = completion_persona(services)

    _, conversation = run(services, qa, "Who is the mayor?", model=model)

    assert [r["path"] for r in fake_server.requests if r["method"] == "POST"] == [endpoint]
    assert conversation.turns[-1].error is None
    assert conversation.turns[-1].content == "Echo: Who is the mayor?"


@pytest.mark.parametrize("model", ["local:davinci-002", "davinci-002"])
def test_a_base_model_gets_a_prompt_even_from_a_chat_persona(services, fake_server, model):
    rater = persona_named(services, RATER)

    _, conversation = run(services, rater, "Cold soup.", model=model)

    assert not chat_requests(fake_server)
    [sent] = [r for r in fake_server.requests if r["path"] == "/v1/completions"]
    assert sent["body"]["prompt"].endswith("\nQ: Cold soup.\nA:")
    assert conversation.turns[-1].content == "Echo: Cold soup."
    assert conversation.turns[-1].error is None
    assert last_exchange(services)["mode"] == "completion"


def test_a_refused_request_is_logged_without_a_cost(services, fake_server):
    fake_server.api_key = "sk-another-key"
    rater = persona_named(services, RATER)

    _, conversation = run(services, rater, "Great pizza")

    exchange = last_exchange(services)
    assert "rejected the key in $LOCAL_KEY (401)" in exchange["error"]
    assert exchange["completion_tokens"] == 0
    assert exchange["cost_usd"] == 0
    assert "$0.000000" in conversation.turns[-1].metrics


@pytest.mark.parametrize("model, phrases, partial", [
    ("fault-401", ["local", "rejected", "$LOCAL_KEY", "Check the key"], ""),
    ("fault-429", ["local", "rate-limiting", "Wait 7 s"], ""),
    ("fault-500", ["local", "server error (500)", "Try again"], ""),
    ("fault-break", ["local", "partial reply is kept", "Retry"], "Partial one two"),
    ("fault-malformed", ["local", "partial reply is kept", "Retry"], "Partial"),
    ("gpt-9-imaginary", ["local", "no model 'gpt-9-imaginary'", "Pick one from the Model list"], ""),
])
def test_a_failure_keeps_the_partial_reply_and_says_what_to_do(services, fake_server, model, phrases, partial):
    rater = persona_named(services, RATER)

    seen, conversation = run(services, rater, "hi", model=f"local:{model}")

    reply = conversation.turns[-1]
    assert reply.role == "assistant"
    assert reply.content == partial
    assert reply.incomplete is True
    for phrase in phrases:
        assert phrase in reply.error
    assert "sk-test" not in reply.error
    assert seen[-1] == partial
    exchange = last_exchange(services)
    assert (exchange["error"], exchange["incomplete"], exchange["reply"]) == (reply.error, 1, partial)
    assert exchange["model"] == model
    assert reply.exchange_id == exchange["id"]
    saved = services.store.conversation(conversation.id)
    assert saved["transcript"][-1]["error"] == reply.error


def test_a_silent_server_becomes_a_timeout_error_on_the_reply(_home, fake_server):
    write_providers(_home, fake_server, timeout=0.5)
    services = build_services(home=_home, environ={"LOCAL_KEY": "sk-test"}, detect_local=False)
    rater = persona_named(services, RATER)

    _, conversation = run(services, rater, "hi", model="local:fault-slow")

    reply = conversation.turns[-1]
    assert reply.incomplete is True
    assert "sent nothing for 0.5 s" in reply.error
    assert last_exchange(services)["error"] == reply.error


def test_stop_logs_the_reply_so_far_as_incomplete(services, fake_server):
    fake_server.token_delay = 0.02
    rater = persona_named(services, RATER)
    conversation = new_chat(rater, "[tokens=50]")
    replies = stream_reply(services, rater, settings_for(rater), conversation)

    for _ in range(3):
        next(replies)
    replies.close()

    reply = conversation.turns[-1]
    assert reply.content == "w1 w2 w3"
    assert reply.incomplete is True
    assert "Stopped" in reply.error
    exchange = last_exchange(services)
    assert exchange["incomplete"] == 1
    assert "Stopped" in exchange["error"]
    assert exchange["reply"] == "w1 w2 w3"
    assert exchange["completion_tokens"] >= 3
    saved = services.store.conversation(conversation.id)
    assert saved["transcript"][-1]["content"] == "w1 w2 w3"


@pytest.mark.parametrize("persona_name, changes, missing", [
    (BRACK, {"variables": {"lab_name": ""}}, ["lab_name"]),
    (BRACK, {"variables": {"lab_name": "   "}}, ["lab_name"]),
    (RATER, {"system_prompt": "Rate reviews for {{ shop }} in {{city}}."}, ["shop", "city"]),
])
def test_an_unfilled_variable_is_refused_before_anything_is_sent(services, fake_server, persona_name, changes,
                                                                 missing):
    persona = persona_named(services, persona_name)
    conversation = new_chat(persona, "hello")
    turns_before = len(conversation.turns)

    with pytest.raises(MissingVariables) as caught:
        next(stream_reply(services, persona, settings_for(persona, **changes), conversation))

    assert caught.value.names == missing
    for name in missing:
        assert "{{" + name + "}}" in str(caught.value)
    assert not chat_requests(fake_server)
    assert len(conversation.turns) == turns_before
    assert services.store.exchanges() == []


def test_a_value_that_looks_like_a_variable_is_inserted_literally(services, fake_server):
    brack = persona_named(services, BRACK)

    run(services, brack, "hello", variables={"lab_name": "the {{x}} Lab"})

    [sent] = chat_requests(fake_server)
    assert "lives and works in the {{x}} Lab," in sent["body"]["messages"][0]["content"]


def test_a_chat_is_saved_and_can_be_continued(services, fake_server):
    brack = persona_named(services, BRACK)
    _, first = run(services, brack, "First question", variables={"lab_name": "the Old Mill"})

    saved = services.store.conversation(first.id)
    assert saved["title"] == "First question"
    assert saved["persona"] == BRACK
    assert saved["model"] == "local:gpt-4o-mini"
    assert [t["content"] for t in saved["transcript"]] == [
        brack.greeting, "First question", "Echo: Tobin: First question"]
    settings = ChatSettings.model_validate(saved["settings"])
    assert settings.variables["lab_name"] == "the Old Mill"

    reopened = Conversation(id=saved["id"], turns=[Turn(**t) for t in saved["transcript"]])
    reopened.add_user("Second question")
    list(stream_reply(services, brack, settings, reopened))

    second = chat_requests(fake_server)[-1]["body"]["messages"]
    assert "the Old Mill" in second[0]["content"]
    assert second[-3:] == [
        {"role": "user", "content": "Tobin: First question"},
        {"role": "assistant", "content": "Echo: Tobin: First question"},
        {"role": "user", "content": "Tobin: Second question"},
    ]
    resaved = services.store.conversation(first.id)
    assert [t["content"] for t in resaved["transcript"]][-2:] == ["Second question", "Echo: Tobin: Second question"]
    exchanges = services.store.exchanges(conversation_id=first.id)
    assert [e["turn"] for e in exchanges] == [4, 2]


def test_retry_after_a_failed_reply_asks_the_same_question_again(services, fake_server):
    rater = persona_named(services, RATER)
    _, conversation = run(services, rater, "Great pizza", model="local:fault-500")
    assert conversation.turns[-1].error

    conversation.drop_last_reply()
    run(services, rater, "", conversation=conversation)

    assert [t.content for t in conversation.turns] == ["Great pizza", "Echo: Great pizza"]
    assert conversation.turns[-1].error is None and conversation.turns[-1].incomplete is False
    assert chat_requests(fake_server)[-1]["body"]["messages"][-1] == {"role": "user", "content": "Great pizza"}


def test_edit_then_regenerate_asks_the_edited_question_without_the_old_reply(services, fake_server):
    rater = persona_named(services, RATER)
    _, conversation = run(services, rater, "Nice hotel")
    run(services, rater, "Loud room", conversation=conversation)

    conversation.edit(0, "Nice hotel, friendly staff")
    run(services, rater, "", conversation=conversation)

    assert [t.content for t in conversation.turns] == ["Nice hotel, friendly staff", "Echo: Nice hotel, friendly staff"]
    assert chat_requests(fake_server)[-1]["body"]["messages"][1:] == [
        *[m.as_openai() for m in rater.seed_messages], {"role": "user", "content": "Nice hotel, friendly staff"}]
    assert conversation.undo() == "Nice hotel, friendly staff"
    assert conversation.turns == []


# --- the offline lookup baseline -----------------------------------------------------------------


def dataset_pairs(services, persona):
    pairs = []
    for line in (services.datasets_dir / persona.dataset).read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        pairs += [(a["content"], b["content"]) for a, b in zip(messages, messages[1:])
                  if a["role"] == "user" and b["role"] == "assistant"]
    return pairs


@pytest.mark.parametrize("persona_name, asked, expected", [
    ("Brindlecombe Facts Q&A", "who is the mayor of Brindlecombe", "Tomasz Everly."),
    ("Brindlecombe Facts Q&A", "Who founded Brindlecombe?", "Adelaide Crouch, who built the town's first watermill."),
    (RATER, "Waited 50 minutes for cold pasta, and the waiter rolled his eyes when we asked about it",
     "1: long wait, cold food and rude service"),
    (BRACK, "Aunt Ignatia, why is the kitchen ceiling purple", None),
])
def test_lookup_answers_with_the_nearest_example_from_the_dataset(services, persona_name, asked, expected):
    persona = persona_named(services, persona_name)
    if expected is None:
        expected = dict(dataset_pairs(services, persona))["Tobin: Aunt Ignatia, why is the kitchen ceiling purple?"]

    _, conversation = run(services, persona, asked, model="offline:lookup")

    reply = conversation.turns[-1]
    assert reply.content == expected
    assert reply.error is None
    exchange = last_exchange(services)
    assert (exchange["provider"], exchange["model"], exchange["reply"]) == ("offline", "lookup", expected)
    assert exchange["cost_usd"] == 0


def test_lookup_says_so_when_the_persona_has_no_dataset(services):
    rater = persona_named(services, RATER).model_copy(update={"dataset": None})

    _, conversation = run(services, rater, "Great pizza", model="offline:lookup")

    assert "no dataset" in conversation.turns[-1].content
    assert conversation.turns[-1].error is None


def write_dataset(path, pairs):
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant",
                                                                                     "content": a}]}) + "\n"
                            for q, a in pairs), encoding="utf-8")


def lookup_answer(lookup, question):
    from playground.core.messages import Message
    from playground.core.params import SamplingParams

    return "".join(lookup.stream_chat("lookup", [Message(role="user", content=question)], SamplingParams(),
                                      "tiny.jsonl"))


def test_lookup_reindexes_only_when_the_dataset_file_changes(tmp_path):
    store = Store(tmp_path / "lookup.db")
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    write_dataset(datasets / "tiny.jsonl", [("Where is the lighthouse?", "On the rock."),
                                            ("What colour is the door?", "Green.")])
    lookup = LookupProvider(store, datasets)

    assert lookup_answer(lookup, "where is the lighthouse") == "On the rock."
    with store.db() as db:
        db.execute("update lookup_examples set reply = 'From the index.' where reply = 'On the rock.'")
        db.conn.commit()
    assert lookup_answer(lookup, "where is the lighthouse") == "From the index."

    write_dataset(datasets / "tiny.jsonl", [("Where is the lighthouse?", "Past the harbour."),
                                            ("What colour is the door?", "Green.")])
    assert lookup_answer(lookup, "where is the lighthouse") == "Past the harbour."
    assert lookup_answer(lookup, "what colour is the door") == "Green."


@pytest.mark.parametrize("preferred, expected", [
    ("gpt-4o-mini", "local:gpt-4o-mini"),
    ("local:gpt-4o-mini", "local:gpt-4o-mini"),
    ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "local:ft:gpt-4o-mini-2024-07-18:acme::abc123"),
    # Not served: the first served chat model (the fake server lists davinci-002, a base model, before echo).
    ("gpt-9-not-listed", "local:echo"),
    (None, "local:echo"),
])
def test_default_model_prefers_a_listed_model_then_a_served_chat_model(services, preferred, expected):
    assert services.registry.default_model(preferred) == expected


@pytest.mark.parametrize("preferred", ["gpt-4o-mini", "local:gpt-4o-mini", None])
def test_default_model_is_lookup_when_no_provider_answers(services, fake_server, preferred):
    fake_server.close()
    services.registry.refresh()  # the list is asked again and fails: its models are not served any more

    assert services.registry.default_model(preferred) == "offline:lookup"
    assert services.registry.served_chat_models() == []


@pytest.mark.parametrize("persona_model, picked, expected", [
    ("gpt-4o", "local:gpt-4o-mini", "local:gpt-4o"),  # the persona names a served model of its own
    ("gpt-9-not-listed", "local:gpt-4o-mini", "local:gpt-4o-mini"),  # it does not: the user's pick stays
    (None, "offline:lookup", "offline:lookup"),
    (None, "typed-model", "typed-model"),
    ("gpt-9-not-listed", "", "local:echo"),  # nothing picked: the usual default
])
def test_a_persona_change_keeps_the_picked_model_unless_the_persona_names_a_served_one(
        services, persona_model, picked, expected):
    assert services.registry.after_persona_change(persona_model, picked) == expected


def test_the_default_once_listed_waits_for_the_first_lists(services):
    services.registry.listed.clear()
    lists_in = threading.Timer(0.2, services.registry.listed.set)  # the startup thread, finishing its lists
    lists_in.start()
    assert services.registry.default_model_once_listed("gpt-4o", timeout=30) == "local:gpt-4o"
    assert services.registry.listed.is_set()  # it returned only once the lists were in
    lists_in.join()


def test_served_chat_models_leave_out_base_embedding_and_audio_models(services, fake_server):
    fake_server.models = ["gpt-4o-mini", "davinci-002", "text-embedding-3-small", "whisper-1", "tts-1", "dall-e-3"]
    services.registry.refresh()

    assert services.registry.served_chat_models() == ["local:gpt-4o-mini"]


# --- resolving what the user picked or typed ----------------------------------------------------


@pytest.mark.parametrize("ref, provider, model", [
    ("local:gpt-4o-mini", "local", "gpt-4o-mini"),
    ("gpt-4o-mini", "local", "gpt-4o-mini"),
    ("  gpt-4o-mini  ", "local", "gpt-4o-mini"),
    ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "local", "ft:gpt-4o-mini-2024-07-18:acme::abc123"),
    ("local:ft:gpt-4o-mini-2024-07-18:acme::abc123", "local", "ft:gpt-4o-mini-2024-07-18:acme::abc123"),
    ("offline:lookup", "offline", "lookup"),
    ("lookup", "offline", "lookup"),
    ("my-new-finetune", "local", "my-new-finetune"),
])
def test_resolve_finds_the_provider_for_a_model(services, ref, provider, model):
    resolved, name = services.registry.resolve(ref)

    assert (resolved.name, name) == (provider, model)


@pytest.mark.parametrize("ref", ["", "   ", None])
def test_resolve_asks_for_a_model_when_none_is_picked(services, ref):
    with pytest.raises(UnknownModel) as caught:
        services.registry.resolve(ref)

    assert "Pick a model" in str(caught.value)


def test_with_no_providers_a_typed_model_says_how_to_add_one(tmp_path):
    registry = Registry([], LookupProvider(Store(tmp_path / "db.sqlite"), tmp_path))

    with pytest.raises(UnknownModel) as caught:
        registry.resolve("gpt-4o-mini")

    assert "gpt-4o-mini" in str(caught.value)
    assert "OPENAI_API_KEY" in str(caught.value)
    assert "providers.json" in str(caught.value)
    assert registry.resolve("offline:lookup")[0].name == "offline"
    assert registry.default_model("gpt-4o-mini") == "offline:lookup"


def test_an_unknown_model_with_no_providers_is_refused_before_anything_is_logged(tmp_path, services):
    services.registry = Registry([], services.registry.lookup)
    rater = persona_named(services, RATER)

    with pytest.raises(UnknownModel):
        run(services, rater, "hi", model="gpt-4o-mini")

    assert services.store.exchanges() == []
