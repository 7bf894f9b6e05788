"""Transcripts to training examples, on chats really sent through the chat engine to the loopback server and logged."""

import pytest

from playground.chat.ask import ChatSettings, stream_reply
from playground.chat.conversation import Conversation
from playground.datasets.store import add_examples, create_dataset, iter_examples
from playground.datasets.transcripts import (
    ConversionError,
    ConversionOptions,
    example_from_conversation,
    example_from_exchanges,
    log_facets,
    logged_exchanges,
)
from playground.datasets.validation import validate_examples

BRACK = "Professor Ignatia Brack"  # greeting, speaker "Tobin", two seed exchanges, {{lab_name}}, a deploy prompt
RATER = "Review Sentiment Rater"
QA = "Brindlecombe Facts Q&A"  # a completion persona
MODEL = "local:gpt-4o-mini"


def chat(services, persona_name, *texts, model=MODEL, conversation=None, **changes):
    """Send each text in turn through the chat engine; returns (persona, settings, conversation)."""
    persona = services.personas[persona_name]
    settings = ChatSettings.for_persona(persona, model).model_copy(update=changes)
    conversation = conversation or Conversation.start(persona.greeting)
    for text in texts:
        conversation.add_user(text)
        for _ in stream_reply(services, persona, settings, conversation):
            pass
    return persona, settings, conversation


def rate(services, conversation, index, rating):
    """What Like/Dislike in the chat does: the turn and its logged exchange."""
    services.store.rate(conversation.rate(index, rating), rating)


def convert(persona, settings, conversation, **options):
    return example_from_conversation(persona, settings, conversation, ConversionOptions(**options))


def pairs(example):
    return [(m.role, m.content) for m in example.messages]


@pytest.fixture
def brack_chat(services):
    return chat(services, BRACK, "What's that smell?", "Dez: Is the fire out?")


def test_by_default_the_deploy_prompt_replaces_the_long_one_and_seed_turns_are_dropped(services, brack_chat):
    persona, settings, conversation = brack_chat
    sent = services.store.exchanges(limit=1)[0]["request"]["messages"]
    assert sent[0]["content"].startswith("You are Professor Ignatia Brack, a wildly eccentric")
    assert len(sent) == 1 + 4 + 4  # system, four seed turns, greeting + question + reply + question

    example = convert(persona, settings, conversation)

    assert pairs(example) == [  # the greeting is left out: an example that opens with the assistant teaches that
        ("system", persona.deploy_prompt),
        ("user", "Tobin: What's that smell?"),
        ("assistant", "Echo: Tobin: What's that smell?"),
        ("user", "Dez: Is the fire out?"),  # a speaker the user named is kept, not prefixed again
        ("assistant", "Echo: Dez: Is the fire out?"),
    ]
    logged = [e["id"] for e in reversed(services.store.exchanges())]
    assert example.source.exchange_ids == logged
    assert (example.source.persona, example.source.model) == (BRACK, MODEL)
    assert all(m.weight is None for m in example.messages)


def test_the_persona_prompt_as_sent_custom_or_none(services, brack_chat):
    persona, settings, conversation = brack_chat
    sent_system = services.store.exchanges(limit=1)[0]["request"]["messages"][0]["content"]
    assert "the Silo on Gorse Lane" in sent_system  # {{lab_name}} filled in

    assert convert(persona, settings, conversation, system="persona").messages[0].content == sent_system
    custom = convert(persona, settings, conversation, system="custom", custom_system="You are Brack.")
    assert pairs(custom)[0] == ("system", "You are Brack.")
    assert [m.role for m in convert(persona, settings, conversation, system="none").messages][:2] == ["user", "assistant"]
    with pytest.raises(ConversionError, match="Write the custom system prompt"):
        convert(persona, settings, conversation, system="custom", custom_system="  ")


def test_a_persona_without_a_deploy_prompt_says_what_to_do(brack_chat):
    persona, settings, conversation = brack_chat
    with pytest.raises(ConversionError, match="has no deploy prompt"):
        convert(persona.model_copy(update={"deploy_prompt": None}), settings, conversation)


def test_seed_turns_can_be_kept_as_they_were_sent(services, brack_chat):
    persona, settings, conversation = brack_chat
    sent = services.store.exchanges(limit=1)[0]["request"]["messages"]

    example = convert(persona, settings, conversation, keep_seed_turns=True)

    assert pairs(example)[1:5] == [(m["role"], m["content"]) for m in sent[1:5]]
    assert pairs(example)[1] == ("user", "Tobin: Aunt Ignatia, what's that smell?")
    assert len(example.messages) == 1 + 4 + 4  # system, seed turns, the chat without its greeting


def test_speaker_prefix_can_be_left_off(brack_chat):
    persona, settings, conversation = brack_chat
    example = convert(persona, settings, conversation, speaker_prefix=False)
    assert [m.content for m in example.messages if m.role == "user"] == ["What's that smell?", "Dez: Is the fire out?"]


def test_a_disliked_reply_gets_weight_0_unless_told_otherwise(services, brack_chat):
    persona, settings, conversation = brack_chat
    rate(services, conversation, 2, -1)
    rate(services, conversation, 4, 1)

    weights = [m.weight for m in convert(persona, settings, conversation).messages if m.role == "assistant"]
    assert weights == [0, None]
    unweighted = convert(persona, settings, conversation, weight_disliked=False)
    assert [m.weight for m in unweighted.messages if m.role == "assistant"] == [None, None]


def test_a_corrected_reply_replaces_the_text_and_is_trained_on_even_if_disliked(services, brack_chat):
    persona, settings, conversation = brack_chat
    rate(services, conversation, 4, -1)

    example = convert(persona, settings, conversation, edits={4: "Out? Mostly. Ninety-one percent out, Dez."})

    assert example.messages[-1].content == "Out? Mostly. Ninety-one percent out, Dez."
    assert example.messages[-1].weight is None
    assert conversation.turns[4].content == "Echo: Dez: Is the fire out?"  # the chat itself is unchanged
    with pytest.raises(ConversionError, match="is empty"):
        convert(persona, settings, conversation, edits={4: "   "})


def test_up_to_a_chosen_reply(services, brack_chat):
    persona, settings, conversation = brack_chat

    example = convert(persona, settings, conversation, upto_turn=2)

    assert pairs(example)[-2:] == [("user", "Tobin: What's that smell?"), ("assistant", "Echo: Tobin: What's that smell?")]
    assert example.source.exchange_ids == [conversation.turns[2].exchange_id]
    with pytest.raises(ConversionError, match="not in the part being added"):
        convert(persona, settings, conversation, upto_turn=2, edits={4: "later"})


@pytest.mark.parametrize("upto, message", [
    (1, "is not a reply"), (9, "is not a reply"), (0, "answers no message of the user"),
])
def test_up_to_a_turn_that_is_not_a_reply_is_refused(brack_chat, upto, message):
    persona, settings, conversation = brack_chat
    with pytest.raises(ConversionError, match=message):
        convert(persona, settings, conversation, upto_turn=upto)


def test_the_greeting_is_left_out_unless_kept(brack_chat):
    persona, settings, conversation = brack_chat
    assert ConversionOptions().keep_greeting is False
    example = convert(persona, settings, conversation)
    assert [m.role for m in example.messages] == ["system", "user", "assistant", "user", "assistant"]
    kept = convert(persona, settings, conversation, keep_greeting=True)
    assert pairs(kept)[:2] == [("system", persona.deploy_prompt), ("assistant", persona.greeting)]


def test_a_chat_with_no_reply_yet_cannot_be_added(services):
    persona = services.personas[BRACK]
    settings = ChatSettings.for_persona(persona, MODEL)
    with pytest.raises(ConversionError, match="no reply to add yet"):
        convert(persona, settings, Conversation.start(persona.greeting))


def test_a_reply_cut_off_by_an_error_is_not_trained_on_until_corrected(services):
    persona, settings, conversation = chat(services, RATER, "Tell me about the mill", model="local:fault-break")
    assert conversation.turns[-1].content == "Partial one two" and conversation.turns[-1].incomplete

    with pytest.raises(ConversionError, match="Nothing to train on"):
        convert(persona, settings, conversation)
    fixed = convert(persona, settings, conversation, edits={1: "3: a mill is not a review"})
    assert (fixed.messages[-1].content, fixed.messages[-1].weight) == ("3: a mill is not a review", None)


def test_a_reply_that_failed_with_no_text_is_left_out(services):
    persona, settings, conversation = chat(services, RATER, "Great pizza", model="local:fault-500")
    chat(services, RATER, "Lovely soup", conversation=conversation)

    example = convert(persona, settings, conversation)

    assert pairs(example)[1:] == [("user", "Great pizza"), ("user", "Lovely soup"), ("assistant", "Echo: Lovely soup")]


def test_from_logged_exchanges_gives_the_same_example_as_the_chat(services, brack_chat):
    persona, settings, conversation = brack_chat
    rate(services, conversation, 2, -1)
    last = conversation.turns[-1].exchange_id

    for options in [{}, {"keep_seed_turns": True, "system": "persona"}, {"speaker_prefix": False},
                    {"weight_disliked": False}, {"upto_turn": 2, "weight_disliked": False}, {"edits": {4: "Fixed."}},
                    {"keep_greeting": True}]:
        from_log = example_from_exchanges(services.store, [last], ConversionOptions(**options), services.personas)
        from_chat = convert(persona, settings, conversation, **options)
        assert pairs(from_log) == pairs(from_chat), options
        assert [m.weight for m in from_log.messages] == [m.weight for m in from_chat.messages], options
        assert from_log.source == from_chat.source, options


def test_from_logged_exchanges_takes_the_latest_given_and_the_reply_kept_after_a_retry(services):
    persona, settings, conversation = chat(services, RATER, "Cold soup")
    conversation.drop_last_reply()  # Retry
    for _ in stream_reply(services, persona, settings, conversation):
        pass
    chat(services, RATER, "Warm bread", conversation=conversation)
    retried, kept, last = (e["id"] for e in reversed(services.store.exchanges()))
    services.store.rate(retried, -1)

    example = example_from_exchanges(services.store, [kept, last], ConversionOptions(), services.personas)

    assert pairs(example)[1:] == [("user", "Cold soup"), ("assistant", "Echo: Cold soup"),
                                  ("user", "Warm bread"), ("assistant", "Echo: Warm bread")]
    assert example.source.exchange_ids == [kept, last]
    assert all(m.weight is None for m in example.messages)


def test_from_logged_exchanges_of_a_completion_model(services):
    persona, settings, conversation = chat(services, QA, "Who is the mayor?", "When is the regatta?",
                                           model="local:davinci-002")
    exchanges = services.store.exchanges()
    assert all("prompt" in e["request"] for e in exchanges)
    services.store.rate(exchanges[-1]["id"], -1)

    example = example_from_exchanges(services.store, [exchanges[0]["id"]], ConversionOptions(), services.personas)

    assert [(m.role, m.weight) for m in example.messages] == [
        ("system", None), ("user", None), ("assistant", 0), ("user", None), ("assistant", None)]
    assert example.messages[0].content == persona.deploy_prompt
    assert example.messages[-1].content == conversation.turns[-1].content
    assert example.source.model == "local:davinci-002"


def test_from_logged_exchanges_refuses_what_cannot_be_an_example(services):
    chat(services, RATER, "Nice hotel")
    chat(services, RATER, "Awful hotel")
    first, second = (e["id"] for e in reversed(services.store.exchanges()))
    chat(services, RATER, "Broken", model="local:fault-500")
    failed = services.store.exchanges(limit=1)[0]["id"]
    options = ConversionOptions()

    with pytest.raises(ConversionError, match="different conversations"):
        example_from_exchanges(services.store, [first, second], options, services.personas)
    with pytest.raises(ConversionError, match="no reply to train on"):
        example_from_exchanges(services.store, [failed], options, services.personas)
    with pytest.raises(ConversionError, match="no logged exchange 999"):
        example_from_exchanges(services.store, [999], options, services.personas)
    with pytest.raises(ConversionError, match="Select at least one"):
        example_from_exchanges(services.store, [], options, services.personas)


def test_a_converted_example_is_stored_with_its_source_and_passes_the_deploy_prompt_check(services, brack_chat):
    persona, settings, conversation = brack_chat
    create_dataset(services.store, "brack")
    add_examples(services.store, "brack", [convert(persona, settings, conversation)])

    [stored] = iter_examples(services.store, "brack")
    assert stored.system_prompt() == persona.deploy_prompt
    assert stored.source.persona == BRACK and len(stored.source.exchange_ids) == 2
    codes = {f.code for f in validate_examples([stored], deploy_prompt=persona.deploy_prompt)}
    assert "system_prompt_not_deploy_prompt" not in codes
    as_sent = convert(persona, settings, conversation, system="persona")
    codes = {f.code for f in validate_examples([as_sent], deploy_prompt=persona.deploy_prompt)}
    assert "system_prompt_not_deploy_prompt" in codes


def test_the_log_is_filtered_by_persona_model_rating_and_text(services):
    _, _, rater_chat = chat(services, RATER, "The soup was cold")
    chat(services, BRACK, "Is the kettle cold?", model="local:gpt-4o")
    rate(services, rater_chat, 1, 1)
    chat(services, RATER, "Failed", model="local:fault-500")

    def replies(**filters):
        return [e["reply"] for e in logged_exchanges(services.store, **filters)]

    assert replies() == ["Echo: Tobin: Is the kettle cold?", "Echo: The soup was cold"]  # newest first, failures left out
    assert replies(persona=RATER) == ["Echo: The soup was cold"]
    assert replies(model="gpt-4o") == ["Echo: Tobin: Is the kettle cold?"]
    assert replies(rating="liked") == ["Echo: The soup was cold"]
    assert replies(rating="unrated") == ["Echo: Tobin: Is the kettle cold?"]
    assert replies(rating="disliked") == []
    assert replies(text="kettle") == ["Echo: Tobin: Is the kettle cold?"]
    assert replies(text="COLD") == replies()
    assert replies(text="soup (cold") == ["Echo: The soup was cold"]  # punctuation is not query syntax
    assert log_facets(services.store) == ([BRACK, RATER], ["fault-500", "gpt-4o", "gpt-4o-mini"])
    with pytest.raises(ConversionError, match="Unknown rating"):
        logged_exchanges(services.store, rating="meh")
